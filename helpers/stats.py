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
