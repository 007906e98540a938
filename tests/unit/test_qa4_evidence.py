"""QA round 4, items 5 and 6: damaged numbers (NaN, Infinity) never become verdict inputs, and steps run with
different parameters are not judged together."""

import json
import math
import warnings

import pytest

from playbook.helpers import decide, evidence, gpus, memory, models, rules
from playbook.helpers.artifacts import (
    DamagedRecordWarning,
    NonFiniteNumberError,
    RunDir,
    read_jsonl,
    write_json_atomic,
)
from playbook.helpers.schemas.candidates import Candidate, CandidateResult, CandidatesResult
from playbook.helpers.schemas.decision import Evidence, LoadLevel
from playbook.helpers.schemas.drafts import DraftsResult
from playbook.helpers.schemas.memory import MemoryResult
from tests.support.decide_fixtures import executed_notebook, load, make_run, sweep

NAN, INF = float("nan"), float("inf")
LEVELS = {1: (1.4, 1.3, 1.5), 4: (1.3, 1.2, 1.4)}


def _strict(text: str):
    def refuse(const):
        raise AssertionError(f"decision.json holds {const}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def llama_budget():
    return memory.budget(models.resolve("Llama-3.1-8B"), models.resolve("Llama-3.2-1B"), gpus.get_gpu("H100-SXM"),
                         max_model_len=8192, context_length=8192, gpu_memory_utilization=0.9)


# -- item 5: NaN / Infinity -----------------------------------------------------------------------
def test_nan_acceptance_in_the_sweep_is_a_damaged_step_not_a_go(tmp_path):
    s = sweep(acc_at_prod=0.8)
    s.production_acceptance = NAN
    run = make_run(tmp_path, sweep_result=s, load_result=load(LEVELS))
    ev = evidence.gather(run)
    failed = [f for f in ev.steps_failed if f.startswith("40_sweep")]
    assert failed and "40_sweep.json: production_acceptance is NaN (not a number)" in failed[0]
    assert "damaged" in failed[0] and ev.acceptance_production is None
    d = decide.decide(ev, production_temperature=0.2)
    assert d.verdict == "INCONCLUSIVE" and "40_sweep" in d.headline


def test_infinite_speedup_in_the_load_test_names_the_level_field(tmp_path):
    lr = load(LEVELS)
    lr.speedup[1].speedup = INF
    run = make_run(tmp_path, sweep_result=sweep(), load_result=lr)
    ev = evidence.gather(run)
    assert any(f.startswith("50_load") and "speedup[1].speedup is Infinity" in f for f in ev.steps_failed)
    d = decide.decide(ev, production_temperature=0.2)
    assert d.verdict == "INCONCLUSIVE"
    _strict(d.model_dump_json())


def test_run_dir_json_reader_rejects_nan_as_a_truncated_file_is(tmp_path):
    run = RunDir(tmp_path)
    run.artifact("x.json").write_text('{"a": {"b": [1.0, -Infinity]}}')
    with pytest.raises(NonFiniteNumberError, match=r"x.json: a.b\[1\] is -Infinity"):
        run.read_json("x.json")
    assert run.read_json_if_valid("x.json") is None
    run.artifact("y.json").write_text('{"a": 1.5}')
    assert run.read_json("y.json") == {"a": 1.5}


def test_a_nan_latency_record_is_dropped_with_a_warning_not_averaged(tmp_path):
    path = tmp_path / "50_load_requests.jsonl"
    good = {"phase": "baseline@c1", "status": "ok", "prompt_tokens": 10, "ttft_ms": 20.0}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "ttft_ms": NAN}) + "\n")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        records = read_jsonl(path)
    assert records == [good]
    msgs = [str(x.message) for x in w if issubclass(x.category, DamagedRecordWarning)]
    assert msgs and "line 2: ttft_ms is NaN" in msgs[0]
    assert all(math.isfinite(t) for _, t in evidence.prefill_points(records))


