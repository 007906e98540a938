"""Speedup predictor: E(k), the optimal k, a step-time model, speedup vs batch size, the crossover.

Theory (SPEC.md section 1): with per-token acceptance ``a`` a target step yields
``E(k) = (1 - a^(k+1)) / (1 - a)`` tokens (or ``1 + sum(p_i)`` from per-position rates), and with
``c = draft step / target step`` the single-request speedup is ``E(k) / (k*c + 1)``.

Under batching the step times depend on the batch: one verification pass processes
``batch * (k+1)`` tokens, so once a pass is compute-bound (always, on a CPU) verifying costs about
k+1 times a decode step and the speedup falls below 1: the crossover. :class:`StepTimeModel`
captures that as ``overhead + max(weights + kv, tokens * compute)``, from a GPU roofline or fitted
to measured step times.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from .errors import ParameterError
from .schemas.predict import Prediction, PredictionCheck, PredictionPoint, StepTimeModel

DEFAULT_BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256]
GIB = 2**30


# -- acceptance -> tokens per step -------------------------------------------------------------
def expected_tokens(a: float, k: int) -> float:
    """E(k) = (1 - a^(k+1)) / (1 - a): expected tokens per target step with i.i.d. acceptance a."""
    if not 0 <= a <= 1:
        raise ParameterError(f"acceptance {a} is outside [0, 1]", "give a per-token acceptance rate, e.g. 0.7")
    if k < 0:
        raise ParameterError(f"num_speculative_tokens {k} is negative", "give k >= 0")
    if a == 1:
        return float(k + 1)
    return (1 - a ** (k + 1)) / (1 - a)


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
def step_ms(model: StepTimeModel, tokens: float, kv_tokens: float = 0.0) -> float:
    """Time of one forward pass over ``tokens`` tokens reading ``kv_tokens`` tokens of KV cache."""
    memory = model.weights_ms + kv_tokens * model.kv_ms_per_token
    compute = tokens * model.compute_ms_per_token
    return model.overhead_ms + max(memory, compute)


def roofline_step_model(
    name: str,
    *,
    num_params: float,
    weight_bytes: float,
    kv_bytes_per_token: float,
    bandwidth_gbs: float,
    tflops: float,
    num_devices: int = 1,
    overhead_ms: float = 0.5,
    memory_efficiency: float = 0.8,
    compute_efficiency: float = 0.5,
) -> StepTimeModel:
    """A roofline from catalog numbers: bytes over bandwidth, 2*params FLOPs per token over compute.

    ``num_devices`` is the tensor-parallel width: bandwidth and compute add up across devices,
    and every all-reduce adds to the fixed overhead (0.05 ms per extra device per step).
    """
    if bandwidth_gbs <= 0 or tflops <= 0:
        raise ParameterError(
            f"the hardware for {name} has no bandwidth/compute figures ({bandwidth_gbs} GB/s, {tflops} TFLOPs)",
            "pick a GPU from the catalog (--gpu) or give measured step times",
        )
    bw = bandwidth_gbs * 1e9 * memory_efficiency * num_devices  # bytes/s
    fl = tflops * 1e12 * compute_efficiency * num_devices  # FLOP/s
    return StepTimeModel(
        name=name,
        source="roofline",
        overhead_ms=overhead_ms + 0.05 * (num_devices - 1),
        weights_ms=weight_bytes / bw * 1e3,
        kv_ms_per_token=kv_bytes_per_token / bw * 1e3,
        compute_ms_per_token=2 * num_params / fl * 1e3,
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


def calibrate_from_measurements(
    *,
    tpot_baseline_ms: float,
    tpot_spec_ms: float | None,
    expected_tokens_per_step: float,
    num_speculative_tokens: int,
    prefill_points: Sequence[tuple[float, float]] = (),
    baseline_points: Sequence[tuple[float, float]] = (),
    draft_param_ratio: float | None = None,
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
    draft_total = (tpot_spec_ms * expected_tokens_per_step - step_ms(target, k + 1)) / max(k, 1)
    draft_total = max(draft_total, 0.0)
    ratio = draft_param_ratio if draft_param_ratio is not None else 1.0
    per_token = min(slope * ratio, draft_total)
    draft = StepTimeModel(
        name="draft", source="fitted", overhead_ms=draft_total - per_token, compute_ms_per_token=per_token
    )
    return target, draft


# -- prediction --------------------------------------------------------------------------------
def _spec_tpot(target: StepTimeModel, draft: StepTimeModel | None, b: int, k: int, e: float, ctx: float):
    t_target = step_ms(target, b * (k + 1), b * ctx)
    t_draft = step_ms(draft, b, b * ctx) if draft is not None else 0.0
    return (k * t_draft + t_target) / e, t_target, t_draft


def predict(
    *,
    target_step: StepTimeModel,
    draft_step: StepTimeModel | None,
    num_speculative_tokens: int,
    acceptance: float | None = None,
    acceptance_per_position: Sequence[float] = (),
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    context_tokens: float = 512,
    target: str = "target",
    draft: str = "draft",
    method: str = "draft_model",
    k_max: int = 8,
) -> Prediction:
    """Predicted TPOT with and without speculation, speedup and best k per batch size, crossover.

    Give either ``acceptance`` (i.i.d. per-token a) or ``acceptance_per_position`` (p_i from the
    sweep). ``draft_step`` None means a draft with no model cost (n-gram, suffix).
    """
    k = num_speculative_tokens
    if k < 1:
        raise ParameterError(f"num_speculative_tokens={k}", "give k >= 1")
    if acceptance_per_position:
        def e_of(kk: int) -> float:
            return expected_tokens_from_positions(acceptance_per_position, kk)

        positions = positions_for_k(acceptance_per_position, k)
        a = iid_acceptance(e_of(k), k)
    elif acceptance is not None:
        def e_of(kk: int) -> float:
            return expected_tokens(acceptance, kk)

        a = acceptance
        positions = [acceptance ** (i + 1) for i in range(k)]
    else:
        raise ParameterError("no acceptance given to the predictor", "pass --acceptance A or the sweep's per-position rates")
    sizes = sorted({int(b) for b in batch_sizes if int(b) >= 1})
    if not sizes:
        raise ParameterError(f"batch sizes {list(batch_sizes)} hold no positive size", "give e.g. 1,2,4,8")

    points: list[PredictionPoint] = []
    best_k: dict[int, int] = {}
    for b in sizes:
        base = step_ms(target_step, b, b * context_tokens)
        spec, t_target, t_draft = _spec_tpot(target_step, draft_step, b, k, e_of(k), context_tokens)
        points.append(
            PredictionPoint(
                batch_size=b, speedup=base / spec, tpot_baseline_ms=base, tpot_spec_ms=spec,
                target_step_ms=t_target, draft_step_ms=t_draft,
            )
        )
        kk_best, s_best = 0, 1.0
        for kk in range(1, k_max + 1):
            s = base / _spec_tpot(target_step, draft_step, b, kk, e_of(kk), context_tokens)[0]
            if s > s_best + 1e-9:
                kk_best, s_best = kk, s
        best_k[b] = kk_best
    crossover = next((p.batch_size for p in points if p.speedup < 1.0), None)
    t1 = step_ms(target_step, 1, context_tokens)
    c = (step_ms(draft_step, 1, context_tokens) / t1) if draft_step is not None else 0.0
    pred = Prediction(
        target=target, draft=draft, method=method, num_speculative_tokens=k, acceptance=a,
        acceptance_per_position=positions, expected_tokens_per_step=e_of(k), cost_ratio=c,
        optimal_k=best_k[sizes[0]] if sizes[0] == 1 else optimal_k(a, c, k_max),
        optimal_k_by_batch_size=best_k, points=points, crossover_batch_size=crossover,
        target_step=target_step, draft_step=draft_step,
        assumptions=[
            f"context of {context_tokens:.0f} tokens per sequence read from the KV cache each step",
            "one verification pass of batch*(k+1) tokens plus k draft passes of batch tokens per step",
            f"step-time model: target {target_step.source}, draft {draft_step.source if draft_step else 'free (n-gram)'}",
        ],
    )
    pred.finding = finding(pred)
    return pred


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


def compare(pred: Prediction, measured: dict[int, float]) -> PredictionCheck:
    """Predicted vs measured speedup at the measured concurrency levels (interpolated in log batch)."""
    if not measured:
        raise ParameterError("no measured speedups to compare with", "run the load test (50_load) first")
    xs = [p.batch_size for p in pred.points]
    ys = [p.speedup for p in pred.points]
    levels = sorted(measured)
    predicted = [_interp_log(xs, ys, lv) for lv in levels]
    meas = [measured[lv] for lv in levels]
    rel = [abs(p - m) / m if m else math.inf for p, m in zip(predicted, meas, strict=True)]
    return PredictionCheck(
        concurrency=levels, measured_speedup=meas, predicted_speedup=predicted,
        relative_error=rel, mean_abs_relative_error=sum(rel) / len(rel),
    )


def _interp_log(xs: Sequence[int], ys: Sequence[float], x: float) -> float:
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    for i in range(len(xs) - 1):
        x0, y0, x1, y1 = xs[i], ys[i], xs[i + 1], ys[i + 1]
        if x0 <= x <= x1:
            w = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return y0 + w * (y1 - y0)
    return ys[-1]


# -- from a run's evidence ---------------------------------------------------------------------
def calibrated_prediction(ev, *, batch_sizes: Sequence[int] | None = None, draft_param_ratio: float | None = None,
                          context_tokens: float = 512) -> Prediction | None:
    """Predict from a run's own single-request measurements (``Evidence``), or None if they are missing.

    Uses the sweep's per-position acceptance at the load test's temperature (what the prediction
    is checked against), TPOT at concurrency 1 with and without speculation, and the target's step
    time vs batch from the baseline's TPOT at each load (else the prefill slope of lone requests).
    No speculative measurement above concurrency 1 is used: that is what is predicted.
    """
    k = ev.num_speculative_tokens
    if not k or ev.tpot_c1_baseline_ms is None:
        return None
    temp = ev.load_temperature if ev.load_temperature is not None else ev.acceptance_temperature
    positions: list[float] = []
    if ev.per_position_by_temperature and temp is not None:
        nearest = min(ev.per_position_by_temperature, key=lambda t: abs(t - temp))
        positions = ev.per_position_by_temperature[nearest]
    positions = positions or ev.acceptance_per_position
    acceptance = None
    if not positions:
        acc = ev.load_levels[0].acceptance_rate if ev.load_levels else None
        if acc is None:
            return None
        acceptance = iid_acceptance(1 + acc * k, k)
    e = expected_tokens_from_positions(positions, k) if positions else expected_tokens(acceptance, k)
    draft_free = ev.method in ("ngram", "suffix")
    target_step, draft_step = calibrate_from_measurements(
        tpot_baseline_ms=ev.tpot_c1_baseline_ms, tpot_spec_ms=ev.tpot_c1_spec_ms, expected_tokens_per_step=e,
        num_speculative_tokens=k, prefill_points=ev.prefill_points,
        baseline_points=[(x.concurrency, x.tpot_p50_baseline_ms) for x in ev.load_levels
                         if ev.load_kind == "concurrency" and x.tpot_p50_baseline_ms],
        draft_param_ratio=draft_param_ratio if draft_param_ratio is not None else ev.draft_param_ratio,
    )
    if draft_free and draft_step is not None:
        # n-gram lookup costs CPU time per step, not per token: keep it as a fixed draft overhead.
        draft_step = draft_step.model_copy(update={"name": "ngram lookup", "compute_ms_per_token": 0.0})
    sizes = batch_sizes or sorted({int(x.concurrency) for x in ev.load_levels} | {1, 2, 4, 8, 16, 32})
    return predict(
        target_step=target_step, draft_step=draft_step, num_speculative_tokens=k, acceptance=acceptance,
        acceptance_per_position=positions, batch_sizes=sizes, context_tokens=context_tokens,
        target=ev.target or "target", draft=ev.draft or "draft", method=ev.method or "draft_model",
    )


# -- from catalog facts ------------------------------------------------------------------------
def roofline_from_specs(spec, gpu, *, name: str, tp: int = 1, precision: str = "bf16", kv_cache_dtype: str = "auto",
                        overhead_ms: float = 0.5) -> StepTimeModel:
    """A roofline step model for a model (``ModelSpec``) on an accelerator (``GPUSpec``) at TP ``tp``.

    FLOPs per token are 2 x the parameters active per token; bytes are the weights at ``precision``
    plus the KV cache read per context token.
    """
    from .memory import kv_bytes_per_token, kv_layers
    from .models import total_params
    from .quantization import model_weight_bytes

    tflops = (gpu.fp8_tflops if precision in ("fp8", "int8", "int4") and gpu.fp8_tflops else gpu.bf16_tflops) or 0
    params = spec.active_param_count * 1e9 if spec.active_param_count else total_params(spec)
    return roofline_step_model(
        name, num_params=params, weight_bytes=model_weight_bytes(spec, precision),
        kv_bytes_per_token=kv_bytes_per_token(kv_layers(spec, tp, kv_cache_dtype)) * tp,
        bandwidth_gbs=gpu.bandwidth_gbs or 0, tflops=tflops, num_devices=tp, overhead_ms=overhead_ms,
    )


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
    return out
