"""Gather the step results of a run directory into the flat :class:`Evidence` the rules read.

Reads whichever of ``artifacts/00_preflight.json`` ... ``50_load.json`` (and ``lossless.json``)
exist; a missing step leaves its fields None and the rules that need them say ``unknown``. A result
file that cannot be parsed, a step that reported 'failed' or measured nothing, and (from run.json)
a step the run asked for that failed or left no result are reported in ``steps_failed``: the
decision is then INCONCLUSIVE naming them.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from . import step_growth
from .artifacts import (
    RunDir,
    describe_nonfinite,
    loads_finite,
    nonfinite_field,
    read_jsonl,
    run_state,
    run_state_unreadable,
)
from .schemas.decision import Evidence, LoadLevel
from .schemas.drafts import DraftsResult
from .schemas.load import LoadResult
from .schemas.lossless import LosslessResult
from .schemas.memory import MemoryResult
from .schemas.preflight import PreflightResult
from .schemas.quantization import QuantizationResult
from .schemas.sweep import SweepPoint, SweepResult
from .stats import interpolate

STEP_FILES = {
    "00_preflight": "00_preflight.json",
    "10_drafts": "10_drafts.json",
    "20_memory": "20_memory.json",
    "30_quantization": "30_quantization.json",
    "40_sweep": "40_sweep.json",
    "50_load": "50_load.json",
}


def _read(run: RunDir, name: str, model: type[BaseModel] | None, ev: Evidence) -> Any:
    path = run.artifact(name)
    if not path.exists():
        return None
    step = name.removesuffix(".json")
    try:
        data = loads_finite(path.read_text(), path.name)  # NaN / Infinity: damaged, as a truncated file is
        obj = model.model_validate(data) if model else data
    except (ValueError, ValidationError) as exc:
        ev.steps_failed.append(f"{step}: unreadable result ({str(exc).splitlines()[0]})")
        return None
    ev.steps_present.append(step)
    status = getattr(obj, "status", None) if model else data.get("status")
    nothing = measured_nothing(step, data) if isinstance(data, dict) else None
    finding = getattr(obj, "finding", None) if model else data.get("finding")
    if status == "failed":
        ev.steps_failed.append(f"{step}: the step reported status 'failed'" + (f" ({finding})" if finding else ""))
    elif nothing:
        ev.steps_failed.append(f"{step}: {nothing}")
    if finding:
        ev.findings[step] = finding
    return obj


def measured_nothing(step: str, data: dict) -> str | None:
    """Why a measuring step's result (raw JSON) holds no measurement at all, or None.

    40_sweep: no point answered a request; 50_load: no level measured a request. The runner uses it
    too, so such a step counts as failed and `playbook run` exits non-zero."""
    if step == "40_sweep":
        pts = [*(data.get("temperatures") or []), *(data.get("points") or [])]
        if not any((x.get("requests") or 0) > 0 or x.get("acceptance_rate") is not None for x in pts):
            return "no request was answered: nothing was measured"
    if step == "50_load":
        lv = [x for x in data.get("levels") or [] if x.get("status", "ok") == "ok" and (x.get("requests") or 0) > 0]
        if not lv and not data.get("speedup"):
            return "no load level was measured"
    return None


def _from_run_state(run: RunDir, ev: Evidence) -> None:
    """Steps run.json records as failed or interrupted, or done without a result file. Preflight's
    failed checks do not count when the run went on past them (``--force``: run.json says done)."""
    steps = run_state(run).get("steps") or []
    if any(st.get("name") == "00_preflight" and st.get("status") == "done" for st in steps):
        forced = [f for f in ev.steps_failed if f.startswith("00_preflight:")]  # failed checks, run with --force
        ev.steps_failed = [f for f in ev.steps_failed if f not in forced]
        if forced:
            ev.findings["00_preflight"] = ev.findings.get("00_preflight", "") + " (the run went on: playbook run --force)"
    already = {f.split(":", 1)[0] for f in ev.steps_failed}
    for st in steps:
        name, status = st.get("name", ""), st.get("status")
        if name in already or name == "90_report":
            continue
        if status in ("failed", "interrupted"):
            ev.steps_failed.append(f"{name}: {(st.get('error') or status).splitlines()[0][:300]}")
        elif status == "running":  # only the report runs while it reads this: the step was killed mid-way
            ev.steps_failed.append(f"{name}: did not finish (the run was killed while it ran)")
        elif status == "done" and name in STEP_FILES and not run.artifact(STEP_FILES[name]).exists():
            ev.steps_failed.append(f"{name}: finished but wrote no result ({STEP_FILES[name]})")


def gather(run_dir: str | Path | RunDir, production_temperature: float | None = None, params: Any = None) -> Evidence:
    """Evidence from every step result present in the run directory.

    ``params`` (a StepParams) fills what no step recorded: target, draft, method and k as configured.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir, create=False)
    ev = Evidence(run_dir=str(run.path))
    if params is not None:
        ev.method = params.method
        ev.num_speculative_tokens = params.num_speculative_tokens
        ev.target = params.target_model
        ev.draft = params.draft_model if params.method == "draft_model" else ""
    _versions(run, ev)
    pre = _read(run, STEP_FILES["00_preflight"], PreflightResult, ev)
    if pre is not None:
        _from_preflight(pre, ev)
    drafts = _read(run, STEP_FILES["10_drafts"], DraftsResult, ev)
    if drafts is not None:
        _from_drafts(drafts, ev)
    mem = _read(run, STEP_FILES["20_memory"], MemoryResult, ev)
    if mem is not None:
        _from_memory(mem, ev)
    quant = _read(run, STEP_FILES["30_quantization"], QuantizationResult, ev)
    if quant is not None:
        _from_quantization(quant, ev)
    sweep = _read(run, STEP_FILES["40_sweep"], SweepResult, ev)
    if sweep is not None:
        _from_sweep(sweep, ev, production_temperature)
    load = _read(run, STEP_FILES["50_load"], LoadResult, ev)
    records = _records(run) if sweep is not None or load is not None else []
    if sweep is not None:
        ev.spec_step_growth = step_growth.growth(
            step_growth.steps_by_inflight(r for r in records if str(r.get("phase", "")).startswith("sweep:")),
            "40_sweep_requests.jsonl (the speculative server)")
    if load is not None:
        _from_load(load, ev, getattr(params, "max_error_rate", None))
        ev.prefill_points = prefill_points(records)
        if ev.load_kind == "concurrency":
            steps = step_growth.typical_steps(records, "baseline")
            for lv in ev.load_levels:
                lv.step_p50_baseline_ms = steps.get(int(lv.concurrency))
    _from_candidates(run, ev)
    lossless = _read(run, "lossless.json", LosslessResult, ev)
    if lossless is not None and lossless.lossless is not None:
        _from_lossless(lossless, ev)
    _nonfinite_inputs(ev)
    _mixed_parameters(run, ev)
    _from_run_state(run, ev)
    return ev


