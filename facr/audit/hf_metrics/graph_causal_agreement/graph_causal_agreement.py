"""Graph-causal agreement of named AUs with the causal parents Pa(c), as an ``evaluate`` metric."""

import datasets
import evaluate

from facr.au import canonical
from facr.audit.metrics import mean_defined, set_scores

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

_CITATION = """\
@software{facr,
  title = {facr: faithful action-unit causal reasoning},
  url = {https://github.com/facr-project/facr}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class GraphCausalAgreement(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
            reference_urls=["https://github.com/facr-project/facr"],
        )

    def _compute(self, predictions, references):
        named = [{canonical(a) for a in aus} for aus in predictions]
        parents = [{canonical(a) for a in aus} for aus in references]
        scores = set_scores(named, parents, active=[None] * len(named))
        return {
            "graph_causal_agreement": mean_defined(scores.graph_agreement),
            "n_defined": sum(v is not None for v in scores.graph_agreement),
        }
