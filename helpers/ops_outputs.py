"""Files for operations, written into the run directory by the report step.

- ``prometheus-rules.yaml``: the monitoring plan's recording rules, and its per-instance alerts for GO
  and GO WITH LIMITS (:func:`.monitoring.prometheus_rules_yaml`); load it with Prometheus'
  ``rule_files`` (``promtool check rules prometheus-rules.yaml`` validates it).
- ``grafana-dashboard.json``: a Grafana dashboard built with grafana-foundation-sdk (Grafana's own
  builder library, https://github.com/grafana/grafana-foundation-sdk): acceptance rate, mean acceptance
  length, per-position acceptance, TPOT/TTFT percentiles, running requests against the crossover, KV
  cache usage, preemptions; one series per instance. Import it in Grafana and pick the Prometheus data
  source (variable ``datasource``).
"""

from __future__ import annotations

import json
from pathlib import Path

from .monitoring import prometheus_rules_yaml

RULES_FILE = "prometheus-rules.yaml"
DASHBOARD_FILE = "grafana-dashboard.json"
DS_VAR = "datasource"


def _panel(title: str, description: str, targets: list[tuple[str, str]], unit: str = "",
           lo: float | None = None, hi: float | None = None, line_at: float | None = None, width: int = 12):
    """A time-series panel of PromQL ``(expr, legend)`` targets; ``line_at`` draws a dashed red threshold."""
    from grafana_foundation_sdk.builders import common as cb
    from grafana_foundation_sdk.builders import dashboard as db
    from grafana_foundation_sdk.builders import prometheus, timeseries
    from grafana_foundation_sdk.models import common as cm
    from grafana_foundation_sdk.models import dashboard as dm

    panel = (timeseries.Panel().title(title).description(description).height(8).span(width)
             .datasource(dm.DataSourceRef(type_val="prometheus", uid=f"${{{DS_VAR}}}")))
    for i, (expr, legend) in enumerate(targets):
        panel = panel.with_target(prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + i)))
    if unit:
        panel = panel.unit(unit)
    if lo is not None:
        panel = panel.min(lo)
    if hi is not None:
        panel = panel.max(hi)
    if line_at is not None:
        panel = (panel.thresholds(db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
                     [dm.Threshold(value=None, color="green"), dm.Threshold(value=line_at, color="red")]))
                 .thresholds_style(cb.GraphThresholdsStyleConfig().mode(cm.GraphTresholdsStyleMode.DASHED)))
    return panel


def dashboard(plan: dict, title: str = "Speculative decoding (vLLM)") -> dict:
    """The Grafana dashboard of a monitoring plan, as the JSON model Grafana imports."""
    from grafana_foundation_sdk.builders import dashboard as db
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    q = {x["name"]: x["promql"] for x in plan["queries"]}
    alert = {a["name"]: a for a in plan.get("alerts", [])}
    floor = alert.get("SpecDecodeAcceptanceLow", {}).get("threshold")
    crossover = plan.get("crossover_concurrency")
    slo = plan.get("slo_tpot_ms") or None
    verdict = plan.get("verdict", "")
    inst = "{{instance}}"
    b = (db.Dashboard(title).uid("specdecode-vllm").tags(["vllm", "speculative-decoding"]).refresh("30s")
         .time("now-6h", "now").timezone("browser")
         .description(f"Playbook verdict: {verdict}. Per instance (one series per vLLM replica).")
         .with_variable(db.DatasourceVariable(DS_VAR).label("Prometheus").type("prometheus")))
    b = b.with_row(db.Row("Acceptance"))
    b = b.with_panel(_panel("Draft acceptance rate", "accepted / proposed draft tokens, 5m rate"
                            + (f"; the red line is the alert threshold {floor:g}" if floor else ""),
                            [(q["acceptance_rate"], inst)], "percentunit", 0, 1, floor, width=8))
    b = b.with_panel(_panel("Mean acceptance length", "tokens per target step (1 + accepted per draft)",
                            [(q["mean_acceptance_length"], inst)], "none", 1, None, 1.5 if floor else None, width=8))
    b = b.with_panel(_panel("Acceptance by position", "p_i: drafts whose first i+1 tokens were accepted",
                            [(q["acceptance_by_position"], f"{inst} pos {{{{position}}}}")], "percentunit", 0, 1, width=8))
    b = b.with_row(db.Row("Latency"))
    b = b.with_panel(_panel("TPOT percentiles", "time per output token" + (f"; the red line is the {slo:g} ms SLO" if slo else ""),
                            [(q[f"tpot_p{p}_seconds"], f"{inst} P{p}") for p in (50, 90, 99)], "s", 0, None,
                            slo / 1000 if slo else None))
    b = b.with_panel(_panel("TTFT percentiles", "time to first token (the draft's prefill may raise it)",
                            [(q[f"ttft_p{p}_seconds"], f"{inst} P{p}") for p in (50, 90, 99)], "s", 0))
    b = b.with_row(db.Row("Load and memory"))
    b = b.with_panel(_panel("Requests held vs crossover",
                            "requests running or waiting on each replica" + (
                                f"; the red line is {crossover:g}, from where speculation is not recommended "
                                "(the verdict's limit, else the first level without a gain)" if crossover else ""),
                            [(q["requests_per_replica"], inst)], "none", 0, None, crossover, width=8))
    b = b.with_panel(_panel("KV cache usage", "share of each replica's KV cache in use",
                            [(q["kv_cache_usage"], inst)], "percentunit", 0, 1, width=8))
    b = b.with_panel(_panel("Preemptions", "requests preempted per second (KV cache exhausted)",
                            [(q["preemptions_per_second"], inst)], "reqps", 0, width=8))
    return json.loads(json.dumps(b.build(), cls=JSONEncoder))


