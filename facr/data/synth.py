"""The known-structure synthetic face benchmark: a procedural face renderer driven by a
structural causal model (SCM) whose graph is written out beside the data.

Why: faithfulness metrics need a ground truth. Here every action unit (AU) is a real, visible,
localised change drawn at its anatomical place, the AUs are generated from the emotion (and a
pain process) by a known signed graph, and a background-hue *shortcut* can be planted, so a
model that looks at the right AUs and one that reads the background can be told apart.

The renderer
------------
:func:`render_face` draws a frontal face (a subject's :class:`Identity`) with 19 AUs at
intensities 0-5 (``SYNTH_AUS``: AU1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 16, 17, 20, 23, 24, 25,
26, 43), each a displacement or mark whose size grows with the intensity, and nothing at all at
intensity 0: brows lift at the inner (AU1) or outer (AU2) end with forehead lines, or drop and knit
with glabella lines (AU4); the upper lid rises (AU5); cheeks rise with crow's-feet and an
infraorbital furrow (AU6); lower lids tighten (AU7); the nose bridge wrinkles and the wings rise
(AU9); the upper lip rises showing teeth, deepening the nasolabial folds (AU10); lip corners pull
up and out (AU12) or down (AU15); dimples form beside the corners (AU14); the lower lip is pulled
down showing lower teeth (AU16); the chin boss rises and puckers (AU17); the lips stretch wide
(AU20), narrow and thin (AU23) or press with bulging skin (AU24); the lips part (AU25); the jaw
drops, lengthening the lower face (AU26); the eyes close (AU43, binary as in FACS/UNBC coding:
intensities above 1 draw the same closed eye). Nuisances (:class:`Nuisance`): in-plane rotation,
scale, translation, a linear lighting gradient, pixel noise and the background colour. Two
styles: ``a`` (flat cartoon, dark outlines) and ``b`` (a domain shift for transfer tests: no
outlines, radial shading, heavier feature lines, larger eyes, smaller mouth, rounder face, cooler
skin, paler backgrounds) — same SCM, same labels for the same seed.

Faces are drawn at twice the output size and reduced 2× (anti-aliasing). Drawing is PIL
polygons and lines; a 112×112 face takes about 1.5 ms on one core.

**AU region masks.** For every image the benchmark stores, per AU, a binary mask at 1/4 of the
image side (``MASK_STRIDE``) of the area that AU's drawing can change on this face at this pose
(at any intensity up to 5, padded by the line width and the cell size). The masks are stored for
every AU, active or not: "where AU k is drawn" for an image is ``masks[k]`` where
``au_intensity[k] > 0``. On disk they are bit-packed along the AU axis: ``au_masks`` holds the
bytes of ``np.packbits(mask, axis=0)`` for a bool ``[K, S/4, S/4]`` array (``ceil(K/8)·(S/4)²``
bytes, 2,352 at 112×112); :func:`unpack_masks` inverts it.

**Interventions in pixels.** Every image can be drawn again from its scene with one thing changed
(:func:`render_intervention`): do(AU_k = v) with everything else held — the pixels that change lie
inside AU k's mask — or one nuisance changed (:data:`NUISANCE_CHANGES`: background hue, identity,
pose, light); :func:`render_counterfactual` sets the background to a given class's hue. The pixel
audit (:mod:`facr.audit.pixel`) is built on them.

The structural causal model
---------------------------
Variables per image (``rng`` streams are keyed by the seed, so the same seed gives the same
images and labels, whatever the number of worker processes)::

    subject s ──> identity (face shape, skin tone, hair, feature positions), expressivity e_s,
                  per-AU base-rate multipliers m_sk, pain proneness r_s
    emotion y ~ emotion_prior                       (independent of s)
    pain  L   ~ r_s · U(0.2, 1) (0 otherwise)       (independent of y)
    AU_k  = max(base_k, proto_k(y), pain_k(L))      then inhibition, then co-activation
    x     = render(identity_s, AU, nuisances, background hue(cue))

* **Emotion → AU, excitatory** (``EMFACS_PROTOTYPES``): each prototype AU of y is present with
  probability ``p_prototype`` (0.85; so a prototype AU is sometimes missing) at intensity
  round(N(3.2·e_s, 1)) clipped to 1-5.
* **Emotion → AU, inhibitory** (``INHIBITIONS``): happiness suppresses AU4 and AU15 (a smile
  antagonises brow lowering and lip-corner depression), sadness and anger suppress AU12, surprise
  suppresses AU4 (raised brows cannot be lowered). An inhibited AU is present with probability
  ``p_inhibited`` (0.01) whatever its other causes. These AUs get twice the base rate, so the
  inhibition is visible against the neutral face.
* **Base rates**: every AU appears with probability ``base_rate`` (0.08) × m_sk at intensity 1-3
  (AU43 at 1): spontaneous activity that no class causes.
* **AU → AU co-activation** (``CO_ACTIVATION``, applied after the above, sources never targets):
  AU1→AU2, AU4→AU7, AU9→AU10, AU17→AU24, AU26→AU25 with probabilities 0.25-0.5 and the target at
  about 0.7 of the source's intensity. Modest on purpose: the class→AU edges stay recoverable.
* **Pain** (choice made so that both tasks are usable): a per-subject process independent of the
  emotion. Subject s is in pain on a fraction r_s ~ pain_rate·U(0.5, 1.5) of its images, with
  level L ~ U(0.2, 1); ``never_pain_fraction`` of the subjects (at least one, like UNBC's subject
  101) have r_s = 0 and also no spontaneous PSPI AUs, so all their PSPIs are 0 on neutral faces.
  Pain turns on the PSPI AUs: AU4, one or both of AU6/AU7, one or both of AU9/AU10, and AU43, each
  with a probability and an intensity growing with L (at least one always). **PSPI is computed
  by** :func:`facr.au.pspi` **from the rendered intensities** and the binary pain label is
  PSPI > 0 (the UNBC protocol), so PSPI can be > 0 without the pain process (an angry AU4 counts,
  as in UNBC) and the latent level is stored apart (``pain_level``). For the multi-class emotion
  task the label is ``emotion``; for a UNBC-like binary pain set, make most faces neutral with
  ``emotion_prior={"neutral": 1}`` (CLI ``--emotion-prior neutral=1``).
* **Shortcut**: each class (the emotions, or no_pain/pain with ``shortcut_target="pain"``) owns a
  background hue, class j at hue j/C. In train *and val* the background takes the image's class
  hue with probability ``shortcut`` (RATE), else the hue of a uniformly random class; in test the
  hue is always a uniformly random class's. So the cue agrees with the class with probability
  RATE + (1 - RATE)/C in train/val and 1/C (chance) in test; a model that learnt the hue fails
  on test. Each image stores its ``cue`` (the class whose hue it shows), ``cue_hue`` and
  ``cue_agrees``. RATE = 0 (default) plants no shortcut.
* **Splits**: subject-disjoint train/val/test (``split_fractions``, default 0.7/0.15/0.15 of the
  subjects, at least one each); image i belongs to subject i mod K.

The true graph
--------------
:func:`true_graph` writes the generating structure as a facr graph (provenance ``truth``) in the
paper's direction AU → class: Pa(c) holds the AUs the SCM's class c moves, with sign +1 for
prototype AUs and −1 for inhibited AUs; ``neutral`` has no parents; ``pain`` (when the pain
process is on) has the PSPI parents AU4, AU6, AU7, AU9, AU10, AU43; AU → AU edges are the
co-activations (weight = their probability).

On disk
-------
:func:`write_synth` writes a folder that ``datasets.load_from_disk`` reads as a ``DatasetDict``
(train / val / test) plus ``graph.json`` (the true graph) and ``config.json`` (the
:class:`SynthConfig`, the AU and class orders, the subjects and their splits, the SCM tables).
Columns: ``image`` (PNG), ``index``, ``subject``, ``frame``, ``split``, ``emotion``, ``label``
(ClassLabel over the emotions), ``au_presence`` (int8 × K), ``au_intensity`` (float32 × K, 0-5),
``pspi``, ``pain`` (PSPI > 0), ``pain_level``, ``cue``, ``cue_hue``, ``cue_agrees``,
``unilateral`` (contempt's one-sided AU12/AU14), ``pose`` (angle°, scale, dx, dy) and
``au_masks`` (packed bytes, above). The AU order is ``SYNTH_AUS``, also in ``config.json`` and in
each split's ``info.description`` as ``aus=AU1,AU2,...``. ``facr.data.formats.synth.load`` reads
the folder as :class:`~facr.data.records.FaceRecord` objects.

Example::

    from facr.data.synth import SynthConfig, write_synth
    write_synth("data/synth", SynthConfig(n=5000, seed=0, shortcut=0.9))
    # or: facr data synth --out data/synth --n 5000 --seed 0 --shortcut 0.9
"""

from __future__ import annotations

import math
import os
import struct
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from facr import au as au_vocab

__all__ = [
    "CO_ACTIVATION",
    "EMOTIONS",
    "INHIBITIONS",
    "Identity",
    "MASK_STRIDE",
    "NUISANCE_CHANGES",
    "Nuisance",
    "STYLES",
    "SYNTH_AUS",
    "Scene",
    "SynthBatch",
    "SynthConfig",
    "generate",
    "preview_grid",
    "face_masks",
    "random_identity",
    "read_scene",
    "record_masks",
    "region_masks",
    "render_counterfactual",
    "render_face",
    "render_intervention",
    "sample_scene",
    "true_graph",
    "unpack_masks",
    "write_synth",
]

SYNTH_AU_NUMBERS: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 16, 17, 20, 23, 24, 25, 26, 43)
SYNTH_AUS: tuple[str, ...] = tuple(f"AU{n}" for n in SYNTH_AU_NUMBERS)
"""The AUs the renderer draws, in the benchmark's fixed order (the order of every AU vector)."""

EMOTIONS: tuple[str, ...] = ("neutral", "happiness", "sadness", "surprise", "fear", "anger", "disgust")
"""The emotion classes (``contempt`` is added last with ``SynthConfig(contempt=True)``)."""

INHIBITIONS: dict[str, tuple[int, ...]] = {
    "happiness": (4, 15),  # a smile antagonises brow lowering and lip-corner depression
    "sadness": (12,),      # the sad face does not smile
}
"""Inhibitory emotion → AU edges (s = −1): the AU is present with probability ``p_inhibited``."""

CO_ACTIVATION: tuple[tuple[int, int, float], ...] = (
    (1, 2, 0.35),    # the frontalis lifts inner and outer brow together
    (4, 7, 0.25),    # brow lowering comes with lid tightening
    (9, 10, 0.35),   # the nose wrinkler lifts the upper lip
    (23, 24, 0.30),  # tightened lips are pressed too
    (26, 25, 0.50),  # a dropped jaw parts the lips
)
"""AU → AU co-activation edges ``(source, target, probability)``; sources are never targets."""

# Base-rate multipliers: inhibited AUs get a base rate worth suppressing; the other PSPI AUs are
# rarer spontaneously, so that on a neutral set PSPI > 0 mostly means the pain process.
_BASE_MULT = {4: 1.5, 12: 2.5, 15: 2.5, 6: 0.25, 7: 0.25, 9: 0.25, 10: 0.25, 43: 0.25}
_PSPI = (4, 6, 7, 9, 10, 43)

_K = len(SYNTH_AU_NUMBERS)
_IDX = {n: k for k, n in enumerate(SYNTH_AU_NUMBERS)}
STYLES = ("a", "b")
MASK_STRIDE = 4
"""AU region masks are stored at 1/4 of the image side (one mask cell = 4×4 pixels)."""
# Bounds of SynthConfig: a 40000-px face would need gigabytes per image, and the scene arrays are
# drawn for all n images at once before any pixel (the benchmark's own runs use 112 px, 2000 images).
MAX_SIZE = 1024
MAX_N = 1_000_000


