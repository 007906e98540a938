"""Load test: baseline vs speculative across load levels, with speedup intervals that hold under drift.

Two designs (``SpeedupPoint.design``):

- **paired**, wherever both servers can be up at once (embedded, external, managed with
  ``servers_side_by_side``): each level is measured in round pairs. A pair sends one fresh prompt
  sample to the baseline and to the speculative server back to back, the order rotating
  (B S, S B, B S, ...). Speedup = median TPOT baseline / median TPOT spec over all pairs (> 1:
  speculation wins); its 95% interval resamples whole pairs (``stats.paired_bootstrap_ratio``), so
  a slow drift of the machine's speed, which moves both halves of a pair together, cancels.
- **abba**, where only one server fits (managed without ``servers_side_by_side``): baseline over all
  levels, speculative over all levels, then the baseline again at the first level. ``drift`` =
  re-measured / first baseline median TPOT; a level whose drift exceeds its interval's relative
  half-width is ``inconclusive``.

**Adaptive sample size** (paired): a level adds pairs (at least ``min_round_pairs``) until its
interval's relative half-width is at most ``target_ci_halfwidth`` or ``level_time_budget_s`` is
spent; ``stop_reason`` says which. **Verdict boundaries**: a level of the homogeneous workload whose
interval (widened by the between-start spread, as the rules see it) still holds 1.0 (win or loss) or
1 + ``min_gain`` (a gain worth having) when it would stop goes on adding pairs while the pairs
``level_decision_budget_s`` allows could settle it (``load_analysis.open_boundaries``): a level stopped
astride a boundary is what turned one run's verdict into another's on a noisy node (NO-GO here,
INCONCLUSIVE there). A boundary nearer the point estimate than those pairs, or fresh server starts, could
narrow the interval to is not chased; the stop reason says which boundaries were held and which stayed
(the interval comes from a sample whose size depended on its own value, as in any sequential test: the cap
and the between-start widening keep it from claiming more than it measured). The abba design measures
``min_round_pairs`` rounds per configuration
(and excludes an untrustworthy level at once: measuring it again would cost two more server starts).

**Stream integrity**, per level and configuration: burst-delivered streams (``loadgen.is_burst``) are
counted and left out of the TPOT/ITL percentiles; the client's mean TPOT is compared with the
server's own (vLLM's ``request_time_per_output_token`` histogram, /metrics deltas over the level).
More than 10% bursts or a client/server ratio off by more than 20%: the level is measured once more
(``min_round_pairs`` more pairs), then, if still so, it is ``excluded`` with the reason and carries no
speedup: never a win or a loss.

**Placement** (embedded, 2+ cores): each server's OpenMP (compute) threads are bound to every core
but the first by its launch environment (``embedded.omp_bind``), whoever starts it; every thread of
this process (the client: event loop, writer, sampler) is pinned to the first core until the test
ends. ``LoadResult.pinning`` says what was done.

**Failed requests**: a configuration that lost more than ``max_error_rate`` of a level's requests (timeouts, HTTP
errors) gets the level excluded the same way, with the share and the kind said, and a warning. A round (or a
level's warmup) of which no request completed stops the level at once as failed, said on stderr (every request
timed out: the server is stalled or overloaded). A level some of whose requests failed starts no round pair past
``HARD_BUDGET_FACTOR`` times its budget (at least one request timeout), even short of ``min_round_pairs``; a round
under way then sends no more requests (the second half of a pair: once it has sent for as long as the first half
did), and its requests in flight finish or time out (they are not cancelled). A healthy level is never cut short:
a slow server's rounds are measured whole, ``min_round_pairs`` of them.

**Crossover** = the first level (status ok) whose interval's upper bound is below 1.0. Each level is
logged in the run's phase log (``artifacts.PhaseLog``) when it completes: a resumed run reuses the
levels done with the same parameters and measures the rest; a level cut off mid-way is measured again.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .artifacts import PhaseLog, RunDir
from .endpoints import LazyEndpoint
from .errors import CounterResetError, MetricsError, PlaybookError
from .load_analysis import (
    CONFIGS,
    EMBEDDED_BETWEEN_START_SD,
    Z95,
    apply_drift,
    compare_mixed,
    error_problems,
    find_crossover,
    finding,
    integrity_problems,
    level_stats,
    nothing_completed,
    open_boundaries,
    saturation_level,
    speedup_point,
    still_growing,
    tpots,
    widen_for_restarts,
)
from .loadgen import LoadShape, Target, records_of_attempts, run_phase_sync
from .metrics import Sampler, Snapshot
from .metrics_sources import MetricsSource, source_for
from .placement import Placement
from .schemas.decision import Thresholds
from .schemas.load import LevelStats, LoadResult, SpeedupPoint
from .schemas.lossless import LosslessResult
from .stats import halfwidth_shrink, paired_bootstrap_ratio, relative_halfwidth
from .sweep import DRAFTS_EVERY_STEP, proposal_rate

REQUESTS_JSONL = "50_load_requests.jsonl"
SAMPLES_JSONL = "50_load_samples.jsonl"
STEP = "50_load"
# Parameters that do not change what a level measures (a resumed run may differ in these).
NOT_IN_FINGERPRINT = frozenset({"run_dir", "interactive", "find_saturation", "max_extra_levels", "saturation_gain",
                                "server_start_timeout_s", "concurrencies", "rates", "between_start_sd", "candidates"})
# A level whose requests have failed starts no round (and sends no request) past this many times its time budget,
# or one request timeout if that is longer: a half-stalled server costs a level about that plus one timeout.
HARD_BUDGET_FACTOR = 3
DEFAULT_MAX_ERROR_RATE = Thresholds.model_fields["max_error_rate"].default


def hard_limit_s(p) -> float:
    """Seconds after which a level starts no more rounds nor requests (:data:`HARD_BUDGET_FACTOR`)."""
    return max(HARD_BUDGET_FACTOR * p.level_time_budget_s, p.request_timeout_s)


def _failing(rounds) -> bool:
    """Whether any request of these rounds failed or timed out (the hard limit then applies)."""
    return any(r["status"] != "ok" for rd in rounds for r in rd.records)


def _say(message: str) -> None:
    """A line on stderr at once, above the progress bar (stdout may carry --json)."""
    tqdm.write(f"warning: {message}", file=sys.stderr)


def shapes_for(concurrencies: list[int], rates: list[float], load_shape: str = "poisson",
               burstiness: float = 1.0) -> list[LoadShape]:
    if concurrencies:
        return [LoadShape("concurrency", concurrency=c) for c in concurrencies]
    return [LoadShape(load_shape, rate=r, burstiness=burstiness) for r in rates]  # type: ignore[arg-type]


def _workload_label(workload: str) -> str:
    """A short name for record ids: a prompts file's stem, a class name or mix as given."""
    return Path(workload).stem if ("/" in workload or workload.endswith((".jsonl", ".json"))) else workload