# -- steps run with different parameters --------------------------------------------------------
IDENTITY = ("target", "draft", "method", "num_speculative_tokens", "mode", "max_model_len", "gpu")
_PARAM_NAMES = {"target_model": "target", "draft_model": "draft", "method": "method",
                "num_speculative_tokens": "num_speculative_tokens", "mode": "mode", "max_model_len": "max_model_len",
                "gpu": "gpu"}


def _result_identity(run: RunDir) -> dict[str, dict[str, Any]]:
    """What each step result records of the configuration it was computed or measured for (names as the step resolved
    them: 20_memory's budget says 'embedded-target', 'H100-SXM'; a value recorded unresolved, as 'embedded', is resolved
    here as :func:`identity_of` resolves the notebooks': one model under two spellings is one model). 30_quantization is
    left out (it measures other precision pairs on purpose), as are the compared candidates (each in its own run
    directory)."""
    out: dict[str, dict[str, Any]] = {}
    seen: dict[tuple[str, str], Any] = {}  # a name resolved once per gather

    def resolved(field: str, value: Any) -> Any:
        if field not in ("target", "draft", "gpu") or not isinstance(value, str):
            return value
        if (field, value) not in seen:
            seen[(field, value)] = _resolved(field, value, role=field)
        return seen[(field, value)]
    for step, name in STEP_FILES.items():
        try:
            data = loads_finite(run.artifact(name).read_text(), name) if run.artifact(name).exists() else None
        except (OSError, ValueError):
            continue  # reported by _read
        if not isinstance(data, dict) or step == "30_quantization":
            continue
        src = data.get("budget") if step == "20_memory" and isinstance(data.get("budget"), dict) else data
        if isinstance(data.get("measured_for"), dict):  # 40_sweep, 50_load: the parameters they measured with
            src = {**data["measured_for"], **{k: v for k, v in src.items() if k in IDENTITY and v not in (None, "")}}
        ident = {k: src.get(k) for k in IDENTITY if k in src}
        if step == "20_memory" and not ident.get("draft"):
            ident.pop("draft", None)  # a method without a draft checkpoint (n-gram, MTP)
        if step in ("00_preflight",):
            ident = {"mode": data.get("mode")} if data.get("mode") else {}
        if step == "10_drafts":
            ident = {"target": data.get("target")}
        out[step] = {k: resolved(k, v) for k, v in ident.items() if v not in (None, "")}
    return out


