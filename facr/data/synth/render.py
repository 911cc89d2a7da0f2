"""The procedural face renderer: a posed PIL canvas, the face drawn part by part with every AU
at its anatomical place, and :func:`render_face` (see :mod:`facr.data.synth`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from facr.data.synth.geometry import (
    _c,
    _check_size_style,
    _Geom,
    _geometry,
    _hsv,
    _intensity_vector,
    _levels,
    _mix,
    _mouth,
    _pose,
)
from facr.data.synth.masks import _masks, _regions
from facr.data.synth.scm import RENDERER, Identity, Nuisance


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


@dataclass(frozen=True)
class _Pen:
    """What every part of the face is drawn with: the AU levels ``a[n]`` = I/5 and the colours and
    line width of this identity in this style."""

    a: dict[int, float]
    skin: np.ndarray
    ink: np.ndarray
    out: np.ndarray | None            # outline colour (None: no outlines)
    lw: float                         # base line width, canvas units
    drop: float                       # AU26's jaw drop, face units
    hair: np.ndarray
    unilateral: bool                  # contempt: R12A/R14A, one side

    def dark(self, t) -> np.ndarray:
        """The skin shaded towards the ink colour by ``t``."""
        return self.skin + (self.ink - self.skin) * t

    def left(self, s: int) -> bool:
        """Whether side ``s`` (-1 left, +1 right) moves: both unless the AU is one-sided."""
        return s < 0 if self.unilateral else True


def _pen(g: _Geom, I: np.ndarray, unilateral: bool) -> _Pen:
    st, a = g.st, _levels(I)
    skin = np.asarray(g.id.skin) * np.asarray(st.skin_tint)
    ink = np.asarray(st.ink) if st.ink is not None else skin * np.array([0.30, 0.24, 0.24])
    return _Pen(a=a, skin=skin, ink=ink, out=ink if st.outline else None, lw=0.012 * st.line, drop=0.16 * a[26],
                hair=np.asarray(g.id.hair), unilateral=unilateral)


def _draw_face(cv: _Canvas, g: _Geom, I: np.ndarray, unilateral: bool) -> None:
    """Draw the face with AU intensities ``I`` (0-5, SYNTH_AUS order) onto ``cv``, back to front.

    Every AU term is multiplied by its level a[n] = I/5, so intensity 0 draws nothing of it.
    """
    p = _pen(g, I, unilateral)
    _draw_head(cv, g, p)
    _draw_eyes(cv, g, p)
    _draw_brows(cv, g, p)
    _draw_nose(cv, g, p)
    _draw_mouth(cv, g, p)
    _draw_front_hair(cv, g, p)


def _draw_head(cv: _Canvas, g: _Geom, p: _Pen) -> None:
    """Back hair, neck, shirt and ears; the face, cheeks (AU6) and chin boss (AU17); forehead (AU1,
    AU2) and glabella (AU4) lines."""
    idn, st, a, skin, ink, out, lw, drop, hair = g.id, g.st, p.a, p.skin, p.ink, p.out, p.lw, p.drop, p.hair
    dark = p.dark
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


def _draw_eyes(cv: _Canvas, g: _Geom, p: _Pen) -> None:
    """The eyes and lids: AU5, AU6, AU7, AU43; crow's feet and the infraorbital furrow (AU6)."""
    idn, st, a, ink, lw, dark = g.id, g.st, p.a, p.ink, p.lw, p.dark
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


def _draw_brows(cv: _Canvas, g: _Geom, p: _Pen) -> None:
    """The brows, over the eyelid crease: AU1, AU2, AU4."""
    idn, st, a, ink, hair = g.id, g.st, p.a, p.ink, p.hair
    by = idn.eye_y - idn.brow_gap
    # ---- brows (drawn over the eyelid crease): AU1 lifts the inner end, AU2 the outer, AU4 lowers and knits
    bi, bo = 0.13, 0.68
    thick = idn.brow_t * (1.0 - 0.45 * _T9) / st.line**0.3
    browc = _mix(hair, ink, 0.3)
    for s in (-1, 1):
        u = s * (bi + (bo - bi) * _T9 - 0.07 * a[4] * (1 - _T9))
        v = (by - idn.brow_arch * np.sin(np.pi * _T9**0.8) - 0.14 * a[1] * (1 - _T9) ** 1.3
             - 0.13 * a[2] * _T9**1.3 + a[4] * (0.04 + 0.045 * (1 - _T9)))
        cv.poly(np.concatenate([u, u[::-1]]), np.concatenate([v - thick / 2, (v + thick / 2)[::-1]]), browc)


