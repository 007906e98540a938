"""vLLM's memory budget, reproduced from its source (vLLM V1, checked against 0.32):

* KV bytes per token per layer: ``2 * num_kv_heads * head_dim * dtype_bytes`` (GQA; kv heads split
  across tensor-parallel ranks, replicated when fewer than ranks); MLA stores one latent of
  ``kv_lora_rank + qk_rope_head_dim`` per token, no factor 2, on every rank.
* Draft layers (draft model, EAGLE head, MTP layers) join the same pool: a block holds every
  layer's page (``vllm/v1/kv_cache_interface.py``: ``UniformTypeKVCacheSpecs.page_size_bytes``).
* ``num_blocks = kv_bytes // bytes_per_block``; per request a full-attention layer needs
  ``cdiv(max_model_len, block_size)`` blocks, a sliding-window layer
  ``cdiv(min(window - 1 + max_in_flight_tokens, max_model_len), block_size) + 1`` (in flight: max_num_batched_tokens
  per batch vLLM keeps in flight, :func:`concurrent_batches`, since vLLM 0.26; one batch before:
  :func:`in_flight_batches`); hybrid models are split into groups of equal layer count that share the block pool
  (``vllm/v1/core/kv_cache_utils.py``: ``_get_kv_cache_groups_uniform_page_size``).
* Hybrid models: a chunked-local layer (Llama-4) would need ``cdiv(min(chunk + max_in_flight_tokens,
  max_model_len), block_size)`` blocks, but vLLM allocates it as full attention by default (:func:`promote_chunked`);
  a linear-attention layer (Qwen3-Next's Gated DeltaNet) keeps no KV per token but a fixed
  state per request (conv + recurrent, ``MambaSpec``), one page of which fills a block: vLLM enlarges the attention
  block until an attention page holds it (Qwen3-Next: 544 tokens) and pads the state to that page.
* ``Maximum concurrency = num_blocks / blocks_per_request`` and ``KV cache size =
  int(concurrency * max_model_len)`` tokens (``get_kv_cache_capacity``), which is what vLLM logs.
* On GPU the KV space is ``memory * gpu_memory_utilization - weights - reserve`` where the reserve is
  what vLLM's profile run measures (activation peak, non-torch memory, CUDA graphs:
  ``gpu_worker.determine_available_memory``); on the CPU backend, or with ``kv_cache_memory_bytes``,
  the KV space is given directly.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from . import quantization as q
from .drafts import head_mismatch
from .models import beyond_max_context, mtp_params, param_breakdown, quant_method_of
from .schemas.memory import MemoryBudget, MemoryLogCheck, PrecisionRow, RuleCheck
from .schemas.models import GPUSpec, ModelSpec
from .schemas.startup_log import StartupLog

GiB = 2**30
KV_DTYPE_BYTES = {"auto": 2, "bf16": 2, "fp16": 2, "fp32": 4, "fp8": 1}
NO_DRAFT_METHODS = {"ngram", "suffix", "none"}


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class KVLayer:
    """One layer's cache footprint on one GPU: KV bytes per token, or (kind "linear") a fixed state per request."""

    kind: str  # "full" | "sliding" | "chunked" | "linear"
    window: int  # sliding window or attention chunk, tokens
    bytes_per_token: int
    state_bytes: int = 0  # linear: one state (conv + recurrent), bytes
    state_blocks: int = 0  # linear: the states (blocks) one request holds


