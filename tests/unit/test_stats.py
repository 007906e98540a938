"""Percentiles, bootstrap intervals and the permutation test, checked against numpy and known truths."""

from __future__ import annotations

import numpy as np
import pytest

from playbook.helpers.stats import bootstrap_ratio, interpolate, percentiles, permutation_test


def test_percentiles_match_numpy_and_ignore_missing():
    rng = np.random.default_rng(0)
    x = rng.lognormal(size=101)
    got = percentiles(list(x) + [None, float("nan")])
    for q in (50, 95, 99):
        assert got[f"p{q}"] == pytest.approx(np.percentile(x, q))
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None}


def test_bootstrap_interval_covers_the_known_ratio():
    true_ratio = 2.0
    covered = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        a = rng.lognormal(np.log(true_ratio), 0.3, size=60)  # median 2
        b = rng.lognormal(0.0, 0.3, size=60)  # median 1
        point, low, high = bootstrap_ratio(a, b, n_boot=1000, seed=seed)
        assert low <= point <= high
        covered += low <= true_ratio <= high
    assert covered >= 34  # nominal 95%: 38 of 40; allow sampling noise


def test_bootstrap_is_reproducible_and_empty_safe():
    a, b = [1.0, 2.0, 3.0], [2.0, 2.5, 3.0]
    assert bootstrap_ratio(a, b, seed=5) == bootstrap_ratio(a, b, seed=5)
    assert bootstrap_ratio([], b) == (None, None, None)


def test_permutation_test_false_alarm_rate_and_power():
    rng = np.random.default_rng(1)
    alarms = sum(permutation_test(rng.normal(size=15), rng.normal(size=15), n_perm=500, seed=i) < 0.05
                 for i in range(100))
    assert alarms <= 12  # nominal 5 of 100
    assert permutation_test(rng.normal(size=15), rng.normal(2.0, 1.0, size=15), n_perm=2000) < 0.01


def test_interpolate_clamps_and_skips_missing():
    assert interpolate(0.2, [0, 0.4], [1.0, 0.6]) == pytest.approx(0.8)
    assert interpolate(2.0, [0, 0.4, 0.8], [1.0, 0.6, None]) == pytest.approx(0.6)
    assert interpolate(0.1, [0], [None]) is None
