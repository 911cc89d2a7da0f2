"""facr's set-level AU metrics as local 🤗 ``evaluate`` modules.

>>> import evaluate
>>> from facr.audit.hf_metrics import metric_path
>>> metric = evaluate.load(metric_path("graph_causal_agreement"))  # doctest: +SKIP

The numbers come from :func:`facr.audit.metrics.set_scores`, the same code ``facr audit`` uses.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["METRICS", "metric_path"]

METRICS = ("graph_causal_agreement", "named_au_precision_recall")
"""The names of the shipped modules."""


def metric_path(name: str) -> str:
    """Absolute path of the module folder ``name``, for ``evaluate.load``."""
    if name not in METRICS:
        raise ValueError(f"metric_path(): unknown metric {name!r}; expected one of {', '.join(METRICS)}")
    return str(Path(__file__).resolve().parent / name)
