"""The playbook, one function per step, in pipeline order. Notebooks and CLI commands call these.

Each step takes its parameters model (``helpers/params.py``) and a run directory, writes its result
to ``artifacts/<step>.json`` (a partial result before any server is touched, so an interrupted step
leaves what it knew) and returns the result model. The notebooks only show what comes back.

    00 preflight     can this node, its vLLM and its server(s) run the playbook at all?
    10 drafts        which draft (or draft-free method) can this target use?
    20 memory        what does the draft cost in KV cache and concurrency?
    30 quantization  which precision pair fits and keeps acceptance?
    40 sweep         how often does the target accept the draft, by temperature?
    50 load          is speculation faster under load, and up to which load?
    90 report        GO / GO WITH LIMITS / NO-GO / INCONCLUSIVE, with the launch command and monitoring
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import calibration, decide, evidence, gpus, models, monitoring, ops_outputs, prediction_check, summary
from . import drafts as _drafts
from . import memory as _memory
from . import preflight as _preflight
from . import quantization as _quantization
from .artifacts import RunDir, write_json_atomic
from .params import (
    DraftsParams,
    LoadParams,
    MemoryParams,
    PreflightParams,
    QuantizationParams,
    ReportParams,
    SweepParams,
)
from .redact import host_warning
from .schemas.drafts import DraftsResult
from .schemas.load import LoadResult
from .schemas.memory import MemoryResult
from .schemas.models import GPUSpec, ModelSpec
from .schemas.preflight import Check, PreflightResult
from .schemas.quantization import QuantizationResult
from .schemas.report import ReportResult
from .schemas.sweep import SweepResult

MEMORY_PLOT = "20_memory_budget.png"


# -- 00 preflight -------------------------------------------------------------------------------
def preflight(p: PreflightParams, run: RunDir) -> PreflightResult:
    """vLLM version and build, hardware, then the server(s): reachable, spec-decode counters exposed."""
    version, build = _preflight.vllm_distribution()
    hardware = _preflight.detect_hardware()
    result = PreflightResult(vllm_version=version, vllm_build=build, hardware=hardware, mode=p.mode)
    result.checks += _preflight.check_vllm(version, build, p.mode)
    result.checks.append(_preflight.check_hardware(hardware, build, p.mode))
    if p.mode != "external" and (bind := host_warning(p.extra_server_args)):  # issue 17: a --host override
        result.checks.append(Check(name="server bind address", status="warn", detail=bind))
    run.write_json("00_preflight.json", result)  # partial result on disk before touching any server
    result = _preflight.check_servers(p, run, result)
    result.finding = _preflight.summarize(result)
    result.status = "ok" if result.ok else "failed"
    run.write_json("00_preflight.json", result)
    return result


# -- 10 drafts ----------------------------------------------------------------------------------
def rank_drafts(p: DraftsParams) -> tuple[ModelSpec, list[ModelSpec], DraftsResult]:
    """The static ranking (no server): the target, its candidates (the listed ones, else the
    configured draft, else smaller catalog models sharing its tokenizer) and their ranking."""
    target = models.resolve(p.target_model, "target")
    candidates = _drafts.candidates_for(target, p.draft_candidates, p.draft_model)
    result = _drafts.rank(target, candidates, p.ratio_low, p.ratio_high)
    if warning := _drafts.configured_pair_warning(target, p):  # the run's own pair, said beside the ranking
        result.warnings.append(warning)
    return target, candidates, result


def drafts(p: DraftsParams, run: RunDir) -> DraftsResult:
    """Rank the draft candidates; with ``acceptance_probe`` measure each usable one and rank again."""
    target, candidates, result = rank_drafts(p)
    run.write_json("10_drafts.json", result)  # the static ranking is on disk before any probe
    if p.acceptance_probe and p.mode != "external" and candidates:
        said = result.warnings
        result = _drafts.probe(p, run, target, candidates, p.ratio_low, p.ratio_high)
        result.warnings = [*said, *(w for w in result.warnings if w not in said)]
        run.write_json("10_drafts.json", result)
    return result


# -- 20 memory ----------------------------------------------------------------------------------
@dataclass
class BudgetSetup:
    """What ``memory.budget`` needs besides the precisions: target, draft (None without one), GPU,
    and its keyword arguments."""

    target: ModelSpec
    draft: ModelSpec | None
    gpu: GPUSpec
    kwargs: dict


def budget_setup(p: MemoryParams, run: RunDir | None = None) -> BudgetSetup:
    """Resolve target, draft and GPU from a memory/quantization step model (`playbook memory` builds one
    from its flags). The draft is loaded only for methods with a separate checkpoint. With the ``run``, the budget
    follows the KV layout of the vLLM its step 00 found (:func:`serving_vllm_version`)."""
    target = models.resolve(p.target_model, "target")
    draft = models.resolve(p.draft_model, "draft") if _memory.uses_draft(p.method, p.draft_model) else None
    gpu = gpus.resolve_gpu(p.gpu, p.gpu_memory_gib, embedded=p.mode == "embedded")
    kwargs = _memory.step_kwargs(p, gpu)
    if run is not None:
        kwargs["vllm_version"] = serving_vllm_version(run, p.mode)
    return BudgetSetup(target, draft, gpu, kwargs)


def serving_vllm_version(run: RunDir, mode: str) -> str | None:
    """The vLLM version the run's servers run, as step 00 found it: the speculative server's /version in external
    mode, the installed vLLM's otherwise; None before step 00 has run."""
    pre = run.read_json_if_valid("00_preflight.json")
    if not isinstance(pre, dict):
        return None
    return (pre.get("server_versions") or {}).get("spec") if mode == "external" else pre.get("vllm_version")


