"""Hybrid models in the memory budget: Qwen3-Next's Gated DeltaNet (linear) layers and Llama-4's chunked-local
attention, as vLLM 0.32 sizes their KV cache (vllm/v1/core/kv_cache_utils.py, vllm/v1/kv_cache_interface.py,
vllm/platforms/interface.py _align_hybrid_block_size). No public start-up log of either model with its GPU, flags and
'GPU KV cache size' was found to check against: these numbers are derived from the vLLM source."""

from __future__ import annotations

import pytest

from playbook.helpers import memory, models
from playbook.helpers.gpus import resolve_gpu
from tests.support.tiny_models import config_dir

GiB = 2**30

# Qwen/Qwen3-Next-80B-A3B-Instruct config.json (https://huggingface.co/Qwen/Qwen3-Next-80B-A3B-Instruct)
QWEN3_NEXT = {
    "architectures": ["Qwen3NextForCausalLM"], "model_type": "qwen3_next", "decoder_sparse_step": 1,
    "full_attention_interval": 4, "head_dim": 256, "hidden_size": 2048, "intermediate_size": 5120,
    "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128, "linear_num_key_heads": 16, "linear_num_value_heads": 32,
    "linear_value_head_dim": 128, "max_position_embeddings": 262144, "mlp_only_layers": [],
    "moe_intermediate_size": 512, "num_attention_heads": 16, "num_experts": 512, "num_experts_per_tok": 10,
    "num_hidden_layers": 48, "num_key_value_heads": 2, "rope_theta": 10000000,
    "shared_expert_intermediate_size": 512, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "vocab_size": 151936,
}
# meta-llama/Llama-4-Scout-17B-16E-Instruct config.json's text_config (no_rope_layers empty: every 4th layer NoPE)
SCOUT_TEXT = {
    "model_type": "llama4_text", "attention_chunk_size": 8192, "head_dim": 128, "hidden_size": 5120,
    "interleave_moe_layer_step": 1, "intermediate_size": 8192, "intermediate_size_mlp": 16384,
    "max_position_embeddings": 10485760, "no_rope_layers": [], "num_attention_heads": 40, "num_experts_per_tok": 1,
    "num_hidden_layers": 48, "num_key_value_heads": 8, "num_local_experts": 16, "vocab_size": 202048,
    "tie_word_embeddings": False,
}


def _dir(tmp_path, name, cfg):
    return models.resolve(str(config_dir(tmp_path, name, cfg)))


@pytest.fixture
def qwen3_next(tmp_path):
    return _dir(tmp_path, "qwen3-next", QWEN3_NEXT)


@pytest.fixture
def scout(tmp_path):
    return _dir(tmp_path, "scout", {"architectures": ["Llama4ForConditionalGeneration"], "model_type": "llama4",
                                    "text_config": SCOUT_TEXT})


def test_qwen3_next_keeps_kv_in_its_12_full_layers_and_a_fixed_state_in_the_36_linear_ones(qwen3_next):
    assert (qwen3_next.kinds().count("full"), qwen3_next.kinds().count("linear")) == (12, 36)
    assert qwen3_next.kinds()[:4] == ["linear", "linear", "linear", "full"]
    layers = memory.kv_layers(qwen3_next)
    assert memory.kv_bytes_per_token(layers) == 12 * 2 * 2 * 256 * 2 == 24576  # not 48 layers' 98,304
    # conv state (2 x 16 x 128 + 32 x 128) x 3 taps + recurrent 32 x 128 x 128, bf16; 2 states (prefix caching)
    assert memory.linear_state_bytes(qwen3_next) == (8192 * 3 + 32 * 128 * 128) * 2 == 1_097_728
    assert memory.state_bytes_per_request(layers) == 36 * 2 * 1_097_728
    assert memory.linear_state_bytes(qwen3_next, tp=2, num_spec=2) == (4096 * 5 + 16 * 128 * 128) * 2


