import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from facr.audit.stats import (
    bootstrap_ci,
    cohens_d_paired,
    holm,
    min_attainable_p,
    paired_comparison,
    per_unit_mean,
    wilcoxon_paired,
)

# --- holm ------------------------------------------------------------------------------------

def test_holm_matches_hand_computed_step_down():
    # sorted: .005*4=.02, .01*3=.03, .03*2=.06, .04*1=.04 -> running max keeps .06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_leaves_none_out_of_the_family():
    # family size is 2, not 4: .02*2=.04, .6*1=.6
    assert holm([None, 0.6, float("nan"), 0.02]) == [None, pytest.approx(0.6), None, pytest.approx(0.04)]
    assert holm([0.4, 0.5, 0.9]) == pytest.approx([1.0, 1.0, 1.0])
    assert holm([]) == [] and holm([None]) == [None]


def test_holm_rejects_p_outside_unit_interval():
    with pytest.raises(ValueError, match="pvalues"):
        holm([0.1, 1.5])


@given(st.lists(st.one_of(st.none(), st.floats(0, 1)), max_size=12))
def test_holm_is_monotone_in_raw_p_and_never_below_raw_p(ps):
    adj = holm(ps)
    assert [a is None for a in adj] == [p is None for p in ps]
    pairs = [(p, a) for p, a in zip(ps, adj) if p is not None]
    m = len(pairs)
    for p, a in pairs:
        assert p - 1e-12 <= a <= min(1.0, m * p) + 1e-12
    for p1, a1 in pairs:
        for p2, a2 in pairs:
            if p1 <= p2:
                assert a1 <= a2 + 1e-12


# --- wilcoxon ----------------------------------------------------------------------------------

def test_wilcoxon_paired_equals_scipy_on_untied_example():
    a = [0.81, 0.62, 0.93, 0.55, 0.70, 0.64, 0.88, 0.59, 0.76, 0.64]  # |d| all distinct
    b = [0.60, 0.65, 0.71, 0.40, 0.52, 0.69, 0.61, 0.57, 0.50, 0.48]
    res = wilcoxon_paired(a, b)
    ref = stats.wilcoxon(a, b)
    assert res.method == "exact"
    assert res.statistic == pytest.approx(float(ref.statistic))
    assert res.statistic == pytest.approx(5.0)  # W- = ranks 2 + 3 of the two negative differences
    assert res.pvalue == pytest.approx(float(ref.pvalue))
    assert res.n == 10 and res.n_nonzero == 10
    assert res.median_difference == pytest.approx(np.median(np.subtract(a, b)))
    greater = wilcoxon_paired(a, b, alternative="greater")
    assert greater.pvalue == pytest.approx(float(stats.wilcoxon(a, b, alternative="greater").pvalue))


def test_wilcoxon_paired_uses_normal_approximation_above_fifty_pairs_like_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.3, 1, 80), rng.normal(0, 1, 80)
    res = wilcoxon_paired(a, b)
    assert res.method == "asymptotic"
    assert res.pvalue == pytest.approx(float(stats.wilcoxon(a, b).pvalue))


def test_wilcoxon_paired_drops_none_nan_and_zero_differences_and_counts_them():
    a = [1.0, 2.0, None, 4.0, 5.0, float("nan"), 3.0]
    b = [0.0, 0.0, 1.0, 0.0, 5.0, 1.0, 0.0]
    res = wilcoxon_paired(a, b)
    assert res.n == 5 and res.n_nonzero == 4  # pair 5.0-5.0 is a zero difference
    assert res.pvalue == pytest.approx(2 / 2**4)
    assert res.median_difference == pytest.approx(2.0)


def test_wilcoxon_paired_all_zero_differences_give_undefined_p_not_a_crash():
    res = wilcoxon_paired([0.5, 0.7, 0.2], [0.5, 0.7, 0.2])
    assert res.pvalue is None and res.statistic is None and res.method == "none"
    assert res.n == 3 and res.n_nonzero == 0 and res.median_difference == 0.0
    assert wilcoxon_paired([], []).n == 0


