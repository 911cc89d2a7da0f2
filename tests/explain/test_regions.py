import json

import numpy as np
import pytest
from scipy.ndimage import center_of_mass, gaussian_filter

from facr.errors import UnknownAUError
from facr.explain.regions import (
    AU_ROI_CENTRES,
    RegionScores,
    epg,
    fit_map,
    iou_curve,
    landmark_roi_maps,
    landmark_roi_masks,
    nra,
    random_maps,
)


def disc(shape=(32, 32), centre=(12, 18), radius=6.0) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) <= radius ** 2).astype(float)


# --- NRA / EPG / IoU curve -----------------------------------------------------------------------

def test_map_equal_to_mask_scores_nra_one_and_epg_one():
    mask = disc()
    assert nra(mask, mask) == pytest.approx(1.0, abs=1e-9)
    assert epg(mask, mask) == pytest.approx(1.0, abs=1e-9)
    # on a grid that does not divide N (1024 px, T = 7) the closed-form AUC_high still matches exactly
    assert nra(mask, mask, n_thresholds=7) == pytest.approx(1.0, abs=1e-9)


def test_iou_curve_of_ideal_map_reaches_one_at_the_mask_fraction():
    mask = np.zeros((16, 16))
    mask[:8, :8] = 1  # m = 0.25, on the T = 100 grid
    fractions, iou = iou_curve(mask, mask, n_thresholds=100)
    assert fractions.shape == iou.shape == (100,)
    assert fractions[24] == pytest.approx(0.25) and iou[24] == pytest.approx(1.0)
    assert iou[9] == pytest.approx(0.10 / 0.25, abs=0.01)  # min(n, m)/max(n, m), n = 26/256
    assert iou[-1] == pytest.approx(0.25)  # the whole image: |M| / N
    assert np.all(iou <= 1.0 + 1e-12)


def test_inverted_map_scores_below_random():
    mask = disc()
    assert nra(1.0 - mask, mask) == pytest.approx(-0.4034, abs=1e-3)
    assert epg(1.0 - mask, mask) == 0.0


def test_random_maps_average_nra_zero_and_epg_mask_fraction():
    mask = disc()
    m = mask.mean()
    maps = random_maps(mask.shape, 500, seed=0)
    assert maps.shape == (500, 32, 32) and 0.0 <= maps.min() and maps.max() < 1.0
    assert np.array_equal(maps, random_maps(mask.shape, 500, seed=0))
    nras = [nra(r, mask) for r in maps]
    epgs = [epg(r, mask) for r in maps]
    assert abs(np.mean(nras)) < 0.03
    assert abs(np.mean(epgs) - m) < 0.02


def test_blurred_offset_mask_scores_between_random_and_ideal():
    mask = disc()
    blurred = gaussian_filter(mask, 3)
    assert nra(blurred, mask) == pytest.approx(1.0, abs=1e-9)  # blurring a disc keeps its pixel ranking
    shifted = gaussian_filter(np.roll(mask, 4, axis=1), 3)
    assert 0.6 < nra(shifted, mask) < 0.85
    assert mask.mean() < epg(shifted, mask) < epg(blurred, mask) < 1.0


def test_nra_depends_only_on_the_ranking():
    mask = disc()
    r = gaussian_filter(np.roll(mask, 3, axis=0), 2) + 0.1 * random_maps(mask.shape, 1, seed=3)[0]
    assert nra(r ** 3 + 5.0, mask) == pytest.approx(nra(r, mask), abs=1e-12)


def test_constant_map_scores_random_expectation():
    mask = disc()
    for value in (0.0, 0.7, -2.0):
        flat = np.full(mask.shape, value)
        assert nra(flat, mask) == 0.0
        assert epg(flat, mask) == pytest.approx(mask.mean())
    # "expected" tie handling reaches the same 0 without the special case
    fractions, iou = iou_curve(np.zeros(mask.shape), mask, ties="expected")
    m = mask.mean()
    assert np.allclose(iou, fractions * m / (fractions + m - fractions * m))