def _resolved(field: str, value: Any, role: str = "target") -> Any:
    """A parameter value as the steps record it: a model by the name the steps' own resolver gives it
    (:func:`models.resolve`: 'embedded' -> 'embedded-target'), a GPU by its catalog name; the value itself when it
    cannot be resolved here."""
    from .errors import PlaybookError

    try:
        if field in ("target", "draft"):
            from . import models

            return models.resolve(str(value), role).name
        if field == "gpu":
            from .gpus import get_gpu

            return get_gpu(str(value)).name
    except (PlaybookError, OSError, ValueError):
        return value
    return value


def _notebook_identity(run: RunDir) -> dict[str, dict[str, Any]]:
    """The parameters each executed step notebook in notebooks/ ran with (papermill's record), resolved as the steps
    record them. The report notebook (run again by `playbook report` with the report's own parameters) is left out."""

    out: dict[str, dict[str, Any]] = {}
    for step in STEP_FILES:
        path = run.notebooks / f"{step}.ipynb"
        if not path.is_file():
            continue
        try:
            params = (json.loads(path.read_text()).get("metadata") or {}).get("papermill", {}).get("parameters") or {}
        except (OSError, ValueError, AttributeError):
            continue
        if not isinstance(params, dict):
            continue
        out[step] = identity_of(params)
    return out


def identity_of(params: dict[str, Any]) -> dict[str, Any]:
    """The configuration step parameters (a step model's dump, or papermill's record of a notebook's) describe, as
    the steps record it (:data:`IDENTITY`; models and GPU resolved, no draft for a method without one)."""
    from .memory import uses_draft

    ident = {field: params[name] for name, field in _PARAM_NAMES.items() if params.get(name) not in (None, "")}
    if "draft" in ident and not uses_draft(str(params.get("method", "draft_model")), str(ident["draft"])):
        ident.pop("draft")
    for field in ("target", "draft", "gpu"):
        if field in ident:
            ident[field] = _resolved(field, ident[field], role=field)
    return ident


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return str(a).strip().lower() == str(b).strip().lower()


def mixed_parameters(run: RunDir) -> list[tuple[str, list[tuple[Any, list[str]]]]]:
    """Each identity field (target, draft, method, k, mode, max_model_len, gpu) on which the run's steps disagree, with
    its values and where each was recorded: ('target', [('Llama-3.1-8B', ['20_memory']), ('embedded-target',
    ['40_sweep notebook'])]). A `playbook run` gives every step the same parameters; an interactive directory
    (runs/interactive), or a step run again into the run with other parameters, does not, and its report would mix them."""
    claims: list[tuple[str, str, Any]] = []  # (field, where, value)
    for step, ident in _result_identity(run).items():
        claims += [(f, step, v) for f, v in ident.items()]
    for step, ident in _notebook_identity(run).items():
        claims += [(f, f"{step} notebook", v) for f, v in ident.items()]
    out = []
    for field in IDENTITY:
        groups: list[tuple[Any, list[str]]] = []
        for f, where, value in claims:
            if f != field:
                continue
            group = next((g for g in groups if _same(g[0], value)), None)
            if group is None:
                groups.append((value, [where]))
            elif where not in group[1]:
                group[1].append(where)
        if len(groups) > 1:
            out.append((field, groups))
    return out


