"""Temperature sweep: acceptance per workload class and temperature, from counter deltas.

For each class the same prompts are sent at every temperature; the metrics source (``metrics_source``,
:mod:`.metrics_sources`; default the server's ``/metrics``) is read before and after each point, so
the acceptance rate, mean acceptance length and per-position rates come from counter deltas of that
point alone. When the server returns per-request metrics
(``--per-request-spec-decode-metrics``), their P10/P50/P90 show the spread across requests.

Each point is logged in the run's phase log (``artifacts.PhaseLog``) as it completes, under a fingerprint of
the parameters that define it: a resumed sweep reuses the points measured completely with the same
parameters and measures only the rest (no server starts when nothing is left).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

from .artifacts import PhaseLog, RunDir
from .errors import CounterResetError, MetricsError
from .load_analysis import nothing_completed
from .loadgen import LoadShape, PhaseResult, Target, records_of_attempts, run_phase_sync
from .metrics import SpecDelta, k_mismatch, server_k
from .metrics_sources import MetricsSource, ServerSource
from .schemas.sweep import SweepPoint, SweepResult
from .stats import interpolate, percentiles
from .workloads import build_requests

REQUESTS_JSONL = "40_sweep_requests.jsonl"
STEP = "40_sweep"
# Parameters that do not change what one (workload, temperature) point measures (fingerprint exclude set).
NOT_IN_FINGERPRINT = frozenset({"run_dir", "interactive", "temperatures", "workloads", "production_temperature",
                                "acceptance_no_go_below", "acceptance_go_above", "server_start_timeout_s"})


def point_key(workload: str, temperature: float) -> str:
    return f"{workload}@T{float(temperature):g}"


def completed_points(run: RunDir, fingerprint: str, keys: list[tuple[str, float]]
                     ) -> dict[tuple[str, float], tuple[SweepPoint, list[dict]]]:
    """Points (of ``keys``) the phase log says an earlier run measured completely with the same
    parameters, with their records read back."""
    log = PhaseLog(run)
    found = {k: r for k in keys if (r := log.result(STEP, point_key(*k), fingerprint))}
    recs = records_of_attempts(run.read_jsonl(REQUESTS_JSONL), {r["attempt"] for r in found.values()})
    return {k: (SweepPoint.model_validate(r["point"]), recs.get(r["attempt"], [])) for k, r in found.items()}


def acceptance_verdict(rate: float | None, no_go_below: float = 0.5, go_above: float = 0.65) -> str:
    """SPEC section 3: < 0.50 no-go, 0.50 to 0.65 borderline, > 0.65 go (thresholds are parameters)."""
    if rate is None:
        return "unknown"
    if rate < no_go_below:
        return "no-go"
    return "go" if rate > go_above else "borderline"


def per_request_rates(records: list[dict]) -> list[float]:
    """Per-request draft acceptance from the server's per-request metrics (requests with drafts)."""
    out = []
    for r in records:
        spec = r.get("spec") or {}
        if spec.get("num_draft_tokens"):
            out.append(spec["num_accepted_draft_tokens"] / spec["num_draft_tokens"])
    return out


def proposal_rate(delta: SpecDelta | None, records: list[dict]) -> float | None:
    """The share of decode steps that carried draft tokens: drafts over the steps the requests took, each step
    giving 1 + accepted tokens after the prefill's first (so steps = output tokens - requests - accepted). 1 for a
    draft model; below 1 for an n-gram or suffix lookup that finds no match on some steps. None when unknown."""
    if delta is None or not delta.available or delta.source != "counters" or delta.drafts <= 0:
        return None
    steps, _ = decode_steps(delta, records)
    return min(delta.drafts / steps, 1.0) if steps > 0 else None


def decode_steps(delta: SpecDelta, records: list[dict]) -> tuple[int, int]:
    """(decode steps the window's successful requests took, how many requests): each step gives one token plus the
    drafts it accepted, after the prefill's first token."""
    ok = [r for r in records if r.get("status") == "ok" and r.get("output_tokens")]
    return int(sum(r["output_tokens"] - 1 for r in ok) - delta.accepted), len(ok)


