"""Load test: baseline vs speculative across load levels, speedup with bootstrap intervals.

Each configuration runs the same prompts at each level (same seed per level). Per level: the
latency percentiles, throughput, error rate, spec-decode counter deltas and a /metrics sampler.
``find_saturation`` keeps doubling concurrency past the given levels while output throughput still
grows by ``min_gain`` (bounded by ``max_extra_levels``); the levels found on the first configuration
are then used for the second.

Speedup at a level = median TPOT baseline / median TPOT spec (> 1: speculation wins), with a 95%
percentile-bootstrap interval resampling both configurations' requests. **Crossover** = the first
level whose interval's upper bound is below 1.0, i.e. where speculation is significantly slower;
levels whose interval straddles 1.0 are not wins and not yet a crossover.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .artifacts import RunDir
from .endpoints import LazyEndpoint
from .errors import CounterResetError, MetricsError, PlaybookError
from .loadgen import LoadShape, Target, run_phase_sync
from .metrics import Sampler, scrape, server_mean_ms, spec_delta
from .schemas.load import LevelStats, LoadResult, Percentiles, SpeedupPoint, WorkloadComparison
from .schemas.lossless import LosslessResult
from .schemas.workloads import PromptItem
from .stats import bootstrap_ratio, percentiles

REQUESTS_JSONL = "50_load_requests.jsonl"
SAMPLES_JSONL = "50_load_samples.jsonl"
LEVELS_JSONL = "50_load_levels.jsonl"
LOSSLESS_SPEC_OUTPUTS = "50_lossless_spec_outputs-{}.json"
LOSSLESS_JSON = "50_lossless-{}.json"
# Parameters that do not change what a level measures (a resumed run may differ in these).
_NOT_IN_FINGERPRINT = {"run_dir", "interactive", "find_saturation", "max_extra_levels", "saturation_gain",
                       "server_start_timeout_s", "concurrencies", "rates"}


def params_fingerprint(p) -> str:
    """Short hash of the parameters that define a level's measurement (for resuming safely)."""
    return p.fingerprint(_NOT_IN_FINGERPRINT)


def _pct(values) -> Percentiles:
    return Percentiles(**percentiles(values))


def level_stats(config: str, shape: LoadShape, records: list[dict], duration_s: float, workload: str = "",
                status: str = "ok", reason: str = "") -> LevelStats:
    """Latency percentiles and throughput of one (configuration, level) from its records."""
    ok = [r for r in records if r["status"] == "ok"]
    statuses = Counter(r["status"] for r in records if r["status"] != "ok")
    itl = [x for r in ok for x in r["itl_ms"]]
    out_tokens = sum(r["output_tokens"] or 0 for r in ok)
    lags = [r["dispatch_lag_ms"] for r in records]
    return LevelStats(
        config=config, level=shape.level, level_kind="concurrency" if shape.kind == "concurrency" else "rate",
        workload=workload, status=status, reason=reason, requests=len(records),
        errors=len(records) - len(ok), error_rate=(len(records) - len(ok)) / len(records) if records else 0.0,
        errors_by_status=dict(statuses),
        ttft_ms=_pct([r["ttft_ms"] for r in ok]), tpot_ms=_pct([r["tpot_ms"] for r in ok]),
        itl_ms=_pct(itl), e2e_ms=_pct([r["e2e_ms"] for r in ok]),
        output_tok_s=out_tokens / duration_s if duration_s > 0 and ok else None,
        req_s=len(ok) / duration_s if duration_s > 0 and ok else None,
        duration_s=duration_s,
        dispatch_lag_p99_ms=float(np.percentile(lags, 99)) if lags else None,
    )