def _mixed_parameters(run: RunDir, ev: Evidence) -> None:
    """Steps computed or measured for different configurations: the verdict would mix them -> INCONCLUSIVE."""
    mixed = mixed_parameters(run)
    if not mixed:
        return
    def names(where: list[str], other: list[str]) -> str:  # '20_memory' for a result, '20_memory notebook' only if both disagree
        steps = [w if w.split(" ", 1)[0] in {o.split(" ", 1)[0] for o in other} else w.split(" ", 1)[0] for w in where]
        return ", ".join(dict.fromkeys(steps))

    parts, odd = [], set()
    for field, groups in mixed:
        main = max(groups, key=lambda g: len({w.split(" ", 1)[0] for w in g[1]}))
        others = [w for _, where in groups for w in where]
        parts.append(f"{field} " + " vs ".join(
            f"{v} ({names(where, [o for o in others if o not in where])})" for v, where in groups))
        odd |= {w.split(" ", 1)[0] for v, where in groups if (v, where) != main for w in where}
    unfinished = {step: st for step in odd if (st := _result_status(run, step)) in ("partial", "failed")}
    if unfinished and len(unfinished) == len(odd):  # cut off part-way: resuming measures it again, in this directory
        what = "; ".join(parts)
        for step, st in sorted(unfinished.items()):
            ev.steps_failed.append(f"{step}: its {st} result records other parameters than the rest of the run "
                                   f"({what}); resuming the run measures the step again with the run's parameters")
        ev.findings["parameters"] = (f"{'/'.join(sorted(unfinished))} stopped part-way and records other parameters "
                                     f"({what}): resume the run (playbook run --resume) to measure it again")
        return
    facts = f"the steps were run with different parameters: {'; '.join(parts)}"
    ev.steps_failed.append(f"{'/'.join(sorted(odd))}: {facts}")  # decide.failed_steps says what to do
    ev.findings["parameters"] = (f"{facts}; their results cannot be judged together: re-run one of them with the "
                                 "same parameters as the others (or use a new run directory)")


def _result_status(run: RunDir, step: str) -> str | None:
    """The status a step's result file reports (ok, partial, failed), None without a readable one."""
    name = STEP_FILES.get(step)
    try:
        data = loads_finite(run.artifact(name).read_text(), name) if name and run.artifact(name).exists() else None
    except (OSError, ValueError):
        return None
    return data.get("status") if isinstance(data, dict) else None


# Where an Evidence field comes from, for naming the step when one holds NaN/Infinity (the rest: "evidence").
_FIELD_STEP = (("acceptance", "40_sweep"), ("per_position", "40_sweep"), ("proposal_rate", "40_sweep"),
               ("mean_acceptance", "40_sweep"), ("sweep_points", "40_sweep"), ("spec_step_growth", "40_sweep"),
               ("winner_load", "50_candidates"), ("load", "50_load"), ("tpot_c1", "50_load"), ("prefill", "50_load"),
               ("quant", "30_quantization"), ("usable", "20_memory"), ("gpu_memory", "20_memory"),
               ("kv_cache", "20_memory"), ("target_weights", "20_memory"), ("draft_weights", "20_memory"),
               ("max_concurrency", "20_memory"), ("draft_param_ratio", "10_drafts"))


