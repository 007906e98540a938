"""No claim beyond the evidence: unmeasured peaks, withheld levels, failed steps, throughput SLOs,
TTFT rises, the mixed workload; and the stability benchmark's parsing."""

import json

import pytest

from benchmarks import stability
from playbook.commands.run import EXIT_CODES, exit_status
from playbook.helpers import decide, evidence
from playbook.helpers.params import ReportParams
from playbook.helpers.schemas.load import WorkloadComparison
from tests.support.decide_fixtures import load, make_run, sweep

WIN_TO_16 = {1: (1.6, 1.4, 1.8), 4: (1.3, 1.15, 1.45), 16: (1.1, 1.02, 1.2)}


def _decide(run, **kw):
    p = ReportParams(run_dir=str(run.path), **kw)
    ev = evidence.gather(run, p.production_temperature, params=p)
    d = decide.decide_for(ev, p)
    return d, {r.name: r for r in d.rules}, ev


def test_a_peak_above_the_highest_measured_level_is_measure_at_n_not_go(tmp_path):
    run = make_run(tmp_path, sweep_result=sweep(), load_result=load(WIN_TO_16))
    d, rules, _ = _decide(run, expected_peak_concurrency=16)
    assert d.verdict == "GO"
    d, rules, _ = _decide(run, expected_peak_concurrency=10000)
    r = rules["load_crossover_vs_peak"]
    assert r.verdict == "unknown" and "measure at 10000" in r.reason and "16" in r.reason
    assert d.verdict == "INCONCLUSIVE" and any("measure at 10000" in m for m in d.measure_next)
    assert not d.recommended.enable


def test_excluded_and_inconclusive_levels_never_count_and_are_named(tmp_path):
    levels = {1: (1.6, 1.4, 1.8), 4: (0.004, 0.0, 1.35), 8: (0.5, 0.4, 0.6)}
    withheld = {4: ("excluded", "12 of 24 baseline streams burst-delivered"), 8: ("inconclusive", "drift 9% > half-width 5%")}
    run = make_run(tmp_path, sweep_result=sweep(), load_result=load(levels, withheld=withheld))
    d, rules, ev = _decide(run, expected_peak_concurrency=1)
    lv = {x.concurrency: x for x in ev.load_levels}
    assert lv[4].status == "excluded" and lv[4].speedup is None and "burst" in lv[4].reason  # never printed as 0.00x
    assert lv[8].speedup is None and lv[1].speedup == 1.6
    r = rules["load_crossover_vs_peak"]
    assert r.verdict == "go"  # the loss at 8 is inconclusive: it does not count
    assert "4: excluded (12 of 24 baseline streams burst-delivered)" in r.reason and "8: inconclusive" in r.reason
    assert "0.00" not in r.reason
    assert d.verdict == "GO"
    d4, rules4, _ = _decide(run, expected_peak_concurrency=4)  # the only level at 4 is excluded: not measured
    assert rules4["load_crossover_vs_peak"].verdict == "unknown" and d4.verdict == "INCONCLUSIVE"
    assert decide.load_schedule(ev.load_levels, 4) is None and decide.confidence(ev.load_levels) == "high"


def test_every_speed_number_says_its_temperature(tmp_path):
    run = make_run(tmp_path, sweep_result=sweep(), load_result=load(WIN_TO_16, temperature=0.0))
    d, rules, ev = _decide(run, expected_peak_concurrency=16)
    assert all(x.temperature == 0.0 for x in ev.load_levels)
    assert "at T=0" in rules["load_crossover_vs_peak"].reason
    r = rules["load_temperature"]
    assert r.verdict == "borderline" and "T=0" in r.reason and "T=0.2" in r.reason
    assert d.verdict == "GO WITH LIMITS"


def test_a_mix_is_judged_at_its_share_weighted_temperature(tmp_path):
    res = load(WIN_TO_16)
    res.workload = "structured:0.5@0.0,creative:0.5@1.0"
    run = make_run(tmp_path, sweep_result=sweep(), load_result=res)
    _, rules, ev = _decide(run, expected_peak_concurrency=16)
    assert ev.load_temperature == pytest.approx(0.5) and rules["load_temperature"].verdict == "go"


