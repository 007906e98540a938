"""The additive GPU step-time model: its shape (batch, MoE, TP), the acceptance inputs, EAGLE heads
from a config.json alone, and the published-measurements table of benchmarks/predictor."""

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from playbook.cli import main
from playbook.helpers import (
    acceptance_math,
    calibration,
    catalog_predict,
    drafts,
    gpus,
    memory,
    models,
    predict,
    step_model,
)
from playbook.helpers.errors import ParameterError
from tests.support.tiny_models import config_dir

ROOT = Path(__file__).resolve().parents[2]

# yuhuili/EAGLE3-LLaMA3.1-Instruct-8B's config.json (the weights are not needed to predict)
EAGLE3_8B = {
    "architectures": ["LlamaForCausalLMEagle3"], "model_type": "llama", "hidden_size": 4096,
    "intermediate_size": 14336, "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 1,
    "vocab_size": 128256, "draft_vocab_size": 32000, "tie_word_embeddings": False, "torch_dtype": "float16",
}


@pytest.fixture
def eagle3_head(tmp_path):
    return config_dir(tmp_path, "EAGLE3-LLaMA3.1-Instruct-8B", EAGLE3_8B)


def _curve(target, draft, gpu="H100-SXM", **kw):
    kw.setdefault("num_speculative_tokens", 3)
    kw.setdefault("acceptance_length", 2.3)
    pred = catalog_predict.catalog_prediction(models.resolve(target), draft, gpus.get_gpu(gpu), **kw)
    return pred, [p.speedup for p in pred.points]


def test_eagle_head_from_config_only(eagle3_head):
    head = models.resolve(str(eagle3_head), "draft")
    assert head.eagle_head and catalog_predict.default_method(head) == "eagle3"
    facts = catalog_predict.pass_facts(head)
    h = 4096
    layer = 2 * h * 32 * 128 + 2 * h * 8 * 128 + 3 * h * 14336
    # one decoder layer, the wider first-layer qkv, fc over 3 hidden states, lm_head over the 32k draft vocab
    assert facts["active_params"] == layer + h * 48 * 128 + 3 * h * h + 32000 * h
    gpu = gpus.get_gpu("H100-SXM")
    t = catalog_predict.roofline_from_specs(models.resolve("Llama-3.1-8B"), gpu, name="t")
    d = catalog_predict.roofline_from_specs(head, gpu, name="d", draft=True)
    assert step_model.step_ms(d, 1) < 0.2 * step_model.step_ms(t, 1)  # a 1-layer head is a fraction of the target


def test_target_step_reproduces_the_public_h100_fit():
    # SpecDecode-Bench (vLLM 0.10.1, H100, Llama-3.1-8B): 5.886 ms + 0.0210 ms/token + 3.93e-5 ms/KV token
    t = catalog_predict.roofline_from_specs(models.resolve("Llama-3.1-8B"), gpus.get_gpu("H100-SXM"), name="t")
    assert step_model.step_ms(t, 1) == pytest.approx(5.886 + 0.021, rel=0.03)
    assert t.compute_ms_per_token == pytest.approx(0.0210, rel=0.05)
    assert t.kv_ms_per_token == pytest.approx(3.93e-5, rel=0.05)


def test_speedup_falls_with_batch(eagle3_head):
    _, s = _curve("Llama-3.1-8B", models.resolve(str(eagle3_head)), batch_sizes=[1, 8, 24, 64, 256, 1024],
                  context_tokens=256)
    assert all(a > b for a, b in zip(s, s[1:], strict=False))
    assert 1.3 < s[0] < 2.2 and s[-1] < 1.0  # a gain alone, a loss once verification is compute-bound


def test_long_context_keeps_speculation_ahead(eagle3_head):
    # the KV read is shared by the k+1 verified tokens: long contexts amortise it (MagicDec's observation)
    head = models.resolve(str(eagle3_head))
    _, short = _curve("Llama-3.1-8B", head, batch_sizes=[256], context_tokens=256)
    _, long = _curve("Llama-3.1-8B", head, batch_sizes=[256], context_tokens=8192)
    assert long[0] > short[0]


def test_per_speculative_step_overhead_costs_only_speculation():
    t = catalog_predict.roofline_from_specs(models.resolve("Llama-3.1-8B"), gpus.get_gpu("H100-SXM"), name="t")
    kw = {"target_step": t, "draft_step": None, "num_speculative_tokens": 3, "acceptance": 0.6, "batch_sizes": [1]}
    free, paid = predict.predict(**kw), predict.predict(**kw, spec_step_ms=1.0)
    assert paid.points[0].tpot_baseline_ms == free.points[0].tpot_baseline_ms
    assert paid.points[0].tpot_spec_ms == pytest.approx(free.points[0].tpot_spec_ms + 1.0 / paid.expected_tokens_per_step)


