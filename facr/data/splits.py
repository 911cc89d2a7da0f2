"""Subject-independent splits and temporal striding over :class:`~facr.data.records.FaceRecord` lists.

Everything here returns indices into the record list it was given, so the same split can index
records, a 🤗 dataset built from them, or a feature matrix.

- :func:`loso`: leave-one-subject-out folds (the FACR paper's UNBC protocol). A held-out subject
  whose labels take a single value (UNBC subject 101 has no PSPI > 0 frame) is flagged
  (``fold.single_class``), so metrics that need both classes (F1, AUC) can report "undefined".
- :func:`subject_split`: one subject-disjoint train/val/test split with a seed.
- :func:`stride`: every k-th frame of each video (the paper's resolution study uses k = 4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterator, Sequence

import numpy as np

from facr.data.records import FaceRecord

Label = Callable[[FaceRecord], Hashable]


def default_label(record: FaceRecord) -> Hashable:
    """The label a fold's class check uses by default: pain (PSPI > 0) where there is a PSPI, else the emotion."""
    return record.pain if record.pspi is not None else record.emotion


@dataclass(frozen=True)
class Fold:
    """One leave-one-subject-out fold: ``subject`` is held out as ``test``; ``train`` is everyone else.

    ``classes`` are the distinct labels of the test records (None labels ignored).
    ``single_class`` is True when there are fewer than two, so F1/AUC on this fold are
    undefined; ``has_positive`` says whether a binary (0/1) label has a positive in the test
    records, and is None for labels that are not binary.
    """

    subject: str
    train: np.ndarray
    test: np.ndarray
    classes: tuple

    @property
    def single_class(self) -> bool:
        return len(self.classes) < 2

    @property
    def has_positive(self) -> bool | None:
        if not set(self.classes) <= {0, 1}:
            return None
        return 1 in self.classes


def _labels(records: Sequence[FaceRecord], indices: np.ndarray, label: Label) -> tuple:
    values = {label(records[i]) for i in indices}
    values.discard(None)
    return tuple(sorted(values, key=repr))


def _by_subject(records: Sequence[FaceRecord]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault(r.subject, []).append(i)
    return groups


def loso(records: Sequence[FaceRecord], label: Label = default_label) -> Iterator[Fold]:
    """Leave-one-subject-out folds, one per subject in sorted order.

    ``label`` maps a record to the class the fold flags are computed from (default:
    :func:`default_label`). Train and test indices are ascending and disjoint, and together
    cover every record.
    """
    groups = _by_subject(records)
    if len(groups) < 2:
        raise ValueError(f"loso needs at least 2 subjects, got {len(groups)}")
    everything = np.arange(len(records))
    for subject in sorted(groups):
        test = np.asarray(groups[subject], dtype=np.int64)
        train = np.setdiff1d(everything, test, assume_unique=True)
        yield Fold(subject, train, test, _labels(records, test, label))


@dataclass(frozen=True)
class SubjectSplit:
    """A subject-disjoint split: record indices and the subjects of each part."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    subjects: dict[str, tuple[str, ...]]

    def __getitem__(self, part: str) -> np.ndarray:
        if part not in ("train", "val", "test"):
            raise KeyError(part)
        return getattr(self, part)

    def to_dict(self) -> dict[str, Any]:
        """The subjects of each part, JSON-ready (the indices follow from the records)."""
        return {k: list(v) for k, v in self.subjects.items()}


def subject_split(records: Sequence[FaceRecord], fractions: Sequence[float] = (0.7, 0.15, 0.15),
                  seed: int = 0) -> SubjectSplit:
    """Split the subjects (not the frames) into train/val/test with the given ``fractions``.

    Subjects are shuffled with ``seed``; val and test get ``round(fraction * n_subjects)``
    subjects each, but at least one when their fraction is > 0, and train gets the rest (at
    least one). Raises ``ValueError`` naming the argument when ``fractions`` are not three
    numbers >= 0 summing to 1, or when there are too few subjects for the non-zero parts.
    """
    if len(fractions) != 3 or any(not (isinstance(f, (int, float)) and f >= 0) for f in fractions):
        raise ValueError(f"fractions must be three numbers >= 0 (train, val, test), got {tuple(fractions)}")
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-9) or fractions[0] <= 0:
        raise ValueError(f"fractions must sum to 1 with a train fraction > 0, got {tuple(fractions)}")
    groups = _by_subject(records)
    subjects = sorted(groups)
    needed = 1 + sum(f > 0 for f in fractions[1:])
    if len(subjects) < needed:
        raise ValueError(f"fractions {tuple(fractions)} need at least {needed} subjects, got {len(subjects)}")
    order = [subjects[i] for i in np.random.default_rng(seed).permutation(len(subjects))]
    sizes = [max(1, round(f * len(subjects))) if f > 0 else 0 for f in fractions[1:]]
    while sum(sizes) > len(subjects) - 1:  # keep one train subject: shrink the larger held-out part
        sizes[int(np.argmax(sizes))] -= 1
    n_val, n_test = sizes
    parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}

    def indices(names: list[str]) -> np.ndarray:
        return np.sort(np.asarray([i for s in names for i in groups[s]], dtype=np.int64))

    return SubjectSplit(indices(parts["train"]), indices(parts["val"]), indices(parts["test"]),
                        {k: tuple(sorted(v)) for k, v in parts.items()})


def stride(records: Sequence[FaceRecord], k: int, offset: int = 0) -> np.ndarray:
    """Indices of every ``k``-th frame within each video, ascending.

    Frames are ordered by ``frame`` within each ``(subject, video)`` (records without a frame
    number keep their list order) and positions ``offset, offset + k, ...`` are kept, so each
    video keeps ``ceil((n - offset) / k)`` frames; ``k=1`` keeps everything. Records without a
    video are grouped by subject.
    """
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if not isinstance(offset, (int, np.integer)) or not 0 <= offset < k:
        raise ValueError(f"offset must be an integer in [0, k), got {offset!r}")
    videos: dict[tuple[str, str | None], list[int]] = {}
    for i, r in enumerate(records):
        videos.setdefault((r.subject, r.video), []).append(i)
    keep: list[int] = []
    for members in videos.values():
        ordered = sorted(members, key=lambda i: (records[i].frame is None, records[i].frame or 0, i))
        keep.extend(ordered[offset::k])
    return np.sort(np.asarray(keep, dtype=np.int64))
