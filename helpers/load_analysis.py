"""Load-test analysis: one level's numbers from its records, the speedup and its interval, the
integrity checks that exclude a level, the ABBA drift flag, crossover, saturation, the finding.

Burst-delivered streams (``loadgen.is_burst``) count as requests and for throughput but not in TPOT
or ITL. A level is **excluded** (no speedup: never a win or a loss) when more than 10% of a
configuration's streams were burst-delivered or its client-side mean TPOT and vLLM's own differ by
more than 20%, or when more of a configuration's requests failed than ``max_error_rate`` (its latencies would
come from the requests that survived an overloaded or stalled server); **inconclusive** (abba design) when the
baseline drifted more than its interval's relative half-width.

**Between server starts** (paired design): pairing cancels what drifts within a run, not what is fixed
for the life of a server process and differs at the next start. :func:`widen_for_restarts` adds that
spread (a standard deviation of the log speedup, measured on the engine by restarting both servers:
:data:`EMBEDDED_BETWEEN_START_SD`) to each level's interval, so a level wins only by more than a
fresh start of the servers moves it.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .loadgen import LoadShape
from .schemas.load import LevelStats, LoadResult, Percentiles, SpeedupPoint, WorkloadComparison
from .stats import bootstrap_ratio, paired_bootstrap_ratio, percentiles, relative_halfwidth

CONFIGS = ("baseline", "spec")
BURST_SHARE_MAX = 0.10  # more burst-delivered streams than this: the level is re-measured, then excluded
CLIENT_SERVER_TOLERANCE = 0.20  # client/server mean TPOT further apart than this: the same
# SD of a level's log speedup between fresh starts of the embedded pair beyond the within-run interval, measured on
# the 2-core VM over seven clean-clone `make run`s of 2026-12-05/06 (each starts both servers afresh; README
# "Stability"): across runs the log speedup at concurrency 1 / 4 / 8 / 16 had SD 0.043 / 0.055 / 0.061 / 0.077,
# within runs 0.051 / 0.052 / 0.048 / 0.042 (the runs' own intervals, +-8 to +-15%); pooled over the levels,
# sqrt(mean total variance - mean within variance) = 0.036, rounded up. It was 0.11 (2026-12-02: three runs,
# speedups 1.06, 1.20, 0.94), measured before each server was bound to its own core, which those intervals
# still carried: with it, concurrency 4 was no win for the step's own k=4 in any of the seven runs, though each
# measured 1.06x to 1.24x there.
EMBEDDED_BETWEEN_START_SD = 0.04
Z95 = 1.959964


def _pct(values) -> Percentiles:
    return Percentiles(**percentiles(values))


def _ok(records: list[dict]) -> list[dict]:
    return [r for r in records if r["status"] == "ok"]


def tpots(records: list[dict]) -> list[float]:
    """TPOTs of the successful, not burst-delivered requests (what speedups are computed on)."""
    return [r["tpot_ms"] for r in _ok(records) if r["tpot_ms"] is not None and not r.get("burst")]


def level_stats(config: str, shape: LoadShape, records: list[dict], duration_s: float, workload: str = "",
                status: str = "ok", reason: str = "") -> LevelStats:
    """Latency percentiles and throughput of one (configuration, level) from its records.
    Burst-delivered streams count as requests and for throughput, not in the TPOT/ITL percentiles."""
    ok = _ok(records)
    paced = [r for r in ok if not r.get("burst")]
    statuses = Counter(r["status"] for r in records if r["status"] != "ok")
    if records and not ok and status == "ok":  # nothing measured: a failed level, never a level without a speedup
        status, reason = "failed", all_failed(records, statuses)
    itl = [x for r in paced for x in r["itl_ms"]]
    out_tokens = sum(r["output_tokens"] or 0 for r in ok)
    lags = [r["dispatch_lag_ms"] for r in records]
    client_tpot = [r["tpot_ms"] for r in ok if r["tpot_ms"] is not None]
    bursts = len(ok) - len(paced)
    return LevelStats(
        config=config, level=shape.level, level_kind="concurrency" if shape.kind == "concurrency" else "rate",
        workload=workload, status=status, reason=reason, requests=len(records),
        errors=len(records) - len(ok), error_rate=(len(records) - len(ok)) / len(records) if records else 0.0,
        errors_by_status=dict(statuses),
        ttft_ms=_pct([r["ttft_ms"] for r in ok]), tpot_ms=_pct(tpots(records)),
        itl_ms=_pct(itl), e2e_ms=_pct([r["e2e_ms"] for r in ok]),
        output_tok_s=out_tokens / duration_s if duration_s > 0 and ok else None,
        req_s=len(ok) / duration_s if duration_s > 0 and ok else None,
        duration_s=duration_s,
        dispatch_lag_p99_ms=float(np.percentile(lags, 99)) if lags else None,
        burst_requests=bursts, burst_share=bursts / len(ok) if ok else None,
        client_tpot_ms_mean=float(np.mean(client_tpot)) if client_tpot else None,
    )


def all_failed(records: list[dict], statuses: Counter) -> str:
    """Why a level measured nothing: every request failed, by kind, with the first error's own words."""
    kinds = ", ".join(f"{n} {kind}" for kind, n in statuses.most_common())
    first = next((str(r["error"]) for r in records if r.get("error")), "")
    return f"every one of its {len(records)} requests failed ({kinds})" + (f": {first[:300]}" if first else "")


