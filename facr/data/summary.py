"""What a loaded dataset holds, in numbers: the library side of ``facr data inspect``.

Example (on the UNBC fixture of the test suite)::

    from facr.data.formats import load
    summary = summarize(load("unbc", "tests/data/fixtures/unbc"))
    summary["au_prevalence"]["AU4"], summary["pspi"]   # (0.333..., {'n_positive': 2, 'max': 7.0})
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from facr import au as au_vocab
from facr.data.records import LoadResult

MAX_LISTED_ERRORS = 20
"""How many issues :func:`summarize` lists by text (``n_errors`` counts them all)."""


def summarize(result: LoadResult, verified: bool = False) -> dict[str, Any]:
    """A JSON-ready summary of a :class:`LoadResult` (``verified``: the loader decoded every image).

    Keys: ``format``, ``root``, ``n_records``, ``n_subjects``, ``splits`` (records per split,
    ``none`` for records without one), ``emotions`` (records per emotion; unlabelled records
    are not counted), ``au_prevalence`` (per AU, the fraction of the frames that code it on
    which it is present; AUs no frame codes are left out), ``pspi`` (``{"n_positive": frames
    with PSPI > 0, "max": largest PSPI}``, or None when no record has a PSPI), ``n_errors``
    (issues met while loading), ``errors`` (the first :data:`MAX_LISTED_ERRORS` of them as
    ``file:line: problem``), ``dropped`` (rows left out on purpose, by reason), ``image_errors``
    (``{"count", "files"}``: the rows skipped because of their image, missing, outside the data
    root or, when verified, not decodable; every one listed), ``n_images`` (records with an
    image) and ``images_verified``.
    """
    records = result.records
    coded: Counter[str] = Counter()
    present: Counter[str] = Counter()
    for r in records:
        for a, v in r.au_presence.items():
            if v is not None:
                coded[a] += 1
                present[a] += v
    pspis = [r.pspi for r in records if r.pspi is not None]
    bad_images = [str(i) for i in result.issues if i.image is not None]
    return {
        "format": result.format,
        "root": result.root,
        "n_records": len(records),
        "n_subjects": len({r.subject for r in records}),
        "splits": dict(Counter(r.split or "none" for r in records)),
        "emotions": dict(Counter(r.emotion for r in records if r.emotion is not None)),
        "au_prevalence": {a: present[a] / coded[a] for a in au_vocab.sort_aus(coded)},
        "pspi": {"n_positive": sum(p > 0 for p in pspis), "max": max(pspis)} if pspis else None,
        "n_errors": len(result.issues),
        "errors": [str(i) for i in result.issues[:MAX_LISTED_ERRORS]],
        # Only the real-dataset loaders count deliberate drops (FormatResult.dropped).
        "dropped": dict(getattr(result, "dropped", {}) or {}),
        "n_images": sum(r.image is not None or "png" in r.meta for r in records),
        "image_errors": {"count": len(bad_images), "files": bad_images},
        "images_verified": verified,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The human-readable form of :func:`summarize`'s dict, a few lines."""
    def counts(d: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(d.items(), key=lambda kv: (-kv[1], kv[0])))

    lines = [f"{summary['format']} at {summary['root']}: {summary['n_records']} records, "
             f"{summary['n_subjects']} subjects",
             f"splits: {counts(summary['splits']) or '-'}",
             f"emotions: {counts(summary['emotions']) or 'none labelled'}"]
    prevalence = summary["au_prevalence"]
    lines.append("AU prevalence (share of coded frames): "
                 + (", ".join(f"{a} {p:.3f}" for a, p in prevalence.items()) or "no AU labels"))
    if summary["pspi"] is not None:
        lines.append(f"PSPI: {summary['pspi']['n_positive']} frames > 0, max {summary['pspi']['max']:g}")
    if summary["dropped"]:
        lines.append(f"dropped on purpose: {counts(summary['dropped'])}")
    lines.append(_images_line(summary))
    lines.append(f"errors: {summary['n_errors']}" + (" (those rows were skipped)" if summary["n_errors"] else ""))
    lines.extend(f"  {e}" for e in summary["errors"])
    if summary["n_errors"] > len(summary["errors"]):
        lines.append(f"  ... and {summary['n_errors'] - len(summary['errors'])} more")
    return "\n".join(lines)


def _images_line(summary: dict[str, Any]) -> str:
    """``images: ...``: how many decode (when verified) and how many rows were skipped for their image."""
    n, bad = summary["n_images"], summary["image_errors"]["count"]
    if not n and not bad:
        return "images: none (annotations only)"
    skipped = (f"; {bad} row{'s' * (bad != 1)} skipped for the image (missing, outside the data root, not decodable)"
               if bad else "")
    if summary["images_verified"]:
        return f"images: all {n} decode{skipped}"
    return f"images: {n} found, not decoded (--verify decodes every one){skipped}"
