"""The rules of thumb: one function per SPEC.md section 3 rule (helpers/decide.py combines them).

Every rule takes named inputs (None = not measured -> verdict ``unknown``), thresholds whose
defaults are :class:`Thresholds`' (the SPEC values; ``evaluate_rules`` passes the user's), and
returns a :class:`RuleResult` whose reason quotes the numbers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from .schemas.decision import Evidence, LoadLevel, RuleResult, Thresholds
from .specconfig import lossy_reasons

_T = Thresholds()  # the defaults; evaluate_rules passes the user's


def _unknown(name: str, what: str, measure_next: str) -> RuleResult:
    return RuleResult(name=name, verdict="unknown", reason=f"not measured: {what}", measure_next=measure_next)


def _damaged(name: str, **values: float | None) -> RuleResult | None:
    """``unknown`` when a number the rule compares is NaN or Infinity (a damaged result): every comparison with NaN
    is False, so without this a rule falls through to its last branch ("go")."""
    bad = {k: v for k, v in values.items() if isinstance(v, float) and not math.isfinite(v)}
    if not bad:
        return None
    what = ", ".join(f"{k} is {v}" for k, v in bad.items())
    return RuleResult(name=name, verdict="unknown", reason=f"not a number: {what} (a damaged step result)",
                      measure_next="re-run the step that wrote it: a NaN or Infinity cannot be judged")


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


# -- acceptance --------------------------------------------------------------------------------
def rule_acceptance(
    acceptance: float | None, temperature: float | None = None, *, no_go_below: float = _T.acceptance_no_go_below,
    go_above: float = _T.acceptance_go_above,
    note: str = "",
) -> RuleResult:
    """Acceptance at the production temperature: < 0.50 no-go, 0.50..0.65 borderline, > 0.65 go.

    ``note`` says how the value was obtained when it was not measured at that temperature."""
    name = "acceptance_at_production_temperature"
    if acceptance is None:
        return _unknown(name, "draft acceptance at the production temperature",
                        "run the temperature sweep (40_sweep) at the production temperature")
    if (bad := _damaged(name, acceptance=acceptance, temperature=temperature)) is not None:
        return bad
    at = (f" at T={temperature:g}" if temperature is not None else "") + (f" ({note})" if note else "")
    nums = {"acceptance": round(acceptance, 4), "temperature": temperature, "no_go_below": no_go_below, "go_above": go_above}
    if acceptance < no_go_below:
        return RuleResult(name=name, verdict="no-go", numbers=nums,
                          reason=f"draft acceptance {acceptance:.2f}{at} is below {no_go_below:.2f}")
    if acceptance <= go_above:
        return RuleResult(name=name, verdict="borderline", numbers=nums,
                          reason=f"draft acceptance {acceptance:.2f}{at} is between {no_go_below:.2f} and {go_above:.2f}: decide on P99 under real load")
    return RuleResult(name=name, verdict="go", numbers=nums,
                      reason=f"draft acceptance {acceptance:.2f}{at} is above {go_above:.2f}")


def rule_acceptance_p10(p10: float | None, *, threshold: float = _T.acceptance_p10_min) -> RuleResult:
    """Acceptance is a distribution: a P10 below 0.50 means a share of requests is net-negative."""
    name = "acceptance_p10"
    if p10 is None:
        return _unknown(name, "per-request acceptance distribution",
                        "rerun the sweep with --per-request-spec-decode-metrics summary on the speculative server")
    if (bad := _damaged(name, p10=p10)) is not None:
        return bad
    nums = {"p10": round(p10, 4), "threshold": threshold}
    if p10 < threshold:
        return RuleResult(name=name, verdict="borderline", numbers=nums,
                          reason=f"P10 of per-request acceptance is {p10:.2f} < {threshold:.2f}: at least 10% of requests are likely net-negative")
    return RuleResult(name=name, verdict="go", numbers=nums,
                      reason=f"P10 of per-request acceptance is {p10:.2f} >= {threshold:.2f}: few requests lose")


# -- memory ------------------------------------------------------------------------------------
def rule_draft_vram_share(draft_weights_gib: float | None, usable_gib: float | None, *,
                          max_share: float = _T.max_draft_share) -> RuleResult:
    """Draft weights should take at most 15% of usable memory."""
    name = "draft_vram_share"
    if draft_weights_gib is None or not usable_gib:
        return _unknown(name, "draft weights and usable memory", "run the memory step (20_memory)")
    if (bad := _damaged(name, draft_weights_gib=draft_weights_gib, usable_gib=usable_gib)) is not None:
        return bad
    share = draft_weights_gib / usable_gib
    nums = {"draft_weights_gib": round(draft_weights_gib, 4), "usable_gib": round(usable_gib, 3), "share": round(share, 4), "max_share": max_share}
    if share > max_share:
        return RuleResult(name=name, verdict="no-go", numbers=nums,
                          reason=f"draft weights {draft_weights_gib:.2f} GiB are {_pct(share)} of {usable_gib:.1f} GiB usable (> {_pct(max_share)}): pick a smaller draft")
    return RuleResult(name=name, verdict="go", numbers=nums,
                      reason=f"draft weights {draft_weights_gib:.3g} GiB are {share:.1%} of {usable_gib:.1f} GiB usable (<= {_pct(max_share)})")


def rule_target_vram_share(target_weights_gib: float | None, vram_gib: float | None, *,
                           max_share: float = _T.max_target_share) -> RuleResult:
    """If target weights already use > 70% of VRAM the draft will cut concurrency: test under load."""
    name = "target_vram_share"
    if target_weights_gib is None or not vram_gib:
        return _unknown(name, "target weights and memory per GPU", "run the memory step (20_memory)")
    if (bad := _damaged(name, target_weights_gib=target_weights_gib, vram_gib=vram_gib)) is not None:
        return bad
    share = target_weights_gib / vram_gib
    nums = {"target_weights_gib": round(target_weights_gib, 4), "vram_gib": round(vram_gib, 3), "share": round(share, 4), "max_share": max_share}
    if share > max_share:
        return RuleResult(name=name, verdict="borderline", numbers=nums,
                          reason=f"target weights {target_weights_gib:.1f} GiB are {_pct(share)} of {vram_gib:.0f} GiB per GPU (> {_pct(max_share)}): the draft will cut concurrency; confirm under load")
    return RuleResult(name=name, verdict="go", numbers=nums,
                      reason=f"target weights {target_weights_gib:.3g} GiB are {share:.1%} of {vram_gib:.0f} GiB per GPU (<= {_pct(max_share)})")


def rule_concurrency_loss(
    max_concurrency_baseline: float | None,
    max_concurrency_spec: float | None,
    *,
    expected_peak_concurrency: float | None = None,
    context_length: int | None = None,
    max_loss: float = _T.max_concurrency_loss,
) -> RuleResult:
    """Concurrency lost to the draft's weights and KV at the user's context length.

    no-go only when the draft is what stops the node holding the expected peak (``max_concurrency_spec < peak <=
    max_concurrency_baseline``); when neither configuration holds the peak, the node needs more capacity at this
    context length whatever the draft: borderline when the draft also costs more than ``max_loss`` (or a server
    more), else unknown (the peak one server will take is not known); otherwise borderline above ``max_loss``.
    """
    name = "concurrency_lost_to_draft"
    if not max_concurrency_baseline or max_concurrency_spec is None:
        return _unknown(name, "maximum concurrency with and without the draft", "run the memory step (20_memory)")
    if (bad := _damaged(name, max_concurrency_baseline=max_concurrency_baseline, max_concurrency_spec=max_concurrency_spec)) is not None:
        return bad
    loss = 1 - max_concurrency_spec / max_concurrency_baseline
    ctx = f" at {context_length} tokens/request" if context_length else ""
    nums = {"max_concurrency_baseline": round(max_concurrency_baseline, 2), "max_concurrency_spec": round(max_concurrency_spec, 2),
            "loss": round(loss, 4), "max_loss": max_loss, "expected_peak_concurrency": expected_peak_concurrency, "context_length": context_length}
    base = f"max concurrency{ctx} falls from {max_concurrency_baseline:.1f} to {max_concurrency_spec:.1f} ({loss:.1%} lost)"
    peak = expected_peak_concurrency
    if peak and max_concurrency_spec < peak <= max_concurrency_baseline:
        return RuleResult(name=name, verdict="no-go", numbers=nums,
                          reason=f"{base}, below the expected peak of {peak:g} that the node holds without the draft")
    if peak and max_concurrency_baseline < peak:
        servers = (math.ceil(peak / max_concurrency_baseline),
                   math.ceil(peak / max_concurrency_spec) if max_concurrency_spec > 0 else None)
        more = (f"{servers[0]} server(s) without the draft, " + (f"{servers[1]} with it" if servers[1] else
                                                                  "none with it (no request fits)"))
        nums.update(servers_baseline=servers[0], servers_spec=servers[1])
        why = (f"neither configuration holds the expected peak of {peak:g}{ctx} ({max_concurrency_baseline:.1f} "
               f"requests without the draft, {max_concurrency_spec:.1f} with it, {loss:.1%} lost): the node needs "
               f"more capacity for that peak whatever the draft ({more}, or a shorter context)")
        if loss > max_loss or servers[1] != servers[0]:
            return RuleResult(name=name, verdict="borderline", numbers=nums,
                              reason=f"{why}; the draft makes the shortfall worse")
        return RuleResult(name=name, verdict="unknown", numbers=nums, reason=why,
                          measure_next=f"size the deployment for the peak of {peak:g} (one server holds "
                                       f"{max_concurrency_baseline:.1f} at this context length), then re-decide with "
                                       "the peak one server takes: playbook report RUN -p expected_peak_concurrency=N")
    if loss > max_loss:
        return RuleResult(name=name, verdict="borderline", numbers=nums, reason=f"{base}, more than {_pct(max_loss)}")
    return RuleResult(name=name, verdict="go", numbers=nums, reason=f"{base}")


def rule_quantization_drop(drop_pp: float | None, *, config: str | None = None,
                           max_drop_pp: float = _T.acceptance_drop_pp) -> RuleResult:
    """An acceptance drop > 5 points vs unquantized: move the target from INT4 to INT8 or change method."""
    name = "quantization_acceptance_drop"
    if drop_pp is None:
        return _unknown(name, "acceptance with quantized weights", "run the quantization step (30_quantization) with measure_acceptance")
    if (bad := _damaged(name, drop_pp=drop_pp)) is not None:
        return bad
    cfg = f" ({config})" if config else ""
    nums = {"drop_pp": round(drop_pp, 2), "max_drop_pp": max_drop_pp, "config": config}
    if drop_pp > max_drop_pp:
        return RuleResult(name=name, verdict="borderline", numbers=nums,
                          reason=f"quantization{cfg} costs {drop_pp:.1f} points of acceptance (> {max_drop_pp:g}): move the target from INT4 to INT8, or quantize the draft instead")
    return RuleResult(name=name, verdict="go", numbers=nums,
                      reason=f"quantization{cfg} costs {drop_pp:.1f} points of acceptance (<= {max_drop_pp:g})")


# -- SLOs and load -----------------------------------------------------------------------------
def rule_ttft_slo(
    slo_kind: str,
    *,
    slo_ttft_ms: float = 0.0,
    ttft_p99_baseline_ms: float | None = None,
    ttft_p99_spec_ms: float | None = None,
) -> RuleResult:
    """Speculation improves TPOT, not TTFT: a TTFT-bound SLO is a no-go, as is a TTFT SLO it breaks."""
    name = "ttft_bound_slo"
    nums = {"slo_kind": slo_kind, "slo_ttft_ms": slo_ttft_ms, "ttft_p99_baseline_ms": ttft_p99_baseline_ms, "ttft_p99_spec_ms": ttft_p99_spec_ms}
    if (bad := _damaged(name, ttft_p99_baseline_ms=ttft_p99_baseline_ms, ttft_p99_spec_ms=ttft_p99_spec_ms)) is not None \
            and slo_kind != "ttft":
        return bad
    if slo_kind == "ttft":
        return RuleResult(name=name, verdict="no-go", numbers=nums,
                          reason="the SLO is TTFT-bound: speculation shortens TPOT, not TTFT (which may rise slightly)")
    if slo_ttft_ms and ttft_p99_spec_ms is not None and ttft_p99_spec_ms > slo_ttft_ms:
        if ttft_p99_baseline_ms is not None and ttft_p99_baseline_ms <= slo_ttft_ms:
            return RuleResult(name=name, verdict="no-go", numbers=nums,
                              reason=f"TTFT P99 rises to {ttft_p99_spec_ms:.0f} ms with speculation, above the {slo_ttft_ms:g} ms SLO the baseline meets ({ttft_p99_baseline_ms:.0f} ms)")
        return RuleResult(name=name, verdict="borderline", numbers=nums,
                          reason=f"TTFT P99 {ttft_p99_spec_ms:.0f} ms misses the {slo_ttft_ms:g} ms SLO with or without speculation")
    return RuleResult(name=name, verdict="go", numbers=nums, reason=f"the SLO is {slo_kind}-bound, which speculation can help")


def rule_tpot_slo(slo_tpot_ms: float, tpot_p99_baseline_ms: float | None, tpot_p99_spec_ms: float | None, *, level: float | None = None) -> RuleResult:
    """Does speculation meet the TPOT SLO at the expected peak load where the baseline does or does not?"""
    name = "tpot_slo_at_peak"
    if not slo_tpot_ms:
        return RuleResult(name=name, verdict="go", reason="no TPOT SLO given", numbers={"slo_tpot_ms": 0})
    if tpot_p99_baseline_ms is None or tpot_p99_spec_ms is None:
        return _unknown(name, "TPOT P99 at the expected peak load", "run the load test (50_load) up to the expected peak")
    if (bad := _damaged(name, tpot_p99_baseline_ms=tpot_p99_baseline_ms, tpot_p99_spec_ms=tpot_p99_spec_ms)) is not None:
        return bad
    at = f" at load {level:g}" if level is not None else ""
    nums = {"slo_tpot_ms": slo_tpot_ms, "tpot_p99_baseline_ms": round(tpot_p99_baseline_ms, 3), "tpot_p99_spec_ms": round(tpot_p99_spec_ms, 3), "level": level}
    if tpot_p99_spec_ms <= slo_tpot_ms:
        return RuleResult(name=name, verdict="go", numbers=nums,
                          reason=f"TPOT P99{at} is {tpot_p99_spec_ms:.1f} ms with speculation (baseline {tpot_p99_baseline_ms:.1f}), within the {slo_tpot_ms:g} ms SLO")
    if tpot_p99_baseline_ms <= slo_tpot_ms:
        return RuleResult(name=name, verdict="no-go", numbers=nums,
                          reason=f"TPOT P99{at} is {tpot_p99_spec_ms:.1f} ms with speculation, above the {slo_tpot_ms:g} ms SLO the baseline meets ({tpot_p99_baseline_ms:.1f} ms)")
    return RuleResult(name=name, verdict="borderline", numbers=nums,
                      reason=f"TPOT P99{at} misses the {slo_tpot_ms:g} ms SLO either way ({tpot_p99_baseline_ms:.1f} baseline, {tpot_p99_spec_ms:.1f} spec)")


def rule_tail_gap(
    tpot_p50_baseline_ms: float | None,
    tpot_p99_baseline_ms: float | None,
    tpot_p50_spec_ms: float | None,
    tpot_p99_spec_ms: float | None,
    *,
    level: float | None = None,
    max_widening: float = _T.max_gap_widening,
) -> RuleResult:
    """A P50-to-P99 TPOT gap that widens with speculation signals a mixed-workload problem."""
    name = "p50_p99_gap_change"
    vals = (tpot_p50_baseline_ms, tpot_p99_baseline_ms, tpot_p50_spec_ms, tpot_p99_spec_ms)
    if any(v is None for v in vals):
        return _unknown(name, "TPOT P50 and P99 with and without speculation", "run the load test (50_load)")
    if (bad := _damaged(name, tpot_p50_baseline_ms=tpot_p50_baseline_ms, tpot_p99_baseline_ms=tpot_p99_baseline_ms, tpot_p50_spec_ms=tpot_p50_spec_ms, tpot_p99_spec_ms=tpot_p99_spec_ms)) is not None:
        return bad
    gap_b = max(tpot_p99_baseline_ms - tpot_p50_baseline_ms, 1e-9)
    gap_s = max(tpot_p99_spec_ms - tpot_p50_spec_ms, 0.0)
    change = gap_s / gap_b
    at = f" at load {level:g}" if level is not None else ""
    nums = {"gap_baseline_ms": round(gap_b, 3), "gap_spec_ms": round(gap_s, 3), "change": round(change, 3), "max_widening": max_widening, "level": level}
    if change > max_widening:
        return RuleResult(name=name, verdict="borderline", numbers=nums,
                          reason=f"the P50-to-P99 TPOT gap{at} widens {change:.1f}x ({gap_b:.1f} -> {gap_s:.1f} ms): a mixed-workload problem; confirm with a homogeneous low-temperature run")
    return RuleResult(name=name, verdict="go", numbers=nums,
                      reason=f"the P50-to-P99 TPOT gap{at} changes {change:.2f}x ({gap_b:.1f} -> {gap_s:.1f} ms), within {max_widening:g}x")


def is_win(speedup: float | None, ci_low: float | None) -> bool:
    """The one definition of a win, for every load level and candidate: the speedup interval lies wholly above
    1.0 (without an interval, e.g. an imported result, the point estimate is above 1.0)."""
    bound = ci_low if ci_low is not None else speedup
    return bound is not None and bound > 1.0


def wins_below_first_non_win(levels: Sequence[LoadLevel]) -> tuple[list[LoadLevel], LoadLevel | None]:
    """Of the counted levels (ascending load): the wins below the first level that is not a win, and that level."""
    lv = counted_levels(levels)
    first = next((x for x in lv if not is_win(x.speedup, x.speedup_ci_low)), None)
    return [x for x in lv if first is None or x.concurrency < first.concurrency], first


def _upper(lv: LoadLevel) -> float:
    """The interval's upper bound (the point estimate when the level has no interval)."""
    return lv.speedup_ci_high if lv.speedup_ci_high is not None else lv.speedup


