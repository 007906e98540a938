"""Speedup predictor: E(k), the optimal k, an additive step-time model, speedup vs batch size, the crossover.

Theory (SPEC.md section 1): with per-token acceptance ``a`` a target step yields
``E(k) = (1 - a^(k+1)) / (1 - a)`` tokens (or ``1 + sum(p_i)`` from per-position rates, which is
also the mean acceptance length vLLM logs), and with ``c = draft step / target step`` the
single-request speedup is ``E(k) / (k*c + 1)``.

Under batching the step times depend on the batch. Measured GPU steps are additive (a public fit
of vLLM on H100, see :data:`H100_VLLM_V1`): a fixed cost, the weights over the bandwidth, the KV
cache read, a cost per batched token, attention over the context, TP all-reduces, and for MoE the
distinct experts the batch touches. One speculative step runs k draft passes and one verification
pass of ``batch * (k+1)`` tokens, plus a fixed per-step overhead, so the gain shrinks from small
batches on and turns into a loss where verification's extra tokens cost more than the accepted
tokens save: the crossover. :class:`StepTimeModel` holds those terms, from catalog facts or
fitted to measured step times (on a CPU the per-token term dominates).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from .errors import ParameterError
from .schemas.predict import Prediction, PredictionCheck, PredictionPoint, StepConstants, StepTimeModel
from .stats import interpolate

DEFAULT_BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256]


# -- acceptance -> tokens per step -------------------------------------------------------------
def expected_tokens(a: float, k: int) -> float:
    """E(k) = (1 - a^(k+1)) / (1 - a): expected tokens per target step with i.i.d. acceptance a."""
    if not 0 <= a <= 1:
        raise ParameterError(f"acceptance {a} is outside [0, 1]", _rate_fix(a, k))
    if k < 0:
        raise ParameterError(f"num_speculative_tokens {k} is negative", "give k >= 0")
    if a == 1:
        return float(k + 1)
    return (1 - a ** (k + 1)) / (1 - a)


def _rate_fix(a: float, k: int) -> str:
    """How to give a rate, naming the two usual mix-ups: a mean acceptance length, a percentage."""
    fix = "give a per-token acceptance rate, e.g. 0.7"
    if 1 < a <= k + 1:
        fix += f"; {a:g} looks like a mean acceptance length: pass it as --acceptance-length {a:g}"
    elif 1 < a <= 100:
        fix += f"; if {a:g} is a percentage, give {a / 100:g}"
    return fix


def positions_for_k(positions: Sequence[float], k: int) -> list[float]:
    """Per-position acceptance p_1..p_k, extending a measured list past its end geometrically.

    p_i is the share of drafts whose first i tokens were all accepted, so truncating is exact and
    extending uses the last measured conditional rate p_n / p_(n-1).
    """
    p = [min(max(float(x), 0.0), 1.0) for x in positions]
    if not p:
        raise ParameterError("no per-position acceptance given", "pass the sweep's acceptance_per_position")
    if k <= len(p):
        return p[:k]
    ratio = p[-1] / p[-2] if len(p) >= 2 and p[-2] > 0 else p[-1]
    while len(p) < k:
        p.append(p[-1] * min(ratio, 1.0))
    return p


def expected_tokens_from_positions(positions: Sequence[float], k: int | None = None) -> float:
    """E(k) = 1 + sum(p_i) from vLLM's per-position acceptance counters."""
    k = len(positions) if k is None else k
    return 1.0 + sum(positions_for_k(positions, k)) if k > 0 else 1.0


def iid_acceptance(expected: float, k: int) -> float:
    """The i.i.d. per-token acceptance a that gives E(k) = expected (bisection)."""
    if k <= 0 or expected <= 1:
        return 0.0
    if expected >= k + 1:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if expected_tokens(mid, k) < expected else (lo, mid)
    return (lo + hi) / 2


def acceptance_from_length(length: float, k: int) -> float:
    """Per-token acceptance a from a mean acceptance length (vLLM's ``1 + accepted / drafts``, what
    papers report): the i.i.d. a with E(k) = length."""
    if k < 1:
        raise ParameterError(f"num_speculative_tokens={k}", "give k >= 1")
    if not 1 <= length <= k + 1:
        raise ParameterError(
            f"mean acceptance length {length} is outside [1, k+1] = [1, {k + 1}]",
            "give the acceptance length measured at this k (1 + accepted / drafts), or change -k"
            + (f"; {length:g} looks like a per-token rate: pass it as --acceptance {length:g}" if 0 < length < 1 else ""),
        )
    return iid_acceptance(length, k)


def acceptance_length_from_positions(positions: Sequence[float]) -> float:
    """Mean acceptance length 1 + sum(p_i) from vLLM's per-position rates."""
    return expected_tokens_from_positions(positions)


def simple_speedup(a: float, k: int, c: float) -> float:
    """S = E(k) / (k*c + 1): the single-request speedup (Leviathan et al. 2023)."""
    return expected_tokens(a, k) / (k * c + 1)


def gain_possible(a: float, c: float) -> bool:
    """Speculation can pay only if the acceptance beats the cost ratio (a > c)."""
    return a > c


def optimal_k(a: float, c: float, k_max: int = 16) -> int:
    """The k in 1..k_max maximising E(k)/(k*c+1); 0 when no k beats running without speculation."""
    best_k, best = 0, 1.0
    for k in range(1, k_max + 1):
        s = simple_speedup(a, k, c)
        if s > best + 1e-12:
            best_k, best = k, s
    return best_k


# -- step-time model ---------------------------------------------------------------------------
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

# Methods whose proposals come from a lookup, not a model: no draft step; they propose only where it finds a match.
LOOKUP_METHODS = ("ngram", "suffix")

# The serving engine whose constants a catalog prediction uses (playbook predict --engine).
ENGINES: dict[str, StepConstants] = {"vllm": H100_VLLM_V1, "sglang": H100_SGLANG}
ENGINE_NAMES = {"vllm": "vLLM V1", "sglang": "SGLang (EAGLE without the overlap scheduler)"}
# Said beside every vLLM EAGLE prediction: published EAGLE batch curves (the EAGLE-3 paper's Table 3) are SGLang's,
# and fall below 1.0 from batch ~24 where vLLM's own (SpecDecode-Bench) lose ~4% from batch 1 to 32.
OTHER_ENGINE_NOTE = ("vLLM's constants: SGLang up to v0.5.6 runs EAGLE without its overlap scheduler and loses from "
                     "batch ~24 (EAGLE-3 paper, Table 3); `--engine sglang` predicts that engine")


