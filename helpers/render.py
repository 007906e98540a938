"""HTML fragments of the report. Every piece of text from a run (model output, model names, reasons)
goes through :func:`html.escape`; tables go through pandas with ``escape=True``."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence

import pandas as pd

from .schemas.decision import Decision, Evidence, RuleResult

_BG = {"GO": "#e8f5e9", "GO WITH LIMITS": "#fff8e1", "NO-GO": "#ffebee", "INCONCLUSIVE": "#eeeeee"}
_FG = {"go": "#2e7d32", "borderline": "#b26a00", "no-go": "#c62828", "unknown": "#616161"}


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def verdict_banner(decision: Decision) -> str:
    """The verdict, its confidence, the headline and 3 to 5 reasons."""
    items = "".join(f"<li>{esc(r)}</li>" for r in decision.reasons)
    nxt = "".join(f"<li>{esc(m)}</li>" for m in decision.measure_next)
    nxt_html = f"<p><b>Measure next:</b></p><ul>{nxt}</ul>" if nxt else ""
    return (
        f'<div style="background:{_BG[decision.verdict]};padding:12px 16px;border-radius:6px">'
        f'<h2 style="margin:0">Verdict: {esc(decision.verdict)} '
        f'<small>({esc(decision.confidence)} confidence)</small></h2>'
        f"<p><b>{esc(decision.headline)}</b></p><ul>{items}</ul>{nxt_html}</div>"
    )


def rules_table(rules: Sequence[RuleResult]) -> str:
    rows = "".join(
        f'<tr><td>{esc(r.name)}</td><td style="color:{_FG[r.verdict]};font-weight:bold">{esc(r.verdict)}</td>'
        f"<td>{esc(r.reason)}</td></tr>"
        for r in rules
    )
    return f"<table><tr><th>rule</th><th>verdict</th><th>reason</th></tr>{rows}</table>"


def frame(df: pd.DataFrame, float_format: str = "{:.3g}") -> str:
    """A DataFrame as an HTML table, cell text escaped."""
    return df.to_html(index=False, escape=True, float_format=lambda x: float_format.format(x), na_rep="-", border=0)


def code(text: str) -> str:
    return f"<pre style='white-space:pre-wrap'>{esc(text)}</pre>"


def steps_table(ev: Evidence, expected: Iterable[str]) -> str:
    """Which steps ran, and each one's finding."""
    rows = []
    failed = {f.split(":")[0]: f for f in ev.steps_failed}
    for step in expected:
        state = "failed" if step in failed else ("present" if step in ev.steps_present else "missing")
        rows.append({"step": step, "state": state, "finding": ev.findings.get(step, failed.get(step, ""))})
    return frame(pd.DataFrame(rows))


def sample_outputs(records: Iterable[dict], n: int = 3, chars: int = 300) -> str:
    """A few completions from the load test, escaped (model output may hold markup)."""
    rows = [{"phase": r.get("phase", ""), "prompt": r.get("prompt_id", ""), "output": str(r.get("text", ""))[:chars]}
            for r in records if r.get("status") == "ok" and r.get("text")]
    if not rows:
        return "<p>No completions were recorded.</p>"
    picked: list[dict] = []
    for phase_prefix in ("baseline", "spec"):
        picked += [r for r in rows if str(r["phase"]).startswith(phase_prefix)][:n]
    return frame(pd.DataFrame(picked or rows[:n]))


def monitoring(plan: dict, rules_yaml: str) -> str:
    q = "".join(f"<tr><td>{esc(x['name'])}</td><td><code>{esc(x['promql'])}</code></td><td>{esc(x['meaning'])}</td></tr>"
                for x in plan.get("queries", []))
    return (f"<table><tr><th>metric</th><th>PromQL</th><th>meaning</th></tr>{q}</table>"
            f"<p><b>Alert rules</b> (Prometheus rule file):</p>{code(rules_yaml)}")


def config_block(decision: Decision) -> str:
    rec = decision.recommended
    notes = "".join(f"<li>{esc(n)}</li>" for n in rec.notes)
    if not rec.enable:
        return f"<p><b>Recommended: leave speculative decoding off.</b></p><ul>{notes}</ul>"
    cmd = rec.launch_command or "--speculative-config '" + json.dumps(rec.speculative_config) + "'"
    return f"<p><b>Recommended launch command</b> (vLLM {esc(decision.versions.get('vllm', ''))}):</p>{code(cmd)}<ul>{notes}</ul>"


def servers_table(summary: dict | None) -> str:
    """The run's vLLM servers (run.json ``servers``): one row per configuration, with the start-up time
    each cost and the steps that shared it."""
    if not summary or not summary.get("per_config"):
        return "<p>No server was started by this run (external mode, or the steps that need one did not run).</p>"
    head = (f"<p>{summary.get('started', 0)} server start(s) for {summary.get('configurations', 0)} "
            f"configuration(s), {summary.get('startup_s', 0):.0f} s of start-up in all; "
            f"{summary.get('reuses', 0)} reuse(s) by later steps, {summary.get('restarts', 0)} restart(s).</p>")
    rows = [{"configuration": c.get("config", ""), "role": c.get("role", ""), "starts": c.get("starts", 0),
             "start-up (s)": round(c.get("startup_s", 0.0), 1), "used by": ", ".join(c.get("steps", [])),
             "logs": ", ".join(c.get("logs", []))} for c in summary["per_config"]]
    return head + frame(pd.DataFrame(rows))


def run_servers(run_path) -> str:
    """:func:`servers_table` of a run directory's run.json (an interactive run may have none)."""
    from pathlib import Path

    try:
        state = json.loads((Path(run_path) / "run.json").read_text())
    except (OSError, ValueError):
        state = {}
    return servers_table(state.get("servers") if isinstance(state, dict) else None)
