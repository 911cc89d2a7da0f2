"""What every dataset loader shares: issue reporting, strict mode, emotion names, image checks.

A loader makes one :class:`Loading` per call. ``loading.issue(file, line, problem)`` records a
malformed row or unreadable file and the loader skips it; with ``strict=True`` the same call
raises :class:`~facr.errors.DataFormatError` instead, naming the file and line. Rows left out
on purpose (AffectNet's "No-Face", Aff-Wild2's "Other" with no AU label, ...) are not errors:
``loading.drop(reason)`` counts them in :attr:`LoadResult.dropped`.

Every image path a loader reads from an annotation file (or finds by listing a folder) goes
through :meth:`Loading.check_image`: a path that leaves the data root (absolute, ``..``, or a
symlink pointing out) is refused before anything opens it, and reported like a missing image.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from facr.data.images import image_problem
from facr.data.records import EMOTIONS, FaceRecord, LoadIssue, LoadResult
from facr.errors import DataFormatError

# Spellings the datasets use (AffectNet "Happy"/"Sad", FER "Angry", adjectives in free text).
_EMOTION_ALIASES = {
    "neutral": "neutral", "neutrality": "neutral",
    "happiness": "happiness", "happy": "happiness", "joy": "happiness",
    "sadness": "sadness", "sad": "sadness",
    "surprise": "surprise", "surprised": "surprise",
    "fear": "fear", "fearful": "fear", "afraid": "fear",
    "anger": "anger", "angry": "anger",
    "disgust": "disgust", "disgusted": "disgust",
    "contempt": "contempt", "contemptuous": "contempt",
}

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def canonical_emotion(name: str) -> str:
    """facr's name for an emotion spelling: ``canonical_emotion("Happy") == "happiness"``.

    Raises ``ValueError`` naming the spelling when it is none of :data:`EMOTIONS`.
    """
    key = str(name).strip().lower()
    if key not in _EMOTION_ALIASES:
        raise ValueError(f"not an emotion facr knows: {name!r} (expected one of {', '.join(EMOTIONS)})")
    return _EMOTION_ALIASES[key]


class Loading:
    """The bookkeeping of one loader call: issues (or strict errors) and dropped-row counts."""

    def __init__(self, fmt: str, root: str | os.PathLike, strict: bool):
        self.fmt = fmt
        self.root = Path(os.path.abspath(root))
        self.strict = strict
        self.issues: list[LoadIssue] = []
        self.dropped: Counter[str] = Counter()

    def issue(self, file: str | os.PathLike, line: int | None, message: str, *,
              image: str | os.PathLike | None = None, split: str | None = None) -> None:
        """Record a malformed row / unreadable file; with ``strict`` raise it instead. ``image``: the
        image the problem is about, if it is one; ``split``: the row's split, where known."""
        if self.strict:
            raise DataFormatError(file, message if line is None else f"line {line}: {message}")
        self.issues.append(LoadIssue(os.fspath(file), line, message,
                                     None if image is None else os.fspath(image), split))

    def drop(self, reason: str, n: int = 1) -> None:
        """Count ``n`` rows left out on purpose (not an error)."""
        self.dropped[reason] += n

    def result(self, records: list[FaceRecord]) -> LoadResult:
        return LoadResult(self.fmt, str(self.root), records, self.issues, dict(sorted(self.dropped.items())))

    def require_dir(self, *parts: str, what: str) -> Path:
        """``root/parts`` as a folder, or a :class:`DataFormatError` saying which layout was expected.

        Fatal in both modes: without it there is nothing to load.
        """
        if not self.root.is_dir():
            raise DataFormatError(self.root, "no such folder")
        path = self.root.joinpath(*parts)
        if not path.is_dir():
            raise DataFormatError(self.root, f"no {'/'.join(parts)}/ folder ({what})")
        return path

    def read_text(self, path: Path) -> str | None:
        """The text of ``path`` (UTF-8, BOM tolerated), or None after reporting why it cannot be read."""
        try:
            return path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            self.issue(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
        except OSError as exc:
            self.issue(path, None, f"cannot read: {exc.strerror or exc}")
        return None

    def check_image(self, path: Path, file: str | os.PathLike, line: int | None, verify: bool, *,
                    split: str | None = None, base: Path | None = None) -> bool:
        """True when the image at ``path`` lies inside the data root (``base``, default the folder the
        loader was given), is a file, and, with ``verify``, decodes; else report it and return False.

        The root check comes first, so a path outside it is never opened.
        """
        if not inside(path, base or self.root):
            self.issue(file, line, f"image {path} leads outside {base or self.root}"
                                   f"{_resolved_note(path)}: refused, not read", image=path, split=split)
            return False
        if not path.is_file():
            self.issue(file, line, f"image not found: {path}", image=path, split=split)
            return False
        if verify:
            problem = image_problem(path)
            if problem:
                self.issue(file, line, f"unreadable image {path}: {problem}", image=path, split=split)
                return False
        return True


def inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """True when ``path``, with ``..`` and symlinks resolved, is ``root`` or lies under it: the one
    check that keeps a dataset's annotation files from pointing facr at files outside the dataset."""
    try:
        return Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
        return False


def _resolved_note(path: Path) -> str:
    """`` (resolves to X)`` when ``..`` or a symlink hides where ``path`` leads."""
    try:
        real = Path(path).resolve()
    except (OSError, RuntimeError):
        return " (a symlink loop)"
    return "" if real == Path(os.path.abspath(path)) else f" (resolves to {real})"


def frames_in(folder: Path) -> dict[int, Path]:
    """Image files of a frame folder by frame number (the digits of the name, any zero padding)."""
    out: dict[int, Path] = {}
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return out
    for entry in entries:
        stem, suffix = os.path.splitext(entry.name)
        if suffix.lower() in IMAGE_SUFFIXES and stem.isdigit():
            out[int(stem)] = Path(entry.path)
    return out