def test_per_sequence_speculative_cost_grows_with_the_batch():
    t = catalog_predict.roofline_from_specs(models.resolve("Llama-3.1-8B"), gpus.get_gpu("H100-SXM"), name="t")
    kw = {"target_step": t, "draft_step": None, "num_speculative_tokens": 3, "acceptance": 0.6, "batch_sizes": [1, 32]}
    free, paid = predict.predict(**kw), predict.predict(**kw, spec_seq_ms=0.1)
    e = paid.expected_tokens_per_step
    for f, p in zip(free.points, paid.points, strict=True):
        assert p.tpot_baseline_ms == f.tpot_baseline_ms
        assert p.tpot_spec_ms == pytest.approx(f.tpot_spec_ms + 0.1 * p.batch_size / e)


def test_the_sglang_engine_loses_its_gain_at_a_smaller_batch(capsys):
    """SGLang turns its overlap scheduler off for EAGLE: the speculative TPOT pays the engine step the baseline
    hides, and host work per sequence (fitted on the EAGLE-3 paper's EAGLE-3 series). Issue 15's done-when
    configuration then loses by batch 24-32 on SGLang, as the paper measured; vLLM's constants keep the gain."""
    head = models.resolve(str(ROOT / "benchmarks/predictor/heads/EAGLE-LLaMA3.1-Instruct-8B"), "draft")
    sizes = [1, 8, 24, 32, 64]
    vllm, v = _curve("Llama-3.1-8B", head, batch_sizes=sizes)
    sgl, s = _curve("Llama-3.1-8B", head, batch_sizes=sizes, engine="sglang")
    assert sgl.engine == "sglang" and vllm.engine == "vllm" and "SGLang" in sgl.assumptions[-1]
    base_v, base_s = vllm.points[0].tpot_baseline_ms, sgl.points[0].tpot_baseline_ms
    assert base_v - base_s == pytest.approx(step_model.H100_VLLM_V1.engine_step_ms)  # hidden without speculation
    assert sgl.points[0].tpot_spec_ms - vllm.points[0].tpot_spec_ms == pytest.approx(
        step_model.H100_SGLANG.spec_seq_ms / sgl.expected_tokens_per_step)  # the same step plus one sequence's work
    assert all(a < b for a, b in zip(s, v, strict=True)) and all(a > b for a, b in zip(s, s[1:], strict=False))
    assert vllm.crossover_batch_size is None and sgl.crossover_batch_size in (24, 32)
    with pytest.raises(ParameterError, match="unknown serving engine"):
        _curve("Llama-3.1-8B", head, engine="trt-llm")
    base = ["predict", "--target", "Llama-3.1-8B", "--draft", "yuhuili/EAGLE-LLaMA3.1-Instruct-8B", "--gpu",
            "H100-SXM", "-k", "3", "--acceptance-length", "2.3", "--batch-sizes", "1,64", "--json"]
    assert main([*base, "--engine", "sglang"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["engine"] == "sglang" and data["spec_seq_ms"] == step_model.H100_SGLANG.spec_seq_ms > 0
    assert data["baseline_engine_step_ms"] == 0 and data["points"][-1]["speedup"] < 1
    with pytest.raises(SystemExit):
        main([*base, "--engine", "trt-llm"])
    assert "invalid choice" in capsys.readouterr().err


def test_moe_gains_less_than_dense_at_equal_acceptance():
    draft = models.resolve("Qwen3-0.6B")
    moe, _ = _curve("Qwen3-30B-A3B", draft, gpu="H200", method="draft_model", batch_sizes=[1])
    dense, _ = _curve("Qwen3-8B", draft, gpu="H200", method="draft_model", batch_sizes=[1])
    assert moe.points[0].speedup < dense.points[0].speedup
    # the MoE baseline streams its active experts, not all 30B parameters: about as fast as the dense 8B
    assert moe.points[0].tpot_baseline_ms < 1.5 * dense.points[0].tpot_baseline_ms
    # verification touches more experts than a decode step
    t = moe.target_step
    assert step_model.step_ms(t, 4, 0, seqs=1) - step_model.step_ms(t, 1) > 3 * t.compute_ms_per_token + 10 * t.expert_ms


def test_mtp_drafts_with_the_targets_own_mtp_layer_not_for_free():
    """method mtp was predicted as a lookup (draft free); its draft is one MTP module: a decoder layer like the
    target's (MoE for DeepSeek-V3), the [embedding, hidden] projection and the shared lm_head, at the target's TP."""
    target, b300 = models.resolve("DeepSeek-V3"), gpus.get_gpu("B300")
    facts, whole = catalog_predict.mtp_pass_facts(target, "fp8"), catalog_predict.pass_facts(target, "fp8")
    head = 2 * target.vocab_size * target.hidden_size  # the lm_head stays at 16 bits
    assert head < facts["read_bytes"] < head + 2 * (whole["read_bytes"] - head) / target.num_layers + 1e8
    assert facts["moe_layers"] == 1 and facts["experts_per_token"] == target.num_experts_per_tok
    pred = catalog_predict.catalog_prediction(target, None, b300, num_speculative_tokens=1, tp=8, precision="fp8",
                                              method="mtp", acceptance_length=1.9, batch_sizes=[1])
    assert pred.draft_step is not None and 0.02 < pred.cost_ratio < 0.2
    assert 1.4 < pred.points[0].speedup < 1.9  # vLLM blog 2026-05-11: 1.87x measured (benchmarks/predictor)
    assert drafts.unusable_reason(target, None, "mtp") == ""
    assert "ships no MTP layers" in drafts.unusable_reason(models.resolve("Llama-3.1-8B"), None, "mtp")


def test_distinct_experts():
    assert step_model.distinct_experts(1, 128, 8) == pytest.approx(8)
    assert step_model.distinct_experts(4, 128, 8) == pytest.approx(128 * (1 - (120 / 128) ** 4))
    assert step_model.distinct_experts(10_000, 128, 8) == pytest.approx(128)
    assert step_model.distinct_experts(5, 0, 0) == 0


def test_tp_cost_grows_with_tp():
    spec, gpu = models.resolve("Llama-3.1-70B"), gpus.get_gpu("H100-SXM")
    steps = {tp: catalog_predict.roofline_from_specs(spec, gpu, name="t", tp=tp) for tp in (2, 4, 8)}
    comm = {tp: s.overhead_ms - steps[2].overhead_ms for tp, s in steps.items()}
    assert comm[2] == 0 < comm[4] < comm[8]  # all-reduce latency per layer grows with TP
    assert step_model.step_ms(steps[8], 1) > step_model.step_ms(steps[4], 1) / 2 * 1.1  # TP8 is not twice TP4
    no_link = catalog_predict.roofline_from_specs(spec, gpu.model_copy(update={"interconnect_gbs": None}), name="t", tp=8)
    assert steps[8].compute_ms_per_token > no_link.compute_ms_per_token  # all-reduce bytes per token


@pytest.mark.parametrize("a, k", [(0.5, 3), (0.8, 5), (0.3, 1)])
def test_acceptance_inputs_agree(a, k):
    length = acceptance_math.expected_tokens(a, k)
    assert acceptance_math.acceptance_from_length(length, k) == pytest.approx(a, abs=1e-6)
    positions = [a ** (i + 1) for i in range(k)]
    assert acceptance_math.acceptance_length_from_positions(positions) == pytest.approx(length)
    t = catalog_predict.roofline_from_specs(models.resolve("Llama-3.1-8B"), gpus.get_gpu("H100-SXM"), name="t")
    kw = {"target_step": t, "draft_step": None, "num_speculative_tokens": k, "batch_sizes": [1, 16]}
    by_a = predict.predict(**kw, acceptance=a)
    by_len = predict.predict(**kw, acceptance_length=length)
    by_pos = predict.predict(**kw, acceptance_per_position=positions)
    for other in (by_len, by_pos):
        assert [p.speedup for p in other.points] == pytest.approx([p.speedup for p in by_a.points])


def test_acceptance_length_out_of_range():
    with pytest.raises(ParameterError, match="outside"):
        acceptance_math.acceptance_from_length(4.5, 3)
    with pytest.raises(ParameterError, match="pass it as --acceptance 0.9"):
        acceptance_math.acceptance_from_length(0.9, 3)


@pytest.mark.parametrize("a, hint", [(2.3, "looks like a mean acceptance length: pass it as --acceptance-length 2.3"),
                                     (70, "if 70 is a percentage, give 0.7"), (-0.1, "")])
def test_an_acceptance_rate_out_of_range_names_the_likely_mix_up(a, hint):
    with pytest.raises(ParameterError) as err:
        acceptance_math.expected_tokens(a, 3)
    assert err.value.fix.startswith("give a per-token acceptance rate") and hint in err.value.fix
    assert ("looks like" in err.value.fix or "percentage" in err.value.fix) == bool(hint)


def test_cli_eagle_head_done_when(capsys, eagle3_head):
    rc = main(["predict", "--target", "Llama-3.1-8B", "--draft", str(eagle3_head), "--gpu", "H100-SXM", "-k", "3",
               "--acceptance-length", "2.3", "--batch-sizes", "1,8,24,64", "--json"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["method"] == "eagle3" and data["expected_tokens_per_step"] == pytest.approx(2.3)
    s = [p["speedup"] for p in data["points"]]
    assert s[0] > 1 and all(a > b for a, b in zip(s, s[1:], strict=False))
    assert data["engine_step_ms"] > 0 and data["spec_step_ms"] > 0


def test_batch_sizes_the_kv_cache_cannot_hold_are_marked(eagle3_head):
    # 32k tokens per sequence: an 8B on one H100 holds a dozen sequences, whatever the speedup model says at 32
    head, gpu, target = models.resolve(str(eagle3_head)), gpus.get_gpu("H100-SXM"), models.resolve("Llama-3.1-8B")
    pred, _ = _curve("Llama-3.1-8B", head, batch_sizes=[1, 8, 16, 32], context_tokens=32000)
    catalog_predict.check_kv_fit(pred, target, head, gpu)
    b = memory.budget(target, head, gpu, method="eagle3", num_speculative_tokens=3, max_model_len=32003,
                      context_length=32000)
    assert pred.kv_fit.max_batch_spec == b.concurrency_at_context  # what `playbook memory` budgets, not a copy
    assert pred.kv_fit.max_batch_spec < pred.kv_fit.max_batch_baseline  # the head's weights and KV cost sequences
    assert [pt.fits_kv_cache for pt in pred.points] == [pt.batch_size <= b.concurrency_at_context for pt in pred.points]
    assert [pt.fits_kv_cache for pt in pred.points][0] and not pred.points[-1].fits_kv_cache
    assert "not reachable" in pred.kv_fit.note and pred.kv_fit.note in pred.assumptions
    short, _ = _curve("Llama-3.1-8B", head, batch_sizes=[1, 64], context_tokens=1024)
    catalog_predict.check_kv_fit(short, target, head, gpu)
    assert all(pt.fits_kv_cache for pt in short.points) and not short.kv_fit.note


def test_a_configuration_that_does_not_fit_marks_every_batch_size():
    target, gpu = models.resolve("Llama-3.1-70B"), gpus.get_gpu("H100-SXM")
    pred, _ = _curve("Llama-3.1-70B", None, num_speculative_tokens=3, acceptance_length=2.0, method="ngram",
                     batch_sizes=[1, 8], context_tokens=1024)
    catalog_predict.check_kv_fit(pred, target, None, gpu)  # 140 GB of bf16 weights on one 80 GB GPU
    assert not any(pt.fits_kv_cache for pt in pred.points) and "does not fit" in pred.kv_fit.note
    cpu, _ = _curve("Llama-3.1-70B", None, num_speculative_tokens=3, acceptance_length=2.0, method="ngram",
                    batch_sizes=[1, 8], context_tokens=1024)
    catalog_predict.check_kv_fit(cpu, target, None, gpus.get_gpu("cpu"))
    assert cpu.kv_fit is None and all(pt.fits_kv_cache is None for pt in cpu.points)  # no GPU memory: not checked


def test_cli_marks_batch_sizes_beyond_the_kv_cache(capsys, eagle3_head):
    base = ["predict", "--target", "Llama-3.1-8B", "--draft", str(eagle3_head), "--gpu", "H100-SXM", "-k", "3",
            "--acceptance-length", "2.3", "--context-length", "32000", "--batch-sizes", "1,64"]
    assert main([*base, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [p["fits_kv_cache"] for p in data["points"]] == [True, False] and 1 <= data["kv_fit"]["max_batch_spec"] < 64
    assert main(base) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("64 ")]
    assert rows and "KV cache too small" in rows[0]


def test_cli_acceptance_forms(capsys):
    base = ["predict", "--target", "Llama-3.1-8B", "--draft", "Llama-3.2-1B", "--gpu", "H100-SXM", "-k", "3",
            "--batch-sizes", "1,8", "--json"]
    assert main([*base, "--acceptance-per-position", "0.8,0.6,0.4"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["expected_tokens_per_step"] == pytest.approx(2.8) and data["acceptance_per_position"] == [0.8, 0.6, 0.4]
    assert main([*base, "--acceptance-length", "5"]) == 1
    assert "outside [1, k+1]" in capsys.readouterr().err


def _published():
    spec = importlib.util.spec_from_file_location("published", ROOT / "benchmarks/predictor/published.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["published"] = mod  # pydantic resolves the row model's annotations through it
    spec.loader.exec_module(mod)
    return mod


def test_published_table_parses_and_names_sources():
    pub = _published()
    rows = pub.load()
    assert len(rows) >= 10
    assert all(r.source and r.measured > 0 and r.acceptance_length >= 1 for r in rows)
    for r in rows:
        if not models.Path(pub.HERE / r.draft).is_dir():
            models.resolve(r.draft, "draft")  # catalog drafts resolve
    checks = pub.check(rows)
    s = pub.summary(checks)
    assert 0 <= s["median_error"] < 1 and s["direction_rows"] == sum(r.kind != "ratio" for r in rows)
    # the split: rows that set a constant are marked, and enough rows are held out to judge the model
    assert any(r.fit for r in rows) and sum(not r.fit for r in rows) >= 8
    held = pub.summary([c for c in checks if not c.row.fit])
    assert held["direction_rows"] >= 1 and held["crossover_factor"] is not None


def test_published_crossover_rows_are_judged_by_factor():
    pub = _published()
    assert pub.crossover_factor(24, 24) == 1 and pub.crossover_factor(48, 24) == 2 == pub.crossover_factor(12, 24)
    assert pub.crossover_factor(0, 24) == float("inf")  # never crossed in the grid: a miss
    row = pub.PublishedRow(source="s", kind="crossover", gpu="H100-SXM", target="Llama-3.1-8B",
                           draft="heads/EAGLE-LLaMA3.1-Instruct-8B", method="eagle", k=5, verify_tokens=8, tree_width=4,
                           batch_size=24, acceptance_length=2.43, context=600, measured=24)
    (c,) = pub.check([row])
    assert c.predicted in pub.CROSSOVER_GRID and c.direction_right == (pub.crossover_factor(c.predicted, 24) <= 1.5)


def test_published_slowdowns_count_only_losses_and_crossovers():
    """published_slowdowns_right: of the rows where the source measured a loss (or a crossover batch), how many the
    predictor calls a loss; a predicted gain on a measured loss is a miss, a measured gain is not a slowdown."""
    pub = _published()
    base = {"source": "s", "gpu": "H100-SXM", "target": "Llama-3.1-8B", "draft": "heads/EAGLE-LLaMA3.1-Instruct-8B",
            "method": "eagle", "k": 3, "acceptance_length": 2.4, "context": 600}
    loss_missed = pub.PublishedRow(**base, batch_size=1, measured=0.8)  # an EAGLE head at batch 1: a gain predicted
    gain = pub.PublishedRow(**base, batch_size=1, measured=1.5)
    loss_right = pub.PublishedRow(**base, engine="sglang", batch_size=64, measured=0.7)  # SGLang loses from ~28
    checks = pub.check([loss_missed, gain, loss_right])
    assert [c.predicted >= 1 for c in checks] == [True, True, False]
    s = pub.summary(checks)
    assert (s["slowdowns"], s["slowdowns_right"], s["direction_right"]) == (2, 1, 2)


def test_moe_baseline_matches_the_published_h100_baselines():
    """moe_layer_ms comes from Qwen3-30B-A3B's batch-1 decode on H100s under SGLang (SpecForge#339, TP2: 222.47 tok/s;
    AngelSlim#163, TP4: 218.89 tok/s); the catalog model reproduces both within 5%."""
    target, gpu = models.resolve("Qwen3-30B-A3B"), gpus.get_gpu("H100-SXM")
    for tp, measured_ms in ((2, 1000 / 222.47), (4, 1000 / 218.89)):
        t = catalog_predict.roofline_from_specs(target, gpu, name="t", tp=tp, constants=step_model.H100_SGLANG)
        assert step_model.step_ms(t, 1, 600) == pytest.approx(measured_ms, rel=0.05)


def test_an_anchored_acceptance_reproduces_the_sources_lowest_batch():
    """A source without acceptance lengths (the EAGLE-3 paper's batch tables): the length is set so the
    prediction equals the source at its lowest batch; that row is marked fit, the others are predicted."""
    pub = _published()
    row = pub.PublishedRow(source="s", engine="vllm", gpu="RTX-3090", target="Llama-3.1-8B",
                           draft="heads/EAGLE-LLaMA3.1-Instruct-8B", method="eagle", k=2, batch_size=32,
                           acceptance_length=2.1, anchor_batch=2, anchor_speedup=1.30, context=600, measured=0.93)
    al = pub.acceptance_length(row)
    assert 1 < al < 2.1  # below the assumed one: the prediction with 2.1 is well above 1.30 at batch 2
    at_anchor = row.model_copy(update={"batch_size": 2, "measured": 1.30})
    assert pub.predicted(at_anchor) == pytest.approx(1.30, abs=1e-3)
    assert pub.predicted(row) < pub.predicted(at_anchor)  # the rest of the curve is the model's
    anchored = [r for r in pub.load() if r.anchor_batch is not None]
    # the anchor row is always fit; the rest are held out unless a constant was set from them (SGLang's EAGLE-3 series)
    assert anchored and all(r.fit for r in anchored if r.batch_size == r.anchor_batch and r.kind == "speedup")
    assert all(r.fit == (r.batch_size == r.anchor_batch and r.kind == "speedup") for r in anchored
               if not (r.engine == "sglang" and r.method == "eagle3"))
    with pytest.raises(ValueError, match="together"):
        pub.PublishedRow(source="s", gpu="H100-SXM", target="Llama-3.1-8B", k=2, batch_size=4,
                         acceptance_length=2, anchor_batch=2, measured=1.2)


def test_a_public_eagle_head_by_its_hub_id_predicts_as_its_config_dir(capsys):
    """`--draft yuhuili/EAGLE-LLaMA3.1-Instruct-8B` (the catalog entry) gives the curve its public config.json gives."""
    from playbook.cli import main

    base = ["predict", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM", "-k", "3", "--acceptance-length", "2.3",
            "--batch-sizes", "1,8,24,64", "--json", "--draft"]
    curves = []
    for draft in ("yuhuili/EAGLE-LLaMA3.1-Instruct-8B", str(ROOT / "benchmarks/predictor/heads/EAGLE-LLaMA3.1-Instruct-8B")):
        assert main([*base, draft]) == 0
        data = json.loads(capsys.readouterr().out)
        curves.append([round(p["speedup"], 6) for p in data["points"]])
        assert data["method"] == "eagle"
    assert curves[0] == curves[1] and curves[0][0] > curves[0][-1] > 1


def test_published_table_rejects_bad_rows(tmp_path):
    pub = _published()
    bad = tmp_path / "t.yaml"
    bad.write_text("rows:\n  - {source: x, gpu: H100-SXM, target: Llama-3.1-8B, k: 0, batch_size: 1, "
                   "acceptance_length: 2, measured: 1.5}\n")
    with pytest.raises(ValueError):
        pub.load(bad)


def _measure(target, draft, k, e, b, ctx, engine=0.0, spec=0.0):
    """Synthetic 'measured' TPOTs at batch b from a known model (the truth the fit must recover)."""
    base = step_model.step_ms(target, b, b * ctx, seqs=b) + engine
    tpot_spec = predict._spec_tpot(target, draft, b, k, e, ctx, None, engine, spec)[0]
    return base, tpot_spec


def test_calibration_recovers_a_cpu_like_node():
    # the embedded engine: no catalog prior, per-token costs dominate
    truth_t = predict.StepTimeModel(name="t", source="given", overhead_ms=6.0, compute_ms_per_token=3.0)
    truth_d = predict.StepTimeModel(name="d", source="given", overhead_ms=1.5, compute_ms_per_token=0.4)
    k, e = 4, 2.2
    b1, s1 = _measure(truth_t, truth_d, k, e, 1, 0)
    b8, s8 = _measure(truth_t, truth_d, k, e, 8, 0)
    t, d = calibration.calibrate_steps(num_speculative_tokens=k, expected_tokens_per_step=e, tpot_baseline_ms=b1,
                                   tpot_spec_ms=s1, concurrency=8, tpot_baseline_at_ms=b8, tpot_spec_at_ms=s8)
    assert (t.overhead_ms, t.compute_ms_per_token) == pytest.approx((6.0, 3.0))
    assert (d.overhead_ms, d.compute_ms_per_token) == pytest.approx((1.5, 0.4))
    pred, chk = calibration.calibrated_curve(t, d, num_speculative_tokens=k, acceptance_length=e, batch_sizes=[1, 2, 4],
                                         measured={8: b8 / s8})
    assert pred.points[0].speedup < 1 and chk.mean_abs_relative_error == pytest.approx(0, abs=1e-6)


def test_calibration_recovers_a_lookup_that_proposes_on_a_share_of_steps():
    """An n-gram with a lookup cost, proposing on 30% of steps: the fit to TPOTs at 1 and 8 recovers the target's
    constants when told the proposal rate, and the curve it predicts is the truth's."""
    truth_t = predict.StepTimeModel(name="t", source="given", overhead_ms=6.0, compute_ms_per_token=3.0)
    lookup = predict.StepTimeModel(name="d", source="given", overhead_ms=0.2, compute_ms_per_token=0.0)
    k, e, q = 4, 2.6, 0.3

    def measure(b):
        return (step_model.step_ms(truth_t, b, 0, seqs=b),
                predict._spec_tpot(truth_t, lookup, b, k, e, 0, proposal_rate=q)[0])

    (b1, s1), (b8, s8) = measure(1), measure(8)
    t, d = calibration.calibrate_steps(num_speculative_tokens=k, expected_tokens_per_step=e, tpot_baseline_ms=b1,
                                   tpot_spec_ms=s1, concurrency=8, tpot_baseline_at_ms=b8, tpot_spec_at_ms=s8,
                                   proposal_rate=q)
    assert (t.overhead_ms, t.compute_ms_per_token) == pytest.approx((6.0, 3.0))
    for b in (2, 16, 64):
        pred = predict.predict(target_step=t, draft_step=d, num_speculative_tokens=k, acceptance_length=e,
                               batch_sizes=[b], method="ngram", proposal_rate=q)
        base, spec = measure(b)
        assert pred.points[0].speedup == pytest.approx(base / spec, rel=1e-6)


def test_calibration_keeps_gpu_structure(eagle3_head):
    # a GPU node whose fixed and per-token costs differ from the catalog's: two measured levels fix them
    gpu = gpus.get_gpu("H100-SXM")
    prior_t = catalog_predict.roofline_from_specs(models.resolve("Llama-3.1-8B"), gpu, name="t")
    prior_d = catalog_predict.roofline_from_specs(models.resolve(str(eagle3_head)), gpu, name="d", draft=True)
    truth_t = prior_t.model_copy(update={"overhead_ms": prior_t.overhead_ms * 1.6,
                                         "compute_ms_per_token": prior_t.compute_ms_per_token * 1.4})
    k, e, ctx = 3, 2.5, 512
    b1, s1 = _measure(truth_t, prior_d, k, e, 1, ctx, engine=1.2, spec=0.6)
    b16, s16 = _measure(truth_t, prior_d, k, e, 16, ctx, engine=1.2, spec=0.6)
    t, d = calibration.calibrate_steps(num_speculative_tokens=k, expected_tokens_per_step=e, tpot_baseline_ms=b1,
                                   tpot_spec_ms=s1, concurrency=16, tpot_baseline_at_ms=b16, tpot_spec_at_ms=s16,
                                   context_tokens=ctx, prior_target=prior_t, prior_draft=prior_d)
    assert t.compute_ms_per_token == pytest.approx(truth_t.compute_ms_per_token, rel=1e-6)
    assert t.kv_ms_per_token == prior_t.kv_ms_per_token  # the GPU's KV read is kept
    for b in (4, 64, 256):
        base, spec = _measure(truth_t, prior_d, k, e, b, ctx, engine=1.2, spec=0.6)
        pred = predict.predict(target_step=t, draft_step=d, num_speculative_tokens=k, acceptance_length=e,
                               batch_sizes=[b], context_tokens=ctx)
        assert pred.points[0].speedup == pytest.approx(base / spec, rel=0.01)


def test_cli_calibrates_on_measured_tpots(capsys):
    # vllm#20780's measured batch-1 TPOTs (7.07 ms vanilla, 4.29 ms EAGLE-1 k=3, AL 2.29) on the H100 prior
    head = str(ROOT / "benchmarks/predictor/heads/EAGLE-LLaMA3.1-Instruct-8B")
    rc = main(["predict", "--target", "Llama-3.1-8B", "--draft", head, "--gpu", "H100-SXM", "-k", "3",
               "--acceptance-length", "2.29", "--tpot-ms", "7.07,4.29", "--batch-sizes", "1,32", "--json"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    first = data["points"][0]
    assert (first["tpot_baseline_ms"], first["tpot_spec_ms"]) == pytest.approx((7.07, 4.29))
    assert data["points"][1]["speedup"] < first["speedup"]
    # the CPU engine: no prior, two measured levels
    rc = main(["predict", "--target", "Llama-3.1-8B", "--method", "ngram", "-k", "4", "--acceptance-length", "3",
               "--tpot-ms", "20,19.3", "--tpot-at", "4,40,60", "--batch-sizes", "1,4", "--json"])
    assert rc == 0
    pts = json.loads(capsys.readouterr().out)["points"]
    assert pts[1]["tpot_baseline_ms"] == pytest.approx(40.0) and pts[1]["tpot_spec_ms"] == pytest.approx(60.0)


def test_a_fit_that_cannot_explain_the_tpots_says_so(capsys):
    """A speculative TPOT faster than the acceptance given allows (AL 1.5 for 7.0 -> 3.0 ms, a 2.3x gain): the draft's
    cost would be negative; it is fitted as 0 and the prediction, its JSON and stderr say why, naming the fix.
    Measurements the model explains (vllm#20780's) carry no such note."""
    base = ["predict", "--target", "Llama-3.1-8B", "--draft", str(ROOT / "benchmarks/predictor/heads/EAGLE-LLaMA3.1-Instruct-8B"),
            "--gpu", "H100-SXM", "-k", "3", "--batch-sizes", "1,32", "--json"]
    assert main([*base, "--acceptance-length", "1.5", "--tpot-ms", "7.0,3.0"]) == 0
    out, err = capsys.readouterr()
    notes = [a for a in json.loads(out)["assumptions"] if "fitted as 0" in a]
    assert len(notes) == 1 and "draft pass's fixed cost" in notes[0] and "acceptance" in notes[0]
    assert err.count("warning: ") == 1 and "mean acceptance length" in err
    assert main([*base, "--acceptance-length", "2.29", "--tpot-ms", "7.07,4.29"]) == 0
    out, err = capsys.readouterr()
    assert not any("fitted as 0" in a for a in json.loads(out)["assumptions"]) and "warning" not in err
    # a baseline faster at concurrency 8 than alone: the per-token cost is clamped, and said
    t, _ = calibration.calibrate_steps(num_speculative_tokens=3, expected_tokens_per_step=2.0, tpot_baseline_ms=10.0,
                                   concurrency=8, tpot_baseline_at_ms=6.0)
    assert t.compute_ms_per_token == 0 and "lower than at 1" in t.fit_notes[0]
    # within the tolerance (noise): clamped without a note
    t, _ = calibration.calibrate_steps(num_speculative_tokens=3, expected_tokens_per_step=2.0, tpot_baseline_ms=10.0,
                                   concurrency=8, tpot_baseline_at_ms=9.99)
    assert t.compute_ms_per_token == 0 and t.fit_notes == []


def test_benchmark_falls_back_to_the_servers_own_tpot(tmp_path, capsys):
    # the CPU engine can deliver streams in bursts: the load test then withholds client-side speedups
    sys.path.insert(0, str(ROOT / "benchmarks/predictor"))
    import run as bench

    from playbook.helpers.artifacts import RunDir
    from playbook.helpers.schemas.decision import LoadLevel

    rd = RunDir(tmp_path / "r")
    rd.artifacts.mkdir(parents=True, exist_ok=True)
    levels = [{"config": c, "level": lv, "server_tpot_ms_mean": t}
              for c, lv, t in [("baseline", 1, 2.4), ("spec", 1, 1.6), ("baseline", 4, 3.0), ("spec", 4, 2.5)]]
    (rd.artifacts / "50_load.json").write_text(json.dumps({"levels": levels}))
    ev = SimpleNamespace(load_levels=[LoadLevel(concurrency=1, status="excluded", reason="burst"),
                                      LoadLevel(concurrency=4, status="excluded", reason="burst")],
                         tpot_c1_baseline_ms=None, tpot_c1_spec_ms=None)
    bench.server_side_levels(rd, ev)
    assert [round(x.speedup, 3) for x in ev.load_levels] == [1.5, 1.2]
    assert (ev.tpot_c1_baseline_ms, ev.tpot_c1_spec_ms) == (2.4, 1.6)
    assert "servers' own TPOT" in capsys.readouterr().out


def test_an_ngram_that_proposes_on_fewer_steps_verifies_fewer_tokens():
    """vLLM counts acceptance only over steps with draft tokens (scheduler.make_spec_decoding_stats): an n-gram that
    finds a match on a third of the steps verifies 1 + k/3 tokens per sequence and yields 1 + (E - 1)/3 per step.
    Its curve is flatter than at q=1: less gain alone, far less verification to pay at a large batch."""
    target = models.resolve("Llama-3.1-8B", "target")

    def curve(q):
        return catalog_predict.catalog_prediction(target, None, gpus.get_gpu("H100-SXM"), num_speculative_tokens=3,
                                          method="ngram", acceptance_length=1.9, batch_sizes=[1, 128],
                                          context_tokens=300, proposal_rate=q)

    full, third = curve(1.0), curve(1 / 3)
    assert third.expected_tokens_per_step == pytest.approx(1 + 0.9 / 3) and full.expected_tokens_per_step == pytest.approx(1.9)
    assert third.points[0].speedup < full.points[0].speedup
    ratio = [p.points[1].speedup / p.points[0].speedup for p in (full, third)]
    assert ratio[1] > ratio[0] + 0.1  # flatter: the verification pass grows by b*(1+k/3), not b*(k+1)
    assert third.proposal_rate == pytest.approx(1 / 3) and "a proposal on 33% of steps" in " ".join(third.assumptions)
    with pytest.raises(ParameterError, match="proposal rate"):
        curve(0.0)


def test_cli_proposal_rate(capsys):
    base = ["predict", "--target", "Llama-3.1-8B", "--method", "ngram", "--gpu", "H100-SXM", "-k", "3",
            "--acceptance-length", "1.9", "--batch-sizes", "1,128", "--json"]
    assert main([*base, "--proposal-rate", "0.3"]) == 0
    assert json.loads(capsys.readouterr().out)["proposal_rate"] == 0.3
    assert main([*base, "--proposal-rate", "1.5"]) == 1
    assert "--proposal-rate 1.5 (must lie in (0, 1])" in capsys.readouterr().err
    assert main([*base, "--proposal-rate", "0.3", "--tpot-ms", "7,6"]) == 0  # the node fit takes it too
    assert json.loads(capsys.readouterr().out)["points"][0]["tpot_spec_ms"] == pytest.approx(6.0)
    eagle = [a for a in base if a != "ngram"]
    eagle[eagle.index("--method")] = "--draft"
    eagle.insert(eagle.index("--draft") + 1, "benchmarks/predictor/heads/EAGLE-LLaMA3.1-Instruct-8B")
    assert main([*eagle, "--proposal-rate", "0.3"]) == 1
    assert "proposes on every step" in capsys.readouterr().err


def test_published_ngram_rows_propose_as_the_sources_simulator_does():
    """SpecDecode-Bench's simulator: a step whose first token would be accepted always has a match, one whose first
    token would be rejected has one with probability m; so q = m / (1 - a (1 - m)) for per-proposal acceptance a."""
    pub = _published()
    row = pub.PublishedRow(source="s", gpu="H100-SXM", target="Llama-3.1-8B", method="ngram", k=3, batch_size=128,
                           acceptance_length=1.9, ngram_match=0.2, context=190, measured=1.05)
    a = acceptance_math.acceptance_from_length(1.9, 3)
    q = pub.proposal_rate(row, 1.9)
    assert q == pytest.approx(0.2 / (1 - a * 0.8)) and 0.2 < q < 1
    assert pub.proposal_rate(row.model_copy(update={"ngram_match": 1.0}), 1.9) == 1.0
    assert pub.proposal_rate(row.model_copy(update={"ngram_match": None}), 1.9) == 1.0
    # anchored at batch 1 (as the source's rows are), the n-gram that proposes less keeps more of its gain at 128
    anchored = row.model_copy(update={"anchor_batch": 1, "anchor_speedup": 1.17})
    assert pub.predicted(anchored) > pub.predicted(anchored.model_copy(update={"ngram_match": None})) + 0.1
