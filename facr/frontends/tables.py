"""AU tables other tools write, read as :class:`~facr.frontends.FaceReading` objects: one row, one face.

A person who already runs OpenFace, py-feat or LibreFace has AU values per frame; this module turns
each row into z over a chosen AU order (the AUs the table lacks marked *not coded*), keeping the
frame and face ids, the box and landmarks where the table has them, and the row's own columns
(``extra``). Every AU column name goes through the one AU parser (:func:`facr.au.parse`).

The formats (:data:`FORMATS`), what each tool writes, and its scale
-------------------------------------------------------------------
``openface`` — OpenFace 2.2 ``FeatureExtraction`` / ``FaceLandmarkImg`` CSV. Column names carry a
leading space after each comma (``frame, face_id, timestamp, confidence, success, ...``); they are
stripped. ``AUxx_r`` is an intensity regressed on the FACS 0–5 scale (17 AUs: 1, 2, 4, 5, 6, 7, 9,
10, 12, 14, 15, 17, 20, 23, 25, 26, 45); ``AUxx_c`` is presence 0/1 from a separate classifier
(the same AUs and AU28, which has no ``_r``). Rows with ``success`` 0 (OpenFace lost the face) are
skipped and counted. ``x_0..x_67`` / ``y_0..y_67`` are the 68 landmarks in pixels.

``openface3`` — OpenFace 3.0 (CMU-MultiComp-Lab/OpenFace-3.0, the ``openface`` command of the
``openface-test`` package). Read in its source (``openface/demo.py``): ``openface detect`` /
``detect-video`` write a comma-separated ``face_analysis_<name>.csv`` with pandas (its README says
TSV; the code writes CSV) with the columns ``timestamp, image_path`` (video: ``video_path,
frame_index``), ``face_id, face_detection`` (``[x1, y1, x2, y2, score, 10 landmark coordinates]``),
``landmarks`` (98 STAR points ``[[x, y], ...]``), ``emotion`` (an index into AffectNet's 8 classes),
``gaze_yaw, gaze_pitch`` and ``action_units``: one cell holding the multitask model's 8 AU outputs
as a nested list ``[[a1, ..., a8]]``. The 8 AUs are DISFA's AU1, AU2, AU4, AU6, AU9, AU12, AU25, AU26
in that order (the order its ``demo2.py`` labels them). The outputs are not intensities: the AU head
is a cosine score in [−1, 1] trained with binary cross-entropy against DISFA occurrence (intensity
≥ 2) and thresholded at 0.5 in its evaluation, i.e. read as a probability. A frame without a face
is a row with empty ``face_id`` and ``action_units``: skipped and counted.

``pyfeat`` — py-feat's ``Fex`` CSV (``Detector.detect_image`` / ``detect_video`` then
``to_csv``): ``frame, FaceRectX, FaceRectY, FaceRectWidth, FaceRectHeight, FaceScore``, the 68
landmarks ``x_0..x_67, y_0..y_67``, ``Pitch, Roll, Yaw``, then ``AU01 ... AU43`` (20 AUs with the
default ``xgb`` model: 1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 17, 20, 23, 24, 25, 26, 28, 43;
other models write other sets, every ``AUxx`` column is read), the emotion probabilities and
``input``. AU values are in [0, 1]: the ``xgb`` model's probability of the AU, or 0/1 with ``svm``.
A frame where py-feat found no face is a row of empty / NaN values: skipped and counted. The face id is
py-feat's ``Identity``, else ``face_id`` (the tracked id in a ``results.csv`` of ``facr explain``).

``libreface`` — LibreFace (ihp-lab/LibreFace, the ``libreface`` package, read in its source:
``save_facial_attributes_video`` / ``_image``): ``frame_idx, frame_time_in_ms`` (video), head pose
``pitch, yaw, roll``, MediaPipe landmarks ``lm_mp_<i>_x/y/z`` (normalised, not pixels: kept in
``extra`` only), ``au_<n>`` = detection 0/1 (a BP4D-trained sigmoid thresholded at 0.5: AU1, 2, 4,
6, 7, 10, 12, 14, 15, 17, 23, 24), ``au_<n>_intensity`` = intensity 0–5 (a DISFA-trained sigmoid
× 5: AU1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26), ``facial_expression`` and ``gaze_yaw,
gaze_pitch``. One face per frame.

From a tool's value to z (0.5 is facr's presence threshold, as everywhere)
--------------------------------------------------------------------------
* **Intensity r (0–5) and/or presence p (0/1)** — OpenFace 2.2, LibreFace, and the benchmark's SCM
  (:func:`intensity_to_z`): ``z = 0.55 + 0.09·r`` when the AU is present, ``z = 0.09·r`` when it
  is absent, so z ∈ [0.55, 1] exactly when present and z ∈ [0, 0.45] when absent, and within each
  side z grows with the intensity. The presence column decides the side when there is one (OpenFace:
  ``AU04_c``; the intensity only places z within it); with an intensity alone the AU is present at
  r ≥ 1 (FACS level A); with a presence alone r is taken as 2.5, the middle of the scale (z = 0.775
  or 0).
* **A probability q in [0, 1]** — py-feat, OpenFace 3.0 (:func:`probability_to_z`): ``z = q``
  (clipped to [0, 1]: OpenFace 3.0's cosine scores can be slightly negative).

Bad tables (not a CSV, no AU column, an AU column that is not a FACS main AU, a value that is not a
number or lies off the tool's scale, a NaN among a face's AU values, a row of the wrong length) are one
:class:`~facr.errors.DataFormatError`: ``facr: <file>: line N, column 'AU04_r': <problem>``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from facr import au as au_vocab
from facr.errors import DataFormatError, UnknownAUError
from facr.frontends import FaceReading

__all__ = ["FORMATS", "FORMAT_AUS", "OPENFACE3_AUS", "SCALES", "TableReadings", "detect_format",
           "intensity_to_z", "probability_to_z", "read_au_table"]

FORMATS: tuple[str, ...] = ("openface", "openface3", "pyfeat", "libreface")
"""The table formats :func:`read_au_table` reads (``--format`` of the commands that read tables)."""

OPENFACE3_AUS: tuple[str, ...] = ("AU1", "AU2", "AU4", "AU6", "AU9", "AU12", "AU25", "AU26")
"""The order of the 8 values in an OpenFace 3.0 ``action_units`` cell."""

FORMAT_AUS: dict[str, tuple[str, ...]] = {
    "openface": tuple(f"AU{n}" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 28, 45)),
    "openface3": OPENFACE3_AUS,
    "pyfeat": tuple(f"AU{n}" for n in (1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 17, 20, 23, 24, 25, 26, 28, 43)),
    "libreface": tuple(f"AU{n}" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26)),
}
"""The AUs each tool codes (py-feat: its default ``xgb`` model). A table is read for the AU columns
it has; these lists say which AUs a head for that tool is trained on (:mod:`facr.frontends.head`)."""

SCALES: dict[str, str] = {
    "openface": "AUxx_r intensity 0-5 and AUxx_c presence 0/1 -> z = 0.55 + 0.09 r if AUxx_c = 1 else 0.09 r",
    "openface3": "action_units: 8 scores (AU1, 2, 4, 6, 9, 12, 25, 26) read as probabilities -> z = clip(q, 0, 1)",
    "pyfeat": "AUxx probability in [0, 1] (xgb) or 0/1 (svm) -> z = q",
    "libreface": "au_n presence 0/1 and au_n_intensity 0-5 -> z = 0.55 + 0.09 r if present else 0.09 r",
}
"""One line per format: the tool's scale and its z (the module docstring says why)."""