def nothing_completed(url: str, records: list[dict], timeout_s: float) -> str | None:
    """Why a round of requests (or a sweep point) got no answer at all from the server at ``url``: every request
    timed out (a stalled or overloaded server), or failed otherwise; None when one completed or none was sent."""
    if not records or any(r["status"] == "ok" for r in records):
        return None
    statuses = Counter(r["status"] for r in records)
    if set(statuses) == {"timeout"}:
        return (f"every one of its {len(records)} requests to {url} timed out (no complete response within "
                f"{timeout_s:g} s): the server is stalled or overloaded")
    kinds = ", ".join(f"{n} {kind}" for kind, n in statuses.most_common())
    first = next((str(r["error"]) for r in records if r.get("error")), "")
    return f"every one of its {len(records)} requests to {url} failed ({kinds})" + (f": {first[:300]}" if first else "")


def error_problems(stats: dict[str, LevelStats], max_error_rate: float | None) -> list[str]:
    """A configuration whose requests failed more often than ``max_error_rate`` (the report's threshold): its
    latencies come from the requests that survived, so the level cannot count as a win or a loss."""
    if max_error_rate is None:
        return []
    out = []
    for cfg in CONFIGS:
        st = stats.get(cfg)
        if st is None or not st.requests or st.error_rate <= max_error_rate:
            continue
        by = st.errors_by_status or {}
        timeouts = by.get("timeout", 0)
        if timeouts and timeouts >= st.errors / 2:
            out.append(f"{timeouts / st.requests:.0%} of {cfg} requests timed out ({timeouts} of {st.requests}"
                       f"{'' if timeouts == st.errors else f'; {st.errors} failed in all'}): the server is overloaded "
                       f"or stalled (above max_error_rate {max_error_rate:.0%})")
        else:
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(by.items(), key=lambda kv: -kv[1])) or f"{st.errors}"
            out.append(f"{st.error_rate:.0%} of {cfg} requests failed ({kinds} of {st.requests}; above "
                       f"max_error_rate {max_error_rate:.0%})")
    return out


def integrity_problems(stats: dict[str, LevelStats]) -> list[str]:
    """Why a level's streams cannot be trusted: too many bursts, or client and server disagree on TPOT."""
    out = []
    for cfg in CONFIGS:
        st = stats.get(cfg)
        if st is None:
            continue
        if st.burst_share is not None and st.burst_share > BURST_SHARE_MAX:
            out.append(f"{st.burst_requests} of {st.requests - st.errors} {cfg} streams arrived burst-delivered "
                       f"(more than {BURST_SHARE_MAX:.0%})")
        ratio = st.client_server_tpot_ratio
        if ratio is not None and abs(ratio - 1) > CLIENT_SERVER_TOLERANCE:
            out.append(f"{cfg} client-side mean TPOT {st.client_tpot_ms_mean:.2f} ms vs the server's own "
                       f"{st.server_tpot_ms_mean:.2f} ms (apart by more than {CLIENT_SERVER_TOLERANCE:.0%})")
    return out


def _gap(p: Percentiles) -> float | None:
    return p.p99 - p.p50 if p.p99 is not None and p.p50 is not None else None