# -- a level as measured ------------------------------------------------------------------------

@dataclass
class Round:
    """One phase of requests to one server: its attempt id, records and wall time."""

    attempt: str
    records: list[dict]
    duration_s: float = 0.0
    status: str = "ok"
    reason: str = ""


@dataclass
class LevelRun:
    """One level of one workload: per configuration its rounds (index i of both = round pair i in the
    paired design) and the pooled stats; how measuring stopped."""

    shape: LoadShape
    workload: str
    design: str
    rounds: dict[str, list[Round]] = field(default_factory=lambda: {c: [] for c in CONFIGS})
    stats: dict[str, LevelStats] = field(default_factory=dict)
    stop_reason: str = ""
    resumed: bool = False

    @property
    def failed(self) -> bool:
        return any(st.status != "ok" for st in self.stats.values()) or len(self.stats) < len(CONFIGS)

    def to_log(self) -> dict:
        return {"stop_reason": self.stop_reason, "design": self.design,
                "attempts": {c: [r.attempt for r in rs] for c, rs in self.rounds.items()},
                "stats": {c: st.model_dump(mode="json") for c, st in self.stats.items()}}

    def point(self, seed: int = 0, temperature: float | None = None,
              between_start_sd: float = 0.0, max_error_rate: float | None = DEFAULT_MAX_ERROR_RATE) -> SpeedupPoint | None:
        b, s = self.stats.get("baseline"), self.stats.get("spec")
        if b is None or s is None or b.status != "ok" or s.status != "ok":
            return None
        recs = {c: [r for rd in self.rounds[c] for r in rd.records] for c in CONFIGS}
        pairs = ([(hb.records, hs.records) for hb, hs in zip(self.rounds["baseline"], self.rounds["spec"], strict=False)]
                 if self.design == "paired" else None)
        sp = speedup_point(self.shape.level, recs["baseline"], recs["spec"], b, s, seed=seed, pairs=pairs,
                           max_error_rate=max_error_rate)
        if pairs is not None:
            widen_for_restarts(sp, between_start_sd)
        sp.design = self.design  # type: ignore[assignment]
        sp.rounds = len(pairs) if pairs is not None else min(b.rounds, s.rounds)
        sp.stop_reason, sp.temperature = self.stop_reason, temperature
        return sp