def speedup_point(level: float, base: list[dict], spec: list[dict], base_stats: LevelStats | None = None,
                  spec_stats: LevelStats | None = None, seed: int = 0) -> SpeedupPoint:
    """TPOT speedup (baseline / spec medians) with its bootstrap interval and the P50-P99 gap change."""
    tb = [r["tpot_ms"] for r in base if r["status"] == "ok"]
    ts = [r["tpot_ms"] for r in spec if r["status"] == "ok"]
    point, low, high = bootstrap_ratio(tb, ts, seed=seed)
    sp = SpeedupPoint(level=level, speedup=point, ci_low=low, ci_high=high,
                      significant=low is not None and (low > 1.0 or high < 1.0))
    if base_stats and spec_stats:
        if base_stats.output_tok_s and spec_stats.output_tok_s:
            sp.throughput_ratio = spec_stats.output_tok_s / base_stats.output_tok_s
        gb = _gap(base_stats.tpot_ms)
        gs = _gap(spec_stats.tpot_ms)
        sp.p50_p99_gap_baseline_ms, sp.p50_p99_gap_spec_ms = gb, gs
        if gb and gs is not None:
            sp.gap_change = gs / gb
    return sp


def _gap(p: Percentiles) -> float | None:
    return p.p99 - p.p50 if p.p99 is not None and p.p50 is not None else None


def find_crossover(points: list[SpeedupPoint]) -> float | None:
    """First level (in increasing load) whose CI upper bound is below 1.0; None if there is none."""
    for sp in sorted(points, key=lambda s: s.level):
        if sp.ci_high is not None and sp.ci_high < 1.0:
            return sp.level
    return None


def shapes_for(concurrencies: list[int], rates: list[float], load_shape: str = "poisson",
               burstiness: float = 1.0) -> list[LoadShape]:
    if concurrencies:
        return [LoadShape("concurrency", concurrency=c) for c in concurrencies]
    return [LoadShape(load_shape, rate=r, burstiness=burstiness) for r in rates]  # type: ignore[arg-type]


def completed_levels(run: RunDir, fingerprint: str = "") -> dict[tuple[str, float, str], LevelStats]:
    """Levels an earlier run of this step measured completely with the same parameters
    (``fingerprint``), by (config, level, workload)."""
    done: dict[tuple[str, float, str], LevelStats] = {}
    for row in run.read_jsonl(LEVELS_JSONL):
        st = LevelStats.model_validate(row)
        if st.fingerprint != fingerprint:
            continue
        key = (st.config, st.level, st.workload)
        if st.status == "ok" and st.attempt:
            done[key] = st
        else:
            done.pop(key, None)
    return done


def phase_records(run: RunDir, phase: str, attempt: str) -> list[dict]:
    """The measured (non-warmup) records of one attempt of a phase, read back from the JSONL."""
    prefix = f"{phase}/{attempt}-"
    return [r for r in run.read_jsonl(REQUESTS_JSONL) if r["id"].startswith(prefix) and not r.get("warmup")]


def run_config(
    target: Target | Callable[[], Target],
    config: str,
    shapes: list[LoadShape],
    make_items: Callable[[int], list[PromptItem]],
    run: RunDir,
    warmup: int = 2,
    duration_s: float = 0.0,
    timeout_s: float = 120.0,
    find_saturation: bool = False,
    min_gain: float = 0.10,
    max_extra_levels: int = 3,
    workload: str = "",
    seed: int = 0,
    progress: bool = True,
    resume: bool = False,
    fingerprint: str = "",
    on_level=None,
) -> tuple[list[LevelStats], dict[float, list[dict]]]:
    """Run one configuration over the levels; a failed level (server gone) ends the configuration.

    ``make_items(i)`` gives the prompts (warmup first) for the i-th level, the same for both configs.
    ``target`` may be a callable that starts the server: it is called only if a level must be measured.
    With ``resume``, levels completed by an earlier run are taken from the run directory, not re-measured.
    ``on_level(stats)`` is called as each level completes (a live table in the notebook).
    """
    stats: list[LevelStats] = []
    records: dict[float, list[dict]] = {}
    done = completed_levels(run, fingerprint) if resume else {}
    shapes = list(shapes)
    i = extra = 0
    while i < len(shapes):
        shape = shapes[i]
        phase = f"{config}@{shape.label()}" + (f"/{_workload_label(workload)}" if workload else "")
        prev = done.get((config, shape.level, workload))
        if prev is not None:
            st = prev.model_copy(update={"resumed": True})
            records[shape.level] = phase_records(run, prev.phase or phase, prev.attempt)
        else:
            st, records[shape.level] = _measure_level(target() if callable(target) else target, config, shape,
                                                      phase, make_items(i), run, warmup, duration_s, timeout_s,
                                                      workload, seed + i, progress)
            st.fingerprint = fingerprint
            run.append_jsonl(LEVELS_JSONL, st)
        stats.append(st)
        if on_level is not None:
            on_level(st)
        if st.status == "failed":
            break
        if (find_saturation and i == len(shapes) - 1 and shape.kind == "concurrency"
                and extra < max_extra_levels and _still_growing(stats, min_gain)):
            shapes.append(LoadShape("concurrency", concurrency=shape.concurrency * 2))
            extra += 1
        i += 1
    return stats, records