def distinct_experts(tokens: float, num_experts: int, per_token: int) -> float:
    """Expected routed experts a pass over ``tokens`` tokens touches in one layer: E(1 - (1 - k/E)^T)."""
    if num_experts <= 0 or per_token <= 0 or tokens <= 0:
        return 0.0
    return num_experts * (1 - (1 - per_token / num_experts) ** tokens)


def step_ms(model: StepTimeModel, tokens: float, kv_tokens: float = 0.0, seqs: float | None = None) -> float:
    """Time of one forward pass over ``tokens`` tokens of ``seqs`` sequences reading ``kv_tokens``
    tokens of KV cache (``seqs`` defaults to ``tokens``: one token per sequence, a decode step)."""
    seqs = tokens if seqs is None else max(seqs, 1e-9)
    t = model.overhead_ms + model.weights_ms + kv_tokens * model.kv_ms_per_token + tokens * model.compute_ms_per_token
    t += model.attention_ms_per_pair * kv_tokens * tokens / seqs if tokens else 0.0
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
    - MoE: each of ``moe_layers`` layers streams every distinct expert the pass's tokens touch.
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


# A fitted cost below zero by more than this share of the measured time it comes from is said, not only clamped.
CLAMP_TOLERANCE = 0.05


def _clamped(raw: float, measured_ms: float, what: str, why: str, notes: list[str]) -> float:
    """``raw`` floored at 0; when it was negative by more than :data:`CLAMP_TOLERANCE` of ``measured_ms`` the fit
    cannot explain the measurements, and ``notes`` gets a line naming the cost, the amount and the likely cause."""
    if raw < -CLAMP_TOLERANCE * measured_ms:
        notes.append(f"{what} fitted as 0 (the measurements give {raw:.2f} ms): {why}")
    return max(raw, 0.0)


SPEC_TOO_FAST = ("the speculative TPOT is lower than verifying these tokens at this acceptance allows, so the acceptance "
                 "given is too low for it (compare with the server's own mean acceptance length; for n-gram give "
                 "--proposal-rate) or the two TPOTs come from different loads or prompts")


def with_proposals(per_proposal: float, proposal_rate: float) -> float:
    """Tokens per sequence per step when only a share q of steps propose (an n-gram finds no match on the others,
    which verify and yield one token): 1 + q (x - 1), for the tokens verified (x = k+1) or yielded (x = E)."""
    return 1 + proposal_rate * (per_proposal - 1)


def calibrate_from_measurements(
    *,
    tpot_baseline_ms: float,
    tpot_spec_ms: float | None,
    expected_tokens_per_step: float,
    num_speculative_tokens: int,
    prefill_points: Sequence[tuple[float, float]] = (),
    baseline_points: Sequence[tuple[float, float]] = (),
    draft_param_ratio: float | None = None,
    proposal_rate: float = 1.0,
    draft_seq_ms: float = 0.0,
) -> tuple[StepTimeModel, StepTimeModel | None]:
    """Fit target and draft step times from measured step times.

    - ``tpot_baseline_ms``: TPOT at concurrency 1 without speculation = one target step of 1 token.
    - ``baseline_points``: (batch size, baseline TPOT ms) at several loads, when measured: the cost
      of one more token in a decode pass, sampling and output handling included. Preferred, because
      it is what verifying k+1 tokens per sequence costs on a CPU (no speculative number is used).
    - ``prefill_points``: (prompt tokens, TTFT ms) of lone requests otherwise: the slope is the
      compute cost of one more token in a pass (a lower bound: it leaves out per-sequence work).
    - ``tpot_spec_ms``: TPOT at concurrency 1 with speculation; with E(k) it gives the draft step:
      ``tpot_spec * E = k * t_draft + t_target(k+1)``.
    - ``draft_param_ratio``: draft/target parameters, to split the draft step into overhead and
      per-token cost (the draft's per-token cost scales with its size); default: same split as target.
    - ``proposal_rate`` q: a step proposes on a fraction q of steps (:func:`predict`); E(k) is then per proposal,
      a step yields 1 + q (E - 1) tokens and verifies 1 + q k.
    - ``draft_seq_ms``: what a draft pass costs per sequence beyond its parameters' share of the target's
      per-token cost, when measured at several sequences in flight (added to the draft's per-token cost).
    """
    k = num_speculative_tokens
    slope = 0.0
    if len({n for n, _ in baseline_points}) >= 2:
        slope = fit_step_model("decode", baseline_points).compute_ms_per_token
    elif len({n for n, _ in prefill_points}) >= 2:
        slope = fit_step_model("prefill", prefill_points).compute_ms_per_token
    slope = min(slope, tpot_baseline_ms)
    target = StepTimeModel(
        name="target", source="fitted", overhead_ms=tpot_baseline_ms - slope, compute_ms_per_token=slope
    )
    if tpot_spec_ms is None:
        return target, None
    per_step = with_proposals(expected_tokens_per_step, proposal_rate)
    notes: list[str] = []
    drafting = _clamped(tpot_spec_ms * per_step - step_ms(target, with_proposals(k + 1, proposal_rate)),  # all k passes
                        tpot_spec_ms * per_step, "the draft's cost", SPEC_TOO_FAST, notes)
    ratio = draft_param_ratio if draft_param_ratio is not None else 1.0
    tokens = draft_tokens_per_step(1, k)
    per_token = min(slope * ratio + draft_seq_ms, drafting / tokens)
    draft = StepTimeModel(
        name="draft", source="fitted", overhead_ms=(drafting - per_token * tokens) / max(k, 1),
        compute_ms_per_token=per_token, fit_notes=notes,
    )
    return target, draft


def _extras(model: StepTimeModel | None, tokens: float, kv_tokens: float, seqs: float) -> float:
    """The prior's terms a calibration keeps (KV read, attention, MoE experts), without fixed and per-token cost."""
    if model is None:
        return 0.0
    bare = model.model_copy(update={"overhead_ms": 0.0, "weights_ms": 0.0, "compute_ms_per_token": 0.0})
    return step_ms(bare, tokens, kv_tokens, seqs=seqs)


