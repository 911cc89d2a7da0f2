"""Precision and recall of named AUs against the AUs labelled active, as an ``evaluate`` metric."""

import datasets
import evaluate

from facr.au import canonical
from facr.audit.metrics import mean_defined, set_scores

_DESCRIPTION = """\
Active-AU precision |named ∩ active| / |named| and recall |named ∩ active| / |active| of the
AUs an explanation names against the AUs labelled present in the frame, averaged over samples
where each is defined (precision: the explanation names an AU; recall: an AU is labelled
active). AU spellings ("AU06", "au 6", "Cheek Raiser", "AU06_r") are canonicalised by
facr.au; an unknown AU raises facr.errors.UnknownAUError (a ValueError).
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list` of `list` of `str`): the AUs each explanation names.
    references (`list` of `list` of `str`): the AUs labelled active in each frame (an empty
        list: none active).
Returns:
    active_au_precision (`float` or `None`): mean over samples that name at least one AU.
    active_au_recall (`float` or `None`): mean over samples with at least one active AU.
    aus_per_frame (`float` or `None`): mean number of distinct AUs named.
    n_samples (`int`): the number of samples.
Examples:
    >>> metric = evaluate.load(facr.audit.hf_metrics.metric_path("named_au_precision_recall"))
    >>> metric.compute(predictions=[["AU6", "AU4"]], references=[["Cheek Raiser", "AU12"]])
    {'active_au_precision': 0.5, 'active_au_recall': 0.5, 'aus_per_frame': 2.0, 'n_samples': 1}
"""

_CITATION = """\
@software{facr,
  title = {facr: faithful action-unit causal reasoning},
  url = {https://github.com/facr-project/facr}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class NamedAUPrecisionRecall(evaluate.Metric):
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
        active = [{canonical(a) for a in aus} for aus in references]
        scores = set_scores(named, parents=[set()] * len(named), active=active)
        return {
            "active_au_precision": mean_defined(scores.active_precision),
            "active_au_recall": mean_defined(scores.active_recall),
            "aus_per_frame": mean_defined(scores.n_named),
            "n_samples": len(named),
        }