def foreign_counts(delta: SpecDelta | None, records: list[dict]) -> str | None:
    """Why a window's spec-decode counters cannot be this window's alone, or None: more drafts than the decode
    steps its requests took (each drafting step emits at least one token, so drafts <= output tokens - 1 - accepted,
    per request). The counters then counted other traffic: a shared server, or a router whose /metrics is another
    replica's or a sum over several."""
    if delta is None or not delta.available or delta.source != "counters" or delta.drafts <= 0:
        return None
    steps, n = decode_steps(delta, records)
    k = delta.draft_tokens / delta.drafts if delta.draft_tokens else 1.0
    # slack per request: its last step (vLLM counts the drafts it accepted past max_tokens or a stop, up to k, which
    # the response drops: measured 45 drafts against 37 steps so estimated on an unshared embedded server) and one
    if delta.drafts <= max(steps, 0) + n * (k + 1):
        return None
    return (f"/metrics counted {delta.drafts:g} drafts while this window's {n} requests took at most "
            f"{max(steps, 0)} decode steps: the counters include other traffic (a server others use, or a router "
            "whose /metrics shows another replica or a sum over several); no acceptance is taken from them. Measure "
            "on a server nobody else uses, or set metrics_source (pods with metrics_urls, prometheus, or per_request)")


DRAFTS_EVERY_STEP = ("draft_model", "eagle", "eagle3", "mtp")  # vLLM drafts on every decode step with these
MIN_EVERY_STEP_PROPOSAL_RATE = 0.8


def make_point(temperature: float, workload: str, delta: SpecDelta | None, records: list[dict],
               no_go_below: float = 0.5, go_above: float = 0.65) -> SweepPoint:
    rates = per_request_rates(records)
    pr = percentiles(rates, (10, 50, 90)) if rates else {"p10": None, "p50": None, "p90": None}
    rate = delta.acceptance_rate if delta and delta.available else None
    return SweepPoint(
        temperature=temperature, workload=workload, acceptance_rate=rate,
        mean_acceptance_length=delta.mean_acceptance_length if delta else None,
        per_position=delta.per_position if delta else [],
        per_request_p10=pr["p10"], per_request_p50=pr["p50"], per_request_p90=pr["p90"],
        per_request=rates,
        drafts=delta.drafts if delta else 0, draft_tokens=delta.draft_tokens if delta else 0,
        accepted=delta.accepted if delta else 0, proposal_rate=proposal_rate(delta, records),
        requests=len(records), errors=sum(r["status"] != "ok" for r in records),
        source=delta.source if delta else "none",
        verdict=acceptance_verdict(rate, no_go_below, go_above),
    )


def pool(temperature: float, points: list[SweepPoint], records: list[dict],
         no_go_below: float = 0.5, go_above: float = 0.65) -> SweepPoint:
    """One point per temperature: counter deltas summed over the workload classes."""
    pts = [p for p in points if p.temperature == temperature and p.source == "counters"]
    delta = SpecDelta(
        available=bool(pts),
        drafts=sum(p.drafts for p in pts), draft_tokens=sum(p.draft_tokens for p in pts),
        accepted=sum(p.accepted for p in pts),
        per_pos_accepted=list(np.sum([np.array(p.per_position) * p.drafts for p in pts if p.per_position], axis=0))
        if any(p.per_position for p in pts) else [],
    )
    legacy = [p for p in points if p.temperature == temperature and p.source == "legacy_gauge"]
    if not pts and legacy:
        delta = SpecDelta(available=True, source="legacy_gauge", legacy_rate=legacy[-1].acceptance_rate)
    return make_point(temperature, "all", delta if (pts or legacy) else None, records, no_go_below, go_above)


