"""The report's first screen as data: the configuration, three numbers and what would change the decision.

The three numbers a reviewer asks first: the speedup at the expected peak (with its 95% interval),
the draft acceptance at the production temperature (with its per-request P10), and the concurrency
the draft costs (its weights and KV layers share the KV cache pool, SPEC.md section 2).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from .schemas.decision import Decision, Evidence, LoadLevel, Thresholds, Verdict


class Number(BaseModel):
    """One headline number, formatted, with the line under it and a colour verdict."""

    key: str
    label: str
    value: str
    detail: str = ""
    verdict: Verdict = "unknown"


class Headline(BaseModel):
    verdict: str
    confidence: str
    headline: str
    configuration: str = Field(description="the configuration the verdict is about, in one line")
    numbers: list[Number]
    launch_label: str
    launch_command: str = ""
    would_change: list[str] = Field(default_factory=list)
    expected_peak: float | None = None
    kind: str = "concurrency"
    levels: list[LoadLevel] = Field(default_factory=list, description="the measured levels the verdict judged "
                                    "(the compared winner's when it is not the step's own configuration)")
    judged: str = Field("", description="that configuration's label when it is not the step's own, else ''")


def judged_evidence(ev: Evidence) -> tuple[Evidence, str]:
    """(the evidence the verdict judged, its configuration's label when it is the compared winner rather
    than the step's own configuration, else ''): the first screen's numbers are those of what it recommends."""
    from .decide import for_winner

    judged = for_winner(ev)
    return judged, (str(ev.candidates.get("winner") or "") if judged is not ev else "")


def _thresholds(decision: Decision) -> Thresholds:
    return Thresholds.model_validate((decision.inputs or {}).get("thresholds") or {})


def level_at_peak(levels: list[LoadLevel], peak: float | None) -> LoadLevel | None:
    """The measured level at the expected peak, else the nearest one (None when nothing was measured)."""
    if not levels:
        return None
    if peak is None:
        return levels[-1]
    return min(levels, key=lambda x: (abs(x.concurrency - peak), -x.concurrency))


def crossover(levels: list[LoadLevel]) -> float | None:
    """The first counted level whose interval lies wholly below 1.0 (speculation slows tokens down)."""
    for lv in levels:
        if lv.status == "ok" and lv.speedup_ci_high is not None and lv.speedup_ci_high < 1.0:
            return lv.concurrency
    return None


def speedup_number(ev: Evidence, peak: float | None, t: Thresholds, judged: str = "") -> Number:
    lv = level_at_peak(ev.load_levels, peak)
    kind = ev.load_kind
    if lv is None:
        return Number(key="speedup", label="Speedup at the expected peak", value="not measured",
                      detail="run the load test (step 50)")
    where = (f"{judged} " if judged else "") + f"at {kind} {lv.concurrency:g}" + (
        "" if peak is None or lv.concurrency == peak else f" (nearest measured to your peak {peak:g})")
    if lv.status != "ok" or lv.speedup is None:
        why = f" ({lv.reason})" if lv.reason else ""
        return Number(key="speedup", label="Speedup at the expected peak", value="withheld",
                      detail=f"{where}: {lv.status}{why}, not counted as a win or a loss")
    ci = (f"95% interval {lv.speedup_ci_low:.2f}x to {lv.speedup_ci_high:.2f}x"
          if lv.speedup_ci_low is not None and lv.speedup_ci_high is not None else "no interval")
    if lv.speedup_ci_low is not None and lv.speedup_ci_low > 1.0 and lv.speedup >= 1 + t.min_gain:
        verdict = "go"
    elif lv.speedup_ci_high is not None and lv.speedup_ci_high < 1.0:
        verdict = "no-go"
    else:
        verdict = "borderline"
    failed = ""
    if lv.error_rate:  # the speedup is over the requests that completed: say how many did not
        failed = f"; {lv.error_rate:.1%} of its requests failed"
        if lv.error_rate > t.max_error_rate:
            failed += f" (over {t.max_error_rate:.0%}: not trustworthy)"
            verdict = "borderline" if verdict == "go" else verdict
    return Number(key="speedup", label="Speedup at the expected peak", value=f"{lv.speedup:.2f}x",
                  detail=f"{where}; {ci}{failed}; time per output token, baseline / speculative", verdict=verdict)


def acceptance_number(ev: Evidence, t: Thresholds) -> Number:
    a, temp = ev.acceptance_production, ev.acceptance_temperature
    label = "Acceptance at the production temperature"
    if a is None:
        return Number(key="acceptance", label=label, value="not measured", detail="run the temperature sweep (step 40)")
    p10 = "P10 per request not measured" if ev.acceptance_p10 is None else f"P10 per request {ev.acceptance_p10:.2f}"
    verdict = "no-go" if a < t.acceptance_no_go_below else ("go" if a > t.acceptance_go_above else "borderline")
    if verdict == "go" and ev.acceptance_p10 is not None and ev.acceptance_p10 < t.acceptance_p10_min:
        verdict = "borderline"
    at = f"at T={temp:g}" if temp is not None else ""
    note = f" ({ev.acceptance_note})" if ev.acceptance_note else ""
    return Number(key="acceptance", label=label, value=f"{a:.2f}",
                  detail=f"{at}{note}; {p10}; share of draft tokens accepted", verdict=verdict)


def concurrency_number(ev: Evidence, t: Thresholds) -> Number:
    label = "Concurrency the draft costs"
    base, spec = ev.max_concurrency_baseline, ev.max_concurrency_spec
    if not ev.draft and ev.method and ev.method != "draft_model":
        return Number(key="concurrency", label=label, value="0%", detail=f"{ev.method}: no draft model, no KV layers",
                      verdict="go")
    if base is None or spec is None:
        return Number(key="concurrency", label=label, value="not measured", detail="run the memory budget (step 20)")
    if ev.memory_fits is False or base <= 0 or spec <= 0:  # step 20 ran and found no room for a request
        return Number(key="concurrency", label=label, value="does not fit",
                      detail=ev.findings.get("20_memory", "") or "step 20: no request fits at this context",
                      verdict="no-go")
    lost = max(0.0, 1 - spec / base)
    ctx = f"{ev.memory_context_length:,}-token" if ev.memory_context_length else "full-context"
    verdict = "borderline" if lost > t.max_concurrency_loss else "go"
    cost = f"{lost:.0%}"  # a cost, so no minus sign: "-20%" under "costs" reads as a gain
    return Number(key="concurrency", label=label, value=cost if cost == "0%" else f"{cost} fewer",
                  detail=f"{base:,.0f} to {spec:,.0f} concurrent {ctx} requests (KV cache shared with the draft)",
                  verdict=verdict)


def model_name(model: str, embedded: str) -> str:
    """A model as the reader knows it: 'embedded' is the playbook's tiny demo pair."""
    return f"{embedded} (embedded demo)" if model == "embedded" else model


def configuration(decision: Decision, ev: Evidence) -> str:
    rec = decision.recommended
    method = rec.method or ev.method or "?"
    k = rec.num_speculative_tokens or ev.num_speculative_tokens
    draft = model_name(rec.model or ev.draft, "tiny-draft")
    who = f"draft {draft}" if method == "draft_model" and draft else method
    what = f"{who} proposing k={k} tokens per step for target {model_name(ev.target, 'tiny-target') or '?'}"
    if ev.precision_in_use:
        what += f" ({ev.precision_in_use[0]} target, {ev.precision_in_use[1]} draft)"
    if rec.enable:
        limits = []
        if rec.max_concurrency is not None:
            limits.append(f"up to {ev.load_kind} {rec.max_concurrency:g}")  # as the headline: the last level won
        if rec.workload_classes:
            limits.append("for " + ", ".join(rec.workload_classes))
        return "Enable: " + what + (" (" + "; ".join(limits) + ")" if limits else "")
    return "Keep speculation off. Measured: " + what


def would_change(decision: Decision, ev: Evidence, t: Thresholds, peak: float | None) -> list[str]:
    """Two to four concrete thresholds, each with today's value, that would flip the verdict."""
    out: list[str] = []
    a, temp = ev.acceptance_production, ev.acceptance_temperature
    if a is not None:
        tt = f" at T={temp:g}" if temp is not None else ""
        if a >= t.acceptance_no_go_below:
            out.append(f"Acceptance{tt} falling below {t.acceptance_no_go_below:.2f} (today {a:.2f}): hotter traffic "
                       "or a quantized target would do it.")
        else:
            out.append(f"Acceptance{tt} rising above {t.acceptance_no_go_below:.2f} (today {a:.2f}): a better-matched "
                       "draft or colder traffic.")
    lv = level_at_peak(ev.load_levels, peak)
    if lv is not None and lv.status == "ok" and lv.speedup is not None:
        lo = f"{lv.speedup_ci_low:.2f}x" if lv.speedup_ci_low is not None else "?"
        if decision.verdict in ("GO", "GO WITH LIMITS"):
            out.append(f"The speedup's interval at {ev.load_kind} {lv.concurrency:g} falling to 1.0x or below "
                       f"(today its low end is {lo}).")
        else:
            out.append(f"A speedup at {ev.load_kind} {lv.concurrency:g} whose interval lies above 1.0x, a proven "
                       f"win (today {lv.speedup:.2f}x, low end {lo}).")
    x = crossover(ev.load_levels)
    if x is not None and peak is not None:
        side = "rising past" if x > peak else "staying below"
        out.append(f"Your peak {side} {ev.load_kind} {x:g}, where speculation starts to slow tokens down.")
    out += [f"Measuring: {m}" for m in decision.measure_next[:2]]
    if (decision.inputs or {}).get("slo_kind", "tpot") != "ttft":
        out.append("An SLO bound by time to first token: speculation does not speed up the first token.")
    return out[:4]


def build(decision: Decision, ev: Evidence) -> Headline:
    """The first screen of the report, from the decision and the evidence it judged."""
    ev, judged = judged_evidence(ev)
    t = _thresholds(decision)
    peak = (decision.inputs or {}).get("expected_peak_concurrency")
    rec = decision.recommended
    if rec.enable:
        label, cmd = "Launch command", rec.launch_command
        if rec.node_commands:  # a server over several nodes: this is the head's; the others' are in the configuration
            label += (f" (on the head node; {len(rec.node_commands)} command(s) for the other nodes under "
                      "Recommended configuration)")
    else:
        label, cmd = "Launch command: none (serve without --speculative-config)", ""
    return Headline(
        verdict=decision.verdict, confidence=decision.confidence, headline=decision.headline,
        configuration=configuration(decision, ev),
        numbers=[speedup_number(ev, peak, t, judged), acceptance_number(ev, t), concurrency_number(ev, t)],
        launch_label=label, launch_command=cmd, would_change=would_change(decision, ev, t, peak),
        expected_peak=peak, kind=ev.load_kind, levels=list(ev.load_levels), judged=judged,
    )