@dataclass
class _Ctx:
    """What every level of one load test shares."""

    p: object
    run: RunDir
    log: PhaseLog
    fp: str
    resume: bool
    progress: bool
    on_level: Callable | None = None
    spec_config: dict | None = None  # candidates: the spec server's speculative config, when not the parameters'
    _records: list[dict] | None = None
    baseline_config: dict | None = None  # candidates' launch check: the reference server speculates too

    def overrides(self, config: str) -> dict:
        cfg = self.spec_config if config == "spec" else self.baseline_config
        return {"speculative_config": cfg} if cfg else {}

    def records(self) -> list[dict]:
        if self._records is None:
            self._records = self.run.read_jsonl(REQUESTS_JSONL)
        return self._records

    def items(self, workload: str, shape: LoadShape, level_idx: int, round_idx: int, n: int | None = None):
        from .prompt_shaping import tokenizer_for
        from .workloads import build_requests

        p = self.p
        n = n if n is not None else max(p.requests_per_level, shape.concurrency if shape.kind == "concurrency" else 0)
        return build_requests(workload, n, p.temperature, p.max_tokens, seed=p.seed + 1000 * level_idx + round_idx,
                              tokenizer=tokenizer_for(p))  # the target's chat template, exact input lengths

    def key(self, what: str, shape: LoadShape, workload: str) -> str:
        return f"{what}@{shape.label()}/{_workload_label(workload)}"

    def reuse(self, key: str, shape: LoadShape, workload: str) -> LevelRun | None:
        """The level from the phase log, its records read back, if it was done with these parameters."""
        entry = self.log.result(STEP, key, self.fp) if self.resume else None
        if not entry:
            return None
        attempts = {c: entry["attempts"].get(c, []) for c in CONFIGS}
        recs = records_of_attempts(self.records(), {a for a_s in attempts.values() for a in a_s})
        lr = LevelRun(shape, workload, entry["design"], stop_reason=entry["stop_reason"], resumed=True)
        lr.rounds = {c: [Round(a, recs.get(a, [])) for a in attempts[c]] for c in CONFIGS}
        lr.stats = {c: LevelStats.model_validate(st).model_copy(update={"resumed": True})
                    for c, st in entry["stats"].items()}
        return lr

    def done(self, key: str, lr: LevelRun) -> None:
        """Log a level just measured (a failed one is measured again by a resumed run) and show it."""
        if not lr.resumed:
            self.log.record(STEP, key, self.fp, "failed" if lr.failed else "ok", lr.to_log())
        if self.on_level is not None:
            for st in lr.stats.values():
                self.on_level(st)


def _phase_label(config: str, shape: LoadShape, workload: str) -> str:
    return f"{config}@{shape.label()}" + (f"/{_workload_label(workload)}" if workload else "")


def _scrape(source: MetricsSource) -> Snapshot | None:
    try:
        return source.snapshot()
    except MetricsError:
        return None


def _warmup(ctx: _Ctx, target: Target, config: str, shape: LoadShape, workload: str, level_idx: int) -> Round | None:
    """The level's warmup requests (excluded); a failed Round when none of them completed (a stalled server: the
    level stops there, before its rounds), else None."""
    n = ctx.p.warmup_requests
    if not n:
        return None
    res = run_phase_sync(target, ctx.items(workload, shape, level_idx, 999, n), shape,
                         phase=_phase_label(config, shape, workload), warmup=n, timeout_s=ctx.p.request_timeout_s,
                         jsonl=ctx.run.artifact(REQUESTS_JSONL), progress=False)
    why = res.summary.reason or nothing_completed(target.url, res.warmup_records, ctx.p.request_timeout_s)
    if not why:
        return None
    _say(f"{_phase_label(config, shape, workload)} warmup: {why}; the level stops as failed")
    return Round(res.summary.attempt, [], res.summary.duration_s, "failed", f"its warmup: {why}")


def _round(ctx: _Ctx, target: Target, config: str, shape: LoadShape, workload: str, items, seed: int,
           limit_s: float = 0.0) -> Round:
    """One round; no request is sent after ``limit_s`` (the level's hard limit; requests in flight then finish or
    time out). A round of which no request completed is failed, and said at once."""
    caps = [x for x in (ctx.p.duration_s, limit_s) if x > 0]
    res = run_phase_sync(target, items, shape, phase=_phase_label(config, shape, workload), warmup=0,
                         duration_s=min(caps) if caps else 0.0, timeout_s=ctx.p.request_timeout_s, seed=seed,
                         jsonl=ctx.run.artifact(REQUESTS_JSONL), progress=False)
    rd = Round(res.summary.attempt, res.records, res.summary.duration_s, res.summary.status, res.summary.reason)
    if rd.status == "ok" and (why := nothing_completed(target.url, res.records, ctx.p.request_timeout_s)):
        rd.status, rd.reason = "failed", why
        _say(f"{_phase_label(config, shape, workload)}: {why}; the level stops as failed")
    return rd


MIN_LEVEL_PROPOSAL_RATE = 0.4  # below it, most of a level's requests went unspeculated (measured behind a 2-replica mix: 0.15-0.29)


def _undrafted_share(d, records: list[dict], url: str, method: str) -> str | None:
    """Why a level of a method that drafts on every decode step measured mostly undrafted steps, or None: the
    speculative URL served many of the level's requests without speculation (a router in front of replicas with and
    without it), so its TPOT is a mix, not the configuration's."""
    rate = proposal_rate(d, records)
    if rate is None or rate >= MIN_LEVEL_PROPOSAL_RATE:
        return None
    return (f"the speculative server {url} drafted on only {rate:.0%} of this level's decode steps, where {method} "
            "drafts on every step: many requests were served without speculation (a router in front of replicas "
            "with and without it?), so this level would measure that mix; point spec_url at speculative replicas only")


def _speculative_keys(p) -> dict:
    """The speculative-config keys the step's extra_server_args set (specconfig.split_speculative_args, as the server
    gets them: JSON, dotted or shorthand form); the parameters were validated, so they parse."""
    from .specconfig import split_speculative_args

    return split_speculative_args(list(p.extra_server_args), p.tensor_parallel_size)[1]


