"""HTML fragments of the report. Every piece of text from a run (model output, model names, reasons)
goes through :func:`html.escape`; tables go through pandas with ``escape=True``."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence

import pandas as pd

from . import glossary
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


def rules_table(rules: Sequence[RuleResult], thresholds: dict | None = None) -> str:
    """Every rule once: its plain title, what it checks (one sentence), its verdict and the numbers behind it."""
    rows = "".join(
        f'<tr><td><b>{esc(glossary.title(r.name))}</b><br><small>{esc(glossary.why(r.name, thresholds))}</small></td>'
        f'<td style="color:{_FG[r.verdict]};font-weight:bold">{esc(glossary.verdict_word(r))}</td>'
        f"<td>{esc(r.reason)}</td></tr>"
        for r in rules
    )
    return f"<table><tr><th>rule and why it matters</th><th>result</th><th>what was measured</th></tr>{rows}</table>"


def frame(df: pd.DataFrame, float_format: str = "{:.3g}") -> str:
    """A DataFrame as an HTML table, cell text escaped."""
    df = df.astype(object).where(df.notna(), None).map(lambda v: "-" if v is None else v) if len(df) else df
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
    from .artifacts import run_state

    return servers_table(run_state(run_path).get("servers"))


# -- the first screen and the section frame ---------------------------------------------------
_CSS = """<style>
.pb-first{display:grid;grid-template-columns:minmax(0,46fr) minmax(0,54fr);gap:14px;align-items:start;
  font-size:13px;line-height:1.35;max-width:1300px}
.pb-verdict{padding:8px 12px;border-radius:6px}
.pb-verdict h2{margin:0;font-size:22px}
.pb-verdict p{margin:4px 0 0 0}
.pb-config{margin:6px 0;font-size:12.5px}
.pb-numbers{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:8px;margin:6px 0}
.pb-number{border:1px solid #ddd;border-left-width:5px;border-radius:4px;padding:5px 7px}
.pb-number .v{font-size:22px;font-weight:bold;display:block}
.pb-number .l{font-size:11.5px;font-weight:bold;display:block}
.pb-number .d{font-size:11px;color:#444;display:block}
.pb-launch pre{font-size:11px;margin:2px 0;padding:4px;background:#f5f5f5;white-space:pre-wrap;word-break:break-all}
.pb-change{font-size:12px;margin:2px 0 0 0;padding-left:18px}
.pb-chart img{width:100%;height:auto;max-height:430px;object-fit:contain}
.pb-section h2{margin-top:18px}
.pb-section table tr,.pb-section table td,.pb-section table th{text-align:left !important;vertical-align:top}
.pb-finding{font-size:14px;font-weight:bold;margin:4px 0 8px 0}
</style>"""


def figure(fig, alt: str, element_id: str = "", dpi: int = 100) -> str:
    """A Matplotlib figure as an inline PNG (no file, no network: the page renders offline)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    data = base64.b64encode(buf.getvalue()).decode()
    ident = f' id="{esc(element_id)}"' if element_id else ""
    return f'<img{ident} alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def first_screen(hl, chart: str) -> str:
    """Verdict, confidence and configuration; the three numbers; the deciding chart; the launch command;
    what would change the decision. ``hl`` is a :class:`helpers.headline.Headline`, ``chart`` an <img>."""
    numbers = "".join(
        f'<div class="pb-number" id="headline-{esc(n.key)}" style="border-left-color:{_FG[n.verdict]}">'
        f'<span class="l">{esc(n.label)}</span><span class="v" style="color:{_FG[n.verdict]}">{esc(n.value)}</span>'
        f'<span class="d">{esc(n.detail)}</span></div>' for n in hl.numbers)
    cmd = code(hl.launch_command) if hl.launch_command else ""
    change = "".join(f"<li>{esc(c)}</li>" for c in hl.would_change)
    return (
        _CSS + '<div class="pb-first" id="first-screen"><div>'
        f'<div class="pb-verdict" id="verdict" style="background:{_BG.get(hl.verdict, "#eeeeee")}">'
        f'<h2>Verdict: {esc(hl.verdict)} <small>({esc(hl.confidence)} confidence)</small></h2>'
        f"<p>{esc(hl.headline)}</p></div>"
        f'<p class="pb-config" id="configuration"><b>{esc(hl.configuration)}</b></p>'
        f'<div class="pb-numbers" id="headline-numbers">{numbers}</div>'
        f'<div class="pb-launch" id="launch"><b>{esc(hl.launch_label)}</b>{cmd}</div>'
        f'<div id="would-change"><b>What would change the decision</b><ul class="pb-change">{change}</ul></div>'
        f'</div><div class="pb-chart" id="deciding-chart">{chart}</div></div>'
    )


def section(anchor: str, title: str, finding: str, body: str) -> str:
    """A report section: its title, its finding in one sentence, then the evidence."""
    return (f'<section class="pb-section" id="{esc(anchor)}"><h2>{esc(title)}</h2>'
            f'<p class="pb-finding">{esc(finding)}</p>{body}</section>')


def collapse(df: pd.DataFrame, label_cols: Sequence[str], ignore: Sequence[str] = ()) -> tuple[pd.DataFrame, str]:
    """A wide matrix reduced to the rows that differ: columns equal in every row become one sentence,
    rows equal in every other column become one row listing their labels; ``ignore`` columns are left
    out of both (the full table keeps them)."""
    if df.empty:
        return df, ""
    values = [c for c in df.columns if c not in label_cols and c not in ignore]
    same = [c for c in values if df[c].astype(str).nunique(dropna=False) == 1]
    shown = [c for c in same if str(df[c].iloc[0]) not in ("", "None", "nan")]
    note = ("Same in every row: " + "; ".join(f"{c} = {df[c].iloc[0]}" for c in shown) + ".") if shown else ""
    varying = [c for c in values if c not in same]
    label = " / ".join(label_cols)
    if not varying:
        rows = pd.DataFrame([{label: f"all {len(df)} rows", "rows": len(df)}])
        return rows, note
    keyed = df.assign(**{label: df[list(label_cols)].astype(str).agg("/".join, axis=1)})
    grouped = (keyed.groupby([keyed[c].astype(str) for c in varying], sort=False, dropna=False)
               .agg({label: lambda s: ", ".join(s), **{c: "first" for c in varying}}).reset_index(drop=True))
    grouped.insert(1, "rows", grouped[label].str.count(",") + 1)
    return grouped[[label, "rows", *varying]], note