def calibrate_steps(
    *,
    num_speculative_tokens: int,
    expected_tokens_per_step: float,
    tpot_baseline_ms: float,
    tpot_spec_ms: float | None = None,
    concurrency: int | None = None,
    tpot_baseline_at_ms: float | None = None,
    tpot_spec_at_ms: float | None = None,
    context_tokens: float = 0.0,
    prior_target: StepTimeModel | None = None,
    prior_draft: StepTimeModel | None = None,
    proposal_rate: float = 1.0,
) -> tuple[StepTimeModel, StepTimeModel | None]:
    """Fit the additive model's constants to a node's own measured TPOTs (GPU or the CPU engine).

    Measured: TPOT at concurrency 1 without (``tpot_baseline_ms``) and with speculation
    (``tpot_spec_ms``), optionally both again at a higher ``concurrency`` (``*_at_ms``), and the
    sweep's E(k). Unknowns: the target's fixed cost F and per-token cost c, the draft pass's fixed
    cost d0 and per-token cost d1 (the per-speculative-step overhead is folded into d0):

        base(b) = F + c*b + x(b)                      x: the prior's KV/attention/MoE terms (0 without one)
        spec(b) * E = F + c*b*(k+1) + x_v(b) + k*d0 + d1*draft_tokens_per_step(b, k)    (k*b for a chain)

    With one level only, c comes from ``prior_target`` (a GPU catalog model) and d1 from
    ``prior_draft`` (0 without). The engine step is in F and the per-speculative-step overhead in d0:
    the returned models predict with ``engine_step_ms=spec_step_ms=0``. With ``proposal_rate`` q < 1 (an
    n-gram, :func:`predict`) E is per proposal: a step yields 1 + q (E - 1) and verifies 1 + q k per sequence.
    """
    k, e = num_speculative_tokens, expected_tokens_per_step
    if k < 1 or e < 1:
        raise ParameterError(f"k={k}, E={e}", "give k >= 1 and the sweep's E(k) >= 1")
    e = with_proposals(e, proposal_rate)
    v = with_proposals(k + 1, proposal_rate)  # tokens verified per sequence (k+1 for a draft model)
    n, ctx = concurrency, context_tokens
    two = n is not None and n > 1 and tpot_baseline_at_ms is not None
    x1, xv1 = _extras(prior_target, 1, ctx, 1), _extras(prior_target, v, ctx, 1)
    t_notes: list[str] = []
    if two:
        xn = _extras(prior_target, n, n * ctx, n)
        c = _clamped((tpot_baseline_at_ms - xn - (tpot_baseline_ms - x1)) / (n - 1), tpot_baseline_ms / n,
                     "the target's cost per batched token",
                     f"the baseline TPOT at concurrency {n:g} is lower than at 1 (measure both at steady load)", t_notes)
    else:
        c = prior_target.compute_ms_per_token if prior_target is not None else 0.0
    f = _clamped(tpot_baseline_ms - x1 - c, tpot_baseline_ms, "the target's fixed cost per step",
                 "the GPU model's KV, attention and MoE terms alone exceed the measured baseline TPOT (check --gpu, "
                 "--tp and --context-length)", t_notes)
    base = prior_target if prior_target is not None else StepTimeModel(name="target", source="fitted", overhead_ms=0,
                                                                      compute_ms_per_token=0)
    target = base.model_copy(update={"name": "target", "source": "fitted", "overhead_ms": f, "weights_ms": 0.0,
                                     "compute_ms_per_token": c, "fit_notes": t_notes})
    if tpot_spec_ms is None:
        return target, None
    d_notes: list[str] = []
    d1 = prior_draft.compute_ms_per_token if prior_draft is not None else 0.0
    if two and tpot_spec_at_ms is not None:
        xvn = _extras(prior_target, n * v, n * ctx, n)
        dn = (tpot_spec_at_ms * e - f - c * n * v - xvn) / k
        d_1 = (tpot_spec_ms * e - f - c * v - xv1) / k
        d1 = _clamped((dn - d_1) * k / (draft_tokens_per_step(n, k) - draft_tokens_per_step(1, k)),
                      tpot_spec_at_ms * e / draft_tokens_per_step(n, k), "the draft's cost per token",
                      f"at concurrency {n:g} speculation gained more over its own concurrency 1 than the baseline "
                      "did, which verifying more tokens cannot do (measure both at the same loads)", d_notes)
    d0 = _clamped((tpot_spec_ms * e - f - c * v - xv1 - d1 * draft_tokens_per_step(1, k)) / k, tpot_spec_ms * e / k,
                  "the draft pass's fixed cost", SPEC_TOO_FAST, d_notes)
    draft = StepTimeModel(name="draft", source="fitted", overhead_ms=d0, compute_ms_per_token=d1, fit_notes=d_notes)
    return target, draft


def calibrated_curve(target_step: StepTimeModel, draft_step: StepTimeModel | None, *, num_speculative_tokens: int,
                     batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, context_tokens: float = 0.0,
                     measured: dict[int, float] | None = None, **acceptance) -> tuple[Prediction, PredictionCheck | None]:
    """The curve and crossover from calibrated steps (before the load test), and predicted vs
    measured speedups with their error when the load test's ``measured`` {concurrency: speedup} exist."""
    sizes = sorted(set(batch_sizes) | set(measured or {}))
    pred = predict(target_step=target_step, draft_step=draft_step, num_speculative_tokens=num_speculative_tokens,
                   batch_sizes=sizes, context_tokens=context_tokens, **acceptance)
    return pred, (compare(pred, measured) if measured else None)


# -- prediction --------------------------------------------------------------------------------
def draft_tokens_per_step(b: float, k: int, verify: int | None = None, width: int = 1) -> float:
    """Tokens the draft's k passes of one speculative step are charged for at batch ``b``: ``width``
    per sequence and pass (1 for vLLM's chain, SGLang's ``speculative_eagle_topk`` for a tree).

    vLLM's proposer (vllm/v1/spec_decode/eagle.py ``propose``, also the base of ``draft_model``)
    runs its first pass over the positions the target just verified, not one per sequence. Charging
    those b x (k+1) tokens made the prediction worse where it can be measured: on the embedded
    engine the error of benchmarks/predictor/run.py grew from 0.073 to 0.117, 0.076 to 0.122 and
    0.31 to 0.38 on three recorded runs (2026-12-02). On a GPU the draft's per-token cost is ~1% of
    the target's, so the choice moves GPU predictions by < 1%. ``verify`` is kept for callers."""
    return k * b * max(width, 1)