def _levels(levels: Sequence[LoadLevel]) -> str:
    return ", ".join(f"{x.concurrency:g}" for x in levels)


def counted_levels(levels: Sequence[LoadLevel]) -> list[LoadLevel]:
    """The levels that may count as a win or a loss: measured cleanly (status ok) with a speedup."""
    return sorted((x for x in levels if x.status == "ok" and x.speedup is not None), key=lambda x: x.concurrency)


def withheld_levels(levels: Sequence[LoadLevel]) -> str:
    """'4: excluded (30% of streams burst-delivered)' for each level that cannot count, '' if none."""
    return "; ".join(f"{x.concurrency:g}: {x.status}" + (f" ({x.reason})" if x.reason else "")
                     for x in sorted(levels, key=lambda x: x.concurrency) if x.status != "ok")


def temperatures_of(levels: Sequence[LoadLevel], default: float | None = None) -> str:
    """' at T=0.2' (or ' at T=0, 0.8'): the sampling temperature(s) the speed numbers were measured at."""
    temps = sorted({x.temperature for x in levels if x.temperature is not None} or ({default} - {None}))
    return f" at T={', '.join(f'{t:g}' for t in temps)}" if temps else ""


def _one_temperature(levels: Sequence[LoadLevel], default: float | None = None) -> float | None:
    """The one sampling temperature the speed numbers were measured at, as a number (None when unrecorded or
    when the levels ran at several: ``temperatures_of`` says which)."""
    temps = {x.temperature for x in levels if x.temperature is not None} or ({default} - {None})
    return float(next(iter(temps))) if len(temps) == 1 else None