# -- KV bytes ---------------------------------------------------------------------------------
def kv_heads_per_rank(num_kv_heads: int, tp: int) -> int:
    """vLLM splits KV heads across TP ranks and replicates them when there are fewer heads than ranks."""
    return max(1, num_kv_heads // tp)


def linear_state_bytes(spec: ModelSpec, tp: int = 1, num_spec: int = 0) -> int:
    """One Gated DeltaNet layer's state for one request on one GPU, at the model's dtype (vLLM's mamba_cache_dtype and
    mamba_ssm_cache_dtype 'auto', whatever --kv-cache-dtype says): conv state (2 key + value dims) / tp x
    (conv_kernel - 1 + num_spec) and recurrent state value_heads / tp x value_dim x key_dim
    (vllm/model_executor/layers/mamba/mamba_utils.py: ``gated_delta_net_state_shape``, ``_mamba_state_dtype``)."""
    conv_dim = 2 * spec.linear_num_key_heads * spec.linear_key_head_dim \
        + spec.linear_num_value_heads * spec.linear_value_head_dim
    conv = conv_dim // tp * (spec.linear_conv_kernel_dim - 1 + num_spec)
    recurrent = spec.linear_num_value_heads // tp * spec.linear_value_head_dim * spec.linear_key_head_dim
    return (conv + recurrent) * (4 if spec.dtype == "float32" else 2)


def linear_state_blocks(num_spec: int = 0) -> int:
    """States one request holds per linear layer: 2 + num_spec with prefix caching, vLLM's default for hybrid models
    (mamba_cache_mode 'align': vllm/config/model.py ``is_prefix_caching_supported``, vllm/model_executor/models/
    config.py ``MambaModelConfig``; vllm/v1/kv_cache_interface.py ``MambaSpec.max_memory_usage_bytes``)."""
    return 2 + num_spec


def _layer(spec: ModelSpec, kind: str, per_token: int, tp: int, num_spec: int) -> KVLayer:
    if kind == "linear":
        return KVLayer(kind, 0, 0, linear_state_bytes(spec, tp, num_spec), linear_state_blocks(num_spec))
    window = {"sliding": spec.sliding_window, "chunked": spec.attention_chunk_size}.get(kind, 0)
    return KVLayer(kind, window, per_token)


def kv_layers(spec: ModelSpec, tp: int = 1, kv_cache_dtype: str = "auto", num_layers: int | None = None,
              num_spec: int = 0) -> list[KVLayer]:
    """The layers a model adds to the pool (all of them, or the first `num_layers`); ``num_spec`` speculative tokens
    widen a linear layer's state."""
    dtype_bytes = KV_DTYPE_BYTES[kv_cache_dtype]
    if spec.attention == "mla":
        per = (spec.kv_lora_rank + spec.qk_rope_head_dim) * dtype_bytes
    else:
        per = 2 * kv_heads_per_rank(spec.num_kv_heads, tp) * spec.head_dim * dtype_bytes
    kinds = spec.kinds()
    n = spec.num_layers if num_layers is None else num_layers
    return [_layer(spec, kinds[i % len(kinds)], per, tp, num_spec) for i in range(n)]


def kv_bytes_per_token(layers: list[KVLayer]) -> int:
    """Bytes per token summed over layers (as if every layer kept every token)."""
    return sum(layer.bytes_per_token for layer in layers)


def draft_kv_layers(method: str, target: ModelSpec, draft: ModelSpec | None, tp: int, kv_cache_dtype: str) -> list[KVLayer]:
    """Layers speculation adds to the pool: a draft model's or EAGLE head's layers, or MTP layers."""
    if method in NO_DRAFT_METHODS:
        return []
    if method == "mtp":  # full-attention layers, whatever the target's mix (vllm qwen3_next_mtp.py, deepseek_mtp.py)
        full = target.model_copy(update={"layer_types": []})
        return kv_layers(full, tp, kv_cache_dtype, num_layers=max(1, target.mtp_layers))
    return kv_layers(draft, tp, kv_cache_dtype) if draft else []


def state_bytes_per_request(layers: list[KVLayer]) -> int:
    """The fixed bytes one request's linear-attention states take, whatever its length."""
    return sum(layer.state_bytes * layer.state_blocks for layer in layers)


def hybrid_block_size(layers: list[KVLayer], block_size: int) -> int:
    """The attention block size vLLM runs a model with linear layers at: the smallest multiple of the kernel's block
    (16 for FlashAttention, or the block size asked for when larger) whose attention page holds one linear state
    (vllm/platforms/interface.py: ``_align_hybrid_block_size``, which may override --block-size)."""
    state = max((layer.state_bytes for layer in layers), default=0)
    per_token = max((layer.bytes_per_token for layer in layers), default=0)
    if not state or not per_token:
        return block_size
    align = max(16, block_size)
    return max(block_size, align * cdiv(state, align * per_token))


def promote_chunked(layers: list[KVLayer]) -> list[KVLayer]:
    """Chunked-local layers allocated as full attention, as vLLM allocates them by default: it turns its hybrid KV
    cache manager off for chunked-local attention ("latency regression"; always with EAGLE/MTP) unless the server runs
    with VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE=1 (vllm/config/vllm.py; vllm/v1/core/kv_cache_utils.py
    ``unify_hybrid_kv_cache_specs``). The compute of those layers stays chunked."""
    return [KVLayer("full", 0, layer.bytes_per_token) if layer.kind == "chunked" else layer for layer in layers]


# -- capacity ---------------------------------------------------------------------------------
def _blocks_for(layer: KVLayer, length: int, block_size: int, max_in_flight_tokens: int) -> int:
    """Blocks one request holds in a layer (vllm/v1/kv_cache_interface.py, ``max_memory_usage_bytes`` of
    SlidingWindowSpec, ChunkedLocalAttentionSpec, MambaSpec, FullAttentionSpec)."""
    if layer.kind == "sliding" and layer.window:
        return cdiv(min(layer.window - 1 + max_in_flight_tokens, length), block_size) + 1
    if layer.kind == "chunked" and layer.window:
        return cdiv(min(layer.window + max_in_flight_tokens, length), block_size)
    if layer.kind == "linear":
        return layer.state_blocks
    return cdiv(length, block_size)


def _page(layer: KVLayer, block_size: int) -> int:
    """A layer's bytes in one block: its KV for block_size tokens, or one state (padded to the attention page)."""
    return max(layer.bytes_per_token * block_size, layer.state_bytes)


def block_layout(layers: list[KVLayer], block_size: int, length: int, max_in_flight_tokens: int) -> tuple[int, int]:
    """(bytes per block, blocks one request of `length` tokens needs), grouped the way vLLM groups."""
    buckets: dict[tuple[str, int], list[KVLayer]] = defaultdict(list)
    for layer in layers:
        buckets[(layer.kind, layer.window)].append(layer)
    if len(buckets) == 1:
        (only,) = buckets.values()
        page = sum(_page(layer, block_size) for layer in only)
        return page, _blocks_for(only[0], length, block_size, max_in_flight_tokens)
    counts = [len(v) for v in buckets.values()]
    group_size = max(counts) if max(counts) < 1.5 * min(counts) else min(counts)
    page = max(_page(layer, block_size) for layer in layers) * group_size
    blocks = sum(cdiv(len(v), group_size) * _blocks_for(v[0], length, block_size, max_in_flight_tokens)
                 for v in buckets.values())
    return page, blocks


def capacity(layers: list[KVLayer], kv_bytes: int, max_model_len: int, block_size: int,
             max_in_flight_tokens: int = 2048) -> tuple[int, int, float]:
    """(num_blocks, KV cache tokens, max concurrency) as vLLM computes and logs them."""
    if not layers or kv_bytes <= 0:
        return 0, 0, 0.0
    bytes_per_block, per_request = block_layout(layers, block_size, max_model_len, max_in_flight_tokens)
    num_blocks = int(kv_bytes) // bytes_per_block
    concurrency = num_blocks / per_request
    return num_blocks, int(concurrency * max_model_len), concurrency


def concurrency_at(layers: list[KVLayer], num_blocks: int, length: int, block_size: int, max_in_flight_tokens: int) -> float:
    """How many requests of `length` tokens the pool's blocks hold at once."""
    if not layers or num_blocks <= 0:
        return 0.0
    _, per_request = block_layout(layers, block_size, length, max_in_flight_tokens)
    return num_blocks / per_request


# vLLM converts MXFP4 experts to its MoE kernel's layout at load and may pad their dimensions to the kernel's tile
# (vllm/model_executor/layers/fused_moe/oracle/mxfp4.py, mxfp4_round_up_hidden_size_and_intermediate_size: 64 to
# 256 by backend and version), so what it holds is not the checkpoint's bytes; one measurement, not a rule to apply.
MXFP4_LOADED = ("MXFP4 experts: budgeted at the checkpoint's bytes, while vLLM converts them to its MoE kernel's "
                "layout and may pad them: vLLM 0.14.1 held gpt-oss-120b at 64.38 GiB on one H100 (Triton backend; "
                "vllm-project/vllm#33155), 6% above the checkpoint's 60.7 GiB, so the KV cache can be GiBs smaller "
                "than budgeted here; step 20 in managed mode compares with the start-up log, or give --reserve-gib "
                "from it")


# -- vLLM defaults ----------------------------------------------------------------------------
def default_block_size(gpu: GPUSpec, target: ModelSpec) -> int:
    """CPU backend: 128 (16 for MLA); GPU: 16 (vLLM's CacheConfig default), 64 for MLA (FlashMLA)."""
    if gpu.is_cpu:
        return 16 if target.attention == "mla" else 128
    return 64 if target.attention == "mla" else 16


def default_scheduler_limits(gpu: GPUSpec) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) for the OpenAI server (vllm/engine/arg_utils.py)."""
    mem = gpu.memory_gib or 0
    if gpu.is_cpu:
        return 2048, 128
    if mem >= 160:
        return 16384, 1024
    if mem >= 70 and "a100" not in gpu.name.lower():
        return 8192, 1024
    return 2048, 256


# vLLM 0.26.0 keeps a sliding-window or chunked-local layer's blocks for every batch in flight (vllm-project/vllm#47728,
# merged 2026-07); 0.25 and earlier for one batch: vllm#49878 traced Gemma-4's KV growth from 0.25.1 to 0.26.0 to it.
IN_FLIGHT_BATCHES_SINCE = (0, 26, 0)


IN_FLIGHT_NOTE = ("sliding-window layers: budgeted as vLLM 0.26 and later keep them, {n} batches of {mbt} tokens in "
                  "flight beyond the window (vllm-project/vllm#47728); vLLM 0.25 and earlier keep one, so more KV "
                  "tokens: give the serving vLLM's version (vllm_version, `playbook memory --vllm-version`)")


def in_flight_batches(method: str, pp: int = 1, vllm_version: str | None = None) -> int:
    """Batches whose tokens a sliding-window or chunked-local layer keeps beyond its window: :func:`concurrent_batches`
    from vLLM 0.26 on, one before; a version not known is taken as current."""
    from .preflight import version_tuple

    if vllm_version and version_tuple(vllm_version) < IN_FLIGHT_BATCHES_SINCE:
        return 1
    return concurrent_batches(method, pp)


def concurrent_batches(method: str, pp: int = 1) -> int:
    """Batches vLLM keeps in flight (``VllmConfig.max_concurrent_batches``): 2 with async scheduling, which it turns on
    by default unless the speculative method does not support it (the CPU n-gram proposer, suffix) or PP > 1 on the V1
    model runner, which then keeps PP batches (vllm/config/vllm.py). A sliding-window or chunked-local layer keeps
    ``batches x max_num_batched_tokens`` tokens beyond its window (``max_in_flight_tokens``, since
    vllm-project/vllm#47728, 2026-07; one batch's worth before it)."""
    if pp > 1:
        return pp
    return 1 if method in ("ngram", "suffix") else 2


def default_reserve_gib(target: ModelSpec, gpu: GPUSpec, tp: int = 1, enforce_eager: bool = False,
                        max_num_batched_tokens: int = 0, max_num_seqs: int = 0) -> float:
    """Per-GPU memory vLLM's profile run finds outside weights and KV cache (an estimate):
    non-torch memory (CUDA context, cuBLAS, NCCL: 1 GiB, +0.5 GiB with TP), the activation peak of a
    forward pass over the batched-token budget (``max_num_batched_tokens``, vLLM's default for the
    GPU when 0: the profile run uses exactly that many tokens, ``gpu_model_runner.profile_run``;
    hidden states and the MLP's intermediate, 16-bit), the sampler's fp32 logits for max_num_seqs
    requests, and 0.5 GiB of CUDA graphs (0 with eager). Checked against a real log: the V0 0.8
    H100 log in tests/unit/fixtures/vllm_logs (Llama-3.1-8B-class, 2,048 batched tokens) kept
    0.16 GiB non-torch + 2.38 GiB activation peak.
    On the CPU backend the KV space is usually set directly (kv_cache_gib) and the reserve only
    matters for `fits`: 1 GiB for the Python/torch/vLLM processes' own memory. Override with
    reserve_gib, or take it from a start-up log ('Available KV cache memory', see
    :func:`helpers.startup_log.reserve_gib_from_log`)."""
    if gpu.is_cpu:
        return 1.0
    tokens, seqs = default_scheduler_limits(gpu)
    tokens, seqs = max_num_batched_tokens or tokens, max_num_seqs or seqs
    inter = (target.moe_intermediate_size * max(1, target.num_experts_per_tok)) if target.is_moe else target.intermediate_size
    activation = tokens * (4 * target.hidden_size + 2 * inter // tp) * 2
    logits = seqs * (target.vocab_size // tp) * 4 * 2
    non_torch = 1.0 + (0.5 if tp > 1 else 0.0)
    graphs = 0.0 if enforce_eager else 0.5
    return round(non_torch + graphs + (activation + logits) / GiB, 2)


# -- the budget -------------------------------------------------------------------------------
def _weights(m: ModelSpec, quant: str, group_size: int) -> int:
    """A pre-quantized checkpoint's own tensor bytes (its safetensors headers or index) when budgeted at its
    precision; else the parameters at ``quant`` (e.g. a w8a8 70B is 67.7 GiB on disk, not 69.7), with the linear
    layers the checkpoint does not quantize at 16 bits (gpt-oss's MXFP4 keeps attention in bf16). Either way
    without the MTP layers a checkpoint may hold (DeepSeek-V3's layer 61): vLLM skips them unless the method is
    'mtp' (:func:`_mtp_weights`); and with the vision tower (``extra_params``) a multimodal model loads."""
    if m.quantization and m.quantization == quant and m.weight_bytes_on_disk:
        return int(m.weight_bytes_on_disk)
    return q.weight_bytes(param_breakdown(m), quant, group_size)


def _mtp_weights(m: ModelSpec, quant: str, group_size: int) -> int:
    """The MTP module(s) method 'mtp' loads beside the target (models.mtp_params: one decoder layer each, the
    embedding and lm_head shared with the target), at the target's precision."""
    return q.weight_bytes(mtp_params(m), quant, group_size)


def _defaults_note(m: ModelSpec) -> str:
    fields = ", ".join(f"{k} {v}" for k, v in m.defaulted.items())
    return (f"{m.name}: config.json leaves out {', '.join(m.defaulted)}: budgeted at the values transformers fills "
            f"in, as vLLM loads it ({fields}); if that is not this model, add them to config.json")


def _vision_note(m: ModelSpec) -> str:
    gib = m.extra_params * 1e9 * 2 / GiB
    return (f"{m.name}: its vision encoder (~{m.extra_params:.2f}B parameters, {gib:.2f} GiB at 16 bits) is counted "
            "in its weights, as vLLM loads it; --language-model-only (every --limit-mm-per-prompt at 0) leaves it out")


def budget(
    target: ModelSpec,
    draft: ModelSpec | None,
    gpu: GPUSpec,
    *,
    method: str = "draft_model",
    num_gpus: int = 1,
    tensor_parallel_size: int = 1,
    pipeline_parallel_size: int = 1,
    target_quant: str = "bf16",
    draft_quant: str = "bf16",
    kv_cache_dtype: str = "auto",
    num_speculative_tokens: int = 4,
    max_model_len: int = 1024,
    context_length: int | None = None,
    gpu_memory_utilization: float = 0.9,
    reserve_gib: float = -1.0,
    kv_cache_gib: float = 0.0,
    block_size: int = 0,
    max_num_batched_tokens: int = 0,
    group_size: int = 128,
    draft_share_max: float = 0.15,
    target_share_max: float = 0.70,
    vllm_version: str | None = None,
) -> MemoryBudget:
    """The budget per GPU for one configuration. Never raises for a configuration that does not fit:
    ``fits`` is False and ``reasons`` say why. ``vllm_version``: the serving vLLM's, where its KV layout changed
    (:func:`in_flight_batches`); None for the current one."""
    tp, pp = tensor_parallel_size, max(1, pipeline_parallel_size)
    ctx = min(context_length or max_model_len, max_model_len)
    draft = None if method in NO_DRAFT_METHODS else draft
    reasons: list[str] = []
    warnings: list[str] = []
    if context_length and context_length > max_model_len:
        warnings.append(f"context_length {context_length} exceeds max_model_len {max_model_len}: vLLM refuses longer "
                        f"requests, so concurrency is given for {max_model_len}-token requests (raise max_model_len)")
    if method not in ("mtp", *NO_DRAFT_METHODS) and (mismatch := head_mismatch(target, draft)):
        reasons.append(mismatch)  # vLLM refuses to start; the weights below are budgeted all the same
    if beyond := beyond_max_context(target, max_model_len):
        reasons.append(f"max_model_len {max_model_len} {beyond}: vLLM refuses to start; lower max_model_len to "
                       f"{target.max_position_embeddings} or less")
    mbt = max_num_batched_tokens or default_scheduler_limits(gpu)[0]
    if tp_spans_nodes(num_gpus, tp):  # one tensor-parallel group over whole nodes: said, not refused
        warnings.append(tp_across_nodes_note(tp, num_gpus, pp))
    elif tp > num_gpus:
        reasons.append(f"tensor_parallel_size {tp} needs {tp} GPUs; the node has {num_gpus}")
    elif tp * pp > num_gpus:  # stages may sit on other nodes (vLLM with Ray): said, not refused
        warnings.append(f"tensor_parallel_size {tp} x pipeline_parallel_size {pp} needs {tp * pp} GPUs; the node has "
                        f"{num_gpus}: the stages beyond it must run on other nodes (vLLM with "
                        "--distributed-executor-backend ray); budgeted per GPU as if they do")
    if target.attention == "gqa" and target.num_kv_heads % tp and tp % target.num_kv_heads:
        warnings.append(f"{target.num_kv_heads} KV heads do not split evenly over TP={tp}; vLLM may refuse it")

    for m, quant in ((target, target_quant), (draft, draft_quant)):
        if m is not None and q.served_precision(m, quant) != quant:
            kind = f"{m.quant_method} ({m.quantization}-class weights, the other layers at 16 bits)" \
                if m.quant_method else m.quantization
            warnings.append(f"{m.name} is a pre-quantized {kind} checkpoint: budgeted at {m.quantization}, "
                            f"as vLLM loads it (not at {quant})")
    if not gpu.is_cpu and target.quantization and quant_method_of(target) == "mxfp4":
        warnings.append(MXFP4_LOADED)
    target_quant, draft_quant = q.served_precision(target, target_quant), q.served_precision(draft, draft_quant)
    tw = _weights(target, target_quant, group_size)
    if method == "mtp":
        dw = _mtp_weights(target, target_quant, group_size)  # inside the target checkpoint, loaded only for MTP
        if dw:
            warnings.append(f"MTP: {target.mtp_layers} layer(s) of {target.name}'s checkpoint, {dw / GiB:.2f} GiB at "
                            f"{target_quant} (embedding and lm_head shared with the target), counted as the draft's "
                            "weights: vLLM loads them only for method mtp")
    else:
        dw = _weights(draft, draft_quant, group_size) if draft else 0
    warnings += [_vision_note(m) for m in (target, draft) if m is not None and m.extra_params > 0]
    warnings += [_defaults_note(m) for m in (target, draft) if m is not None and m.defaulted]
    tw_gpu, dw_gpu = tw / (tp * pp), dw / tp  # vLLM's draft has no pipeline parallelism (SpeculativeConfig)

    n_spec = 0 if method == "none" else num_speculative_tokens  # widens a linear layer's state and each request's slots
    stage = -(-target.num_layers // pp)
    t_layers = promote_chunked(kv_layers(target, tp, kv_cache_dtype, num_layers=stage, num_spec=n_spec))
    # the same server without speculation: a linear layer's states are neither widened nor 2 + k per request
    t_layers0 = promote_chunked(kv_layers(target, tp, kv_cache_dtype, num_layers=stage)) if n_spec else t_layers
    d_layers = draft_kv_layers(method, target, draft, tp, kv_cache_dtype)
    layers = t_layers + d_layers
    asked_block = block_size or default_block_size(gpu, target)
    bs, bs0 = hybrid_block_size(t_layers, asked_block), hybrid_block_size(t_layers0, asked_block)
    reserve = default_reserve_gib(target, gpu, tp, max_num_batched_tokens=mbt) if reserve_gib < 0 else reserve_gib
    mem = gpu.memory_gib
    usable = mem * gpu_memory_utilization if mem else None

    fixed = bool(kv_cache_gib)
    if fixed:
        kv_with = kv_without = int(kv_cache_gib * GiB)
        if mem and (tw_gpu + dw_gpu) / GiB + kv_with / GiB + reserve > mem:
            reasons.append(
                f"weights {(tw_gpu + dw_gpu) / GiB:.2f} GiB + KV {kv_with / GiB:.2f} GiB + reserve {reserve:.2f} GiB "
                f"exceed the {mem:.1f} GiB per {'node' if gpu.is_cpu else 'GPU'}")
    else:
        if usable is None:
            raise ValueError("GPU memory unknown: give gpu_memory_gib")
        kv_with = int(usable * GiB - tw_gpu - dw_gpu - reserve * GiB)
        kv_without = int(usable * GiB - tw_gpu - reserve * GiB)
        if kv_with <= 0:
            reasons.append(
                f"weights {(tw_gpu + dw_gpu) / GiB:.2f} GiB/GPU"
                + (f" (target {tw_gpu / GiB:.2f} + draft {dw_gpu / GiB:.2f})" if dw_gpu else "") + " "
                f"+ reserve {reserve:.2f} GiB exceed the usable {usable:.2f} GiB "
                f"({mem:.1f} GiB x {gpu_memory_utilization}); add GPUs (tensor or pipeline parallel), quantize, or raise "
                "gpu_memory_utilization")

    in_flight = mbt * in_flight_batches(method, pp, vllm_version)
    in_flight0 = mbt * in_flight_batches("none", pp, vllm_version)
    nb, tokens, conc = capacity(layers, max(kv_with, 0), max_model_len, bs, in_flight)
    nb0, tokens0, conc0 = capacity(t_layers0, max(kv_without, 0), max_model_len, bs0, in_flight0)
    if not reasons and conc < 1:
        reasons.append(
            f"one request of max_model_len={max_model_len} needs more KV blocks than fit ({nb} blocks of {bs} tokens); "
            "vLLM refuses to start: lower max_model_len or free memory")
    at_ctx = concurrency_at(layers, nb, min(ctx + n_spec, max_model_len), bs, in_flight)  # slots capped at max_model_len
    at_ctx0 = concurrency_at(t_layers0, nb0, ctx, bs0, in_flight0)
    lost = max(0.0, at_ctx0 - at_ctx)
    lost_pct = 100.0 * lost / at_ctx0 if at_ctx0 else 0.0

    share_draft = dw_gpu / (usable * GiB) if usable else 0.0
    share_target = tw_gpu / (mem * GiB) if mem else 0.0
    rules = [
        RuleCheck(rule="draft_share_of_usable", value=round(share_draft, 4), threshold=draft_share_max,
                  passed=share_draft <= draft_share_max,
                  message=f"draft weights {dw_gpu / GiB:.2f} GiB/GPU are {share_draft:.1%} of usable memory "
                          f"({'within' if share_draft <= draft_share_max else 'above'} the {draft_share_max:.0%} rule)"),
        RuleCheck(rule="target_share_of_vram", value=round(share_target, 4), threshold=target_share_max,
                  passed=share_target <= target_share_max,
                  message=f"target weights {tw_gpu / GiB:.2f} GiB/GPU are {share_target:.1%} of memory"
                          + ((f" (> {target_share_max:.0%}: the draft costs {lost_pct:.1f}% of concurrency; test under load)"
                              if draft or lost_pct else f" (> {target_share_max:.0%}: little room left for the KV cache)")
                             if share_target > target_share_max else f" (<= {target_share_max:.0%})")),
    ]
    warnings += [r.message for r in rules if not r.passed]
    if vllm_version is None and any(layer.kind in ("sliding", "chunked") for layer in layers) \
            and concurrent_batches(method, pp) > 1:
        warnings.append(IN_FLIGHT_NOTE.format(n=concurrent_batches(method, pp), mbt=mbt))
    return MemoryBudget(
        vllm_version=vllm_version,
        target=target.name, draft=draft.name if draft else "", method=method, gpu=gpu.name, num_gpus=num_gpus,
        tensor_parallel_size=tp, pipeline_parallel_size=pp, target_quant=target_quant, draft_quant=draft_quant if draft else "",
        kv_cache_dtype=kv_cache_dtype, num_speculative_tokens=num_speculative_tokens,
        max_model_len=max_model_len, context_length=ctx, block_size=bs, gpu_memory_gib=mem,
        gpu_memory_utilization=gpu_memory_utilization, usable_gib=round(usable, 3) if usable else None,
        reserve_gib=reserve, reserve_source="estimate" if reserve_gib < 0 else "given", max_num_batched_tokens=mbt,
        kv_space_fixed=fixed,
        target_weights_gib=round(tw / GiB, 6), draft_weights_gib=round(dw / GiB, 6),
        target_weights_per_gpu_gib=round(tw_gpu / GiB, 6), draft_weights_per_gpu_gib=round(dw_gpu / GiB, 6),
        kv_bytes_per_token=kv_bytes_per_token(layers), kv_bytes_per_token_target=kv_bytes_per_token(t_layers),
        kv_bytes_per_token_draft=kv_bytes_per_token(d_layers), state_bytes_per_request=state_bytes_per_request(layers),
        kv_cache_gib=round(max(kv_with, 0) / GiB, 4),
        num_blocks=nb, kv_cache_tokens=tokens, max_concurrency=round(conc, 4),
        kv_cache_tokens_without_draft=tokens0, max_concurrency_without_draft=round(conc0, 4),
        lookahead_tokens_per_request=n_spec,
        concurrency_at_context=round(at_ctx, 3), concurrency_at_context_without_draft=round(at_ctx0, 3),
        concurrency_lost_to_draft=round(lost, 3), concurrency_lost_pct=round(lost_pct, 2),
        draft_share_of_usable=share_draft, target_share_of_vram=share_target,
        fits=not reasons, reasons=reasons, warnings=warnings, rules=rules,
    )


TP_SIZES = (2, 4, 8, 16)  # tensor-parallel sizes worth suggesting: a node's 2, 4 or 8 GPUs, or two nodes of 8


def fit_options(b: MemoryBudget, target: ModelSpec, draft: ModelSpec | None, gpu: GPUSpec, **kwargs) -> list[str]:
    """When ``b`` (the budget :func:`budget` gave for ``kwargs``) does not fit for memory: the nearest configurations
    that do, as the parameters to change: the smallest larger tensor_parallel_size that divides the attention heads,
    and, for a checkpoint stored at 16 bits, FP8 or INT4 weights at the same layout. [] when it fits, or when it fails
    for another reason (a context beyond the model's, a draft vLLM would refuse)."""
    memory_bound = any("exceed the usable" in r or "more KV blocks than fit" in r for r in b.reasons)
    if b.fits or gpu.is_cpu or not memory_bound or any("refuses" in r and "KV blocks" not in r for r in b.reasons):
        return []
    kwargs = {**kwargs, "target_quant": b.target_quant, "draft_quant": b.draft_quant or kwargs.get("draft_quant", "bf16")}
    tp, pp = b.tensor_parallel_size, max(1, b.pipeline_parallel_size)
    heads = target.num_attention_heads

    def said(option: str, alt: MemoryBudget) -> str:
        return (f"{option}: {alt.target_weights_per_gpu_gib + alt.draft_weights_per_gpu_gib:.1f} GiB of weights per "
                f"GPU, {alt.kv_cache_tokens:,} KV tokens, {alt.concurrency_at_context:.1f} concurrent "
                f"{alt.context_length}-token requests")

    out, per_node = [], b.num_gpus
    for n in (n for n in TP_SIZES if n > tp and not (heads and heads % n)):
        alt = budget(target, draft, gpu, **{**kwargs, "tensor_parallel_size": n, "num_gpus": max(per_node, n * pp)})
        if alt.fits:
            nodes = f", {-(-n * pp // per_node)} nodes of {per_node}" if per_node >= 2 and n * pp > per_node else ""
            out.append(said(f"fits with tensor_parallel_size {n} ({n * pp} GPUs{nodes})", alt))
            break
    if not target.quantization:  # a 16-bit checkpoint: vLLM quantizes to FP8 at load (--quantization fp8)
        for quant, how in (("fp8", "vLLM's --quantization fp8 at load"), ("int4", "an INT4 (AWQ/GPTQ) checkpoint")):
            if q.BYTES_PER_PARAM[quant] >= q.BYTES_PER_PARAM.get(b.target_quant, 2.0):
                continue
            alt = budget(target, draft, gpu, **{**kwargs, "target_quant": quant})
            if alt.fits:
                out.append(said(f"fits at tensor_parallel_size {tp} with the target at {quant} ({how}; target_quant "
                                f"{quant})", alt))
                break
    return out


def matrix_budgets(target: ModelSpec, draft: ModelSpec | None, gpu: GPUSpec, precisions=q.PRECISIONS,
                   **kwargs) -> list[MemoryBudget]:
    """The budget for every (target precision x draft precision) pair, safest pair first."""
    with_draft = draft is not None and kwargs.get("method", "draft_model") not in NO_DRAFT_METHODS
    served = ((q.served_precision(target, t), q.served_precision(draft, d) if with_draft else d)
              for t, d in q.pairs(precisions, precisions if with_draft else ("bf16",)))
    pairs_ = q.recommendation_order(list(dict.fromkeys(served)))  # a pre-quantized checkpoint has one precision
    return [budget(target, draft, gpu, target_quant=t, draft_quant=d, **kwargs) for t, d in pairs_]


def precision_row(b: MemoryBudget) -> PrecisionRow:
    return PrecisionRow(
        target_quant=b.target_quant, draft_quant=b.draft_quant, target_weights_gib=b.target_weights_gib,
        draft_weights_gib=b.draft_weights_gib, fits=b.fits, kv_cache_tokens=b.kv_cache_tokens,
        max_concurrency=b.max_concurrency, concurrency_at_context=b.concurrency_at_context,
        concurrency_at_context_without_draft=b.concurrency_at_context_without_draft,
        concurrency_lost_to_draft=b.concurrency_lost_to_draft, concurrency_lost_pct=b.concurrency_lost_pct,
        reason="; ".join(b.reasons),
    )


def precision_matrix(target: ModelSpec, draft: ModelSpec | None, gpu: GPUSpec, precisions=q.PRECISIONS,
                     **kwargs) -> list[PrecisionRow]:
    return [precision_row(b) for b in matrix_budgets(target, draft, gpu, precisions, **kwargs)]


def plot_budget(budgets: list[MemoryBudget], path=None):
    """Stacked bar per configuration of one GPU's memory: target weights, draft weights, reserve,
    KV cache, free. Saved as PNG when `path` is given; returns the figure."""
    import matplotlib.pyplot as plt

    parts = ["target weights", "draft weights", "reserve", "KV cache", "free"]
    colors = ["#4c72b0", "#dd8452", "#8c8c8c", "#55a868", "#e5e5e5"]
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(budgets) + 2), 4))
    for i, b in enumerate(budgets):
        total = b.gpu_memory_gib or 0
        used = [b.target_weights_per_gpu_gib, b.draft_weights_per_gpu_gib, b.reserve_gib, b.kv_cache_gib]
        vals = used + [max(0.0, total - sum(used))]
        bottom = 0.0
        for v, c, label in zip(vals, colors, parts, strict=True):
            ax.bar(i, v, bottom=bottom, color=c, label=label if i == 0 else None, edgecolor="white", linewidth=0.5)
            bottom += v
        if not b.fits:
            ax.text(i, bottom, "does not fit", ha="center", va="bottom", fontsize=8, color="#c44e52")
    ax.set_xticks(range(len(budgets)))
    ax.set_xticklabels([f"{b.target_quant}/{b.draft_quant or '-'}" for b in budgets], rotation=45, ha="right")
    ax.set_ylabel(f"GiB per {'node' if budgets and budgets[0].gpu == 'cpu' else 'GPU'}")
    ax.set_xlabel("target / draft precision")
    if budgets:
        ax.set_title(f"Memory budget: {budgets[0].target} + {budgets[0].draft or 'no draft'} on {budgets[0].gpu}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=110)
    return fig


def tp_spans_nodes(num_gpus: int, tp: int) -> bool:
    """A tensor-parallel group over several whole nodes of ``num_gpus`` (vLLM with Ray or --nnodes): TP 16 on nodes
    of 8. Not for nodes of one GPU, where a TP above 1 is more likely a num_gpus left at its default."""
    return tp > num_gpus >= 2 and tp % num_gpus == 0


def tp_across_nodes_note(tp: int, num_gpus: int, pp: int = 1) -> str:
    """A tensor-parallel group over several nodes: what it needs and costs."""
    stages = f" ({tp // num_gpus * pp} nodes for its {pp} pipeline stages)" if pp > 1 else ""
    return (f"tensor_parallel_size {tp} spans {tp // num_gpus} nodes of {num_gpus} GPUs{stages}: every "
            "layer's all-reduces cross the network between nodes, much slower than NVLink within one (vLLM's docs "
            "put tensor parallelism within a node and pipeline stages across nodes); vLLM with "
            "--distributed-executor-backend ray or --nnodes; budgeted per GPU as if they run")


def data_parallel_notes(dp: int, tp: int, pp: int, num_gpus: int) -> list[str]:
    """What data parallelism means for this budget, which is one replica's: each of the ``dp`` ranks holds the
    weights and its own KV cache on tp x pp GPUs, so the node needs tp x pp x dp GPUs and the concurrency figures
    are per rank (vLLM's max_num_seqs too)."""
    if dp <= 1:
        return []
    need = tp * max(1, pp) * dp
    where = (f"the node has {num_gpus}: the ranks beyond it must run on other nodes (vLLM's "
             "--data-parallel-size-local / --data-parallel-address)" if need > num_gpus else f"the node has {num_gpus}")
    return [f"data_parallel_size {dp}: this budget is one rank's (weights and its own KV cache on {tp * max(1, pp)} "
            f"GPU(s)); {dp} ranks need {need} GPUs, {where}; the concurrency figures are per rank, so the server "
            f"holds {dp} times as many"]


def finding(b: MemoryBudget) -> str:
    """One line for the report."""
    if not b.fits:
        return f"Does not fit: {b.reasons[0]}" + (f"; {b.fits_with[0]}" if b.fits_with else "")
    ctx = b.context_length
    stages = f" in {b.pipeline_parallel_size} pipeline stages" if b.pipeline_parallel_size > 1 else ""
    head = (f"{b.target}{' + ' + b.draft if b.draft else ''} on {b.tensor_parallel_size * b.pipeline_parallel_size}x "
            f"{b.gpu}{stages}: "
            f"{b.kv_cache_tokens:,} KV tokens, {b.concurrency_at_context:.1f} concurrent {ctx}-token requests"
            + (f" with the draft vs {b.concurrency_at_context_without_draft:.1f} without ({b.concurrency_lost_pct:.1f}% lost)"
               if b.draft or b.concurrency_lost_pct else f" (method {b.method}: no draft weights)"))
    failed = [r.rule for r in b.rules if not r.passed]
    return head + (f"; rules broken: {', '.join(failed)}" if failed else "; memory rules pass")




DRAFT_METHODS = {"draft_model", "eagle", "eagle3", "medusa"}


def uses_draft(method: str, draft_model: str) -> bool:
    """Whether the method loads a separate draft checkpoint (MTP and n-gram/suffix do not)."""
    return method in DRAFT_METHODS and bool(draft_model)


def unserved_precision_notes(target: ModelSpec, draft: ModelSpec | None, target_quant: str, draft_quant: str,
                             extra_server_args: list[str]) -> list[str]:
    """What the budget assumes and the measured servers will not do: a precision asked for a checkpoint stored at
    another is a what-if here, while the servers of steps 00, 40 and 50 load each checkpoint as stored (vLLM
    quantizes at load only when told: ``--quantization fp8``, online FP8)."""
    from .specconfig import flag_name

    online = "--quantization" in map(flag_name, extra_server_args)
    notes = [q.unknown_quantization(m, quant) for m, quant in ((target, target_quant), (draft, draft_quant))
             if m is not None and m.quantization and m.quantization not in q.BYTES_PER_PARAM]  # kept in 20's result
    for role, m, quant in (("target", target, target_quant), ("draft", draft, draft_quant)):
        if m is None or m.quantization or online or quant in ("bf16", "fp16"):  # pre-quantized: loaded as budgeted
            continue
        fix = ("give a pre-quantized checkpoint" + (", or --quantization fp8 in extra_server_args (vLLM's online FP8)"
                                                     if role == "target" and quant == "fp8" else ""))
        notes.append(f"{role}_quant {quant} budgets {m.name} at {quant}, but the servers this run starts load the "
                     f"checkpoint as stored (bf16): the speed measured is not at {quant}; {fix}")
    return notes


def step_kwargs(p, gpu: GPUSpec) -> dict:
    """budget() keyword arguments from a MemoryParams/QuantizationParams step model. The KV space is
    fixed only on the CPU backend (kv_cache_gib); on GPUs vLLM derives it from gpu_memory_utilization."""
    return dict(
        method=p.method, num_gpus=p.num_gpus, tensor_parallel_size=p.tensor_parallel_size,
        pipeline_parallel_size=p.pipeline_parallel_size, kv_cache_dtype=p.kv_cache_dtype, num_speculative_tokens=p.num_speculative_tokens,
        max_model_len=p.max_model_len, context_length=p.context_length,
        gpu_memory_utilization=p.gpu_memory_utilization, reserve_gib=p.reserve_gib,
        kv_cache_gib=p.kv_cache_gib if gpu.is_cpu else 0.0,
        draft_share_max=p.max_draft_share, target_share_max=p.max_target_share,
    )


# -- predicted vs what vLLM allocated -----------------------------------------------------------
def _rel(predicted: float | None, logged: float | None) -> float | None:
    if predicted is None or logged is None or not logged:
        return None
    return round((predicted - logged) / logged, 4)


def check_against_log(b: MemoryBudget, log: StartupLog, *, source: str = "", with_draft: bool = True) -> MemoryLogCheck:
    """The budget's prediction next to what one vLLM server logged at start-up on this node.

    ``with_draft``: the log is the speculative server's (its pool holds the draft's KV layers too);
    False compares with the budget's no-draft figures (the baseline server)."""
    tokens = b.kv_cache_tokens if with_draft else b.kv_cache_tokens_without_draft
    conc = b.max_concurrency if with_draft else b.max_concurrency_without_draft
    kv_gib = b.kv_cache_gib
    if not with_draft and not b.kv_space_fixed:
        kv_gib = round(b.kv_cache_gib + b.draft_weights_per_gpu_gib, 4)
    weights = b.target_weights_per_gpu_gib + (b.draft_weights_per_gpu_gib if with_draft else 0.0)
    same_len = log.max_concurrency_context in (None, b.max_model_len)
    notes = [] if same_len else [
        f"the server ran max_model_len={log.max_concurrency_context}, the budget {b.max_model_len}: "
        "compare KV tokens, not concurrency"]
    device = (log.kv_cache_device or "").upper()
    if device and (device == "CPU") != (b.gpu == "cpu"):
        notes.append(f"the log is from a {device} server, the budget is for {b.gpu}: they describe different "
                     "machines (give the log of a server on the budgeted hardware)")
    return MemoryLogCheck(
        source=source, vllm_version=log.vllm_version, with_draft=with_draft,
        predicted_kv_cache_tokens=tokens, logged_kv_cache_tokens=log.kv_cache_tokens,
        kv_cache_tokens_error=_rel(tokens, log.kv_cache_tokens),
        predicted_max_concurrency=conc, logged_max_concurrency=log.max_concurrency if same_len else None,
        max_concurrency_error=_rel(conc, log.max_concurrency) if same_len else None,
        predicted_kv_cache_gib=kv_gib, logged_kv_cache_gib=log.available_kv_cache_gib,
        kv_cache_gib_error=_rel(kv_gib, log.available_kv_cache_gib),
        predicted_weights_gib=round(weights, 4), logged_weights_gib=log.model_weights_gib,
        weights_error=_rel(weights, log.model_weights_gib),
        predicted_reserve_gib=b.reserve_gib, cuda_graph_gib=log.cuda_graph_gib, notes=notes + log.warnings,
    )


def allocated_from_logs(b: MemoryBudget, log_dir) -> list[MemoryLogCheck]:
    """:func:`check_against_log` for every server log of a run (``server-logs/*.log``) that reached
    its KV-cache line: ``spec*`` logs against the budget with the draft, ``baseline*`` without."""
    from pathlib import Path

    from . import startup_log

    out = []
    for path in sorted(Path(log_dir).glob("*.log")) if log_dir and Path(log_dir).is_dir() else []:
        log = startup_log.parse_file(path, block_size=b.block_size)
        if log.kv_cache_tokens is None:
            continue
        out.append(check_against_log(b, log, source=path.name, with_draft=not path.name.startswith("baseline")))
    return out