def test_expected_ties_remove_raster_order_bias_of_plateaus():
    top = np.zeros((32, 32))
    top[4:8, 8:24] = 1  # brow-like mask near the top
    lower_face = np.zeros((32, 32))
    lower_face[20:28, 8:24] = 1  # map with no mass on the mask: a zero plateau elsewhere
    # stable ties fill the zero plateau in raster order, i.e. top rows first, and reward the map for it
    assert nra(lower_face, top, ties="stable") == pytest.approx(0.1197, abs=1e-3)
    # the default credits a tie group with its expected overlap: no reward for pointing away
    assert nra(lower_face, top) == pytest.approx(-0.0869, abs=1e-3)


def test_empty_or_full_mask_is_undefined():
    r = random_maps((8, 8), 1, seed=0)[0]
    for mask in (np.zeros((8, 8)), np.ones((8, 8))):
        assert nra(r, mask) is None and epg(r, mask) is None


def test_bad_inputs_raise_value_error():
    mask = disc()
    with pytest.raises(ValueError, match="fit_map"):
        nra(np.zeros((16, 16)), mask)
    with pytest.raises(ValueError, match="binary"):
        nra(mask, gaussian_filter(mask, 2))
    with pytest.raises(ValueError, match="NaN"):
        epg(np.full(mask.shape, np.nan), mask)
    with pytest.raises(ValueError, match="n_thresholds"):
        nra(mask, mask, n_thresholds=1)
    with pytest.raises(ValueError, match="ties"):
        nra(mask, mask, ties="random")


def test_fit_map_keeps_a_blob_where_it_was():
    small = np.zeros((16, 16))
    small[4, 11] = 1.0
    small = gaussian_filter(small, 1.5)
    big = fit_map(small, (64, 64))
    assert big.shape == (64, 64)
    cy, cx = center_of_mass(big)
    # pixel centres map as (i + 0.5)·4 − 0.5
    assert cy == pytest.approx(4 * 4 + 1.5, abs=0.3) and cx == pytest.approx(11 * 4 + 1.5, abs=0.3)
    assert np.array_equal(fit_map(small, (16, 16)), small)


# --- RegionScores ------------------------------------------------------------------------------

def test_region_scores_means_hit_rate_and_skips():
    mask = disc()
    scores = RegionScores(n_thresholds=50)
    assert scores.add("AU12", mask, mask) == (pytest.approx(1.0), pytest.approx(1.0))
    scores.add("AU12", mask[::2, ::2], mask)  # half-size map, resized to the mask first
    scores.add("AU04", np.zeros_like(mask), mask)  # constant: NRA 0, not a hit
    scores.add("AU4", 1.0 - mask, mask)  # inverted: NRA < 0
    assert scores.add("AU4", mask, np.zeros_like(mask)) is None  # empty mask
    assert scores.add("AU1", mask, np.ones_like(mask)) is None  # full mask

    s = scores.summary()
    json.dumps(s, allow_nan=False)
    assert s["n"] == 4 and s["skipped"] == 2
    assert s["hit_rate"] == 0.5  # exactly the two NRA > 0.5
    nras = [i["nra"] for i in scores.instances]
    assert s["nra"] == pytest.approx(np.mean(nras))
    assert s["epg"] == pytest.approx(np.mean([i["epg"] for i in scores.instances]))
    assert list(s["per_au"]) == ["AU1", "AU4", "AU12"]
    assert s["per_au"]["AU12"]["n"] == 2 and s["per_au"]["AU12"]["hit_rate"] == 1.0
    assert s["per_au"]["AU4"]["n"] == 2 and s["per_au"]["AU4"]["skipped"] == 1
    assert s["per_au"]["AU4"]["hit_rate"] == 0.0 and s["per_au"]["AU4"]["epg"] == pytest.approx(mask.mean() / 2)
    assert s["per_au"]["AU1"] == {"nra": None, "epg": None, "hit_rate": None, "n": 0, "skipped": 1}
    lo, hi = s["nra_ci95"]
    assert min(nras) <= lo <= s["nra"] <= hi <= max(nras)


def test_hit_rate_uses_strict_threshold():
    scores = RegionScores(n_thresholds=4, ci_resamples=0)
    scores.instances = [{"au": "AU6", "nra": v, "epg": 0.5} for v in (0.5, 0.5000001, 0.9, 0.2)]
    s = scores.summary()
    assert s["hit_rate"] == 0.5 and s["nra_ci95"] is None