class _Watch:
    """Server-side figures of one configuration over a level: /metrics before and now, and a sampler."""

    def __init__(self, ctx: _Ctx, target: Target, config: str, shape: LoadShape, workload: str):
        self.target = target
        # a baseline must not speculate, unless it is the launch check's speculative reference (baseline_config)
        self.plain_baseline = config == "baseline" and not ctx.overrides(config)
        # the step's own configuration of a method that drafts on every decode step (no k table to turn it off)
        self.method = ctx.p.method
        self.drafts_every_step = (config == "spec" and not ctx.overrides(config) and ctx.p.method in DRAFTS_EVERY_STEP
                                  and "num_speculative_tokens_per_batch_size" not in _speculative_keys(ctx.p))
        self.source = source_for(ctx.p, config, target.url, target.api_key)  # metrics_source (pods, prometheus, ...)
        self.before = _scrape(self.source)
        self.sampler = Sampler(target.url, ctx.run.artifact(SAMPLES_JSONL), interval_s=1.0,
                               label={"config": config, "level": shape.level, "workload": workload},
                               api_key=target.api_key, gauges=self.source.gauges)

    def stats(self, config: str, shape: LoadShape, workload: str, rounds: list[Round]) -> LevelStats:
        """The pooled LevelStats of these rounds, with the server's own figures since the level began."""
        failed = next((r for r in rounds if r.status != "ok"), None)
        st = level_stats(config, shape, [x for r in rounds for x in r.records], sum(r.duration_s for r in rounds),
                         workload, "failed" if failed else "ok", failed.reason if failed else "")
        st.phase, st.rounds, st.attempts = _phase_label(config, shape, workload), len(rounds), [r.attempt for r in rounds]
        st.attempt = rounds[-1].attempt if rounds else ""
        rows = list(self.sampler.rows)
        kv = [s["kv_cache_usage"] for s in rows if "kv_cache_usage" in s]
        wait = [s["waiting"] for s in rows if "waiting" in s]
        st.kv_cache_usage_max = max(kv) if kv else None
        st.waiting_max = max(wait) if wait else None
        if self.before is not None and not failed:
            try:
                w = self.source.window(self.before, self.source.snapshot(), [x for r in rounds for x in r.records])
                st.server_ttft_ms_mean, st.server_tpot_ms_mean = w.server_ms.get("ttft"), w.server_ms.get("tpot")
                d = w.spec
                st.acceptance_rate, st.mean_acceptance_length = d.acceptance_rate, d.mean_acceptance_length
                st.acceptance_per_position = d.per_position
                if self.drafts_every_step and (why := _undrafted_share(d, [x for r in rounds for x in r.records],
                                                                       self.target.url, self.method)):
                    st.status, st.reason = "failed", why
                if self.plain_baseline and d.drafts > 0:  # a baseline that speculates: nothing to compare against
                    st.status, st.reason = "failed", (
                        f"the baseline server {self.target.url} drafted {d.draft_tokens:.0f} tokens in this level "
                        "(its vllm:spec_decode counters moved): it speculates, so this would compare speculation with "
                        "speculation; point the baseline at a server started without --speculative-config")
            except CounterResetError as exc:
                st.reason = exc.problem
            except MetricsError:
                pass
        if st.server_tpot_ms_mean and st.client_tpot_ms_mean is not None:
            st.client_server_tpot_ratio = st.client_tpot_ms_mean / st.server_tpot_ms_mean
        return st