PRESENT_FLOOR = 0.55  # z of a present AU at intensity 0: a 0.05 margin above the 0.5 threshold
STEP = 0.09  # z per intensity step: 0-5 spans 0.45 on each side of the threshold
INTENSITY_PRESENT = 1.0  # an intensity alone says "present" from FACS level A up
MID_INTENSITY = 2.5  # the intensity taken for a presence without one

# Where a table's numbers may lie (a value off its tool's scale is an error, not clipped silently).
_INTENSITY_RANGE = (0.0, 5.0)
_PROBABILITY_RANGE = {"pyfeat": (0.0, 1.0), "openface3": (-1.0, 1.0)}
_TOLERANCE = 1e-3  # the tools round (LibreFace to 3 decimals, pandas to 17 digits)
MAX_CELL_CHARS = 1_000_000  # csv's own field limit is 128 KB; OpenFace 3.0's landmarks cells are ~3 KB


def intensity_to_z(intensity=None, presence=None) -> np.ndarray:
    """z from a FACS intensity r ∈ [0, 5] and / or a presence p ∈ {0, 1} (None or NaN: not given).

    ``z = 0.55 + 0.09·r`` when present, ``0.09·r`` when absent; presence not given: present when
    r ≥ 1; intensity not given: r = 2.5·p. So z ≥ 0.5 exactly when the AU is present.

    >>> intensity_to_z([0, 1, 5])
    array([0.  , 0.64, 1.  ], dtype=float32)
    >>> intensity_to_z([0.2, 3.0], presence=[1, 0])
    array([0.568, 0.27 ], dtype=float32)
    """
    r = np.asarray(np.nan if intensity is None else intensity, dtype=np.float64)
    p = np.asarray(np.nan if presence is None else presence, dtype=np.float64)
    r, p = np.broadcast_arrays(r, p)
    present = np.where(np.isnan(p), r >= INTENSITY_PRESENT, p > 0.5)
    level = np.clip(np.where(np.isnan(r), MID_INTENSITY * present, r), 0.0, 5.0)
    return np.where(present, PRESENT_FLOOR + STEP * level, STEP * level).astype(np.float32)