def test_qwen3_next_capacity_as_vllm_groups_it(qwen3_next):
    layers = memory.kv_layers(qwen3_next)
    bs = memory.hybrid_block_size(layers, 16)
    assert bs == 544  # 16 x cdiv(1,097,728, 16 x 2,048): vLLM logs 'Setting attention block size to 544 tokens'
    # 4 groups of 12 layers (1 full, 3 linear), pages padded to 544 x 2,048 bytes; a request holds
    # cdiv(32768, 544) = 61 blocks of the full group and 2 states in each linear group
    assert memory.block_layout(layers, bs, 32768, 8192) == (12 * 544 * 2048, 61 + 3 * 2)
    nb, tokens, conc = memory.capacity(layers, 10 * GiB, 32768, bs, 8192)
    assert (nb, tokens, round(conc, 4)) == (803, 392726, 11.9851)  # 48 full layers gave 6,826 / 109,226 / 3.33


def test_qwen3_next_mtp_layer_is_full_attention(qwen3_next):
    spec = qwen3_next.model_copy(update={"mtp_layers": 1})
    assert [x.kind for x in memory.draft_kv_layers("mtp", spec, None, 1, "auto")] == ["full"]


def test_llama4_scout_has_36_chunked_and_12_full_layers(scout):
    assert scout.attention_chunk_size == 8192
    assert (scout.kinds().count("chunked"), scout.kinds().count("full")) == (36, 12)
    assert scout.kinds()[:4] == ["chunked", "chunked", "chunked", "full"]  # no_rope_layers: layer 4k+3 is NoPE


def test_llama4_chunked_layers_hold_one_chunk_plus_the_tokens_in_flight(scout):
    layers = memory.kv_layers(scout)
    # 4 groups of 12: the full group cdiv(32768, 16) blocks, each chunked one cdiv(8192 + 8192, 16)
    assert memory.block_layout(layers, 16, 32768, 8192) == (12 * 2 * 8 * 128 * 2 * 16, 2048 + 3 * 1024)
    nb, tokens, conc = memory.capacity(layers, 10 * GiB, 32768, 16, 8192)
    assert (nb, tokens) == (13653, 87379)  # as all-full layers: 3,413 blocks, 54,608 tokens
    promoted = memory.promote_chunked(layers)  # vLLM's default: its hybrid manager is off for chunked attention
    assert memory.capacity(promoted, 10 * GiB, 32768, 16, 8192)[1] == 54608


def test_the_budget_allocates_llama4_chunked_layers_as_full_attention_as_vllm_does_by_default(scout):
    """vllm/config/vllm.py turns the hybrid KV cache manager off for chunked-local attention unless
    VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE=1: every layer then keeps the whole context."""
    b = memory.budget(scout, None, resolve_gpu("H100-SXM"), method="none", target_quant="int4", max_model_len=32768)
    full = memory.budget(scout.model_copy(update={"layer_types": []}), None, resolve_gpu("H100-SXM"), method="none",
                         target_quant="int4", max_model_len=32768)
    assert (b.kv_cache_tokens, b.max_concurrency) == (full.kv_cache_tokens, full.max_concurrency)


def test_catalog_qwen3_next_is_hybrid_and_near_its_published_size():
    spec = models.resolve("Qwen/Qwen3-Next-80B-A3B-Thinking")
    assert spec.name == "Qwen3-Next-80B-A3B" and spec.kinds().count("linear") == 36
    assert models.total_params(spec) / 1e9 == pytest.approx(79.67, abs=0.01)  # 80B on the card


def test_budget_of_qwen3_next_on_one_h100():
    b = memory.budget(models.resolve("Qwen3-Next-80B-A3B"), None, resolve_gpu("H100-SXM"), method="none",
                      target_quant="int4", max_model_len=32768)
    assert b.fits and b.block_size == 544 and b.kv_bytes_per_token == 24576
    assert b.state_bytes_per_request == 36 * 2 * 1_097_728
    assert b.max_concurrency > 30  # 9.6 when every layer was counted as full attention