def rule_load_crossover(levels: Sequence[LoadLevel], *, expected_peak: float | None = None, level_kind: str = "concurrency",
                        min_gain: float = _T.min_gain, temperature: float | None = None) -> RuleResult:
    """Where does the measured speedup stop being a win, vs the user's expected peak load?

    A win is a speedup whose bootstrap interval lies above 1.0, a loss one whose interval lies below.
    go: a win at every level up to the peak, the peak measured; borderline: a win only below the peak
    (GO WITH LIMITS); no-go: no win at any level, and either a loss at a level up to the peak or no
    interval reaching ``min_gain`` above 1 (a gain worth having is excluded); unknown: no win and no
    loss while some interval still reaches ``min_gain`` above 1, or wins up to a highest measured
    concurrency below the expected peak ("measure at N": no claim beyond the evidence). Only intervals
    decide, never a point estimate alone: the highest of several noisy estimates would flip the verdict
    between runs. Levels excluded or inconclusive (bursts, drift) never count as a win or a loss.
    """
    name = "load_crossover_vs_peak"
    for x in levels:
        if (bad := _damaged(name, speedup=x.speedup, ci_low=x.speedup_ci_low, ci_high=x.speedup_ci_high)) is not None:
            return bad.model_copy(update={"reason": f"{level_kind} {x.concurrency:g}: {bad.reason}"})
    lv = counted_levels(levels)
    held = withheld_levels(levels)
    not_counted = f"; not counted: {held}" if held else ""
    at_t = temperatures_of(levels, temperature)
    if not lv:
        if held:
            return RuleResult(name=name, verdict="unknown", numbers={"withheld": held, "level_kind": level_kind},
                              measure_next="rerun the load test (50_load) on a quiet machine: no level was measured cleanly",
                              reason=f"no load level can count as a win or a loss: {held}")
        return _unknown(name, "speedup vs load", "run the load test (50_load) with and without speculation")
    top = lv[-1].concurrency
    peak = expected_peak if expected_peak is not None else top
    wins = [x.concurrency for x in lv if is_win(x.speedup, x.speedup_ci_low)]
    below, first = wins_below_first_non_win(lv)
    first_loss = first.concurrency if first is not None else None
    last_win = below[-1].concurrency if below else None
    nums = {
        "expected_peak": peak, "level_kind": level_kind, "highest_win": last_win, "first_non_win": first_loss,
        "highest_measured": top, "temperature": _one_temperature(levels, temperature), "withheld": held or None,
        "speedups": "; ".join(f"{x.concurrency:g}: {x.speedup:.2f}" + (f" [{x.speedup_ci_low:.2f}, {x.speedup_ci_high:.2f}]" if x.speedup_ci_low is not None and x.speedup_ci_high is not None else "") for x in lv),
    }
    beyond = level_kind == "concurrency" and peak > top  # the README's promise: a peak above the levels is "measure at N"
    beyond_next = (f"measure at {peak:g}: run the load test (50_load) with concurrencies up to the expected peak "
                   f"{peak:g}; " if beyond else "")
    beyond_reason = (f"; the expected peak {peak:g} is above the highest measured {level_kind} {top:g}: measure at "
                     f"{peak:g}" if beyond else "")
    s1 = lv[0]
    ci1 = f" (95% CI {s1.speedup_ci_low:.2f} to {s1.speedup_ci_high:.2f})" if s1.speedup_ci_low is not None and s1.speedup_ci_high is not None else ""
    if not wins:
        in_range = [x for x in lv if x.concurrency <= peak] or lv
        losses = [x for x in in_range if _upper(x) < 1.0]
        if losses:
            worst = min(losses, key=lambda x: x.speedup)
            return RuleResult(name=name, verdict="no-go", numbers=nums,
                              reason=f"no measured {level_kind} shows a win{at_t}, and speculation is slower at {_levels(losses)} "
                                     f"(interval below 1.0; {worst.speedup:.2f}x at {worst.concurrency:g}): {nums['speedups']}{not_counted}")
        best = max(lv, key=_upper)
        if _upper(best) < 1.0 + min_gain:
            return RuleResult(name=name, verdict="no-go", numbers=nums,
                              reason=f"no measured {level_kind} shows a win{at_t}, and every interval stays under the {min_gain:.0%} "
                                     f"gain worth having (highest bound {_upper(best):.2f} at {best.concurrency:g}): {nums['speedups']}{not_counted}")
        above = [x for x in lv if x.concurrency > peak and _upper(x) < 1.0]  # losses past the peak do not decide
        none_lost = (f"no measured {level_kind} shows a win{at_t}, none up to the expected peak {peak:g} a loss (slower "
                     f"only at {_levels(above)}, above it)" if above else f"no measured {level_kind} shows a win or a loss{at_t}")
        return RuleResult(name=name, verdict="unknown", numbers=nums,
                          measure_next=beyond_next + "more requests per load level (a level astride a boundary "
                                       "stops when its decision budget is spent: raise level_decision_budget_s, e.g. "
                                       "-p level_decision_budget_s=300), or a node with less noise: no interval "
                                       f"excludes a gain of {min_gain:.0%} or a loss",
                          reason=f"{none_lost}: the intervals still allow up to "
                                 f"{_upper(best):.2f}x at {best.concurrency:g} ({nums['speedups']}){beyond_reason}{not_counted}")
    if last_win is None:
        return RuleResult(name=name, verdict="unknown", numbers=nums,
                          measure_next=beyond_next + "more requests per load level (raise level_decision_budget_s), on a "
                                       "quiet machine (the speedup is not monotonic in load)",
                          reason=f"no win at the lowest {level_kind} {s1.concurrency:g}{ci1} but a win at {wins[0]:g}: the measurements are noisy ({nums['speedups']}){beyond_reason}{not_counted}")
    if first_loss is None or first_loss > peak:
        if level_kind == "concurrency" and peak > top:
            return RuleResult(name=name, verdict="unknown", numbers=nums,
                              measure_next=f"measure at {peak:g}: run the load test (50_load) with concurrencies up to the expected peak {peak:g}",
                              reason=f"speculation wins up to {level_kind} {last_win:g}{at_t}, the highest measured, but the expected peak "
                                     f"{peak:g} was not measured: measure at {peak:g} ({nums['speedups']}){not_counted}")
        beyond = f"; stops winning at {first_loss:g}" if first_loss is not None else ""
        return RuleResult(name=name, verdict="go", numbers=nums,
                          reason=f"speculation wins up to {level_kind} {last_win:g}{at_t} (>= expected peak {peak:g}){beyond}: {nums['speedups']}{not_counted}")
    unproven = (f"; {first.speedup:.2f}x there is a gain its interval cannot yet tell from none"
                if first.speedup is not None and first.speedup > 1.0 else "")
    return RuleResult(name=name, verdict="borderline", numbers=nums,
                      reason=f"speculation wins only up to {level_kind} {last_win:g}{at_t}, below the expected peak of {peak:g} "
                             f"(not a win from {first_loss:g}{unproven}): limit it by load: {nums['speedups']}{not_counted}")


