"""summary.md: the decision in a few lines, ready to paste into a ticket (Markdown, no HTML)."""

from __future__ import annotations

import json
import re

from .multinode import NODES_LABEL, as_script
from .prediction_check import error_sentence
from .schemas.decision import Decision, Evidence
from .schemas.predict import PredictionCheck


def _md_escape(text: str) -> str:
    """Keep model names and reasons from breaking Markdown tables or opening HTML tags ("< 0.50" stays)."""
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", str(text)).replace("|", "\\|")


def _vllm_version(ev: Evidence) -> str:
    """The vLLM the measurements ran on; the one installed here only as such (an imported run's files may not say)."""
    if ev.versions.get("vllm"):
        return f"vLLM {ev.versions['vllm']}"
    here = ev.versions.get("vllm_installed_here")
    return "vLLM version not recorded" + (f" (installed here: {here})" if here else "")


def summary_markdown(decision: Decision, ev: Evidence, check: PredictionCheck | None = None, report: str = "report.html") -> str:
    """The ticket text: verdict, reasons, measured speedups, the command to run, what to watch."""
    from .headline import judged_evidence, model_name

    rec = decision.recommended
    judged_ev, judged = judged_evidence(ev)
    lines = [
        f"## Speculative decoding: **{decision.verdict}** ({decision.confidence} confidence)",
        "",
        _md_escape(decision.headline),
        "",
        f"Target `{_md_escape(model_name(ev.target, 'tiny-target') or '?')}`, "
        f"draft `{_md_escape(model_name(ev.draft, 'tiny-draft') or '-')}`, method `{judged_ev.method or '?'}`, "
        f"k={judged_ev.num_speculative_tokens or '?'}; {_vllm_version(ev)}.",
        "",
        *_headline_lines(decision, ev),
        "",
        "**Why**",
        *[f"- {_md_escape(r)}" for r in decision.reasons],
    ]
    if decision.measure_next:
        lines += ["", "**Measure next**", *[f"- {_md_escape(m)}" for m in decision.measure_next]]
    if judged_ev.load_levels:
        at_t = f" at T={ev.load_temperature:g}" if ev.load_temperature is not None else ""
        which = (f", {judged} (the measured configuration the verdict judged; the step's own "
                 f"{ev.candidates.get('primary') or 'configuration'} is in the report)" if judged else "")
        lines += ["", f"**Measured TPOT speedup by {ev.load_kind}{at_t}{_md_escape(which)}** (baseline P50 / speculative "
                  "P50, 95% CI)", "", f"| {ev.load_kind} | speedup | CI | TPOT base ms | TPOT spec ms |", "|---|---|---|---|---|"]
        for lv in judged_ev.load_levels:
            ci = f"{lv.speedup_ci_low:.2f} to {lv.speedup_ci_high:.2f}" if lv.speedup_ci_low is not None and lv.speedup_ci_high is not None else "-"
            sp = _f(lv.speedup) if lv.status == "ok" else f"not counted ({lv.status}: {_md_escape(lv.reason)})"
            lines.append(f"| {lv.concurrency:g} | {sp} | {ci} | {_f(lv.tpot_p50_baseline_ms)} | {_f(lv.tpot_p50_spec_ms)} |")
    if check is not None:
        primary = ev.candidates.get("primary") or "the step's own configuration"
        own = f" ({_md_escape(primary)}, the step's own configuration)" if judged else ""
        lines += ["", f"Predictor vs measured{own}: the speedup is off by {error_sentence(check)}."]
    if why := (decision.prediction or {}).get("break_even"):
        lines += ["", f"Why, in this node's own step costs (the predictor's fit to its measured steps): {why}."]
    lines += ["", "**Configuration**", ""]
    if rec.enable:
        lines += ["```", rec.launch_command or "--speculative-config '" + json.dumps(rec.speculative_config) + "'", "```"]
        if rec.node_commands:
            lines += ["", f"{NODES_LABEL}:", "", "```", as_script(rec.node_commands), "```", ""]
        lines += [f"- {_md_escape(n)}" for n in rec.notes]
    else:
        lines += [f"- {_md_escape(n)}" for n in rec.notes] or ["- keep speculative decoding off"]
    alerts = decision.monitoring.get("alerts", []) if decision.monitoring else []
    if alerts:
        lines += ["", "**Alerts**", *[f"- {a['name']}: {_md_escape(a['why'])}" for a in alerts]]
    watch = [w for w in (decision.monitoring or {}).get("watch", []) if w["what"] != "measure next"]  # said above
    if watch:
        lines += ["", "**Watch before trying again** (speculation off)",
                  *[f"- {_md_escape(w['what'])}: {_md_escape(w['when'])}" + (f" (`{w['query']}`)" if w.get("query") else "")
                    for w in watch]]
    lines += ["", f"Full report: `{report}`; every number: `decision.json`."]
    return "\n".join(lines) + "\n"


def _headline_lines(decision: Decision, ev: Evidence) -> list[str]:
    """The report's three headline numbers, one line each."""
    from .headline import build

    return [f"- **{n.label}: {n.value}** ({_md_escape(n.detail)})" for n in build(decision, ev).numbers]


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"