def memory(p: MemoryParams, run: RunDir) -> MemoryResult:
    """vLLM's memory budget for the planned precisions, the precision matrix, and the budget plot."""
    s = budget_setup(p, run)
    budget = _memory.budget(s.target, s.draft, s.gpu, target_quant=p.target_quant, draft_quant=p.draft_quant, **s.kwargs)
    budget.fits_with = _memory.fit_options(budget, s.target, s.draft, s.gpu, **s.kwargs)
    budgets = _memory.matrix_budgets(s.target, s.draft, s.gpu, **s.kwargs)
    notes = _memory.unserved_precision_notes(s.target, s.draft, p.target_quant, p.draft_quant, p.extra_server_args)
    notes += _memory.data_parallel_notes(p.data_parallel_size, p.tensor_parallel_size, p.pipeline_parallel_size,
                                         p.num_gpus)
    result = MemoryResult(budget=budget, matrix=[_memory.precision_row(b) for b in budgets], rules=budget.rules,
                          warnings=[*budget.warnings, *notes], finding=_memory.finding(budget), plot=MEMORY_PLOT,
                          allocated=_memory.allocated_from_logs(budget, run.server_logs))
    run.write_json("20_memory.json", result)
    _close(_memory.plot_budget(budgets, run.artifact(MEMORY_PLOT)))
    return result


# -- 30 quantization ----------------------------------------------------------------------------
def quantization(p: QuantizationParams, run: RunDir) -> QuantizationResult:
    """The (target x draft precision) matrix; in embedded/managed mode each servable pair's acceptance;
    then the recommended pair (quantize the draft before the target, INT8 before INT4)."""
    s = budget_setup(p, run)
    budgets = _memory.matrix_budgets(s.target, s.draft, s.gpu, **s.kwargs)
    result = QuantizationResult(matrix=[_memory.precision_row(b) for b in budgets],
                                acceptance_drop_pp_threshold=p.acceptance_drop_pp)
    run.write_json("30_quantization.json", result)  # the matrix is on disk before any server starts
    if p.measure_acceptance and (p.mode != "embedded" or p.method in ("draft_model", "ngram")):
        embedded, temps = p.mode == "embedded", _quantization.temperatures_for(p)
        result.production_temperature = p.production_temperature
        if p.mode == "external":  # the user's servers, one per precision pair
            result.acceptance = _quantization.measure_pair_urls(p, run, p.pair_urls, p.probe_requests, temps)
        elif p.target_checkpoints or p.draft_checkpoints:  # the user's checkpoints, each pair that fits
            result.checkpoints = _quantization.checkpoint_plans_for(p, s)
            result.acceptance = _quantization.measure_plans(p, run, result.checkpoints, p.probe_requests, temps)
        else:
            pairs = _quantization.embedded_pairs() if embedded else _quantization.managed_pairs(result.matrix)
            result.acceptance = _quantization.measure_pairs(p, run, pairs, p.probe_requests, embedded, temps)
        result.baseline_acceptance = _quantization.acceptance_drop(result.acceptance, p.acceptance_drop_pp)
        run.write_json("30_quantization.json", result)
    result.recommendation, result.recommended, result.finding = _quantization.recommend(result, p.acceptance_drop_pp)
    run.write_json("30_quantization.json", result)
    return result


