"""Issue 13 (stability): a paired interval also covers what differs between server starts."""

from __future__ import annotations

import math

import pytest

from playbook.helpers.load_analysis import EMBEDDED_BETWEEN_START_SD, Z95, find_crossover, widen_for_restarts
from playbook.helpers.loadgen import LoadShape
from playbook.helpers.loadtest import LevelRun, Round, analyze, between_start_sd
from playbook.helpers.params import LoadParams
from playbook.helpers.schemas.load import SpeedupPoint


def test_the_between_start_spread_widens_each_side_in_log_space():
    sp = SpeedupPoint(level=1, speedup=1.20, ci_low=1.01, ci_high=1.34, significant=True, design="paired")
    widen_for_restarts(sp, 0.11)
    lo = math.sqrt(math.log(1.20 / 1.01) ** 2 + (Z95 * 0.11) ** 2)
    hi = math.sqrt(math.log(1.34 / 1.20) ** 2 + (Z95 * 0.11) ** 2)
    assert sp.ci_low == pytest.approx(1.20 * math.exp(-lo)) and sp.ci_high == pytest.approx(1.20 * math.exp(hi))
    assert sp.ci_low < 1.0 < sp.ci_high and not sp.significant  # last session's "win" of run 2: not a win
    assert sp.speedup == 1.20 and sp.between_start_sd == 0.11
    big = SpeedupPoint(level=1, speedup=2.0, ci_low=1.8, ci_high=2.2, significant=True)
    widen_for_restarts(big, 0.11)
    assert big.significant and big.ci_low > 1.0  # a large effect still wins
    slow = SpeedupPoint(level=8, speedup=0.6, ci_low=0.55, ci_high=0.66, significant=True)
    widen_for_restarts(slow, 0.11)
    assert slow.significant and find_crossover([slow]) == 8


@pytest.mark.parametrize("sp", [
    SpeedupPoint(level=1, speedup=1.1, ci_low=1.0, ci_high=1.2),
    SpeedupPoint(level=1, speedup=None, status="excluded"),
    SpeedupPoint(level=1, speedup=1.1),  # no interval
])
def test_nothing_is_widened_without_a_spread_or_an_interval(sp):
    before = sp.model_copy()
    widen_for_restarts(sp, 0.0 if sp.ci_low is not None else 0.11)
    assert sp == before


def test_the_spread_defaults_to_the_measured_value_on_the_embedded_engine_only():
    assert between_start_sd(LoadParams()) == EMBEDDED_BETWEEN_START_SD > 0
    assert between_start_sd(LoadParams(between_start_sd=0)) == 0
    assert between_start_sd(LoadParams(mode="external", baseline_url="http://a:1", spec_url="http://b:1")) == 0
    assert between_start_sd(LoadParams(mode="external", baseline_url="http://a:1", spec_url="http://b:1",
                                       between_start_sd=0.05)) == 0.05
    with pytest.raises(ValueError):
        LoadParams(between_start_sd=-2)


def _rec(tpot):
    return {"status": "ok", "tpot_ms": tpot, "ttft_ms": 10.0, "e2e_ms": 10.0 + tpot * 32, "itl_ms": [tpot] * 32,
            "output_tokens": 33, "dispatch_lag_ms": 0.1, "burst": False}


def test_analysis_of_paired_levels_carries_the_widened_interval():
    from playbook.helpers.load_analysis import level_stats

    shape = LoadShape("concurrency", concurrency=1)
    lr = LevelRun(shape, "structured", "paired")
    for i in range(8):  # spec 20% faster, a little noise: a narrow within-run interval
        lr.rounds["baseline"].append(Round(f"b{i}", [_rec(10.0 + 0.1 * (j % 3) + 0.05 * i) for j in range(8)]))
        lr.rounds["spec"].append(Round(f"s{i}", [_rec(10.0 / 1.2 + 0.1 * (j % 2)) for j in range(8)]))
    lr.stats = {c: level_stats(c, shape, [x for r in lr.rounds[c] for x in r.records], 10.0) for c in lr.rounds}
    narrow = analyze([lr], "structured").speedup[0]
    wide = analyze([lr], "structured", between_start_sd=0.11).speedup[0]
    assert narrow.speedup == wide.speedup and narrow.significant and narrow.between_start_sd is None
    assert wide.ci_low < narrow.ci_low and wide.ci_high > narrow.ci_high and wide.between_start_sd == 0.11
    said = analyze([lr], between_start_sd=0.11).finding
    assert not wide.significant and "no significant win" in said and "between server starts (SD 0.11" in said
    assert "between server starts" not in analyze([lr]).finding
