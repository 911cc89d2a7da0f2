"""AffectNet (manually annotated part), in its released layout, and its join with FABA-Instruct.

::

    <root>/Manually_Annotated_file_lists/training.csv      split train
    <root>/Manually_Annotated_file_lists/validation.csv    split val
    <root>/Manually_Annotated/Manually_Annotated_Images/<subDirectory_filePath>

CSV columns: ``subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,
expression,valence,arousal`` (a file without the header row is read in this order too).
``expression``: 0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger, 7 Contempt
map to facr's emotions; 8 None, 9 Uncertain and 10 No-Face are dropped and counted in
``dropped``. ``meta`` holds ``face_box`` ``[x, y, width, height]`` (see :func:`crop_face`),
``landmarks`` (a ``68x2`` float32 array from ``x;y;x;y;...``, or None when the cell is empty),
``valence`` and ``arousal`` (None where AffectNet writes -2, "not rated"). AffectNet has no
identity labels, so each image is its own subject (``subDirectory_filePath`` without extension).

``affectnet+faba`` (:func:`load_with_faba`) keeps the AffectNet images that FABA-Instruct gives
AU labels for, with AffectNet's emotion and split and FABA's AUs: see its docstring.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

from facr.data.formats import LOADERS
from facr.data.formats import faba as faba_format
from facr.data.formats._common import Loading
from facr.data.images import open_image
from facr.data.records import FaceRecord, LoadResult
from facr.errors import DataFormatError

FORMAT = "affectnet"

COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
           "expression", "valence", "arousal")
EXPRESSIONS: dict[int, str] = {0: "neutral", 1: "happiness", 2: "sadness", 3: "surprise", 4: "fear",
                               5: "disgust", 6: "anger", 7: "contempt"}
DROPPED_EXPRESSIONS: dict[int, str] = {8: "None", 9: "Uncertain", 10: "No-Face"}
CSV_FILES = {"training.csv": "train", "validation.csv": "val"}
IMAGE_DIR = ("Manually_Annotated", "Manually_Annotated_Images")
NOT_RATED = -2.0  # AffectNet's valence/arousal for faces it did not rate


def load(root: str | os.PathLike, *, strict: bool = False, verify_images: bool = False) -> LoadResult:
    """Read AffectNet's manually annotated images at ``root`` (see the module docstring).

    A malformed CSV row, a missing image, a path that leaves ``root`` (``/etc/passwd``,
    ``../../x.png``) or, with ``verify_images``, an image that does not decode is reported with its
    file and line and skipped; ``strict`` raises instead.
    """
    loading = Loading(FORMAT, root, strict)
    return loading.result(_read(loading, verify_images))


def _read(loading: Loading, verify_images: bool) -> list[FaceRecord]:
    lists = loading.require_dir("Manually_Annotated_file_lists", what="expected the AffectNet release layout")
    images = loading.root.joinpath(*IMAGE_DIR)
    files = [(lists / name, split) for name, split in CSV_FILES.items() if (lists / name).is_file()]
    if not files:
        raise DataFormatError(lists, "neither training.csv nor validation.csv is there")
    records: list[FaceRecord] = []
    for path, split in files:
        try:
            # Streamed, not read whole: training.csv is a few hundred MB of landmark strings.
            with path.open(encoding="utf-8-sig", newline="") as handle:
                records.extend(_rows(loading, path, csv.reader(handle), split, images, verify_images))
        except UnicodeDecodeError as exc:
            loading.issue(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
        except OSError as exc:
            loading.issue(path, None, f"cannot read: {exc.strerror or exc}")
        except csv.Error as exc:
            loading.issue(path, None, f"not a readable CSV: {exc}")
    return records


def _rows(loading: Loading, path: Path, reader, split: str, images: Path, verify: bool):
    for row in reader:
        line = reader.line_num
        if line == 1 and row and row[0].strip() == COLUMNS[0]:
            if [c.strip() for c in row] != list(COLUMNS):
                loading.issue(path, 1, f"header must be {','.join(COLUMNS)}")
                return
            continue
        if not row:
            continue
        record = _row(loading, path, line, row, split, images, verify)
        if record is not None:
            yield record


def _row(loading: Loading, path: Path, line: int, row: list[str], split: str, images: Path, verify: bool):
    if len(row) != len(COLUMNS):
        loading.issue(path, line, f"{len(row)} fields, expected {len(COLUMNS)} ({','.join(COLUMNS)})")
        return None
    rel, x, y, w, h, landmarks_cell, expression_cell, valence_cell, arousal_cell = (c.strip() for c in row)
    try:
        expression = int(expression_cell)
    except ValueError:
        loading.issue(path, line, f"expression must be an integer 0-10, got {expression_cell!r}")
        return None
    if expression in DROPPED_EXPRESSIONS:
        loading.drop(f"expression {expression} ({DROPPED_EXPRESSIONS[expression]})")
        return None
    if expression not in EXPRESSIONS:
        loading.issue(path, line, f"expression must be an integer 0-10, got {expression}")
        return None
    try:
        box = [_integer(v) for v in (x, y, w, h)]
        if box[2] <= 0 or box[3] <= 0:
            raise ValueError(f"face_width and face_height must be > 0, got {box[2]} and {box[3]}")
        landmarks = _landmarks(landmarks_cell)
        valence, arousal = _rating(valence_cell, "valence"), _rating(arousal_cell, "arousal")
    except ValueError as exc:
        loading.issue(path, line, str(exc))
        return None
    image = images / rel
    if not loading.check_image(image, path, line, verify, split=split, base=images):
        return None
    return FaceRecord(
        image=str(image), dataset=FORMAT, subject=os.path.splitext(rel)[0], split=split,
        emotion=EXPRESSIONS[expression],
        meta={"face_box": box, "landmarks": landmarks, "valence": valence, "arousal": arousal,
              "expression_code": expression, "file": rel},
    )


def _integer(cell: str) -> int:
    value = float(cell)  # "12" and "12.0" both occur in re-saved copies
    if not value.is_integer():
        raise ValueError(f"face box values must be whole pixels, got {cell!r}")
    return int(value)


def _landmarks(cell: str) -> np.ndarray | None:
    if not cell:
        return None
    try:
        values = np.array([float(v) for v in cell.split(";") if v.strip()], dtype=np.float32)
    except ValueError:
        raise ValueError(f"facial_landmarks must be numbers 'x;y;x;y;...', got {cell[:40]!r}") from None
    if values.size != 136:
        raise ValueError(f"facial_landmarks must hold 68 points (136 numbers), got {values.size} numbers")
    return values.reshape(68, 2)


def _rating(cell: str, name: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {cell!r}") from None
    if value == NOT_RATED:
        return None
    if not (math.isfinite(value) and -1.0 <= value <= 1.0):
        raise ValueError(f"{name} must be in [-1, 1] (or -2, not rated), got {value}")
    return value


def crop_face(record: FaceRecord, margin: float = 0.0):
    """The face of an AffectNet record as a PIL image: ``meta["face_box"]`` grown by ``margin``.

    ``margin`` is a fraction of the box size added on every side (0.1 = 10 %); the box is
    clipped to the image. Raises ``ValueError`` for a record without a face box.
    """
    box = record.meta.get("face_box")
    if box is None:
        raise ValueError(f"record {record.subject!r} has no meta['face_box']")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    x, y, w, h = box
    dx, dy = round(w * margin), round(h * margin)
    im = open_image(record.image)
    left, top = max(0, x - dx), max(0, y - dy)
    right, bottom = min(im.width, x + w + dx), min(im.height, y + h + dy)
    return im.crop((left, top, right, bottom))


def load_with_faba(root: str | os.PathLike, *, strict: bool = False, verify_images: bool = False,
                   faba_root: str | os.PathLike | None = None, keep_unmatched: bool = False) -> LoadResult:
    """AffectNet joined with FABA-Instruct's AU labels: format ``affectnet+faba``.

    FABA-Instruct is read from ``faba_root``, by default ``<root>/FABAInstruct`` (the folder as
    EmoLA ships it, holding ``train/`` and ``eval/``; see :mod:`facr.data.formats.faba`).
    FABA's images are AffectNet images: an item ``id`` such as
    ``AffectNet/AffectNet_v2/1194/<hash>`` is matched to the AffectNet row whose
    ``subDirectory_filePath`` is ``1194/<hash>.<ext>`` (its last two path parts, without the
    extension). A matched record keeps AffectNet's image, emotion, split and meta, and takes
    FABA's ``au_presence`` (``meta["au_source"]``: ``label`` or ``gpt4v-text``, plus
    ``faba_id`` and ``faba_split``).

    By default only matched images are kept: AffectNet rows without a FABA AU item are counted
    in ``dropped["no FABA AU item"]``; ``keep_unmatched=True`` keeps them with no AU labels.
    FABA AU items that match no kept AffectNet row are counted by reason.
    """
    loading = Loading("affectnet+faba", root, strict)
    records = _read(loading, verify_images)
    if faba_root is None and not (loading.root / "FABAInstruct").is_dir():
        raise DataFormatError(loading.root, "no FABAInstruct/ folder (affectnet+faba reads the FABA-Instruct "
                                            "annotations from <root>/FABAInstruct unless given faba_root)")
    faba_dir = faba_format.find_root(faba_root if faba_root is not None else loading.root / "FABAInstruct")
    by_key: dict[str, faba_format.FabaItem] = {}
    for item in faba_format.read_items(loading, faba_dir).values():
        if item.au_presence is None:
            continue  # an emotion-only item: AffectNet has the emotion already
        if (item.source or "").lower() != "affectnet":
            loading.drop(f"FABA item from {item.source or 'unknown source'}")
            continue
        key = "/".join(item.id.replace("\\", "/").split("/")[-2:])
        if key in by_key:
            loading.drop("FABA item repeated in another split")
            continue
        by_key[key] = item
    joined: list[FaceRecord] = []
    for record in records:
        item = by_key.pop(record.subject, None)
        if item is None:
            if keep_unmatched:
                joined.append(record)
            else:
                loading.drop("no FABA AU item")
            continue
        record.au_presence = dict(item.au_presence)
        record.dataset = "affectnet+faba"
        record.meta.update(au_source=item.au_source, faba_id=item.id, faba_split=item.split)
        joined.append(record)
    if by_key:
        loading.drop("FABA item not among the kept AffectNet rows", len(by_key))
    return loading.result(joined)


LOADERS.register("affectnet", load)
LOADERS.register("affectnet+faba", load_with_faba)