def test_region_scores_empty_summary_is_json_ready():
    s = RegionScores().summary()
    assert s == {"nra": None, "epg": None, "hit_rate": None, "n": 0, "skipped": 0, "nra_ci95": None,
                 "per_au": {}}


# --- landmark ROI maps -------------------------------------------------------------------------

def frontal_template(size: int = 112) -> np.ndarray:
    """A left-right symmetric frontal 68-point (iBUG order) face in a ``size``×``size`` image."""
    u = np.zeros((68, 2))
    t = np.pi - np.arange(17) * np.pi / 16  # jaw 0..16: a U from the image-left temple via the chin
    u[:17] = np.stack([0.5 + 0.42 * np.cos(t), 0.38 + 0.52 * np.sin(t)], axis=1)
    u[17:22] = [(0.17, 0.27), (0.23, 0.24), (0.30, 0.23), (0.37, 0.24), (0.44, 0.26)]  # brow, outer→inner
    u[27:31] = [(0.5, 0.35), (0.5, 0.42), (0.5, 0.49), (0.5, 0.56)]
    u[31:36] = [(0.42, 0.60), (0.46, 0.615), (0.5, 0.62), (0.54, 0.615), (0.58, 0.60)]
    u[36:42] = [(0.22, 0.36), (0.27, 0.335), (0.33, 0.335), (0.38, 0.365), (0.33, 0.38), (0.27, 0.38)]
    u[[48, 49, 50, 51, 57, 58, 59]] = [(0.35, 0.74), (0.40, 0.71), (0.46, 0.695), (0.5, 0.70), (0.5, 0.805),
                                       (0.45, 0.80), (0.40, 0.78)]
    u[[60, 61, 62, 66, 67]] = [(0.37, 0.74), (0.45, 0.725), (0.5, 0.725), (0.5, 0.755), (0.45, 0.755)]
    mirror = {21 - i: 22 + i for i in range(5)}  # brows
    mirror.update({36: 45, 37: 44, 38: 43, 39: 42, 40: 47, 41: 46, 48: 54, 49: 53, 50: 52, 59: 55, 58: 56,
                   60: 64, 61: 63, 67: 65})
    for a, b in mirror.items():
        u[b] = (1.0 - u[a, 0], u[a, 1])
    # unit square -> pixel-centre coordinates; mirroring u -> 1 - u is x -> size - 1 - x
    return u * size - 0.5


def _peak(m: np.ndarray) -> np.ndarray:
    return np.array(np.unravel_index(np.argmax(m), m.shape))[::-1].astype(float)  # (x, y)


def test_template_is_symmetric_and_frontal():
    pts = frontal_template()
    mirrored = np.stack([111.0 - pts[:, 0], pts[:, 1]], axis=1)
    assert np.allclose(np.sort(mirrored, axis=0), np.sort(pts, axis=0))
    assert pts[39, 0] < pts[42, 0] and pts[19, 1] < pts[37, 1] < pts[51, 1] < pts[8, 1]


def test_au12_map_peaks_on_the_mouth_corners_not_the_eyes():
    pts = frontal_template()
    maps, defined = landmark_roi_maps(pts, (112, 112), (112, 112), ["AU12"])
    m = maps[0]
    assert maps.dtype == np.float32 and defined == [True]
    assert m.max() == pytest.approx(1.0, abs=5e-3)  # the corners fall between pixel centres
    d = min(np.linalg.norm(_peak(m) - pts[48]), np.linalg.norm(_peak(m) - pts[54]))
    assert d <= 1.0
    # the two corners are both peaks; the eyes are far outside the region
    for corner in (48, 54):
        x, y = np.round(pts[corner]).astype(int)
        assert m[y, x] > 0.99
    for eye in (list(range(36, 42)), list(range(42, 48))):
        x, y = np.round(pts[eye].mean(axis=0)).astype(int)
        assert m[y, x] < 1e-3


def test_au1_map_lies_half_a_scale_above_the_inner_brows():
    pts = frontal_template()
    (m,), _ = landmark_roi_maps(pts, (112, 112), (112, 112), ["AU01"])
    scale = np.linalg.norm(pts[42] - pts[39])
    px, py = _peak(m)
    inner = pts[21] if px < 56 else pts[22]
    assert abs(px - inner[0]) <= 1.0
    assert py == pytest.approx(inner[1] - scale / 2, abs=1.0)
    assert py < pts[21, 1] - 10  # above the brow line