def probability_to_z(q) -> np.ndarray:
    """z from a detector's probability of the AU (py-feat, OpenFace 3.0): ``clip(q, 0, 1)``."""
    return np.clip(np.asarray(q, dtype=np.float64), 0.0, 1.0).astype(np.float32)


class TableReadings(list):
    """The faces of one table, a ``list`` of :class:`~facr.frontends.FaceReading`, with ``format``,
    ``source`` (the file), ``table_aus`` (the AUs the table codes, canonical) and ``skipped`` (rows
    left out as frames without a face: OpenFace ``success`` 0, py-feat / OpenFace 3.0 empty rows)."""

    def __init__(self, readings: Iterable[FaceReading], *, format: str, source: str, table_aus: list[str],
                 skipped: int = 0):
        super().__init__(readings)
        self.format = format
        self.source = source
        self.table_aus = table_aus
        self.skipped = skipped


# ------------------------------------------------------------------------------- columns
_OPENFACE_AU = re.compile(r"^AU\d+_[rc]$", re.IGNORECASE)
_LIBREFACE_AU = re.compile(r"^au_\d+(?:_intensity)?$")
_PYFEAT_AU = re.compile(r"^AU\d+$", re.IGNORECASE)
_PYFEAT_MARKS = ("FaceRectX", "FaceScore")


@dataclass
class _Columns:
    """Where a format keeps each AU's numbers in a header (indices), and its ids."""

    presence: dict[str, int] = field(default_factory=dict)
    intensity: dict[str, int] = field(default_factory=dict)
    probability: dict[str, int] = field(default_factory=dict)
    frame: int | None = None
    face: int | None = None
    success: int | None = None
    au_list: int | None = None  # OpenFace 3.0's one action_units cell

    @property
    def aus(self) -> list[str]:
        if self.au_list is not None:
            return list(OPENFACE3_AUS)
        return au_vocab.sort_aus({*self.presence, *self.intensity, *self.probability})


def detect_format(header: Sequence[str]) -> str | None:
    """The format a table's header (names stripped) is in, or None: ``action_units`` → openface3,
    ``AUxx_r`` / ``AUxx_c`` → openface, ``au_n`` / ``au_n_intensity`` → libreface, ``AUxx`` beside
    py-feat's ``FaceRectX`` / ``FaceScore`` → pyfeat."""
    names = set(header)
    if "action_units" in names:
        return "openface3"
    if any(_OPENFACE_AU.match(h) for h in header):
        return "openface"
    if any(_LIBREFACE_AU.match(h) for h in header):
        return "libreface"
    if any(_PYFEAT_AU.match(h) for h in header) and names & set(_PYFEAT_MARKS):
        return "pyfeat"
    return None


def _au_of(path: Path, name: str) -> str:
    """The canonical AU a column names, through the one parser; a column shaped like an AU that is
    not a FACS main AU (``AU3_r``) is an error."""
    try:
        return au_vocab.canonical(name)
    except UnknownAUError as exc:
        raise DataFormatError(path, f"column {name!r}: {exc.message}") from None


def _index(header: list[str], *names: str) -> int | None:
    return next((header.index(n) for n in names if n in header), None)


