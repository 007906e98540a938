"""Predict on a GPU from catalog facts alone: the target's and draft's step models from their architectures and
the accelerator's figures, plus the serving engine's per-step costs (``playbook predict`` without measurements)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .errors import ParameterError
from .predict import DEFAULT_BATCH_SIZES, LOOKUP_METHODS, predict
from .quantization import served_precision
from .schemas.predict import KVFit, Prediction, StepConstants, StepTimeModel
from .step_model import H100_SGLANG, H100_VLLM_V1, roofline_step_model

# The serving engine whose constants a catalog prediction uses (playbook predict --engine).
ENGINES: dict[str, StepConstants] = {"vllm": H100_VLLM_V1, "sglang": H100_SGLANG}
ENGINE_NAMES = {"vllm": "vLLM V1", "sglang": "SGLang (EAGLE without the overlap scheduler)"}
# Said beside every vLLM EAGLE prediction: published EAGLE batch curves (the EAGLE-3 paper's Table 3) are SGLang's,
# and fall below 1.0 from batch ~24 where vLLM's own (SpecDecode-Bench) lose ~4% from batch 1 to 32.
OTHER_ENGINE_NOTE = ("vLLM's constants: SGLang up to v0.5.6 runs EAGLE without its overlap scheduler and loses from "
                     "batch ~24 (EAGLE-3 paper, Table 3); `--engine sglang` predicts that engine")


def _is_eagle3(spec) -> bool:
    return any("eagle3" in a.lower() for a in spec.architectures) or "eagle3" in spec.name.lower()


def _draft_vocab(spec) -> int:
    """An EAGLE-3 head's own (reduced) vocabulary, from its config.json's draft_vocab_size."""
    if spec.path:
        cfg = Path(spec.path) / "config.json"
        if cfg.exists():
            try:
                return int(json.loads(cfg.read_text()).get("draft_vocab_size") or spec.vocab_size)
            except (ValueError, json.JSONDecodeError):
                pass
    return spec.vocab_size


def _tflops(gpu, precision: str) -> float:
    fp8 = precision in ("fp8", "int8") and gpu.fp8_tflops
    return (gpu.fp8_tflops if fp8 else gpu.bf16_tflops) or 0.0


def pass_facts(spec, precision: str = "bf16") -> dict:
    """What one forward pass of a model reads and computes, from its architecture.

    ``read_bytes``: weights streamed every pass (the embedding table is gathered, not streamed,
    unless tied to the lm_head; routed experts are counted apart; a vision tower, ``extra_params``,
    runs on images only, and MTP layers only as the draft of method mtp: neither is streamed);
    ``active_params``: parameters multiplied per token; MoE: ``moe_layers`` (``num_layers -
    first_k_dense``: Llama-4 Maverick's every other layer), ``num_experts``, ``experts_per_token``,
    ``expert_bytes`` (one routed expert of one layer; shared experts, Qwen2-MoE's 8 routed widths
    wide, are streamed every pass). An EAGLE/EAGLE-3 head (config.json only is enough) counts its
    decoder layers, its fc over 2 (EAGLE) or 3 (EAGLE-3) target hidden states and its lm_head over
    the (draft) vocabulary. A pre-quantized local checkpoint uses the tensor bytes of its own
    safetensors headers (or index, less its MTP module); the linear layers it does not quantize
    (gpt-oss's MXFP4 attention) are priced at 16 bits. MXFP4 experts (4 bits plus an 8-bit scale
    per 32) weigh what int4 with group 128 does: 0.53125 bytes per parameter.
    """
    from .models import param_breakdown
    from .quantization import linear_bytes_per_param, weight_bytes

    precision = served_precision(spec, precision)
    lin = linear_bytes_per_param(precision)
    h = spec.hidden_size
    if spec.eagle_head:
        hd, nh, nkv = spec.head_dim, spec.num_attention_heads, spec.num_kv_heads
        layer = 2 * h * nh * hd + 2 * h * nkv * hd + 3 * h * spec.intermediate_size
        eagle3 = _is_eagle3(spec)
        extra = h * (nh + 2 * nkv) * hd if eagle3 else 0  # EAGLE-3's first layer reads [embedding, hidden]
        fc = (3 if eagle3 else 2) * h * h
        head = _draft_vocab(spec) * h if eagle3 else spec.vocab_size * h
        linear = spec.num_layers * layer + extra + fc
        return {"read_bytes": linear * lin + head * 2, "active_params": linear + head,
                "moe_layers": 0, "num_experts": 0, "experts_per_token": 0, "expert_bytes": 0.0}
    bd = param_breakdown(spec)
    total_bytes = float(spec.weight_bytes_on_disk) if spec.quantization and spec.weight_bytes_on_disk \
        else float(weight_bytes(bd, precision))
    total_params = sum(bd.values())
    emb = 0 if spec.tie_word_embeddings else bd["embedding"]  # a tied table is the lm_head: streamed
    vision = int(spec.extra_params * 1e9)  # 16-bit, in the weights, read only when an image is encoded
    moe_layers = spec.num_layers - spec.first_k_dense if spec.is_moe else 0
    expert_params = 3 * h * spec.moe_intermediate_size if moe_layers else 0
    routed = moe_layers * spec.num_experts * expert_params
    active = total_params - emb - vision - routed + moe_layers * spec.num_experts_per_tok * expert_params
    return {
        "read_bytes": max(total_bytes - emb * 2 - vision * 2 - routed * lin, 0.0), "active_params": active,
        "moe_layers": moe_layers, "num_experts": spec.num_experts if moe_layers else 0,
        "experts_per_token": spec.num_experts_per_tok if moe_layers else 0, "expert_bytes": expert_params * lin,
    }


def mtp_pass_facts(spec, precision: str = "bf16") -> dict:
    """One pass of a target's own MTP module(s), what vLLM's method 'mtp' drafts with: per module one decoder layer
    like the target's (an MoE layer when the target is MoE), the projection of [embedding, hidden] to the hidden size
    (2h x h) and the shared lm_head, streamed again (DeepSeek-V3: num_nextn_predict_layers = 1, a 14B module of which
    one MoE layer's active share is read per pass). :func:`pass_facts`' fields."""
    from .quantization import linear_bytes_per_param

    f = pass_facts(spec, precision)
    h, n, m = spec.hidden_size, spec.num_layers, max(1, spec.mtp_layers)
    head, proj = spec.vocab_size * h, 2 * h * h
    layer_bytes, layer_params = (f["read_bytes"] - 2 * head) / n, (f["active_params"] - head) / n
    lin = linear_bytes_per_param(served_precision(spec, precision))
    return {**f, "read_bytes": m * (layer_bytes + proj * lin) + 2 * head,
            "active_params": m * (layer_params + proj) + head, "moe_layers": m if f["moe_layers"] else 0}


def roofline_from_specs(spec, gpu, *, name: str, tp: int = 1, precision: str = "bf16", kv_cache_dtype: str = "auto",
                        overhead_ms: float | None = None, draft: bool = False, mtp: bool = False,
                        constants: StepConstants = H100_VLLM_V1) -> StepTimeModel:
    """The additive step model of a model (``ModelSpec``) on an accelerator (``GPUSpec``) at TP ``tp``.

    ``draft`` uses the cheaper fixed cost of a draft pass inside a speculative step; ``mtp`` models the pass of
    ``spec``'s own MTP module(s) instead of the whole model (:func:`mtp_pass_facts`).
    """
    from .memory import kv_bytes_per_token, kv_layers

    f = mtp_pass_facts(spec, precision) if mtp else pass_facts(spec, precision)
    layers = max(1, spec.mtp_layers) if mtp else spec.num_layers
    precision = served_precision(spec, precision)
    qk = (spec.qk_nope_head_dim + spec.qk_rope_head_dim + spec.v_head_dim) if spec.attention == "mla" \
        else 2 * spec.head_dim
    cache = kv_layers(spec, tp, kv_cache_dtype, num_layers=layers)
    attention_layers = sum(layer.kind != "linear" for layer in cache)  # Gated DeltaNet layers keep a state instead
    return roofline_step_model(
        name, num_params=f["active_params"], weight_bytes=f["read_bytes"],
        kv_bytes_per_token=kv_bytes_per_token(cache) * tp,
        # each pass reads a sequence's recurrent state and writes it back, on every TP rank
        state_bytes_per_sequence=2 * sum(layer.state_bytes for layer in cache) * tp,
        bandwidth_gbs=gpu.bandwidth_gbs or 0, tflops=_tflops(gpu, precision), num_devices=tp,
        num_layers=layers, hidden_size=spec.hidden_size,
        attention_flops_per_pair=2 * spec.num_attention_heads * qk * attention_layers,
        interconnect_gbs=getattr(gpu, "interconnect_gbs", None),
        moe_layers=f["moe_layers"], num_experts=f["num_experts"], experts_per_token=f["experts_per_token"],
        expert_bytes=f["expert_bytes"],
        fixed_ms=(constants.draft_forward_fixed_ms + (constants.eagle3_forward_extra_ms if _is_eagle3(spec) else 0.0))
        if draft else constants.forward_fixed_ms,
        constants=constants, overhead_ms=overhead_ms,
    )


def draft_step_model(target_spec, draft_spec, gpu, method: str, *, tp: int = 1, draft_tp: int | None = None,
                     precision: str = "bf16", draft_precision: str = "bf16",
                     constants: StepConstants = H100_VLLM_V1) -> StepTimeModel | None:
    """The draft pass's step model for ``method``: the target's own MTP layers (at the target's TP and precision),
    the draft model or head, or None for a lookup (n-gram, suffix) or no draft."""
    if method == "mtp":
        return roofline_from_specs(target_spec, gpu, name="draft", tp=tp, precision=precision, draft=True,
                                   mtp=True, constants=constants)
    if draft_spec is None or method in LOOKUP_METHODS:
        return None
    return roofline_from_specs(draft_spec, gpu, name="draft", tp=draft_tp or tp, precision=draft_precision,
                               draft=True, constants=constants)


def default_method(draft_spec) -> str:
    """vLLM's method for a draft: 'eagle3'/'eagle' for an EAGLE head, else 'draft_model' ('ngram' without)."""
    if draft_spec is None:
        return "ngram"
    if draft_spec.eagle_head:
        return "eagle3" if _is_eagle3(draft_spec) else "eagle"
    return "draft_model"


def catalog_prediction(target_spec, draft_spec, gpu, *, num_speculative_tokens: int, tp: int = 1,
                       draft_tp: int | None = None, precision: str = "bf16", draft_precision: str = "bf16",
                       method: str = "", acceptance: float | None = None, acceptance_length: float | None = None,
                       acceptance_per_position: Sequence[float] = (), batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
                       context_tokens: float = 1024, verify_tokens_per_seq: int | None = None, tree_width: int = 1,
                       engine: str = "vllm", constants: StepConstants | None = None,
                       proposal_rate: float = 1.0) -> Prediction:
    """Predict on a GPU from catalog facts alone: target and draft step models plus the serving
    ``engine``'s per-step costs (:data:`ENGINES`; vLLM V1 by default, see :data:`H100_VLLM_V1`);
    ``constants`` replaces the engine's; ``proposal_rate`` as in :func:`predict`."""
    if engine not in ENGINES:
        raise ParameterError(f"unknown serving engine '{engine}'", f"give one of: {', '.join(ENGINES)}")
    constants = constants or ENGINES[engine]
    method = method or default_method(draft_spec)
    if not gpu.bandwidth_gbs or not gpu.bf16_tflops:
        raise ParameterError(f"'{gpu.name}' has no bandwidth/compute figures in the catalog",
                             "give measured step times: --target-step-ms (TPOT at concurrency 1) and --per-token-ms")
    t_step = roofline_from_specs(target_spec, gpu, name="target", tp=tp, precision=precision, constants=constants)
    d_step = draft_step_model(target_spec, draft_spec, gpu, method, tp=tp, draft_tp=draft_tp, precision=precision,
                              draft_precision=draft_precision, constants=constants)
    pred = predict(
        target_step=t_step, draft_step=d_step, num_speculative_tokens=num_speculative_tokens, acceptance=acceptance,
        acceptance_length=acceptance_length, acceptance_per_position=acceptance_per_position,
        batch_sizes=batch_sizes, context_tokens=context_tokens, target=target_spec.name,
        draft=draft_spec.name if draft_spec is not None else "", method=method,
        engine_step_ms=constants.engine_step_ms, spec_step_ms=constants.spec_step_ms,
        spec_seq_ms=constants.spec_seq_ms, verify_tokens_per_seq=verify_tokens_per_seq, tree_width=tree_width,
        baseline_engine_step_ms=0.0 if constants.baseline_overlaps_engine_step else None, proposal_rate=proposal_rate,
    )
    pred.engine = engine
    pred.assumptions.append(f"{gpu.name}, TP {tp}: engine and kernel constants of {ENGINE_NAMES[engine]} on H100 "
                            "(helpers/step_model.py)")
    if engine == "vllm" and method in ("eagle", "eagle3"):
        pred.assumptions.append(OTHER_ENGINE_NOTE)
    if target_spec.num_experts:
        pred.assumptions.append(MOE_NOTE.format(e=target_spec.num_experts))
    if engine == "vllm" and method in ASYNC_OFF_METHODS:
        pred.assumptions.append(ASYNC_OFF_NOTE.format(method=method, engine_ms=constants.engine_step_ms))
    if method == "mtp" and not acceptance_per_position and (layers := max(1, target_spec.mtp_layers)) < max(
            num_speculative_tokens, *pred.optimal_k_by_batch_size.values()):
        pred.assumptions.append(MTP_REUSE_NOTE.format(name=target_spec.name, n=layers))
    return pred


# vLLM drafts past a checkpoint's MTP layers by running the last one again (vllm-project/vllm#13626), whose later
# positions are accepted much less often than one per-token rate says: DeepSeek V4 with k=2 (vllm#41044, per-position
# acceptance at concurrency 1-8) 75.7-78.6% at position 0 and 35.5-38.1% at position 1, where the rate measured at
# k=1 (the first position's) carried to k=2 puts position 1 at 0.77^2 = 59%. A model trained with as many MTP layers
# as k decays slower (vllm#48892, eight layers at k=8: 76, 62, 51, 42, 36, 31, 27, 24%).
MTP_REUSE_NOTE = ("{name} has {n} MTP layer(s): a k above {n} (the one given or the best k shown) drafts the later "
                  "positions with the last layer again, accepted about half as often as the first (DeepSeek V4 with "
                  "k=2: 77% then 38%, vllm-project/vllm#41044), where this prediction assumes one rate for every "
                  "position: give --acceptance-per-position measured at that k (vLLM logs it), or stay at k={n}")


# Said beside every MoE prediction: its curve can rise with the batch (step_model.distinct_experts says why and
# where that was and was not seen).
MOE_NOTE = ("MoE ({e} experts): verification touches more experts than a decode step at small batches and hardly "
            "more once the batch alone touches most of them, so the gain can rise with the batch (MoESD, arXiv "
            "2505.19645); published vLLM curves fell from 1 to 16 (Kimi-K2.6, GB200, predicted within 2%) and on "
            "4x MI355X from 4 to 64 (Kimi-K2.5 1.90x to 1.69x, MiniMax-M2.5 1.79x to 1.38x) where this predicts a "
            "rise from 16 to 32: measure before relying on a rise")


# vLLM turns async scheduling on by default (v0.14, PR 31998, with speculative decoding) and off again for
# speculative methods it does not support: the installed vLLM 0.32's vllm/config/vllm.py keeps it for EAGLE, MTP,
# draft_model, ngram_gpu, DFlash and DSpark and logs "Async scheduling not supported with %s-based speculative
# decoding and will be disabled" for the others. The H100 constants above come from vLLM 0.10.1 (synchronous
# scheduling in both TPOTs); not modelled, but said with the prediction.
ASYNC_OFF_METHODS = ("ngram", "suffix")
ASYNC_OFF_NOTE = ("vLLM >= 0.14 schedules asynchronously without speculation but not with {method} (vllm/config/"
                  "vllm.py), so the baseline may hide up to {engine_ms:.1f} ms per step of host work that {method} "
                  "pays: its gain can be smaller than shown (the constants come from vLLM 0.10.1, synchronous in both)")


def check_kv_fit(pred: Prediction, target_spec, draft_spec, gpu, *, tp: int = 1, precision: str = "bf16",
                 draft_precision: str = "bf16", kv_cache_dtype: str = "auto") -> Prediction:
    """Mark the batch sizes whose sequences the speculative server's KV cache cannot hold at the prediction's
    context (:func:`memory.budget`, what ``playbook memory`` says): vLLM queues the rest, so the predicted speedup
    there is not reachable. A GPU without a memory figure, or no context, leaves the prediction unchecked."""
    from .memory import budget

    ctx, k = int(round(pred.context_tokens)), pred.num_speculative_tokens
    if gpu.is_cpu or not gpu.memory_gib or ctx < 1:
        return pred
    b = budget(target_spec, draft_spec, gpu, method=pred.method, num_gpus=tp, tensor_parallel_size=tp,
               target_quant=precision, draft_quant=draft_precision, kv_cache_dtype=kv_cache_dtype,
               num_speculative_tokens=k, max_model_len=ctx + k, context_length=ctx)
    spec, base = (b.concurrency_at_context, b.concurrency_at_context_without_draft) if b.fits else (0.0, 0.0)
    where = f"{gpu.name}, TP {tp}, {precision} weights"
    fit = KVFit(context_tokens=ctx, max_batch_spec=spec, max_batch_baseline=base, kv_cache_gib_spec=b.kv_cache_gib,
                where=where, reasons=[] if b.fits else list(b.reasons))
    for pt in pred.points:
        pt.fits_kv_cache = pt.batch_size <= spec
    over = [pt.batch_size for pt in pred.points if not pt.fits_kv_cache]
    if not b.fits:
        fit.note = f"the configuration does not fit on {where}: {'; '.join(b.reasons)}"
    elif over:
        fit.note = (f"at {ctx} tokens per sequence the KV cache ({b.kv_cache_gib:.1f} GiB per GPU on {where}) holds "
                    f"{int(spec)} sequences with speculation ({int(base)} without; `playbook memory`): vLLM queues the "
                    f"rest, so the speedup at batch {', '.join(map(str, over))} is not reachable as predicted")
    pred.kv_fit = fit
    if fit.note:
        pred.assumptions.append(fit.note)
    return pred