def run_sweep(
    target: Target | Callable[[], Target],
    workloads: list[str],
    temperatures: list[float],
    requests_per_point: int = 8,
    max_tokens: int = 64,
    run: RunDir | None = None,
    production_temperature: float = 0.2,
    concurrency: int = 4,
    timeout_s: float = 120.0,
    seed: int = 0,
    progress: bool = True,
    no_go_below: float = 0.5,
    go_above: float = 0.65,
    method: str = "",
    num_speculative_tokens: int | None = None,
    workloads_dir=None,
    fingerprint: str | None = None,
    metrics: Callable[[Target], MetricsSource] | None = None,
) -> SweepResult:
    """Run the sweep; records go to ``40_sweep_requests.jsonl`` before any analysis.

    ``target`` may be a callable that starts the server: it is called only if a point must be
    measured. ``metrics`` builds the target's metrics source (default: its ``/metrics``). With a ``run`` and a ``fingerprint``, each point is logged in the phase log and points
    an earlier run completed with the same fingerprint are reused (``resumed_points``).
    """
    result = SweepResult(production_temperature=production_temperature, no_go_below=no_go_below,
                         go_above=go_above, method=method, num_speculative_tokens=num_speculative_tokens)
    keys = [(w, float(t)) for w in workloads for t in temperatures]
    log = PhaseLog(run) if run is not None and fingerprint else None
    done = completed_points(run, fingerprint, keys) if log is not None else {}
    plans = {w: build_requests(w, requests_per_point, max_tokens=max_tokens, seed=seed, directory=workloads_dir)
             for w in workloads}
    if any((w, float(t)) not in done for w in workloads for t in temperatures):
        target = target() if callable(target) else target
        source = metrics(target) if metrics else ServerSource(target.url, target.api_key)
        if source.speculating() is False:  # nothing can be measured: a failed sweep, never a successful one
            result.speculation, result.status = False, "failed"
            result.production_verdict = "no-speculation"
            result.finding = (f"the server at {target.url} exposes no speculative-decoding metrics: it runs "
                              "without speculation, so there is no acceptance to measure; point the sweep at the "
                              "server started with --speculative-config")
            return result
    jsonl = run.artifact(REQUESTS_JSONL) if run else None
    all_records: dict[float, list[dict]] = {t: [] for t in temperatures}
    failed = ""
    mismatch: tuple[str, str] | None = None  # the server runs another k than num_speculative_tokens
    for w, items in plans.items():
        for t in temperatures:
            if failed:
                break
            if (w, float(t)) in done:
                point, records = done[(w, float(t))]
                all_records[t].extend(records)
                result.points.append(point.model_copy(update={"verdict": acceptance_verdict(
                    point.acceptance_rate, no_go_below, go_above)}))
                result.resumed_points += 1
                continue
            phase = f"sweep:{w}@T{t:g}"
            before = source.snapshot()
            if num_speculative_tokens and (mismatch := k_mismatch(target.url, num_speculative_tokens, server_k(before))):
                break  # the server's per-position counters say another k: nothing sent
            res: PhaseResult = run_phase_sync(
                target, [it.model_copy(update={"temperature": t}) for it in items],
                LoadShape("concurrency", concurrency=concurrency), phase=phase,
                timeout_s=timeout_s, jsonl=jsonl, progress=progress, seed=seed)
            all_records[t].extend(res.records)
            stalled = nothing_completed(target.url, res.records, timeout_s)
            if res.summary.status == "failed" or stalled:
                failed = res.summary.reason or stalled
                result.warnings.append(f"{w} at T={t:g}: {failed}")
                if stalled:  # said at once, not only in the result: the next point would wait as long
                    tqdm.write(f"warning: sweep {w} at T={t:g}: {stalled}; the sweep stops here", file=sys.stderr)
                break
            try:
                delta = source.window(before, source.snapshot(), res.records).spec
            except CounterResetError as exc:
                result.warnings.append(f"{w} at T={t:g}: {exc.problem}")
                delta = None
            except MetricsError as exc:
                failed = exc.problem
                result.warnings.append(f"{w} at T={t:g}: {failed}")
                delta = None
            if why := foreign_counts(delta, res.records):
                result.warnings.append(f"{w} at T={t:g}: {why}")
                delta = None
            if num_speculative_tokens and delta is not None and delta.available and (mismatch := k_mismatch(
                    target.url, num_speculative_tokens, len(delta.per_pos_accepted) or None, delta.mean_acceptance_length)):
                break  # acceptance of another k than the one named: not a point of this configuration
            point = make_point(t, w, delta, res.records, no_go_below, go_above)
            result.points.append(point)
            if log is not None:
                log.record(STEP, point_key(w, t), fingerprint,
                                     "ok" if delta is not None and not point.errors else "incomplete",
                                     {"phase": phase, "attempt": res.summary.attempt, "point": point},
                                     attempt=res.summary.attempt)
        if mismatch:
            break
    if mismatch:  # a configuration mismatch: no acceptance is reported for a k that was never run
        problem, fix = mismatch
        result.status, result.points, result.resumed_points = "failed", [], 0
        result.production_verdict = "unknown"
        result.warnings.append(f"configuration mismatch: {problem}")
        result.finding = f"configuration mismatch: {problem}; fix: {fix}"
        tqdm.write(f"error: {result.finding}", file=sys.stderr)
        return result
    result.temperatures = [pool(t, result.points, all_records[t], no_go_below, go_above) for t in temperatures]
    result.production_acceptance = interpolate(
        production_temperature, [p.temperature for p in result.temperatures],
        [p.acceptance_rate for p in result.temperatures])
    result.production_verdict = acceptance_verdict(result.production_acceptance, no_go_below, go_above)
    expected = len(workloads) * len(temperatures)
    if failed or len(result.points) < expected or result.warnings:
        result.status = "partial" if result.points else "failed"
    if method not in ("ngram", "suffix") and result.points and all(p.acceptance_rate is None for p in result.points):
        result.status = "failed"  # requests answered, acceptance nowhere: not a sweep that measured something
        result.warnings.append(
            "no acceptance was measured at any point: the spec-decode counters gave no window of these requests' "
            "drafts (a router whose /metrics is another replica's, or a server that stopped speculating); check "
            "preflight's metrics-source warning and set metrics_source (pods, prometheus or per_request)")
    result.finding = finding(result)
    if method in DRAFTS_EVERY_STEP and (low := [p for p in result.temperatures if p.proposal_rate is not None
                                                and p.proposal_rate < MIN_EVERY_STEP_PROPOSAL_RATE]):
        note = (f"drafts on only {min(p.proposal_rate for p in low):.0%} of decode steps, where {method} drafts on "
                "every step: some requests were served without speculation (a router in front of replicas with "
                "and without it?); the load test would measure that mix, not the speculative configuration")
        result.finding += f"; {note}"
        tqdm.write(f"warning: sweep: {note}", file=sys.stderr)
    return result


