"""The additive step-time model: what one forward pass costs, from catalog facts or fitted to measured steps.

Measured GPU steps are additive (a public fit of vLLM on H100, see :data:`H100_VLLM_V1`): a fixed cost, the
weights over the bandwidth, the KV cache read, a cost per batched token, attention over the context, TP
all-reduces, and for MoE the distinct experts the batch touches. :class:`StepTimeModel` holds those terms; on a
CPU the per-token term dominates.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from .errors import ParameterError
from .schemas.predict import StepConstants, StepTimeModel

# Measured decode steps are additive, not a roofline max(): a public fit of vLLM 0.10.1 on an
# H100 serving Llama-3.1-8B (SpecDecode-Bench simulator, github.com/SpecDecode-Bench/simulator,
# predictor.py, class Llama8BH100) gives step = 5.886 ms + 0.0210 ms per batched token
# + 3.93e-5 ms per KV-cache token in the batch, + 1.207 ms per engine step. The defaults below
# rebuild those numbers from the model's and the GPU's catalog facts, so they carry over to other
# models and GPUs; each constant names the measurement it comes from.
#
# The same simulator's draft cost, `draft_c_fixed` = 2.135 ms (36% of the 8B target's 5.886 ms), is the
# cost of a whole proposal, not of one draft forward: simulator.py calls predict_draft_time once per
# step ("proposal happens once per step") with k=3, i.e. ~0.71 ms per draft forward, what vLLM issue
# 20780 measured per drafted token. Its per-token terms are small (8.4e-4 ms per speculative token,
# 2.4e-6 ms per KV token), so with these constants a chain of k=3 at mean acceptance length 2.3 on an
# 8B H100 loses only from batch ~150-200: verification's extra b*k tokens at 0.021 ms each must outgrow
# (AL-1) saved steps of ~7 ms. The paper's own measurement agrees (speedup -4.3% from batch 1 to 32,
# benchmarks/predictor/published.yaml). Losses in the twenties are published for other engines and GPUs:
# the EAGLE-3 paper (arXiv 2503.01840, Table 3) measured EAGLE-1 with a chain of 3 on SGLang v0.4.4 on one
# H100 at 0.93x from batch 24, and (Table 5) on vLLM on an RTX 3090 at 0.93x from batch 32. The second this
# model reproduces (compute-bound: 71 TFLOPs for 936 GB/s); the first needs SGLang's own host costs under
# EAGLE (:data:`H100_SGLANG`): it lost 27% between batch 4 and 16 where the roofline sees no reason to, and
# vLLM on the same H100 did not (SpecDecode-Bench above). SGLang trees verify
# speculative_num_draft_tokens per sequence and draft topk per pass: predict(verify_tokens_per_seq=, tree_width=).
H100_VLLM_V1 = StepConstants(
    # SpecDecode-Bench predictor.py `overhead_constant_per_step` = 1.2068e-3 s; simulator.py adds it
    # to every decode step of the baseline as well as of speculation (simulate_org_batch, simulate_sd_batch).
    engine_step_ms=1.207,
    # vLLM issue 20780 (H100, Llama-3.1-8B, batch 1, MT-bench): EAGLE-1 TPOT x acceptance length
    # at k=2..7 minus the verification pass grows by ~0.71 ms per drafted token from an intercept
    # of ~0.6 ms at k=0: the per-speculative-step cost (rejection sampler, proposer bookkeeping).
    spec_step_ms=0.6,
    # Later vLLM schedules asynchronously with speculation; the published gains are small: PR 25872 (L20, Llama-3.1-8B,
    # EAGLE-3 k=4, concurrency 1) mean TPOT 9.91 -> 9.57 ms (3.4%), PR 32951 "zero-bubble" (8x H100, DeepSeek-V3.2,
    # MTP k=1) 9.19 -> 8.90 ms (3%). So these 0.10.1 constants stand for current vLLM within a few percent.
    # SpecDecode-Bench `target_c_fixed` = 5.886 ms for Llama-3.1-8B on H100, less 15.0 GB of
    # non-embedding weights streamed at 90% of 3.35 TB/s (4.98 ms) and 32 x per_layer_ms.
    forward_fixed_ms=0.5,
    # vLLM issue 20780 again: one EAGLE-1 draft forward (1 layer + 128k-vocab lm_head, 1.55 GB)
    # costs ~0.71 ms at batch 1 = this + one layer + 0.52 ms of weights.
    draft_forward_fixed_ms=0.18,
    # vLLM issue 20780: an EAGLE-3 head's draft pass costs ~1.0 ms per drafted token against 0.71 ms
    # for EAGLE-1, though it streams fewer bytes (0.9 vs 1.55 GB): fusing 3 target hidden states and
    # mapping the draft vocabulary add ~0.5 ms per pass.
    eagle3_forward_extra_ms=0.5,
    # Not measured on its own: the share of the 8B fixed cost that grows with depth (~10 kernels per
    # decoder layer replayed from a CUDA graph at ~1.2 us each). It is what makes a deep draft model
    # cost more per pass than a 1-layer EAGLE head of similar bytes.
    per_layer_ms=0.012,
    # Qwen3-30B-A3B's batch-1 decode without speculation on H100s (SGLang of December 2025): 222.47 tok/s
    # (4.49 ms) at TP2 (sgl-project/SpecForge#339) and 218.89 tok/s (4.57 ms) at TP4 (Tencent/AngelSlim#163),
    # where the rest of this model accounts for 2.68 and 2.74 ms: the 48 MoE layers' routing, permutation
    # and grouped-GEMM launches take ~0.038 ms each at both TPs (SGLang's figure, used for vLLM too). An
    # older SGLang (v0.4.9, July 2025; SafeAILab/EAGLE issues 203 and 211) decoded it at 147 tok/s on one
    # H200, ~0.07 ms per layer; that figure predicted the two H100 baselines 33% too slow and their losses
    # under EAGLE-3 as gains (benchmarks/predictor/published.yaml, 2026-12-05).
    moe_layer_ms=0.038,
    # decode GEMVs reach ~90% of HBM peak; with forward_fixed_ms this reproduces the 5.886 ms above.
    memory_efficiency=0.9,
    # SpecDecode-Bench `target_c_kv` = 3.93e-5 ms per KV token = Llama-3.1-8B's 128 KiB per token
    # over 3.35 TB/s: the KV read runs at full bandwidth.
    kv_efficiency=1.0,
    # SpecDecode-Bench `target_c_compute` = 0.0210 ms per batched token = 2 x 7.5e9 FLOPs at 72%
    # of the H100's 989 dense BF16 TFLOPs.
    compute_efficiency=0.72,
    # Issue 15's measured Llama-3.1-70B TP8 baseline step on H100 (11.3 ms) leaves ~2.9 ms for 160
    # all-reduces: ~18 us each at TP8, i.e. ~6 us per doubling (NCCL/custom all-reduce latency).
    allreduce_ms_per_log2_tp=0.006,
    # SpecDecode-Bench predictor.py: 8.4e-4 ms per speculative token of the draft's proposal, i.e.
    # ~0.003 ms per sequence at k=3: vLLM V1's per-sequence speculative work is negligible.
    spec_seq_ms=0.0,
)


# SGLang on H100 (the EAGLE-3 paper's Table 3 engine, v0.4.4, arXiv 2503.01840 section 4.3): the same kernels
# and GPU, but its host work is exposed only under speculation. SGLang overlaps the scheduler's host work with
# the GPU (its overlap scheduler) and turns that off for EAGLE: server_args.py logs "Overlap scheduler is
# disabled because of using eagle speculative decoding" (v0.4.x to v0.5.6, unless SGLANG_ENABLE_SPEC_V2). So
# the baseline TPOT hides the engine step and the speculative one pays it, plus host work that grows with the
# batch (per-request result processing): spec_seq_ms. EAGLE-3 with a chain of 3 falls from 1.81x at batch 2 to
# 1.32x at 32, where vLLM's constants predict 1.63x; least squares over that EAGLE-3 series (acceptance anchored
# at batch 2, engine step kept at vLLM's 1.207 ms) gives 0.15 ms per sequence per speculative step (median
# error 2.2%). Held out: the same paper's EAGLE-1 series on that engine is predicted with median error 2.9%
# and a loss from batch 28 (measured: from 24), and Qwen3-30B-A3B under EAGLE-3 (SGLang of December 2025) as a
# loss in all 8 configurations on two H100s (SpecForge#339) and 5 of 6 on four (AngelSlim#163; the sixth measured
# 0.994x, predicted 1.03x), with moe_layer_ms set from their baselines (benchmarks/predictor/published.py, `_sglang`).
H100_SGLANG = H100_VLLM_V1.model_copy(update={"spec_seq_ms": 0.15, "baseline_overlaps_engine_step": True})


def distinct_experts(tokens: float, num_experts: int, per_token: int) -> float:
    """Expected routed experts a pass over ``tokens`` tokens touches in one layer: E(1 - (1 - k/E)^T).

    So verification costs a MoE most at small batches (b(k+1) tokens touch many more experts than b) and little
    once the batch alone touches most experts: the gain can rise with the batch before compute ends it, as MoESD
    (arXiv 2505.19645, NeurIPS 2025: "under medium batch sizes, MoE surprisingly benefits more from SD than dense
    models") and Cohere (blog, 2026-04-21, "Why MoE models get more from speculative decoding") measured.
    Independent routing is an upper bound: consecutive tokens of one sequence share experts (Cohere, as quoted
    secondhand: ~20% fewer distinct experts for 4 verified tokens; not applied, not read in the source). Checked in
    benchmarks/predictor/published.yaml: Kimi-K2.6 on GB200 to concurrency 16 within 2%; on 4x MI355X MiniMax-M2.5
    (expert parallel) and Kimi-K2.5 (TP4) fell from 4 to 64 where this predicts a rise from 16 to 32 (errors up to 88%
    and 42% at 64)."""
    if num_experts <= 0 or per_token <= 0 or tokens <= 0:
        return 0.0
    return num_experts * (1 - (1 - per_token / num_experts) ** tokens)


def step_ms(model: StepTimeModel, tokens: float, kv_tokens: float = 0.0, seqs: float | None = None) -> float:
    """Time of one forward pass over ``tokens`` tokens of ``seqs`` sequences reading ``kv_tokens``
    tokens of KV cache (``seqs`` defaults to ``tokens``: one token per sequence, a decode step)."""
    seqs = tokens if seqs is None else max(seqs, 1e-9)
    t = model.overhead_ms + model.weights_ms + kv_tokens * model.kv_ms_per_token + tokens * model.compute_ms_per_token
    t += model.attention_ms_per_pair * kv_tokens * tokens / seqs if tokens else 0.0
    t += seqs * model.state_ms_per_sequence
    if model.moe_layers and model.expert_ms:
        t += model.moe_layers * distinct_experts(tokens, model.num_experts, model.experts_per_token) * model.expert_ms
    return t


def roofline_step_model(
    name: str,
    *,
    num_params: float,
    weight_bytes: float,
    kv_bytes_per_token: float,
    bandwidth_gbs: float,
    tflops: float,
    num_devices: int = 1,
    num_layers: int = 0,
    hidden_size: int = 0,
    attention_flops_per_pair: float = 0.0,
    interconnect_gbs: float | None = None,
    moe_layers: int = 0,
    num_experts: int = 0,
    experts_per_token: int = 0,
    expert_bytes: float = 0.0,
    state_bytes_per_sequence: float = 0.0,
    fixed_ms: float | None = None,
    constants: StepConstants = H100_VLLM_V1,
    overhead_ms: float | None = None,
) -> StepTimeModel:
    """An additive step model from catalog numbers.

    - ``weight_bytes`` (read every pass, routed experts excluded) and ``kv_bytes_per_token`` over
      the bandwidth of ``num_devices`` tensor-parallel GPUs;
    - ``num_params`` active parameters: 2 FLOPs each per token, at the achieved share of peak;
    - per pass: a fixed cost, kernel launches per layer, MoE routing per MoE layer, and two
      all-reduces per layer under TP (latency growing with log2(TP), bytes per token over NVLink);
    - MoE: each of ``moe_layers`` layers streams every distinct expert the pass's tokens touch;
    - linear-attention layers read and write each sequence's recurrent state (``state_bytes_per_sequence``) per pass.
    """
    if bandwidth_gbs <= 0 or tflops <= 0:
        raise ParameterError(
            f"the hardware for {name} has no bandwidth/compute figures ({bandwidth_gbs} GB/s, {tflops} TFLOPs)",
            "pick a GPU from the catalog (--gpu) or give measured step times",
        )
    c = constants
    tp = max(int(num_devices), 1)
    bw = bandwidth_gbs * 1e9 * tp  # bytes/s over the TP group
    fl = tflops * 1e12 * c.compute_efficiency * tp  # FLOP/s
    allreduces = 2 * num_layers if tp > 1 else 0
    comm_latency = allreduces * c.allreduce_ms_per_log2_tp * math.log2(tp)
    link = (interconnect_gbs or 0) * 1e9
    comm_per_token = (allreduces * 2 * (tp - 1) / tp * hidden_size * 2 / link * 1e3) if tp > 1 and link else 0.0
    fixed = c.forward_fixed_ms if fixed_ms is None else fixed_ms
    overhead = fixed + num_layers * c.per_layer_ms + moe_layers * c.moe_layer_ms + comm_latency
    if overhead_ms is not None:  # an explicit fixed cost replaces the launch model
        overhead = overhead_ms + comm_latency
    return StepTimeModel(
        name=name,
        source="roofline",
        overhead_ms=overhead,
        weights_ms=weight_bytes / (bw * c.memory_efficiency) * 1e3,
        kv_ms_per_token=kv_bytes_per_token / (bw * c.kv_efficiency) * 1e3,
        compute_ms_per_token=2 * num_params / fl * 1e3 + comm_per_token,
        attention_ms_per_pair=attention_flops_per_pair / fl * 1e3,
        state_ms_per_sequence=state_bytes_per_sequence / (bw * c.kv_efficiency) * 1e3,
        moe_layers=moe_layers, num_experts=num_experts, experts_per_token=experts_per_token,
        expert_ms=expert_bytes / (bw * c.memory_efficiency) * 1e3 if moe_layers else 0.0,
    )


def fit_step_model(name: str, points: Sequence[tuple[float, float]]) -> StepTimeModel:
    """Fit ``t = overhead + tokens * compute`` to measured (tokens per pass, ms) points.

    This is the compute-bound branch of the roofline, the one a CPU lives on: verification cost
    grows with the tokens verified. Theil-Sen (median of pairwise slopes, median intercept) so a
    few stalled requests on a busy machine do not drag the line; both coefficients kept >= 0.
    """
    pts = [(float(n), float(t)) for n, t in points if t > 0 and n > 0]
    if not pts:
        raise ParameterError(f"no measured step times to fit for {name}", "measure TPOT at concurrency 1 first")
    if len({n for n, _ in pts}) == 1:
        n, t = pts[0]
        return StepTimeModel(name=name, source="fitted", overhead_ms=0.0, compute_ms_per_token=statistics.median(
            t / n for _, t in pts))
    slopes = [(t1 - t0) / (n1 - n0) for i, (n0, t0) in enumerate(pts) for n1, t1 in pts[i + 1:] if n1 != n0]
    slope = max(statistics.median(slopes), 0.0)
    intercept = statistics.median(t - slope * n for n, t in pts)
    if intercept < 0:  # the line through the origin instead
        slope, intercept = statistics.median(t / n for n, t in pts), 0.0
    return StepTimeModel(name=name, source="fitted", overhead_ms=intercept, compute_ms_per_token=slope)