# -- 40 sweep -----------------------------------------------------------------------------------
def sweep(p: SweepParams, run: RunDir, progress: bool = True) -> SweepResult:
    """Acceptance by (workload, temperature) on the speculative server; points of an interrupted run
    in this run directory are reused (the server is not started when none is left)."""
    from .sweep import run_sweep_step

    result = run_sweep_step(p, run, progress=progress)
    result.measured_for = evidence.identity_of(p.model_dump())
    run.write_json("40_sweep.json", result)
    return result


# -- 50 load ------------------------------------------------------------------------------------
def load(p: LoadParams, run: RunDir, on_level: Callable | None = None, progress: bool = True,
         resume: bool = True) -> LoadResult:
    """Baseline vs speculative at each load level (alternating rounds on the same prompts where both
    servers fit, ABBA otherwise), stream checks, the losslessness guard, speedups with paired
    intervals; ``on_level`` is called as each level completes. Then the other candidate configurations at
    the same levels (helpers/candidates.py), into ``50_candidates.json``."""
    from . import candidates as _candidates
    from .loadtest import run_load_test

    with _candidates.pool_for(run, needed=_candidates.enabled(p)):  # one baseline server for every candidate
        result = run_load_test(p, run, progress=progress, resume=resume, on_level=on_level)
        result.measured_for = evidence.identity_of(p.model_dump())
        run.write_json("50_load.json", result)
        if _candidates.enabled(p):
            ev = evidence.gather(run, p.production_temperature, params=p)  # the predictor's inputs, for pruning
            comparison = _candidates.run_candidates(p, run, result, ev, progress=progress, resume=resume)
            run.write_json(_candidates.RESULT, comparison)
    return result


def require_measurement(step: str, result: SweepResult | LoadResult, run: RunDir) -> None:
    """Raise MeasurementError when a measuring step's result (already on disk) holds no measurement, its causes
    first: a notebook run on its own (papermill, Jupyter) then fails as ``playbook run`` counts the step failed,
    instead of going on to empty tables and plots."""
    from .errors import MeasurementError

    data = result.model_dump(mode="json")
    if nothing := evidence.measured_nothing(step, data):
        missing = data.get("missing_levels") or []
        causes = [w for w in data.get("warnings") or [] if w not in missing] or missing
        raise MeasurementError(f"{step} {nothing}" + (f": {'; '.join(causes[:3])}" if causes else "")
                               + f" (what was written is in {run.path}; fix the cause and run the step again)")


# -- 90 report ----------------------------------------------------------------------------------
def _warn_missing_records(run: RunDir) -> None:
    """Say on the command line what report.html says: the raw load records are fewer than 50_load.json counts."""
    import warnings

    from .sections import _model, records_shortfall

    res = _model(run, "50_load.json", LoadResult)  # None when missing or damaged: the evidence's to report
    if res is not None and (short := records_shortfall(run, res)):
        warnings.warn(short, UserWarning, stacklevel=2)


def report(p: ReportParams, run: RunDir) -> ReportResult:
    """Gather the evidence every step left, predict the speedup and check it against the load test,
    decide, build the launch command and the monitoring plan; write decision.json and summary.md."""
    ev = evidence.gather(run, p.production_temperature, params=p)
    _warn_missing_records(run)
    prediction = calibration.calibrated_prediction(ev, context_tokens=p.context_length / 2)
    check = prediction_check.check_against_load(prediction, ev.load_levels) if prediction and ev.load_kind == "concurrency" \
        else None
    decision = decide.decide_for(ev, p)
    decision.recommended.launch_command = decide.launch_command_for(p, decision.recommended, ev.num_gpus)
    decision.monitoring = monitoring.monitoring_plan(decision, ev, slo_tpot_ms=p.slo_tpot_ms, model_name=p.served_model_name,
                                                     no_go_below=p.acceptance_no_go_below)
    decision.monitoring["files"] = ops_outputs.write_ops_outputs(run.path, decision.monitoring)  # rules + dashboard
    decision.prediction = prediction_check.prediction_summary(prediction, check)
    from .provenance import for_run

    decision.provenance = for_run(run.path, p)  # machine, software, servers' versions and commands, model revisions
    write_json_atomic(run.path / "decision.json", decision)
    (run.path / "summary.md").write_text(summary.summary_markdown(decision, ev, check))
    return ReportResult(decision=decision, evidence=ev, prediction=prediction, check=check)


def _close(fig) -> None:
    """Free a figure saved as an artifact (the notebook shows the PNG)."""
    import matplotlib.pyplot as plt

    plt.close(fig)