@pytest.mark.parametrize("status", ["failed", "interrupted"])
def test_a_failed_step_makes_it_inconclusive_naming_the_step(tmp_path, status):
    run = make_run(tmp_path, sweep_result=sweep(acc_at_prod=0.3), load_result=load(WIN_TO_16))  # NO-GO by itself
    (run.path / "run.json").write_text(json.dumps({"run_id": "x", "created_at": "now", "profile": "p", "steps": [
        {"name": "40_sweep", "status": "done"}, {"name": "50_load", "status": status, "error": "server died"},
        {"name": "90_report", "status": "running"}]}))
    d, _, ev = _decide(run, expected_peak_concurrency=4)
    assert ev.steps_failed == ["50_load: server died"]
    assert d.verdict == "INCONCLUSIVE" and "50_load" in d.headline
    assert any("50_load" in m for m in d.measure_next) and "50_load" in d.reasons[0]


def test_an_asked_step_without_a_result_or_with_nothing_measured_is_failed(tmp_path):
    run = make_run(tmp_path, sweep_result=sweep(), load_result=load(WIN_TO_16))
    run.artifact("50_load.json").unlink()
    (run.path / "run.json").write_text(json.dumps({"run_id": "x", "created_at": "now", "profile": "p", "steps": [
        {"name": "50_load", "status": "done"}]}))
    d, _, _ = _decide(run)
    assert d.verdict == "INCONCLUSIVE" and "50_load" in d.headline
    empty = sweep()
    for pt in empty.temperatures:
        pt.acceptance_rate, pt.requests = None, 0
    empty.production_acceptance = None
    run2 = make_run(tmp_path / "b", sweep_result=empty, load_result=load(WIN_TO_16))
    d2, rules2, ev2 = _decide(run2)
    assert any(f.startswith("40_sweep") and "nothing" in f for f in ev2.steps_failed)
    assert ev2.acceptance_counters is None  # no request answered: monitoring is not known, not a no-go
    assert d2.verdict == "INCONCLUSIVE" and "40_sweep" in d2.headline


def test_a_throughput_slo_is_judged_on_throughput(tmp_path):
    run = make_run(tmp_path, sweep_result=sweep(), load_result=load(WIN_TO_16, throughput_ratio=0.8))
    d, rules, _ = _decide(run, expected_peak_concurrency=16, slo_kind="throughput", slo_tpot_ms=1000)
    assert "tpot_slo_at_peak" not in rules
    assert rules["throughput_at_peak"].verdict == "no-go" and "0.80x" in rules["throughput_at_peak"].reason
    assert d.verdict == "NO-GO"  # TPOT wins everywhere, but the SLO is about tokens/s
    run2 = make_run(tmp_path / "b", sweep_result=sweep(), load_result=load(WIN_TO_16, throughput_ratio=1.3))
    d2, rules2, _ = _decide(run2, expected_peak_concurrency=16, slo_kind="throughput")
    assert rules2["throughput_at_peak"].verdict == "go" and d2.verdict == "GO"


def test_a_ttft_rise_is_flagged_without_a_ttft_slo(tmp_path):
    run = make_run(tmp_path, sweep_result=sweep(), load_result=load(WIN_TO_16, ttft_spec_p50=30.0))  # 20 -> 30 ms
    d, rules, _ = _decide(run, expected_peak_concurrency=16)
    r = rules["ttft_rise"]
    assert r.verdict == "borderline" and "20.0 to 30.0 ms" in r.reason and "+50%" in r.reason
    assert d.verdict == "GO WITH LIMITS"


def test_the_mixed_workload_comparison_reaches_the_verdict(tmp_path):
    res = load(WIN_TO_16)
    res.mixed = [WorkloadComparison(level=1, homogeneous="structured", mixed="structured:0.6@0.1,creative:0.4@1.0",
                                    gap_change_homogeneous=1.0, gap_change_mixed=1.2),
                 WorkloadComparison(level=4, homogeneous="structured", mixed="structured:0.6@0.1,creative:0.4@1.0",
                                    gap_change_homogeneous=1.1, gap_change_mixed=2.4)]
    run = make_run(tmp_path, sweep_result=sweep(), load_result=res)
    d, rules, ev = _decide(run, expected_peak_concurrency=16)
    assert [c["level"] for c in ev.load_mixed] == [1, 4]
    r = rules["mixed_workload_gap"]
    assert r.verdict == "borderline" and "2.40x" in r.reason and "1: 1.20x mixed vs 1.00x homogeneous" in r.reason
    assert d.verdict == "GO WITH LIMITS"
    run2 = make_run(tmp_path / "b", sweep_result=sweep(), load_result=load(WIN_TO_16))
    assert "mixed_workload_gap" not in _decide(run2, expected_peak_concurrency=16)[1]  # not compared: no rule