def test_bilateral_roi_maps_are_mirror_symmetric_for_a_symmetric_face():
    pts = frontal_template()
    aus = ["AU1", "AU2", "AU4", "AU6", "AU7", "AU12", "AU17", "AU25"]
    for out in ((112, 112), (28, 28)):
        maps, defined = landmark_roi_maps(pts, (112, 112), out, aus)
        assert all(defined)
        assert np.allclose(maps, maps[:, :, ::-1], atol=1e-5)


def test_roi_offsets_turn_with_a_rolled_face():
    pts = frontal_template()
    aus = ["AU1", "AU4", "AU6", "AU17"]  # all offset above/below their landmarks
    upright, _ = landmark_roi_maps(pts, (112, 112), (112, 112), aus)
    # the face turned 90° clockwise in the image: pixel (x, y) -> (111 - y, x)
    turned = np.stack([111.0 - pts[:, 1], pts[:, 0]], axis=1)
    maps, _ = landmark_roi_maps(turned, (112, 112), (112, 112), aus)
    assert np.allclose(maps, np.rot90(upright, -1, axes=(1, 2)), atol=1e-5)


def test_roi_maps_follow_the_image_scale():
    pts = frontal_template()
    full, _ = landmark_roi_maps(pts, (112, 112), (112, 112), ["AU6"])
    # landmarks of the same face in a 224-px image, maps at 112: the same maps
    half, _ = landmark_roi_maps(pts * 2 + 0.5, (224, 224), (112, 112), ["AU6"])
    assert np.allclose(full, half, atol=1e-5)


def test_roi_masks_are_thresholded_maps_and_unknown_entries_are_empty():
    pts = frontal_template()
    aus = ["AU12", "AU11"]  # AU11 (nasolabial deepener) has no centre rule
    masks, defined = landmark_roi_masks(pts, (112, 112), (56, 56), aus)
    maps, _ = landmark_roi_maps(pts, (112, 112), (56, 56), aus)
    assert masks.dtype == bool and masks.shape == (2, 56, 56)
    assert defined == [True, False]
    assert np.array_equal(masks, maps > 0.5)
    assert not masks[1].any() and not maps[1].any()
    # two discs of radius ~1.18 σ·s (σ = 0.3), in 56-px units
    scale = np.linalg.norm(pts[42] - pts[39]) / 2
    r = 0.30 * scale * np.sqrt(2 * np.log(2))
    assert masks[0].sum() == pytest.approx(2 * np.pi * r ** 2, rel=0.15)
    # the ground truth scores its own map as ideal
    assert nra(maps[0], masks[0]) == pytest.approx(1.0, abs=1e-9)


def test_every_table_entry_names_valid_landmarks_and_source():
    for au, roi in AU_ROI_CENTRES.items():
        assert roi.source in ("EAC-Net", "facr") and roi.sigma > 0, au
        for idx, offset in roi.centres:
            assert all(0 <= i < 68 for i in idx) and len(offset) == 2, au


def test_bad_landmarks_raise_value_error():
    pts = frontal_template()
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        landmark_roi_maps(pts[:49], (112, 112), (28, 28), ["AU12"])
    with pytest.raises(ValueError, match=r"\(68, 2\)"):
        landmark_roi_maps(pts.ravel(), (112, 112), (28, 28), ["AU12"])
    bad = pts.copy()
    bad[30, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        landmark_roi_maps(bad, (112, 112), (28, 28), ["AU12"])
    with pytest.raises(ValueError, match="coincide"):
        landmark_roi_maps(np.zeros((68, 2)), (112, 112), (28, 28), ["AU12"])
    with pytest.raises(ValueError, match="image_size_wh"):
        landmark_roi_maps(pts, (112,), (28, 28), ["AU12"])
    with pytest.raises(UnknownAUError):
        landmark_roi_maps(pts, (112, 112), (28, 28), ["AU99"])
    with pytest.raises(ValueError, match="threshold"):
        landmark_roi_masks(pts, (112, 112), (28, 28), ["AU12"], threshold=1.5)
