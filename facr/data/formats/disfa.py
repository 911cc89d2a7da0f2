"""DISFA (Denver Intensity of Spontaneous Facial Action), in its released layout.

::

    <root>/ActionUnit_Labels/<SN001>/<SN001>_au<N>.txt    one line per frame: "frame,intensity" (0-5)
    <root>/Videos_LeftCamera/LeftVideo<SN001>_comp.avi    the video the labels index (not decoded here)
    <root>/Images/<SN001>/<frame>.png|jpg                 optional: frames you extracted yourself

DISFA ships videos, not frames. When ``Images/<subject>/`` (or ``frames_dir/<subject>/``) is
there, a record's ``image`` is the file whose name is the label file's frame number (any zero
padding, same numbering as ``ActionUnit_Labels``: DISFA counts frames from 1); a labelled frame
without an image is reported. Otherwise ``image=None`` and the frame is identified by
``video`` (the subject) and ``frame``, with ``meta["video_file"]`` pointing at the left-camera
video when present.

Presence follows the common DISFA convention: an AU is present when its intensity is
``>= threshold`` (default 2, "B" on the A-E scale), so trace (A = 1) counts as absent; the
intensities are kept in ``au_intensity``. AUs with a label file for the subject are coded;
an AU whose line for a frame is malformed is reported and left uncoded (None) for that frame.
DISFA has no official split (``split=None``).
"""

from __future__ import annotations

import os
from pathlib import Path

from facr import au as au_vocab
from facr.data.formats import LOADERS
from facr.data.formats._common import Loading, frames_in
from facr.data.records import FaceRecord, LoadResult
from facr.errors import UnknownAUError

FORMAT = "disfa"

DISFA_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)
"""The 12 AUs DISFA codes (intensity 0-5 on every frame)."""

PRESENCE_THRESHOLD = 2


def load(root: str | os.PathLike, *, strict: bool = False, verify_images: bool = False,
         threshold: float = PRESENCE_THRESHOLD, frames_dir: str | os.PathLike | None = None) -> LoadResult:
    """Read DISFA's AU labels at ``root`` (see the module docstring for layout and conventions)."""
    if not 0 < threshold <= 5:
        raise ValueError(f"threshold must be in (0, 5], got {threshold}")
    loading = Loading(FORMAT, root, strict)
    labels_dir = loading.require_dir("ActionUnit_Labels", what="expected the DISFA release layout")
    frames_root = Path(frames_dir) if frames_dir is not None else loading.root / "Images"
    records: list[FaceRecord] = []
    for subject_dir in sorted(p for p in labels_dir.iterdir() if p.is_dir()):
        subject = subject_dir.name
        per_au: dict[str, dict[int, float]] = {}
        for path in sorted(subject_dir.glob("*.txt")):
            prefix, _, au_part = path.stem.rpartition("_")
            try:
                if prefix != subject:
                    raise UnknownAUError(au_part)
                au = au_vocab.canonical(au_part)
            except UnknownAUError:
                loading.issue(path, None, f"not a label file name <{subject}>_au<N>.txt")
                continue
            per_au[au] = _read_au_file(loading, path)
        if not per_au:
            loading.issue(subject_dir, None, "no <subject>_au<N>.txt label files")
            continue
        images = frames_in(frames_root / subject) if (frames_root / subject).is_dir() else None
        video_file = loading.root / "Videos_LeftCamera" / f"LeftVideo{subject}_comp.avi"
        aus = sorted(per_au, key=lambda a: int(a[2:]))
        for frame in sorted(set().union(*per_au.values())):
            intensity = {a: per_au[a].get(frame) for a in aus}
            presence = {a: None if v is None else int(v >= threshold) for a, v in intensity.items()}
            image = None
            if images is not None:
                image = images.get(frame)
                if image is None:
                    loading.issue(frames_root / subject, None, f"no image for frame {frame}",
                                  image=frames_root / subject / str(frame))
                    continue
                if not loading.check_image(image, image, None, verify_images, base=frames_root):
                    continue
            meta = {"video_file": str(video_file)} if image is None and video_file.is_file() else {}
            records.append(FaceRecord(
                image=None if image is None else str(image), dataset=FORMAT, subject=subject, video=subject,
                frame=frame, au_presence=presence, au_intensity=intensity, meta=meta,
            ))
    return loading.result(records)


def _read_au_file(loading: Loading, path: Path) -> dict[int, float]:
    text = loading.read_text(path)
    values: dict[int, float] = {}
    if text is None:
        return values
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        try:
            frame, intensity = int(cells[0]), int(cells[1])
            if len(cells) != 2:
                raise ValueError
        except (ValueError, IndexError):
            loading.issue(path, line_no, f"expected 'frame,intensity' (two integers), got {line.strip()[:40]!r}")
            continue
        if not 0 <= intensity <= 5:
            loading.issue(path, line_no, f"intensity must be 0-5, got {intensity}")
            continue
        if frame in values:
            loading.issue(path, line_no, f"frame {frame} is labelled twice")
            continue
        values[frame] = float(intensity)
    return values


LOADERS.register("disfa", load)
