"""RAF-DB (Real-world Affective Faces, basic emotions), in its released layout.

::

    <root>/basic/EmoLabel/list_patition_label.txt     (sic) one line per image: "train_00001.jpg 5"
    <root>/basic/Image/aligned/train_00001_aligned.jpg  100x100 aligned faces (``images="aligned"``, default)
    <root>/basic/Image/original/train_00001.jpg         the original pictures (``images="original"``)

``<root>`` may also be the ``basic/`` folder itself (``<root>/EmoLabel/list_patition_label.txt``):
the loader reads whichever of the two list files exists, ``basic/`` first.

Labels: 1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral map to facr's
emotions. The split is the name's prefix: ``train_`` -> ``train``, ``test_`` -> ``test``; RAF-DB
has no validation split (cut one from ``train`` if a run needs it). RAF-DB has no identity or AU
labels, so each image is its own subject (the file stem, ``train_00001``) and ``au_presence`` is
empty. ``meta`` holds ``file`` (the name as listed) and ``label_code`` (RAF-DB's 1-7).

A line with the wrong number of fields, a label other than 1-7, a name that does not start with
``train_``/``test_``, a name listed twice, or a missing image (or, with ``verify_images``, one that
does not decode) is reported with its line and skipped. The compound-emotion part
(``compound/``) is not read.
"""

from __future__ import annotations

import os
from pathlib import Path

from facr.data.formats import LOADERS
from facr.data.formats._common import Loading
from facr.data.records import FaceRecord, LoadResult
from facr.errors import DataFormatError

FORMAT = "rafdb"

LIST_FILE = ("EmoLabel", "list_patition_label.txt")  # RAF-DB's spelling
LABELS: dict[int, str] = {1: "surprise", 2: "fear", 3: "disgust", 4: "happiness", 5: "sadness", 6: "anger",
                          7: "neutral"}
PREFIXES = {"train_": "train", "test_": "test"}
IMAGE_KINDS = ("aligned", "original")
_LABEL_HELP = "1 Surprise, 2 Fear, 3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral"


def find_base(loading: Loading) -> Path:
    """The folder that holds ``EmoLabel/`` and ``Image/``: ``<root>/basic`` or ``<root>`` itself."""
    if not loading.root.is_dir():
        raise DataFormatError(loading.root, "no such folder")
    for base in (loading.root / "basic", loading.root):
        if base.joinpath(*LIST_FILE).is_file():
            return base
    raise DataFormatError(loading.root, "no basic/EmoLabel/list_patition_label.txt or "
                                        "EmoLabel/list_patition_label.txt (expected the RAF-DB release layout)")


def load(root: str | os.PathLike, *, strict: bool = False, images: str = "aligned",
         verify_images: bool = False) -> LoadResult:
    """Read RAF-DB's basic-emotion list at ``root`` (see the module docstring).

    ``images``: ``"aligned"`` (the 100x100 aligned faces, ``<stem>_aligned.jpg``) or
    ``"original"`` (the pictures as collected). The chosen ``Image/<images>/`` folder must exist.
    """
    if images not in IMAGE_KINDS:
        raise ValueError(f"images must be one of {', '.join(IMAGE_KINDS)}, got {images!r}")
    loading = Loading(FORMAT, root, strict)
    base = find_base(loading)
    image_dir = base / "Image" / images
    if not image_dir.is_dir():
        raise DataFormatError(base, f"no Image/{images}/ folder (images={images!r})")
    path = base.joinpath(*LIST_FILE)
    text = loading.read_text(path)
    if text is None:
        return loading.result([])
    records: list[FaceRecord] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(text.splitlines(), start=1):
        record = _row(loading, path, line, row, image_dir, images, seen, verify_images)
        if record is not None:
            records.append(record)
    return loading.result(records)


def _row(loading: Loading, path: Path, line: int, row: str, image_dir: Path, images: str,
         seen: dict[str, int], verify: bool) -> FaceRecord | None:
    fields = row.split()
    if not fields:
        return None
    if len(fields) != 2:
        loading.issue(path, line, f"{len(fields)} fields, expected 2 (<image name> <label 1-7>)")
        return None
    name, label_cell = fields
    split = next((s for prefix, s in PREFIXES.items() if name.startswith(prefix)), None)
    # A name with a folder part would reach outside Image/<kind>/.
    if split is None or "/" in name or "\\" in name:
        loading.issue(path, line, f"image name must be a file name starting with train_ or test_, got {name!r}")
        return None
    try:
        code = int(label_cell)
    except ValueError:
        code = None
    if code not in LABELS:
        loading.issue(path, line, f"label must be 1-7 ({_LABEL_HELP}), got {label_cell!r}")
        return None
    if name in seen:
        loading.issue(path, line, f"{name} is listed twice (first on line {seen[name]})")
        return None
    seen[name] = line
    stem, suffix = os.path.splitext(name)
    image = image_dir / (f"{stem}_aligned{suffix}" if images == "aligned" else name)
    if not loading.check_image(image, path, line, verify, split=split, base=image_dir):
        return None
    return FaceRecord(image=str(image), dataset=FORMAT, subject=stem, split=split, emotion=LABELS[code],
                      meta={"file": name, "label_code": code})


LOADERS.register("rafdb", load)
