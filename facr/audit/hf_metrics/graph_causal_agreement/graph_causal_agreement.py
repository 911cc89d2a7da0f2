"""Graph-causal agreement of named AUs with the causal parents Pa(c), as an ``evaluate`` metric."""

import evaluate

from facr.audit.hf_metrics import au_sets, metric_info
from facr.audit.metrics import agreement, mean_defined

_DESCRIPTION = """\
Graph-causal agreement: for each sample, |named ∩ Pa(c)| / |Pa(c)|, the share of the causal
parents Pa(c) of the explained class c (in an AU→emotion graph) that the explanation names.
The mean is taken over samples whose Pa(c) is non-empty. AU spellings ("AU06", "au 6",
"Cheek Raiser", "AU06_r") are canonicalised by facr.au; an unknown AU raises
facr.errors.UnknownAUError (a ValueError).
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list` of `list` of `str`): the AUs each explanation names.
    references (`list` of `list` of `str`): Pa(c) of the explained class, per sample.
Returns:
    graph_causal_agreement (`float` or `None`): mean over samples with a non-empty Pa(c);
        None when there are none.
    n_defined (`int`): the number of those samples.
Examples:
    >>> metric = evaluate.load(facr.audit.hf_metrics.metric_path("graph_causal_agreement"))
    >>> metric.compute(predictions=[["AU6", "au 12"]], references=[["AU6", "AU12", "AU25"]])
    {'graph_causal_agreement': 0.6666666666666666, 'n_defined': 1}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class GraphCausalAgreement(evaluate.Metric):
    def _info(self):
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION)

    def _compute(self, predictions, references):
        named = au_sets(predictions)
        parents = au_sets(references)
        # the yardstick's own per-sample agreement (unsigned: a reference list carries no edge signs)
        values = [agreement(got, dict.fromkeys(pa, 1), None)[0] for got, pa in zip(named, parents)]
        return {
            "graph_causal_agreement": mean_defined(values),
            "n_defined": sum(v is not None for v in values),
        }