def finding(r: SweepResult) -> str:
    if not r.speculation:
        return r.finding
    if r.production_acceptance is None:
        return "no acceptance could be measured (no drafts were proposed or the phase failed)"
    rates = ", ".join(f"T={p.temperature:g}: {p.acceptance_rate:.2f}" if p.acceptance_rate is not None
                      else f"T={p.temperature:g}: n/a" for p in r.temperatures)
    return (f"acceptance {r.production_acceptance:.2f} at the production temperature "
            f"{r.production_temperature:g}{_not_measured_there(r)} -> {r.production_verdict} (bands: no-go < "
            f"{r.no_go_below:g}, go > {r.go_above:g}); by temperature {rates}")


def _not_measured_there(r: SweepResult) -> str:
    """' (interpolated between T=a and T=b: not measured there)' when no swept temperature is the production one."""
    measured = sorted(p.temperature for p in r.temperatures if p.acceptance_rate is not None)
    t = r.production_temperature
    if not measured or any(abs(m - t) < 1e-9 for m in measured):
        return ""
    below, above = [m for m in measured if m < t], [m for m in measured if m > t]
    if below and above:
        return (f" (interpolated between T={below[-1]:g} and T={above[0]:g}: not measured there; add {t:g} to "
                "temperatures to measure it)")
    return f" (taken from T={(below or above)[-1 if below else 0]:g}, the nearest measured: add {t:g} to temperatures)"


def run_sweep_step(p, run: RunDir, progress: bool = True) -> SweepResult:
    """Notebook 40 / ``playbook run``: the sweep on the speculative server (started here unless external,
    and only if a point is left to measure: points of an interrupted run in this run directory are reused)."""
    from .endpoints import LazyEndpoint
    from .metrics_sources import source_for

    with LazyEndpoint(p, run.path, "spec") as target:
        return run_sweep(
            target, p.workloads, p.temperatures, p.requests_per_point, p.max_tokens,
            run, p.production_temperature, p.sweep_concurrency, p.request_timeout_s, p.seed, progress,
            p.acceptance_no_go_below, p.acceptance_go_above, p.method, p.num_speculative_tokens,
            fingerprint=p.fingerprint(NOT_IN_FINGERPRINT),
            metrics=lambda t: source_for(p, "spec", t.url, t.api_key))


def points_table(result: SweepResult):
    """One row per (workload, temperature), pooled rows last, as a pandas DataFrame."""
    import pandas as pd

    cols = ["workload", "temperature", "acceptance_rate", "mean_acceptance_length", "per_request_p10",
            "per_request_p50", "per_request_p90", "requests", "errors", "verdict"]
    rows = [{c: getattr(pt, c) for c in cols} for pt in result.points + result.temperatures]
    return pd.DataFrame(rows, columns=cols).round(3)
