"""Statistics for comparing a faithful model against its controls.

The paper's protocol: average each metric over seeds within a unit (subject) first
(:func:`per_unit_mean`), then compare the two arms across units with a paired Wilcoxon
signed-rank test, paired Cohen's d and a bootstrap 95% CI of the mean difference
(:func:`paired_comparison`), and Holm-correct the p-values across the metric family
(:func:`holm`). Every value returned is a finite float or None, so reports stay valid JSON
(facr writes with ``allow_nan=False``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy
from scipy import stats

# Before SciPy 1.15, method="auto" with tied |d| fell back to the normal approximation;
# from 1.15 it runs an exhaustive permutation test when n <= 13 (scipy gh-21567).
_SCIPY_PERMUTES_TIES = tuple(int(p) for p in scipy.__version__.split(".")[:2]) >= (1, 15)
_ALTERNATIVES = ("two-sided", "greater", "less")


def _defined(x: Any) -> bool:
    return x is not None and math.isfinite(float(x))


def _pairs(a: Sequence[float | None], b: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    """Drop, pairwise, every pair where either side is None or NaN."""
    if len(a) != len(b):
        raise ValueError(f"paired inputs differ in length: {len(a)} != {len(b)}")
    kept = [(float(x), float(y)) for x, y in zip(a, b) if _defined(x) and _defined(y)]
    arr = np.array(kept, dtype=float).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni step-down adjusted p-values, in the input order.

    With the m defined p-values sorted, p_(1) ≤ … ≤ p_(m), the adjusted value is
    p̃_(i) = min(1, max_{j ≤ i} (m − j + 1)·p_(j)). None (or NaN) entries stay None and do not
    count towards the family size m.
    """
    idx = [i for i, p in enumerate(pvalues) if _defined(p)]
    p = np.array([float(pvalues[i]) for i in idx])
    if np.any((p < 0) | (p > 1)):
        raise ValueError("pvalues: every p-value must lie in [0, 1]")
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out: list[float | None] = [None] * len(pvalues)
    for rank, j in enumerate(order):
        out[idx[j]] = float(adjusted[rank])
    return out


def min_attainable_p(n: int, alternative: str = "two-sided") -> float | None:
    """Smallest p-value an exact signed-rank test can reach with n non-zero differences.

    All n differences of one sign is the most extreme of the 2^n equally likely sign patterns,
    so the floor is 1/2^n one-sided and min(1, 2/2^n) two-sided — with 3 seeds (or subjects)
    no exact two-sided test can go below 0.25. None when n < 1.
    """
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative: expected one of {_ALTERNATIVES}, got {alternative!r}")
    if n < 1:
        return None
    return min(1.0, (2.0 if alternative == "two-sided" else 1.0) / 2.0**n)


@dataclass
class WilcoxonResult:
    """Paired Wilcoxon signed-rank test on d = a − b.

    ``n``: pairs used (after dropping None/NaN); ``n_nonzero``: those with d ≠ 0, the ones
    ranked (zero_method="wilcox"); ``median_difference``: median of d over the n pairs;
    ``method``: "exact", "permutation" (ties, exhaustive), "asymptotic" or "none".
    """

    statistic: float | None
    pvalue: float | None
    n: int
    n_nonzero: int
    median_difference: float | None
    method: str


def wilcoxon_paired(a: Sequence[float | None], b: Sequence[float | None],
                    alternative: str = "two-sided") -> WilcoxonResult:
    """Wilcoxon signed-rank test of a against b, paired (scipy.stats.wilcoxon).

    Zero differences are dropped before the test, and the exact null distribution is used
    when the remaining |d| are untied and n_nonzero ≤ 50. d is rounded to 12 decimals so that
    ties hidden by float round-off (0.5 − 0.3 vs 0.7 − 0.5) count as ties. The p-value is None
    when no difference is non-zero; see :func:`min_attainable_p` for the floor at small n.
    """
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative: expected one of {_ALTERNATIVES}, got {alternative!r}")
    x, y = _pairs(a, b)
    d = np.round(x - y, 12)
    median = float(np.median(d)) if d.size else None
    nz = d[d != 0]
    if nz.size == 0:
        return WilcoxonResult(None, None, int(d.size), 0, median, "none")
    tied = np.unique(np.abs(nz)).size < nz.size
    if not tied and nz.size <= 50:
        method, scipy_method = "exact", "exact"
    else:
        permutes = tied and nz.size <= 13 and _SCIPY_PERMUTES_TIES
        method, scipy_method = ("permutation" if permutes else "asymptotic"), "auto"
    res = stats.wilcoxon(nz, alternative=alternative, method=scipy_method)
    return WilcoxonResult(float(res.statistic), float(res.pvalue), int(d.size), int(nz.size), median, method)