def _draft_ms(draft: StepTimeModel, b: int, k: int, ctx: float, verify: int | None = None, width: int = 1) -> float:
    """The k draft passes of one speculative step: k fixed costs, the tokens of :func:`draft_tokens_per_step`."""
    per_pass = step_ms(draft.model_copy(update={"compute_ms_per_token": 0.0}), b, b * ctx, seqs=b)
    return k * per_pass + draft_tokens_per_step(b, k, verify, width) * draft.compute_ms_per_token


def _spec_tpot(target: StepTimeModel, draft: StepTimeModel | None, b: int, k: int, e: float, ctx: float,
               verify: int | None = None, engine_ms: float = 0.0, spec_ms: float = 0.0, ngram: bool = False,
               width: int = 1, seq_ms: float = 0.0, proposal_rate: float = 1.0):
    """Speculative TPOT at batch ``b``: k draft passes (:func:`_draft_ms`), one verification pass
    of b x ``verify`` tokens (k+1 for a chain), the engine step and the speculative step's own
    cost (``spec_ms`` once, ``seq_ms`` per sequence), over the tokens a step yields. ``e`` is E(k) per
    proposal; with ``proposal_rate`` q < 1 (an n-gram finds no match on some steps) a sequence verifies
    1 + q (v - 1) tokens and yields 1 + q (E - 1) per step."""
    v = with_proposals(verify or k + 1, proposal_rate)
    e = with_proposals(e, proposal_rate)
    t_target = step_ms(target, b * v, b * ctx, seqs=b)
    t_draft = step_ms(draft, b, b * ctx, seqs=b) if draft is not None else 0.0
    drafting = _draft_ms(draft, b, k, ctx, verify, width) if draft is not None else 0.0
    # n-gram lookup: ~0.59% of the verification pass (SpecDecode-Bench predictor.py, ngram_draft_percentage)
    lookup = 0.005875 * t_target if ngram and draft is None else 0.0
    return (drafting + t_target + engine_ms + spec_ms + seq_ms * b + lookup) / e, t_target, t_draft


def _e_function(k: int, acceptance: float | None, acceptance_length: float | None,
                acceptance_per_position: Sequence[float]):
    """(E(k') as a function of k', the per-token a, the per-position rates at k) from any acceptance input."""
    if acceptance_per_position:
        def e_of(kk: int) -> float:
            return expected_tokens_from_positions(acceptance_per_position, kk)

        return e_of, iid_acceptance(e_of(k), k), positions_for_k(acceptance_per_position, k)
    if acceptance_length is not None:
        acceptance = acceptance_from_length(acceptance_length, k)
    if acceptance is None:
        raise ParameterError("no acceptance given to the predictor",
                             "pass --acceptance A, --acceptance-length L or --acceptance-per-position p1,p2,...")
    a = acceptance

    def e_of(kk: int) -> float:
        return expected_tokens(a, kk)

    return e_of, a, [a ** (i + 1) for i in range(k)]


