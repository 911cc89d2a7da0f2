"""The chat on real faces: a front end's reading of a photo, shown and located on the face's own landmarks.

:func:`frontend_face` reads a picture through the front end (every face; the largest is kept),
:func:`face_view` is what the app shows of it (the face cropped square, the 68 iBUG points drawn), and
:func:`landmark_maps` answers "where is AU12?": each AU's region on that face's own landmarks
(MediaPipe's 478 points → the 68-point layout, :func:`facr.frontends.mediapipe.to_ibug68`, → the
EAC-Net-style ROI Gaussians of :func:`facr.explain.regions.landmark_roi_maps`). A front end has no
latent unit to back-propagate through, so the region is where the AU lives on this face, not a saliency
map; z and Δ beside it are the head's, through the one do().
"""

from __future__ import annotations

import numpy as np

from facr.chat.face import Face, FaceError, read_image, square_box, square_crop
from facr.errors import FacrError

VIEW = 256  # pixels a side of the face crop the app shows and draws the regions on
LANDMARK_WORDS = ("the AU's region on this face's own landmarks (MediaPipe's 478 points mapped to the 68-point "
                  "layout; AU centres after EAC-Net)")


def no_face(label: str, rgb: np.ndarray) -> FaceError:
    """The one line for a picture the front end finds no face in."""
    H, W = rgb.shape[:2]
    return FaceError(label, f"no face found ({W}x{H} picture; MediaPipe's face detector). Try a frontal, well-lit "
                            "face")


def frontend_face(frontend, source, name: str | None = None) -> Face:
    """``source`` (path, bytes, PIL image or array; refused as :func:`~facr.chat.face.read_image` refuses)
    through ``frontend``: a :class:`Face` holding the whole picture and the reading of its largest face."""
    rgb = read_image(source, name)
    label = name or (str(source) if isinstance(source, str) else "image")
    faces = frontend.read(rgb, source=label)
    if not faces:
        raise no_face(label, rgb)
    x0, y0, x1, y1 = faces[0].box
    H, W = rgb.shape[:2]
    more = f"; {len(faces) - 1} more face(s) ignored" if len(faces) > 1 else ""
    note = (f"face found by MediaPipe at x={x0:.0f}, y={y0:.0f}, {x1 - x0:.0f}x{y1 - y0:.0f} in a {W}x{H} picture"
            f"{more}")
    box = (round(x0), round(y0), round(x1 - x0), round(y1 - y0))
    return Face(rgb, box, len(faces), note, reading=faces[0])


def _crop(rgb: np.ndarray, face) -> tuple[np.ndarray, np.ndarray]:
    """The face's square crop at :data:`VIEW` pixels (framed as the chat frames a face) and its 68 iBUG
    points in that crop's pixels."""
    from facr.data.torch_data import load_image
    from facr.frontends.mediapipe import to_ibug68

    if face is None or face.box is None or face.landmarks is None:
        raise FacrError(None, "this face has no landmarks to place an AU on (it was not read from a picture)")
    x0, y0, x1, y1 = face.box
    box = (x0, y0, x1 - x0, y1 - y0)
    ox, oy, side = square_box(box)
    crop = load_image(np.ascontiguousarray(square_crop(rgb, box)), VIEW)
    points = (to_ibug68(face.landmarks) - np.array([ox, oy], dtype=np.float32)) * (VIEW / side)
    return crop, points


def to_picture(face, down: float, across: float) -> tuple[float, float]:
    """(x, y) in picture pixels of a point ``down`` / ``across`` (fractions) of the face's crop (:func:`face_view`)."""
    x0, y0, x1, y1 = face.box
    ox, oy, side = square_box((x0, y0, x1 - x0, y1 - y0))
    return ox + across * side, oy + down * side


def face_view(rgb: np.ndarray, face) -> np.ndarray:
    """What the front end saw of ``face`` in ``rgb``: the square crop with its 68 landmarks drawn."""
    import cv2

    crop, points = _crop(rgb, face)
    out = crop.copy()
    for x, y in points:
        cv2.circle(out, (round(float(x)), round(float(y))), 2, (0, 255, 120), -1, lineType=cv2.LINE_AA)
    return out


def landmark_maps(explainer, rgb: np.ndarray, reading, aus: list[str] | None = None, graph=None):
    """The :class:`~facr.explain.overlay.FaceMaps` of ``aus`` (default: the AUs invoked for the predicted class
    under ``graph``, else the active ones) on the face ``reading`` read in ``rgb``: method ``landmarks``,
    each AU's ROI map on the face's own points, with the head's z and Δ on the predicted class."""
    from facr import au as au_vocab
    from facr.explain.overlay import FaceMaps
    from facr.explain.regions import landmark_roi_maps

    if aus is None:
        aus = explainer.check(reading, graph=graph).invoked or reading.active
    else:
        aus = [au_vocab.canonical(a) for a in aus]
        unknown = [a for a in aus if a not in explainer.aus]
        if unknown:
            raise FacrError(None, f"{unknown[0]} is not in this model's latent ({', '.join(explainer.aus)})")
    crop, points = _crop(rgb, reading.face)
    maps, _ = landmark_roi_maps(points, (VIEW, VIEW), (VIEW, VIEW), aus)
    c = reading.predicted
    return FaceMaps(crop, "landmarks", c, reading.prob(c), list(aus), {a: maps[k] for k, a in enumerate(aus)},
                    {a: float(reading.z[explainer.aus.index(a)]) for a in aus},
                    {a: reading.effect(a, c) for a in aus})


def real_photos() -> list[tuple[np.ndarray, str]]:
    """Real photos for the gallery when no dataset is given: scikit-image's astronaut (Eileen Collins, NASA,
    public domain) when scikit-image is installed (``make install`` installs it), else none."""
    try:
        from skimage import data
    except ImportError:
        return []
    return [(data.astronaut(), "astronaut · scikit-image")]
