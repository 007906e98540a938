"""Load-test analysis: level statistics, speedup intervals, crossover, saturation, missing levels;
sweep verdicts and pooling; the losslessness comparison."""

from __future__ import annotations

import numpy as np
import pytest

from playbook.helpers.load_analysis import find_crossover, level_stats, saturation_level, speedup_point
from playbook.helpers.loadgen import LoadShape
from playbook.helpers.loadtest import LevelRun, Round, analyze
from playbook.helpers.lossless import compare
from playbook.helpers.metrics import SpecDelta
from playbook.helpers.schemas.load import SpeedupPoint
from playbook.helpers.sweep import acceptance_verdict, make_point, pool


def records(tpots, status="ok", seed=0, out=33):
    rng = np.random.default_rng(seed)
    recs = []
    for i, t in enumerate(tpots):
        ttft = float(rng.uniform(10, 20))
        if t is None:  # a failed request
            recs.append({"status": status, "tpot_ms": None, "ttft_ms": None, "e2e_ms": 1.0, "itl_ms": [],
                         "output_tokens": 0, "dispatch_lag_ms": 0.1, "sent_s": i * 0.1})
            continue
        recs.append({"status": status, "tpot_ms": t, "ttft_ms": ttft, "e2e_ms": ttft + t * (out - 1),
                     "itl_ms": [t] * (out - 1), "output_tokens": out, "dispatch_lag_ms": 0.1, "sent_s": i * 0.1})
    return recs


def test_level_stats_percentiles_throughput_and_errors():
    rng = np.random.default_rng(0)
    tp = rng.uniform(5, 10, size=30)
    recs = records(tp) + records([None, None], status="http_error")
    st = level_stats("baseline", LoadShape("concurrency", concurrency=4), recs, duration_s=2.0)
    assert st.tpot_ms.p50 == pytest.approx(np.percentile(tp, 50))
    assert st.tpot_ms.p99 == pytest.approx(np.percentile(tp, 99))
    assert st.errors == 2 and st.error_rate == pytest.approx(2 / 32)
    assert st.errors_by_status == {"http_error": 2}
    assert st.output_tok_s == pytest.approx(30 * 33 / 2.0) and st.req_s == pytest.approx(15)


def test_speedup_interval_and_significance():
    rng = np.random.default_rng(1)
    base = records(rng.normal(10, 0.5, 40))
    faster = records(rng.normal(5, 0.25, 40))
    same = records(rng.normal(10, 0.5, 40), seed=2)
    win = speedup_point(1, base, faster)
    assert win.ci_low > 1.5 and win.significant
    tie = speedup_point(1, base, same)
    assert tie.ci_low < 1.0 < tie.ci_high and not tie.significant


def test_crossover_is_the_first_level_whose_upper_bound_is_below_one():
    pts = [SpeedupPoint(level=1, speedup=1.3, ci_low=1.1, ci_high=1.5),
           SpeedupPoint(level=4, speedup=0.97, ci_low=0.9, ci_high=1.05),  # not significant: no crossover yet
           SpeedupPoint(level=8, speedup=0.8, ci_low=0.7, ci_high=0.9),
           SpeedupPoint(level=16, speedup=0.6, ci_low=0.5, ci_high=0.7)]
    assert find_crossover(pts) == 8
    assert find_crossover(pts[:2]) is None


def _level(c, base, spec, dur=2.0, spec_status="ok", reason=""):
    shape = LoadShape("concurrency", concurrency=c)
    lr = LevelRun(shape, "structured", "paired")
    lr.rounds = {"baseline": [Round("b", base, dur)], "spec": [Round("s", spec, dur)]}
    lr.stats = {"baseline": level_stats("baseline", shape, base, dur),
                "spec": level_stats("spec", shape, spec, dur, status=spec_status, reason=reason)}
    return lr


def test_saturation_and_missing_levels():
    rng = np.random.default_rng(2)
    lv = []
    for c, dur in ((1, 4.0), (2, 2.1), (4, 2.0)):  # throughput doubles, then flattens
        lv.append(level_stats("baseline", LoadShape("concurrency", concurrency=c), records(rng.uniform(5, 6, 20)), dur))
    assert saturation_level(lv) == 4
    levels = [_level(1, records(rng.uniform(5, 6, 20)), records(rng.uniform(8, 9, 20))),
              _level(2, records(rng.uniform(5, 6, 20)), records([]), spec_status="failed",
                     reason="connection refused")]
    res = analyze(levels, planned=[1, 2, 4])
    assert [sp.level for sp in res.speedup] == [1]
    assert any(m.startswith("spec@2") and "refused" in m for m in res.missing_levels)
    assert any(m.startswith("spec@4") for m in res.missing_levels)
    assert res.status == "partial" and res.speedup[0].speedup < 1