@pytest.mark.parametrize("method, draft", [("mtp", None), ("ngram", None), ("draft_model", "Qwen3-0.6B")])
def test_qwen3_next_without_speculation_is_the_server_without_it(method, draft):
    """The "without" side of a speculative budget is the baseline server: states neither widened by k nor 2 + k."""
    spec_model, gpu = models.resolve("Qwen3-Next-80B-A3B"), resolve_gpu("H100-SXM")
    kw = dict(target_quant="int4", max_model_len=32768, context_length=8192)
    base = memory.budget(spec_model, None, gpu, method="none", **kw)
    b = memory.budget(spec_model, models.resolve(draft) if draft else None, gpu, method=method,
                      num_speculative_tokens=4, **kw)
    assert b.max_concurrency_without_draft == base.max_concurrency
    assert b.kv_cache_tokens_without_draft == base.kv_cache_tokens
    assert b.concurrency_at_context_without_draft == base.concurrency_at_context
    # k=4 widens every state and holds 6 of them instead of 2 per linear layer: speculation costs concurrency
    assert b.state_bytes_per_request > 3 * base.state_bytes_per_request
    assert b.concurrency_at_context < base.concurrency_at_context and b.concurrency_lost_pct > 0


def test_a_linear_layer_of_another_kind_is_budgeted_as_full_attention_not_as_free(tmp_path):
    """layer_types naming linear layers without Gated DeltaNet's sizes (Kimi-Linear, MiniMax): no state can be sized,
    so they keep KV like full attention (the budget errs towards less concurrency)."""
    cfg = {k: v for k, v in QWEN3_NEXT.items() if not k.startswith("linear_") and k != "full_attention_interval"}
    cfg.update(architectures=["LlamaForCausalLM"], model_type="llama")  # no config class that fills linear_* in
    cfg["layer_types"] = ["linear_attention", "linear_attention", "linear_attention", "full_attention"] * 12
    spec = _dir(tmp_path, "other-linear", cfg)
    assert spec.kinds() == ["full"] * 48
    assert memory.kv_bytes_per_token(memory.kv_layers(spec)) == 48 * 2 * 2 * 256 * 2


def test_the_step_model_reads_qwen3_next_s_recurrent_state_per_sequence_and_attends_in_12_layers():
    """A decode pass of a hybrid model reads and writes each sequence's Gated DeltaNet state (36 layers x 1,097,728 B
    at TP 1) and computes attention only in its 12 full layers."""
    from playbook.helpers.catalog_predict import roofline_from_specs
    from playbook.helpers.step_model import H100_VLLM_V1, step_ms

    spec, gpu = models.resolve("Qwen3-Next-80B-A3B"), resolve_gpu("H100-SXM")
    hybrid = roofline_from_specs(spec, gpu, name="t", precision="fp8")
    as_full = roofline_from_specs(spec.model_copy(update={"layer_types": []}), gpu, name="t", precision="fp8")
    bw = gpu.bandwidth_gbs * 1e9 * H100_VLLM_V1.kv_efficiency
    assert hybrid.state_ms_per_sequence == pytest.approx(2 * 36 * 1_097_728 / bw * 1e3)
    assert hybrid.attention_ms_per_pair == pytest.approx(as_full.attention_ms_per_pair * 12 / 48)
    assert as_full.state_ms_per_sequence == 0
    one, many = step_ms(hybrid, 1, 1024, seqs=1), step_ms(hybrid, 64, 64 * 1024, seqs=64)
    assert many - one > 63 * hybrid.state_ms_per_sequence



def test_step_20_and_its_report_section_show_a_hybrid_model_s_state_per_request(tmp_path):
    """The memory step on Qwen3-Next records the fixed state per request, and the report's memory section says it."""
    from playbook.helpers import evidence, sections, steps
    from playbook.helpers.params import MemoryParams
    from tests.support.decide_fixtures import make_run

    run = make_run(tmp_path / "run")
    p = MemoryParams(run_dir=str(run.path), mode="managed", target_model="Qwen3-Next-80B-A3B", draft_model="",
                     method="mtp", gpu="H100-SXM", num_gpus=4, tensor_parallel_size=4, max_model_len=32768,
                     context_length=32768, gpu_memory_utilization=0.9)
    budget = steps.memory(p, run).budget
    assert budget.fits and budget.state_bytes_per_request > 0 and budget.kv_bytes_per_token_target == 12 * 1024
    html = sections.memory(run, evidence.gather(run, 0.2))
    assert "recurrent state per request" in html and f"{budget.state_bytes_per_request / 2**20:,.1f} MiB" in html