def test_rules_never_fall_through_to_go_on_a_non_finite_number():
    assert rules.rule_acceptance(NAN, 0.2).verdict == "unknown"
    assert rules.rule_acceptance(INF, 0.2).verdict == "unknown"
    assert rules.rule_acceptance_p10(NAN).verdict == "unknown"
    assert rules.rule_concurrency_loss(5.8, NAN, expected_peak_concurrency=4).verdict == "unknown"
    assert rules.rule_concurrency_loss(INF, 3.0).verdict == "unknown"
    assert rules.rule_draft_vram_share(NAN, 20.0).verdict == "unknown"
    assert rules.rule_target_vram_share(10.0, INF).verdict == "unknown"
    assert rules.rule_quantization_drop(NAN).verdict == "unknown"
    assert rules.rule_tpot_slo(50, NAN, 20.0).verdict == "unknown"
    assert rules.rule_error_rate(NAN).verdict == "unknown"
    assert rules.rule_throughput_slo(NAN).verdict == "unknown"
    lv = [LoadLevel(concurrency=1, speedup=1.3, speedup_ci_low=1.2, speedup_ci_high=1.4),
          LoadLevel(concurrency=4, speedup=NAN, speedup_ci_low=NAN, speedup_ci_high=NAN)]
    r = rules.rule_load_crossover(lv, expected_peak=4)
    assert r.verdict == "unknown" and "concurrency 4" in r.reason
    assert rules.rule_acceptance(0.7, 0.2).verdict == "go"  # finite numbers judged as before


def test_decision_json_never_holds_nan(tmp_path):
    ev = Evidence(acceptance_production=NAN, acceptance_temperature=0.2, max_concurrency_baseline=INF,
                  max_concurrency_spec=3.0,
                  load_levels=[LoadLevel(concurrency=1, speedup=1.3, speedup_ci_low=1.2, speedup_ci_high=1.4,
                                         tpot_p50_baseline_ms=NAN)])
    d = decide.decide(ev, production_temperature=0.2, expected_peak_concurrency=1)
    assert d.verdict == "INCONCLUSIVE"  # acceptance unknown
    write_json_atomic(tmp_path / "decision.json", d)
    data = _strict((tmp_path / "decision.json").read_text())
    assert data["verdict"] == "INCONCLUSIVE"


# -- item 6: steps run with different parameters --------------------------------------------------
EMBEDDED = dict(target_model="embedded", draft_model="embedded", method="draft_model", num_speculative_tokens=4,
                mode="embedded", max_model_len=1024)


def test_memory_for_another_model_than_the_sweep_measured_is_inconclusive(tmp_path, llama_budget):
    run = make_run(tmp_path, sweep_result=sweep(), load_result=load(LEVELS),
                   extra={"20_memory.json": MemoryResult(budget=llama_budget)})
    executed_notebook(run, "40_sweep", **EMBEDDED)
    executed_notebook(run, "50_load", **EMBEDDED)
    ev = evidence.gather(run)
    failed = [f for f in ev.steps_failed if "different parameters" in f]
    assert failed, ev.steps_failed
    msg = failed[0]
    assert msg.startswith("20_memory:")
    assert "target Llama-3.1-8B (20_memory) vs embedded-target (40_sweep, 50_load)" in msg
    assert "max_model_len" in msg and "8192" in msg and "1024" in msg and "re-run one of them" in ev.findings["parameters"]
    d = decide.decide(ev, production_temperature=0.2)
    assert d.verdict == "INCONCLUSIVE" and "20_memory" in d.headline


def test_step_results_alone_disagreeing_on_method_or_target(tmp_path, llama_budget):
    s = sweep()
    s.method, s.num_speculative_tokens = "ngram", 3
    run = make_run(tmp_path, sweep_result=s, load_result=load(LEVELS), extra={
        "20_memory.json": MemoryResult(budget=llama_budget),
        "10_drafts.json": DraftsResult(target="Llama-3.1-70B", target_params_b=70, target_methods=["ngram"])})
    mixed = dict(evidence.mixed_parameters(run))
    assert {v for v, _ in mixed["method"]} == {"ngram", "draft_model"}
    assert {v for v, _ in mixed["num_speculative_tokens"]} == {3, 4}
    assert {v for v, _ in mixed["target"]} == {"Llama-3.1-70B", "Llama-3.1-8B"}
    assert decide.decide(evidence.gather(run), production_temperature=0.2).verdict == "INCONCLUSIVE"


