"""Statistics for measurements: percentiles, bootstrap confidence intervals, two-sample tests.

Everything is numpy only and seeded, so a rerun on the same records gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

PERCENTILES = (50, 95, 99)


def clean(values: Sequence[float | None]) -> np.ndarray:
    """Values as a float array without None/NaN."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    return arr[~np.isnan(arr)]


def percentiles(values: Sequence[float | None], qs: Sequence[float] = PERCENTILES) -> dict[str, float | None]:
    """``{"p50": .., "p95": .., "p99": ..}`` with numpy's linear interpolation; None when empty."""
    arr = clean(values)
    if arr.size == 0:
        return {f"p{q:g}": None for q in qs}
    vals = np.percentile(arr, list(qs))
    return {f"p{q:g}": float(v) for q, v in zip(qs, vals, strict=True)}


def bootstrap_ratio(
    numerator: Sequence[float],
    denominator: Sequence[float],
    stat: Callable[[np.ndarray], float] = np.median,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float | None, float | None, float | None]:
    """``stat(numerator) / stat(denominator)`` with a percentile bootstrap interval.

    The two samples are resampled independently (they come from two different servers).
    Returns ``(point, low, high)``; all None when either sample is empty.
    """
    a, b = clean(numerator), clean(denominator)
    if a.size == 0 or b.size == 0 or stat(b) == 0:
        return None, None, None
    point = float(stat(a) / stat(b))
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.size, size=(n_boot, a.size))
    ib = rng.integers(0, b.size, size=(n_boot, b.size))
    if stat is np.median:
        sa, sb = np.median(a[ia], axis=1), np.median(b[ib], axis=1)
    elif stat is np.mean:
        sa, sb = a[ia].mean(axis=1), b[ib].mean(axis=1)
    else:
        sa = np.array([stat(row) for row in a[ia]])
        sb = np.array([stat(row) for row in b[ib]])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = sa / sb
    ratios = ratios[np.isfinite(ratios)]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return point, float(low), float(high)


def paired_bootstrap_ratio(
    pairs: Sequence[tuple[Sequence[float], Sequence[float]]],
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float | None, float | None, float | None]:
    """Ratio of medians over paired rounds, with an interval that resamples whole pairs.

    ``pairs[i] = (numerator values, denominator values)`` measured back to back in round pair i.
    Point: ``median(all numerators) / median(all denominators)``. Interval: a two-stage percentile
    bootstrap: draw round pairs with replacement, then the values within each drawn half, and
    recompute that ratio. A slow drift that moves both halves of a pair together stays inside each
    draw and cancels, instead of widening (or shifting) the interval as resampling the two pooled
    samples independently would; the second stage keeps the interval honest with few pairs (with 3
    pairs, drawing pairs alone has 10 outcomes). Pairs with an empty half are left out; all None when
    no pair is left, no interval with one pair.
    """
    kept = [(clean(a), clean(b)) for a, b in pairs]
    kept = [(a, b) for a, b in kept if a.size and b.size]
    if not kept:
        return None, None, None
    num, den = np.concatenate([a for a, _ in kept]), np.concatenate([b for _, b in kept])
    if np.median(den) == 0:
        return None, None, None
    point = float(np.median(num) / np.median(den))
    if len(kept) < 2:
        return point, None, None
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(kept), size=(n_boot, len(kept)))
    ratios = np.empty(n_boot)
    for i, idx in enumerate(draws):
        a = np.concatenate([kept[j][0][rng.integers(0, kept[j][0].size, kept[j][0].size)] for j in idx])
        b = np.concatenate([kept[j][1][rng.integers(0, kept[j][1].size, kept[j][1].size)] for j in idx])
        mb = np.median(b)
        ratios[i] = np.median(a) / mb if mb else np.nan
    ratios = ratios[np.isfinite(ratios)]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    half = _t_halfwidth([np.median(a) / np.median(b) for a, b in kept], confidence)
    if half is not None:
        low, high = min(low, point * np.exp(-half)), max(high, point * np.exp(half))
    return point, float(low), float(high)


def _t_halfwidth(pair_ratios: Sequence[float], confidence: float) -> float | None:
    """Half-width, in log space, of Student's t interval of the per-pair log ratios (n - 1 degrees of freedom).

    The percentile bootstrap cannot see the spread between round pairs when there are few of them (2 pairs
    have 3 distinct draws; measured: 1.65x [1.27, 3.26] from 2 pairs on an idle-looking 2-core machine,
    where 10 pairs give about +-15%). The paired interval is therefore at least this one: with 2 pairs
    t = 12.7, with 3 pairs 4.3, with 10 pairs 2.26, so a claim from few pairs needs pairs that agree."""
    from scipy.stats import t as student_t

    logs = np.log([r for r in pair_ratios if np.isfinite(r) and r > 0])
    if logs.size < 2:
        return None
    return float(student_t.ppf(0.5 + confidence / 2, logs.size - 1) * logs.std(ddof=1) / np.sqrt(logs.size))


def halfwidth_shrink(n: int, more: int, confidence: float = 0.95) -> float:
    """How much a paired interval from ``n`` pairs narrows with ``more`` pairs, their spread unchanged: Student's
    t over the square root of the count, ``t(more - 1) sqrt(n) / (t(n - 1) sqrt(more))`` (3 to 9 pairs: 0.31, of
    which 0.58 from the count and 0.54 from t's degrees of freedom)."""
    from scipy.stats import t as student_t

    if n < 2 or more <= n:
        return 1.0
    q = 0.5 + confidence / 2
    return float(student_t.ppf(q, more - 1) / student_t.ppf(q, n - 1) * np.sqrt(n / more))


def relative_halfwidth(point: float | None, low: float | None, high: float | None) -> float | None:
    """Half the interval's width over the point estimate (0.10 = +-10%); None without an interval."""
    if point is None or low is None or high is None or point == 0:
        return None
    return (high - low) / 2 / abs(point)


def permutation_test(x: Sequence[float], y: Sequence[float], n_perm: int = 10000, seed: int = 0) -> float | None:
    """Two-sided permutation test of equal means; returns the p-value (None if a sample is empty).

    Under the null (both samples from one distribution) P(p <= alpha) <= alpha: the false-alarm
    rate of rejecting at ``p < alpha`` is alpha. The +1 correction keeps the p-value valid.
    """
    a, b = clean(x), clean(y)
    if a.size == 0 or b.size == 0:
        return None
    pooled = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    rng = np.random.default_rng(seed)
    idx = np.argsort(rng.random((n_perm, pooled.size)), axis=1)
    perm = pooled[idx]
    diffs = np.abs(perm[:, : a.size].mean(axis=1) - perm[:, a.size :].mean(axis=1))
    return float((np.sum(diffs >= observed - 1e-12) + 1) / (n_perm + 1))


def interpolate(x: float, xs: Sequence[float], ys: Sequence[float | None]) -> float | None:
    """Linear interpolation of y at x over the points with a value (clamped at the ends)."""
    pts = sorted((a, b) for a, b in zip(xs, ys, strict=True) if b is not None)
    if not pts:
        return None
    return float(np.interp(x, [p[0] for p in pts], [p[1] for p in pts]))
