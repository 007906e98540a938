"""The overall verdict from evidence gathered out of run directories."""

import json

import pytest

from playbook.helpers import decide, evidence, monitoring, summary
from playbook.helpers.schemas.lossless import LosslessResult
from tests.support.decide_fixtures import load, make_run, sweep

WIN = {1: (1.6, 1.4, 1.8), 4: (1.3, 1.15, 1.45), 16: (1.1, 1.02, 1.2)}
WIN_THEN_LOSS = {1: (1.6, 1.4, 1.8), 4: (1.3, 1.15, 1.45), 16: (0.8, 0.7, 0.9)}
LOSS = {1: (0.9, 0.85, 0.95), 4: (0.7, 0.6, 0.8)}
UNPROVEN = {1: (1.15, 0.9, 1.4), 4: (1.02, 0.9, 1.15)}


def _decide(run, **kw):
    ev = evidence.gather(run, 0.2)
    kw.setdefault("production_temperature", 0.2)
    return decide.decide(ev, **kw), ev


@pytest.mark.parametrize("acc, levels, peak, kw, verdict", [
    (0.75, WIN, 16, {}, "GO"),
    (0.75, WIN_THEN_LOSS, 16, {}, "GO WITH LIMITS"),
    (0.75, WIN_THEN_LOSS, 4, {}, "GO"),
    (0.75, LOSS, 4, {}, "NO-GO"),
    (0.45, WIN, 4, {}, "NO-GO"),
    (0.60, WIN, 4, {}, "GO WITH LIMITS"),  # borderline acceptance
    (0.75, UNPROVEN, 4, {}, "INCONCLUSIVE"),  # speedup interval crosses 1.0
    (0.75, WIN, 4, {"slo_kind": "ttft"}, "NO-GO"),
    (0.75, WIN, 4, {"traffic_temperatures": [0.8, 1.0]}, "NO-GO"),
])
def test_overall_verdicts(tmp_path, acc, levels, peak, kw, verdict):
    run = make_run(tmp_path, sweep_result=sweep(acc_at_prod=acc), load_result=load(levels))
    d, _ = _decide(run, expected_peak_concurrency=peak, **kw)
    assert d.verdict == verdict
    assert 3 <= len(d.reasons) <= 5
    assert d.recommended.enable == (verdict in ("GO", "GO WITH LIMITS"))


def test_error_rate_makes_it_inconclusive(tmp_path):
    run = make_run(tmp_path, sweep_result=sweep(), load_result=load(WIN, error_rate=0.2))
    d, _ = _decide(run, max_error_rate=0.05)
    assert d.verdict == "INCONCLUSIVE"
    assert any("rerun the load test" in m for m in d.measure_next)
    d2, _ = _decide(run, max_error_rate=0.25)
    assert d2.verdict != "INCONCLUSIVE"


def test_failed_lossless_guard_is_no_go(tmp_path):
    res = LosslessResult(lossless=False, finding="T=0: 3 of 8 outputs differ")
    run = make_run(tmp_path, sweep_result=sweep(), load_result=load(WIN), extra={"lossless.json": res})
    d, _ = _decide(run)
    assert d.verdict == "NO-GO"
    assert any("lossless" in r and "3 of 8" in r for r in d.reasons)


def test_only_preflight_is_inconclusive_naming_what_to_measure(tmp_path):
    run = make_run(tmp_path)
    d, ev = _decide(run)
    assert ev.steps_present == ["00_preflight"]
    assert d.verdict == "INCONCLUSIVE" and d.confidence == "low"
    assert any("40_sweep" in m for m in d.measure_next) and any("50_load" in m for m in d.measure_next)
    assert not d.recommended.enable