def speedup_point(level: float, base: list[dict], spec: list[dict], base_stats: LevelStats | None = None,
                  spec_stats: LevelStats | None = None, seed: int = 0,
                  pairs: list[tuple[list[dict], list[dict]]] | None = None,
                  max_error_rate: float | None = None) -> SpeedupPoint:
    """TPOT speedup (baseline / spec medians, bursts left out) with its interval, the throughput ratio
    and the P50-P99 gap change. With ``pairs`` (round pairs' records) the interval resamples pairs
    (design paired); otherwise the two samples independently. A level whose streams fail the integrity checks,
    or (``max_error_rate`` given) one configuration of which lost more requests than that, is excluded."""
    if pairs is not None:
        point, low, high = paired_bootstrap_ratio([(tpots(b), tpots(s)) for b, s in pairs], seed=seed)
    else:
        point, low, high = bootstrap_ratio(tpots(base), tpots(spec), seed=seed)
    sp = SpeedupPoint(level=level, speedup=point, ci_low=low, ci_high=high,
                      design="paired" if pairs is not None else "sequential",
                      rounds=len(pairs) if pairs is not None else 0,
                      significant=low is not None and (low > 1.0 or high < 1.0))
    if base_stats and spec_stats:
        if base_stats.output_tok_s and spec_stats.output_tok_s:
            sp.throughput_ratio = spec_stats.output_tok_s / base_stats.output_tok_s
        gb, gs = _gap(base_stats.tpot_ms), _gap(spec_stats.tpot_ms)
        sp.p50_p99_gap_baseline_ms, sp.p50_p99_gap_spec_ms = gb, gs
        if gb and gs is not None:
            sp.gap_change = gs / gb
        sp.burst_share_baseline, sp.burst_share_spec = base_stats.burst_share, spec_stats.burst_share
        sp.client_server_tpot_ratio_baseline = base_stats.client_server_tpot_ratio
        sp.client_server_tpot_ratio_spec = spec_stats.client_server_tpot_ratio
        both = {"baseline": base_stats, "spec": spec_stats}
        errors, integrity = error_problems(both, max_error_rate), integrity_problems(both)
        if errors or integrity:
            exclude(sp, "; ".join(errors + integrity), for_errors=bool(errors), for_integrity=bool(integrity))
    return sp


def widened(speedup: float, low: float, high: float, sd: float) -> tuple[float, float]:
    """The interval (``low``, ``high``) around ``speedup`` with the between-start spread ``sd`` (of the log
    speedup) added on each side in log space: half-width' = sqrt(half-width^2 + (1.96 sd)^2)."""
    extra = (Z95 * sd) ** 2
    lo = float(np.sqrt(np.log(speedup / low) ** 2 + extra))
    hi = float(np.sqrt(np.log(high / speedup) ** 2 + extra))
    return speedup * float(np.exp(-lo)), speedup * float(np.exp(hi))


def widen_for_restarts(sp: SpeedupPoint, sd: float) -> None:
    """Add the between-start spread ``sd`` to the interval (:func:`widened`). The point estimate stays;
    ``significant`` follows."""
    held = sp.withheld or {}
    if sd > 0 and sp.status == "excluded" and None not in (held.get("speedup"), held.get("ci_low"), held.get("ci_high")) \
            and min(held["speedup"], held["ci_low"], held["ci_high"]) > 0:  # as it would be counted
        held["ci_low"], held["ci_high"] = widened(held["speedup"], held["ci_low"], held["ci_high"], sd)
        held["between_start_sd"] = sd
    if sd <= 0 or sp.status == "excluded" or sp.speedup is None or sp.ci_low is None or sp.ci_high is None \
            or min(sp.speedup, sp.ci_low, sp.ci_high) <= 0:
        return
    sp.ci_low, sp.ci_high = widened(sp.speedup, sp.ci_low, sp.ci_high, sd)
    sp.between_start_sd = sd
    sp.significant = sp.status == "ok" and (sp.ci_low > 1.0 or sp.ci_high < 1.0)


def open_boundaries(speedup: float | None, low: float | None, high: float | None, sd: float,
                    boundaries: tuple[float, ...], shrink: float = 0.0) -> tuple[list[float], list[float]]:
    """The verdict boundaries a level's interval still holds: ``(settleable, unsettleable)``.

    ``boundaries`` are the speedups the rules compare a level's interval with (1.0: a win or a loss;
    1 + min_gain: a gain worth having). The interval is the within-run one widened by the between-start
    spread ``sd``, as the rules will see it. A boundary it holds is *settleable* when more round pairs could
    exclude it: the point estimate lies further from it than the interval would reach with the within-run part
    shrunk to ``shrink`` times today's (:func:`stats.halfwidth_shrink` to the most pairs the budget allows; 0: any
    number of pairs), plus the between-start spread, which no number of pairs from one start of the servers
    narrows."""
    if speedup is None or low is None or high is None or min(speedup, low, high) <= 0:
        return [], []
    lo, hi = widened(speedup, low, high, sd) if sd > 0 else (low, high)
    held = [b for b in boundaries if lo <= b <= hi]

    def reach(b: float) -> float:  # the log half-width, on b's side, the interval could shrink to
        within = np.log(speedup / low) if b <= speedup else np.log(high / speedup)
        return float(np.hypot(shrink * within, Z95 * sd))

    settleable = [b for b in held if abs(np.log(speedup / b)) > reach(b)]
    return settleable, [b for b in held if b not in settleable]


