"""From a picture a person gives to the reasoner's input: read, check, find the face, crop it.

Faces are found with OpenCV's frontal-face Haar cascade, which ships inside ``opencv-python-headless``
(<5): nothing is downloaded at run time. A face that already fills the picture (an aligned crop, as
in the benchmark and AffectNet) is used whole; a face in a larger photo is cropped square with a
margin that frames it as the training crops are framed.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facr.data.images import UNDECODABLE, bounded_pil
from facr.errors import FacrError

MAX_SIDE = 8192  # pixels: a larger picture is refused, not resized (a decompression bomb is cheap to send)
MAX_BYTES = 30 * 1024 * 1024  # also Gradio's upload limit in the chat (facr.chat.ui.launch)
MARGIN = 1.3  # crop side / detected box side: the benchmark's faces fill ~0.76 of their frame
ALIGNED_FRACTION = 0.30  # a detected box covering this much of the picture means it is already a face crop
MIN_FACE = 24  # pixels: the cascade's window


class FaceError(FacrError):
    """A picture that cannot be used: not an image, too large, or no face in it."""


@dataclass
class Face:
    """The reasoner's input and where it came from. ``pixels``: ``[S, S, 3]`` uint8 at the model's size;
    ``box``: (x, y, w, h) of the face in the original picture (None where detection was skipped);
    ``note``: one line saying what was done; ``reading``: a front end's
    :class:`~facr.frontends.FaceReading` of the face (front-end explainers: ``pixels`` is then the whole
    picture, as the front end read it), else None."""

    pixels: np.ndarray
    box: tuple[int, int, int, int] | None
    n_faces: int
    note: str
    reading: object = None


def _label(source, name: str | None) -> str:
    return name or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "image")


def _check_side(width: int, height: int, label: str) -> None:
    if max(width, height) > MAX_SIDE:
        raise FaceError(label, f"too large ({width}x{height}; at most {MAX_SIDE} pixels a side)")


def _check_bytes(n: int, label: str) -> None:
    if n > MAX_BYTES:
        # rounded up: a file one byte over the limit must not read "30.0 MB; at most 30 MB"
        raise FaceError(label, f"too large ({math.ceil(n / 2**20 * 10) / 10:.1f} MB; at most {MAX_BYTES // 2**20} MB)")


def _from_array(arr: np.ndarray, label: str) -> np.ndarray:
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise FaceError(label, f"not an RGB image array (shape {arr.shape})")
    _check_side(arr.shape[1], arr.shape[0], label)
    if arr.dtype != np.uint8:
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr[:, :, :3])


def _decode(fp, label: str) -> np.ndarray:
    """Open ``fp`` (a path or a binary file), check its size from the header, and only then decode it (upright, as
    its EXIF orientation says, as a browser shows it). Every way it can fail is a :class:`FaceError`."""
    from PIL import ImageOps, UnidentifiedImageError

    Image = bounded_pil()  # PIL itself refuses a header over twice MAX_PIXELS (= MAX_SIDE²) in Image.open
    try:
        with Image.open(fp) as img:  # reads the header only
            _check_side(*img.size, label)
            return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    except Image.DecompressionBombError:
        raise FaceError(label, f"too large (over {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} million pixels, refused "
                               f"from its header; at most {MAX_SIDE} pixels a side)") from None
    except UnidentifiedImageError:
        raise FaceError(label, "not an image (no picture format PIL can read)") from None
    except UNDECODABLE as exc:
        detail = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise FaceError(label, f"cannot be decoded: truncated or corrupt ({detail})") from None


def read_image(source, name: str | None = None) -> np.ndarray:
    """``H×W×3`` uint8 RGB from a path, bytes, a PIL image or an array. Refuses, with a :class:`FaceError`, what is
    not an image or cannot be decoded, and pictures over ``MAX_BYTES`` bytes or ``MAX_SIDE`` pixels a side, the
    size read from the file's header before anything is decoded (a 140 KB PNG can hold 12000×12000 pixels)."""
    label = _label(source, name)
    if isinstance(source, np.ndarray):
        return _from_array(source, label)
    Image = bounded_pil()
    if isinstance(source, Image.Image):
        _check_side(*source.size, label)
        return np.asarray(source.convert("RGB"))
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FaceError(label, "no such file")
        _check_bytes(path.stat().st_size, label)
        return _decode(path, label)
    data = bytes(source)
    _check_bytes(len(data), label)
    return _decode(io.BytesIO(data), label)


