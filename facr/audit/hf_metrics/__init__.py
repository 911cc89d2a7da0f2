"""facr's set-level AU metrics as local 🤗 ``evaluate`` modules.

>>> import evaluate
>>> from facr.audit.hf_metrics import metric_path
>>> metric = evaluate.load(metric_path("graph_causal_agreement"))  # doctest: +SKIP

The numbers come from :func:`facr.audit.metrics.agreement` and :func:`~facr.audit.metrics.precision_recall`,
the per-sample yardstick ``facr audit`` scores every reasoner with.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["METRICS", "metric_path", "metric_info", "au_sets"]

METRICS = ("graph_causal_agreement", "named_au_precision_recall")
"""The names of the shipped modules."""


def metric_path(name: str) -> str:
    """Absolute path of the module folder ``name``, for ``evaluate.load``."""
    if name not in METRICS:
        raise ValueError(f"metric_path(): unknown metric {name!r}; expected one of {', '.join(METRICS)}")
    return str(Path(__file__).resolve().parent / name)


CITATION = """\
@software{facr,
  title = {facr: faithful action-unit causal reasoning},
  url = {https://github.com/facr-project/facr}
}
"""


def metric_info(description: str, inputs_description: str):
    """The ``evaluate.MetricInfo`` both modules share: lists of AU names in, lists of AU names as reference."""
    import datasets
    import evaluate

    return evaluate.MetricInfo(
        description=description,
        citation=CITATION,
        inputs_description=inputs_description,
        features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("string")),
                                    "references": datasets.Sequence(datasets.Value("string"))}),
        reference_urls=["https://github.com/facr-project/facr"],
    )


def au_sets(lists) -> list[set[str]]:
    """Canonical AU id sets from lists of AU names in any spelling (facr.au.canonical)."""
    from facr.au import canonical

    return [{canonical(a) for a in aus} for aus in lists]