def exclude(sp: SpeedupPoint, reason: str, for_errors: bool = False, for_integrity: bool = True) -> None:
    """Mark a level excluded: its speedup numbers are dropped, so nothing can print or count them; a level excluded
    for failed requests alone keeps them in ``withheld`` (a re-decision with a higher max_error_rate counts it)."""
    if for_errors and not for_integrity and sp.speedup is not None:
        sp.withheld = {"speedup": sp.speedup, "ci_low": sp.ci_low, "ci_high": sp.ci_high}
    sp.excluded_for = ["errors"] * for_errors + ["integrity"] * for_integrity
    sp.status, sp.reason, sp.significant = "excluded", reason, False
    sp.speedup = sp.ci_low = sp.ci_high = None


def restore(sp: SpeedupPoint) -> bool:
    """Count again a level excluded for failed requests alone, from its withheld numbers; False when it cannot be."""
    if sp.status != "excluded" or sp.excluded_for != ["errors"] or not sp.withheld:
        return False
    sp.speedup, sp.ci_low, sp.ci_high = (sp.withheld.get(k) for k in ("speedup", "ci_low", "ci_high"))
    sp.between_start_sd = sp.withheld.get("between_start_sd", sp.between_start_sd)
    sp.status, sp.excluded_for, sp.withheld = "ok", [], None
    sp.significant = sp.ci_low is not None and sp.ci_high is not None and (sp.ci_low > 1.0 or sp.ci_high < 1.0)
    return True


def apply_drift(sp: SpeedupPoint, drift: float | None) -> None:
    """ABBA: a level whose baseline drift exceeds its interval's relative half-width is inconclusive."""
    sp.drift = drift
    hw = relative_halfwidth(sp.speedup, sp.ci_low, sp.ci_high)
    if sp.status == "ok" and drift is not None and hw is not None and abs(drift - 1) > hw:
        sp.status, sp.significant = "inconclusive", False
        sp.reason = (f"the baseline drifted by {drift - 1:+.0%} between the start and the end of the step, more "
                     f"than this level's interval half-width (+-{hw:.0%})")


def find_crossover(points: list[SpeedupPoint]) -> float | None:
    """First level (status ok, increasing load) whose CI upper bound is below 1.0; None if there is none."""
    for sp in sorted(points, key=lambda s: s.level):
        if sp.status == "ok" and sp.ci_high is not None and sp.ci_high < 1.0:
            return sp.level
    return None


def still_growing(stats: list[LevelStats], min_gain: float) -> bool:
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


def compare_mixed(level: float, homogeneous: str, mixed: str, hom: SpeedupPoint | None,
                  mix: SpeedupPoint | None) -> WorkloadComparison:
    return WorkloadComparison(
        level=level, homogeneous=homogeneous, mixed=mixed,
        gap_change_homogeneous=hom.gap_change if hom else None, gap_change_mixed=mix.gap_change if mix else None,
        speedup_homogeneous=hom.speedup if hom else None, speedup_mixed=mix.speedup if mix else None)


def _describe(sp: SpeedupPoint) -> str:
    if sp.status == "excluded" or sp.speedup is None:
        return f"{sp.level:g}: excluded ({sp.reason or 'no speedup'})"
    ci = f" [{sp.ci_low:.2f}, {sp.ci_high:.2f}]" if sp.ci_low is not None else ""
    text = f"{sp.level:g}: {sp.speedup:.2f}x{ci}"
    return text + (" inconclusive (baseline drift)" if sp.status == "inconclusive" else "")


def finding(r: LoadResult) -> str:
    if not r.speedup:
        return "no level was measured on both configurations: " + "; ".join(r.missing_levels[:3])
    unit = "concurrency" if r.level_kind == "concurrency" else "req/s"
    parts = [_describe(sp) for sp in r.speedup]
    cross = (f"speculation is significantly slower from {unit} {r.crossover:g}" if r.crossover is not None
             else "no crossover in the measured range")
    ok = [sp for sp in r.speedup if sp.status == "ok"]
    wins = [sp.level for sp in ok if sp.ci_low is not None and sp.ci_low > 1.0]
    win = f"significant wins at {unit} {', '.join(f'{w:g}' for w in wins)}" if wins else "no significant win"
    design = {"paired": "paired rounds", "abba": "one server at a time, ABBA"}.get(r.design, r.design)
    sd = max((sp.between_start_sd or 0.0 for sp in r.speedup), default=0.0)
    starts = f"; intervals include the spread between server starts (SD {sd:.2f} of the log speedup)" if sd else ""
    return f"TPOT speedup by {unit} ({design}) " + ", ".join(parts) + f"; {win}; {cross}{starts}"