def _workload_label(workload: str) -> str:
    """A short name for record ids: a prompts file's stem, a class name or mix as given."""
    return Path(workload).stem if ("/" in workload or workload.endswith((".jsonl", ".json"))) else workload


def _measure_level(target: Target, config: str, shape: LoadShape, phase: str, items: list[PromptItem], run: RunDir,
                   warmup: int, duration_s: float, timeout_s: float, workload: str, seed: int,
                   progress: bool) -> tuple[LevelStats, list[dict]]:
    try:
        before = scrape(target.url, api_key=target.api_key)
    except MetricsError:
        before = None
    with Sampler(target.url, run.artifact(SAMPLES_JSONL), interval_s=1.0,
                 label={"config": config, "level": shape.level, "workload": workload},
                 api_key=target.api_key) as sampler:
        res = run_phase_sync(target, items, shape, phase=phase, warmup=warmup, duration_s=duration_s,
                             timeout_s=timeout_s, seed=seed, jsonl=run.artifact(REQUESTS_JSONL), progress=progress)
    st = level_stats(config, shape, res.records, res.summary.duration_s, workload, res.summary.status,
                     res.summary.reason)
    st.phase, st.attempt = phase, res.summary.attempt
    kv = [s["kv_cache_usage"] for s in sampler.rows if "kv_cache_usage" in s]
    wait = [s["waiting"] for s in sampler.rows if "waiting" in s]
    st.kv_cache_usage_max = max(kv) if kv else None
    st.waiting_max = max(wait) if wait else None
    if before is not None and res.summary.status == "ok":
        try:
            after = scrape(target.url, api_key=target.api_key)
            st.server_ttft_ms_mean = server_mean_ms(before, after, "ttft")
            st.server_tpot_ms_mean = server_mean_ms(before, after, "tpot")
            d = spec_delta(before, after)
            st.acceptance_rate, st.mean_acceptance_length = d.acceptance_rate, d.mean_acceptance_length
        except CounterResetError as exc:
            st.reason = exc.problem
        except MetricsError:
            pass
    return st, res.records


def _still_growing(stats: list[LevelStats], min_gain: float) -> bool:
    """Throughput still grows: the last level beat the one before by at least min_gain."""
    if len(stats) < 2:
        return True
    a, b = stats[-2].output_tok_s, stats[-1].output_tok_s
    return bool(a and b and b >= a * (1 + min_gain))


def saturation_level(stats: list[LevelStats], min_gain: float = 0.10) -> float | None:
    """The first level whose throughput did not grow by min_gain over the previous one."""
    ok = [s for s in stats if s.status == "ok" and s.output_tok_s]
    for a, b in zip(ok, ok[1:], strict=False):
        if b.output_tok_s < a.output_tok_s * (1 + min_gain):
            return b.level
    return None