def _columns(fmt: str, header: list[str], path: Path) -> _Columns:
    """The AU and id columns of ``header`` in format ``fmt``; no AU column is an error."""
    cols = _Columns()
    if fmt == "openface3":
        cols.au_list = _index(header, "action_units")
        cols.frame, cols.face = _index(header, "frame_index"), _index(header, "face_id")
    for i, name in enumerate(header):
        if fmt == "openface" and _OPENFACE_AU.match(name):
            role = cols.presence if name.lower().endswith("_c") else cols.intensity
        elif fmt == "libreface" and _LIBREFACE_AU.match(name):
            role = cols.intensity if name.endswith("_intensity") else cols.presence
        elif fmt == "pyfeat" and _PYFEAT_AU.match(name):
            role = cols.probability
        else:
            continue
        au = _au_of(path, name)
        if au in role:
            raise DataFormatError(path, f"columns {header[role[au]]!r} and {name!r} both name {au}")
        role[au] = i
    if fmt == "openface":
        cols.frame, cols.face, cols.success = _index(header, "frame"), _index(header, "face_id", "face"), \
            _index(header, "success")
    elif fmt == "pyfeat":
        # py-feat's own Identity, else the face_id of a table `facr explain` wrote (its results.csv)
        cols.frame, cols.face = _index(header, "frame"), _index(header, "Identity", "identity", "face_id")
    elif fmt == "libreface":
        cols.frame = _index(header, "frame_idx")
    if cols.au_list is None and not (cols.presence or cols.intensity or cols.probability):
        want = {"openface": "AUxx_r / AUxx_c", "openface3": "action_units", "pyfeat": "AUxx",
                "libreface": "au_n / au_n_intensity"}[fmt]
        raise DataFormatError(path, f"no {fmt} AU column ({want}) among the columns: {_show(header)}")
    return cols


def _show(header: list[str], n: int = 8) -> str:
    return ", ".join(header[:n]) + (f", ... ({len(header)} columns)" if len(header) > n else "")


# ------------------------------------------------------------------------------- rows
def _rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of every row of a CSV, the header first; cells stripped (OpenFace writes
    ", " between columns). Every problem reading it is a :class:`DataFormatError` naming the line."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except IsADirectoryError:
        raise DataFormatError(path, "is a directory, expected an AU table (CSV)") from None
    except OSError as exc:
        raise DataFormatError(path, f"cannot read: {exc.strerror or exc}") from None
    previous = csv.field_size_limit()
    csv.field_size_limit(MAX_CELL_CHARS)
    try:
        with handle:
            reader = csv.reader(handle)
            try:
                for row in reader:
                    yield reader.line_num, [c.strip() for c in row]
            except csv.Error as exc:
                raise DataFormatError(path, f"not a CSV table (line {reader.line_num + 1}: {exc})") from None
            except UnicodeDecodeError as exc:
                raise DataFormatError(path, f"not a CSV table: not UTF-8 text ({exc.reason}); save it as UTF-8 "
                                            "CSV") from None
    finally:
        csv.field_size_limit(previous)


def _number(path: Path, line: int, column: str, cell: str) -> float:
    """A cell as a float (NaN when empty or ``nan``); text that is no number is an error."""
    if cell == "" or cell.lower() in ("nan", "na", "none"):
        return math.nan
    try:
        value = float(cell)
    except ValueError:
        raise DataFormatError(path, f"line {line}, column {column!r}: not a number: {cell[:40]!r}") from None
    if math.isinf(value):
        raise DataFormatError(path, f"line {line}, column {column!r}: not a finite number: {cell!r}")
    return value


def _list_cell(path: Path, line: int, column: str, cell: str) -> np.ndarray | None:
    """A cell holding a (nested) list of numbers, as pandas writes one; None when empty."""
    if cell == "" or cell.lower() in ("nan", "none"):
        return None
    try:
        value = np.asarray(json.loads(cell), dtype=np.float64)
    except (ValueError, TypeError):
        raise DataFormatError(path, f"line {line}, column {column!r}: not a list of numbers: {cell[:40]!r}") from None
    if not np.all(np.isfinite(value)):
        raise DataFormatError(path, f"line {line}, column {column!r}: NaN or infinite value in {cell[:40]!r}")
    return value