def predict(
    *,
    target_step: StepTimeModel,
    draft_step: StepTimeModel | None,
    num_speculative_tokens: int,
    acceptance: float | None = None,
    acceptance_per_position: Sequence[float] = (),
    acceptance_length: float | None = None,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    context_tokens: float = 512,
    target: str = "target",
    draft: str = "draft",
    method: str = "draft_model",
    k_max: int = 8,
    engine_step_ms: float = 0.0,
    spec_step_ms: float = 0.0,
    spec_seq_ms: float = 0.0,
    baseline_engine_step_ms: float | None = None,
    verify_tokens_per_seq: int | None = None,
    tree_width: int = 1,
    proposal_rate: float = 1.0,
    shared_tpot_ms: dict[int, float] | None = None,
    baseline_tpot_ms: dict[int, float] | None = None,
) -> Prediction:
    """Predicted TPOT with and without speculation, speedup and best k per batch size, crossover.

    Give one of ``acceptance`` (i.i.d. per-token a), ``acceptance_length`` (mean acceptance length
    at this k, 1 + accepted/drafts) or ``acceptance_per_position`` (p_i from the sweep).
    ``draft_step`` None means a draft with no model cost (n-gram, suffix). ``engine_step_ms`` is in
    both TPOTs, ``spec_step_ms`` (once) and ``spec_seq_ms`` (per sequence) only in the speculative
    one (0 for fitted models, which hold them already); ``baseline_engine_step_ms`` replaces
    ``engine_step_ms`` in the baseline TPOT where the engine hides its host work without speculation.
    ``verify_tokens_per_seq`` replaces k+1 for tree verification (SGLang's ``speculative_num_draft_tokens``),
    ``tree_width`` the tokens per sequence of each later draft pass (SGLang's ``speculative_eagle_topk``; 1 for
    vLLM's chain). ``proposal_rate``: the fraction of steps on which the method proposes at all (an n-gram or
    suffix lookup finds no match on the others, which then verify one token); the acceptance is per proposal,
    as vLLM counts it (its metrics count only steps with draft tokens: vllm/v1/core/sched/scheduler.py,
    ``make_spec_decoding_stats``). 1 (every step) is the upper bound on the verification cost.
    ``shared_tpot_ms`` {batch size: ms}: what every output token pays beyond the decode steps with or without
    speculation (other requests' prompts prefilled inside them), as measured on a baseline; linear between the
    batch sizes given, held at the nearest outside them. ``baseline_tpot_ms`` {batch size: ms}: the baseline's
    TPOT where it was measured, used there instead of the model's (only the speculative TPOT is predicted).
    """
    k = num_speculative_tokens
    if k < 1:
        raise ParameterError(f"num_speculative_tokens={k}", "give k >= 1")
    if not 0 < proposal_rate <= 1:
        raise ParameterError(f"proposal rate {proposal_rate} is outside (0, 1]",
                             "give the fraction of decode steps on which the method proposes (vLLM: "
                             "spec_decode_num_drafts / decode steps), or leave it at 1")
    e_of, a, positions = _e_function(k, acceptance, acceptance_length, acceptance_per_position)
    sizes = sorted({int(b) for b in batch_sizes if int(b) >= 1})
    if not sizes:
        raise ParameterError(f"batch sizes {list(batch_sizes)} hold no positive size", "give e.g. 1,2,4,8")
    ngram = method in LOOKUP_METHODS
    over = {"engine_ms": engine_step_ms, "spec_ms": spec_step_ms, "ngram": ngram, "width": max(int(tree_width), 1),
            "seq_ms": spec_seq_ms, "proposal_rate": proposal_rate}

    base_engine_ms = engine_step_ms if baseline_engine_step_ms is None else baseline_engine_step_ms
    points: list[PredictionPoint] = []
    best_k: dict[int, int] = {}
    shared = dict(sorted((shared_tpot_ms or {}).items()))
    for b in sizes:
        extra = interpolate(b, list(shared), list(shared.values())) if shared else 0.0
        base = step_ms(target_step, b, b * context_tokens, seqs=b) + base_engine_ms + extra
        base = (baseline_tpot_ms or {}).get(b, base)
        spec, t_target, t_draft = _spec_tpot(target_step, draft_step, b, k, e_of(k), context_tokens,
                                             verify_tokens_per_seq, **over)
        spec += extra
        points.append(
            PredictionPoint(
                batch_size=b, speedup=base / spec, tpot_baseline_ms=base, tpot_spec_ms=spec,
                target_step_ms=t_target, draft_step_ms=t_draft,
            )
        )
        kk_best, s_best = 0, 1.0
        for kk in range(1, k_max + 1):
            s = base / (_spec_tpot(target_step, draft_step, b, kk, e_of(kk), context_tokens, None, **over)[0] + extra)
            if s > s_best + 1e-9:
                kk_best, s_best = kk, s
        best_k[b] = kk_best
    crossover = next((p.batch_size for p in points if p.speedup < 1.0), None)
    t1 = step_ms(target_step, 1, context_tokens)
    c = (step_ms(draft_step, 1, context_tokens) / t1) if draft_step is not None else 0.0
    pred = Prediction(
        target=target, draft=draft, method=method, num_speculative_tokens=k, acceptance=a,
        acceptance_per_position=positions, expected_tokens_per_step=with_proposals(e_of(k), proposal_rate), cost_ratio=c,
        optimal_k=best_k[sizes[0]] if sizes[0] == 1 else optimal_k(a, c, k_max),
        optimal_k_by_batch_size=best_k, points=points, crossover_batch_size=crossover,
        target_step=target_step, draft_step=draft_step, engine_step_ms=engine_step_ms, spec_step_ms=spec_step_ms,
        spec_seq_ms=spec_seq_ms, baseline_engine_step_ms=baseline_engine_step_ms,
        verify_tokens_per_seq=verify_tokens_per_seq or k + 1, proposal_rate=proposal_rate, shared_tpot_ms=shared,
        baseline_tpot_ms=dict(baseline_tpot_ms or {}), context_tokens=context_tokens, tree_width=max(int(tree_width), 1),
        assumptions=[
            f"context of {context_tokens:.0f} tokens per sequence read from the KV cache each step",
            f"one verification pass of batch*{verify_tokens_per_seq or k + 1} tokens plus k draft passes of batch "
            "tokens per step" + (f"; a proposal on {proposal_rate:.0%} of steps (the others verify one token)"
                                 if proposal_rate < 1 else ""),
            f"step-time model: target {target_step.source}, draft {draft_step.source if draft_step else 'free (n-gram)'}",
            (f"per engine step {engine_step_ms:.2f} ms in both TPOTs" if base_engine_ms == engine_step_ms else
             f"per engine step {engine_step_ms:.2f} ms with speculation, {base_engine_ms:.2f} ms without")
            + f"; per speculative step {spec_step_ms:.2f} ms"
            + (f" + {spec_seq_ms:.3f} ms per sequence" if spec_seq_ms else ""),
            *([f"baseline TPOT as measured at batch {', '.join(map(str, sorted(baseline_tpot_ms)))} (only the "
               "speculative TPOT is predicted there), the model's elsewhere"] if baseline_tpot_ms else []),
            *([("other requests' prefills inside the decode steps cost every output token, with or without "
                "speculation, " + ", ".join(f"{v:.2f} ms at {b}" for b, v in shared.items())
                + " (the baseline's TPOT minus its typical step)")] if shared else []),
        ],
    )
    pred.assumptions += fit_notes(pred)
    pred.finding = finding(pred)
    return pred


def at_k(pred: Prediction, k: int, batch_sizes: Sequence[int] | None = None) -> Prediction:
    """``pred`` at another k: the same step models, acceptance, engine, per-sequence and shared costs and
    measured baseline TPOTs (what comparing k values needs: only k differs). A tree's k and verified tokens go
    together, so a tree prediction is predicted afresh instead."""
    if pred.tree_width > 1 or pred.verify_tokens_per_seq not in (0, pred.num_speculative_tokens + 1):
        raise ParameterError(f"the prediction drafts a tree ({pred.verify_tokens_per_seq} tokens verified per "
                             f"sequence, width {pred.tree_width})",
                             "predict the other k afresh with its own verify tokens and tree width")
    return predict(
        target_step=pred.target_step, draft_step=pred.draft_step, num_speculative_tokens=k,
        acceptance=None if pred.acceptance_per_position else pred.acceptance,
        acceptance_per_position=pred.acceptance_per_position,
        batch_sizes=batch_sizes or [pt.batch_size for pt in pred.points], context_tokens=pred.context_tokens,
        target=pred.target, draft=pred.draft, method=pred.method, engine_step_ms=pred.engine_step_ms,
        spec_step_ms=pred.spec_step_ms, spec_seq_ms=pred.spec_seq_ms, baseline_engine_step_ms=pred.baseline_engine_step_ms,
        proposal_rate=pred.proposal_rate, shared_tpot_ms=pred.shared_tpot_ms, baseline_tpot_ms=pred.baseline_tpot_ms,
    )


def fit_notes(pred: Prediction) -> list[str]:
    """What fitting the prediction's step models to measured times had to clamp (empty for catalog models)."""
    return [*pred.target_step.fit_notes, *(pred.draft_step.fit_notes if pred.draft_step is not None else [])]


def finding(pred: Prediction) -> str:
    first = pred.points[0]
    where = (
        f"stops winning at batch {pred.crossover_batch_size}" if pred.crossover_batch_size
        else f"wins up to batch {pred.points[-1].batch_size}"
    )
    if first.speedup < 1:
        where = "never wins in the range"
    return (
        f"predicted speedup {first.speedup:.2f}x at batch {first.batch_size} with k={pred.num_speculative_tokens} "
        f"(a={pred.acceptance:.2f}, c={pred.cost_ratio:.2f}, E={pred.expected_tokens_per_step:.2f}); {where}; "
        f"best k at batch 1: {pred.optimal_k}"
    )