def analyze(base: list[LevelStats], spec: list[LevelStats], base_recs: dict[float, list[dict]],
            spec_recs: dict[float, list[dict]], workload: str = "", temperature: float = 0.0,
            planned: list[float] | None = None, seed: int = 0) -> LoadResult:
    """Build the step result: per-level stats, speedup and its interval, crossover, missing levels."""
    res = LoadResult(workload=workload, temperature=temperature, levels=base + spec)
    if base or spec:
        res.level_kind = (base or spec)[0].level_kind
    bmap = {s.level: s for s in base if s.status == "ok"}
    smap = {s.level: s for s in spec if s.status == "ok"}
    for lvl in sorted(set(bmap) & set(smap)):
        res.speedup.append(speedup_point(lvl, base_recs.get(lvl, []), spec_recs.get(lvl, []),
                                         bmap[lvl], smap[lvl], seed=seed))
    res.crossover = find_crossover(res.speedup)
    res.saturation_level = saturation_level(base)
    wanted = sorted(set(planned or []) | {s.level for s in base + spec})
    for cfg, m in (("baseline", bmap), ("spec", smap)):
        for lvl in wanted:
            if lvl not in m:
                failed = next((s for s in base + spec if s.config == cfg and s.level == lvl), None)
                why = failed.reason if failed else "not measured"
                res.missing_levels.append(f"{cfg}@{lvl:g}: {why}")
    measured = [s for s in base + spec if s.status == "ok"]  # a failed level is missing, not an error burst
    total = sum(s.requests for s in measured)
    res.error_rate = sum(s.errors for s in measured) / total if total else 0.0
    if res.missing_levels:
        res.status = "partial" if res.speedup else "failed"
        res.warnings.extend(res.missing_levels)
    res.finding = finding(res)
    return res


def compare_mixed(level: float, homogeneous: str, mixed: str, hom: SpeedupPoint | None,
                  mix: SpeedupPoint | None) -> WorkloadComparison:
    return WorkloadComparison(
        level=level, homogeneous=homogeneous, mixed=mixed,
        gap_change_homogeneous=hom.gap_change if hom else None, gap_change_mixed=mix.gap_change if mix else None,
        speedup_homogeneous=hom.speedup if hom else None, speedup_mixed=mix.speedup if mix else None)


def finding(r: LoadResult) -> str:
    if not r.speedup:
        return "no level was measured on both configurations: " + "; ".join(r.missing_levels[:3])
    unit = "concurrency" if r.level_kind == "concurrency" else "req/s"
    parts = [f"{sp.level:g}: {sp.speedup:.2f}x [{sp.ci_low:.2f}, {sp.ci_high:.2f}]" for sp in r.speedup
             if sp.speedup is not None]
    cross = (f"speculation is significantly slower from {unit} {r.crossover:g}" if r.crossover is not None
             else "no crossover in the measured range")
    wins = [sp.level for sp in r.speedup if sp.ci_low is not None and sp.ci_low > 1.0]
    win = f"significant wins at {unit} {', '.join(f'{w:g}' for w in wins)}" if wins else "no significant win"
    return f"TPOT speedup by {unit} " + ", ".join(parts) + f"; {win}; {cross}"