def measure_paired(ctx: _Ctx, targets: dict[str, Target], shape: LoadShape, workload: str,
                   level_idx: int) -> LevelRun:
    """Round pairs at one level until the interval is narrow enough or the budget is spent (see module doc)."""
    p = ctx.p
    lr = LevelRun(shape, workload, "paired")
    for cfg in CONFIGS:
        if (warm := _warmup(ctx, targets[cfg], cfg, shape, workload, level_idx)) is not None:
            lr.rounds[cfg].append(warm)
            lr.stop_reason = f"{cfg} failed in its warmup"
            break
    watches = {c: _Watch(ctx, targets[c], c, shape, workload) for c in CONFIGS}
    t0 = time.monotonic()
    hard = t0 + hard_limit_s(p)
    forced, remeasured = p.min_round_pairs, ""
    # the homogeneous workload's levels decide the verdict: they settle the boundaries the rules compare with
    deciding = workload == p.workload and p.level_decision_budget_s > 0
    sd, bounds = between_start_sd(p), (1.0, 1.0 + p.min_gain)
    held: list[float] = []  # boundaries the interval held when it would otherwise have stopped
    cap = max(p.level_decision_budget_s, p.level_time_budget_s)  # a level's seconds in all, boundaries included
    with ExitStack() as stack:
        for w in watches.values():
            stack.enter_context(w.sampler)
        # One bar per level, not per round: in Jupyter each bar is a widget, and hundreds of them flood the
        # kernel's output channel (nbval then loses the cell's last messages).
        bar = stack.enter_context(tqdm(desc=f"{_phase_label('paired', shape, workload)}", unit="pair",
                                       disable=not ctx.progress, leave=False, mininterval=1.0))
        warm_failed = bool(lr.stop_reason)
        while not warm_failed:
            i = len(lr.rounds["baseline"])
            failing = _failing(lr.rounds["baseline"]) or _failing(lr.rounds["spec"])
            if i and failing and time.monotonic() >= hard:  # failing: no round past the hard limit, even short of
                # min_round_pairs
                lr.stop_reason = (f"hard time limit {hard_limit_s(p):g} s ({HARD_BUDGET_FACTOR}x the level budget "
                                  f"{p.level_time_budget_s:g} s, at least one request timeout) reached after {i} pairs"
                                  + (f", short of min_round_pairs {forced}" if i < forced else ""))
                break
            items = ctx.items(workload, shape, level_idx, i)
            first_s = 0.0
            for cfg in (CONFIGS if i % 2 == 0 else CONFIGS[::-1]):
                # the second half of a pair may send for as long as the first did, so the pair stays matched
                rd = _round(ctx, targets[cfg], cfg, shape, workload, items, p.seed + i,
                            limit_s=max(hard - time.monotonic(), first_s, 0.001) if failing else 0.0)
                first_s = first_s or rd.duration_s
                lr.rounds[cfg].append(rd)
                if rd.status != "ok":
                    break
            failed = next((c for c in CONFIGS if lr.rounds[c] and lr.rounds[c][-1].status != "ok"), None)
            if failed:
                lr.stop_reason = f"{failed} failed in round pair {i + 1}"
                break
            n = i + 1
            bar.update(1)
            if n < forced:
                continue
            pairs = [(tpots(b.records), tpots(s.records)) for b, s in zip(lr.rounds["baseline"], lr.rounds["spec"],
                                                                          strict=True)]
            ratio = paired_bootstrap_ratio(pairs, seed=p.seed)
            hw = relative_halfwidth(*ratio)
            next_end = (time.monotonic() - t0) * (n + 1) / n  # when one more pair would end
            width = f"+-{hw:.0%}" if hw is not None else "no interval"
            bar.set_postfix_str(width, refresh=False)
            settle: list[float] = []
            unsettled: list[float] = []
            if deciding:
                most = max(n, int(cap / (next_end / (n + 1))))  # pairs the cap allows at this level's pace
                settle, unsettled = open_boundaries(*ratio, sd, bounds, shrink=halfwidth_shrink(n, most))
            if hw is not None and settle and next_end <= cap:
                if hw <= p.target_ci_halfwidth or next_end > p.level_time_budget_s:
                    held = sorted({*held, *settle})  # it would stop here, short of a boundary pairs can settle
                continue
            if hw is not None and hw <= p.target_ci_halfwidth:
                lr.stop_reason = (f"within-run interval {width} reached the target +-{p.target_ci_halfwidth:.0%} after {n} "
                                  "pairs")
            elif hw is None:
                lr.stop_reason = f"no interval after {n} pairs: too few streams with a usable TPOT"
            elif next_end > p.level_time_budget_s:
                lr.stop_reason = (f"time budget {p.level_time_budget_s:g} s spent after {n} pairs "
                                  f"(within-run interval {width}, target +-{p.target_ci_halfwidth:.0%})")
            else:
                continue
            lr.stop_reason += _boundary_note(held, unsettled, sd, cap)
            if not remeasured:
                stats = {c: watches[c].stats(c, shape, workload, lr.rounds[c]) for c in CONFIGS}
                problems = integrity_problems(stats)
                if problems:  # measured once more before the level may be excluded
                    remeasured = "; ".join(problems)
                    forced = n + p.min_round_pairs
                    continue
            break
        lr.stats = {c: watches[c].stats(c, shape, workload, lr.rounds[c]) for c in CONFIGS}
    if remeasured:
        lr.stop_reason += f"; re-measured with {p.min_round_pairs} more pairs after: {remeasured}"
    return lr


def _boundary_note(held: list[float], unsettled: list[float], sd: float, cap: float) -> str:
    """What the boundary rule did at a level (see the module doc), '' when it had nothing to do. (A boundary
    still settleable when the level stops cannot be: with no budget left for another pair, the projected
    interval is today's, which holds it.)"""
    def names(bs):
        return " and ".join(f"{b:g}" for b in bs)
    on = f"; measured on while its interval held {names(held)}" if held else ""
    if unsettled:
        starts = f"; fresh server starts alone move it +-{math.expm1(Z95 * sd):.0%}" if sd > 0 else ""
        return (f"{on}; its interval holds {names(unsettled)}, too near the point estimate for the pairs of "
                f"{cap:g} s to settle{starts}")
    return f"; measured on until the interval no longer held {names(held)}" if held else ""


def measure_single(ctx: _Ctx, target: Target, config: str, shape: LoadShape, workload: str,
                   level_idx: int) -> tuple[list[Round], LevelStats]:
    """One configuration at one level, ``min_round_pairs`` rounds (abba design: one server at a time)."""
    warm = _warmup(ctx, target, config, shape, workload, level_idx)
    watch = _Watch(ctx, target, config, shape, workload)
    rounds: list[Round] = [warm] if warm is not None else []
    hard = time.monotonic() + hard_limit_s(ctx.p)
    with watch.sampler:
        for i in range(ctx.p.min_round_pairs if warm is None else 0):
            failing = _failing(rounds)
            if i and failing and time.monotonic() >= hard:  # the hard limit: no more rounds (see measure_paired)
                break
            rounds.append(_round(ctx, target, config, shape, workload, ctx.items(workload, shape, level_idx, i),
                                 ctx.p.seed + i, limit_s=max(hard - time.monotonic(), 0.001) if failing else 0.0))
            if rounds[-1].status != "ok":
                break
        return rounds, watch.stats(config, shape, workload, rounds)


