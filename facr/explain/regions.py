"""Region metrics for AU maps: NRA, EPG and hit rate (CE-FAM), and landmark ROI ground truth.

A *region map* ``R`` is any 2-D saliency map for one AU on one image (Grad-CAM, a CE-FAM concept map,
attention rollout); a *mask* ``M`` is a binary ground-truth region for that AU. Following CE-FAM
(Sakaguchi et al., section 4.3 and supplement A.3):

* IoU curve (Eq. A1): for ``n ∈ {1/T, 2/T, …, 1}`` the region ``R_n`` is the top ``n·N`` of the ``N``
  pixels of ``R`` *by rank*, and ``IoU_n = |R_n ∩ M| / |R_n ∪ M|``.
* NRA (Eq. 13): ``(AUC − AUC_low) / (AUC_high − AUC_low)`` — 1 for a map that ranks the mask first,
  0 in expectation for a random map, negative when the map points away from the mask.
* EPG (Eq. A2): ``Σ_{(i,j)∈M} R⁺ / Σ R⁺``, the share of the (ReLU-clipped) map's energy inside ``M``.
* Hit rate: the share of (image, AU) instances with NRA > 0.5.

Conventions (facr's, since the paper leaves them open):

* ``AUC`` is the **mean** of ``IoU_n`` over the ``T`` grid points (a right Riemann sum over ``n ∈ (0, 1]``),
  and ``AUC_high``, ``AUC_low`` are the same mean of their closed-form curves on the same grid, so the
  three areas are comparable and a map equal to the mask gets NRA = 1 exactly.
* The grid is realised in whole pixels: ``c_k = max(1, round(k·N/T))`` pixels at step ``k``; the fractions
  ``n_k = c_k / N`` (equal to ``k/T`` whenever ``T`` divides ``N``) are used in the closed forms too.
* A map with no location — all values equal (e.g. all zero after a ReLU) — gets NRA = 0 (the random
  expectation) and EPG = ``m`` (the mask fraction, which is also a random map's expected EPG); a map
  whose clipped energy ``Σ R⁺`` is 0 gets EPG = ``m`` as well.
* The metrics are undefined (None) when the mask is empty or covers every pixel.
* Ties (default ``ties="expected"``): a group of equal values is credited with its expected overlap,
  as a random order within the group would give. Grad-CAM maps have large zero plateaus, and filling
  them in raster order (``ties="stable"``) would reward a map for the top of the face.

:func:`landmark_roi_maps` / :func:`landmark_roi_masks` draw the per-AU ground truth for real faces from
68-point landmarks, with AU centres after EAC-Net (Li et al., TPAMI 2018), as AGCM (section III-A) does
for its ROI maps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from facr.au import canonical, sort_aus

__all__ = [
    "AU_ROI_CENTRES",
    "AURoi",
    "RegionScores",
    "epg",
    "fit_map",
    "iou_curve",
    "landmark_roi_maps",
    "landmark_roi_masks",
    "nra",
    "random_maps",
]

_TIES = ("stable", "expected")


# --- input handling -----------------------------------------------------------------------------

def _as_array(x: Any, name: str) -> np.ndarray:
    """A float64 numpy array from a numpy array, list or (CPU/GPU, grad or not) torch tensor."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected an array of numbers, got {type(x).__name__}") from None
    return arr


