"""Reading dataset images, bounded, and leaving out the ones a run cannot use.

Every dataset image facr decodes goes through :func:`open_image`: PIL reads the header, the size
is checked against :data:`MAX_PIXELS` before any pixel is decoded (a decompression bomb is a few
KB on disk and gigabytes in memory), then the whole image is decoded, so a truncated file fails
there, with its name, and not halfway through a training run.

:func:`drop_unusable` is the one place where a run (training, an audit) leaves images out: the
rows the loader already refused because of their image (missing, outside the data root, a
benchmark PNG that does not decode) and the selected records whose image does not decode. It
decodes each selected image once, up front, counts what it drops, and stops with one line when
more than ``max_bad`` of the images the run reads cannot be used.
"""

from __future__ import annotations

import io
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

from facr.data.records import FaceRecord, LoadIssue, LoadResult
from facr.errors import DataFormatError

MAX_PIXELS = 8192 * 8192
"""The largest image (width x height) facr decodes: 8192 pixels a side, about 200 MB as RGB.
Face datasets hold crops and photos far below it."""

MAX_BAD_IMAGES = 0.05
"""The share of a run's images that may be unusable (skipped and counted) before it stops."""


# What PIL raises for a file it identified but cannot decode (truncated, corrupt): what Pillow's own
# fuzzers expect (the chat's upload check, facr.chat.face, uses the same list).
UNDECODABLE = (OSError, SyntaxError, ValueError, EOFError, struct.error)


def bounded_pil():
    """PIL's ``Image`` module with its decompression-bomb limit at :data:`MAX_PIXELS`, so code that
    opens images directly (not through :func:`open_image`) is bounded too: PIL warns above the
    limit and raises ``DecompressionBombError`` above twice it. Lowered, never raised: a stricter
    limit set elsewhere stays."""
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS > MAX_PIXELS:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    return Image


class ImageReadError(DataFormatError):
    """An image file (or a benchmark's PNG bytes) that cannot be decoded, or is too large to."""


def open_image(source: str | os.PathLike | bytes, name: str | os.PathLike | None = None):
    """The image at ``source`` (a path or encoded bytes), fully decoded, as an RGB ``PIL.Image``.

    Raises :class:`ImageReadError` naming ``name`` (default: the path) when it is not an image,
    is truncated or corrupt, or has more than :data:`MAX_PIXELS` pixels (checked from the header,
    before decoding).
    """
    Image = bounded_pil()
    label = name if name is not None else (source if isinstance(source, (str, os.PathLike)) else "image")
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source) as im:
            width, height = im.size
            if width * height > MAX_PIXELS:
                raise ImageReadError(label, f"too large to decode ({width}x{height}; at most {MAX_PIXELS} pixels)")
            im.load()
            return im.convert("RGB")
    except Image.DecompressionBombError as exc:  # PIL's own limit, from the header (twice MAX_PIXELS)
        raise ImageReadError(label, f"too large to decode ({exc})") from None
    except UNDECODABLE as exc:
        raise ImageReadError(label, f"does not decode: {str(exc) or type(exc).__name__}") from None


def image_problem(source: str | os.PathLike | bytes) -> str | None:
    """Why the image at ``source`` cannot be used (see :func:`open_image`), or None when it decodes."""
    try:
        open_image(source)
    except ImageReadError as exc:
        return exc.message
    return None


@dataclass
class SkippedImages:
    """What a run left out: one :class:`LoadIssue` per unusable image, out of ``n_listed`` images
    that the splits it reads list."""

    issues: list[LoadIssue]
    n_listed: int

    @property
    def count(self) -> int:
        return len(self.issues)

    def to_dict(self) -> dict:
        """``{"count", "of", "files"}``: the JSON form runs and audits write (every file listed)."""
        return {"count": self.count, "of": self.n_listed, "files": [str(i) for i in self.issues]}

    def summary(self) -> str:
        """One line for a run's log, e.g. ``skipped 2 of 400 images (...); first: <file>: <problem>``."""
        if not self.issues:
            return f"all {self.n_listed} images usable"
        return (f"skipped {self.count} of {self.n_listed} images (missing, not decodable or outside the data root); "
                f"first: {self.issues[0]}")


def drop_unusable(result: LoadResult, parts: Sequence[Sequence[FaceRecord]], *, splits: set | None = None,
                  max_bad: float = MAX_BAD_IMAGES, workers: int | None = None,
                  ) -> tuple[list[list[FaceRecord]], SkippedImages]:
    """``parts`` (e.g. train / val / test records selected from ``result``) without the records whose
    image does not decode, and what was skipped.

    ``splits``: the splits the run reads (``None``: every record); the rows ``result`` refused
    because of their image count when they belong to one of them, and the share is taken over
    the images those splits list. Each selected image on disk is decoded once (threads: PIL
    decodes outside the GIL); in-memory images (the benchmark's, decoded by its loader) are not.
    Raises :class:`~facr.errors.DataFormatError`, one line, when more than ``max_bad`` of those
    images cannot be used.
    """
    wanted = (lambda split: True) if splits is None else (lambda split: split in splits)
    refused = [i for i in result.issues if i.image is not None and wanted(i.split)]
    listed = sum(wanted(r.split) for r in result.records if r.image is not None) + len(refused)
    paths = sorted({r.image for part in parts for r in part if isinstance(r.image, str)})
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        problems = {p: why for p, why in zip(paths, pool.map(image_problem, paths)) if why}
    undecodable = {r.image: LoadIssue(r.image, None, problems[r.image], image=r.image, split=r.split)
                   for part in parts for r in part if isinstance(r.image, str) and r.image in problems}
    skipped = SkippedImages(refused + list(undecodable.values()), listed)
    if skipped.count and skipped.count > max_bad * max(listed, 1):
        raise DataFormatError(result.root, f"{skipped.count} of {listed} images cannot be used, more than the "
                                           f"{max_bad * 100:g}% allowed (--max-bad-images); first: "
                                           f"{skipped.issues[0]}; list them all with: facr data inspect --verify "
                                           f"{result.root}")
    kept = [[r for r in part if not (isinstance(r.image, str) and r.image in problems)] for part in parts]
    return kept, skipped