def rule_ttft_rise(ttft_p50_baseline_ms: float | None, ttft_p50_spec_ms: float | None, *, level: float | None = None,
                   max_rise: float = _T.max_ttft_rise) -> RuleResult:
    """Speculation can lengthen TTFT (the draft's prefill): a P50 rise beyond ``max_rise`` is flagged,
    TTFT SLO or not (P50, not P99: a tail of a few requests would flip the verdict between runs)."""
    name = "ttft_rise"
    if not ttft_p50_baseline_ms or ttft_p50_spec_ms is None:
        return _unknown(name, "TTFT with and without speculation", "run the load test (50_load)")
    if (bad := _damaged(name, ttft_p50_baseline_ms=ttft_p50_baseline_ms, ttft_p50_spec_ms=ttft_p50_spec_ms)) is not None:
        return bad
    rise = ttft_p50_spec_ms / ttft_p50_baseline_ms - 1
    at = f" at load {level:g}" if level is not None else ""
    nums = {"ttft_p50_baseline_ms": round(ttft_p50_baseline_ms, 3), "ttft_p50_spec_ms": round(ttft_p50_spec_ms, 3),
            "rise": round(rise, 4), "max_rise": max_rise, "level": level}
    desc = f"TTFT P50{at} goes from {ttft_p50_baseline_ms:.1f} to {ttft_p50_spec_ms:.1f} ms with speculation ({rise:+.0%})"
    if rise > max_rise:
        return RuleResult(name=name, verdict="borderline", numbers=nums,
                          reason=f"{desc}, more than +{max_rise:.0%}: check the time-to-first-token users will see")
    return RuleResult(name=name, verdict="go", numbers=nums, reason=f"{desc}, within +{max_rise:.0%}")


