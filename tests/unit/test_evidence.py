"""Evidence gathered from the other steps' real result models (memory, drafts, quantization, lossless)."""

import pytest

from playbook.helpers import decide, evidence, gpus, memory, models
from playbook.helpers.schemas.memory import MemoryResult
from playbook.helpers.schemas.quantization import AcceptanceRow, QuantizationResult
from tests.support.decide_fixtures import load, make_run, sweep


@pytest.fixture(scope="module")
def budget():
    target, draft = models.resolve("Llama-3.1-70B"), models.resolve("Llama-3.2-1B")
    return memory.budget(target, draft, gpus.get_gpu("H200"), num_gpus=2, tensor_parallel_size=2,
                         max_model_len=8192, context_length=4096, gpu_memory_utilization=0.9)


def test_memory_budget_feeds_the_memory_rules(tmp_path, budget):
    run = make_run(tmp_path, extra={"20_memory.json": MemoryResult(budget=budget, finding="fits")})
    ev = evidence.gather(run)
    assert ev.draft_weights_gib == pytest.approx(budget.draft_weights_per_gpu_gib)
    assert ev.draft_weights_gib / ev.usable_memory_gib == pytest.approx(budget.draft_share_of_usable)
    assert ev.target_weights_gib / ev.gpu_memory_gib == pytest.approx(budget.target_share_of_vram)
    assert ev.max_concurrency_spec == pytest.approx(budget.concurrency_at_context)
    d = decide.decide(ev, production_temperature=0.2, expected_peak_concurrency=8)
    rules = {r.name: r for r in d.rules}
    assert rules["draft_vram_share"].verdict == "go"  # 1B next to 70B on 2x141 GB
    assert rules["target_vram_share"].verdict == ("borderline" if budget.target_share_of_vram > 0.7 else "go")
    loss = 1 - budget.concurrency_at_context / budget.concurrency_at_context_without_draft
    expected = "no-go" if budget.concurrency_at_context < 8 else ("borderline" if loss > 0.10 else "go")
    assert rules["concurrency_lost_to_draft"].verdict == expected
    assert "4096" in rules["concurrency_lost_to_draft"].reason


def test_quantization_drop_of_the_pair_in_use(tmp_path, budget):
    q = QuantizationResult(acceptance=[
        AcceptanceRow(target_quant="bf16", draft_quant="bf16", servable=True, measured=True, acceptance_rate=0.7, drop_pp=0.0),
        AcceptanceRow(target_quant="int4", draft_quant="bf16", servable=True, measured=True, acceptance_rate=0.6, drop_pp=10.0),
    ])
    run = make_run(tmp_path, extra={"30_quantization.json": q})
    ev = evidence.gather(run)
    assert ev.quant_acceptance_drop_pp == 10.0 and "largest" in ev.quant_config  # no memory step: worst pair
    run2 = make_run(tmp_path / "b", extra={"30_quantization.json": q, "20_memory.json": MemoryResult(budget=budget)})
    ev2 = evidence.gather(run2)
    assert ev2.quant_acceptance_drop_pp == 0.0 and "bf16" in ev2.quant_config  # the bf16 pair is in use


def test_unreadable_result_is_reported_not_fatal(tmp_path):
    run = make_run(tmp_path, sweep_result=sweep(), load_result=load({1: (1.2, 1.1, 1.3)}))
    run.artifact("50_load.json").write_text("{ truncated")
    ev = evidence.gather(run)
    assert "50_load" not in ev.steps_present
    assert any(f.startswith("50_load") for f in ev.steps_failed)
    d = decide.decide(ev, production_temperature=0.2)
    assert d.verdict == "INCONCLUSIVE"


def test_load_levels_pair_baseline_and_spec(tmp_path):
    run = make_run(tmp_path, load_result=load({1: (1.25, 1.1, 1.4), 4: (0.9, 0.8, 1.0)}, tpot_base=5.0))
    ev = evidence.gather(run)
    assert [x.concurrency for x in ev.load_levels] == [1, 4]
    lv = ev.load_levels[0]
    assert lv.tpot_p50_baseline_ms / lv.tpot_p50_spec_ms == pytest.approx(1.25)
    assert ev.tpot_c1_baseline_ms == lv.tpot_p50_baseline_ms and ev.tpot_c1_spec_ms == lv.tpot_p50_spec_ms


def test_streamed_records_give_the_baseline_s_typical_steps_and_the_sweep_s_step_growth(tmp_path):
    import json

    from tests.support.streams import stream_record as _stream

    run = make_run(tmp_path, sweep_result=sweep(), load_result=load({1: (1.25, 1.1, 1.4), 4: (0.9, 0.8, 1.0)}))
    recs = [_stream(f"baseline@c{c}/structured/r-{i}", f"baseline@c{c}/structured", 0.0, 5.0,
                    [(4.0 + c, 1)] * 30, prompt_tokens=40) for c in (1, 4) for i in range(2)]
    # the sweep: one stream alone for 30 steps of 10 ms, then beside another at 13 ms
    recs += [_stream("sweep:structured@T0/s-0", "sweep:structured@T0", 0.0, 0.0, [(10.0, 3)] * 30 + [(13.0, 3)] * 30,
                     prompt_tokens=40),
             _stream("sweep:structured@T0/s-1", "sweep:structured@T0", 0.300, 0.0, [(13.0, 3)] * 30, prompt_tokens=40)]
    (run.artifacts / "50_load_requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs[:4]))
    (run.artifacts / "40_sweep_requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs[4:]))
    ev = evidence.gather(run)
    assert [x.step_p50_baseline_ms for x in ev.load_levels] == [pytest.approx(5.0, abs=1e-5),
                                                                pytest.approx(8.0, abs=1e-5)]
    assert ev.spec_step_growth.in_flight == 2 and ev.spec_step_growth.share == pytest.approx(0.3, abs=1e-5)
    # a run without streamed records keeps the TPOT-only evidence
    bare = evidence.gather(make_run(tmp_path / "bare", sweep_result=sweep(), load_result=load({1: (1.25, 1.1, 1.4)})))
    assert bare.spec_step_growth is None and bare.load_levels[0].step_p50_baseline_ms is None