# -- the step -----------------------------------------------------------------------------------

def analyze(levels: list[LevelRun], workload: str = "", temperature: float = 0.0,
            planned: list[float] | None = None, seed: int = 0, drift: float | None = None,
            between_start_sd: float = 0.0, max_error_rate: float | None = DEFAULT_MAX_ERROR_RATE) -> LoadResult:
    """The step result: per-level stats, speedup and its interval, crossover, missing levels. A level of which a
    configuration lost more requests than ``max_error_rate`` is excluded (no speedup, never a win or a loss), with
    a warning naming it."""
    res = LoadResult(workload=workload, temperature=temperature, levels=[st for lr in levels for st in lr.stats.values()],
                     drift=drift)
    if levels:
        res.design = levels[0].design  # type: ignore[assignment]
    if res.levels:
        res.level_kind = res.levels[0].level_kind
    for lr in levels:
        sp = lr.point(seed, temperature, between_start_sd, max_error_rate)
        if sp is not None:
            if lr.design == "abba":
                apply_drift(sp, drift)
            res.speedup.append(sp)
            if errors := error_problems(lr.stats, max_error_rate):
                unit = "concurrency" if lr.shape.kind == "concurrency" else "req/s"
                res.warnings.append(f"{unit} {lr.shape.level:g}: excluded from the speedup and the crossover: "
                                    + "; ".join(errors))
    res.speedup.sort(key=lambda s: s.level)
    res.crossover = find_crossover(res.speedup)
    base = sorted((st for st in res.levels if st.config == "baseline"), key=lambda s: s.level)
    res.saturation_level = saturation_level(base)
    stats = {(st.config, st.level): st for st in res.levels}
    for lvl in sorted(set(planned or []) | {st.level for st in res.levels}):
        for cfg in CONFIGS:
            st = stats.get((cfg, lvl))
            if st is None or st.status != "ok":
                why = st.reason if st is not None and st.reason else (
                    "its round pair could not be measured" if st is not None else "not measured")
                res.missing_levels.append(f"{cfg}@{lvl:g}: {why}")
    measured = [s for s in res.levels if s.status == "ok"]  # a failed level is missing, not an error burst
    total = sum(s.requests for s in measured)
    res.error_rate = sum(s.errors for s in measured) / total if total else 0.0
    if res.missing_levels:
        res.status = "partial" if res.speedup else "failed"
        res.warnings.extend(res.missing_levels)
    res.finding = finding(res)
    return res


def between_start_sd(p) -> float:
    """The between-start spread added to paired intervals: the parameter, or (-1) the value measured for the
    embedded engine (:data:`load_analysis.EMBEDDED_BETWEEN_START_SD`); 0 elsewhere (not measured there)."""
    sd = getattr(p, "between_start_sd", -1.0)
    if sd >= 0:
        return sd
    return EMBEDDED_BETWEEN_START_SD if p.mode == "embedded" else 0.0


def _design(p) -> str:
    return "paired" if p.mode in ("embedded", "external") or p.servers_side_by_side else "abba"


def _next_shape(p, shapes: list[LoadShape], i: int, extra: int, base_stats: list[LevelStats]) -> bool:
    """find_saturation: add a doubled level after the last one while baseline throughput grows."""
    shape = shapes[i]
    if (p.find_saturation and i == len(shapes) - 1 and shape.kind == "concurrency"
            and extra < p.max_extra_levels and still_growing(base_stats, p.saturation_gain)):
        shapes.append(LoadShape("concurrency", concurrency=shape.concurrency * 2))
        return True
    return False


def _run_paired(ctx: _Ctx, shapes: list[LoadShape], warnings: list[str]):
    p = ctx.p
    levels: list[LevelRun] = []
    mixed: list[LevelRun] = []
    lossless_res = None
    placement = Placement(p.mode == "embedded")
    with ExitStack() as stack:
        lazy = {c: stack.enter_context(LazyEndpoint(p, ctx.run.path, c, **ctx.overrides(c))) for c in CONFIGS}
        stack.callback(placement.release)
        targets: dict[str, Target] = {}

        def need() -> dict[str, Target]:
            if not targets:
                for c in CONFIGS:
                    try:
                        targets[c] = lazy[c]()
                    except PlaybookError as exc:
                        targets.clear()
                        raise PlaybookError(f"{c}: {exc.problem}", exc.fix) from exc
                if targets["baseline"].model != targets["spec"].model:  # said, and kept in 50_load.json
                    warnings.append(f"the baseline answers as model '{targets['baseline'].model}', the speculative "
                                    f"server as '{targets['spec'].model}': check that both serve the same target")
                placement.pin_client(targets)
            return targets

        i = extra = 0
        try:
            while i < len(shapes):
                shape = shapes[i]
                for wl, out in ((p.workload, levels), (p.mixed_workload, mixed)):
                    if not wl:
                        continue
                    key = ctx.key("paired", shape, wl)
                    lr = ctx.reuse(key, shape, wl) or measure_paired(ctx, need(), shape, wl, i)
                    ctx.done(key, lr)
                    out.append(lr)
                    if lr.failed:
                        break
                if levels[-1].failed or (mixed and mixed[-1].failed):
                    break
                base_stats = [lr.stats["baseline"] for lr in levels]
                extra += _next_shape(p, shapes, i, extra, base_stats)
                i += 1
            lossless_res = _lossless_paired(ctx, need)
        except PlaybookError as exc:  # a server that cannot start or dies: keep what was measured
            warnings.append(exc.problem)
    return levels, mixed, lossless_res, placement.note