# ============================================================== identity and nuisance
@dataclass(frozen=True)
class Identity:
    """How one synthetic subject looks: face shape, colours and feature positions.

    Lengths are in face units: ``u`` across (1 = the face's half-width, negative = image left)
    and ``v`` down (0 = face centre, 1 = chin, −1 = crown); ``face_w``/``face_h`` are the
    half-sizes in canvas units (canvas side = 1). Colours are RGB in [0, 1]. ``hair_style``:
    0 short, 1 long, 2 side fringe, 3 cropped.
    """

    face_w: float = 0.39
    face_h: float = 0.45
    jaw: float = 0.25
    skin: tuple[float, float, float] = (0.93, 0.76, 0.62)
    hair: tuple[float, float, float] = (0.25, 0.16, 0.10)
    iris: tuple[float, float, float] = (0.30, 0.45, 0.65)
    lips: tuple[float, float, float] = (0.78, 0.40, 0.40)
    shirt: tuple[float, float, float] = (0.30, 0.35, 0.55)
    hair_style: int = 0
    eye_x: float = 0.42
    eye_y: float = -0.06
    eye_w: float = 0.19
    eye_h: float = 0.085
    brow_gap: float = 0.16
    brow_t: float = 0.05
    brow_arch: float = 0.035
    nose_y: float = 0.30
    nose_w: float = 0.15
    mouth_y: float = 0.56
    mouth_w: float = 0.30
    lip_up: float = 0.050
    lip_lo: float = 0.065


_HAIRS = np.array([[0.10, 0.08, 0.07], [0.28, 0.18, 0.11], [0.52, 0.36, 0.20], [0.80, 0.66, 0.40],
                   [0.58, 0.58, 0.58], [0.50, 0.20, 0.10]])
_IRISES = np.array([[0.30, 0.45, 0.65], [0.35, 0.25, 0.15], [0.30, 0.50, 0.30], [0.20, 0.15, 0.10]])


def random_identity(rng: np.random.Generator) -> Identity:
    """A random :class:`Identity`: face shape, skin tone, hair, feature positions and sizes."""
    u = rng.uniform
    tone = u(0.0, 1.0)
    light, dark = np.array([0.97, 0.83, 0.71]), np.array([0.42, 0.28, 0.20])
    skin = np.clip(light * (1 - tone) + dark * tone + rng.normal(0, 0.015, 3), 0, 1)
    lips = np.clip(skin * np.array([0.86, 0.56, 0.56]) + np.array([0.06, 0.0, 0.02]), 0, 1)
    return Identity(
        face_w=u(0.37, 0.41), face_h=u(0.43, 0.47), jaw=u(0.10, 0.40),
        skin=tuple(float(c) for c in skin),
        hair=tuple(float(c) for c in np.clip(_HAIRS[rng.integers(len(_HAIRS))] + rng.normal(0, 0.02, 3), 0, 1)),
        iris=tuple(float(c) for c in _IRISES[rng.integers(len(_IRISES))]),
        lips=tuple(float(c) for c in lips), shirt=tuple(float(c) for c in u(0.15, 0.85, 3)),
        hair_style=int(rng.integers(4)),
        eye_x=u(0.39, 0.45), eye_y=u(-0.10, -0.03), eye_w=u(0.17, 0.21), eye_h=u(0.075, 0.095),
        brow_gap=u(0.15, 0.19), brow_t=u(0.045, 0.065), brow_arch=u(0.02, 0.05),
        nose_y=u(0.27, 0.33), nose_w=u(0.13, 0.17),
        mouth_y=u(0.54, 0.60), mouth_w=u(0.27, 0.34), lip_up=u(0.040, 0.058), lip_lo=u(0.055, 0.072),
    )


@dataclass(frozen=True)
class Nuisance:
    """What varies per image but is not an AU: pose, scale, position, light, noise, background.

    ``angle`` in degrees (in-plane rotation), ``scale`` about the face centre, ``dx``/``dy`` in
    canvas units, a linear lighting gradient of strength ``light`` along ``light_dir`` (radians),
    Gaussian pixel noise of s.d. ``noise`` grey levels drawn from ``noise_seed``, and the
    background hue ``bg_hue`` in [0, 1) (the shortcut cue) at brightness ``bg_value``.
    """

    angle: float = 0.0
    scale: float = 1.0
    dx: float = 0.0
    dy: float = 0.0
    light: float = 0.0
    light_dir: float = 0.0
    noise: float = 0.0
    noise_seed: int = 0
    bg_hue: float = 0.55
    bg_value: float = 0.85


# ================================================================ styles and colours
@dataclass(frozen=True)
class _Style:
    outline: bool                     # dark outlines around the face and lips (flat cartoon)
    shading: bool                     # radial shading of the face
    line: float                       # feature line weight multiplier
    eye: float                        # eye size multiplier
    mouth: float                      # mouth width multiplier
    aspect: float                     # face height multiplier
    width: float                      # face width multiplier
    bg_sat: float                     # background saturation (the hue is the cue)
    ink: tuple[float, float, float] | None  # feature line colour (None: a dark shade of the skin)
    skin_tint: tuple[float, float, float]


_STYLE = {
    "a": _Style(outline=True, shading=False, line=1.0, eye=1.0, mouth=1.0, aspect=1.0, width=1.0, bg_sat=0.45,
                ink=(0.12, 0.09, 0.08), skin_tint=(1.0, 1.0, 1.0)),
    "b": _Style(outline=False, shading=True, line=1.7, eye=1.22, mouth=0.88, aspect=0.92, width=1.03, bg_sat=0.28,
                ink=None, skin_tint=(0.90, 0.96, 1.05)),
}


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))[i]


def _c(rgb) -> tuple[int, int, int]:
    """RGB in [0, 1] (clipped) as a PIL colour."""
    r, g, b = rgb[0], rgb[1], rgb[2]
    return (0 if r <= 0 else 255 if r >= 1 else int(r * 255 + 0.5),
            0 if g <= 0 else 255 if g >= 1 else int(g * 255 + 0.5),
            0 if b <= 0 else 255 if b >= 1 else int(b * 255 + 0.5))


def _mix(a, b, t: float) -> np.ndarray:
    return np.asarray(a) * (1.0 - t) + np.asarray(b) * t


# ================================================================ geometry and drawing
@dataclass(frozen=True)
class _Geom:
    """An identity in a style: the face frame (centre and half-sizes) and styled feature sizes."""

    cx: float
    cy: float
    W: float
    H: float
    ew: float
    eh: float
    mw: float
    id: Identity
    st: _Style


def _geometry(ident: Identity, style: str) -> _Geom:
    st = _STYLE[style]
    return _Geom(cx=0.5, cy=0.53, W=ident.face_w * st.width, H=ident.face_h * st.aspect,
                 ew=ident.eye_w * st.eye, eh=ident.eye_h * st.eye, mw=ident.mouth_w * st.mouth, id=ident, st=st)


def _pose(g: _Geom, nz: Nuisance, size2: int) -> tuple[complex, complex, complex]:
    """Face units → pixels as complex coefficients: z = u·cu + v·cv + c0 (x = Re z, y = Im z)."""
    rot = complex(math.cos(math.radians(nz.angle)), math.sin(math.radians(nz.angle))) * nz.scale * size2
    return g.W * rot, 1j * g.H * rot, complex(g.cx + nz.dx, g.cy + nz.dy) * size2


class _Canvas:
    """A PIL canvas at twice the output size; shapes are given in face units and posed on the fly."""

    def __init__(self, size2: int, g: _Geom, nz: Nuisance, bg):
        from PIL import Image, ImageDraw

        self.im = Image.new("RGB", (size2, size2), _c(bg))
        self.d = ImageDraw.Draw(self.im)
        self.cu, self.cv, self.c0 = _pose(g, nz, size2)
        self.px = size2 * nz.scale  # pixels per canvas unit, for line widths

    def pts(self, u, v) -> list:
        z = np.asarray(u, dtype=np.float64) * self.cu + np.asarray(v, dtype=np.float64) * self.cv + self.c0
        return z.view(np.float64).tolist()

    def poly(self, u, v, fill, outline=None, width: float = 0.0):
        if outline is None:
            self.d.polygon(self.pts(u, v), fill=_c(fill))
        else:
            self.d.polygon(self.pts(u, v), fill=_c(fill), outline=_c(outline), width=max(1, round(width * self.px)))

    def line(self, u, v, fill, width: float):
        self.d.line(self.pts(u, v), fill=_c(fill), width=max(1, round(width * self.px)), joint="curve")

    def ellipse(self, cu, cv, ru, rv, fill, outline=None, width: float = 0.0, n: int = 20):
        cos, sin = _CIRCLES[n]
        self.poly(cu + ru * cos, cv + rv * sin, fill, outline, width)


_CIRCLES = {n: (np.cos(np.linspace(0, 2 * np.pi, n, endpoint=False)),
                np.sin(np.linspace(0, 2 * np.pi, n, endpoint=False)))
            for n in (8, 10, 20)}
_T9 = np.linspace(0.0, 1.0, 9)
_S15 = np.linspace(-1.0, 1.0, 15)
_B15 = 1.0 - _S15**2
_S21 = np.linspace(-1.0, 1.0, 21)
_B21 = 1.0 - _S21**2
_ABS21 = np.abs(_S21) ** 1.7
_CUPID = 1 - 0.3 * np.exp(-((_S21 / 0.18) ** 2))
_L5 = np.linspace(-1.0, 1.0, 5)
_L7 = np.linspace(-1.0, 1.0, 7)
_T7 = np.linspace(0.0, 1.0, 7)
_HEAD = np.linspace(0, 2 * np.pi, 56, endpoint=False)
_HEAD_U, _HEAD_V = np.sin(_HEAD), -np.cos(_HEAD)
_HAIR_PHI = np.linspace(-1.62, 1.62, 29)
_HAIR_OUT_U, _HAIR_OUT_V = 1.12 * np.sin(_HAIR_PHI), -1.16 * np.cos(_HAIR_PHI) - 0.02
_HAIRLINE_U = np.linspace(1.03, -1.03, 25)
_HAIRLINE_V = -0.66 + 0.62 * (np.abs(_HAIRLINE_U) / 1.03) ** 4


def _face_outline(jaw: float, drop: float):
    lower = np.clip(_HEAD_V, 0, None)
    u = _HEAD_U * (1.0 - jaw * lower**2) * (1.0 + 0.04 * np.clip(-_HEAD_V, 0, None))
    v = _HEAD_V + drop * np.clip((_HEAD_V - 0.25) / 0.75, 0, None)
    return u, v


def _levels(I: np.ndarray) -> dict[int, float]:
    a = {n: min(max(float(I[k]), 0.0), 5.0) / 5.0 for n, k in _IDX.items()}
    a[43] = min(max(float(I[_IDX[43]]), 0.0), 1.0)  # AU43 is binary: FACS and UNBC code it 0/1
    return a