def per_batch_size_schedule(best_k_by_batch: dict[int, int], max_batch_size: int | None = None) -> list[list[int]]:
    """vLLM's ``num_speculative_tokens_per_batch_size``: ``[[start, end, k], ...]`` from best k per size.

    Each measured/predicted batch size b_i covers [b_i, b_(i+1) - 1]; the first range starts at 1
    (vLLM requires it) and the last runs to ``max_batch_size`` (default: the last size). k=0 is off.
    """
    sizes = sorted(best_k_by_batch)
    if not sizes:
        return []
    last = max(max_batch_size or sizes[-1], sizes[-1])
    ranges: list[list[int]] = []
    for i, b in enumerate(sizes):
        start = 1 if i == 0 else b
        end = sizes[i + 1] - 1 if i + 1 < len(sizes) else last
        k = int(best_k_by_batch[b])
        if ranges and ranges[-1][2] == k:
            ranges[-1][1] = end
        else:
            ranges.append([start, end, k])
    return ranges


def crossover_from_measured(levels: Sequence[int], speedups: Sequence[float]) -> int | None:
    """The first measured level at which the speedup falls below 1 (None: never in the range)."""
    for level, s in sorted(zip(levels, speedups, strict=True)):
        if s < 1.0:
            return int(level)
    return None


def compare(pred: Prediction, measured: dict[int, float], calibration_levels: Sequence[int] = (1,),
            intervals: dict[int, tuple[float | None, float | None]] | None = None) -> PredictionCheck:
    """Predicted vs measured speedup at the measured concurrency levels (interpolated in log batch); the
    held-out error leaves out ``calibration_levels`` (a run's fit uses the measurements at concurrency 1).
    ``intervals``: the load test's 95% interval per level (low, high), kept to say whether the prediction
    falls inside what the measurement can resolve."""
    if not measured:
        raise ParameterError("no measured speedups to compare with", "run the load test (50_load) first")
    xs = [p.batch_size for p in pred.points]
    ys = [p.speedup for p in pred.points]
    levels = sorted(measured)
    predicted = [interpolate(math.log(lv), [math.log(x) for x in xs], ys) for lv in levels]  # in log batch
    meas = [measured[lv] for lv in levels]
    rel = [abs(p - m) / m if m else math.inf for p, m in zip(predicted, meas, strict=True)]
    calibration = set(calibration_levels)
    held = [e for lv, e in zip(levels, rel, strict=True) if lv not in calibration]
    return PredictionCheck(
        concurrency=levels, measured_speedup=meas, predicted_speedup=predicted,
        relative_error=rel, mean_abs_relative_error=sum(rel) / len(rel),
        held_out_error=sum(held) / len(held) if held else None,
        held_out_levels=[lv for lv in levels if lv not in calibration],
        measured_interval=[_interval((intervals or {}).get(lv)) for lv in levels],
    )


def check_against_load(pred: Prediction, levels: Sequence) -> PredictionCheck | None:
    """:func:`compare` against a load test's levels (``LoadLevel``: speedup and its interval), or None when no
    level has a speedup (all withheld, or none measured)."""
    measured = {int(x.concurrency): x.speedup for x in levels if x.speedup}
    if not measured:
        return None
    return compare(pred, measured, intervals={int(x.concurrency): (x.speedup_ci_low, x.speedup_ci_high) for x in levels})


def _interval(bounds: tuple[float | None, float | None] | None) -> tuple[float, float] | None:
    return (bounds[0], bounds[1]) if bounds and bounds[0] is not None and bounds[1] is not None else None


def held_out_agreement(check: PredictionCheck) -> str:
    """Where the held-out predictions sit against the load test: inside its 95% intervals at how many levels,
    and the bias when every one errs the same way ('' without held-out levels)."""
    rows = [(p, m, ci) for lv, p, m, ci in zip(check.concurrency, check.predicted_speedup, check.measured_speedup,
                                                 check.measured_interval or [None] * len(check.concurrency), strict=True)
            if lv in check.held_out_levels]
    if not rows:
        return ""
    parts = []
    with_ci = [(p, ci) for p, _, ci in rows if ci is not None]
    if with_ci:
        inside = sum(ci[0] <= p <= ci[1] for p, ci in with_ci)
        parts.append(f"inside the load test's 95% interval at {inside} of {len(with_ci)}")
    if len(rows) > 1 and all(p > m for p, m, _ in rows):
        parts.append("above the measured speedup at every one (too optimistic)")
    elif len(rows) > 1 and all(p < m for p, m, _ in rows):
        parts.append("below the measured speedup at every one (too pessimistic)")
    return "; ".join(parts)


def error_sentence(check: PredictionCheck) -> str:
    """How far the predictor was from the load test, said without flattering it: the error at the loads it was
    not calibrated on first, then the mean that counts the calibration level."""
    if check.held_out_error is None:
        return (f"{check.mean_abs_relative_error:.0%} at concurrency {', '.join(map(str, check.concurrency))}, where it "
                "is calibrated (no other level measured)")
    agreement = held_out_agreement(check)
    return (f"{check.held_out_error:.0%} on average at the loads it was not calibrated on "
            f"({', '.join(map(str, check.held_out_levels))}); {check.mean_abs_relative_error:.0%} counting every level"
            + (f"; there, {agreement}" if agreement else ""))


# -- from a run's evidence ---------------------------------------------------------------------
def positions_at_temperature(by_temperature: dict[float, Sequence[float]], temp: float) -> list[float]:
    """Per-position acceptance at ``temp``, linear between the sweep's temperatures around it (as the
    headline's acceptance is; clamped outside the swept range)."""
    temps = sorted(t for t, v in by_temperature.items() if v)
    if not temps:
        return []
    n = min(len(by_temperature[t]) for t in temps)
    return [interpolate(temp, temps, [by_temperature[t][i] for t in temps]) for i in range(n)]