def test_limits_become_a_load_limit_not_an_unmeasured_table(tmp_path):
    run = make_run(tmp_path, sweep_result=sweep(), load_result=load(WIN_THEN_LOSS))
    d, _ = _decide(run, expected_peak_concurrency=16)
    assert "num_speculative_tokens_per_batch_size" not in d.recommended.speculative_config
    assert d.recommended.num_speculative_tokens_per_batch_size is None and d.recommended.max_concurrency == 4
    assert "num_speculative_tokens_per_batch_size" not in d.recommended.launch_command
    note = next(n for n in d.recommended.notes if "up to 4 running requests" in n)
    assert "[[1, 4, 4], [5, 256, 0]]" in note and "not measured as launched" in note and "k=0 still runs" in note


def test_the_dynamic_k_note_reads_the_table_edge_and_largest_k():
    from playbook.helpers.decide import dynamic_k_note

    assert "num_speculative_tokens=5 on a server kept below 17 running" in dynamic_k_note([[1, 8, 5], [9, 16, 2],
                                                                                           [17, 256, 0]])
    assert "static alternative" not in dynamic_k_note([[1, 256, 0]])


def test_the_dynamic_k_note_names_the_static_winner_the_launch_check_compared_against():
    """The table [[1, 7, 4], [8, 256, 3]] held against draft_model k=3 (the winner at its own k): the alternative
    is k=3 without the table, not the table's largest k kept below its edge."""
    from playbook.helpers.decide import dynamic_k_note

    note = dynamic_k_note([[1, 7, 4], [8, 256, 3]], static_k=3)
    assert "the static alternative is num_speculative_tokens=3 without the table" in note
    assert "num_speculative_tokens=4" not in note


def test_no_table_no_dynamic_k_note(tmp_path):
    run = make_run(tmp_path, sweep_result=sweep(), load_result=load(WIN))
    d, _ = _decide(run, expected_peak_concurrency=4)
    assert d.recommended.enable and not d.recommended.speculative_config.get("num_speculative_tokens_per_batch_size")
    assert not any("PIECEWISE" in n for n in d.recommended.notes)


def test_limits_to_one_workload_class(tmp_path):
    s = sweep(acc_at_prod=0.6, workloads={"code": 0.85, "creative": 0.35, "structured": 0.7})
    run = make_run(tmp_path, sweep_result=s, load_result=load(WIN))
    d, _ = _decide(run, expected_peak_concurrency=4)
    assert d.verdict == "GO WITH LIMITS"
    assert d.recommended.workload_classes == ["code", "structured"]
    (note,) = [n for n in d.recommended.notes if n.startswith("enable speculation only for")]
    assert "draft acceptance at the production temperature (step 40)" in note  # code was never timed under load
    assert note.endswith("the load test timed structured")  # the fixture's load workload


def test_confidence_from_intervals(tmp_path):
    run = make_run(tmp_path, sweep_result=sweep(), load_result=load(WIN))
    d, ev = _decide(run, expected_peak_concurrency=16)
    assert decide.confidence(ev.load_levels) == "high"  # every interval clears 1.0
    assert d.confidence == "medium"  # ...but the memory rules are unknown (no 20_memory)
    run2 = make_run(tmp_path / "b", sweep_result=sweep(acc_at_prod=0.6), load_result=load({1: (1.5, 1.2, 1.8), 4: (1.05, 0.9, 1.2)}))
    assert _decide(run2, expected_peak_concurrency=1)[0].confidence == "medium"


def test_decision_json_and_summary_agree(tmp_path):
    run = make_run(tmp_path, sweep_result=sweep(), load_result=load(WIN_THEN_LOSS))
    d, ev = _decide(run, expected_peak_concurrency=16, slo_tpot_ms=50)
    d.monitoring = monitoring.monitoring_plan(d, ev, slo_tpot_ms=50)
    from playbook.helpers.artifacts import write_json_atomic

    write_json_atomic(run.path / "decision.json", d)
    data = json.loads((run.path / "decision.json").read_text())
    assert set(data) >= {"verdict", "confidence", "reasons", "rules", "recommended", "versions", "monitoring"}
    assert data["versions"]["vllm"] == "0.32.0"
    names = {r["name"] for r in data["rules"]}
    assert {"acceptance_at_production_temperature", "acceptance_p10", "draft_vram_share", "target_vram_share",
            "concurrency_lost_to_draft", "quantization_acceptance_drop", "ttft_bound_slo", "p50_p99_gap_change",
            "load_crossover_vs_peak", "temperature_mix", "lossless_method"} <= names
    for r in data["rules"]:
        assert r["verdict"] in ("go", "borderline", "no-go", "unknown") and r["reason"]
    md = summary.summary_markdown(d, ev)
    assert f"**{data['verdict']}**" in md
    for reason in data["reasons"]:
        assert summary._md_escape(reason) in md
    for lv in ev.load_levels:
        assert f"| {lv.concurrency:g} | {lv.speedup:.2f} |" in md
    assert "num_speculative_tokens_per_batch_size" in md