def write_ops_outputs(run_path: str | Path, plan: dict) -> dict[str, str]:
    """Write the rule file and the dashboard into the run directory; their names, for ``plan['files']``."""
    root = Path(run_path)
    (root / RULES_FILE).write_text(prometheus_rules_yaml(plan))
    try:
        board = dashboard(plan)
    except ImportError:  # grafana-foundation-sdk needs Python >= 3.11 (a dependency there)
        plan["notes"] = [*plan.get("notes", []), "no Grafana dashboard: grafana-foundation-sdk needs Python >= 3.11"]
        return {"prometheus_rules": RULES_FILE}
    (root / DASHBOARD_FILE).write_text(json.dumps(board, indent=2) + "\n")
    return {"prometheus_rules": RULES_FILE, "grafana_dashboard": DASHBOARD_FILE}


def operations_html(plan: dict, rules_yaml: str | None = None) -> str:
    """The report's operations section body (escaped): per-instance queries, then the alerts (GO, GO WITH
    LIMITS) or what to watch before trying again (NO-GO, INCONCLUSIVE), the files written, the rule file."""
    from .render import code, esc

    q = "".join(f"<tr><td>{esc(x['name'])}</td><td><code>{esc(x['promql'])}</code></td><td>{esc(x['meaning'])}</td></tr>"
                for x in plan.get("queries", []))
    out = f"<table><tr><th>metric (per instance)</th><th>PromQL</th><th>meaning</th></tr>{q}</table>"
    if plan.get("watch"):
        items = "".join(f"<li><b>{esc(w['what'])}</b>: {esc(w['when'])}"
                        + (f" <code>{esc(w['query'])}</code>" if w.get("query") else "") + "</li>" for w in plan["watch"])
        out += f"<p><b>No alerts</b> (verdict {esc(plan.get('verdict', ''))}). Watch before trying again:</p><ul>{items}</ul>"
    elif plan.get("alerts"):
        rows = "".join(f"<tr><td>{esc(a['name'])}</td><td>{esc(a['threshold'])}</td><td>{esc(a['for'])}</td>"
                       f"<td>{esc(a['why'])}</td></tr>" for a in plan["alerts"])
        out += f"<p><b>Alerts</b> (each fires per instance):</p><table><tr><th>alert</th><th>threshold</th><th>for</th><th>why</th></tr>{rows}</table>"
    files = plan.get("files") or {}
    if files:
        out += ("<p>Written into the run directory: "
                + ", ".join(f"<code>{esc(v)}</code>" for v in files.values())
                + " (load the rules with Prometheus' <code>rule_files</code>; import the dashboard in Grafana).</p>")
    rules = rules_yaml if rules_yaml is not None else prometheus_rules_yaml(plan)
    return out + f"<p><b>Prometheus rule file</b>:</p>{code(rules)}"
