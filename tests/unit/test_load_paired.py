"""Drift-proof measurement (issue 13): pairing statistics, burst detection, exclusion of untrustworthy
levels, the ABBA drift flag, and the adaptive number of round pairs (fake servers in real processes:
fault injection only)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from playbook.helpers.artifacts import RunDir
from playbook.helpers.load_analysis import (
    apply_drift,
    find_crossover,
    finding,
    integrity_problems,
    level_stats,
    speedup_point,
    tpots,
)
from playbook.helpers.loadgen import LoadShape, is_burst
from playbook.helpers.loadtest import LevelRun, Round, analyze, run_load_test
from playbook.helpers.params import LoadParams
from playbook.helpers.schemas.load import SpeedupPoint
from playbook.helpers.stats import bootstrap_ratio, paired_bootstrap_ratio, relative_halfwidth
from tests.support import start_fake, stop_fake

C1 = LoadShape("concurrency", concurrency=1)


def rec(tpot, burst=False, status="ok", out=33):
    return {"status": status, "tpot_ms": tpot, "ttft_ms": 10.0, "e2e_ms": 10.0 + tpot * (out - 1),
            "itl_ms": [tpot] * (out - 1), "output_tokens": out, "dispatch_lag_ms": 0.1, "burst": burst}


# -- pairing statistics ------------------------------------------------------------------------

def _drifting_pairs(rng, n_pairs=10, n=16, ratio=1.25):
    """The machine slows down from x0.7 to x1.3 over the level; both halves of a pair share its speed."""
    pairs = []
    for speed in np.linspace(0.7, 1.3, n_pairs):
        base = rng.normal(10.0, 0.3, n) * speed
        spec = rng.normal(10.0 / ratio, 0.3 / ratio, n) * speed
        pairs.append((list(base), list(spec)))
    return pairs


def test_drift_shared_by_both_halves_of_a_pair_cancels_in_the_paired_interval():
    pairs = _drifting_pairs(np.random.default_rng(0))
    point, low, high = paired_bootstrap_ratio(pairs, seed=1)
    assert point == pytest.approx(1.25, rel=0.05)
    assert low < 1.25 < high and relative_halfwidth(point, low, high) < 0.05
    # resampling the two pooled samples independently sees the drift as noise: a wider interval (the paired
    # one is at least Student's t interval of the 10 per-pair ratios, +-3.7% here)
    ind = bootstrap_ratio([x for b, _ in pairs for x in b], [x for _, s in pairs for x in s], seed=1)
    assert relative_halfwidth(*ind) > 1.5 * relative_halfwidth(point, low, high)


def test_few_pairs_that_disagree_give_a_wide_interval():
    """Two pairs, 1.9x and 1.4x: the bootstrap alone saw 3 distinct draws and claimed a win; Student's t with
    one degree of freedom does not."""
    rng = np.random.default_rng(3)
    pairs = [(list(rng.normal(19, 0.2, 16)), list(rng.normal(10, 0.1, 16))),
             (list(rng.normal(14, 0.2, 16)), list(rng.normal(10, 0.1, 16)))]
    point, low, high = paired_bootstrap_ratio(pairs, seed=1)
    assert low < 1.0 < high and high / low > 3
    agree = [(list(rng.normal(15, 0.1, 16)), list(rng.normal(10, 0.1, 16))) for _ in range(3)]
    assert paired_bootstrap_ratio(agree, seed=1)[1] > 1.4  # pairs that agree still make a claim


def test_paired_interval_is_none_with_one_pair_and_skips_empty_halves():
    assert paired_bootstrap_ratio([([10.0, 11.0], [5.0, 5.5])])[1:] == (None, None)
    point, low, high = paired_bootstrap_ratio([([10.0] * 4, [5.0] * 4), ([], [5.0]), ([10.0] * 4, [5.0] * 4)])
    assert point == pytest.approx(2.0) and low == pytest.approx(2.0) and high == pytest.approx(2.0)
    assert paired_bootstrap_ratio([([], [1.0])]) == (None, None, None)


# -- stream integrity ----------------------------------------------------------------------------

@pytest.mark.parametrize("gaps,near_zero,burst", [
    (63, 63, True),    # the whole stream in one burst after a late first chunk
    (63, 32, True),    # half of it held back
    (63, 10, False),   # a client late to read merges a few chunks: not a burst
    (3, 3, False),     # too few gaps to tell
    (12, 6, True),     # speculative stream (5 tokens a chunk): chunk gaps are tested, not per-token ITL
])
def test_burst_definition(gaps, near_zero, burst):
    assert is_burst(gaps, near_zero) is burst


@pytest.mark.parametrize("decode_ms,e2e_ms,burst", [
    (0.5, 210.0, True),     # late first chunk, the rest within half a millisecond: the classic burst
    (180.0, 210.0, False),  # chunks merged in pairs but arriving over the whole request: TPOT still right
    (40.0, 210.0, True),    # most of the stream held back to the end
])
def test_burst_needs_the_tokens_compressed_in_time(decode_ms, e2e_ms, burst):
    assert is_burst(44, 30, decode_ms, e2e_ms) is burst


def test_bursts_are_counted_but_left_out_of_tpot():
    recs = [rec(5.0 + i * 0.01) for i in range(18)] + [rec(0.01, burst=True), rec(0.02, burst=True)]
    st = level_stats("baseline", C1, recs, 2.0)
    assert st.burst_requests == 2 and st.burst_share == pytest.approx(0.1)
    assert st.tpot_ms.p50 > 5.0 and len(tpots(recs)) == 18
    assert st.client_tpot_ms_mean < 5.0  # the client mean keeps them: that is what the server cross-check sees
    assert st.output_tok_s == pytest.approx(20 * 33 / 2.0)


def _stats(config, tpot=5.0, bursts=0, n=20, server=None):
    recs = [rec(tpot) for _ in range(n - bursts)] + [rec(0.01, burst=True) for _ in range(bursts)]
    st = level_stats(config, C1, recs, 2.0)
    if server is not None:
        st.server_tpot_ms_mean = server
        st.client_server_tpot_ratio = st.client_tpot_ms_mean / server
    return recs, st


def test_a_level_with_too_many_bursts_is_excluded_and_prints_no_number():
    b_recs, b = _stats("baseline", 5.0, bursts=3)  # 15% > 10%
    s_recs, s = _stats("spec", 6.0)
    sp = speedup_point(1, b_recs, s_recs, b, s)
    assert sp.status == "excluded" and "burst" in sp.reason and "baseline" in sp.reason
    assert sp.speedup is None and sp.ci_low is None and not sp.significant
    assert sp.burst_share_baseline == pytest.approx(0.15)
    text = finding(analyze([_lr(b_recs, s_recs, b, s)]))
    assert "excluded" in text and "0.00x" not in text and "significant win" not in text.replace("no significant", "")


def test_a_client_server_disagreement_excludes_and_agreement_does_not():
    b_recs, b = _stats("baseline", 5.0, server=8.0)  # client 5.0 vs server 8.0: 0.62
    s_recs, s = _stats("spec", 6.0, server=6.1)
    assert any("server" in p and "baseline" in p for p in integrity_problems({"baseline": b, "spec": s}))
    assert speedup_point(1, b_recs, s_recs, b, s).status == "excluded"
    b_recs, b = _stats("baseline", 5.0, server=5.3)
    sp = speedup_point(1, b_recs, s_recs, b, s)
    assert sp.status == "ok" and sp.speedup == pytest.approx(5.0 / 6.0)


def _lr(b_recs, s_recs, b, s, design="paired"):
    lr = LevelRun(C1, "structured", design)
    lr.rounds = {"baseline": [Round("b", b_recs, 2.0)], "spec": [Round("s", s_recs, 2.0)]}
    lr.stats = {"baseline": b, "spec": s}
    return lr


def test_an_excluded_level_is_never_a_crossover():
    pts = [SpeedupPoint(level=1, speedup=None, status="excluded", reason="bursts"),
           SpeedupPoint(level=4, speedup=0.8, ci_low=0.7, ci_high=0.9, status="inconclusive"),
           SpeedupPoint(level=8, speedup=0.8, ci_low=0.7, ci_high=0.9)]
    assert find_crossover(pts) == 8


# -- ABBA drift ----------------------------------------------------------------------------------

def test_abba_drift_beyond_the_half_width_makes_a_level_inconclusive():
    sp = SpeedupPoint(level=1, speedup=1.0, ci_low=0.95, ci_high=1.05, significant=False)
    apply_drift(sp, 1.02)
    assert sp.status == "ok" and sp.drift == 1.02
    wide = SpeedupPoint(level=1, speedup=0.8, ci_low=0.76, ci_high=0.84, significant=True)
    apply_drift(wide, 0.85)
    assert wide.status == "inconclusive" and not wide.significant and "-15%" in wide.reason


def test_abba_analysis_flags_levels_and_reports_the_drift():
    rng = np.random.default_rng(3)
    b_recs = [rec(float(x)) for x in rng.normal(5, 0.1, 30)]
    s_recs = [rec(float(x)) for x in rng.normal(6, 0.1, 30)]
    lr = _lr(b_recs, s_recs, level_stats("baseline", C1, b_recs, 2.0), level_stats("spec", C1, s_recs, 2.0), "abba")
    res = analyze([lr], drift=1.3)
    assert res.drift == 1.3 and res.speedup[0].status == "inconclusive" and res.crossover is None
    assert analyze([lr], drift=1.0).speedup[0].status == "ok"


# -- the adaptive loop against fake servers ------------------------------------------------------

def _params(urls, **kw):
    values = dict(mode="external", baseline_url=urls[0], spec_url=urls[1], concurrencies=[1], requests_per_level=3,
                  warmup_requests=1, find_saturation=False, lossless_check=False, max_tokens=9,
                  level_decision_budget_s=0)
    return LoadParams(**{**values, **kw})


def test_a_level_stops_when_its_interval_is_narrow_enough_or_its_budget_is_spent(two_fakes, tmp_path):
    loose = run_load_test(_params(two_fakes, min_round_pairs=2, target_ci_halfwidth=5.0), RunDir(tmp_path / "a"),
                          progress=False)
    (sp,) = loose.speedup
    # it stops at the first pair count (>= 2) whose interval is within +-500%: 2 pairs as a rule, but on a busy
    # machine two pairs can disagree by more than that (Student's t with one degree of freedom is 12.7) and a
    # third is measured (seen 2026-12-04: 3 pairs, 0.97x [0.55, 1.72])
    assert sp.design == "paired" and 2 <= sp.rounds <= 4 and sp.stop_reason.startswith("within-run interval")
    assert f"after {sp.rounds} pairs" in sp.stop_reason or "re-measured" in sp.stop_reason
    tight = run_load_test(_params(two_fakes, min_round_pairs=2, target_ci_halfwidth=1e-6, level_time_budget_s=6),
                          RunDir(tmp_path / "b"), progress=False)
    (sp,) = tight.speedup
    assert sp.stop_reason.startswith("time budget") and sp.rounds > 2
    recs = RunDir(tmp_path / "b").read_jsonl("50_load_requests.jsonl")
    measured = [r for r in recs if not r["warmup"]]
    assert len(measured) == sp.rounds * 2 * 3
    # the same prompts for both halves of a round pair, a fresh sample for the next pair
    by_attempt: dict[str, list[str]] = {}
    for r in measured:
        by_attempt.setdefault(r["id"].rsplit("/", 1)[1].split("-")[0], []).append(r["prompt_id"])
    b_att, s_att = (next(lv for lv in tight.levels if lv.config == c).attempts for c in ("baseline", "spec"))
    assert [sorted(by_attempt[a]) for a in b_att] == [sorted(by_attempt[a]) for a in s_att]
    assert sorted(by_attempt[b_att[0]]) != sorted(by_attempt[b_att[1]])
    # the order rotates: baseline first in pair 1, spec first in pair 2 (records are appended in time order)
    pos = {a: next(i for i, r in enumerate(measured) if f"/{a}-" in r["id"]) for a in b_att + s_att}
    assert pos[b_att[0]] < pos[s_att[0]] and pos[s_att[1]] < pos[b_att[1]]


def test_a_burst_delivered_level_is_measured_once_more_then_excluded(tmp_path):
    procs = [start_fake() for _ in range(2)]
    try:
        prompts = tmp_path / "burst.jsonl"
        prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"burst prompt {i}"}) + "\n" for i in range(8)))
        p = _params([u for _, u in procs], workload=str(prompts), min_round_pairs=2)
        res = run_load_test(p, RunDir(tmp_path / "run"), progress=False)
    finally:
        for proc, _ in procs:
            stop_fake(proc)
    (sp,) = res.speedup
    assert sp.status == "excluded" and "burst-delivered" in sp.reason and sp.speedup is None
    assert sp.rounds == 4 and "re-measured" in sp.stop_reason  # 2 pairs, then 2 more
    assert sp.burst_share_baseline == 1.0 and sp.burst_share_spec == 1.0
    assert "excluded" in res.finding and "x [" not in res.finding


def test_the_mixed_workload_is_compared_at_every_level(two_fakes, tmp_path):
    p = _params(two_fakes, concurrencies=[1, 2], min_round_pairs=2, target_ci_halfwidth=5.0,
                mixed_workload="structured:0.5@0.0,creative:0.5@1.0")
    res = run_load_test(p, RunDir(tmp_path / "run"), progress=False)
    assert [m.level for m in res.mixed] == [1, 2]
    assert all(m.speedup_mixed is not None and m.speedup_homogeneous is not None for m in res.mixed)
    assert sorted((lv.config, lv.level) for lv in res.mixed_levels) == [("baseline", 1), ("baseline", 2),
                                                                         ("spec", 1), ("spec", 2)]
    # min_round_pairs rounds as a rule; on a busy machine a fake server's stream stalls, and a level takes a third
    # pair (two disagreeing pairs), or two more (the integrity check re-measures it): never fewer
    assert all(lv.workload == p.mixed_workload and 2 <= lv.rounds <= 6 for lv in res.mixed_levels)


def test_abba_measures_baseline_spec_then_baseline_again_and_resumes(two_fakes, tmp_path):
    from playbook.helpers.artifacts import PhaseLog
    from playbook.helpers.loadtest import NOT_IN_FINGERPRINT, _Ctx, _run_abba, shapes_for

    p = _params(two_fakes, concurrencies=[1, 2], min_round_pairs=2)
    run = RunDir(tmp_path / "run")

    def once():
        ctx = _Ctx(p, run, PhaseLog(run), p.fingerprint(NOT_IN_FINGERPRINT), True, False)
        warnings: list[str] = []
        levels, mixed, _, drift = _run_abba(ctx, shapes_for(p.concurrencies, []), warnings)
        return analyze(levels, p.workload, drift=drift), warnings

    res, warnings = once()
    assert not warnings and res.design == "abba" and res.drift is not None and res.drift > 0
    assert [sp.design for sp in res.speedup] == ["abba", "abba"] and all(sp.drift == res.drift for sp in res.speedup)
    phases = [r["phase"].split("/")[0] for r in run.read_jsonl("50_load_requests.jsonl") if not r["warmup"]]
    order = list(dict.fromkeys(phases))  # first appearance of each phase
    assert order == ["baseline@c1", "baseline@c2", "spec@c1", "spec@c2"] and phases[-1] == "baseline@c1"
    n = len(phases)
    again, _ = once()
    assert len([r for r in run.read_jsonl("50_load_requests.jsonl") if not r["warmup"]]) == n  # all reused
    assert again.drift == res.drift and all(lv.resumed for lv in again.levels)


@pytest.mark.parametrize("cores, bound", [([0], []), ([0, 1], [1]), ([0, 1, 2], [1]), ([2, 3, 4, 5], [3, 4])])
def test_embedded_servers_compute_away_from_the_client_core(cores, bound, monkeypatch):
    from playbook.helpers import embedded

    monkeypatch.delenv(embedded.BIND_ENV, raising=False)
    assert embedded.server_cores(cores) == bound
    assert embedded.omp_bind(cores) == ({embedded.BIND_ENV: ",".join(map(str, bound))} if bound else {})
    monkeypatch.setenv(embedded.BIND_ENV, "0-1")  # the user's own binding wins
    assert embedded.omp_bind(cores) == {}


def test_the_embedded_config_carries_the_binding_whoever_starts_it(monkeypatch):
    import os

    from playbook.helpers import embedded

    monkeypatch.delenv(embedded.BIND_ENV, raising=False)
    want = embedded.server_cores(sorted(os.sched_getaffinity(0)))
    for spec in ("none", "draft_model"):
        env = embedded.embedded_server_config(spec).env
        assert env.get(embedded.BIND_ENV) == (",".join(map(str, want)) if want else None)
        assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"


@pytest.mark.skipif(len(__import__("os").sched_getaffinity(0)) < 2, reason="needs 2 cores")
def test_placement_pins_the_client_to_the_first_core_and_restores_it():
    import os

    from playbook.helpers.placement import Placement

    before = os.sched_getaffinity(0)
    cores = sorted(before)
    place = Placement(True)
    try:
        place.pin_client({})
        assert os.sched_getaffinity(0) == {cores[0]} and place.note.startswith(f"client on core {cores[0]}")
    finally:
        place.release()
    assert os.sched_getaffinity(0) == before
    assert not Placement(False).enabled and "not the embedded engine" in Placement(False).note


@pytest.mark.skipif(len(__import__("os").sched_getaffinity(0)) < 2, reason="needs 2 cores")
def test_placement_reads_where_a_server_tree_computes(tmp_path):
    """A listening parent on every core with a child bound like vLLM's worker: the narrowest mask is reported."""
    import os
    import socket
    import subprocess
    import sys
    import time

    from playbook.helpers import placement

    last = max(os.sched_getaffinity(0))
    code = ("import os, socket, subprocess, sys, time\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); print(s.getsockname()[1], flush=True)\n"
            f"c = subprocess.Popen([sys.executable, '-c', 'import os, time; os.sched_setaffinity(0, {{{last}}}); "
            "time.sleep(30)'])\n"
            "time.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        deadline = time.monotonic() + 10
        found = None
        while time.monotonic() < deadline and found != {max(os.sched_getaffinity(0))}:
            time.sleep(0.2)
            found = placement._compute_cores(f"http://127.0.0.1:{port}")
        assert found == {max(os.sched_getaffinity(0))}
        assert placement._compute_cores(f"http://127.0.0.1:{_free_port(socket)}") is None
    finally:
        for child in __import__("psutil").Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
        proc.wait()


def _free_port(socket) -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_placement_favours_the_client_scheduling_group_and_restores_it():
    from playbook.helpers import placement

    before = placement._autogroup_nice()
    place = placement.Placement(True)
    try:
        place.pin_client({})
        now = placement._autogroup_nice()
        if before is None:  # autogroup off here: nothing to favour, and the note says so
            assert "not favoured" in place.note
        elif now == placement.CLIENT_AUTOGROUP_NICE:
            assert "favoured (autogroup nice -10)" in place.note
        else:  # not permitted (no CAP_SYS_NICE): unchanged, and said
            assert now == before and "not favoured" in place.note
    finally:
        place.release()
    assert placement._autogroup_nice() == before


def test_a_baseline_whose_spec_decode_counters_move_fails_its_level(tmp_path):
    """External mode: a 'baseline' URL that speculates (its vllm:spec_decode counters grow while it serves) would
    compare speculation with speculation; the level fails, saying so, and its records stay on disk."""
    procs = [start_fake(FAKE_METRICS="live") for _ in range(2)]
    try:
        res = run_load_test(_params([url for _, url in procs], min_round_pairs=2, target_ci_halfwidth=5.0),
                            RunDir(tmp_path), progress=False)
    finally:
        for proc, _ in procs:
            stop_fake(proc)
    assert res.status == "failed" and res.speedup == []
    assert "it speculates" in res.finding and "without --speculative-config" in res.finding
    assert (tmp_path / "artifacts" / "50_load_requests.jsonl").stat().st_size > 0


def test_the_launch_checks_speculative_reference_may_speculate(tmp_path):
    """The candidates' launch check runs a speculative reference in the baseline's place (baseline_config): its
    moving counters are expected there."""
    procs = [start_fake(FAKE_METRICS="live") for _ in range(2)]
    try:
        res = run_load_test(_params([url for _, url in procs], min_round_pairs=2, target_ci_halfwidth=5.0),
                            RunDir(tmp_path), progress=False, baseline_config={"method": "ngram"})
    finally:
        for proc, _ in procs:
            stop_fake(proc)
    assert res.status != "failed" and "it speculates" not in res.finding and len(res.speedup) == 1