def _draw_face(cv: _Canvas, g: _Geom, I: np.ndarray, unilateral: bool) -> None:
    """Draw the face with AU intensities ``I`` (0-5, SYNTH_AUS order) onto ``cv``.

    Every AU term below is multiplied by its level a[n] = I/5, so intensity 0 draws nothing of it.
    """
    idn, st = g.id, g.st
    a = _levels(I)
    skin = np.asarray(idn.skin) * np.asarray(st.skin_tint)
    ink = np.asarray(st.ink) if st.ink is not None else skin * np.array([0.30, 0.24, 0.24])
    dark = lambda t: skin + (ink - skin) * t  # noqa: E731  skin shaded towards the ink colour
    out = ink if st.outline else None
    lw = 0.012 * st.line  # base line width, canvas units
    drop = 0.16 * a[26]
    hair = np.asarray(idn.hair)
    left = (lambda s: s < 0) if unilateral else (lambda s: True)  # contempt: R12A/R14A, one side

    # ---- back hair, neck, shirt, ears
    if idn.hair_style == 1:  # long hair falls behind the shoulders
        cv.poly(np.concatenate([[-1.28], _HAIR_OUT_U * 1.08, [1.28]]),
                np.concatenate([[1.5], _HAIR_OUT_V * 1.04, [1.5]]),
                hair * 0.85)
    cv.poly(np.array([-0.42, 0.42, 0.5, -0.5]), np.array([0.5, 0.5, 1.6, 1.6]), skin * 0.84)
    cv.poly(np.array([-1.7, -0.45, 0.0, 0.45, 1.7, 1.7, -1.7]), np.array([1.22, 1.05, 1.20, 1.05, 1.22, 1.8, 1.8]),
            idn.shirt, out, lw)
    for s in (-1, 1):
        cv.ellipse(s * 0.98, -0.02, 0.12, 0.19, skin * 0.93, out, lw)

    # ---- face
    fu, fv = _face_outline(idn.jaw, drop)
    if st.shading:
        for k, f in enumerate((1.0, 0.96, 0.92, 0.87, 0.81)):  # radial shading, light from the upper left
            cv.poly(fu * f - 0.25 * (1 - f), fv * f - 0.35 * (1 - f), skin * (0.78 + 0.055 * k))
    else:
        cv.poly(fu, fv, skin, ink, lw)

    # ---- cheeks: AU6 raises, rounds and flushes them
    for s in (-1, 1):
        cv.ellipse(s * 0.52, 0.26 - 0.09 * a[6], 0.17 + 0.02 * a[6], 0.10 + 0.02 * a[6],
                   _mix(skin, (0.95, 0.45, 0.45), 0.10 + 0.40 * a[6]))

    # ---- chin boss (AU17); AU26 carries the chin down
    chin_v = 0.84 + drop
    if a[17] > 0:
        cv.ellipse(0.0, chin_v - 0.03 * a[17], 0.17, 0.075, dark(0.22 * a[17]))
        for du, dv in ((-0.08, -0.01), (0.0, 0.02), (0.08, -0.01), (-0.04, 0.045), (0.05, 0.045)):
            cv.ellipse(du, chin_v - 0.03 * a[17] + dv, 0.014, 0.011, dark(0.6 * a[17]), n=8)

    # ---- forehead lines (AU1 centre, AU2 sides) and glabella lines (AU4)
    by = idn.eye_y - idn.brow_gap
    if a[1] > 0:
        for j in range(3):
            cv.line(0.22 * _L7, by - 0.15 - 0.06 * j - 0.03 * (1 - _L7**2), dark(0.55 * a[1]), lw * 0.9)
    if a[2] > 0:
        for s in (-1, 1):
            for j in range(2):
                cv.line(s * (0.46 + 0.16 * _L7), by - 0.14 - 0.06 * j - 0.02 * (1 - _L7**2), dark(0.55 * a[2]),
                        lw * 0.9)
    if a[4] > 0:
        for s in (-1, 1):
            cv.line(np.array([s * 0.055, s * 0.04]), np.array([by - 0.04, by + 0.07]), dark(0.6 * a[4]), lw)

    # ---- eyes: AU5 raises the upper lid, AU7 tightens the lower, AU6 narrows from below, AU43 closes
    ew, eh, ex, ey = g.ew, g.eh, idn.eye_x, idn.eye_y
    hu = eh * (1.0 + 0.9 * a[5] - 0.30 * a[7] - 0.15 * a[6]) * (1.0 - a[43])
    hl = eh * 0.8 * (1.0 - 0.65 * a[7] - 0.35 * a[6]) * (1.0 - a[43])
    ri = 0.095 * st.eye
    wh = g.H / g.W  # keeps circles round in face units
    for s in (-1, 1):
        u = s * (ex + _S15 * ew)
        vu = ey - hu * _B15**0.75 - 0.02 * _S15
        vl = ey + hl * _B15**0.9 - 0.01 * _S15
        if a[43] >= 0.5:
            cv.line(u, ey + 0.25 * eh * _B15, ink, lw * 1.6)
            for tt in (-0.45, 0.0, 0.45):
                uu, v0 = s * (ex + tt * ew), ey + 0.25 * eh * (1 - tt**2)
                cv.line(np.array([uu, uu + s * 0.012 * tt]), np.array([v0, v0 + 0.05]), ink, lw * 0.8)
        else:
            cv.poly(np.concatenate([u, u[::-1]]), np.concatenate([vu, vl[::-1]]), (0.97, 0.97, 0.95))
            order = slice(None) if s > 0 else slice(None, None, -1)
            us, vus, vls = u[order], vu[order], vl[order]
            for r, col in ((ri, idn.iris), (ri * 0.45, (0.05, 0.05, 0.06))):
                # the iris clipped to the lids: between the upper and lower lid at each x
                cu = s * ex + r * wh * _CIRCLES[20][0]
                cvv = ey + 0.1 * eh + r * _CIRCLES[20][1]
                cv.poly(np.clip(cu, us[0], us[-1]), np.clip(cvv, np.interp(cu, us, vus), np.interp(cu, us, vls)), col)
            if hu > 0.5 * eh:
                cv.ellipse(s * ex - 0.3 * ri * wh, ey + 0.1 * eh - 0.35 * ri, 0.022 * wh * st.eye, 0.022 * st.eye,
                           (1, 1, 1), n=8)
            cv.line(u, vu, ink, lw * 1.5)
            cv.line(u, vl, dark(0.45 + 0.45 * a[7]), lw * (0.7 + 0.9 * a[7]))
            if a[7] > 0:  # the tense lower lid bulges
                cv.line(u[3:-3], vl[3:-3] + 0.035 + 0.01 * a[7], dark(0.45 * a[7]), lw * 0.9)
        cv.line(u[2:-2], ey - eh * 1.25 - 0.5 * hu * _B15[2:-2] ** 0.75 - 0.02 * _S15[2:-2], dark(0.35), lw * 0.7)
        if a[6] > 0:  # crow's feet at the outer corner, and the infraorbital furrow
            u0 = s * (ex + ew + 0.035)
            length = 0.04 + 0.07 * a[6]
            for ang in (-0.5, 0.0, 0.5):
                cv.line(np.array([u0, u0 + s * length * math.cos(ang)]),
                        np.array([ey, ey + 1.2 * length * math.sin(ang)]), dark(0.6 * a[6]), lw * 0.9)
            cv.line(s * (ex + 0.02 + 0.14 * _L7), ey + 0.8 * eh + 0.09 - 0.02 * a[6] + 0.015 * (1 - _L7**2),
                    dark(0.5 * a[6]), lw * 0.9)

    # ---- brows (drawn over the eyelid crease): AU1 lifts the inner end, AU2 the outer, AU4 lowers and knits
    bi, bo = 0.13, 0.68
    thick = idn.brow_t * (1.0 - 0.45 * _T9) / st.line**0.3
    browc = _mix(hair, ink, 0.3)
    for s in (-1, 1):
        u = s * (bi + (bo - bi) * _T9 - 0.07 * a[4] * (1 - _T9))
        v = (by - idn.brow_arch * np.sin(np.pi * _T9**0.8) - 0.14 * a[1] * (1 - _T9) ** 1.3
             - 0.13 * a[2] * _T9**1.3 + a[4] * (0.04 + 0.045 * (1 - _T9)))
        cv.poly(np.concatenate([u, u[::-1]]), np.concatenate([v - thick / 2, (v + thick / 2)[::-1]]), browc)

    # ---- nose: AU9 wrinkles the bridge and raises and widens the wings
    ny, nw0 = idn.nose_y, idn.nose_w
    nw, lift = nw0 * (1.0 + 0.15 * a[9]), 0.045 * a[9]
    if a[9] > 0:
        for j in range(3):
            cv.line(0.08 * _L5, ey + 0.04 + 0.045 * j + 0.012 * (1 - _L5**2), dark(0.6 * a[9]), lw * 0.9)
        for s in (-1, 1):
            cv.line(np.array([s * 0.07, s * 0.12]), np.array([ny - 0.17, ny - 0.09 - lift]), dark(0.5 * a[9]),
                    lw * 0.9)
    cv.line(np.array([0.06, 0.08, nw * 0.8]), np.array([ey + 0.07, ny - 0.08, ny - 0.03 - lift]), dark(0.35), lw * 0.8)
    cv.line(np.array([-nw, -0.6 * nw, 0.0, 0.6 * nw, nw]),
            np.array([ny - 0.01 - lift, ny + 0.05 - 0.5 * lift, ny + 0.065, ny + 0.05 - 0.5 * lift, ny - 0.01 - lift]),
            dark(0.55), lw)
    for s in (-1, 1):
        cv.ellipse(s * 0.48 * nw, ny + 0.03 - 0.6 * lift, 0.04, 0.022, dark(0.75), n=10)

    # ---- nasolabial folds: deepened by AU10 and AU12; AU12 also bows them outward
    mw, my = g.mw, idn.mouth_y
    for s in (-1, 1):
        a12 = a[12] if left(s) else 0.0
        depth = min(1.0, 0.12 + 0.55 * a[10] + 0.40 * a12)
        u0, v0, u1, v1 = s * (nw0 + 0.04), ny - 0.02, s * (mw + 0.10), my + 0.08
        cv.line(u0 + (u1 - u0) * _T7 + s * (0.05 + 0.04 * a12) * np.sin(np.pi * _T7), v0 + (v1 - v0) * _T7,
                dark(0.5 * depth), lw * (0.8 + 0.6 * depth))

    # ---- mouth: corners per side, then four lip curves over s in [-1, 1]
    cw, cvv = {}, {}
    for s in (-1, 1):
        a12, a14 = (a[12], a[14]) if left(s) else (0.0, 0.0)
        cw[s] = mw * (1 + 0.22 * a12 + 0.32 * a[20] - 0.28 * a[23] - 0.08 * a14)
        cvv[s] = my - 0.12 * a12 + 0.11 * a[15] + 0.02 * a[20] - 0.01 * a14 + 0.3 * drop
    neg = _S21 < 0
    x = _S21 * np.where(neg, cw[-1], cw[1])
    vm = my + (np.where(neg, cvv[-1], cvv[1]) - my) * _ABS21
    thin = max(0.25, 1.0 - 0.55 * a[23] - 0.45 * a[24] - 0.30 * a[20])
    ul, ll = idn.lip_up * thin, idn.lip_lo * thin * (1 + 0.25 * a[17])
    r10, d16, c17 = 0.09 * a[10], 0.07 * a[16], 0.035 * a[17]
    gap = 0.075 * a[25] + 0.35 * drop
    b = _B21
    yub = vm - 0.35 * gap * b**0.8 - r10 * b**1.5
    ylt = vm + 0.65 * gap * b**0.8 + drop * b**0.6 + d16 * b**1.5 - c17 * b
    yut = yub - ul * b**0.45 * _CUPID - 0.4 * r10 * b**1.5
    ylb = ylt + ll * b**0.5 + 0.4 * d16 * b
    lipc = np.asarray(idn.lips) if not st.shading else _mix(idn.lips, skin, 0.15)
    if a[24] > 0:  # skin bunched above and below pressed lips
        cv.line(x[5:16], yut[5:16] - 0.035, dark(0.45 * a[24]), lw)
        cv.line(x[5:16], ylb[5:16] + 0.035, dark(0.45 * a[24]), lw)
    for s in (-1, 1):  # AU14 dimples beside the corners
        a14 = a[14] if left(s) else 0.0
        if a14 > 0:
            cv.line(s * (cw[s] + 0.045 + 0.02 * (1 - _L5**2)), cvv[s] + 0.05 * _L5, dark(0.65 * a14), lw * 1.2)
    opening = float(np.max(ylt - yub))
    if opening > 0.006:  # open mouth: the dark interior and the teeth
        cv.poly(np.concatenate([x, x[::-1]]), np.concatenate([yub, ylt[::-1]]), (0.30, 0.08, 0.10))
        cv.poly(np.concatenate([x[4:17], x[4:17][::-1]]),
                np.concatenate([yub[4:17], np.minimum(yub + 0.045, ylt)[4:17][::-1]]), (0.96, 0.95, 0.90))
        if a[16] > 0:
            cv.poly(np.concatenate([x[6:15], x[6:15][::-1]]),
                    np.concatenate([np.maximum(ylt - 0.035, yub)[6:15], ylt[6:15][::-1]]), (0.93, 0.92, 0.86))
    cv.poly(np.concatenate([x, x[::-1]]), np.concatenate([yut, yub[::-1]]), lipc * 0.9, out, lw * 0.6)
    cv.poly(np.concatenate([x, x[::-1]]), np.concatenate([ylt, ylb[::-1]]), lipc, out, lw * 0.6)
    cv.line(x, (yub + ylt) / 2 if opening <= 0.006 else yub, _mix(lipc, ink, 0.6 + 0.4 * a[24]),
            lw * (0.9 + 0.9 * a[24]))
    # mentolabial furrow: AU17 deepens and raises it, AU16/AU26 carry it down with the lower lip
    cv.line(0.13 * _L7, ylb[10] + 0.075 - 0.03 * a[17] - 0.02 * (1 - _L7**2), dark(0.2 + 0.45 * a[17]), lw * 0.9)

    # ---- front hair (drawn last: it frames the forehead and temples)
    if idn.hair_style == 3:  # cropped: a thin cap
        cv.poly(np.concatenate([_HAIR_OUT_U * 0.97, _HAIRLINE_U]),
                np.concatenate([_HAIR_OUT_V * 0.95, _HAIRLINE_V - 0.08]), _mix(hair, skin, 0.35))
    else:
        fringe = 0.14 * (_HAIRLINE_U + 1.03) / 2.06 - 0.03 if idn.hair_style == 2 else 0.0
        cv.poly(np.concatenate([_HAIR_OUT_U, _HAIRLINE_U]), np.concatenate([_HAIR_OUT_V, _HAIRLINE_V + fringe]),
                hair, out, lw * 0.8)


