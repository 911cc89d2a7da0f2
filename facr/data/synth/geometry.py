"""Styles, colours and face geometry shared by the renderer and the AU region masks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from facr import au as au_vocab
from facr.data.synth.scm import (
    _IDX,
    _K,
    MASK_STRIDE,
    RENDERER,
    STYLES,
    SYNTH_AUS,
    Identity,
    Nuisance,
    check_renderer,
)


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
    renderer: int = RENDERER          # the renderer version (scm.RENDERERS)


def _geometry(ident: Identity, style: str, renderer: int = RENDERER) -> _Geom:
    st = _STYLE[style]
    return _Geom(cx=0.5, cy=0.53, W=ident.face_w * st.width, H=ident.face_h * st.aspect,
                 ew=ident.eye_w * st.eye, eh=ident.eye_h * st.eye, mw=ident.mouth_w * st.mouth, id=ident, st=st,
                 renderer=renderer)


def _pose(g: _Geom, nz: Nuisance, size2: int) -> tuple[complex, complex, complex]:
    """Face units → pixels as complex coefficients: z = u·cu + v·cv + c0 (x = Re z, y = Im z)."""
    rot = complex(math.cos(math.radians(nz.angle)), math.sin(math.radians(nz.angle))) * nz.scale * size2
    return g.W * rot, 1j * g.H * rot, complex(g.cx + nz.dx, g.cy + nz.dy) * size2


@dataclass(frozen=True)
class _Mouth:
    """The mouth's frame at AU levels ``a`` (face units), shared by the drawing and the region masks."""

    cw: dict[int, float]              # corner half-width per side (-1 image-left, +1 right)
    cv: dict[int, float]              # corner height per side
    my: float                         # the closed mouth line's height at the centre
    gap: float                        # how far the lips part
    jaw: float                        # how far the jaw carries the parted lower lip down (AU26)
    ul: float                         # upper lip thickness
    ll: float                         # lower lip thickness
    r10: float                        # how far AU10 raises the upper lip
    d16: float                        # how far AU16 pulls the lower lip down
    c17: float                        # how far AU17 pushes the lower lip up


def _mouth(g: _Geom, a: Mapping[int, float], unilateral: bool) -> _Mouth:
    """AU12 and AU14 act on the image-left side only when ``unilateral`` (contempt).

    Renderer 2 parts the lips only under AU25: FACS codes a jaw drop with the lips together as AU26
    alone, so there the jaw carries the closed mouth down whole. Renderer 1 parted them under AU26
    alone too. Renderer 2 also pulls AU14's corners in further (its dimples: :func:`_draw_mouth`)."""
    idn, mw = g.id, g.mw
    drop = 0.16 * a[26]
    parted = g.renderer < 2 or a[25] > 0
    my = idn.mouth_y + (0.0 if parted else 0.3 * drop)
    pull14 = 0.08 if g.renderer < 2 else 0.15
    cw, cv = {}, {}
    for s in (-1, 1):
        a12, a14 = (a[12], a[14]) if (not unilateral or s < 0) else (0.0, 0.0)
        cw[s] = mw * (1 + 0.22 * a12 + 0.32 * a[20] - 0.28 * a[23] - pull14 * a14)
        cv[s] = my - 0.12 * a12 + 0.11 * a[15] + 0.02 * a[20] - 0.01 * a14 + (0.3 * drop if parted else 0.0)
    thin = max(0.25, 1.0 - 0.55 * a[23] - 0.45 * a[24] - 0.30 * a[20])
    return _Mouth(cw=cw, cv=cv, my=my, gap=0.075 * a[25] + (0.35 * drop if parted else 0.0),
                  jaw=drop if parted else 0.0, ul=idn.lip_up * thin, ll=idn.lip_lo * thin * (1 + 0.25 * a[17]),
                  r10=0.09 * a[10], d16=0.07 * a[16], c17=0.035 * a[17])


def _levels(I: np.ndarray) -> dict[int, float]:
    a = {n: min(max(float(I[k]), 0.0), 5.0) / 5.0 for n, k in _IDX.items()}
    a[43] = min(max(float(I[_IDX[43]]), 0.0), 1.0)  # AU43 is binary: FACS and UNBC code it 0/1
    return a


# ================================================================ render
def _check_size_style(size: int, style: str, renderer: int = RENDERER) -> None:
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    check_renderer(renderer)
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