def rule_throughput_slo(throughput_ratio: float | None, *, level: float | None = None, min_gain: float = _T.min_gain) -> RuleResult:
    """A throughput-bound SLO is judged on output tokens/s (spec / baseline) at the expected peak, not on TPOT."""
    name = "throughput_at_peak"
    if throughput_ratio is None:
        return _unknown(name, "output throughput with and without speculation at the expected peak",
                        "run the load test (50_load) up to the expected peak")
    if (bad := _damaged(name, throughput_ratio=throughput_ratio)) is not None:
        return bad
    at = f" at load {level:g}" if level is not None else ""
    nums = {"throughput_ratio": round(throughput_ratio, 4), "min_gain": min_gain, "level": level}
    if throughput_ratio < 1 - min_gain:
        return RuleResult(name=name, verdict="no-go", numbers=nums,
                          reason=f"the SLO is throughput-bound and speculation delivers {throughput_ratio:.2f}x the output tokens/s{at}: it costs throughput")
    if throughput_ratio < 1 + min_gain:
        return RuleResult(name=name, verdict="borderline", numbers=nums,
                          reason=f"the SLO is throughput-bound and speculation delivers {throughput_ratio:.2f}x the output tokens/s{at}: no gain worth having ({min_gain:.0%})")
    return RuleResult(name=name, verdict="go", numbers=nums,
                      reason=f"the SLO is throughput-bound and speculation delivers {throughput_ratio:.2f}x the output tokens/s{at}")