def _nonfinite_inputs(ev: Evidence) -> None:
    """A NaN or Infinity that reached the evidence by another road than a step result (a candidate's own
    50_load.json, a computed ratio): the verdict must not rest on it (INCONCLUSIVE naming the step)."""
    data = ev.model_dump(include=set(Evidence.model_fields) - {"run_dir", "steps_present", "steps_failed", "findings",
                                                                "missing_fields", "versions"})
    for name, value in data.items():
        bad = nonfinite_field(value, name)
        if bad is None:
            continue
        step = next((s for prefix, s in _FIELD_STEP if name.startswith(prefix)), "evidence")
        if not any(f.startswith(f"{step}:") for f in ev.steps_failed):
            ev.steps_failed.append(f"{step}: {bad[0]} is {describe_nonfinite(bad[1])}: a damaged number cannot be "
                                   "judged; re-run the step")


def _versions(run: RunDir, ev: Evidence) -> None:
    if run_state_unreadable(run):
        ev.steps_failed.append("run.json: unreadable")
    versions = run_state(run).get("versions") or {}
    ev.versions.update({k: str(v) for k, v in versions.items() if v is not None})
    from importlib.metadata import PackageNotFoundError, version

    from .specconfig import installed_vllm

    try:
        ev.versions.setdefault("playbook", version("specdecode-playbook"))
    except PackageNotFoundError:
        pass
    if vllm := installed_vllm():
        ev.versions.setdefault("vllm_installed_here", vllm[1])


# -- per step ----------------------------------------------------------------------------------
def _from_preflight(pre: PreflightResult, ev: Evidence) -> None:
    if pre.vllm_version:
        ev.versions.setdefault("vllm", pre.vllm_version)
        ev.versions.setdefault("vllm_build", pre.vllm_build)
    ev.spec_metrics = list(pre.spec_metrics)
    if any(c.name.startswith("spec server") and c.status == "ok" for c in pre.checks):
        ev.acceptance_counters = bool(pre.spec_metrics)


def _from_drafts(d: DraftsResult, ev: Evidence) -> None:
    """10_drafts: the top-ranked candidate and its size ratio."""
    ev.best_draft = d.best or None
    best = next((c for c in d.candidates if c.name == d.best), None)
    if best is not None and best.ratio:
        ev.draft_param_ratio = 1 / best.ratio
    if not ev.target:
        ev.target = d.target


def _from_memory(mem: MemoryResult, ev: Evidence) -> None:
    b = mem.budget
    ev.target_weights_gib = b.target_weights_per_gpu_gib
    ev.draft_weights_gib = b.draft_weights_per_gpu_gib
    if b.draft_share_of_usable and b.draft_weights_per_gpu_gib:
        ev.usable_memory_gib = b.draft_weights_per_gpu_gib / b.draft_share_of_usable
    else:
        ev.usable_memory_gib = b.usable_gib or b.kv_cache_gib + b.target_weights_per_gpu_gib + b.draft_weights_per_gpu_gib
    ev.gpu_memory_gib = b.gpu_memory_gib
    if b.target_share_of_vram and b.target_weights_per_gpu_gib:
        ev.gpu_memory_gib = b.target_weights_per_gpu_gib / b.target_share_of_vram
    ev.max_concurrency_baseline = b.concurrency_at_context_without_draft
    ev.memory_fits = b.fits
    ev.max_concurrency_spec = b.concurrency_at_context
    ev.memory_context_length = b.context_length
    ev.kv_cache_tokens = b.kv_cache_tokens
    ev.num_gpus = b.num_gpus
    ev.precision_in_use = (b.target_quant, b.draft_quant)
    if not ev.target:
        ev.target = b.target
    if not ev.draft:
        ev.draft = b.draft


def _from_quantization(q: QuantizationResult, ev: Evidence) -> None:
    """30_quantization: the acceptance drop of the precision pair in use (from 20_memory), else the worst measured."""
    rows = [r for r in q.acceptance if r.drop_pp is not None]
    if not rows:
        ev.missing_fields.append("30_quantization: no measured acceptance drop (drop_pp)")
        return
    in_use = next((r for r in rows if (r.target_quant, r.draft_quant) == ev.precision_in_use), None)
    row = in_use or max(rows, key=lambda r: r.drop_pp)
    ev.quant_acceptance_drop_pp = row.drop_pp
    ev.quant_config = f"target {row.target_quant} / draft {row.draft_quant}" + ("" if in_use else " (largest measured drop)")