def calibrated_prediction(ev, *, batch_sizes: Sequence[int] | None = None, draft_param_ratio: float | None = None,
                          context_tokens: float = 512) -> Prediction | None:
    """Predict from a run's own single-request measurements (``Evidence``), or None if they are missing.

    Uses the sweep's per-position acceptance at the load test's temperature (what the prediction
    is checked against), TPOT at concurrency 1 with and without speculation, and the target's step
    time vs batch from the baseline at each load: its typical step (median chunk gap) where the streams give
    it, else its TPOT (else the prefill slope of lone requests). With typical steps, what the baseline's TPOT
    carries beyond them (other requests' prefills) is charged to both TPOTs at each load. The speculative
    step's own cost per sequence, beyond verifying and drafting, comes from the sweep's streams at several
    sequences in flight (step 40, before the load test; :mod:`step_growth`). Where the load test measured the
    baseline, its TPOT is taken as measured. No speculative measurement of the load test above concurrency 1 is
    used: the speculative TPOT there is what is predicted.
    """
    k = ev.num_speculative_tokens
    if not k or ev.tpot_c1_baseline_ms is None:
        return None
    temp = ev.load_temperature if ev.load_temperature is not None else ev.acceptance_temperature
    positions: list[float] = []
    if ev.per_position_by_temperature and temp is not None:
        positions = positions_at_temperature(ev.per_position_by_temperature, temp)
    positions = positions or ev.acceptance_per_position
    acceptance = None
    if not positions:
        acc = ev.load_levels[0].acceptance_rate if ev.load_levels else None
        if acc is None:
            return None
        acceptance = iid_acceptance(1 + acc * k, k)
    e = expected_tokens_from_positions(positions, k) if positions else expected_tokens(acceptance, k)
    draft_free = ev.method in LOOKUP_METHODS
    # a lookup proposes only where it finds a match: the measured share of steps with a proposal (sweep)
    q = ev.proposal_rate if draft_free and ev.proposal_rate else 1.0
    # levels the load test excluded (burst-delivered streams, client and server apart) have no TPOT to trust
    concurrency = [x for x in ev.load_levels
                   if ev.load_kind == "concurrency" and x.tpot_p50_baseline_ms and x.status == "ok"]
    base_1, spec_1 = ev.tpot_c1_baseline_ms, ev.tpot_c1_spec_ms
    base_points = [(x.concurrency, x.tpot_p50_baseline_ms) for x in concurrency]
    typical = {int(x.concurrency): x.step_p50_baseline_ms for x in concurrency if x.step_p50_baseline_ms}
    shared: dict[int, float] = {}
    if 1 in typical and (spec_1 is None or spec_1 > base_1 - typical[1]):
        shared = {int(x.concurrency): max(0.0, x.tpot_p50_baseline_ms - typical[int(x.concurrency)])
                  for x in concurrency if int(x.concurrency) in typical}
        base_1, base_points = typical[1], sorted(typical.items())
        spec_1 = spec_1 - shared[1] if spec_1 is not None else None
    ratio = draft_param_ratio if draft_param_ratio is not None else ev.draft_param_ratio

    def fit(spec_tpot: float | None, draft_seq_ms: float = 0.0) -> tuple[StepTimeModel, StepTimeModel | None]:
        return calibrate_from_measurements(
            tpot_baseline_ms=base_1, tpot_spec_ms=spec_tpot, expected_tokens_per_step=e, num_speculative_tokens=k,
            prefill_points=ev.prefill_points, baseline_points=base_points, draft_param_ratio=ratio, proposal_rate=q,
            draft_seq_ms=draft_seq_ms)

    target_step, draft_step = fit(spec_1)
    seq_ms, unexplained, growth = 0.0, 0.0, ev.spec_step_growth
    if growth is not None and draft_step is not None and spec_1:
        # the sweep's growth per sequence beyond verifying k+1 tokens and drafting k: charged per drafted token
        # (it then grows with k, as a draft pass's or the rejection sampler's per-sequence work would), or per
        # sequence and step for a lookup, which has no draft passes
        step_1 = spec_1 * with_proposals(e, q)
        explained = target_step.compute_ms_per_token * with_proposals(k + 1, q) + (
            0.0 if draft_free else draft_step.compute_ms_per_token * draft_tokens_per_step(1, k))
        unexplained = min(max(0.0, growth.share * step_1 - explained), 0.5 * step_1)
        if unexplained and draft_free:
            seq_ms = unexplained
            target_step, draft_step = fit((step_1 - seq_ms) / with_proposals(e, q))
        elif unexplained:
            target_step, draft_step = fit(spec_1, draft_seq_ms=unexplained / k)
    if draft_free and draft_step is not None:
        # n-gram lookup costs CPU time per step, not per token: all of the fitted drafting time as a fixed
        # overhead (k passes of it), so the single-request TPOT is reproduced.
        total = _draft_ms(draft_step, 1, k, 0.0)
        draft_step = StepTimeModel(name="ngram lookup", source="fitted", overhead_ms=total / k, compute_ms_per_token=0.0,
                                   fit_notes=draft_step.fit_notes)
    sizes = batch_sizes or sorted({int(x.concurrency) for x in ev.load_levels} | {1, 2, 4, 8, 16, 32})
    pred = predict(
        target_step=target_step, draft_step=draft_step, num_speculative_tokens=k, acceptance=acceptance,
        acceptance_per_position=positions, batch_sizes=sizes, context_tokens=context_tokens,
        target=ev.target or "target", draft=ev.draft or "draft", method=ev.method or "draft_model",
        proposal_rate=q, spec_seq_ms=seq_ms, shared_tpot_ms=shared,
        baseline_tpot_ms={int(x.concurrency): x.tpot_p50_baseline_ms for x in concurrency},
    )
    if growth is None and spec_1:
        pred.assumptions.append(
            "no growth of the speculative step with the sequences in flight was measured (the sweep streamed too few "
            "steps, or none): only verifying and drafting grow with the batch, which left the prediction too "
            "optimistic above concurrency 1 on the embedded engine (held-out error 0.19-0.39 on runs of 2026-12-03 to 06)")
    if growth is not None and draft_step is not None:
        pred.assumptions.append(
            f"the speculative step's typical time grew by {growth.share:.1%} of a single sequence's per further "
            f"sequence decoding (1 to {growth.in_flight} in flight, {growth.source}); verifying and drafting "
            + ("explain it all" if not unexplained else f"leave {unexplained:.2f} ms per sequence, charged "
               + ("to every step" if draft_free else f"to the draft's passes ({unexplained / k:.3f} ms per drafted token)")))
    return pred


# -- from catalog facts ------------------------------------------------------------------------
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