def rule_load_temperature(load_temperature: float | None, production_temperature: float, *,
                          max_gap: float = _T.max_load_temperature_gap, workload: str = "",
                          unrecorded_by: str = "") -> RuleResult:
    """Speed measured colder than production is optimistic (acceptance falls as temperature rises).
    ``unrecorded_by``: the tool whose imported files do not record the temperature (it is not known, not 0)."""
    name = "load_temperature"
    if load_temperature is None and unrecorded_by:
        return RuleResult(name=name, verdict="unknown",
                          numbers={"load_temperature": None, "production_temperature": production_temperature,
                                   "max_gap": max_gap},
                          measure_next=temperature_fix(unrecorded_by),
                          reason=f"temperature not recorded: the {unrecorded_by} files do not record the sampling "
                                 f"temperature of the speedups, so whether they are optimistic or pessimistic for "
                                 f"production's T={production_temperature:g} cannot be told")
    if load_temperature is None:
        return _unknown(name, "the temperature of the load test", "run the load test (50_load)")
    if (bad := _damaged(name, load_temperature=load_temperature)) is not None:
        return bad
    nums = {"load_temperature": round(load_temperature, 3), "production_temperature": production_temperature, "max_gap": max_gap}
    of = f" ({workload})" if workload else ""
    if load_temperature < production_temperature - max_gap:
        return RuleResult(name=name, verdict="borderline", numbers=nums,
                          reason=f"the speedups were measured at T={load_temperature:g}{of}, colder than production's T={production_temperature:g}: "
                                 f"they are optimistic; rerun 50_load with temperature=-1 (the production temperature)")
    return RuleResult(name=name, verdict="go", numbers=nums,
                      reason=f"the speedups were measured at T={load_temperature:g}{of}, production runs at T={production_temperature:g}")


def rule_mixed_workload(comparisons: Sequence[dict], *, max_widening: float = _T.max_gap_widening) -> RuleResult:
    """The P50-to-P99 TPOT gap under speculation in a mixed workload, per level: a widening beyond
    ``max_widening`` (where the homogeneous workload stays within it or not) is flagged."""
    name = "mixed_workload_gap"
    rows = [c for c in comparisons if c.get("gap_change_mixed") is not None]
    if not rows:
        return _unknown(name, "the mixed-workload comparison", "set mixed_workload in 50_load (e.g. 'structured:0.6@0.1,creative:0.4@1.0')")
    desc = "; ".join(f"{c['level']:g}: {c['gap_change_mixed']:.2f}x mixed" +
                     (f" vs {c['gap_change_homogeneous']:.2f}x homogeneous" if c.get("gap_change_homogeneous") is not None else "")
                     for c in sorted(rows, key=lambda c: c["level"]))
    worst = max(rows, key=lambda c: c["gap_change_mixed"])
    nums = {"worst_level": worst["level"], "gap_change_mixed": round(worst["gap_change_mixed"], 3),
            "gap_change_homogeneous": worst.get("gap_change_homogeneous"), "max_widening": max_widening,
            "mixed": str(worst.get("mixed", "")), "per_level": desc}
    if worst["gap_change_mixed"] > max_widening:
        return RuleResult(name=name, verdict="borderline", numbers=nums,
                          reason=f"in the mixed workload ({worst.get('mixed', '')}) speculation widens the P50-to-P99 TPOT gap "
                                 f"{worst['gap_change_mixed']:.2f}x at load {worst['level']:g} (> {max_widening:g}x): {desc}; "
                                 "limit speculation to the low-temperature class")
    return RuleResult(name=name, verdict="go", numbers=nums,
                      reason=f"in the mixed workload the P50-to-P99 TPOT gap changes at most {worst['gap_change_mixed']:.2f}x (<= {max_widening:g}x): {desc}")


def rule_error_rate(error_rate: float | None, *, max_error_rate: float = _T.max_error_rate,
                    imported_from: str = "") -> RuleResult:
    """Above ``max_error_rate`` the measurements cannot be trusted: the verdict is INCONCLUSIVE. ``imported_from``:
    the tool of an imported load test (no server log of ours to point at)."""
    name = "error_rate"
    if error_rate is None:
        return _unknown(name, "the load test's error rate", "run the load test (50_load)")
    if (bad := _damaged(name, error_rate=error_rate)) is not None:
        return bad
    nums = {"error_rate": round(error_rate, 4), "max_error_rate": max_error_rate}
    if error_rate > max_error_rate:
        fix = (f"fix the failing requests (the first error is in 50_load.json's warnings; see the log of the server "
               f"{imported_from} ran against), run {imported_from} again and import its files again" if imported_from
               else "fix the failing requests (see the server logs) and rerun the load test")
        return RuleResult(name=name, verdict="unknown", numbers=nums, measure_next=fix,
                          reason=f"{error_rate:.1%} of load-test requests failed (> {max_error_rate:.0%}): the timings are not trustworthy")
    return RuleResult(name=name, verdict="go", numbers=nums, reason=f"{error_rate:.1%} of load-test requests failed (<= {max_error_rate:.0%})")


