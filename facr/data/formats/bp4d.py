"""BP4D-Spontaneous AU occurrence labels, in their released layout.

::

    <root>/AUCoding/AU_OCC/<F001>_<T1>.csv      header row: frame column, then AU numbers ("1,2,4,...")
                                                 rows: frame number, then 0/1 per AU, 9 = not coded
    <root>/Sequences/<F001>/<T1>/<frame>.jpg     optional: the 2D frames (name = frame number, any padding)

Subject ``F001``, video ``F001_T1``, frame the first column. A value of 9 is "not coded" (None).
The files carry a column for every AU number, most of them 9 throughout: an AU is kept for a
file only if the file codes it (0 or 1) on some frame, and columns that are not FACS main AUs
(facr's AU vocabulary) are skipped. A malformed row (wrong number of fields, a value other
than 0/1/9) is reported with its line and skipped.

Frames: when ``Sequences/<subject>/<task>/`` (or ``frames_dir/<subject>/<task>/``) exists a
record's ``image`` is the frame file and a labelled frame without one is reported; otherwise
``image=None`` (labels only). BP4D has no official split (``split=None``); the usual protocol
is a 3-fold subject split (:func:`facr.data.splits.subject_split` or your own folds).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from facr import au as au_vocab
from facr.data.formats import LOADERS
from facr.data.formats._common import Loading, frames_in
from facr.data.records import FaceRecord, LoadResult
from facr.errors import UnknownAUError

FORMAT = "bp4d"
NOT_CODED = "9"


def load(root: str | os.PathLike, *, strict: bool = False, verify_images: bool = False,
         frames_dir: str | os.PathLike | None = None) -> LoadResult:
    """Read BP4D's ``AUCoding/AU_OCC`` files at ``root`` (see the module docstring)."""
    loading = Loading(FORMAT, root, strict)
    occ_dir = loading.require_dir("AUCoding", "AU_OCC", what="expected the BP4D-Spontaneous release layout")
    frames_root = Path(frames_dir) if frames_dir is not None else loading.root / "Sequences"
    records: list[FaceRecord] = []
    for path in sorted(occ_dir.glob("*.csv")):
        subject, sep, task = path.stem.partition("_")
        if not sep or not subject or not task:
            loading.issue(path, None, "file name must be <subject>_<task>.csv (e.g. F001_T1.csv)")
            continue
        rows = _read_occ(loading, path)
        if rows is None:
            continue
        folder = frames_root / subject / task
        images = frames_in(folder) if folder.is_dir() else None
        coded = {a for _, _, values in rows for a, v in values.items() if v is not None}
        for line, frame, values in rows:
            image = None
            if images is not None:
                image = images.get(frame)
                if image is None:
                    loading.issue(path, line, f"no image for frame {frame} in {folder}", image=folder / str(frame))
                    continue
                if not loading.check_image(image, image, None, verify_images, base=frames_root):
                    continue
            records.append(FaceRecord(
                image=None if image is None else str(image), dataset=FORMAT, subject=subject,
                video=path.stem, frame=frame, au_presence={a: v for a, v in values.items() if a in coded},
            ))
    return loading.result(records)


def _read_occ(loading: Loading, path: Path):
    """``[(line, frame, {AU id: 0/1/None})]`` or None when the header is unusable."""
    text = loading.read_text(path)
    if text is None:
        return None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header or len(header) < 2:
        loading.issue(path, 1, "expected a header row: frame column, then AU numbers")
        return None
    columns: list[tuple[int, str]] = []
    for index, name in enumerate(header[1:], start=1):
        try:
            columns.append((index, au_vocab.canonical(name.strip())))
        except UnknownAUError:
            continue  # AU numbers facr's vocabulary does not have (BP4D's files list 1..99): never coded
    rows = []
    seen: set[int] = set()
    for row in reader:
        line = reader.line_num
        if not row or not any(c.strip() for c in row):
            continue
        cells = [c.strip() for c in row]
        if len(cells) != len(header):
            loading.issue(path, line, f"{len(cells)} fields, header has {len(header)}")
            continue
        try:
            frame = int(cells[0])
        except ValueError:
            loading.issue(path, line, f"frame must be an integer, got {cells[0]!r}")
            continue
        bad = next((i for i, _ in columns if cells[i] not in ("0", "1", NOT_CODED)), None)
        if bad is not None:
            loading.issue(path, line, f"AU values must be 0, 1 or 9 (not coded); column {header[bad]!r} is "
                                      f"{cells[bad]!r}")
            continue
        if frame in seen:
            loading.issue(path, line, f"frame {frame} appears twice")
            continue
        seen.add(frame)
        rows.append((line, frame, {au: None if cells[i] == NOT_CODED else int(cells[i]) for i, au in columns}))
    return rows


LOADERS.register("bp4d", load)