def _draw_nose(cv: _Canvas, g: _Geom, p: _Pen) -> None:
    """The nose (AU9) and the nasolabial folds (AU10, AU12)."""
    idn, a, lw, dark, left = g.id, p.a, p.lw, p.dark, p.left
    ey = idn.eye_y
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


def _draw_mouth(cv: _Canvas, g: _Geom, p: _Pen) -> None:
    """The lips, teeth, dimples and furrows: AU10, 12, 14, 15, 16, 17, 20, 23, 24, 25, 26."""
    idn, st, a, skin, ink, out, lw = g.id, g.st, p.a, p.skin, p.ink, p.out, p.lw
    dark, left = p.dark, p.left
    # ---- mouth: corners per side (facr.data.synth.geometry._mouth), then four lip curves over s in [-1, 1]
    m = _mouth(g, a, p.unilateral)
    my, cw, cvv, ul, ll, gap = m.my, m.cw, m.cv, m.ul, m.ll, m.gap
    neg = _S21 < 0
    x = _S21 * np.where(neg, cw[-1], cw[1])
    vm = my + (np.where(neg, cvv[-1], cvv[1]) - my) * _ABS21
    r10, d16, c17 = m.r10, m.d16, m.c17
    b = _B21
    yub = vm - 0.35 * gap * b**0.8 - r10 * b**1.5
    ylt = vm + 0.65 * gap * b**0.8 + m.jaw * b**0.6 + d16 * b**1.5 - c17 * b
    yut = yub - ul * b**0.45 * _CUPID - 0.4 * r10 * b**1.5
    ylb = ylt + ll * b**0.5 + 0.4 * d16 * b
    lipc = np.asarray(idn.lips) if not st.shading else _mix(idn.lips, skin, 0.15)
    if a[24] > 0:  # skin bunched above and below pressed lips
        cv.line(x[5:16], yut[5:16] - 0.035, dark(0.45 * a[24]), lw)
        cv.line(x[5:16], ylb[5:16] + 0.035, dark(0.45 * a[24]), lw)
    for s in (-1, 1):  # AU14 dimples beside the corners: a shadow (renderer 2), a hairline (renderer 1)
        a14 = a[14] if left(s) else 0.0
        if a14 > 0 and g.renderer >= 2:
            cv.ellipse(s * (cw[s] + 0.06), cvv[s] + 0.005, 0.035, 0.075, dark(0.35 + 0.45 * a14), n=10)
        elif a14 > 0:
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


def _draw_front_hair(cv: _Canvas, g: _Geom, p: _Pen) -> None:
    """The front hair, drawn last: it frames the forehead and temples."""
    idn, skin, out, lw, hair = g.id, p.skin, p.out, p.lw, p.hair
    if idn.hair_style == 3:  # cropped: a thin cap
        cv.poly(np.concatenate([_HAIR_OUT_U * 0.97, _HAIRLINE_U]),
                np.concatenate([_HAIR_OUT_V * 0.95, _HAIRLINE_V - 0.08]), _mix(hair, skin, 0.35))
    else:
        fringe = 0.14 * (_HAIRLINE_U + 1.03) / 2.06 - 0.03 if idn.hair_style == 2 else 0.0
        cv.poly(np.concatenate([_HAIR_OUT_U, _HAIRLINE_U]), np.concatenate([_HAIR_OUT_V, _HAIRLINE_V + fringe]),
                hair, out, lw * 0.8)



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
                style: str = "a", unilateral: bool = False, masks: bool = False, renderer: int = RENDERER):
    """Draw one face: ``HxWx3`` uint8 (and, with ``masks=True``, the AU region masks).

    ``intensities``: a mapping of AU spellings to 0-5 (missing AUs are 0) or ``K`` values in
    ``SYNTH_AUS`` order; AU43 is binary (any value ≥ 0.5 closes the eyes). ``unilateral`` draws
    AU12 and AU14 on the image-left side only (contempt's R12A/R14A). ``renderer``: the renderer
    version (:data:`~facr.data.synth.RENDERERS`; a benchmark is redrawn by the one that drew it).
    Returns ``image`` or ``(image, masks)`` with masks bool ``[K, size/4, size/4]`` (see
    :func:`region_masks`).
    """
    _check_size_style(size, style, renderer)
    nz = nuisance or Nuisance()
    g = _geometry(identity, style, renderer)
    I = _intensity_vector(intensities)
    cv = _Canvas(2 * size, g, nz, _hsv(nz.bg_hue % 1.0, g.st.bg_sat, nz.bg_value))
    _draw_face(cv, g, I, unilateral)
    img = _finish(cv.im, nz, size)
    if masks:
        return img, _masks(g, nz, size, _regions(g, _levels(I), unilateral))
    return img