def _lossless_paired(ctx: _Ctx, need) -> LosslessResult | None:
    from . import lossless as ll
    from .workloads import build_requests

    p = ctx.p
    if not (p.lossless_check and p.lossless_temperatures):
        return None
    done = ctx.log.result(STEP, "lossless", ctx.fp) if ctx.resume else None
    if done:
        return LosslessResult.model_validate(done)
    tokens = min(p.max_tokens, 32)
    items = build_requests(p.workload, p.lossless_requests, p.temperature, tokens, seed=p.seed + 1000)
    t = need()
    res = ll.check(t["baseline"], t["spec"], items, p.lossless_temperatures, tokens, p.lossless_alpha, seed=p.seed)
    ctx.log.record(STEP, "lossless", ctx.fp, "ok", res)
    return res


def _run_abba(ctx: _Ctx, shapes: list[LoadShape], warnings: list[str]):
    """Baseline over the levels, spec over the same levels, the baseline again at the first level."""
    from . import lossless as ll
    from .workloads import build_requests

    p = ctx.p
    runs: dict[tuple[float, str], LevelRun] = {}
    order: list[tuple[float, str]] = []
    tokens = min(p.max_tokens, 32)
    ll_items = (build_requests(p.workload, p.lossless_requests, p.temperature, tokens, seed=p.seed + 1000)
                if p.lossless_check and p.lossless_temperatures else [])
    lossless_res = LosslessResult.model_validate(r) if ctx.resume and (
        r := ctx.log.result(STEP, "lossless", ctx.fp)) else None
    spec_outputs = (ctx.log.result(STEP, "lossless-spec-outputs", ctx.fp) or {}) if ctx.resume else {}
    drift = None
    workloads = [w for w in (p.workload, p.mixed_workload) if w]

    def level(config: str, target_fn, shape: LoadShape, wl: str, i: int, what: str = "") -> LevelStats:
        key = ctx.key(what or config, shape, wl)
        lr = runs.setdefault((shape.level, wl), LevelRun(shape, wl, "abba"))
        lr.stop_reason = f"{p.min_round_pairs} rounds per configuration (one server at a time)"
        entry = ctx.log.result(STEP, key, ctx.fp) if ctx.resume else None
        if (shape.level, wl) not in order:
            order.append((shape.level, wl))
        if entry:
            attempts = entry["attempts"].get(config, [])
            recs = records_of_attempts(ctx.records(), set(attempts))
            rounds = [Round(a, recs.get(a, [])) for a in attempts]
            st = LevelStats.model_validate(entry["stats"][config]).model_copy(update={"resumed": True})
            if ctx.on_level is not None:
                ctx.on_level(st)
        else:
            rounds, st = measure_single(ctx, target_fn(), config, shape, wl, i)
            log = {"design": "abba", "stop_reason": lr.stop_reason, "attempts": {config: [r.attempt for r in rounds]},
                   "stats": {config: st.model_dump(mode="json")}}
            ctx.log.record(STEP, key, ctx.fp, "ok" if st.status == "ok" else "failed", log)
            if ctx.on_level is not None:
                ctx.on_level(st)
        if not what:
            lr.rounds[config], lr.stats[config] = rounds, st
        return st

    measured: list[LoadShape] = []
    for config in ("baseline", "spec"):
        try:
            with LazyEndpoint(p, ctx.run.path, config, **ctx.overrides(config)) as target:
                todo = shapes if config == "baseline" else (measured or shapes)
                i = extra = 0
                while i < len(todo):
                    stats = [level(config, target, todo[i], wl, i) for wl in workloads]
                    if any(st.status != "ok" for st in stats):
                        break
                    if config == "baseline":
                        measured.append(todo[i])
                        base = [runs[(s.level, p.workload)].stats["baseline"] for s in measured]
                        extra += _next_shape(p, todo, i, extra, base)
                    i += 1
                if config == "spec" and ll_items and lossless_res is None and not spec_outputs:
                    spec_outputs = {str(t): ll.generate(target(), ll_items, t, tokens, p.seed)
                                    for t in p.lossless_temperatures}
                    ctx.log.record(STEP, "lossless-spec-outputs", ctx.fp, "ok", spec_outputs)
        except PlaybookError as exc:
            warnings.append(f"{config}: {exc.problem}")
    first = next(iter(order), None)
    if first is not None and runs[first].stats.get("baseline") and runs[first].stats["baseline"].status == "ok":
        shape = runs[first].shape
        try:
            with LazyEndpoint(p, ctx.run.path, "baseline") as target:
                again = level("baseline", target, shape, p.workload, 0, what="baseline-again")
                a, b = runs[first].stats["baseline"].tpot_ms.p50, again.tpot_ms.p50
                drift = b / a if a and b and again.status == "ok" else None
                if ll_items and lossless_res is None and spec_outputs:
                    outs = {float(t): o for t, o in spec_outputs.items()}
                    lossless_res = ll.check_against_baseline(target(), ll_items, outs, tokens, p.lossless_alpha,
                                                             seed=p.seed)
                    ctx.log.record(STEP, "lossless", ctx.fp, "ok", lossless_res)
        except PlaybookError as exc:
            warnings.append(f"baseline (re-measured for drift): {exc.problem}")
    levels = [runs[k] for k in order if k[1] == p.workload]
    mixed = [runs[k] for k in order if k[1] == p.mixed_workload and p.mixed_workload]
    return levels, mixed, lossless_res, drift