def test_a_consistent_run_is_not_flagged_even_when_a_candidate_with_another_k_won(tmp_path):
    target, draft = models.resolve("embedded", "target"), models.resolve("embedded", "draft")
    b = memory.budget(target, draft, gpus.get_gpu("cpu"), max_model_len=1024, context_length=1024,
                      gpu_memory_utilization=0.9, kv_cache_gib=1.0)
    comp = CandidatesResult(levels=[1, 4], winner="draft_model:5", winner_method="draft_model", winner_k=5, candidates=[
        CandidateResult(candidate=Candidate(method="draft_model", k=4), label="draft_model:4", primary=True),
        CandidateResult(candidate=Candidate(method="draft_model", k=5), label="draft_model:5", run_dir="candidates/x")])
    run = make_run(tmp_path, sweep_result=sweep(), load_result=load(LEVELS),
                   extra={"20_memory.json": MemoryResult(budget=b), "50_candidates.json": comp,
                          "10_drafts.json": DraftsResult(target="embedded-target", target_params_b=0.01,
                                                         target_methods=["draft_model"])})
    for step in ("00_preflight", "10_drafts", "20_memory", "30_quantization", "40_sweep", "50_load"):
        executed_notebook(run, step, **EMBEDDED, **({"gpu": "cpu"} if step in ("20_memory", "30_quantization") else {}))
    executed_notebook(run, "90_report", **{**EMBEDDED, "target_model": "Llama-3.1-8B"})  # the report's own: not compared
    assert evidence.mixed_parameters(run) == []
    ev = evidence.gather(run)
    assert not any("different parameters" in f for f in ev.steps_failed), ev.steps_failed


def test_a_sweep_measured_on_another_model_than_the_memory_budget_is_flagged_from_its_own_record(tmp_path, llama_budget):
    """QA round 4's case: papermill ran 40 on the embedded pair and 20 as a what-if for Llama-3.1-8B, its notebooks
    saved elsewhere: the sweep's own record (measured_for, from the parameters it ran with) tells them apart."""
    from playbook.helpers.params import SweepParams, validate_params

    s = sweep()
    s.measured_for = evidence.identity_of(validate_params(SweepParams, {}).model_dump())
    assert s.measured_for["target"] == "embedded-target" and s.measured_for["mode"] == "embedded"
    run = make_run(tmp_path, sweep_result=s, load_result=load(LEVELS),
                   extra={"20_memory.json": MemoryResult(budget=llama_budget)})
    mixed = dict(evidence.mixed_parameters(run))
    assert {v for v, _ in mixed["target"]} == {"embedded-target", "Llama-3.1-8B"}
    assert decide.decide(evidence.gather(run), production_temperature=0.2).verdict == "INCONCLUSIVE"


def test_a_nan_gauge_in_the_metrics_samples_is_kept_as_vllm_reported_it(tmp_path):
    """Only request records (measured times, null when missing) are damaged by NaN; a Prometheus gauge may read NaN."""
    from playbook.helpers.artifacts import append_jsonl, read_jsonl

    path = tmp_path / "50_load_samples.jsonl"
    append_jsonl(path, {"time": 1.0, "vllm:gpu_cache_usage_perc": float("nan")})
    append_jsonl(path, {"time": 2.0, "vllm:gpu_cache_usage_perc": 0.5})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = read_jsonl(path)
    assert [r["time"] for r in rows] == [1.0, 2.0] and math.isnan(rows[0]["vllm:gpu_cache_usage_perc"])


def test_the_headline_says_the_steps_ran_with_other_parameters_not_that_they_failed(tmp_path, llama_budget):
    s = sweep()
    s.measured_for = {"target": "embedded-target", "mode": "embedded"}
    run = make_run(tmp_path, sweep_result=s, load_result=load(LEVELS),
                   extra={"20_memory.json": MemoryResult(budget=llama_budget)})
    d = decide.decide(evidence.gather(run), production_temperature=0.2)
    assert d.verdict == "INCONCLUSIVE"
    assert "ran with other parameters than the rest" in d.headline and "failed" not in d.headline
    assert any(m.startswith("re-run step 40_sweep with the parameters the other steps ran with, or every step in a "
                            "new run directory (the steps were run with different parameters: target") for m in d.measure_next)


def test_failing_requests_of_an_imported_load_test_point_at_the_tool_not_our_server_logs(tmp_path):
    imported = rules.rule_error_rate(0.5, max_error_rate=0.05, imported_from="vllm-bench")
    assert imported.verdict == "unknown" and "run vllm-bench again and import its files again" in imported.measure_next
    assert "see the server logs" in rules.rule_error_rate(0.5, max_error_rate=0.05).measure_next
    res = load(LEVELS)
    res.error_rate, res.source = 0.5, {"tool": "vllm-bench", "files": []}
    ev = evidence.gather(make_run(tmp_path, sweep_result=sweep(), load_result=res))
    assert ev.load_imported_from == "vllm-bench"
    d = decide.decide(ev, production_temperature=0.2)
    assert d.verdict == "INCONCLUSIVE" and any("vllm-bench again" in m for m in d.measure_next)