def run_load_test(p, run: RunDir, progress: bool = True, resume: bool = True, on_level=None) -> LoadResult:
    """Notebook 50 / ``playbook run``: both configurations in turn, then the analysis.

    Managed and embedded modes start one server at a time, so each configuration has the whole
    machine (on a GPU two servers would split the memory and change the KV capacity being tested).
    The speculative server runs first: its lossless-check outputs are then scored by the baseline
    server, with no third start. External mode uses the two URLs as they are. With ``resume``,
    levels (and the lossless check) completed by an interrupted earlier run are reused, and a server
    whose levels are all done is not started at all. ``on_level(stats)`` sees each level as it completes.
    """
    from . import lossless as ll
    from .workloads import build_requests

    shapes = shapes_for(p.concurrencies, p.rates, p.load_shape, p.burstiness)
    for spec in filter(None, (p.workload, p.mixed_workload)):
        build_requests(spec, 1)  # a bad workload fails here, before any server starts

    def items_for(workload: str, temperature: float):
        def make(i: int):
            lvl = shapes[i].concurrency if i < len(shapes) and shapes[i].kind == "concurrency" else 0
            n = p.warmup_requests + max(p.requests_per_level, lvl)
            return build_requests(workload, n, temperature, p.max_tokens, seed=p.seed + i)
        return make

    ll_tokens = min(p.max_tokens, 32)
    lossless_items = build_requests(p.workload, p.lossless_requests, p.temperature, ll_tokens, seed=p.seed + 1000) \
        if p.lossless_check and p.lossless_temperatures else []
    fp = params_fingerprint(p)
    ll_json, ll_outputs = LOSSLESS_JSON.format(fp), LOSSLESS_SPEC_OUTPUTS.format(fp)
    common = dict(warmup=p.warmup_requests, duration_s=p.duration_s, timeout_s=p.request_timeout_s, seed=p.seed,
                  progress=progress, resume=resume, fingerprint=fp, on_level=on_level)
    out: dict[str, tuple] = {}
    mixed: dict[str, tuple] = {}
    lossless_res = run.read_json(ll_json, LosslessResult) if resume and lossless_items else None
    spec_outputs = {float(t): o for t, o in (run.read_json(ll_outputs) or {}).items()} if resume else {}
    warnings: list[str] = []
    for config in ("spec", "baseline"):
        try:
            with LazyEndpoint(p, run.path, config) as target:
                levels = shapes if config == "spec" else [
                    LoadShape("concurrency", concurrency=int(s.level)) if s.level_kind == "concurrency"
                    else LoadShape(p.load_shape, rate=s.level, burstiness=p.burstiness)
                    for s in out.get("spec", ([], {}))[0]] or shapes
                out[config] = run_config(target, config, levels, items_for(p.workload, p.temperature), run,
                                         find_saturation=p.find_saturation and config == "spec",
                                         min_gain=p.saturation_gain, max_extra_levels=p.max_extra_levels,
                                         workload=p.workload, **common)
                if p.mixed_workload:
                    mixed[config] = run_config(target, config, levels[:1], items_for(p.mixed_workload, p.temperature),
                                               run, workload=p.mixed_workload, **common)
                if lossless_items and lossless_res is None:
                    if config == "spec" and not spec_outputs:
                        spec_outputs = {t: ll.generate(target(), lossless_items, t, ll_tokens, p.seed)
                                        for t in p.lossless_temperatures}
                        run.write_json(ll_outputs, {str(t): o for t, o in spec_outputs.items()})
                    elif config == "baseline" and spec_outputs:
                        lossless_res = ll.check_against_baseline(target(), lossless_items, spec_outputs, ll_tokens,
                                                                 p.lossless_alpha, seed=p.seed)
                        run.write_json(ll_json, lossless_res)
        except PlaybookError as exc:  # a server that cannot start or dies: keep what was measured
            warnings.append(f"{config}: {exc.problem}")
            out.setdefault(config, ([], {}))
    base, spec = out.get("baseline", ([], {})), out.get("spec", ([], {}))
    res = analyze(base[0], spec[0], base[1], spec[1], p.workload, p.temperature,
                  planned=[s.level for s in shapes], seed=p.seed)
    res.warnings.extend(warnings)
    if warnings and res.status == "ok":
        res.status = "partial"
    res.lossless = lossless_res
    if lossless_res is not None and lossless_res.lossless is False:
        res.finding = "NOT LOSSLESS: speculation changed the outputs; " + res.finding
    if len(mixed) == 2 and mixed["baseline"][0] and mixed["spec"][0]:
        lvl = shapes[0].level
        hom = next((s for s in res.speedup if s.level == lvl), None)
        b, s = mixed["baseline"], mixed["spec"]
        mix = speedup_point(lvl, b[1].get(lvl, []), s[1].get(lvl, []), b[0][0], s[0][0], seed=p.seed)
        res.mixed = compare_mixed(lvl, p.workload, p.mixed_workload, hom, mix)
        res.mixed_levels = b[0] + s[0]
    return res


def levels_table(res: LoadResult):
    """One row per (configuration, level): the percentiles and throughput, as a pandas DataFrame."""
    import pandas as pd

    rows = []
    for s in sorted(res.levels, key=lambda s: (s.level, s.config)):
        row = {"level": s.level, "config": s.config, "status": s.status, "requests": s.requests, "errors": s.errors}
        for m in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
            for q in ("p50", "p95", "p99"):
                row[f"{m[:-3]}_{q}"] = getattr(getattr(s, m), q)
        row.update(output_tok_s=s.output_tok_s, req_s=s.req_s, acceptance=s.acceptance_rate,
                   server_tpot_mean=s.server_tpot_ms_mean, kv_usage_max=s.kv_cache_usage_max)
        rows.append(row)
    return pd.DataFrame(rows).round(2)


def speedup_table(res: LoadResult):
    import pandas as pd

    return pd.DataFrame([sp.model_dump() for sp in res.speedup]).round(3)