def _map_and_mask(region_map: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated, flattened ``(R, M)``: R float64 finite, M bool, both 2-D of one shape."""
    r = _as_array(region_map, "region_map")
    m = _as_array(mask, "mask")
    if r.ndim != 2:
        raise ValueError(f"region_map: expected a 2-D map, got shape {r.shape}")
    if m.ndim != 2:
        raise ValueError(f"mask: expected a 2-D mask, got shape {m.shape}")
    if r.shape != m.shape:
        raise ValueError(f"region_map has shape {r.shape} but mask has shape {m.shape}; "
                         "resize the map first with fit_map(region_map, mask.shape)")
    if not np.isfinite(r).all():
        raise ValueError("region_map: contains NaN or infinite values")
    if not np.isin(m, (0.0, 1.0)).all():
        # A soft map passed as a mask would be silently binarised by astype(bool); refuse instead.
        raise ValueError("mask: expected a binary mask (bool or 0/1); threshold soft maps first, "
                         "e.g. with landmark_roi_masks")
    return r.ravel(), m.ravel().astype(bool)


def _check_thresholds(n_thresholds: int) -> int:
    if isinstance(n_thresholds, bool) or not isinstance(n_thresholds, (int, np.integer)) or n_thresholds < 2:
        raise ValueError(f"n_thresholds: expected an integer >= 2, got {n_thresholds!r}")
    return int(n_thresholds)


def _check_ties(ties: str) -> str:
    if ties not in _TIES:
        raise ValueError(f"ties: expected one of {_TIES}, got {ties!r}")
    return ties


def _grid_counts(n_pixels: int, n_thresholds: int) -> np.ndarray:
    """``c_k = max(1, round(k·N/T))`` for k = 1..T (round half up, in integers)."""
    k = np.arange(1, n_thresholds + 1, dtype=np.int64)
    return np.maximum(1, (2 * k * n_pixels + n_thresholds) // (2 * n_thresholds))


# --- the IoU curve, NRA, EPG --------------------------------------------------------------------

def _curve(r: np.ndarray, m: np.ndarray, n_thresholds: int, ties: str) -> tuple[np.ndarray, np.ndarray]:
    n_pixels = r.size
    counts = _grid_counts(n_pixels, n_thresholds)
    order = np.argsort(-r, kind="stable")  # descending; equal values keep raster order
    in_mask = np.concatenate(([0], np.cumsum(m[order])))  # in_mask[c] = |top-c ∩ M|
    if ties == "stable":
        inter = in_mask[counts].astype(np.float64)
    else:
        # A tie group cut by the threshold contributes its *expected* overlap: of the c − start pixels
        # taken from a group of size end − start, a share (mask pixels in the group)/(group size) is in M.
        asc = -r[order]  # ascending
        v = asc[counts - 1]
        start = np.searchsorted(asc, v, side="left")
        end = np.searchsorted(asc, v, side="right")
        group_in_mask = (in_mask[end] - in_mask[start]).astype(np.float64)
        inter = in_mask[start] + (counts - start) * group_in_mask / (end - start)
    union = counts + m.sum() - inter
    return counts / n_pixels, inter / union


def iou_curve(region_map: Any, mask: Any, n_thresholds: int = 100,
              ties: str = "expected") -> tuple[np.ndarray, np.ndarray]:
    """The IoU curve of CE-FAM Eq. (A1): ``(n_k, IoU_{n_k})`` for k = 1..T.

    ``R_n`` is the top ``c_k = max(1, round(k·N/T))`` pixels of ``region_map`` by rank (a descending,
    stable argsort of the flattened map), so ties never change the region's size; ``n_k = c_k / N``.
    ``ties="stable"`` breaks ties in raster order (row-major); ``ties="expected"`` counts a tie group that
    straddles the cut by its expected overlap with ``M`` (as if the tie were broken at random), which
    removes the raster-order bias on maps with flat plateaus (e.g. zeros after a ReLU).

    Args:
        region_map: 2-D map ``R`` (higher = more the AU's region); any real values.
        mask: 2-D binary mask ``M`` of the same shape.
        n_thresholds: ``T``, the number of grid points (>= 2).

    Returns:
        ``(fractions, iou)``, two float64 arrays of length ``T``.

    Raises:
        ValueError: shapes differ, the map is not finite, the mask is not binary, or ``T`` < 2.
    """
    r, m = _map_and_mask(region_map, mask)
    return _curve(r, m, _check_thresholds(n_thresholds), _check_ties(ties))


def _reference_aucs(fractions: np.ndarray, m: float) -> tuple[float, float]:
    """``(AUC_high, AUC_low)`` in closed form on the grid ``fractions``, for mask fraction ``m``.

    Ideal map (ranks ``M`` first): ``IoU_n = min(n, m) / max(n, m)``. Random map: the ratio of the
    expected intersection ``n·m`` to the expected union ``n + m − n·m`` (exact as N → ∞; for a constant
    map with ``ties="expected"`` it is exact at every N).
    """
    n = fractions
    high = np.minimum(n, m) / np.maximum(n, m)
    low = n * m / (n + m - n * m)
    return float(high.mean()), float(low.mean())


def nra(region_map: Any, mask: Any, n_thresholds: int = 100, ties: str = "expected") -> float | None:
    """Normalized Region Accuracy, CE-FAM Eq. (13): ``NRA = (AUC − AUC_low) / (AUC_high − AUC_low)``.

    ``AUC`` is the mean of ``IoU_n`` over the grid of :func:`iou_curve`; ``AUC_high`` (a map equal to
    the mask) and ``AUC_low`` (a random map's expectation) are the means of their closed-form curves on
    the same grid. 1 = the map ranks the mask first; 0 = no better than random; < 0 = worse than random.

    Returns:
        NRA as a float; 0.0 for a constant map (no location: the random expectation); None when the mask
        is empty or covers the whole map (undefined).

    Raises:
        ValueError: as :func:`iou_curve`.
    """
    r, m = _map_and_mask(region_map, mask)
    n_thresholds, ties = _check_thresholds(n_thresholds), _check_ties(ties)
    k = int(m.sum())
    if k == 0 or k == m.size:
        return None
    if r.max() == r.min():
        return 0.0
    fractions, iou = _curve(r, m, n_thresholds, ties)
    high, low = _reference_aucs(fractions, k / m.size)
    if high - low <= 1e-12:  # only on degenerate grids; NRA has no scale there
        return None
    return float((iou.mean() - low) / (high - low))


def epg(region_map: Any, mask: Any) -> float | None:
    """Energy-based pointing game, CE-FAM Eq. (A2): ``EPG = Σ_{(i,j)∈M} R⁺ / Σ_{(i,j)} R⁺``, ``R⁺ = max(R, 0)``.

    Returns:
        EPG in [0, 1]; the mask fraction ``m`` when ``Σ R⁺ = 0`` (no energy: a random map's expected EPG);
        None when the mask is empty or covers the whole map.

    Raises:
        ValueError: shapes differ, the map is not finite, or the mask is not binary.
    """
    r, m = _map_and_mask(region_map, mask)
    k = int(m.sum())
    if k == 0 or k == m.size:
        return None
    energy = np.clip(r, 0.0, None)
    total = energy.sum()
    if total <= 0.0:
        return k / m.size
    return float(energy[m].sum() / total)


def fit_map(region_map: Any, shape: Sequence[int]) -> np.ndarray:
    """Bilinear resize of a 2-D map to ``shape = (h, w)`` (``align_corners=False``, as torch's
    ``F.interpolate``), so a feature-resolution map can be scored against an image-resolution mask.

    Returns:
        float64 array of ``shape`` (a copy, also when the size already matches).
    """
    r = _as_array(region_map, "region_map")
    if r.ndim != 2:
        raise ValueError(f"region_map: expected a 2-D map, got shape {r.shape}")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape: expected (height, width) with positive sizes, got {shape}")
    if r.shape == shape:
        return r.copy()
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(r))[None, None]
    return F.interpolate(t, size=shape, mode="bilinear", align_corners=False)[0, 0].numpy()


def random_maps(shape: Sequence[int], n: int, seed: int = 0) -> np.ndarray:
    """The random-map baseline: ``n`` maps of i.i.d. Uniform[0, 1) pixels, ``[n, h, w]`` float64.

    Their expected NRA is 0 and expected EPG the mask fraction; deterministic for a given ``seed``.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape: expected (height, width) with positive sizes, got {shape}")
    if n < 0:
        raise ValueError(f"n: expected a count >= 0, got {n}")
    return np.random.default_rng(seed).random((int(n), *shape))


# --- accumulation over (image, AU) instances ----------------------------------------------------

def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _block(nras: Sequence[float], epgs: Sequence[float], skipped: int) -> dict[str, Any]:
    return {"nra": _mean(nras), "epg": _mean(epgs),
            "hit_rate": float(np.mean([v > 0.5 for v in nras])) if nras else None,
            "n": len(nras), "skipped": skipped}


class RegionScores:
    """Accumulates NRA / EPG over (image, AU) instances and summarises them overall and per AU.

    Every summary number is a plain mean **over instances** (each scored (image, AU) pair weighs the
    same; CE-FAM's "Avg." of per-type averages is ``mean(summary()["per_au"][au]["nra"])`` instead).
    Instances whose mask is empty or full are undefined: they are counted in ``skipped`` and left out
    of every mean.

    >>> s = RegionScores(n_thresholds=10)
    >>> mask = np.zeros((8, 8)); mask[2:5, 2:5] = 1
    >>> s.add("AU04", mask, mask)
    (1.0, 1.0)
    >>> s.add("AU12", np.zeros((4, 4)), mask)   # constant map (resized to the mask first)
    (0.0, 0.140625)
    >>> s.summary()["per_au"]["AU4"]["hit_rate"], s.summary()["n"]
    (1.0, 2)
    """

    def __init__(self, n_thresholds: int = 100, ties: str = "expected", ci_resamples: int = 2000, seed: int = 0):
        self.n_thresholds = _check_thresholds(n_thresholds)
        self.ties = _check_ties(ties)
        if ci_resamples < 0:
            raise ValueError(f"ci_resamples: expected a count >= 0 (0 = no CI), got {ci_resamples}")
        self.ci_resamples = int(ci_resamples)
        self.seed = seed
        self.instances: list[dict[str, Any]] = []
        """One ``{"au", "nra", "epg"}`` per scored instance, in order of :meth:`add`."""
        self.skipped: dict[str, int] = {}

    def add(self, au: str | int, region_map: Any, mask: Any) -> tuple[float, float] | None:
        """Score one (image, AU) instance; the map is resized to the mask's shape first (:func:`fit_map`).

        Returns:
            ``(nra, epg)``, or None when the instance is undefined (empty or full mask) and was skipped.
        """
        name = canonical(au)
        m = _as_array(mask, "mask")
        r = fit_map(region_map, m.shape) if m.ndim == 2 else region_map
        score = nra(r, m, self.n_thresholds, self.ties)
        if score is None:
            self.skipped[name] = self.skipped.get(name, 0) + 1
            return None
        energy = epg(r, m)
        self.instances.append({"au": name, "nra": score, "epg": energy})
        return score, energy

    def __len__(self) -> int:
        return len(self.instances)

    def summary(self) -> dict[str, Any]:
        """``{"nra", "epg", "hit_rate", "n", "skipped", "nra_ci95", "per_au": {AU: {nra, epg, hit_rate, n,
        skipped}}}`` — means over instances, plain floats/ints (None where nothing was scored), JSON-ready.

        ``hit_rate`` is the share of instances with NRA > 0.5 (CE-FAM's Hit Rate); ``nra_ci95`` is a
        percentile bootstrap 95% CI of the overall mean NRA over instances (None with fewer than 2
        instances or ``ci_resamples=0``).
        """
        nras = [i["nra"] for i in self.instances]
        out = _block(nras, [i["epg"] for i in self.instances], sum(self.skipped.values()))
        out["nra_ci95"] = None
        if len(nras) >= 2 and self.ci_resamples > 0:
            from facr.audit.stats import bootstrap_ci

            ci = bootstrap_ci(nras, n_resamples=self.ci_resamples, seed=self.seed)
            out["nra_ci95"] = None if ci is None else [float(ci[0]), float(ci[1])]
        per_au = {}
        for au in sort_aus({i["au"] for i in self.instances} | set(self.skipped)):
            rows = [i for i in self.instances if i["au"] == au]
            per_au[au] = _block([i["nra"] for i in rows], [i["epg"] for i in rows], self.skipped.get(au, 0))
        out["per_au"] = per_au
        return out


# --- landmark ROI ground truth ------------------------------------------------------------------

@dataclass(frozen=True)
class AURoi:
    """Where one AU lives on the face, in units of the scale ``s`` (distance between the inner eye corners).

    ``centres``: ``((landmarks, (dx, dy)), ...)`` — each centre is the mean of the given 0-based 68-point
    landmarks moved by ``(dx·s, dy·s)`` in the face frame (x from the image-left eye to the image-right
    eye, y perpendicular to it, towards the chin; ``dy < 0`` is "above"). ``sigma``: the Gaussian's
    standard deviation in ``s``. ``source``: ``"EAC-Net"`` (the centre rule is EAC-Net's) or ``"facr"``.
    """

    centres: tuple[tuple[tuple[int, ...], tuple[float, float]], ...]
    sigma: float
    source: str


def _pair(left: tuple[int, ...], right: tuple[int, ...], dy: float = 0.0) -> tuple:
    return ((left, (0.0, dy)), (right, (0.0, dy)))


_EYE_R, _EYE_L = tuple(range(36, 42)), tuple(range(42, 48))  # image-left (subject's right) and image-right eye

# AU centres after EAC-Net (W. Li, F. Abtahi, Z. Zhu, L. Yin, "EAC-Net: Deep Nets with Enhancing and Cropping
# for Facial Action Unit Detection", TPAMI 2018, the table of AU centres), whose unit ("scale") is the
# distance between the inner eye corners (landmarks 39 and 42) and whose AUs each have two centres, one per
# side. Entries with source="EAC-Net" follow its rule (AU1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24: the
# BP4D set); the landmark choice for a rule such as "upper lip center" and every sigma are facr's. Entries
# with source="facr" are facr's own choices for AUs outside that set (AGCM's Fig. 3 set and eye closure).
AU_ROI_CENTRES: dict[str, AURoi] = {
    "AU1": AURoi(_pair((21,), (22,), -1 / 2), 0.30, "EAC-Net"),      # 1/2 scale above the inner brow corners
    "AU2": AURoi(_pair((17,), (26,), -1 / 3), 0.30, "EAC-Net"),      # 1/3 scale above the outer brow corners
    "AU4": AURoi(_pair((19,), (24,), 1 / 3), 0.30, "EAC-Net"),       # 1/3 scale below the brow centres
    "AU5": AURoi(_pair((37, 38), (43, 44)), 0.25, "facr"),          # upper lids
    "AU6": AURoi(_pair((40, 41), (46, 47), 1.0), 0.35, "EAC-Net"),  # 1 scale below the lower lids (cheeks)
    "AU7": AURoi(_pair(_EYE_R, _EYE_L), 0.30, "EAC-Net"),           # the eyes (lids)
    "AU9": AURoi(_pair((39,), (42,), 1 / 2), 0.30, "facr"),         # nasal sidewalls below the inner canthi
    "AU10": AURoi(_pair((50,), (52,)), 0.30, "EAC-Net"),            # upper lip, either side of its centre
    "AU12": AURoi(_pair((48,), (54,)), 0.30, "EAC-Net"),            # lip corners
    "AU14": AURoi(_pair((48,), (54,)), 0.30, "EAC-Net"),            # lip corners
    "AU15": AURoi(_pair((48,), (54,)), 0.30, "EAC-Net"),            # lip corners
    "AU16": AURoi(_pair((58,), (56,)), 0.30, "facr"),               # lower lip, either side of its centre
    "AU17": AURoi((((57,), (0.0, 1 / 2)),), 0.40, "EAC-Net"),       # 1/2 scale below the lower lip (chin boss)
    "AU18": AURoi((((51, 57), (0.0, 0.0)),), 0.45, "facr"),         # mouth centre
    "AU20": AURoi(_pair((48,), (54,)), 0.35, "facr"),               # lip corners
    "AU22": AURoi((((51, 57), (0.0, 0.0)),), 0.45, "facr"),         # mouth centre
    "AU23": AURoi((((51, 57), (0.0, 0.0)),), 0.45, "EAC-Net"),      # lip centre
    "AU24": AURoi((((51, 57), (0.0, 0.0)),), 0.45, "EAC-Net"),      # lip centre
    "AU25": AURoi((((62, 66), (0.0, 0.0)),), 0.40, "facr"),         # between the inner lips
    "AU26": AURoi((((57, 8), (0.0, 0.0)),), 0.50, "facr"),          # between lower lip and chin
    "AU27": AURoi((((62, 66), (0.0, 0.0)),), 0.50, "facr"),         # mouth opening
    "AU28": AURoi((((51, 57), (0.0, 0.0)),), 0.45, "facr"),         # lips
    "AU43": AURoi(_pair(_EYE_R, _EYE_L), 0.30, "facr"),             # the eyes
    "AU45": AURoi(_pair(_EYE_R, _EYE_L), 0.30, "facr"),             # the eyes
}


def _check_size(value: Any, name: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected two positive integers, got {value!r}") from None
    if a < 1 or b < 1:
        raise ValueError(f"{name}: expected two positive integers, got {value!r}")
    return a, b


def landmark_roi_maps(landmarks: Any, image_size_wh: Sequence[int], out_shape: Sequence[int],
                      aus: Iterable[str | int]) -> tuple[np.ndarray, list[bool]]:
    """Per-AU ROI maps from 68-point iBUG / Multi-PIE landmarks (AGCM section III-A; centres of EAC-Net).

    For each AU, the map is the pixel-wise max (a soft union) of isotropic Gaussians
    ``exp(−d² / (2 (σ·s)²))`` around its centres in :data:`AU_ROI_CENTRES`, where ``s`` is the distance
    between the inner eye corners (landmarks 39, 42) and offsets are taken in the face frame (so a rolled
    face keeps "above the brow" above the brow). Each map peaks at 1 on its centres.

    Args:
        landmarks: ``(68, 2)`` ``(x, y)`` in pixels of the image the model sees (0-based iBUG order: jaw 0–16,
            brows 17–26, nose 27–35, eyes 36–47, mouth 48–67; pixel ``(x, y)`` is the *centre* of pixel
            column ``x``, row ``y``, as dlib / face-alignment report them).
        image_size_wh: ``(width, height)`` of that image.
        out_shape: ``(h, w)`` of the maps; pixel centres are matched as ``F.interpolate(align_corners=False)``
            does, so an ``(h, w)`` map lines up with the image resized to ``(h, w)``.
        aus: AUs in any spelling (``"AU04"``, ``12``); unknown AU strings raise ``UnknownAUError``.

    Returns:
        ``(maps, defined)``: float32 ``[K, h, w]`` in [0, 1], and per AU whether it has a table entry (an AU
        without one gets an all-zero map and ``False``).

    Raises:
        ValueError: landmarks not a finite ``(68, 2)`` array, inner eye corners coinciding, bad sizes.
    """
    pts = _as_array(landmarks, "landmarks")
    if pts.shape != (68, 2):
        raise ValueError(f"landmarks: expected a (68, 2) array of (x, y) points (iBUG 68-point order), "
                         f"got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("landmarks: contains NaN or infinite values (a missed detection?)")
    width, height = _check_size(image_size_wh, "image_size_wh")
    h, w = _check_size(out_shape, "out_shape")
    names = [canonical(a) for a in aus]

    scale = float(np.linalg.norm(pts[42] - pts[39]))
    axis = pts[list(_EYE_L)].mean(axis=0) - pts[list(_EYE_R)].mean(axis=0)
    if scale <= 1e-6 or np.linalg.norm(axis) <= 1e-6:
        raise ValueError("landmarks: the inner eye corners (39, 42) or the eye centres coincide; "
                         "no face scale can be taken from them")
    ex = axis / np.linalg.norm(axis)
    ey = np.array([-ex[1], ex[0]])  # ex rotated +90° in image coordinates (y down): points to the chin

    # Image-pixel coordinates of the output pixel centres (half-pixel convention on both grids).
    xs = (np.arange(w) + 0.5) * width / w - 0.5
    ys = (np.arange(h) + 0.5) * height / h - 0.5
    maps = np.zeros((len(names), h, w), dtype=np.float32)
    defined = []
    for k, name in enumerate(names):
        roi = AU_ROI_CENTRES.get(name)
        defined.append(roi is not None)
        if roi is None:
            continue
        inv = 1.0 / (2.0 * (roi.sigma * scale) ** 2)
        acc = np.zeros((h, w))
        for idx, (dx, dy) in roi.centres:
            cx, cy = pts[list(idx)].mean(axis=0) + scale * (dx * ex + dy * ey)
            acc = np.maximum(acc, np.exp(-((ys[:, None] - cy) ** 2 + (xs[None, :] - cx) ** 2) * inv))
        maps[k] = acc
    return maps, defined


def landmark_roi_masks(landmarks: Any, image_size_wh: Sequence[int], out_shape: Sequence[int],
                       aus: Iterable[str | int], threshold: float = 0.5) -> tuple[np.ndarray, list[bool]]:
    """Binary AU ground-truth regions: :func:`landmark_roi_maps` ``> threshold``.

    The maps peak at 1 on each centre, so the default 0.5 keeps a disc of radius ``σ·s·√(2 ln 2) ≈ 1.18 σ·s``
    around every centre (clipped by the image border; a threshold on the *absolute* peak, not on each map's
    max, so a centre pushed off-image yields a smaller region rather than a re-scaled one). Use these as
    ``M`` for :func:`nra` / :func:`epg` on real faces.

    Returns:
        ``(masks, defined)``: bool ``[K, h, w]`` and the ``defined`` flags of :func:`landmark_roi_maps`.
    """
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        t = math.nan
    if not 0.0 < t < 1.0:  # NaN fails too
        raise ValueError(f"threshold: expected a value in (0, 1), got {threshold!r}")
    maps, defined = landmark_roi_maps(landmarks, image_size_wh, out_shape, aus)
    return maps > t, defined
