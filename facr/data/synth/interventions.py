"""Interventions in pixels: a benchmark image drawn again from its scene with one AU, one
nuisance, every AU or the background cue changed, and the face masks of those rows."""

from __future__ import annotations

import numpy as np

from facr import au as au_vocab
from facr.data.synth.geometry import _geometry, _levels, _pose
from facr.data.synth.render import _face_outline
from facr.data.synth.scm import _IDX, _K, MASK_STRIDE, SYNTH_AUS, Scene
from facr.data.synth.writer import _nuisance_row, _render_chunk


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
    return _render_chunk((scene.identities, subj, I, nz, uni, cfg.size, cfg.style, cfg.renderer, False))


def render_intervention(scene: Scene, indices, *, au=None, value=0.0, nuisance: str | None = None,
                        masks: bool = False, subjects=None, intensity=None):
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
    is ever shown). ``intensity`` (``[n, K]`` in ``SYNTH_AUS`` order, 0-5): every AU set at once,
    do(AU = intensity) — the face drawn with other AUs than its own, identity, pose, light, noise and
    background held (``au`` then sets its AUs on top).
    """
    idx = _scene_indices(scene, indices)
    subj, I, nz, uni = _intervention_rows(scene, idx, au, value, nuisance, subjects, intensity)
    images, packed = _render_rows(scene, subj, I, nz, uni)
    if not masks:
        return images
    m = scene.config.size // MASK_STRIDE
    return images, np.unpackbits(packed, axis=1, count=_K).astype(bool).reshape(len(idx), _K, m, m)


def _intervention_rows(scene: Scene, idx: np.ndarray, au, value, nuisance: str | None, subjects, intensity=None):
    """(subject, intensities, nuisance, unilateral) of rows ``idx`` under the intervention of
    :func:`render_intervention` (one place for what each intervention changes)."""
    n = len(idx)
    subj, I = scene.subject[idx].copy(), scene.intensity[idx].copy()
    nz, uni = scene.nuisance[idx].copy(), scene.unilateral[idx]
    if intensity is not None:
        I = np.array(intensity, dtype=np.float64)
        if I.shape != (n, _K):
            raise ValueError(f"intensity: expected [{n}, {_K}] (a row per index), got {list(I.shape)}")
        if not np.isfinite(I).all() or I.min(initial=0) < 0 or I.max(initial=0) > 5:
            raise ValueError("intensity: AU intensities must be in [0, 5]")
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
    I[:, _IDX[43]] = np.minimum(I[:, _IDX[43]], 1.0)  # AU43 is binary, as the SCM draws it (its own rows are)
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
               subjects=None, intensity=None) -> np.ndarray:
    """Bool ``[n, S, S]``: the pixels inside the face outline (the head shape, AU26's jaw drop
    included; not the hair, ears, neck or background) of the rows :func:`render_intervention`
    draws with the same arguments. An outline pixel that the edge's anti-aliasing mixes with
    what lies outside counts as outside (one pixel eroded), so a mask's inside holds nothing of
    the background — what training needs to randomise the background without leaving its hue."""
    from PIL import Image, ImageDraw

    idx = _scene_indices(scene, indices)
    subj, I, nz, _ = _intervention_rows(scene, idx, au, value, nuisance, subjects, intensity)
    size, style = scene.config.size, scene.config.style
    out = np.empty((len(idx), size, size), dtype=bool)
    for j in range(len(idx)):
        g = _geometry(scene.identities[int(subj[j])], style, scene.config.renderer)
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
