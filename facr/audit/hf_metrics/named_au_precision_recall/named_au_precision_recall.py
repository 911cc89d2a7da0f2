"""Precision and recall of named AUs against the AUs labelled active, as an ``evaluate`` metric."""

import evaluate

from facr.audit.hf_metrics import au_sets, metric_info
from facr.audit.metrics import mean_defined, precision_recall

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


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class NamedAUPrecisionRecall(evaluate.Metric):
    def _info(self):
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION)

    def _compute(self, predictions, references):
        named = au_sets(predictions)
        active = au_sets(references)
        # the yardstick's own per-sample figures (no coded set given: precision reads every named AU)
        values = [precision_recall(got, act, None) for got, act in zip(named, active)]
        return {
            "active_au_precision": mean_defined([p for p, _ in values]),
            "active_au_recall": mean_defined([r for _, r in values]),
            "aus_per_frame": mean_defined([len(got) for got in named]),
            "n_samples": len(named),
        }