# -- traffic and method ------------------------------------------------------------------------
def rule_temperature_mix(
    temperatures: Sequence[float], *, max_median: float = _T.max_temperature_median,
    homogeneous_max: float = _T.homogeneous_temperature_max, max_spread: float = _T.max_temperature_spread,
) -> RuleResult:
    """Use it when temperature <= 0.5 and homogeneous; leave it off when the median is > 0.7 or widely varying."""
    name = "temperature_mix"
    temps = [float(t) for t in temperatures]
    if not temps:
        return _unknown(name, "the production temperature mix", "set production_temperature / traffic_temperatures in the profile")
    med = statistics.median(temps)
    spread = max(temps) - min(temps)
    nums = {"median": med, "min": min(temps), "max": max(temps), "spread": round(spread, 3), "max_median": max_median, "max_spread": max_spread}
    desc = f"median temperature {med:g}, range {min(temps):g} to {max(temps):g}"
    if med > max_median:
        return RuleResult(name=name, verdict="no-go", numbers=nums, reason=f"{desc}: above {max_median:g}, acceptance collapses")
    if spread > max_spread:
        return RuleResult(name=name, verdict="borderline", numbers=nums, reason=f"{desc}: widely varying (spread > {max_spread:g}); limit speculation to the low-temperature class")
    if med > homogeneous_max:
        return RuleResult(name=name, verdict="borderline", numbers=nums, reason=f"{desc}: above {homogeneous_max:g}")
    return RuleResult(name=name, verdict="go", numbers=nums, reason=f"{desc}: low and homogeneous")


def rule_lossless(method: str, speculative_config: dict | None = None, *, guard_passed: bool | None = None, guard_detail: str = "") -> RuleResult:
    """A lossy method in use (as vLLM documents it), or a failing losslessness guard, is a no-go."""
    name = "lossless_method"
    cfg = speculative_config or {}
    rsm = str(cfg.get("rejection_sample_method", "standard"))
    nums = {"method": method, "rejection_sample_method": rsm, "guard_passed": guard_passed}
    lossy = lossy_reasons(cfg)
    if lossy:
        return RuleResult(name=name, verdict="no-go", numbers=nums,
                          reason=f"the configuration is lossy ({'; '.join(lossy)}): outputs differ from the target's")
    if guard_passed is False:
        return RuleResult(name=name, verdict="no-go", numbers=nums,
                          reason=f"the losslessness guard failed: speculation changed the outputs ({guard_detail or 'see the lossless check'})")
    if guard_passed is True:
        return RuleResult(name=name, verdict="go", numbers=nums,
                          reason=f"{method or 'the method'} with {rsm} rejection sampling is lossless, and the output guard confirmed it")
    return RuleResult(name=name, verdict="go", numbers=nums,
                      reason=f"{method or 'the method'} with {rsm} rejection sampling is documented lossless (the output guard was not run)")


def rule_acceptance_monitoring(counters: bool | None, names: Sequence[str] = ()) -> RuleResult:
    """Leave speculation off when acceptance cannot be monitored (no spec-decode metrics)."""
    name = "acceptance_monitoring"
    if counters is None:
        return _unknown(name, "whether the server exposes spec-decode metrics", "run preflight (00) against the speculative server")
    nums = {"metrics": ", ".join(names)}
    if not counters:
        return RuleResult(name=name, verdict="no-go", numbers=nums,
                          reason="the speculative server exposes no vllm:spec_decode_* metrics: acceptance could not be monitored "
                                 "in production (vLLM exposes them whenever speculative decoding is configured: is it on there?)")
    return RuleResult(name=name, verdict="go", numbers=nums, reason="vllm:spec_decode_* counters are exposed: acceptance can be monitored")


# -- an imported load test whose files do not record the temperature -----------------------------
# The rules whose judgement depends on the sampling temperature the speed and acceptance were measured at:
# acceptance falls as the temperature rises, and the speedup with it. An import whose files record none (GuideLLM
# sends none; vLLM 0.32's vllm bench serve sends none unless given --temperature and says so: "no longer sets
# temperature==0 ... determined on the server side") cannot be judged against the production temperature by these
# rules: they say so and are unknown (never judged as if at T=0).
TEMPERATURE_DEPENDENT = ("acceptance_at_production_temperature", "acceptance_p10", "load_crossover_vs_peak",
                         "tpot_slo_at_peak", "throughput_at_peak", "load_temperature")
_CLI_TOOL = {"vllm bench serve": "vllm-bench"}  # the tool as `playbook import` names it


def temperature_unrecorded(ev: Evidence) -> bool:
    """An imported load test whose files record no sampling temperature (filed as unknown, never as 0)."""
    return bool(ev.load_imported_from) and ev.load_temperature is None and bool(ev.load_levels)


def temperature_fix(tool: str) -> str:
    """How to give an imported run the temperature its files do not record."""
    cli = _CLI_TOOL.get(tool, tool)
    return (f"import the files again with the sampling temperature they ran at: playbook import {cli} BASELINE SPEC "
            "--temperature T --run-dir RUN --force (a tool that sent none, as GuideLLM does and vllm bench serve "
            "without --temperature, left it to the server: the model's generation_config.json temperature, else 1.0)")


def unrecorded_temperature(r: RuleResult, tool: str, production_temperature: float) -> RuleResult:
    """``r`` (a temperature-dependent rule) as unknown: what it found, and that it cannot be judged for production."""
    if r.name not in TEMPERATURE_DEPENDENT or r.reason.startswith("temperature not recorded"):
        return r
    if r.name == "tpot_slo_at_peak" and not r.numbers.get("slo_tpot_ms"):
        return r  # no SLO given: nothing measured is judged
    if r.verdict == "unknown":
        return r.model_copy(update={"reason": f"{r.reason} (and the {tool} files do not record the temperature)"})
    return r.model_copy(update={
        "verdict": "unknown", "measure_next": temperature_fix(tool),
        "reason": f"temperature not recorded: {r.reason}; measured at a sampling temperature the {tool} files do not "
                  f"record, so it cannot be judged for production's T={production_temperature:g}"})


