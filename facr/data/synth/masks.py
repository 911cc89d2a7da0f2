"""AU region masks: per AU, the cells its drawing can change on a face at a pose, and their
bit-packed storage (see :mod:`facr.data.synth`)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from facr.data.synth.geometry import _check_size_style, _Geom, _geometry, _intensity_vector, _levels, _mouth, _pose
from facr.data.synth.scm import _IDX, _K, MASK_STRIDE, RENDERER, Identity, Nuisance


# ================================================================ regions (masks)
def _mouth_box(g: _Geom, a: Mapping[int, float], unilateral: bool) -> tuple[float, float, float]:
    """(half-width, top, bottom) in face units of everything the mouth drawing of levels ``a``
    covers: lips, opening, teeth, AU24 bulges, AU14 dimples, the mentolabial furrow (mirrors
    :func:`_draw_face`)."""
    m = _mouth(g, a, unilateral)
    cvs = list(m.cv.values())
    top = min(m.my, *cvs) - 0.35 * m.gap - 1.4 * m.r10 - m.ul - 0.04
    lower_lip = m.my + 0.65 * m.gap + m.jaw + 1.4 * m.d16 - m.c17 + m.ll  # at the centre, where it is lowest
    # renderer 2's AU14 shadows reach 0.095 beyond a corner and 0.08 below it
    side, below = (0.1, 0.09) if g.renderer >= 2 else (0.075, 0.04)
    bottom = max(max(cvs) + m.ll + below, lower_lip + 0.085)
    return max(m.cw.values()) + side, top, bottom


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
                 style: str = "a", unilateral: bool = False, renderer: int = RENDERER) -> np.ndarray:
    """Bool ``[K, size/4, size/4]``: per AU (``SYNTH_AUS`` order), the mask cells whose 4×4 pixels
    that AU's drawing can change on this face at this pose, whatever its own intensity (0-5) with
    the other AUs at ``intensities`` (see the module docstring); ``renderer``: its version
    (:data:`~facr.data.synth.RENDERERS`)."""
    _check_size_style(size, style, renderer)
    nz = nuisance or Nuisance()
    g = _geometry(identity, style, renderer)
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