def _check_range(path: Path, line: int, column: str, value: float, low: float, high: float, what: str) -> None:
    if not math.isnan(value) and not low - _TOLERANCE <= value <= high + _TOLERANCE:
        raise DataFormatError(path, f"line {line}, column {column!r}: {value:g} is off the {what} scale "
                                    f"[{low:g}, {high:g}]")


def _au_values(fmt: str, cols: _Columns, header: list[str], line: int, row: list[str], path: Path
               ) -> dict[str, float] | None:
    """z of every AU the row codes, or None for a frame without a face (no AU value at all)."""
    if cols.au_list is not None:
        values = _list_cell(path, line, header[cols.au_list], row[cols.au_list])
        if values is None:
            return None
        values = values.reshape(-1)
        if values.size != len(OPENFACE3_AUS):
            raise DataFormatError(path, f"line {line}, column 'action_units': {values.size} values, OpenFace 3.0 "
                                        f"writes {len(OPENFACE3_AUS)} ({', '.join(OPENFACE3_AUS)})")
        for v in values:
            _check_range(path, line, "action_units", float(v), *_PROBABILITY_RANGE[fmt], "OpenFace 3.0 AU score")
        return dict(zip(OPENFACE3_AUS, probability_to_z(values).tolist()))
    cells = {(au, kind): (i, _number(path, line, header[i], row[i]))
             for kind, role in (("p", cols.presence), ("r", cols.intensity), ("q", cols.probability))
             for au, i in role.items()}
    missing = [header[i] for i, v in cells.values() if math.isnan(v)]
    if len(missing) == len(cells):
        return None
    if missing:
        raise DataFormatError(path, f"line {line}, column {missing[0]!r}: empty or NaN in a face's row "
                                    f"({len(missing)} of its {len(cells)} AU values; a row with none is a frame "
                                    "without a face and is skipped)")
    for (_, kind), (i, v) in cells.items():
        if kind == "p" and v not in (0.0, 1.0):
            raise DataFormatError(path, f"line {line}, column {header[i]!r}: presence must be 0 or 1, got {v:g}")
        if kind == "r":
            _check_range(path, line, header[i], v, *_INTENSITY_RANGE, "0-5 intensity")
        if kind == "q":
            _check_range(path, line, header[i], v, *_PROBABILITY_RANGE[fmt], "AU probability")
    out = {}
    for au in cols.aus:
        p, r, q = (cells.get((au, k), (None, math.nan))[1] for k in ("p", "r", "q"))
        out[au] = float(probability_to_z(q)) if not math.isnan(q) else float(intensity_to_z(r, p))
    return out


def _geometry(fmt: str, header: list[str], line: int, row: list[str], path: Path
              ) -> tuple[tuple[float, float, float, float] | None, np.ndarray | None]:
    """The face box (x0, y0, x1, y1) and landmarks in pixels where the format has them."""
    if fmt == "openface3":
        box = landmarks = None
        i = _index(header, "face_detection")
        det = _list_cell(path, line, "face_detection", row[i]) if i is not None else None
        if det is not None and det.size >= 4:
            box = tuple(float(v) for v in det.reshape(-1)[:4])
        i = _index(header, "landmarks")
        pts = _list_cell(path, line, "landmarks", row[i]) if i is not None else None
        if pts is not None and pts.ndim == 2:
            landmarks = pts.astype(np.float32)
        return box, landmarks
    if fmt not in ("openface", "pyfeat"):
        return None, None  # LibreFace's landmarks are normalised MediaPipe points: in extra only
    xi = [_index(header, f"x_{k}") for k in range(68)]
    yi = [_index(header, f"y_{k}") for k in range(68)]
    landmarks = None
    if None not in xi and None not in yi:
        pts = np.array([[_number(path, line, header[a], row[a]), _number(path, line, header[b], row[b])]
                        for a, b in zip(xi, yi)], dtype=np.float32)
        landmarks = pts if np.all(np.isfinite(pts)) else None
    rect = [_index(header, n) for n in ("FaceRectX", "FaceRectY", "FaceRectWidth", "FaceRectHeight")]
    if fmt == "pyfeat" and None not in rect:
        x, y, w, h = (_number(path, line, header[i], row[i]) for i in rect)
        if all(map(math.isfinite, (x, y, w, h))):
            return (x, y, x + w, y + h), landmarks
    if landmarks is not None:
        return (*landmarks.min(axis=0).tolist(), *landmarks.max(axis=0).tolist()), landmarks
    return None, landmarks