# -- all rules ---------------------------------------------------------------------------------
def _level_at(levels: Sequence[LoadLevel], target: float) -> LoadLevel | None:
    """The cleanly measured level closest to ``target`` from below (or the lowest such level);
    excluded or inconclusive levels (bursts, drift) are never read."""
    lv = sorted((x for x in levels if x.status == "ok"), key=lambda x: x.concurrency)
    if not lv:
        return None
    below = [x for x in lv if x.concurrency <= target]
    return below[-1] if below else lv[0]


def evaluate_rules(
    ev: Evidence,
    *,
    production_temperature: float,
    traffic_temperatures: Sequence[float] = (),
    slo_kind: str = "tpot",
    slo_ttft_ms: float = 0.0,
    slo_tpot_ms: float = 0.0,
    expected_peak_concurrency: float = 4,
    context_length: int | None = None,
    thresholds: Thresholds | None = None,
) -> list[RuleResult]:
    """Every rule, evaluated on the evidence, the user's situation and the user's thresholds."""
    t = thresholds or Thresholds()
    unrecorded = ev.load_imported_from if temperature_unrecorded(ev) else ""
    acceptance = ev.acceptance_production
    counters = ev.acceptance_counters
    if unrecorded and acceptance is None:  # the imported speculative run's counters, at a temperature not recorded
        rates = [x.acceptance_rate for x in ev.load_levels if x.acceptance_rate is not None]
        acceptance = statistics.fmean(rates) if rates else None
        counters = True if counters is None and rates else counters
    peak = _level_at(ev.load_levels, expected_peak_concurrency)
    g = (lambda attr: getattr(peak, attr)) if peak else (lambda attr: None)
    at = peak.concurrency if peak else None
    slo_rule = (rule_throughput_slo(g("throughput_ratio"), level=at, min_gain=t.min_gain) if slo_kind == "throughput"
                else rule_tpot_slo(slo_tpot_ms, g("tpot_p99_baseline_ms"), g("tpot_p99_spec_ms"), level=at))
    rules = [  # most informative first: the report's reasons keep this order within a verdict
        rule_acceptance(acceptance, ev.acceptance_temperature, note=ev.acceptance_note,
                        no_go_below=t.acceptance_no_go_below, go_above=t.acceptance_go_above),
        rule_load_crossover(ev.load_levels, expected_peak=expected_peak_concurrency, level_kind=ev.load_kind,
                            min_gain=t.min_gain, temperature=ev.load_temperature),
        rule_lossless(ev.method, ev.speculative_config, guard_passed=ev.lossless_passed, guard_detail=ev.lossless_detail),
        rule_ttft_slo(slo_kind, slo_ttft_ms=slo_ttft_ms, ttft_p99_baseline_ms=g("ttft_p99_baseline_ms"), ttft_p99_spec_ms=g("ttft_p99_spec_ms")),
        slo_rule,
        rule_load_temperature(ev.load_temperature, production_temperature, max_gap=t.max_load_temperature_gap,
                              workload=ev.load_workload, unrecorded_by=unrecorded),
        rule_acceptance_p10(ev.acceptance_p10, threshold=t.acceptance_p10_min),
        rule_temperature_mix(list(traffic_temperatures) or [production_temperature], max_median=t.max_temperature_median,
                             homogeneous_max=t.homogeneous_temperature_max, max_spread=t.max_temperature_spread),
        rule_tail_gap(g("tpot_p50_baseline_ms"), g("tpot_p99_baseline_ms"), g("tpot_p50_spec_ms"), g("tpot_p99_spec_ms"),
                      level=at, max_widening=t.max_gap_widening),
        rule_ttft_rise(g("ttft_p50_baseline_ms"), g("ttft_p50_spec_ms"), level=at, max_rise=t.max_ttft_rise),
        rule_error_rate(ev.load_error_rate, max_error_rate=t.max_error_rate, imported_from=ev.load_imported_from),
        rule_draft_vram_share(ev.draft_weights_gib, ev.usable_memory_gib, max_share=t.max_draft_share),
        rule_target_vram_share(ev.target_weights_gib, ev.gpu_memory_gib, max_share=t.max_target_share),
        rule_concurrency_loss(ev.max_concurrency_baseline, ev.max_concurrency_spec,
                              expected_peak_concurrency=expected_peak_concurrency,
                              context_length=context_length or ev.memory_context_length, max_loss=t.max_concurrency_loss),
        rule_quantization_drop(ev.quant_acceptance_drop_pp, config=ev.quant_config, max_drop_pp=t.acceptance_drop_pp),
        rule_acceptance_monitoring(counters, ev.spec_metrics),
    ]
    if ev.load_mixed:  # only when the load test compared a mixed workload (mixed_workload set)
        rules.insert(rules.index(next(r for r in rules if r.name == "p50_p99_gap_change")) + 1,
                     rule_mixed_workload(ev.load_mixed, max_widening=t.max_gap_widening))
    if unrecorded:
        rules = [unrecorded_temperature(r, unrecorded, production_temperature) for r in rules]
    return rules


def workload_classes_that_win(acceptance_by_workload: dict[str, float], *, go_above: float = _T.acceptance_go_above) -> list[str]:
    """Workload classes whose acceptance at the production temperature clears the go band."""
    return sorted(w for w, a in acceptance_by_workload.items() if a is not None and a > go_above)


__all__ = [
    "evaluate_rules", "workload_classes_that_win",
    "rule_acceptance", "rule_acceptance_p10", "rule_draft_vram_share", "rule_target_vram_share",
    "rule_concurrency_loss", "rule_quantization_drop", "rule_ttft_slo", "rule_tpot_slo", "rule_tail_gap",
    "rule_load_crossover", "rule_error_rate", "rule_temperature_mix", "rule_lossless", "rule_acceptance_monitoring",
    "rule_ttft_rise", "rule_throughput_slo", "rule_load_temperature", "rule_mixed_workload",
    "counted_levels", "withheld_levels", "temperatures_of", "TEMPERATURE_DEPENDENT", "temperature_unrecorded",
    "temperature_fix", "unrecorded_temperature",
]