@pytest.mark.parametrize("rate,verdict", [(None, "unknown"), (0.49, "no-go"), (0.5, "borderline"),
                                          (0.65, "borderline"), (0.66, "go")])
def test_acceptance_bands(rate, verdict):
    assert acceptance_verdict(rate) == verdict


def test_pooling_sums_counter_deltas_over_classes():
    a = make_point(0.0, "code", SpecDelta(True, drafts=10, draft_tokens=40, accepted=30, per_pos_accepted=[9, 8, 7, 6]), [])
    b = make_point(0.0, "creative", SpecDelta(True, drafts=30, draft_tokens=120, accepted=30,
                                              per_pos_accepted=[15, 8, 5, 2]), [])
    pooled = pool(0.0, [a, b], [])
    assert pooled.acceptance_rate == pytest.approx(60 / 160)
    assert pooled.mean_acceptance_length == pytest.approx(1 + 60 / 40)
    assert pooled.per_position == pytest.approx([24 / 40, 16 / 40, 12 / 40, 8 / 40])


def _out(pid, toks):
    return {"prompt_id": pid, "token_ids": toks, "text": " ".join(map(str, toks))}


def test_lossless_t0_identity_and_first_divergence():
    base = [_out("a", [1, 2, 3]), _out("b", [4, 5, 6])]
    lps = [[-1.0, -1.0, -1.0], [-0.5, -0.2, -1.0]]
    pt = compare(0.0, base, [_out("a", [1, 2, 3]), _out("b", [4, 9, 6])], lps, [[-1.0] * 3, [-0.5, -3.0, -2.0]])
    assert pt.identical_share == 0.5 and pt.lossless is False and not pt.near_tie_margins
    assert pt.first_divergence["prompt_id"] == "b" and pt.first_divergence["token_index"] == 1
    assert pt.first_divergence["margin_nats"] == pytest.approx(2.8) and not pt.first_divergence["near_tie"]
    assert "1 changed beyond a near-tie" in pt.reason
    assert compare(0.0, base, base, lps, lps).lossless is True


def test_lossless_t0_counts_a_flip_at_a_near_tie_as_rounding_and_nothing_else():
    base = [_out(str(i), [1, 2, 3]) for i in range(10)]
    spec = [*base[:8], _out("8", [1, 7, 3]), _out("9", [1, 2, 8])]
    lp_b = [[-0.1, -0.70, -0.60]] * 10
    tie = compare(0.0, base, spec, lp_b, [*lp_b[:8], [-0.1, -0.75, -0.6], [-0.1, -0.7, -0.62]])
    assert tie.identical_share == 0.8 and tie.near_tie_margins == pytest.approx([0.05, 0.02]) and tie.lossless is True
    assert "2 diverged at a near-tie" in tie.reason and tie.first_divergence["near_tie"] is True
    # the same flips where the baseline clearly preferred its own token: a changed output each
    clear = compare(0.0, base, spec, lp_b, [*lp_b[:8], [-0.1, -2.5, -0.6], [-0.1, -0.7, -4.0]])
    assert clear.lossless is False and not clear.near_tie_margins and clear.first_divergence["prompt_id"] == "8"
    # one clear change among near-ties is still within the 90% threshold at 10 outputs; its margin is named first
    one = compare(0.0, base, spec, lp_b, [*lp_b[:8], [-0.1, -0.75, -0.6], [-0.1, -0.7, -4.0]])
    assert one.lossless is True and one.first_divergence["prompt_id"] == "9" and one.first_divergence["margin_nats"] > 3
    # no log-probabilities at the divergence (the scoring call failed): not a near-tie
    assert compare(0.0, base, spec, [None] * 10, [None] * 10).lossless is False
    # a tolerance of 0 turns every flip into a change
    assert compare(0.0, base, spec, lp_b, [*lp_b[:8], [-0.1, -0.75, -0.6], [-0.1, -0.7, -0.62]],
                   near_tie_nats=0.0).lossless is False


def test_lossless_t_positive_uses_the_likelihood_test():
    rng = np.random.default_rng(4)
    outs = [_out(str(i), [i]) for i in range(16)]
    same = compare(0.8, outs, outs, [[x] for x in rng.normal(-2, 0.3, 16)], [[x] for x in rng.normal(-2, 0.3, 16)])
    assert same.lossless is True and same.p_value >= 0.01
    broken = compare(0.8, outs, outs, [[x] for x in rng.normal(-2, 0.3, 16)], [[x] for x in rng.normal(-6, 0.5, 16)])
    assert broken.lossless is False and broken.p_value < 0.01 and "significant gap" in broken.reason