def _integer(path: Path, line: int, column: str, cell: str) -> int | None:
    value = _number(path, line, column, cell)
    if math.isnan(value):
        return None
    if value != int(value) or value < 0:
        raise DataFormatError(path, f"line {line}, column {column!r}: expected a whole number >= 0, got {cell!r}")
    return int(value)


# ------------------------------------------------------------------------------- reading
def read_au_table(path: str | os.PathLike, format: str | None = None, aus: Sequence[str] | None = None
                  ) -> TableReadings:
    """The faces of an AU table another tool wrote, one :class:`~facr.frontends.FaceReading` per row.

    ``format`` is one of :data:`FORMATS`, or None to recognise it from the header
    (:func:`detect_format`). ``aus`` is the AU order of z (any spellings; default: the AUs the table
    codes, ascending); AUs the table lacks are *not coded* (``coded`` False, z 0). Frame ids, face
    ids, the box and 68 landmarks (OpenFace 2.2, py-feat) or the box and 98 landmarks (OpenFace 3.0)
    are kept, and the row's own columns in ``extra`` (name → text). Rows of frames without a face
    are skipped and counted (``.skipped``). Every problem is one :class:`DataFormatError` naming the
    file, the line and the column.
    """
    path = Path(path)
    if format is not None and format not in FORMATS:
        raise DataFormatError(path, f"unknown table format {format!r} (choose from {', '.join(FORMATS)})")
    if not path.exists():
        raise DataFormatError(path, "no such file")
    rows = _rows(path)
    try:
        _, header = next(rows)
    except StopIteration:
        raise DataFormatError(path, "empty file: not an AU table (expected a header row)") from None
    fmt = format or detect_format(header)
    if fmt is None:
        looks_au = [h for h in header if au_vocab.is_au(h)]
        problem = "cannot tell which tool wrote it from its columns" if looks_au else "no AU column among the columns"
        raise DataFormatError(path, f"{problem} ({_show(header)}); facr reads {', '.join(FORMATS)} tables "
                                    "(pass --format to name one)")
    cols = _columns(fmt, header, path)
    table_aus = cols.aus
    order = [au_vocab.canonical(a) for a in aus] if aus is not None else table_aus
    position = {a: k for k, a in enumerate(order)}
    coded = np.array([a in table_aus for a in order], dtype=bool)
    readings, skipped, faces_in_frame, identities = [], 0, {}, {}
    for line, row in rows:
        if not any(row):
            continue  # a blank line
        if len(row) != len(header):
            raise DataFormatError(path, f"line {line}: {len(row)} fields, the header has {len(header)}")
        if cols.success is not None and _number(path, line, header[cols.success], row[cols.success]) == 0:
            skipped += 1  # OpenFace lost the face in this frame: its AU values are zeros, not readings
            continue
        values = _au_values(fmt, cols, header, line, row, path)
        if values is None:
            skipped += 1
            continue
        z = np.zeros(len(order), dtype=np.float32)
        for a, v in values.items():
            if a in position:
                z[position[a]] = v
        frame = _integer(path, line, header[cols.frame], row[cols.frame]) if cols.frame is not None else None
        face = _face_id(path, line, header, row, cols.face, frame, faces_in_frame, identities)
        box, landmarks = _geometry(fmt, header, line, row, path)
        readings.append(FaceReading(aus=list(order), z=z, coded=coded.copy(), box=box, landmarks=landmarks,
                                    source=str(path), frame=frame, face_id=face, extra=dict(zip(header, row))))
    return TableReadings(readings, format=fmt, source=str(path), table_aus=table_aus, skipped=skipped)


def _face_id(path: Path, line: int, header: list[str], row: list[str], column: int | None, frame: int | None,
             faces_in_frame: dict, identities: dict) -> int:
    """The row's face id: the table's own (a number, or a name such as py-feat's ``Person_0``, numbered
    by first appearance), else the face's rank among the rows of its frame."""
    if column is not None and row[column] != "":
        cell = row[column]
        try:
            float(cell)
        except ValueError:
            return identities.setdefault(cell, len(identities))
        return _integer(path, line, header[column], cell)
    rank = faces_in_frame.get(frame, 0)
    faces_in_frame[frame] = rank + 1
    return rank