def test_wilcoxon_paired_treats_float_roundoff_ties_as_ties():
    # 0.5-0.3 and 0.7-0.5 differ by round-off only
    res = wilcoxon_paired([0.5, 0.7, 0.9], [0.3, 0.5, 0.1])
    assert res.method in ("permutation", "asymptotic")
    assert res.pvalue == pytest.approx(float(stats.wilcoxon([0.2, 0.2, 0.8]).pvalue))


def test_three_positive_differences_reach_but_cannot_beat_the_quarter_floor():
    assert min_attainable_p(3) == 0.25
    assert min_attainable_p(3, "greater") == 0.125
    assert min_attainable_p(1) == 1.0 and min_attainable_p(0) is None
    res = wilcoxon_paired([0.9, 0.8, 0.7], [0.1, 0.2, 0.3])
    assert res.method == "exact" and res.pvalue == pytest.approx(0.25)


def test_wilcoxon_paired_rejects_unknown_alternative_and_unequal_lengths():
    with pytest.raises(ValueError, match="alternative"):
        wilcoxon_paired([1.0], [0.0], alternative="bigger")
    with pytest.raises(ValueError, match="length"):
        wilcoxon_paired([1.0, 2.0], [0.0])


# --- cohen's d --------------------------------------------------------------------------------

def test_cohens_d_paired_is_mean_over_sample_sd_of_differences():
    assert cohens_d_paired([1.0, 2.0, 3.0], [0.0, 0.0, 0.0]) == pytest.approx(2.0)  # mean 2 / sd 1
    # diffs [1, -1, 3, None dropped]: mean 1, sd 2
    assert cohens_d_paired([2.0, 0.0, 4.0, None], [1.0, 1.0, 1.0, 0.0]) == pytest.approx(0.5)
    assert cohens_d_paired([0.0, 0.0, 0.0], [1.0, 2.0, 3.0]) == pytest.approx(-2.0)


def test_cohens_d_paired_is_none_when_undefined_rather_than_inf():
    assert cohens_d_paired([1.0], [0.0]) is None
    assert cohens_d_paired([1.0, 2.0], [0.0, 1.0]) is None  # sd 0, mean 1
    assert cohens_d_paired([1.0, 2.0], [1.0, 2.0]) is None  # sd 0, mean 0


# --- bootstrap --------------------------------------------------------------------------------

def test_bootstrap_ci_contains_sample_mean_and_is_deterministic_per_seed():
    x = np.random.default_rng(3).normal(1.0, 2.0, 40)
    lo, hi = bootstrap_ci(x, seed=7)
    assert lo < x.mean() < hi
    assert bootstrap_ci(x, seed=7) == (lo, hi)
    assert bootstrap_ci(x, seed=8) != (lo, hi)


def test_bootstrap_ci_narrows_as_n_grows():
    rng = np.random.default_rng(4)
    small, large = bootstrap_ci(rng.normal(0, 1, 20)), bootstrap_ci(rng.normal(0, 1, 500))
    assert (large[1] - large[0]) < 0.4 * (small[1] - small[0])  # expected ratio √(20/500) = 0.2


def test_bootstrap_ci_half_width_matches_normal_theory_for_n_200():
    x = np.random.default_rng(5).normal(3.0, 1.5, 200)
    lo, hi = bootstrap_ci(x)
    expected = 1.96 * x.std(ddof=1) / math.sqrt(x.size)
    assert (hi - lo) / 2 == pytest.approx(expected, rel=0.2)


def test_bootstrap_ci_of_paired_differences_and_other_statistics():
    a, b = [3.0, 5.0, None, 4.0], [1.0, 2.0, 9.0, 3.0]  # diffs [2, 3, 1]
    assert bootstrap_ci(a, paired_with=b) == bootstrap_ci([2.0, 3.0, 1.0])
    lo, hi = bootstrap_ci([2.0, 3.0, 1.0], statistic=np.median)
    assert 1.0 <= lo <= hi <= 3.0
    assert bootstrap_ci([4.0, 4.0, 4.0]) == (4.0, 4.0)
    assert bootstrap_ci([]) is None and bootstrap_ci([None, float("nan")]) is None
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0], confidence=95)


# --- per-unit aggregation and the paired comparison -------------------------------------------

