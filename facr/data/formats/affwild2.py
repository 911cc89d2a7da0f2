"""Aff-Wild2 (ABAW challenges), in its released layout.

::

    <root>/annotations/EXPR_Classification_Challenge/{Train_Set,Validation_Set}/<video>.txt
        Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other      header
        4                                                                 line i+1: frame i's label (index
        -1                                                                into the header; -1 = not annotated)
    <root>/annotations/AU_Detection_Challenge/{Train_Set,Validation_Set}/<video>.txt
        AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26           header
        0,1,0,0,0,0,1,0,0,0,1,0                                           frame i: 0/1 per AU, -1 = not annotated
    <root>/cropped_aligned/<video>/<00001>.jpg                           frame i, 1-based, five digits

Later ABAW releases name the expression folder ``EXPR_Recognition_Challenge``; both are read,
and ``annotations/`` may be left out (the challenge folders directly under ``<root>``).

One record per annotated frame of a video in a set: the expression and AU labels of the same
(set, video, frame) are merged. ``Train_Set`` -> split ``train``, ``Validation_Set`` -> ``val``
(Aff-Wild2's test labels are not public). The subject is the video (Aff-Wild2 has no identity
labels; ``_left``/``_right`` videos are two people in one clip).

"Other" is not one of facr's emotions and has no AU composition, so, as in the FACR paper, a
frame labelled Other gets ``emotion=None`` with ``meta["expression"] = "other"``; it is kept only
if it has AU labels, else dropped and counted (``dropped["expression Other, no AU label"]``).
Frames annotated in neither file (-1 everywhere) are dropped and counted.

Frames: when ``cropped_aligned/`` is absent every record has ``image=None`` (annotations only).
When it is present, a video without a frame folder is reported; a frame without an image is
dropped and counted (``dropped["no face image"]``), because the release leaves out the frames
where no face was found.
"""

from __future__ import annotations

import os
from pathlib import Path

from facr import au as au_vocab
from facr.data.formats import LOADERS
from facr.data.formats._common import Loading, canonical_emotion, frames_in
from facr.data.records import FaceRecord, LoadResult
from facr.errors import DataFormatError, UnknownAUError

FORMAT = "affwild2"

EXPR_DIRS = ("EXPR_Classification_Challenge", "EXPR_Recognition_Challenge")
AU_DIR = "AU_Detection_Challenge"
SETS = {"Train_Set": "train", "Validation_Set": "val"}
OTHER = "other"


def _annotation_root(loading: Loading) -> Path:
    if not loading.root.is_dir():
        raise DataFormatError(loading.root, "no such folder")
    for base in (loading.root / "annotations", loading.root):
        if any((base / d).is_dir() for d in (*EXPR_DIRS, AU_DIR)):
            return base
    raise DataFormatError(loading.root, f"no annotations/{EXPR_DIRS[0]}/ or annotations/{AU_DIR}/ folder "
                                        "(expected the Aff-Wild2 release layout)")


def load(root: str | os.PathLike, *, strict: bool = False, verify_images: bool = False) -> LoadResult:
    """Read Aff-Wild2's expression and AU annotations at ``root`` (see the module docstring)."""
    loading = Loading(FORMAT, root, strict)
    base = _annotation_root(loading)
    # (split, video) -> frame -> {"emotion": ..., "expression": ..., "aus": {...}}
    frames: dict[tuple[str, str], dict[int, dict]] = {}
    for expr_dir in EXPR_DIRS:
        for set_name, split in SETS.items():
            for path in sorted((base / expr_dir / set_name).glob("*.txt")):
                _read_expr(loading, path, frames.setdefault((split, path.stem), {}))
    for set_name, split in SETS.items():
        for path in sorted((base / AU_DIR / set_name).glob("*.txt")):
            _read_au(loading, path, frames.setdefault((split, path.stem), {}))

    crops = loading.root / "cropped_aligned"
    records: list[FaceRecord] = []
    for (split, video), labels in sorted(frames.items()):
        images = None
        if crops.is_dir():
            if not (crops / video).is_dir():
                loading.issue(crops, None, f"no frame folder for video {video!r} (cropped_aligned/{video}/)")
                continue
            images = frames_in(crops / video)
        for frame, label in sorted(labels.items()):
            emotion, aus = label.get("emotion"), label.get("aus", {})
            has_au = any(v is not None for v in aus.values())
            if emotion is None and not has_au:
                reason = "expression Other, no AU label" if label.get("expression") == OTHER else "not annotated"
                loading.drop(reason)
                continue
            image = None
            if images is not None:
                image = images.get(frame)
                if image is None:
                    loading.drop("no face image")
                    continue
                if not loading.check_image(image, image, None, verify_images, split=split, base=crops):
                    continue
            meta = {"expression": label["expression"]} if "expression" in label else {}
            records.append(FaceRecord(
                image=None if image is None else str(image), dataset=FORMAT, subject=video, split=split,
                video=video, frame=frame, emotion=emotion, au_presence=aus, meta=meta,
            ))
    return loading.result(records)


def _read_expr(loading: Loading, path: Path, frames: dict[int, dict]) -> None:
    text = loading.read_text(path)
    if text is None:
        return
    lines = text.splitlines()
    if not lines:
        loading.issue(path, 1, "empty file (expected a header of expression names)")
        return
    try:
        names = [n.strip() for n in lines[0].split(",")]
        classes = [OTHER if n.lower() == OTHER else canonical_emotion(n) for n in names]
    except ValueError as exc:
        loading.issue(path, 1, f"header: {exc}")
        return
    for frame, line in enumerate(lines[1:], start=1):
        cell = line.strip()
        if cell == "" and frame == len(lines) - 1:
            continue  # a trailing blank line
        try:
            index = int(cell)
        except ValueError:
            loading.issue(path, frame + 1, f"expected an integer label, got {cell[:40]!r}")
            continue
        if index != -1 and not 0 <= index < len(classes):
            loading.issue(path, frame + 1,
                          f"label {index} is not -1 or an index into the header (0-{len(classes) - 1})")
            continue
        entry = frames.setdefault(frame, {})
        if index == -1:
            continue
        entry["expression"] = classes[index]
        entry["emotion"] = None if classes[index] == OTHER else classes[index]


def _read_au(loading: Loading, path: Path, frames: dict[int, dict]) -> None:
    text = loading.read_text(path)
    if text is None:
        return
    lines = text.splitlines()
    if not lines:
        loading.issue(path, 1, "empty file (expected a header of AU names)")
        return
    try:
        aus = [au_vocab.canonical(n.strip()) for n in lines[0].split(",")]
    except UnknownAUError as exc:
        loading.issue(path, 1, f"header: {exc.message}")
        return
    for frame, line in enumerate(lines[1:], start=1):
        if line.strip() == "" and frame == len(lines) - 1:
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(aus) or any(c not in ("0", "1", "-1") for c in cells):
            loading.issue(path, frame + 1, f"expected {len(aus)} values of 0, 1 or -1, got {line.strip()[:60]!r}")
            continue
        values = {a: (None if c == "-1" else int(c)) for a, c in zip(aus, cells)}
        entry = frames.setdefault(frame, {})
        if any(v is not None for v in values.values()):
            entry["aus"] = values


LOADERS.register("affwild2", load)