def _precision(spec, precision: str) -> str:
    """A pre-quantized checkpoint's own precision (when a known one) wins over the requested one."""
    from .quantization import BYTES_PER_PARAM

    return spec.quantization if spec.quantization in BYTES_PER_PARAM else precision


def _tflops(gpu, precision: str) -> float:
    fp8 = precision in ("fp8", "int8") and gpu.fp8_tflops
    return (gpu.fp8_tflops if fp8 else gpu.bf16_tflops) or 0.0


def pass_facts(spec, precision: str = "bf16") -> dict:
    """What one forward pass of a model reads and computes, from its architecture.

    ``read_bytes``: weights streamed every pass (the embedding table is gathered, not streamed,
    unless tied to the lm_head; routed experts are counted apart); ``active_params``: parameters
    multiplied per token; MoE: ``moe_layers``, ``num_experts``, ``experts_per_token``,
    ``expert_bytes`` (one routed expert of one layer). An EAGLE/EAGLE-3 head (config.json only is
    enough) counts its decoder layers, its fc over 2 (EAGLE) or 3 (EAGLE-3) target hidden states and
    its lm_head over the (draft) vocabulary. A pre-quantized local checkpoint uses the tensor bytes
    of its own safetensors headers.
    """
    from .models import param_breakdown
    from .quantization import linear_bytes_per_param, weight_bytes

    precision = _precision(spec, precision)
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
    moe_layers = spec.num_layers - spec.first_k_dense if spec.is_moe else 0
    expert_params = 3 * h * spec.moe_intermediate_size if moe_layers else 0
    routed = moe_layers * spec.num_experts * expert_params
    active = total_params - emb - routed + moe_layers * spec.num_experts_per_tok * expert_params
    return {
        "read_bytes": max(total_bytes - emb * 2 - routed * lin, 0.0), "active_params": active,
        "moe_layers": moe_layers, "num_experts": spec.num_experts if moe_layers else 0,
        "experts_per_token": spec.num_experts_per_tok if moe_layers else 0, "expert_bytes": expert_params * lin,
    }


def roofline_from_specs(spec, gpu, *, name: str, tp: int = 1, precision: str = "bf16", kv_cache_dtype: str = "auto",
                        overhead_ms: float | None = None, draft: bool = False,
                        constants: StepConstants = H100_VLLM_V1) -> StepTimeModel:
    """The additive step model of a model (``ModelSpec``) on an accelerator (``GPUSpec``) at TP ``tp``.

    ``draft`` uses the cheaper fixed cost of a draft pass inside a speculative step.
    """
    from .memory import kv_bytes_per_token, kv_layers

    f = pass_facts(spec, precision)
    precision = _precision(spec, precision)
    qk = (spec.qk_nope_head_dim + spec.qk_rope_head_dim + spec.v_head_dim) if spec.attention == "mla" \
        else 2 * spec.head_dim
    return roofline_step_model(
        name, num_params=f["active_params"], weight_bytes=f["read_bytes"],
        kv_bytes_per_token=kv_bytes_per_token(kv_layers(spec, tp, kv_cache_dtype)) * tp,
        bandwidth_gbs=gpu.bandwidth_gbs or 0, tflops=_tflops(gpu, precision), num_devices=tp,
        num_layers=spec.num_layers, hidden_size=spec.hidden_size,
        attention_flops_per_pair=2 * spec.num_attention_heads * qk * spec.num_layers,
        interconnect_gbs=getattr(gpu, "interconnect_gbs", None),
        moe_layers=f["moe_layers"], num_experts=f["num_experts"], experts_per_token=f["experts_per_token"],
        expert_bytes=f["expert_bytes"],
        fixed_ms=(constants.draft_forward_fixed_ms + (constants.eagle3_forward_extra_ms if _is_eagle3(spec) else 0.0))
        if draft else constants.forward_fixed_ms,
        constants=constants, overhead_ms=overhead_ms,
    )


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
    d_step = None
    if draft_spec is not None and method not in LOOKUP_METHODS:
        d_step = roofline_from_specs(draft_spec, gpu, name="draft", tp=draft_tp or tp, precision=draft_precision,
                                     draft=True, constants=constants)
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
                            "(helpers/predict.py)")
    if engine == "vllm" and method in ("eagle", "eagle3"):
        pred.assumptions.append(OTHER_ENGINE_NOTE)
    if engine == "vllm" and method in ASYNC_OFF_METHODS:
        pred.assumptions.append(ASYNC_OFF_NOTE.format(method=method, engine_ms=constants.engine_step_ms))
    return pred


# vLLM turns async scheduling on by default (v0.14, PR 31998, with speculative decoding) and off again for
# speculative methods it does not support: the installed vLLM 0.32's vllm/config/vllm.py keeps it for EAGLE, MTP,
# draft_model, ngram_gpu, DFlash and DSpark and logs "Async scheduling not supported with %s-based speculative
# decoding and will be disabled" for the others. The H100 constants above come from vLLM 0.10.1 (synchronous
# scheduling in both TPOTs); not modelled, but said with the prediction.
ASYNC_OFF_METHODS = ("ngram", "suffix")
ASYNC_OFF_NOTE = ("vLLM >= 0.14 schedules asynchronously without speculation but not with {method} (vllm/config/"
                  "vllm.py), so the baseline may hide up to {engine_ms:.1f} ms per step of host work that {method} "
                  "pays: its gain can be smaller than shown (the constants come from vLLM 0.10.1, synchronous in both)")


def prediction_summary(pred: Prediction | None, check: PredictionCheck | None) -> dict:
    """What decision.json keeps of the prediction: the curve, crossover, best k, and its measured error."""
    if pred is None:
        return {}
    out = {
        "speedup_by_batch_size": {p.batch_size: round(p.speedup, 4) for p in pred.points},
        "crossover_batch_size": pred.crossover_batch_size, "optimal_k": pred.optimal_k,
        "num_speculative_tokens_per_batch_size": per_batch_size_schedule(pred.optimal_k_by_batch_size),
        "acceptance": round(pred.acceptance, 4), "cost_ratio": round(pred.cost_ratio, 4), "finding": pred.finding,
    }
    if check is not None:
        out["mean_abs_relative_error"] = round(check.mean_abs_relative_error, 4)
        if check.held_out_error is not None:
            out["held_out_error"] = round(check.held_out_error, 4)
            agreement = held_out_agreement(check)
            if agreement:
                out["held_out_agreement"] = agreement
    return out