FAITHFUL = [
    {"subject": "s1", "seed": 0, "pspi_agreement": 0.6}, {"subject": "s1", "seed": 1, "pspi_agreement": 0.8},
    {"subject": "s2", "seed": 0, "pspi_agreement": 0.5}, {"subject": "s2", "seed": 1, "pspi_agreement": None},
    {"subject": "s3", "seed": 0, "pspi_agreement": 0.9}, {"subject": "s3", "seed": 1, "pspi_agreement": 0.7},
    {"subject": "s4", "seed": 0, "pspi_agreement": 0.4}, {"subject": "s4", "seed": 1, "pspi_agreement": 0.6},
]
CONTROL = [
    {"subject": "s1", "seed": 0, "pspi_agreement": 0.2}, {"subject": "s1", "seed": 1, "pspi_agreement": 0.4},
    {"subject": "s2", "seed": 0, "pspi_agreement": 0.1}, {"subject": "s2", "seed": 1, "pspi_agreement": 0.3},
    {"subject": "s3", "seed": 0, "pspi_agreement": None}, {"subject": "s3", "seed": 1},
    {"subject": "s4", "seed": 0, "pspi_agreement": 0.4}, {"subject": "s4", "seed": 1, "pspi_agreement": 0.2},
]


def test_per_unit_mean_averages_over_seeds_and_skips_undefined_values():
    faithful = per_unit_mean(FAITHFUL, "subject", "pspi_agreement")
    control = per_unit_mean(CONTROL, "subject", "pspi_agreement")
    assert faithful == pytest.approx({"s1": 0.7, "s2": 0.5, "s3": 0.8, "s4": 0.5})
    assert control == pytest.approx({"s1": 0.3, "s2": 0.2, "s4": 0.3})  # s3 has no defined value


def test_paired_comparison_uses_only_subjects_present_in_both_arms():
    out = paired_comparison(per_unit_mean(FAITHFUL, "subject", "pspi_agreement"),
                            per_unit_mean(CONTROL, "subject", "pspi_agreement"))
    # pairs s1, s2, s4: a = [.7, .5, .5], b = [.3, .2, .3], diffs [.4, .3, .2]
    assert out["n_units"] == 3
    assert out["mean_a"] == pytest.approx(1.7 / 3) and out["mean_b"] == pytest.approx(0.8 / 3)
    assert out["mean_difference"] == pytest.approx(0.3)
    assert out["cohens_d"] == pytest.approx(3.0)  # 0.3 / sd 0.1
    assert out["wilcoxon_p"] == pytest.approx(0.25) and out["min_attainable_p"] == 0.25
    lo, hi = out["ci95_difference"]
    assert lo == pytest.approx(0.2) and hi == pytest.approx(0.4)  # each extreme has mass 1/27 > 2.5%
    json.dumps(out, allow_nan=False)


def test_paired_comparison_with_no_shared_units_is_all_none_and_json_safe():
    out = paired_comparison({"s1": 0.5}, {"s2": 0.4, "s1": None})
    assert out["n_units"] == 0
    assert all(out[k] is None for k in out if k != "n_units")
    json.dumps(out, allow_nan=False)


def test_cluster_bootstrap_resamples_subjects_and_is_wider_than_a_frame_bootstrap():
    from facr.audit.stats import cluster_bootstrap_ratio

    # 10 subjects x 50 frames; subjects differ a lot (hit rate 0.1 .. 0.9), frames within a subject do not.
    rates = np.linspace(0.1, 0.9, 10)
    num, den = rates * 50, np.full(10, 50.0)
    lo, hi = cluster_bootstrap_ratio(num, den, n_resamples=4000, seed=0)
    assert lo < 0.5 < hi  # the pooled ratio is 0.5
    frames = np.repeat(rates, 50)  # pretend every frame is an independent draw
    f_lo, f_hi = bootstrap_ci((np.random.default_rng(0).random(500) < frames).astype(float), seed=0)
    assert (hi - lo) > 2 * (f_hi - f_lo)  # subject-level spread, not frame-level
    assert cluster_bootstrap_ratio(num, den, seed=3) == cluster_bootstrap_ratio(num, den, seed=3)
    assert cluster_bootstrap_ratio([1.0], [2.0]) is None  # one subject: no CI
    assert cluster_bootstrap_ratio([1.0, 0.0], [2.0, 0.0]) is None  # only one unit defines the ratio