# ================================================================ regions (masks)
def _mouth_box(g: _Geom, a: Mapping[int, float], unilateral: bool) -> tuple[float, float, float]:
    """(half-width, top, bottom) in face units of everything the mouth drawing of levels ``a``
    covers: lips, opening, teeth, AU24 bulges, AU14 dimples, the mentolabial furrow (mirrors
    :func:`_draw_face`)."""
    idn = g.id
    mw, my = g.mw, idn.mouth_y
    drop = 0.16 * a[26]
    cws, cvs = [], []
    for s in (-1, 1):
        a12, a14 = (a[12], a[14]) if (not unilateral or s < 0) else (0.0, 0.0)
        cws.append(mw * (1 + 0.22 * a12 + 0.32 * a[20] - 0.28 * a[23] - 0.08 * a14))
        cvs.append(my - 0.12 * a12 + 0.11 * a[15] + 0.02 * a[20] - 0.01 * a14 + 0.3 * drop)
    thin = max(0.25, 1.0 - 0.55 * a[23] - 0.45 * a[24] - 0.30 * a[20])
    ul, ll = idn.lip_up * thin, idn.lip_lo * thin * (1 + 0.25 * a[17])
    r10, d16, c17 = 0.09 * a[10], 0.07 * a[16], 0.035 * a[17]
    gap = 0.075 * a[25] + 0.35 * drop
    top = min(my, *cvs) - 0.35 * gap - 1.4 * r10 - ul - 0.04
    lower_lip = my + 0.65 * gap + drop + 1.4 * d16 - c17 + ll  # at the centre, where it is lowest
    bottom = max(max(cvs) + ll + 0.04, lower_lip + 0.085)
    return max(cws) + 0.075, top, bottom


def _regions(g: _Geom, a: Mapping[int, float],
             unilateral: bool = False) -> list[tuple[int, float, float, float, float]]:
    """Per AU, boxes ``(au, u0, u1, v0, v1)`` in face units bounding everything that AU's drawing
    can change on this face, with the other AUs at their levels ``a`` and this one anywhere from
    0 to 5 (mirrors :func:`_draw_face`)."""
    idn = g.id
    ex, ey, ew, eh = idn.eye_x, idn.eye_y, g.ew, g.eh
    by = ey - idn.brow_gap
    mw, my, ny = g.mw, idn.mouth_y, idn.nose_y
    brow_top = by - idn.brow_arch - idn.brow_t
    R: list[tuple[int, float, float, float, float]] = []

    def both(au, u0, u1, v0, v1):
        R.append((au, u0, u1, v0, v1))
        R.append((au, -u1, -u0, v0, v1))

    def mouth(au, u_cap: float | None = None):
        lo, hi = dict(a), dict(a)
        lo[au], hi[au] = 0.0, 1.0
        w0, t0, b0 = _mouth_box(g, lo, unilateral)
        w1, t1, b1 = _mouth_box(g, hi, unilateral)
        w = max(w0, w1)
        R.append((au, -w, w if u_cap is None else u_cap, min(t0, t1), max(b0, b1)))

    brow_low = by + idn.brow_t + 0.085 * a[4]
    R.append((1, -0.72, 0.72, min(by - 0.31, brow_top - 0.14), brow_low))
    both(2, 0.12 - 0.07 * a[4], 0.72, min(by - 0.25, brow_top - 0.13), brow_low)
    R.append((4, -0.72, 0.72, brow_top - 0.14 * a[1] - 0.13 * a[2] - 0.01, by + 0.09 + idn.brow_t))
    eye_top = ey - 1.25 * eh - 0.5 * eh * 1.9 - 0.03  # the crease rides on the upper lid
    eye_mid = ey - 1.25 * eh - 0.5 * eh - 0.03
    eye_bot = ey + 0.8 * eh + 0.02
    both(5, ex - ew - 0.03, ex + ew + 0.03, eye_top, eye_bot)
    both(6, ex - ew - 0.03, ex + ew + 0.13, eye_mid, eye_bot + 0.12)
    both(6, 0.31, 0.72, 0.02, 0.40)
    both(7, ex - ew - 0.03, ex + ew + 0.03, eye_mid, eye_bot + 0.07)
    R.append((9, -(idn.nose_w * 1.15 + 0.06), idn.nose_w * 1.15 + 0.06, ey + 0.02, ny + 0.08))
    folds = (idn.nose_w, mw + 0.20, ny - 0.05, my + 0.10)
    mouth(10)
    both(10, *folds)
    mouth(12, 0.06 if unilateral else None)
    if unilateral:
        R.append((12, -folds[1], -folds[0], folds[2], folds[3]))
    else:
        both(12, *folds)
    mouth(14, 0.06 if unilateral else None)
    for au in (15, 16, 17, 20, 23, 24, 25, 26):
        mouth(au)
    R.append((17, -0.22, 0.22, 0.70, 0.84 + 0.16 * a[26] + 0.09))
    R.append((26, -1.01, 1.01, 0.12, 1.20))  # the jaw line, and style b's shading rings with it
    both(43, ex - ew - 0.03, ex + ew + 0.03, eye_mid, eye_bot + 0.06)
    return R


def region_masks(identity: Identity, intensities, nuisance: Nuisance | None = None, *, size: int = 112,
                 style: str = "a", unilateral: bool = False) -> np.ndarray:
    """Bool ``[K, size/4, size/4]``: per AU (``SYNTH_AUS`` order), the mask cells whose 4×4 pixels
    that AU's drawing can change on this face at this pose, whatever its own intensity (0-5) with
    the other AUs at ``intensities`` (see the module docstring)."""
    _check_size_style(size, style)
    nz = nuisance or Nuisance()
    g = _geometry(identity, style)
    return _masks(g, nz, size, _regions(g, _levels(_intensity_vector(intensities)), unilateral))


_MASK_GRID: dict[int, tuple[np.ndarray, np.ndarray]] = {}
_AU_ONEHOT: dict[tuple[int, ...], np.ndarray] = {}


def _masks(g: _Geom, nz: Nuisance, size: int, regions) -> np.ndarray:
    m = size // MASK_STRIDE
    if m not in _MASK_GRID:
        centers = (np.arange(m) + 0.5) * MASK_STRIDE
        zx, zy = np.meshgrid(centers, centers)
        _MASK_GRID[m] = (zx.ravel(), zy.ravel())
    zx, zy = _MASK_GRID[m]
    cu, cv, c0 = _pose(g, nz, size)  # face units -> output pixels
    # invert the 2x2 real map [[Re cu, Re cv], [Im cu, Im cv]] on (x, y) - c0
    det = cu.real * cv.imag - cv.real * cu.imag
    px, py = zx - c0.real, zy - c0.imag
    u = (cv.imag * px - cv.real * py) / det
    v = (cu.real * py - cu.imag * px) / det
    # pad by a cell's half-diagonal, half the widest line and the resampling blur (in face units)
    pad_px = MASK_STRIDE * 0.71 + 2.2
    pad_u, pad_v = pad_px / (size * nz.scale * g.W), pad_px / (size * nz.scale * g.H)
    R = np.asarray([r[1:] for r in regions], dtype=np.float64)
    R += (-pad_u, pad_u, -pad_v, pad_v)
    inside = (u >= R[:, 0:1]) & (u <= R[:, 1:2]) & (v >= R[:, 2:3]) & (v <= R[:, 3:4])
    key = tuple(int(r[0]) for r in regions)
    onehot = _AU_ONEHOT.get(key)
    if onehot is None:  # [K, R]: which AU each box belongs to (few distinct region layouts exist)
        onehot = np.zeros((_K, len(key)), dtype=np.float32)
        onehot[[_IDX[a] for a in key], np.arange(len(key))] = 1.0
        _AU_ONEHOT[key] = onehot
    return (onehot @ inside.astype(np.float32) > 0).reshape(_K, m, m)