def test_promql_uses_rates_of_counters():
    for q in monitoring.queries("m"):
        if "spec_decode_num" in q.promql:
            assert "rate(" in q.promql and "[5m]" in q.promql
    alerts = monitoring.alerts(measured_acceptance=0.8, crossover_concurrency=16, slo_tpot_ms=40)
    low = next(a for a in alerts if a.name == "SpecDecodeAcceptanceLow")
    assert low.threshold == pytest.approx(0.64)
    assert any(a.name == "SpecDecodePastCrossover" and a.threshold == 16 for a in alerts)
    assert "0.04" in next(a for a in alerts if a.name == "TpotSloBreached").expr


def test_summary_escapes_tags_not_comparisons():
    assert summary._md_escape("P10 0.40 < 0.50") == "P10 0.40 < 0.50"
    assert summary._md_escape("draft <script>x</script>") == "draft &lt;script>x&lt;/script>"


def test_missing_load_levels_make_it_inconclusive_and_are_named(tmp_path):
    res = load(WIN)
    res.status, res.missing_levels = "partial", ["spec@32: connection refused by http://h:8000 (server down?)"]
    run = make_run(tmp_path, sweep_result=sweep(), load_result=res)
    d, ev = _decide(run, expected_peak_concurrency=16)
    assert ev.load_missing_levels == res.missing_levels and "spec@32" in ev.findings["50_load"]
    assert d.verdict == "INCONCLUSIVE"
    assert any("spec@32: connection refused" in m and "--resume" in m for m in d.measure_next)
    lossy = make_run(tmp_path / "lossy", sweep_result=sweep(acc_at_prod=0.3), load_result=res)
    d2, _ = _decide(lossy)
    assert d2.verdict == "NO-GO" and any("spec@32" in m for m in d2.measure_next)  # low acceptance stands


def test_no_go_summary_says_what_to_watch_before_trying_again(tmp_path):
    run = make_run(tmp_path, sweep_result=sweep(acc_at_prod=0.45), load_result=load(WIN))
    d, ev = _decide(run)
    assert d.verdict == "NO-GO"
    d.monitoring = monitoring.monitoring_plan(d, ev, model_name="m")
    assert not d.monitoring["alerts"], "no alert rules for a configuration that stays off"
    md = summary.summary_markdown(d, ev)
    assert "**Watch before trying again** (speculation off)" in md
    assert "- acceptance: acceptance was under the 0.50 band" in md
    assert "**Alerts**" not in md


def test_a_no_go_for_monitoring_alone_says_so_and_claims_no_measurement(tmp_path):
    from playbook.helpers.schemas.preflight import Check, PreflightResult

    run = make_run(tmp_path, preflight=False, extra={"00_preflight.json": PreflightResult(
        vllm_version="0.32.0", checks=[Check(name="spec server reachable", status="ok")], spec_metrics=[])})
    d, ev = _decide(run)
    assert d.verdict == "NO-GO" and ev.acceptance_counters is False
    notes = " ".join(d.recommended.notes)
    assert "exposes no vllm:spec_decode_* metrics" in notes and "is it on there?" in notes
    assert "the measurements say it does not pay" not in notes  # nothing was measured
    d.monitoring = monitoring.monitoring_plan(d, ev, model_name="m")
    md = summary.summary_markdown(d, ev)
    assert "acceptance was under" not in md  # acceptance was never measured