def cohens_d_paired(a: Sequence[float | None], b: Sequence[float | None]) -> float | None:
    """Paired Cohen's d (d_z): mean(a − b) / sd(a − b), with the sample sd (ddof=1).

    None when fewer than 2 pairs, or when every difference is the same (sd = 0): the effect
    would be 0/0 or ±inf, neither of which is a usable number or valid JSON.
    """
    x, y = _pairs(a, b)
    if x.size < 2:
        return None
    diff = x - y
    sd = float(np.std(diff, ddof=1))
    return float(np.mean(diff) / sd) if sd > 0 else None


def bootstrap_ci(values: Sequence[float | None], statistic: Callable[..., Any] = np.mean,
                 n_resamples: int = 10000, confidence: float = 0.95, seed: int = 0,
                 paired_with: Sequence[float | None] | None = None) -> tuple[float, float] | None:
    """Percentile bootstrap CI of ``statistic(values)``, or of ``statistic(values − paired_with)``.

    Pairs (or values) with None/NaN are dropped. ``statistic`` must accept ``axis=`` like the
    numpy reductions, so all resamples are scored in one call per chunk. Deterministic for a
    given ``seed``; None when no values are left.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a value in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples: expected at least 1, got {n_resamples}")
    if paired_with is None:
        x = np.array([float(v) for v in values if _defined(v)], dtype=float)
    else:
        v, w = _pairs(values, paired_with)
        x = v - w
    if x.size == 0:
        return None
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // x.size)  # bounds the resample matrix at ~16 MB
    scores = np.concatenate([
        np.asarray(statistic(x[rng.integers(0, x.size, (min(chunk, n_resamples - s), x.size))], axis=1))
        for s in range(0, n_resamples, chunk)
    ])
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(scores, [alpha, 1 - alpha])
    return float(lo), float(hi)


def per_unit_mean(rows: Iterable[Mapping[str, Any]], unit_key: str, value_key: str) -> dict[Hashable, float]:
    """Mean of ``value_key`` over the rows (seeds) of each unit (subject), in first-seen order.

    Rows whose value is missing, None or NaN are skipped; a unit with no defined value is absent.
    """
    sums: dict[Hashable, list[float]] = {}
    for row in rows:
        v = row.get(value_key)
        if _defined(v):
            sums.setdefault(row[unit_key], []).append(float(v))
    return {unit: float(np.mean(vs)) for unit, vs in sums.items()}


def paired_comparison(a_by_unit: Mapping[Hashable, float | None], b_by_unit: Mapping[Hashable, float | None],
                      seed: int = 0, n_resamples: int = 10000) -> dict[str, Any]:
    """Compare arm a with arm b on the units defined in both (a − b throughout).

    Returns ``n_units``, ``mean_a``, ``mean_b``, ``mean_difference``, ``ci95_difference``
    ([lo, hi], bootstrap of the paired mean difference), ``wilcoxon_p`` (two-sided),
    ``cohens_d`` and ``min_attainable_p`` (two-sided floor for the n_nonzero units the test
    ranked). Undefined entries are None.
    """
    units = [u for u in a_by_unit if u in b_by_unit and _defined(a_by_unit[u]) and _defined(b_by_unit[u])]
    a = np.array([float(a_by_unit[u]) for u in units])
    b = np.array([float(b_by_unit[u]) for u in units])
    test = wilcoxon_paired(a, b)
    ci = bootstrap_ci(a, paired_with=b, seed=seed, n_resamples=n_resamples)
    return {
        "n_units": len(units),
        "mean_a": float(a.mean()) if units else None,
        "mean_b": float(b.mean()) if units else None,
        "mean_difference": float((a - b).mean()) if units else None,
        "ci95_difference": list(ci) if ci is not None else None,
        "wilcoxon_p": test.pvalue,
        "cohens_d": cohens_d_paired(a, b),
        "min_attainable_p": min_attainable_p(test.n_nonzero),
    }


def cluster_bootstrap_ratio(num_by_unit: Sequence[float], den_by_unit: Sequence[float], n_resamples: int = 2000,
                            confidence: float = 0.95, seed: int = 0) -> list[float] | None:
    """Percentile bootstrap CI of a pooled ratio Σnum / Σden that resamples *units* (subjects).

    Frames of one subject are not independent draws, so a CI over frames is too narrow; this
    resamples whole subjects with replacement (their per-subject sums of hits and pairs) and
    recomputes the pooled figure. None with fewer than two units with a defined denominator.
    """
    num = np.asarray(num_by_unit, dtype=float)
    den = np.asarray(den_by_unit, dtype=float)
    keep = den > 0
    num, den = num[keep], den[keep]
    if len(den) < 2:
        return None
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(den), np.full(len(den), 1.0 / len(den)), size=n_resamples)  # [B, U]
    ratios = (counts @ num) / (counts @ den)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(ratios, [alpha, 1 - alpha])
    return [float(lo), float(hi)]