def run_load_test(p, run: RunDir, progress: bool = True, resume: bool = True, on_level=None,
                  spec_config: dict | None = None, baseline_config: dict | None = None) -> LoadResult:
    """Notebook 50 / ``playbook run`` / ``playbook load``: measure every level (paired rounds where both
    servers can be up at once, else ABBA), the mixed workload at every level when set, the
    losslessness guard, then the analysis. With ``resume``, levels (and the lossless check) logged
    done by an interrupted earlier run with the same parameters are reused, and no server starts
    when nothing is left. ``on_level(stats)`` sees each (configuration, level) as it completes;
    ``spec_config`` replaces the speculative server's config (helpers/candidates.py: an n-gram window);
    ``baseline_config`` gives the reference server one (the launch check: a k table against the static winner)."""
    from .workloads import check_specs

    shapes = shapes_for(p.concurrencies, p.rates, p.load_shape, p.burstiness)
    check_specs(p)  # a bad workload fails here, before any server starts
    planned = [s.level for s in shapes]
    ctx = _Ctx(p, run, PhaseLog(run), p.fingerprint(NOT_IN_FINGERPRINT), resume, progress, on_level, spec_config,
               baseline_config=baseline_config)
    warnings: list[str] = []
    drift, pinning = None, ""
    if _design(p) == "paired":
        levels, mixed, lossless_res, pinning = _run_paired(ctx, shapes, warnings)
    else:
        levels, mixed, lossless_res, drift = _run_abba(ctx, shapes, warnings)
        pinning = "not pinned: one server at a time (managed mode)"
    temperature = None if _is_mix(p.workload) else p.temperature
    res = analyze(levels, p.workload, p.temperature, planned=planned, seed=p.seed, drift=drift,
                  between_start_sd=between_start_sd(p), max_error_rate=p.max_error_rate)
    for sp in res.speedup:
        sp.temperature = temperature
    res.design, res.pinning = _design(p), pinning  # type: ignore[assignment]
    res.warnings.extend(warnings)
    if warnings and res.status == "ok":
        res.status = "partial"
    res.lossless = lossless_res
    if lossless_res is not None and lossless_res.lossless is False:
        res.finding = "NOT LOSSLESS: speculation changed the outputs; " + res.finding
    hom = {sp.level: sp for sp in res.speedup}
    for lr in mixed:
        mix = lr.point(p.seed, None if _is_mix(p.mixed_workload) else p.temperature, between_start_sd(p),
                       p.max_error_rate)
        if mix is not None and lr.design == "abba":
            apply_drift(mix, drift)
        res.mixed.append(compare_mixed(lr.shape.level, p.workload, p.mixed_workload, hom.get(lr.shape.level), mix))
        res.mixed_levels.extend(lr.stats.values())
    from .workload_breakdown import BREAKDOWN_CSV, breakdown, write_csv

    res.breakdown = breakdown(run.read_jsonl(REQUESTS_JSONL), res, p.seed)  # by class and prompt-length bucket
    write_csv(res.breakdown, run.artifact(BREAKDOWN_CSV))
    return res


def _is_mix(workload: str) -> bool:
    return "@" in workload or ":" in workload


def levels_table(res: LoadResult):
    """One row per (configuration, level): the percentiles and throughput, as a pandas DataFrame."""
    import pandas as pd

    rows = []
    for s in sorted(res.levels, key=lambda s: (s.level, s.config)):
        row = {"level": s.level, "config": s.config, "status": s.status, "rounds": s.rounds, "requests": s.requests,
               "errors": s.errors, "bursts": s.burst_requests}
        for m in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
            for q in ("p50", "p95", "p99"):
                row[f"{m[:-3]}_{q}"] = getattr(getattr(s, m), q)
        row.update(output_tok_s=s.output_tok_s, req_s=s.req_s, acceptance=s.acceptance_rate,
                   server_tpot_mean=s.server_tpot_ms_mean, client_server=s.client_server_tpot_ratio,
                   kv_usage_max=s.kv_cache_usage_max)
        rows.append(row)
    return pd.DataFrame(rows).round(2)


def speedup_table(res: LoadResult):
    import pandas as pd

    return pd.DataFrame([sp.model_dump() for sp in res.speedup]).round(3)