def _nearest(points: Iterable[SweepPoint], temperature: float) -> SweepPoint | None:
    pts = [p for p in points if p.acceptance_rate is not None]
    return min(pts, key=lambda p: abs(p.temperature - temperature)) if pts else None


def _between_temperatures(points: Iterable[SweepPoint], t: float, ev: Evidence) -> None:
    """At a production temperature between two swept ones, the per-request P10, mean acceptance length, proposal rate
    and per-position rates interpolated between them, as the acceptance is: the nearest point's (say T=0's P10 for
    T=0.2 between 0 and 0.8) would judge the tail at a temperature production does not run."""
    pts = sorted((p for p in points if p.acceptance_rate is not None), key=lambda p: p.temperature)
    lo = next((p for p in reversed(pts) if p.temperature < t), None)
    hi = next((p for p in pts if p.temperature > t), None)
    if lo is None or hi is None or any(abs(p.temperature - t) < 1e-9 for p in pts):
        return
    w = (t - lo.temperature) / (hi.temperature - lo.temperature)

    def mix(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a + w * (b - a)

    ev.acceptance_p10 = mix(lo.per_request_p10, hi.per_request_p10)
    ev.mean_acceptance_length = mix(lo.mean_acceptance_length, hi.mean_acceptance_length)
    ev.proposal_rate = mix(lo.proposal_rate, hi.proposal_rate)
    if lo.per_position and len(lo.per_position) == len(hi.per_position):
        ev.acceptance_per_position = [a + w * (b - a) for a, b in zip(lo.per_position, hi.per_position, strict=True)]


def _from_sweep(s: SweepResult, ev: Evidence, production_temperature: float | None) -> None:
    t = s.production_temperature if production_temperature is None else production_temperature
    ev.method = s.method or ev.method
    ev.num_speculative_tokens = s.num_speculative_tokens or ev.num_speculative_tokens
    ev.acceptance_by_temperature = {p.temperature: p.acceptance_rate for p in s.temperatures if p.acceptance_rate is not None}
    ev.acceptance_temperature = t
    if ev.acceptance_counters is None and any(p.requests for p in s.temperatures):  # nothing answered: not known
        ev.acceptance_counters = any(p.source in ("counters", "legacy_gauge") for p in s.temperatures)
    ev.per_position_by_temperature = {p.temperature: list(p.per_position) for p in s.temperatures if p.per_position}
    if production_temperature is None or production_temperature == s.production_temperature:
        ev.acceptance_production = s.production_acceptance
    if ev.acceptance_production is None and ev.acceptance_by_temperature:
        curve = ev.acceptance_by_temperature
        ev.acceptance_production = interpolate(t, list(curve), list(curve.values()))
    temps = sorted(ev.acceptance_by_temperature)
    if temps and t not in temps:
        ev.acceptance_note = (f"interpolated between the sweep's T={max(x for x in temps if x < t):g} and "
                              f"T={min(x for x in temps if x > t):g}") if temps[0] < t < temps[-1] \
            else f"the sweep measured only T={', '.join(f'{x:g}' for x in temps)}; nearest used"
    near = _nearest(s.temperatures, t)
    if near is not None:
        ev.acceptance_per_position = list(near.per_position)
        ev.acceptance_p10 = near.per_request_p10
        ev.mean_acceptance_length = near.mean_acceptance_length
        ev.proposal_rate = near.proposal_rate
        _between_temperatures(s.temperatures, t, ev)
    by_wl: dict[str, SweepPoint] = {}
    for p in s.points:
        if p.acceptance_rate is None or p.workload == "all":
            continue
        if p.workload not in by_wl or abs(p.temperature - t) < abs(by_wl[p.workload].temperature - t):
            by_wl[p.workload] = p
    ev.acceptance_by_workload = {w: p.acceptance_rate for w, p in by_wl.items()}
    ev.sweep_points = [p.model_dump(exclude={"per_request"}) for p in s.points]


def _mix_temperature(workload: str, default: float) -> float | None:
    """Share-weighted mean temperature of a mix like 'structured:0.6@0.1,creative:0.4@1.0', else None."""
    from .errors import PlaybookError
    from .workloads import _is_mix, parse_mix

    try:
        if not workload or not _is_mix(workload):
            return None
        parts = parse_mix(workload)
    except PlaybookError:
        return None
    total = sum(share for _, share, _ in parts) or 1.0
    return sum(share * (default if t is None else t) for _, share, t in parts) / total


def _from_load(load: LoadResult, ev: Evidence, max_error_rate: float | None = None) -> None:
    """50_load: one LoadLevel per speedup point. A level the load test excluded or found
    inconclusive (bursts, client/server disagreement, drift, errors) keeps its status and reason, but its
    speedup is withheld: it never counts as a win or a loss, nor feeds the predictor's check. With the report's
    ``max_error_rate`` (its parameters), a level of which a configuration lost more requests than that is excluded
    here too: a result measured before the load test excluded such levels, an import, a lower threshold."""
    from .load_analysis import error_problems, restore

    ev.load_kind = load.level_kind
    ev.load_error_rate = load.error_rate
    ev.load_imported_from = str((load.source or {}).get("tool") or "")
    ev.load_missing_levels = list(load.missing_levels)
    if load.missing_levels:
        ev.findings["50_load"] = ((load.finding + "; ") if load.finding and load.speedup else "") + \
            "levels not measured: " + "; ".join(load.missing_levels)
    mix_t = _mix_temperature(load.workload, load.temperature)
    ev.load_temperature = load.temperature if mix_t is None else round(mix_t, 4)
    ev.load_workload = load.workload
    ev.load_mixed = [c.model_dump() for c in load.mixed]
    stats = {(x.config, x.level): x for x in load.levels if x.status == "ok"}
    levels: list[LoadLevel] = []
    for sp in load.speedup:
        b, s = stats.get(("baseline", sp.level)), stats.get(("spec", sp.level))
        restored, errors = "", error_problems({"baseline": b, "spec": s}, max_error_rate)
        if max_error_rate is not None and sp.excluded_for == ["errors"] and b is not None and s is not None \
                and not errors:
            was = sp.reason
            sp = sp.model_copy(deep=True)
            if restore(sp):  # excluded by the load test's threshold for failed requests, within the report's
                restored = (f"counted: its failed requests are within max_error_rate {max_error_rate:.0%} (the load "
                            f"test excluded it: {was})")
        status = getattr(sp, "status", "ok")
        errors = errors if status == "ok" else []
        if errors:  # its latencies come from the requests that survived: not a speedup to judge
            status = "excluded"
        if restored and status == "ok":
            note = f"{'concurrency' if load.level_kind == 'concurrency' else 'rate'} {sp.level:g}: {restored}"
            ev.findings["50_load"] = "; ".join(x for x in (ev.findings.get("50_load", ""), note) if x)
        lv = LoadLevel(concurrency=sp.level, status=status,
                       reason="; ".join(errors) or restored or getattr(sp, "reason", ""),
                       temperature=getattr(sp, "temperature", None) if getattr(sp, "temperature", None) is not None
                       else ev.load_temperature)
        if status == "ok":
            lv.speedup, lv.speedup_ci_low, lv.speedup_ci_high = sp.speedup, sp.ci_low, sp.ci_high
            lv.throughput_ratio = sp.throughput_ratio
        if b is not None:
            lv.tpot_p50_baseline_ms, lv.tpot_p99_baseline_ms = b.tpot_ms.p50, b.tpot_ms.p99
            lv.ttft_p50_baseline_ms, lv.ttft_p99_baseline_ms = b.ttft_ms.p50, b.ttft_ms.p99
            lv.throughput_baseline_tok_s = b.output_tok_s
        if s is not None:
            lv.tpot_p50_spec_ms, lv.tpot_p99_spec_ms = s.tpot_ms.p50, s.tpot_ms.p99
            lv.ttft_p50_spec_ms, lv.ttft_p99_spec_ms = s.ttft_ms.p50, s.ttft_ms.p99
            lv.acceptance_rate = s.acceptance_rate
            lv.throughput_spec_tok_s = s.output_tok_s
        errs = [x.error_rate for x in (b, s) if x is not None]
        lv.error_rate = max(errs) if errs else None
        levels.append(lv)
    ev.load_levels = sorted(levels, key=lambda x: x.concurrency)
    if ev.load_levels and load.level_kind == "concurrency":
        low = ev.load_levels[0]
        if low.concurrency == 1 and low.status == "ok":
            ev.tpot_c1_baseline_ms, ev.tpot_c1_spec_ms = low.tpot_p50_baseline_ms, low.tpot_p50_spec_ms
    if load.lossless is not None and load.lossless.lossless is not None:
        _from_lossless(load.lossless, ev)


def _from_candidates(run: RunDir, ev: Evidence) -> None:
    """50_candidates.json (helpers/candidates.py): the measured choice, and the winner's levels when it is
    not the step's own configuration."""
    from . import candidates

    if run.artifact(candidates.RESULT).exists():
        try:
            loads_finite(run.artifact(candidates.RESULT).read_text(), candidates.RESULT)
        except ValueError as exc:  # candidates.read would drop it silently: the choice would rest on the primary alone
            ev.steps_failed.append(f"50_candidates: unreadable result ({str(exc).splitlines()[0]})")
            return
    comp = candidates.read(run)
    if comp is None:
        return
    top = next((c for c in comp.candidates if c.label == comp.winner), None)
    ev.candidates = {
        "primary": next((c.label for c in comp.candidates if c.primary), ""), "winner": comp.winner,
        "measured": [c.label for c in comp.candidates if c.status == "measured"], "winner_method": comp.winner_method,
        "winner_k": candidates.launch_k(comp), "win_levels": comp.win_levels,
        "k_table": candidates.launched_table(comp), "k_table_measured": comp.k_table,
        "launch_check": comp.launch_check.finding if comp.launch_check is not None else "",
        "winner_window": [top.candidate.lookup_min, top.candidate.lookup_max] if top and top.candidate.lookup_min else None,
        "k_zero_note": comp.k_zero_note, "finding": comp.finding}
    won = candidates.winner_load(run.path, comp)
    if won is not None:
        scratch = Evidence()
        _from_load(won, scratch)
        ev.winner_load_levels = scratch.load_levels


def _from_lossless(res: LosslessResult, ev: Evidence) -> None:
    ev.lossless_passed = res.lossless
    bad = [p for p in res.temperatures if p.lossless is False]
    ev.lossless_detail = "; ".join(f"T={p.temperature:g}: {p.reason}" for p in bad) or res.finding


# -- raw records -------------------------------------------------------------------------------
def _records(run: RunDir) -> list[dict]:
    out: list[dict] = []
    for path in sorted(run.artifacts.glob("*.jsonl")):
        out.extend(r for r in read_jsonl(path) if "ttft_ms" in r and "prompt_tokens" in r)
    return out


def prefill_points(records: Iterable[dict], max_points: int = 400) -> list[tuple[float, float]]:
    """(prompt tokens, median TTFT ms) from baseline requests sent alone (phase 'baseline@c1[/...]').

    TTFT of a lone request is one prefill pass: its slope in prompt tokens is the cost of one more
    token in a forward pass, which is what verifying k+1 tokens costs on a compute-bound device.
    """
    by_len: dict[int, list[float]] = {}
    for r in records:
        if r.get("status") != "ok" or r.get("warmup"):
            continue
        if step_growth.load_level(str(r.get("phase", ""))) != ("baseline", 1):
            continue
        if r.get("prompt_tokens") and r.get("ttft_ms"):
            by_len.setdefault(int(r["prompt_tokens"]), []).append(float(r["ttft_ms"]))
    pts = [(float(n), statistics.median(v)) for n, v in sorted(by_len.items())]
    return pts[:max_points]
