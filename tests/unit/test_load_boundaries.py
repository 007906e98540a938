"""A load level measures on while its interval holds a verdict boundary (1.0, 1 + min_gain) that more pairs can
settle: the fix for verdicts that flipped between NO-GO and INCONCLUSIVE from one run to the next (fake servers in
real processes serve the rounds: fault injection only; the loop's interval is scripted where a test needs one)."""

from __future__ import annotations

import numpy as np
import pytest

from playbook.helpers import loadtest
from playbook.helpers.artifacts import RunDir
from playbook.helpers.load_analysis import open_boundaries, widened
from playbook.helpers.params import LoadParams
from playbook.helpers.stats import halfwidth_shrink, paired_bootstrap_ratio

BOUNDS = (1.0, 1.1)


# -- which boundaries a level's interval still holds, and which more pairs can settle ---------------------------

def test_a_wide_interval_below_one_holds_both_boundaries_and_the_gain_worth_having_is_settleable():
    """A run on the AVX2-only CPU (2026-12-07): 0.84 [0.63, 1.11] at concurrency 1 after 3 pairs (INCONCLUSIVE;
    the next run said NO-GO with 0.85 [0.72, 0.99]). Eight pairs instead of three can bring 1.1 out of it."""
    settle, unsettled = open_boundaries(0.84, 0.65, 1.09, 0.04, BOUNDS, shrink=halfwidth_shrink(3, 8))
    lo, hi = widened(0.84, 0.65, 1.09, 0.04)
    assert lo < 1.0 < 1.1 < hi  # widened by the between-start spread, as the rules see it
    assert 1.1 in settle and set(settle) | set(unsettled) == {1.0, 1.1}


def test_an_interval_wholly_on_one_side_holds_nothing():
    assert open_boundaries(0.80, 0.74, 0.86, 0.04, BOUNDS) == ([], [])  # a loss
    assert open_boundaries(1.40, 1.25, 1.55, 0.04, BOUNDS) == ([], [])  # a win worth having
    assert open_boundaries(None, None, None, 0.04, BOUNDS) == ([], [])  # no interval


def test_a_boundary_nearer_than_fresh_server_starts_move_the_speedup_cannot_be_settled():
    # 1.02: 2% from 1.0 and 7.5% from 1.1, inside the +-8% (1.96 x 0.04) a fresh start alone moves it
    assert open_boundaries(1.02, 0.90, 1.12, 0.04, BOUNDS) == ([], [1.0, 1.1])
    # without a between-start spread any boundary off the point estimate can be settled by enough pairs...
    assert open_boundaries(1.02, 0.90, 1.12, 0.0, BOUNDS) == ([1.0, 1.1], [])
    # ...but not by the few a budget allows, when the interval would still hold it at that many
    assert open_boundaries(1.02, 0.90, 1.12, 0.0, BOUNDS, shrink=0.9) == ([], [1.0, 1.1])
    assert open_boundaries(1.0, 0.9, 1.05, 0.0, BOUNDS) == ([], [1.0])  # exactly at the boundary


def test_more_pairs_narrow_the_interval_by_the_count_and_by_student_t():
    assert halfwidth_shrink(3, 9) == pytest.approx(2.306 / 4.303 * (3 / 9) ** 0.5, rel=1e-3)  # t(8), t(2)
    assert halfwidth_shrink(3, 3) == halfwidth_shrink(1, 9) == 1.0  # no more pairs; no interval to shrink
    # what it predicts holds for pairs whose ratios spread the same: 3 pairs, then the same 3 three times over
    rng = np.random.default_rng(5)
    three = [(list(rng.normal(10 * r, 0.05, 16)), list(rng.normal(10, 0.05, 16))) for r in (0.78, 0.86, 0.94)]
    p3, lo3, hi3 = paired_bootstrap_ratio(three, seed=1)
    p9, lo9, hi9 = paired_bootstrap_ratio(three * 3, seed=1)
    predicted = np.log(hi3 / p3) * halfwidth_shrink(3, 9)
    assert np.log(hi9 / p9) == pytest.approx(predicted, rel=0.25)


# -- the loop: measure on while a settleable boundary is held -----------------------------------------------------

def _params(urls, **kw) -> LoadParams:
    values = dict(mode="external", baseline_url=urls[0], spec_url=urls[1], concurrencies=[1], requests_per_level=2,
                  warmup_requests=0, find_saturation=False, lossless_check=False, max_tokens=9, min_round_pairs=2,
                  target_ci_halfwidth=5.0, level_time_budget_s=30, level_decision_budget_s=60)
    return LoadParams(**{**values, **kw})