def test_exit_codes_map_the_verdict_and_a_failed_step_is_always_non_zero():
    assert [exit_status(v, [], True) for v in ("GO", "GO WITH LIMITS", "NO-GO", "INCONCLUSIVE")] == [0, 10, 20, 30]
    assert exit_status("NO-GO", [], False) == 0 and exit_status(None, [], True) == EXIT_CODES["INCONCLUSIVE"]
    assert exit_status("INCONCLUSIVE", ["40_sweep"], False) == 1 and exit_status("GO", ["50_load"], True) == 1


# -- benchmarks/stability.py --------------------------------------------------------------------
def test_stability_reads_verdict_and_c1_speedup_of_fixture_runs(tmp_path):
    runs = []
    for i, (s1, verdict) in enumerate([(1.6, "GO"), (1.4, "GO"), (1.3, "GO WITH LIMITS")]):
        run = make_run(tmp_path / f"r{i}", load_result=load({1: (s1, s1 - 0.1, s1 + 0.1), 4: (1.1, 1.0, 1.2)}))
        (run.path / "decision.json").write_text(json.dumps({"verdict": verdict}))
        runs.append(stability.read_run(run.path, seconds=60 + i))
    assert [r.speedup_c1 for r in runs] == [1.6, 1.4, 1.3] and runs[0].ci_c1 == pytest.approx((1.5, 1.7))
    assert stability.headline(runs) == ["verdict_agreement=2/3", "recommendation_agreement=3/3",  # none won, 3 times
                                        "speedup_spread=1.231"]
    assert "verdict=GO best=none c=1 speedup 1.600 [1.50, 1.70] wall=60s" in runs[0].line(1)
    excluded = make_run(tmp_path / "x", load_result=load({1: (0.004, 0.0, 1.3)}, withheld={1: ("excluded", "bursts")}))
    x = stability.read_run(excluded.path)
    assert x.speedup_c1 is None and x.verdict is None and "excluded: bursts" in x.line(4)
    assert stability.verdict_agreement(["GO", None, None]) == (1, 3)
    assert stability.speedup_spread([1.2, None]) is None and stability.headline([x])[2] == "speedup_spread=n/a"


# -- re-deciding without measuring (helpers/redecide.py; the CLI end to end is in test_runner.py) ------
def test_redecide_records_what_changed_and_keeps_a_history(tmp_path):
    from playbook.helpers import redecide
    from playbook.helpers.errors import ParameterError
    from playbook.helpers.steps import report

    run = make_run(tmp_path, sweep_result=sweep(), load_result=load(WIN_TO_16))
    p0 = ReportParams(run_dir=str(run.path), expected_peak_concurrency=16)
    assert report(p0, run).decision.verdict == "GO"
    for value in (0.99, 0.3):
        over = redecide.check_overrides({"acceptance_no_go_below": value})
        before = redecide.previous_decision(run)
        p1 = p0.model_copy(update=over)
        after = report(p1, run).decision
        redecide.record(run, redecide.changes(before, p0, p1, after, over))
    data = json.loads((run.path / "decision.json").read_text())
    assert data["verdict"] == "GO" and data["changes"]["previous_verdict"] == "NO-GO"
    assert data["changes"]["parameters"]["acceptance_no_go_below"] == {"from": 0.99, "to": 0.3}  # from the last decision
    note = (run.path / redecide.NOTE).read_text()
    assert note.count("## Re-decision") == 2 and "**GO** -> **NO-GO**" in note and "**NO-GO** -> **GO**" in note
    # a re-decision that goes back from an earlier one's override lists that parameter too
    over = redecide.check_overrides({"max_ttft_rise": 0.5})
    before = redecide.previous_decision(run)
    p2 = p0.model_copy(update=over)
    redecide.record(run, redecide.changes(before, p0, p2, report(p2, run).decision, over))
    changed = json.loads((run.path / "decision.json").read_text())["changes"]["parameters"]
    assert changed["acceptance_no_go_below"]["from"] == 0.3 and changed["acceptance_no_go_below"]["to"] == p0.acceptance_no_go_below
    assert changed["max_ttft_rise"]["to"] == 0.5 and len(changed) == 2
    with pytest.raises(ParameterError, match="concurrencies"):
        redecide.check_overrides({"concurrencies": [1, 64]})
    assert "mode" not in redecide.REDECIDE_PARAMETERS and "max_ttft_rise" in redecide.REDECIDE_PARAMETERS
