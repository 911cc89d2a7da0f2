"""One record schema for every dataset: :class:`FaceRecord`, and its 🤗 ``datasets`` form.

Every loader in ``facr.data.formats`` returns ``FaceRecord`` objects; models, audits and the
app read only this schema. AU labels are keyed by canonical AU id; ``None`` means *not
coded* by the dataset (never "absent"), so losses and metrics can mask it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from facr import au as au_vocab

SPLITS = ("train", "val", "test")

EMOTIONS: tuple[str, ...] = ("neutral", "happiness", "sadness", "surprise", "fear", "anger", "disgust", "contempt")
"""facr's canonical emotion names (lowercase), in the order class lists use."""


@dataclass
class FaceRecord:
    """One face image and its labels.

    ``image`` is a path (absolute, or relative to the dataset root the loader was given) or an
    ``HxWx3`` uint8 array. ``au_presence`` maps canonical AU ids to 1/0, or ``None`` when the
    dataset does not code that AU for this frame; ``au_intensity`` likewise (0–5 scales).
    ``pspi`` is the Prkachin–Solomon pain intensity where the dataset has one.
    """

    image: Any
    dataset: str
    subject: str
    split: str | None = None
    video: str | None = None
    frame: int | None = None
    emotion: str | None = None
    au_presence: dict[str, int | None] = field(default_factory=dict)
    au_intensity: dict[str, float | None] = field(default_factory=dict)
    pspi: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.au_presence = {au_vocab.canonical(k): (None if v is None else int(v))
                            for k, v in self.au_presence.items()}
        self.au_intensity = {au_vocab.canonical(k): (None if v is None else float(v))
                             for k, v in self.au_intensity.items()}
        for k, v in self.au_presence.items():
            if v not in (None, 0, 1):
                raise ValueError(f"au_presence[{k}] must be 0, 1 or None, got {v!r}")
        if self.split is not None and self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {self.split!r}")
        if self.pspi is not None and (not math.isfinite(self.pspi) or self.pspi < 0):
            raise ValueError(f"pspi must be a finite number >= 0, got {self.pspi!r}")

    @property
    def pain(self) -> int | None:
        """Binary pain label of the UNBC protocol: PSPI > 0 (None without a PSPI)."""
        return None if self.pspi is None else int(self.pspi > 0)

    def active_aus(self) -> list[str]:
        """AUs coded present, in AU order."""
        return au_vocab.sort_aus(k for k, v in self.au_presence.items() if v == 1)


def au_order(records: Iterable[FaceRecord]) -> list[str]:
    """Every AU any record codes, in ascending AU number."""
    seen: set[str] = set()
    for r in records:
        seen.update(r.au_presence)
        seen.update(r.au_intensity)
    return au_vocab.sort_aus(seen)


def presence_matrix(records: Sequence[FaceRecord], aus: Sequence[str]) -> np.ndarray:
    """A ``[N, K]`` float matrix of AU presence with NaN where an AU is not coded."""
    out = np.full((len(records), len(aus)), np.nan)
    for i, r in enumerate(records):
        for k, a in enumerate(aus):
            v = r.au_presence.get(a)
            if v is not None:
                out[i, k] = v
    return out


def records_to_dataset(records: Sequence[FaceRecord], aus: Sequence[str] | None = None):
    """Records as a 🤗 ``datasets.Dataset`` with fixed columns.

    Columns: ``image`` (path string; arrays are not stored here), ``dataset``, ``subject``,
    ``split``, ``video``, ``frame``, ``emotion``, ``au_presence`` (list of int in the order of
    ``aus``, -1 = not coded), ``au_intensity`` (list of float, NaN = not coded), ``pspi``.
    The AU order is kept in ``dataset.info.description`` as ``aus=AU1,AU2,...``.
    """
    import datasets

    aus = list(aus) if aus is not None else au_order(records)
    rows: dict[str, list] = {k: [] for k in ("image", "dataset", "subject", "split", "video", "frame",
                                              "emotion", "au_presence", "au_intensity", "pspi")}
    for r in records:
        rows["image"].append(r.image if isinstance(r.image, str) else None)
        rows["dataset"].append(r.dataset)
        rows["subject"].append(r.subject)
        rows["split"].append(r.split)
        rows["video"].append(r.video)
        rows["frame"].append(r.frame)
        rows["emotion"].append(r.emotion)
        rows["au_presence"].append([-1 if r.au_presence.get(a) is None else r.au_presence[a] for a in aus])
        rows["au_intensity"].append([math.nan if r.au_intensity.get(a) is None else r.au_intensity[a] for a in aus])
        rows["pspi"].append(r.pspi)
    features = datasets.Features({
        "image": datasets.Value("string"),
        "dataset": datasets.Value("string"),
        "subject": datasets.Value("string"),
        "split": datasets.Value("string"),
        "video": datasets.Value("string"),
        "frame": datasets.Value("int64"),
        "emotion": datasets.Value("string"),
        "au_presence": datasets.Sequence(datasets.Value("int8")),
        "au_intensity": datasets.Sequence(datasets.Value("float32")),
        "pspi": datasets.Value("float32"),
    })
    info = datasets.DatasetInfo(description="aus=" + ",".join(aus), features=features)
    return datasets.Dataset.from_dict(rows, features=features, info=info)


@dataclass
class LoadIssue:
    """A malformed row or unreadable file met while loading: where, and what is wrong.

    ``image`` is the image the problem is about, when it is one (missing, not decodable, outside
    the data root): training and audits count those rows as skipped images. ``split`` is the
    split the row would have been in, where the layout says.
    """

    file: str
    line: int | None
    message: str
    image: str | None = None
    split: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


@dataclass
class LoadResult:
    """What a loader returns: the records, the problems it skipped (``strict=False``), and the rows
    it left out on purpose (AffectNet's "No-Face", Aff-Wild2's "Other" without AU labels, ...)."""

    format: str
    root: str
    records: list[FaceRecord]
    issues: list[LoadIssue] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # rows left out on purpose, by reason

    def to_dataset(self, aus: Sequence[str] | None = None):
        """The records as a 🤗 ``datasets.Dataset`` (see :func:`records_to_dataset`)."""
        return records_to_dataset(self.records, aus)