def _scripted(monkeypatch, intervals):
    """The loop's interval after each check, in turn (the last repeats); returns the list of checks made."""
    calls: list[int] = []

    def fake(pairs, **_):
        calls.append(len(pairs))
        return intervals[min(len(calls), len(intervals)) - 1]

    monkeypatch.setattr(loadtest, "paired_bootstrap_ratio", fake)
    return calls


def _level(p, tmp_path):
    (sp,) = loadtest.run_load_test(p, RunDir(tmp_path / "run"), progress=False).speedup
    return sp


def test_a_level_astride_a_boundary_measures_on_until_it_is_not(two_fakes, tmp_path, monkeypatch):
    calls = _scripted(monkeypatch, [(0.84, 0.63, 1.11), (0.84, 0.66, 1.08), (0.84, 0.75, 0.95)])
    sp = _level(_params(two_fakes), tmp_path)
    # the target (+-500%) was met at 2 pairs: the old rule stopped there, astride 1.0 and 1.1
    assert calls == [2, 3, 4] and sp.rounds == 4
    assert sp.stop_reason.startswith("within-run interval +-12% reached the target")
    assert sp.stop_reason.endswith("; measured on until the interval no longer held 1 and 1.1")


def test_off_it_stops_where_the_budget_and_target_say(two_fakes, tmp_path, monkeypatch):
    calls = _scripted(monkeypatch, [(0.84, 0.63, 1.11)])
    sp = _level(_params(two_fakes, level_decision_budget_s=0), tmp_path)
    assert calls == [2] and sp.rounds == 2 and "held" not in sp.stop_reason


def test_the_mixed_workload_does_not_measure_on(two_fakes, tmp_path, monkeypatch):
    """Only the homogeneous workload's levels decide the load verdict."""
    calls = _scripted(monkeypatch, [(0.84, 0.63, 1.11), (0.84, 0.75, 0.95)])
    p = _params(two_fakes, mixed_workload="structured:0.5@0.0,creative:0.5@1.0")
    res = loadtest.run_load_test(p, RunDir(tmp_path / "run"), progress=False)
    assert [lv.rounds for lv in res.mixed_levels] == [2, 2]
    assert res.speedup[0].rounds == 3 and len(calls) == 3  # homogeneous: 2 pairs, 1 more; mixed: 2 pairs


def _virtual_clock(monkeypatch, round_s: float) -> None:
    """The loop's clock advances ``round_s`` per round and not otherwise: its budgets count rounds, not this machine's
    load (under a busy CPU the real clock spent the 1.5 s budget within two pairs)."""
    now = [0.0]
    real_round = loadtest._round

    def timed_round(*args, **kwargs):
        now[0] += round_s
        return real_round(*args, **kwargs)

    monkeypatch.setattr(loadtest, "_round", timed_round)
    monkeypatch.setattr(loadtest, "time", type("Clock", (), {"monotonic": staticmethod(lambda: now[0])}))


def test_the_decision_budget_caps_it_and_says_so(two_fakes, tmp_path, monkeypatch):
    """As the budget runs out, the pairs it still allows cannot narrow the interval enough: the level stops."""
    calls = _scripted(monkeypatch, [(0.84, 0.63, 1.11)])
    _virtual_clock(monkeypatch, 0.1)  # 0.2 s per pair
    p = _params(two_fakes, level_time_budget_s=0.5, level_decision_budget_s=1.5)
    sp = _level(p, tmp_path)
    # past the 0.5 s budget at 2 pairs (one more would end at 0.6 s), on until one more would end past 1.5 s
    assert calls == [2, 3, 4, 5, 6, 7] and sp.rounds == 7
    assert sp.stop_reason.endswith("; measured on while its interval held 1 and 1.1; its interval holds 1 and 1.1, "
                                   "too near the point estimate for the pairs of 1.5 s to settle")


def test_an_unsettleable_boundary_stops_at_once_and_says_why(two_fakes, tmp_path, monkeypatch):
    calls = _scripted(monkeypatch, [(1.02, 0.92, 1.10)])
    sp = _level(_params(two_fakes, between_start_sd=0.04), tmp_path)
    assert calls == [2] and sp.rounds == 2
    assert sp.stop_reason.endswith("its interval holds 1 and 1.1, too near the point estimate for the pairs of "
                                   "60 s to settle; fresh server starts alone move it +-8%")
