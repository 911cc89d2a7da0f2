"""UNBC-McMaster Shoulder Pain Expression Archive, in its released layout.

::

    <root>/Images/<subject>/<sequence>/<frame>.png                    e.g. 042-ll042/ll042t1aaaff/ll042t1aaaff001.png
    <root>/Frame_Labels/PSPI/<subject>/<sequence>/<frame>_facs.txt    one number, the frame's PSPI
    <root>/Frame_Labels/FACS/<subject>/<sequence>/<frame>_facs.txt    one row per AU present, "AU intensity x x"
                                                                      (e.g. 4.0000000e+00 2.0000000e+00 0 0)

One record per PSPI label file. A FACS file lists only the AUs present in the frame (an empty
file: none), so every AU of :data:`CODED_AUS` gets 0 unless listed, and a listed AU is 1 with
the listed intensity. AUs UNBC does not code are left out of ``au_presence`` (not coded).
``pspi`` is the value of the PSPI file; ``subject`` the subject folder, ``video`` the sequence
folder, ``frame`` the trailing number of the frame name. UNBC has no official split
(``split=None``): evaluate with :func:`facr.data.splits.loso`.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from facr import au as au_vocab
from facr.data.formats import LOADERS
from facr.data.formats._common import Loading
from facr.data.records import FaceRecord, LoadResult
from facr.errors import UnknownAUError

FORMAT = "unbc"

CODED_AUS: tuple[int, ...] = (4, 6, 7, 9, 10, 12, 20, 25, 26, 27, 43)
"""The AUs UNBC-McMaster's FACS coders scored on every frame (the pain-related AUs; Lucey et al., 2011)."""

_TRAILING_NUMBER = re.compile(r"(\d+)$")
_LABEL_SUFFIX = "_facs.txt"


def load(root: str | os.PathLike, *, strict: bool = False, verify_images: bool = False) -> LoadResult:
    """Read UNBC-McMaster at ``root`` (the folder holding ``Images/`` and ``Frame_Labels/``).

    A frame whose PSPI or FACS file is malformed or missing, or whose image is missing (or,
    with ``verify_images``, does not decode), is reported and skipped; ``strict`` raises instead.
    Images without a PSPI label are reported too.
    """
    loading = Loading(FORMAT, root, strict)
    pspi_dir = loading.require_dir("Frame_Labels", "PSPI", what="expected the UNBC-McMaster release layout")
    facs_dir = loading.require_dir("Frame_Labels", "FACS", what="expected the UNBC-McMaster release layout")
    image_dir = loading.require_dir("Images", what="expected the UNBC-McMaster release layout")

    images: dict[tuple[str, str, str], Path] = {}
    for path in sorted(image_dir.glob("*/*/*.png")):
        images[(path.parent.parent.name, path.parent.name, path.stem)] = path

    records: list[FaceRecord] = []
    labelled: set[tuple[str, str, str]] = set()
    for pspi_file in sorted(pspi_dir.glob(f"*/*/*{_LABEL_SUFFIX}")):
        subject, sequence = pspi_file.parent.parent.name, pspi_file.parent.name
        name = pspi_file.name[: -len(_LABEL_SUFFIX)]
        key = (subject, sequence, name)
        labelled.add(key)
        record = _frame(loading, key, pspi_file, facs_dir / subject / sequence / pspi_file.name,
                        images.get(key), verify_images, image_dir)
        if record is not None:
            records.append(record)
    for key in sorted(set(images) - labelled):
        loading.issue(images[key], None, "image has no Frame_Labels/PSPI label file")
    return loading.result(records)


def _frame(loading: Loading, key, pspi_file: Path, facs_file: Path, image: Path | None, verify: bool, image_dir: Path):
    subject, sequence, name = key
    text = loading.read_text(pspi_file)
    if text is None:
        return None
    try:
        pspi = float(text.strip())
    except ValueError:
        loading.issue(pspi_file, 1, f"PSPI must be one number, got {text.strip()[:40]!r}")
        return None
    if not math.isfinite(pspi) or pspi < 0:
        loading.issue(pspi_file, 1, f"PSPI must be a number >= 0, got {pspi!r}")
        return None
    if not facs_file.is_file():
        loading.issue(pspi_file, None, f"no matching FACS file {facs_file}")
        return None
    facs = _read_facs(loading, facs_file)
    if facs is None:
        return None
    intensities, other_codes = facs
    if image is None:
        loading.issue(pspi_file, None, f"no image Images/{subject}/{sequence}/{name}.png",
                      image=image_dir / subject / sequence / f"{name}.png")
        return None
    if not loading.check_image(image, image, None, verify, base=image_dir):
        return None
    presence = {f"AU{n}": 0 for n in CODED_AUS}
    intensity = {f"AU{n}": 0.0 for n in CODED_AUS}
    for n, value in intensities.items():
        presence[f"AU{n}"] = 1
        intensity[f"AU{n}"] = value
    number = _TRAILING_NUMBER.search(name)
    meta = {"name": name}
    if other_codes:
        meta["other_codes"] = other_codes
    return FaceRecord(
        image=str(image), dataset=FORMAT, subject=subject, video=sequence,
        frame=int(number.group(1)) if number else None,
        au_presence=presence, au_intensity=intensity, pspi=pspi, meta=meta,
    )


def _read_facs(loading: Loading, path: Path):
    """``({AU number: intensity}, [codes that are not FACS main AUs])`` or None if malformed."""
    text = loading.read_text(path)
    if text is None:
        return None
    intensities: dict[int, float] = {}
    other: list[float] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            values = [float(f) for f in fields]
        except ValueError:
            loading.issue(path, line_no, f"expected numbers 'AU intensity ...', got {line.strip()[:60]!r}")
            return None
        if len(values) < 2 or not values[0].is_integer() or not math.isfinite(values[1]) or values[1] < 0:
            loading.issue(path, line_no, f"expected 'AU intensity ...' with an integer AU and intensity >= 0, "
                                         f"got {line.strip()[:60]!r}")
            return None
        try:
            number = au_vocab.parse(int(values[0]))
        except UnknownAUError:
            # Codes outside the FACS main AUs (none in the release as far as we know) are kept, not scored.
            other.append(values[0])
            continue
        if number in intensities:
            loading.issue(path, line_no, f"AU{number} is listed twice")
            return None
        intensities[number] = values[1]
    return intensities, other


LOADERS.register("unbc", load)