_CASCADES: dict[str, object] = {}
# (cascade file, minNeighbors), tried in turn: the default frontal cascade, strict, then alt2, looser; on
# the benchmark's drawn faces the pair finds 86 % (the default alone 69 %), on photos the first one answers.
CASCADES = (("haarcascade_frontalface_default.xml", 5), ("haarcascade_frontalface_alt2.xml", 3))


def _cascade(name: str):
    if name not in _CASCADES:
        import cv2

        path = Path(cv2.data.haarcascades) / name
        if not path.exists():  # opencv-python(-headless) 5.x ships no cascades
            raise FacrError(path, "OpenCV's Haar cascade is missing: install opencv-python-headless<5")
        _CASCADES[name] = cv2.CascadeClassifier(str(path))
    return _CASCADES[name]


def detect_faces(rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Face boxes (x, y, w, h) in ``rgb``, largest first (OpenCV's frontal-face Haar cascades, :data:`CASCADES`)."""
    import cv2

    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    side = min(gray.shape[:2])
    if side < MIN_FACE:
        return []
    for name, neighbours in CASCADES:
        boxes = _cascade(name).detectMultiScale(gray, scaleFactor=1.1, minNeighbors=neighbours,
                                                minSize=(max(MIN_FACE, side // 12),) * 2)
        if len(boxes):
            return sorted((tuple(int(v) for v in b) for b in boxes), key=lambda b: b[2] * b[3], reverse=True)
    return []


def square_box(box: tuple[float, float, float, float], margin: float = MARGIN) -> tuple[int, int, int]:
    """(x0, y0, side) of the square :func:`square_crop` cuts around ``box`` (x, y, w, h), in picture pixels."""
    x, y, w, h = box
    side = int(round(max(w, h) * margin))
    cx, cy = x + w / 2.0, y + h / 2.0
    return int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side


def square_crop(rgb: np.ndarray, box: tuple[int, int, int, int], margin: float = MARGIN) -> np.ndarray:
    """The square of side ``margin``·max(w, h) centred on ``box``; parts outside the picture are filled by
    repeating its edge (a face at the border keeps its framing)."""
    x0, y0, side = square_box(box, margin)
    H, W = rgb.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - W, y0 + side - H)
    if pad:
        rgb = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        x0, y0 = x0 + pad, y0 + pad
    return rgb[y0:y0 + side, x0:x0 + side]


def prepare_face(source, size: int, *, detect: bool = True, name: str | None = None) -> Face:
    """The reasoner's ``size``×``size`` input from a picture. With ``detect``: the largest face is found
    and cropped (:func:`square_crop`), or the picture used whole when that face already fills it; no face
    raises :class:`FaceError`. Without: the picture is taken as an aligned face crop."""
    from facr.data.torch_data import load_image

    rgb = read_image(source, name)
    label = _label(source, name)
    H, W = rgb.shape[:2]
    if not detect:
        return Face(load_image(_center_square(rgb), size), None, 0, f"used as an aligned face crop ({W}x{H})")
    boxes = detect_faces(rgb)
    if not boxes:
        raise FaceError(label, f"no face found ({W}x{H} picture; OpenCV frontal-face cascade). Try a frontal, "
                               "well-lit face, or tick 'already a face crop'")
    x, y, w, h = boxes[0]
    more = f"; {len(boxes) - 1} more face(s) ignored" if len(boxes) > 1 else ""
    if w * h >= ALIGNED_FRACTION * W * H:
        return Face(load_image(_center_square(rgb), size), boxes[0], len(boxes),
                    f"face fills the picture: used whole ({W}x{H}){more}")
    crop = square_crop(rgb, boxes[0])
    return Face(load_image(np.ascontiguousarray(crop), size), boxes[0], len(boxes),
                f"face found at x={x}, y={y}, {w}x{h} in a {W}x{H} picture and cropped{more}")


def _center_square(rgb: np.ndarray) -> np.ndarray:
    H, W = rgb.shape[:2]
    if H == W:
        return rgb
    s = min(H, W)
    y0, x0 = (H - s) // 2, (W - s) // 2
    return np.ascontiguousarray(rgb[y0:y0 + s, x0:x0 + s])