def unpack_masks(packed: bytes | np.ndarray, size: int, n_aus: int = _K) -> np.ndarray:
    """The bool ``[K, size/4, size/4]`` masks from their stored bytes (``np.packbits(..., axis=0)``)."""
    m = size // MASK_STRIDE
    is_bytes = isinstance(packed, (bytes, bytearray, memoryview))
    arr = np.frombuffer(packed, dtype=np.uint8) if is_bytes else np.asarray(packed, np.uint8)
    arr = arr.reshape((n_aus + 7) // 8, m, m)
    return np.unpackbits(arr, axis=0, count=n_aus).astype(bool)


def record_masks(record) -> np.ndarray:
    """The AU region masks of a synth :class:`~facr.data.records.FaceRecord`: bool ``[K, S/4, S/4]``
    in the order of ``record.meta["mask_aus"]`` (``SYNTH_AUS``)."""
    meta = record.meta
    return unpack_masks(meta["au_masks"], int(meta["size"]), len(meta["mask_aus"]))


# ================================================================ render
def _check_size_style(size: int, style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    if not isinstance(size, (int, np.integer)) or size < 32 or size % MASK_STRIDE:
        raise ValueError(f"size must be an integer >= 32 and a multiple of {MASK_STRIDE}, got {size!r}")


def _intensity_vector(intensities) -> np.ndarray:
    """Intensities as a length-K float vector in ``SYNTH_AUS`` order (from a mapping or a vector)."""
    if isinstance(intensities, Mapping):
        out = np.zeros(_K)
        for key, value in intensities.items():
            n = au_vocab.parse(key)
            if n not in _IDX:
                raise ValueError(f"AU{n} is not drawn by the synthetic renderer (it draws {', '.join(SYNTH_AUS)})")
            out[_IDX[n]] = float(value)
    else:
        out = np.asarray(intensities, dtype=np.float64).reshape(-1)
        if out.shape != (_K,):
            raise ValueError(f"intensities must be a mapping or {_K} values in SYNTH_AUS order, got shape {out.shape}")
    if np.any(~np.isfinite(out)) or np.any(out < 0) or np.any(out > 5):
        raise ValueError("AU intensities must be in [0, 5]")
    return out


_NOISE: dict[int, np.ndarray] = {}


def _noise_field(size: int) -> np.ndarray:
    # One fixed field per size; an image takes a seeded random window and orientation of it,
    # which is as good as fresh noise here and ~10x cheaper than drawing S*S*3 normals.
    if size not in _NOISE:
        _NOISE[size] = np.random.default_rng(20240601).standard_normal((2 * size, 2 * size, 3)).astype(np.float32)
    return _NOISE[size]


_RAMPS: dict[int, np.ndarray] = {}


def _finish(im, nz: Nuisance, size: int) -> np.ndarray:
    arr = np.asarray(im.reduce(2), dtype=np.float32)
    if nz.light:
        if size not in _RAMPS:
            _RAMPS[size] = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
        ramp = _RAMPS[size]
        gx = np.float32(2.0 * nz.light * math.cos(nz.light_dir)) * ramp
        gy = np.float32(2.0 * nz.light * math.sin(nz.light_dir)) * ramp + np.float32(1.0)
        arr *= (gy[:, None] + gx[None, :])[..., None]
    if nz.noise:
        r = np.random.default_rng(nz.noise_seed)
        oy, ox = r.integers(0, size, 2)
        field_ = _noise_field(size)[oy:oy + size, ox:ox + size]
        if r.random() < 0.5:
            field_ = field_[::-1]
        arr += field_ * np.float32(nz.noise)
    arr += 0.5  # round to nearest on the cast
    np.clip(arr, 0, 255, out=arr)
    return arr.astype(np.uint8)


def render_face(identity: Identity, intensities, nuisance: Nuisance | None = None, *, size: int = 112,
                style: str = "a", unilateral: bool = False, masks: bool = False):
    """Draw one face: ``HxWx3`` uint8 (and, with ``masks=True``, the AU region masks).

    ``intensities``: a mapping of AU spellings to 0-5 (missing AUs are 0) or ``K`` values in
    ``SYNTH_AUS`` order; AU43 is binary (any value ≥ 0.5 closes the eyes). ``unilateral`` draws
    AU12 and AU14 on the image-left side only (contempt's R12A/R14A). Returns ``image`` or
    ``(image, masks)`` with masks bool ``[K, size/4, size/4]`` (see :func:`region_masks`).
    """
    _check_size_style(size, style)
    nz = nuisance or Nuisance()
    g = _geometry(identity, style)
    I = _intensity_vector(intensities)
    cv = _Canvas(2 * size, g, nz, _hsv(nz.bg_hue % 1.0, g.st.bg_sat, nz.bg_value))
    _draw_face(cv, g, I, unilateral)
    img = _finish(cv.im, nz, size)
    if masks:
        return img, _masks(g, nz, size, _regions(g, _levels(I), unilateral))
    return img


# ================================================================ the structural causal model
@dataclass
class SynthConfig:
    """Settings of the synthetic benchmark; validated in ``__post_init__`` (``ValueError`` naming the field).

    ``n`` images of ``size``×``size`` from ``subjects`` subjects in ``style`` a or b; ``shortcut``
    is RATE in [0, 1] (see the module docstring) on ``shortcut_target`` ``emotion`` or ``pain``;
    ``emotion_prior`` maps emotions to weights (None: uniform; unlisted emotions get 0);
    ``contempt`` adds the eighth emotion; ``pain=False`` switches the pain process off (and
    leaves ``pain`` out of the true graph). The remaining fields are the SCM's knobs.
    """

    # metadata: the flags of `facr data synth` (facr.flags)
    n: int = field(default=2000, metadata={"help": "number of images"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    size: int = field(default=112, metadata={"help": f"image side in pixels, a multiple of {MASK_STRIDE}"})
    style: str = field(default="a", metadata={"choices": STYLES, "help": "rendering style / domain"})
    subjects: int = field(default=25, metadata={"help": "number of subjects"})
    shortcut: float = field(default=0.0, metadata={
        "metavar": "RATE", "help": "probability that the background hue shows the image's class in train/val "
                                   "(test: never more than chance); 0 = no shortcut"})
    shortcut_target: str = field(default="emotion", metadata={
        "choices": ("emotion", "pain"), "help": "the label the shortcut tracks"})
    contempt: bool = field(default=False, metadata={"help": "add contempt as an eighth emotion"})
    pain: bool = field(default=True, metadata={"flag": "--no-pain", "help": "switch the pain process off"})
    emotion_prior: dict[str, float] | None = None
    p_prototype: float = 0.85
    base_rate: float = 0.08
    p_inhibited: float = 0.01
    pain_rate: float = 0.1
    never_pain_fraction: float = 0.1
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    max_angle: float = 8.0
    noise: float = 3.0

    def __post_init__(self):
        for name in ("n", "seed", "size", "subjects"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if not 1 <= self.n <= MAX_N:
            raise ValueError(f"n must be in [1, {MAX_N}], got {self.n}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(STYLES)}, got {self.style!r}")
        if not 32 <= self.size <= MAX_SIZE or self.size % MASK_STRIDE:
            raise ValueError(f"size must be a multiple of {MASK_STRIDE} in [32, {MAX_SIZE}], got {self.size}")
        if self.subjects < 3:
            raise ValueError(f"subjects must be >= 3 (one per split at least), got {self.subjects}")
        if self.n < self.subjects:
            raise ValueError(f"n must be >= subjects (every subject needs an image): n={self.n}, "
                             f"subjects={self.subjects}")
        for name in ("shortcut", "p_prototype", "base_rate", "p_inhibited", "pain_rate", "never_pain_fraction"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
        if self.shortcut_target not in ("emotion", "pain"):
            raise ValueError(f"shortcut_target must be 'emotion' or 'pain', got {self.shortcut_target!r}")
        if self.shortcut_target == "pain" and not self.pain:
            raise ValueError("shortcut_target 'pain' needs pain=True")
        fr = tuple(float(f) for f in self.split_fractions)
        if len(fr) != 3 or any(f <= 0 for f in fr) or not math.isclose(sum(fr), 1.0, abs_tol=1e-6):
            raise ValueError("split_fractions must be three positive numbers summing to 1, "
                             f"got {self.split_fractions!r}")
        self.split_fractions = fr
        if not 0.0 <= self.max_angle <= 45.0:
            raise ValueError(f"max_angle must be in [0, 45] degrees, got {self.max_angle}")
        if not 0.0 <= self.noise <= 50.0:
            raise ValueError(f"noise must be in [0, 50] grey levels, got {self.noise}")
        if self.emotion_prior is not None:
            prior = {str(k): float(v) for k, v in dict(self.emotion_prior).items()}
            unknown = sorted(set(prior) - set(self.emotions))
            if unknown:
                raise ValueError(f"emotion_prior: unknown emotion(s) {', '.join(unknown)} "
                                 f"(classes: {', '.join(self.emotions)})")
            if any(not math.isfinite(v) or v < 0 for v in prior.values()) or sum(prior.values()) <= 0:
                raise ValueError(f"emotion_prior: weights must be >= 0 with a positive sum, got {prior}")
            self.emotion_prior = prior

    @property
    def emotions(self) -> list[str]:
        """The emotion classes, in label order."""
        return list(EMOTIONS) + (["contempt"] if self.contempt else [])

    @property
    def shortcut_classes(self) -> list[str]:
        """The classes that own a background hue (class j shows hue j / C)."""
        return self.emotions if self.shortcut_target == "emotion" else ["no_pain", "pain"]

    def prior(self) -> np.ndarray:
        """P(emotion) in ``emotions`` order."""
        if self.emotion_prior is None:
            return np.full(len(self.emotions), 1.0 / len(self.emotions))
        p = np.array([self.emotion_prior.get(e, 0.0) for e in self.emotions])
        return p / p.sum()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["split_fractions"] = list(self.split_fractions)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SynthConfig":
        """A config from plain data (a YAML section, a dataset's ``synth_config.json``), every field's
        type checked (:func:`facr.config.from_dict`); problems are ``ValueError`` naming the field."""
        from facr.config import ConfigError, from_dict

        try:
            return from_dict(cls, dict(d))
        except ConfigError as exc:
            raise ValueError(exc.message) from None


@dataclass
class Scene:
    """Everything the SCM draws for a dataset, before any pixel: labels, identities, nuisances.

    Arrays have one row per image (index i); ``intensity`` is ``[n, K]`` in ``SYNTH_AUS`` order.
    """

    config: SynthConfig
    identities: list[Identity]
    subject_names: list[str]
    subject_split: list[str]
    never_pain: list[bool]
    subject: np.ndarray
    frame: np.ndarray
    emotion: np.ndarray
    intensity: np.ndarray
    pspi: np.ndarray
    pain_level: np.ndarray
    cue: np.ndarray
    unilateral: np.ndarray
    nuisance: np.ndarray  # [n, 10]: the Nuisance fields in declaration order

    @property
    def n(self) -> int:
        return len(self.subject)

    @property
    def split(self) -> np.ndarray:
        return np.asarray(self.subject_split, dtype=object)[self.subject]

    @property
    def presence(self) -> np.ndarray:
        return (self.intensity > 0).astype(np.int8)

    @property
    def shortcut_class(self) -> np.ndarray:
        """Per image, the index (in ``config.shortcut_classes``) of the class the cue should track."""
        return self.emotion if self.config.shortcut_target == "emotion" else (self.pspi > 0).astype(np.int64)


def _subject_splits(k: int, fractions, rng: np.random.Generator) -> list[str]:
    n_val = max(1, int(round(k * fractions[1])))
    n_test = max(1, int(round(k * fractions[2])))
    n_train = k - n_val - n_test
    if n_train < 1:
        n_train, n_val = 1, k - 1 - n_test
    order = rng.permutation(k)
    split = [""] * k
    for rank, s in enumerate(order):
        split[s] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    return split


def sample_scene(config: SynthConfig) -> Scene:
    """Draw the SCM's variables for ``config`` (vectorised; no rendering). Same seed, same scene."""
    cfg = config
    n, K, S = cfg.n, _K, cfg.subjects
    r_subj = np.random.default_rng([cfg.seed, 1])
    identities = [random_identity(r_subj) for _ in range(S)]
    expressivity = r_subj.uniform(0.75, 1.15, S)
    rate_mult = np.clip(np.exp(r_subj.normal(0.0, 0.35, (S, K))), 0.5, 2.0)
    n_never = max(1, int(round(S * cfg.never_pain_fraction))) if cfg.pain else 0
    never = np.zeros(S, dtype=bool)
    never[r_subj.choice(S, n_never, replace=False)] = True
    pain_rate = (np.where(never, 0.0, np.clip(cfg.pain_rate * r_subj.uniform(0.5, 1.5, S), 0.0, 0.9)) if cfg.pain
                 else np.zeros(S))
    split_of = _subject_splits(S, cfg.split_fractions, r_subj)
    width = len(str(S))
    names = [f"S{j + 1:0{width}d}" for j in range(S)]

    r = np.random.default_rng([cfg.seed, 2])
    subject = np.arange(n) % S
    frame = np.arange(n) // S
    emotions = cfg.emotions
    emotion = r.choice(len(emotions), size=n, p=cfg.prior())

    # spontaneous activity: base rate x the subject's multiplier (never-in-pain subjects: no PSPI AUs)
    base = np.array([cfg.base_rate * _BASE_MULT.get(a, 1.0) for a in SYNTH_AU_NUMBERS])
    p_base = np.clip(base[None, :] * rate_mult[subject], 0.0, 1.0)
    pspi_cols = [_IDX[a] for a in _PSPI]
    p_base[np.ix_(never[subject], pspi_cols)] = 0.0
    on = r.random((n, K)) < p_base
    I = np.where(on, r.integers(1, 4, (n, K)), 0).astype(np.float64)

    # emotion -> AU (excitatory): each prototype AU present with p_prototype
    proto = np.zeros((len(emotions), K), dtype=bool)
    for ci, e in enumerate(emotions):
        for a in _prototypes(e):
            proto[ci, _IDX[a]] = True
    strength = np.clip(np.rint(r.normal(3.2 * expressivity[subject][:, None], 1.0, (n, K))), 1, 5)
    hit = proto[emotion] & (r.random((n, K)) < cfg.p_prototype)
    I = np.where(hit, np.maximum(I, strength), I)

    # pain -> PSPI AUs (independent of the emotion)
    in_pain = r.random(n) < pain_rate[subject]
    level = np.where(in_pain, r.uniform(0.2, 1.0, n), 0.0)
    I = _pain_aus(I, level, r)

    # emotion -| AU (inhibitory): present with p_inhibited whatever else drives it
    for ci, e in enumerate(emotions):
        for a in INHIBITIONS.get(e, ()):
            rows = emotion == ci
            keep = r.random(n) < cfg.p_inhibited
            k = _IDX[a]
            I[rows, k] = np.where(keep[rows], np.maximum(I[rows, k], 1.0), 0.0)

    # AU -> AU co-activation (sources are never targets: one pass suffices)
    for src, dst, p in CO_ACTIVATION:
        ks, kd = _IDX[src], _IDX[dst]
        fire = (I[:, ks] > 0) & (r.random(n) < p)
        I[:, kd] = np.where(fire, np.maximum(I[:, kd], np.clip(np.rint(0.7 * I[:, ks]), 1, 5)), I[:, kd])
    I[:, _IDX[43]] = np.minimum(I[:, _IDX[43]], 1.0)

    pspi = au_vocab.pspi({a: I[:, _IDX[a]] for a in _PSPI})
    pspi = np.asarray(pspi, dtype=np.float64)

    # the shortcut: background hue of the class (train/val, with prob RATE) or of a random class
    n_cls = len(cfg.shortcut_classes)
    target = emotion if cfg.shortcut_target == "emotion" else (pspi > 0).astype(np.int64)
    split = np.asarray(split_of, dtype=object)[subject]
    planted = (split != "test") & (r.random(n) < cfg.shortcut)
    cue = np.where(planted, target, r.integers(0, n_cls, n))

    unilateral = np.zeros(n, dtype=bool)
    if cfg.contempt:
        unilateral = emotion == emotions.index("contempt")

    nz = np.empty((n, 10))
    nz[:, 0] = r.uniform(-cfg.max_angle, cfg.max_angle, n)
    nz[:, 1] = r.uniform(0.93, 1.07, n)
    nz[:, 2] = r.uniform(-0.035, 0.035, n)
    nz[:, 3] = r.uniform(-0.035, 0.035, n)
    nz[:, 4] = r.uniform(0.0, 0.25, n)
    nz[:, 5] = r.uniform(0.0, 2 * np.pi, n)
    nz[:, 6] = cfg.noise * r.uniform(0.5, 1.5, n)
    nz[:, 7] = r.integers(0, 2**31 - 1, n)
    nz[:, 8] = cue / n_cls
    nz[:, 9] = r.uniform(0.72, 0.92, n)
    return Scene(cfg, identities, names, split_of, never.tolist(), subject, frame, emotion, I, pspi, level, cue,
                 unilateral, nz)


def _prototypes(emotion: str) -> tuple[int, ...]:
    from facr.graph.prototypes import EMFACS_PROTOTYPES

    return EMFACS_PROTOTYPES.get(emotion, ())


def _pain_aus(I: np.ndarray, level: np.ndarray, r: np.random.Generator) -> np.ndarray:
    """Pain level L in (0, 1] turns on the PSPI AUs, more of them and stronger as L grows."""
    n = len(level)
    pain = level > 0
    amp = lambda: np.clip(np.rint(1 + 4 * level * r.uniform(0.5, 1.0, n)), 1, 5)  # noqa: E731
    u = r.random((n, 6))
    which67 = r.random(n)
    which910 = r.random(n)
    want = {
        4: pain & (u[:, 0] < 0.45 + 0.45 * level),
        6: pain & (u[:, 1] < 0.55 + 0.40 * level) & (which67 < 0.6),
        7: pain & (u[:, 1] < 0.55 + 0.40 * level) & (which67 >= 0.4),
        9: pain & (u[:, 2] < 0.25 + 0.45 * level) & (which910 < 0.6),
        10: pain & (u[:, 2] < 0.25 + 0.45 * level) & (which910 >= 0.4),
        43: pain & (u[:, 3] < 0.35 * level),
    }
    none = pain & ~np.any(np.stack(list(want.values())), axis=0)
    want[7] = want[7] | none  # pain always shows somewhere: the lids tighten
    for a, rows in want.items():
        k = _IDX[a]
        value = np.ones(n) if a == 43 else amp()
        I[:, k] = np.where(rows, np.maximum(I[:, k], value), I[:, k])
    return I


# ================================================================ the true graph
def true_graph(config: SynthConfig | None = None):
    """The SCM's graph as an :class:`~facr.graph.AUGraph` (provenance ``truth``).

    AU → class edges: +1 for each prototype AU of an emotion (weight ``p_prototype``), −1 for
    each inhibited AU (weight 1 − ``p_inhibited``); ``neutral`` has no parents; ``pain`` (when
    the pain process is on) has the PSPI parents. AU → AU edges: the co-activations (weight =
    their probability). Every ``SYNTH_AUS`` AU is a node.
    """
    from facr.graph import AUGraph
    from facr.graph.prototypes import PSPI_FORMULA

    cfg = config or SynthConfig()
    g = AUGraph(f"synth-truth-{cfg.style}", {
        "description": "The generating structure of a facr synthetic benchmark (facr.data.synth).",
        "seed": cfg.seed,
        "p_prototype": cfg.p_prototype,
        "p_inhibited": cfg.p_inhibited,
        "base_rate": cfg.base_rate,
        "pspi_formula": PSPI_FORMULA,
    })
    for e in cfg.emotions:
        g.add_class(e)
    if cfg.pain:
        g.add_class("pain")
    for a in SYNTH_AUS:
        g.add_au(a)
    for e in cfg.emotions:
        for a in _prototypes(e):
            g.add_edge(f"AU{a}", e, 1, cfg.p_prototype, "truth", note="prototype (EMFACS)")
        for a in INHIBITIONS.get(e, ()):
            g.add_edge(f"AU{a}", e, -1, round(1.0 - cfg.p_inhibited, 6), "truth", note="inhibition")
    if cfg.pain:
        for a in _PSPI:
            note = {6: "max(AU6, AU7)", 7: "max(AU6, AU7)", 9: "max(AU9, AU10)", 10: "max(AU9, AU10)"}.get(a, "PSPI")
            g.add_edge(f"AU{a}", "pain", 1, 1.0, "truth", note=note)
    for src, dst, p in CO_ACTIVATION:
        g.add_edge(f"AU{src}", f"AU{dst}", 1, p, "truth", note="co-activation")
    return g


# ================================================================ generation
@dataclass
class SynthBatch:
    """Rendered images of a :class:`Scene`: ``images`` uint8 ``[n, S, S, 3]`` (or PNG bytes when
    encoded) and ``masks`` packed uint8 ``[n, ceil(K/8), S/4, S/4]``."""

    scene: Scene
    images: Any
    masks: np.ndarray


def _nuisance_row(r) -> Nuisance:
    """A :class:`Nuisance` from a row of ``Scene.nuisance`` (its fields in declaration order)."""
    return Nuisance(r[0], r[1], r[2], r[3], r[4], r[5], r[6], int(r[7]), r[8], r[9])


def _render_chunk(payload) -> tuple[Any, np.ndarray]:
    identities, subj, I, nzs, uni, size, style, png = payload
    m = size // MASK_STRIDE
    masks = np.empty((len(subj), (_K + 7) // 8, m, m), dtype=np.uint8)
    images = [] if png else np.empty((len(subj), size, size, 3), dtype=np.uint8)
    geoms: dict[int, _Geom] = {}
    for j in range(len(subj)):
        s = int(subj[j])
        g = geoms.get(s) or geoms.setdefault(s, _geometry(identities[s], style))
        reg = _regions(g, _levels(I[j]), bool(uni[j]))
        nz = _nuisance_row(nzs[j])
        cv = _Canvas(2 * size, g, nz, _hsv(nz.bg_hue % 1.0, g.st.bg_sat, nz.bg_value))
        _draw_face(cv, g, I[j], bool(uni[j]))
        img = _finish(cv.im, nz, size)
        masks[j] = np.packbits(_masks(g, nz, size, reg), axis=0)
        if png:
            images.append(_png(img))
        else:
            images[j] = img
    return images, masks


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _deflate(data: bytes) -> bytes:
    c = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_HUFFMAN_ONLY)
    return c.compress(data) + c.flush()


def _png(img: np.ndarray) -> bytes:
    """A lossless RGB PNG of ``img`` (uint8 ``[H, W, 3]``), written directly: every row with the
    PNG "sub" filter, deflated with Huffman coding only. The pixel noise leaves little for LZ77
    to find, so this is ~4x faster than PIL's encoder and 8 % smaller; any PNG reader decodes it."""
    h, w, _ = img.shape
    a = np.ascontiguousarray(img, dtype=np.uint8).reshape(h, 3 * w)
    raw = np.empty((h, 3 * w + 1), dtype=np.uint8)
    raw[:, 0] = 1  # filter type 1: sub (difference to the pixel on the left)
    raw[:, 1:4] = a[:, :3]
    np.subtract(a[:, 3:], a[:, :-3], out=raw[:, 4:])
    return (b"\x89PNG\r\n\x1a\n"
            + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + _png_chunk(b"IDAT", _deflate(raw.tobytes()))
            + _png_chunk(b"IEND", b""))


def _chunks(scene: Scene, indices: np.ndarray, png: bool, chunk: int) -> Iterator[tuple]:
    cfg = scene.config
    for start in range(0, len(indices), chunk):
        idx = indices[start:start + chunk]
        yield (scene.identities, scene.subject[idx], scene.intensity[idx], scene.nuisance[idx], scene.unilateral[idx],
               cfg.size, cfg.style, png)


def render_counterfactual(scene: Scene, indices, cue: int | None = None) -> np.ndarray:
    """Images ``indices`` of a benchmark's ``scene`` (``sample_scene(config)``; sample it once and
    re-render from it), re-rendered with the background hue of shortcut class ``cue`` (an index
    into ``config.shortcut_classes``) — the image-level intervention do(cue = c') the audit's
    oracle uses; ``cue=None`` re-renders the image as it was written (PNG is lossless, so the
    pixels are identical). uint8 ``[n, S, S, 3]``."""
    idx = _scene_indices(scene, indices)
    nz = scene.nuisance[idx].copy()
    if cue is not None:
        n_cls = len(scene.config.shortcut_classes)
        if not 0 <= cue < n_cls:
            raise ValueError(f"cue must lie in [0, {n_cls}), got {cue}")
        nz[:, 8] = cue / n_cls
    return _render_rows(scene, scene.subject[idx], scene.intensity[idx], nz, scene.unilateral[idx])[0]


NUISANCE_CHANGES = ("hue", "identity", "pose", "light")
"""The nuisance changes :func:`render_intervention` makes, each one fixed and deterministic:

* ``hue`` — the background takes the hue of shortcut class (cue + ⌊C/2⌋) mod C, the class hue
  farthest round the colour circle from the one shown (C = 2: the other class's);
* ``identity`` — the face of the next subject of the scene, (s + 1) mod S (face shape, skin, hair,
  shirt and feature positions change; the AU intensities, pose, light and background stay);
* ``pose`` — ``POSE_SHIFT_DEG`` degrees of in-plane rotation and ``POSE_SHIFT_DX`` of horizontal
  shift, each towards (and past) zero, so a sampled pose stays inside the sampled range;
* ``light`` — the gradient turns round (direction + π) and its strength becomes 0.25 − strength
  (the sampled range is [0, 0.25]: an unlit face gets the strongest gradient)."""
POSE_SHIFT_DEG = 8.0
POSE_SHIFT_DX = 0.035


def _scene_indices(scene: Scene, indices) -> np.ndarray:
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(idx) and (idx.min() < 0 or idx.max() >= scene.n):
        raise ValueError(f"indices must lie in [0, {scene.n}), got {idx.min()}..{idx.max()}")
    return idx


def _render_rows(scene: Scene, subj, I, nz, uni) -> tuple[np.ndarray, np.ndarray]:
    """Render rows given explicitly (subject, intensities, nuisance, unilateral): images uint8
    ``[n, S, S, 3]`` and packed masks, through the one renderer the benchmark is written with."""
    cfg = scene.config
    return _render_chunk((scene.identities, subj, I, nz, uni, cfg.size, cfg.style, False))


def render_intervention(scene: Scene, indices, *, au=None, value=0.0, nuisance: str | None = None,
                        masks: bool = False, subjects=None):
    """Images ``indices`` of a benchmark's ``scene`` re-rendered under an intervention in pixels.

    ``au`` (an AU spelling, or one per index, each an AU or a list of AUs set together):
    do(AU_k = ``value``) — that AU drawn at intensity ``value`` (0-5; one number or one per index),
    everything else held: identity, pose, light,
    noise, background and the other AUs (held, not propagated through the SCM's AU → AU
    co-activations: the question is whether z_k reads AU k's pixels). ``nuisance`` (one of
    :data:`NUISANCE_CHANGES`): that nuisance changed as documented there, the AUs held. Both may
    be given; neither re-renders the image as written (identical pixels). Indices may repeat (one
    row per (image, AU) pair). Returns uint8 ``[n, S, S, 3]``, with ``masks=True`` also the AU
    region masks of the rendered rows (bool ``[n, K, S/4, S/4]``, see :func:`region_masks`).
    ``subjects``: the identities the ``identity`` change draws from, the next one of them after the
    face's own (default: every subject; training passes its own split's, so that no held-out face
    is ever shown).
    """
    idx = _scene_indices(scene, indices)
    subj, I, nz, uni = _intervention_rows(scene, idx, au, value, nuisance, subjects)
    images, packed = _render_rows(scene, subj, I, nz, uni)
    if not masks:
        return images
    m = scene.config.size // MASK_STRIDE
    return images, np.unpackbits(packed, axis=1, count=_K).astype(bool).reshape(len(idx), _K, m, m)


def _intervention_rows(scene: Scene, idx: np.ndarray, au, value, nuisance: str | None, subjects):
    """(subject, intensities, nuisance, unilateral) of rows ``idx`` under the intervention of
    :func:`render_intervention` (one place for what each intervention changes)."""
    n = len(idx)
    subj, I = scene.subject[idx].copy(), scene.intensity[idx].copy()
    nz, uni = scene.nuisance[idx].copy(), scene.unilateral[idx]
    if au is not None:
        names = [au] * n if isinstance(au, (str, int, np.integer)) else list(au)
        if len(names) != n:
            raise ValueError(f"au: one AU or one per index ({n}), got {len(names)}")
        rows, cols = [], []
        for i, entry in enumerate(names):  # an AU, or several AUs set together in this row
            for a in ([entry] if isinstance(entry, (str, int, np.integer)) else entry):
                k = _IDX.get(au_vocab.parse(a))
                if k is None:
                    raise ValueError(f"{a!r} is not drawn by the synthetic renderer (it draws {', '.join(SYNTH_AUS)})")
                rows.append(i)
                cols.append(k)
        v = np.broadcast_to(np.asarray(value, dtype=np.float64), (n,))
        if np.any(~np.isfinite(v)) or np.any(v < 0) or np.any(v > 5):
            raise ValueError("value: AU intensities must be in [0, 5]")
        I[rows, cols] = v[rows]
        I[:, _IDX[43]] = np.minimum(I[:, _IDX[43]], 1.0)  # AU43 is binary, as the SCM draws it
    if nuisance is not None:
        if nuisance not in NUISANCE_CHANGES:
            raise ValueError(f"nuisance must be one of {', '.join(NUISANCE_CHANGES)}, got {nuisance!r}")
        if nuisance == "hue":
            n_cls = len(scene.config.shortcut_classes)
            nz[:, 8] = ((scene.cue[idx] + n_cls // 2) % n_cls) / n_cls
        elif nuisance == "identity":
            pool = np.unique(np.arange(len(scene.identities)) if subjects is None else np.asarray(subjects, np.int64))
            if len(pool) < 2 or pool.min() < 0 or pool.max() >= len(scene.identities):
                raise ValueError(f"subjects: at least two of the scene's {len(scene.identities)} subjects")
            subj = pool[np.searchsorted(pool, subj, side="right") % len(pool)]
        elif nuisance == "pose":
            nz[:, 0] += np.where(nz[:, 0] >= 0, -POSE_SHIFT_DEG, POSE_SHIFT_DEG)
            nz[:, 2] += np.where(nz[:, 2] >= 0, -POSE_SHIFT_DX, POSE_SHIFT_DX)
        else:
            nz[:, 4] = 0.25 - nz[:, 4]
            nz[:, 5] = nz[:, 5] + np.pi
    return subj, I, nz, uni


def face_masks(scene: Scene, indices, *, au=None, value=0.0, nuisance: str | None = None,
               subjects=None) -> np.ndarray:
    """Bool ``[n, S, S]``: the pixels inside the face outline (the head shape, AU26's jaw drop
    included; not the hair, ears, neck or background) of the rows :func:`render_intervention`
    draws with the same arguments. An outline pixel that the edge's anti-aliasing mixes with
    what lies outside counts as outside (one pixel eroded), so a mask's inside holds nothing of
    the background — what training needs to randomise the background without leaving its hue."""
    from PIL import Image, ImageDraw

    idx = _scene_indices(scene, indices)
    subj, I, nz, _ = _intervention_rows(scene, idx, au, value, nuisance, subjects)
    size, style = scene.config.size, scene.config.style
    out = np.empty((len(idx), size, size), dtype=bool)
    for j in range(len(idx)):
        g = _geometry(scene.identities[int(subj[j])], style)
        cu, cv, c0 = _pose(g, _nuisance_row(nz[j]), 2 * size)
        fu, fv = _face_outline(g.id.jaw, 0.16 * _levels(I[j])[26])
        pts = (fu * cu + fv * cv + c0).view(np.float64).tolist()
        im = Image.new("L", (2 * size, 2 * size), 0)
        ImageDraw.Draw(im).polygon(pts, fill=1)
        inside = np.asarray(im, dtype=bool).reshape(size, 2, size, 2).all(axis=(1, 3))
        eroded = inside.copy()  # a pixel is inside when its 4-neighbours are too
        eroded[1:] &= inside[:-1]
        eroded[:-1] &= inside[1:]
        eroded[:, 1:] &= inside[:, :-1]
        eroded[:, :-1] &= inside[:, 1:]
        out[j] = eroded
    return out


def _default_workers(n: int) -> int:
    # Process start-up costs ~0.1 s: not worth it for a few hundred images.
    return 1 if n < 1000 else max(1, min(2, os.cpu_count() or 1))


def _run(scene: Scene, indices: np.ndarray, png: bool, workers: int | None, progress: bool, chunk: int = 250):
    """Render ``indices`` of ``scene`` in order (in ``workers`` processes); yields chunk results."""
    workers = _default_workers(len(indices)) if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(indices), desc="rendering", unit="img")
    try:
        if workers == 1:
            results = map(_render_chunk, _chunks(scene, indices, png, chunk))
            for res in results:
                if bar is not None:
                    bar.update(len(res[1]))
                yield res
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
                for res in pool.map(_render_chunk, _chunks(scene, indices, png, chunk)):
                    if bar is not None:
                        bar.update(len(res[1]))
                    yield res
    finally:
        if bar is not None:
            bar.close()


def generate(config: SynthConfig, *, workers: int | None = None, progress: bool = False,
             indices: Sequence[int] | None = None) -> SynthBatch:
    """Sample the scene and render it: images ``[n, S, S, 3]`` uint8 and packed masks.

    ``indices`` renders only those images (the scene is still the whole dataset's). ``workers``
    processes render chunks in order (default: 2 for 1000+ images, else 1); the result does not
    depend on it.
    """
    scene = sample_scene(config)
    idx = np.arange(scene.n) if indices is None else np.asarray(indices, dtype=np.int64)
    imgs, masks = [], []
    for im, mk in _run(scene, idx, False, workers, progress):
        imgs.append(im)
        masks.append(mk)
    m = config.size // MASK_STRIDE
    images = np.concatenate(imgs) if imgs else np.empty((0, config.size, config.size, 3), np.uint8)
    packed = np.concatenate(masks) if masks else np.empty((0, (_K + 7) // 8, m, m), np.uint8)
    return SynthBatch(scene, images, packed)


# ================================================================ on disk
def _features(cfg: SynthConfig):
    import datasets

    K = _K
    return datasets.Features({
        "image": datasets.Image(),
        "index": datasets.Value("int64"),
        "subject": datasets.Value("string"),
        "frame": datasets.Value("int64"),
        "split": datasets.Value("string"),
        "emotion": datasets.Value("string"),
        "label": datasets.ClassLabel(names=cfg.emotions),
        "au_presence": datasets.Sequence(datasets.Value("int8"), length=K),
        "au_intensity": datasets.Sequence(datasets.Value("float32"), length=K),
        "pspi": datasets.Value("float32"),
        "pain": datasets.Value("int8"),
        "pain_level": datasets.Value("float32"),
        "cue": datasets.Value("string"),
        "cue_hue": datasets.Value("float32"),
        "cue_agrees": datasets.Value("bool"),
        "unilateral": datasets.Value("bool"),
        "pose": datasets.Sequence(datasets.Value("float32"), length=4),
        "au_masks": datasets.Value("binary"),
    })


def _rows(scene: Scene, idx: np.ndarray, pngs: list[bytes], masks: np.ndarray) -> dict[str, Any]:
    """The columns of images ``idx`` as Arrow arrays of the :func:`_features` types (built from
    numpy directly: ``datasets``' per-row encoding would cost as much as the rendering)."""
    import pyarrow as pa

    cfg = scene.config
    n = len(idx)
    classes = np.asarray(cfg.shortcut_classes, dtype=object)
    emotions = np.asarray(cfg.emotions, dtype=object)
    names = np.asarray(scene.subject_names, dtype=object)
    splits = np.asarray(scene.subject_split, dtype=object)
    subj = scene.subject[idx]

    def fixed(values: np.ndarray, typ) -> pa.Array:
        return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(values).reshape(-1), type=typ),
                                                 values.shape[1])

    return {
        "image": pa.StructArray.from_arrays([pa.array(pngs, type=pa.binary()), pa.nulls(n, type=pa.string())],
                                            names=["bytes", "path"]),
        "index": pa.array(idx.astype(np.int64)),
        "subject": pa.array(names[subj].tolist(), type=pa.string()),
        "frame": pa.array(scene.frame[idx].astype(np.int64)),
        "split": pa.array(splits[subj].tolist(), type=pa.string()),
        "emotion": pa.array(emotions[scene.emotion[idx]].tolist(), type=pa.string()),
        "label": pa.array(scene.emotion[idx].astype(np.int64)),
        "au_presence": fixed(scene.presence[idx].astype(np.int8), pa.int8()),
        "au_intensity": fixed(scene.intensity[idx].astype(np.float32), pa.float32()),
        "pspi": pa.array(scene.pspi[idx].astype(np.float32)),
        "pain": pa.array((scene.pspi[idx] > 0).astype(np.int8)),
        "pain_level": pa.array(scene.pain_level[idx].astype(np.float32)),
        "cue": pa.array(classes[scene.cue[idx]].tolist(), type=pa.string()),
        "cue_hue": pa.array(scene.nuisance[idx, 8].astype(np.float32)),
        "cue_agrees": pa.array(scene.cue[idx] == scene.shortcut_class[idx]),
        "unilateral": pa.array(scene.unilateral[idx].astype(bool)),
        "pose": fixed(scene.nuisance[idx, :4].astype(np.float32), pa.float32()),
        "au_masks": pa.array([m.tobytes() for m in masks], type=pa.binary()),
    }


def dataset_config(scene: Scene) -> dict[str, Any]:
    """What ``config.json`` holds: the :class:`SynthConfig`, the orders, the subjects and the SCM tables."""
    from facr import __version__

    cfg = scene.config
    return {
        "format": "facr-synth",
        "version": 1,
        "facr_version": __version__,
        "config": cfg.to_dict(),
        "aus": list(SYNTH_AUS),
        "emotions": cfg.emotions,
        "classes": cfg.emotions + (["pain"] if cfg.pain else []),
        "shortcut": {
            "rate": cfg.shortcut, "target": cfg.shortcut_target, "classes": cfg.shortcut_classes,
            "hues": {c: j / len(cfg.shortcut_classes) for j, c in enumerate(cfg.shortcut_classes)},
            "train_val": "class hue with probability rate, else a uniformly random class's hue",
            "test": "a uniformly random class's hue",
        },
        "mask": {"stride": MASK_STRIDE, "shape": [_K, cfg.size // MASK_STRIDE, cfg.size // MASK_STRIDE],
                 "encoding": "np.packbits(mask, axis=0) of a bool [K, S/4, S/4] array, AUs in 'aus' order"},
        "subjects": {name: {"split": sp, "never_in_pain": bool(nv)}
                     for name, sp, nv in zip(scene.subject_names, scene.subject_split, scene.never_pain)},
        "scm": {
            "prototypes": {e: [f"AU{a}" for a in _prototypes(e)] for e in cfg.emotions},
            "inhibitions": {e: [f"AU{a}" for a in INHIBITIONS[e]] for e in cfg.emotions if e in INHIBITIONS},
            "co_activation": [[f"AU{s}", f"AU{d}", p] for s, d, p in CO_ACTIVATION],
            "base_rate_multipliers": {f"AU{a}": m for a, m in sorted(_BASE_MULT.items())},
            "pspi_aus": [f"AU{a}" for a in _PSPI],
        },
        "counts": {sp: int(np.sum(scene.split == sp)) for sp in ("train", "val", "test")},
    }


def _empty_table(features):
    import pyarrow as pa

    return pa.Table.from_batches([], schema=features.arrow_schema)


def write_synth(out: str | os.PathLike, config: SynthConfig, *, overwrite: bool = False, workers: int | None = None,
                progress: bool = False) -> dict[str, Any]:
    """Generate the benchmark of ``config`` into the folder ``out`` (see the module docstring).

    Everything is written to a temporary folder beside ``out`` and renamed into place at the end,
    so a failure leaves nothing half-written (:func:`facr.outputs.output_dir`, kind ``synth``). An
    existing ``out`` must be empty, or an earlier synth folder and ``overwrite`` set; any other folder
    is refused (:class:`~facr.outputs.OutputError`). Returns a summary: counts, graph size and timings
    (``render_s``: sampling + rendering + PNG encoding; ``write_s``: building and saving the
    Arrow files).
    """
    import datasets
    import pyarrow as pa

    from facr.graph import save_graph
    from facr.outputs import output_dir
    from facr.utils import write_json

    out = Path(out)
    bars_were_on = datasets.utils.logging.is_progress_bar_enabled()
    try:
        with output_dir(out, "synth", overwrite=overwrite) as tmp:
            if not progress:
                datasets.utils.logging.disable_progress_bar()
            t0 = time.perf_counter()
            scene = sample_scene(config)
            split = scene.split
            features = _features(config)
            info = datasets.DatasetInfo(description="aus=" + ",".join(SYNTH_AUS), features=features)
            order = np.concatenate([np.flatnonzero(split == sp) for sp in ("train", "val", "test")])
            parts: dict[str, list] = {"train": [], "val": [], "test": []}
            render_s, write_s, start = 0.0, 0.0, 0
            t_render = time.perf_counter()
            for pngs, masks in _run(scene, order, True, workers, progress):
                idx = order[start:start + len(pngs)]
                start += len(pngs)
                t1 = time.perf_counter()
                render_s += t1 - t_render
                rows = _rows(scene, idx, pngs, masks)
                chunk_split = split[idx]
                for sp in ("train", "val", "test"):
                    keep = np.flatnonzero(chunk_split == sp)
                    if len(keep):
                        parts[sp].append(pa.table({k: v.take(pa.array(keep)) for k, v in rows.items()}))
                t_render = time.perf_counter()
                write_s += t_render - t1
            t1 = time.perf_counter()
            dd = datasets.DatasetDict()
            for sp, tables in parts.items():
                table = pa.concat_tables(tables) if tables else _empty_table(features)
                columns = {c: table.column(c) for c in table.column_names}
                dd[sp] = datasets.Dataset.from_dict(columns, features=features,
                                                    info=info.copy(), split=datasets.NamedSplit(sp))
            dd.save_to_disk(str(tmp))
            graph = true_graph(config)
            save_graph(graph, tmp / "graph.json")
            write_json(tmp / "config.json", dataset_config(scene))
            write_s += time.perf_counter() - t1
    finally:
        if bars_were_on:
            datasets.utils.logging.enable_progress_bar()
    total = time.perf_counter() - t0
    return {
        "out": str(out),
        "n": config.n,
        "size": config.size,
        "style": config.style,
        "seed": config.seed,
        "shortcut": config.shortcut,
        "subjects": config.subjects,
        "splits": {sp: len(dd[sp]) for sp in ("train", "val", "test")},
        "emotions": {e: int(np.sum(scene.emotion == j)) for j, e in enumerate(config.emotions)},
        "pain_frames": int(np.sum(scene.pspi > 0)),
        "never_in_pain": [nm for nm, nv in zip(scene.subject_names, scene.never_pain) if nv],
        "graph": {"classes": len(graph.classes), "class_edges": len(graph.class_edges()),
                  "au_edges": len(graph.au_edges())},
        "render_s": round(render_s, 3),
        "write_s": round(write_s, 3),
        "total_s": round(total, 3),
        "images_per_s": round(config.n / total, 1) if total > 0 else None,
    }


def read_config(root: str | os.PathLike) -> dict[str, Any]:
    """``config.json`` of a synth folder (raises :class:`~facr.errors.DataFormatError` when unreadable)."""
    from facr.errors import DataFormatError
    from facr.utils import loads_json

    path = Path(root) / "config.json"
    try:
        doc = loads_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataFormatError(path, f"cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise DataFormatError(path, f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != "facr-synth":
        raise DataFormatError(path, "not a facr synth config ('format' is not 'facr-synth')")
    for key in ("aus", "emotions", "config"):
        if key not in doc:
            raise DataFormatError(path, f"missing {key!r}")
    return doc


# ================================================================ preview
def read_scene(root: str | os.PathLike) -> Scene:
    """The :class:`Scene` a benchmark folder was rendered from (its ``config.json`` sampled again:
    same seed, same scene), for re-rendering its images under interventions."""
    return sample_scene(SynthConfig.from_dict(read_config(root)["config"]))


def preview_grid(root: str | os.PathLike, out: str | os.PathLike, *, n: int = 32, split: str | None = None,
                 columns: int = 8, seed: int = 0, scale: int = 2) -> Path:
    """Save a PNG grid of ``n`` images of a synth folder, each captioned with its emotion, PSPI and active AUs.

    Images are taken evenly across ``split`` (default: all splits), enlarged ``scale``× (nearest).
    """
    import datasets
    from PIL import Image, ImageDraw, ImageFont

    from facr.errors import DataFormatError
    from facr.utils import atomic_path

    root = Path(root)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    doc = read_config(root)
    try:
        dd = datasets.load_from_disk(str(root))
    except (FileNotFoundError, ValueError) as exc:
        raise DataFormatError(root, f"cannot load the dataset: {exc}") from None
    names = [split] if split else [s for s in ("train", "val", "test") if s in dd]
    if split and split not in dd:
        raise DataFormatError(root, f"no split {split!r} (splits: {', '.join(dd)})")
    pool = [(s, i) for s in names for i in range(len(dd[s]))]
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(pool), size=min(n, len(pool)), replace=False).tolist())
    aus = doc["aus"]
    size = int(doc["config"]["size"]) * scale
    cap = 44
    font = ImageFont.load_default(size=12)
    cols = min(columns, len(pick))
    rows_ = (len(pick) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * size, rows_ * (size + cap)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for j, p in enumerate(pick):
        s, i = pool[p]
        row = dd[s][i]
        img = row["image"].convert("RGB").resize((size, size), Image.NEAREST)
        x, y = (j % cols) * size, (j // cols) * (size + cap)
        sheet.paste(img, (x, y))
        active = [a for a, v in zip(aus, row["au_intensity"]) if v > 0]
        head = f"{row['emotion']}" + (f"  PSPI {row['pspi']:g}" if row["pspi"] > 0 else "")
        lines = [head] + _wrap(" ".join(a.removeprefix("AU") for a in active) or "-", size, font, draw)
        for k, text in enumerate(lines[:3]):
            draw.text((x + 3, y + size + 1 + 14 * k), text, fill=(0, 0, 0), font=font)
    out = Path(out)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    return out


def _wrap(text: str, width: int, font, draw) -> list[str]:
    words, lines, cur = text.split(), [], ""
    for w in words:
        trial = f"{cur} {w}".strip()
        if draw.textlength("AU " + trial, font=font) > width - 6 and cur:
            lines.append(cur)
            cur = w
        else:
            cur = trial
    lines.append(cur)
    return ["AU " + lines[0]] + lines[1:]
