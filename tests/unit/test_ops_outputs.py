"""The report step's files for operations: a Prometheus rule file promtool accepts, a Grafana dashboard.

promtool is the real one from Debian's ``prometheus`` package (installed here when missing and we are
root; otherwise the test fails saying what to run)."""

from __future__ import annotations

import json
import re
import subprocess

import yaml

from playbook.helpers import monitoring, ops_outputs, steps
from playbook.helpers.params import ReportParams
from tests.support.decide_fixtures import load, make_run, sweep
from tests.support.prometheus_tools import prometheus_tool

NASTY = 'team "a"\\b\nc'  # a model name with a quote, a backslash and a newline
WIN_THEN_LOSS = {1: (1.6, 1.4, 1.8), 4: (1.3, 1.15, 1.45), 16: (0.8, 0.7, 0.9)}


def _report(tmp_path, levels, **kw):
    run = make_run(tmp_path / "run", sweep_result=sweep(**kw.pop("sweep", {})), load_result=load(levels))
    p = ReportParams(run_dir=str(run.path), mode="managed", target_model="/models/target", draft_model="/models/draft",
                     served_model_name=NASTY, slo_tpot_ms=40, **kw)
    return run, steps.report(p, run).decision


def _check_rules(path) -> str:
    res = subprocess.run([prometheus_tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_go_with_limits_writes_per_instance_alerts_that_promtool_accepts(tmp_path):
    run, d = _report(tmp_path, WIN_THEN_LOSS, expected_peak_concurrency=16)
    assert d.verdict == "GO WITH LIMITS"
    assert d.monitoring["files"] == {"prometheus_rules": "prometheus-rules.yaml", "grafana_dashboard": "grafana-dashboard.json"}
    out = _check_rules(run.path / "prometheus-rules.yaml")
    rules = yaml.safe_load((run.path / "prometheus-rules.yaml").read_text())["groups"][0]["rules"]
    alerts = {r["alert"]: r for r in rules if "alert" in r}
    assert f"SUCCESS: {len(rules)} rules found" in out
    assert set(alerts) == {"SpecDecodeAcceptanceLow", "SpecDecodeNoGain", "SpecDecodePastCrossover", "TpotSloBreached"}
    # per instance: the crossover (one server's load) is compared with each replica, never a fleet's sum
    past = alerts["SpecDecodePastCrossover"]["expr"]
    assert past.startswith('(max by (instance) ({__name__=~"vllm[:_]num_requests_running",')
    assert '+ max by (instance) ({__name__=~"vllm[:_]num_requests_waiting",' in past  # a capped server queues
    assert past.endswith(">= 5")  # the verdict's "up to 4", not the next measured level (16)
    for r in rules:
        assert not re.search(r"\bsum\((?!.*by)", r["expr"]), r["expr"]
        assert "by (instance" in r["expr"]
    # thresholds from the run: 20% under the measured 0.75, and the 40 ms SLO
    assert "< 0.600" in alerts["SpecDecodeAcceptanceLow"]["expr"]
    assert "> 0.04" in alerts["TpotSloBreached"]["expr"]
    # the label value is escaped as a PromQL string: promtool parsed it, and it reads back as the name
    assert 'model_name="team \\"a\\"\\\\b\\nc"' in alerts["SpecDecodeAcceptanceLow"]["expr"]


def test_no_go_has_no_alerts_and_says_what_to_watch(tmp_path):
    run, d = _report(tmp_path, {1: (0.7, 0.6, 0.8), 4: (0.6, 0.5, 0.7)}, sweep={"acc_at_prod": 0.3, "p10": 0.2},
                     expected_peak_concurrency=4)
    assert d.verdict == "NO-GO"
    assert d.monitoring["alerts"] == [] and d.monitoring["watch"]
    whats = [w["what"] for w in d.monitoring["watch"]]
    assert "acceptance" in whats and "running requests per replica" in whats
    text = (run.path / "prometheus-rules.yaml").read_text()
    _check_rules(run.path / "prometheus-rules.yaml")
    assert "alert:" not in text and "Watch before trying again" in text


def test_what_was_not_measured_is_never_watched_as_a_measured_cause(tmp_path):
    # a run whose preflight failed: no sweep, no load test, no memory step. Every rule is 'unknown'.
    run = make_run(tmp_path / "run", sweep_result=None, load_result=None)
    p = ReportParams(run_dir=str(run.path), mode="managed", target_model="/models/target", draft_model="/models/draft")
    d = steps.report(p, run).decision
    assert d.verdict == "INCONCLUSIVE" and d.monitoring["watch"]
    assert {w["what"] for w in d.monitoring["watch"]} == {"measure next"}
    text = json.dumps(d.monitoring["watch"])
    assert "was under the" not in text and "leaves too little KV cache" not in text


def test_the_dashboard_is_built_by_the_sdk_with_the_panels_operators_need(tmp_path):
    run, d = _report(tmp_path, WIN_THEN_LOSS, expected_peak_concurrency=16)
    dash = json.loads((run.path / "grafana-dashboard.json").read_text())
    panels = {p["title"]: p for p in dash["panels"] if p["type"] == "timeseries"}
    assert set(panels) == {"Draft acceptance rate", "Mean acceptance length", "Acceptance by position",
                           "TPOT percentiles", "TTFT percentiles", "Requests held vs crossover",
                           "KV cache usage", "Preemptions"}
    assert dash["templating"]["list"][0]["type"] == "datasource"
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels.values())
    crossover = panels["Requests held vs crossover"]  # running + waiting: a --max-num-seqs cap queues the rest
    expr = crossover["targets"][0]["expr"]
    assert "vllm[:_]num_requests_running" in expr and "vllm[:_]num_requests_waiting" in expr
    limit = d.recommended.max_concurrency  # the red line is one past the verdict's limit, as the alert
    assert [s["value"] for s in crossover["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [None, limit + 1]
    assert len(panels["TPOT percentiles"]["targets"]) == 3
    assert "vllm[:_]num_preemptions_total" in panels["Preemptions"]["targets"][0]["expr"]
    # what the SDK's own model reads back is the same dashboard
    from grafana_foundation_sdk.models.dashboard import Dashboard

    assert Dashboard.from_json(dash).title == dash["title"]


def test_label_values_are_escaped():
    assert monitoring.label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert monitoring.matchers("m", '{job="x"}') == 'model_name="m",job="x"'
    assert monitoring.matchers("") == ""


def test_plan_rules_without_any_alert_still_pass_promtool(tmp_path):
    plan = {"verdict": "INCONCLUSIVE", "model_name": "", "queries": [q.model_dump() for q in monitoring.queries()],
            "alerts": [], "watch": [{"what": "measure next", "query": "", "when": "run 50_load"}]}
    (tmp_path / "r.yaml").write_text(monitoring.prometheus_rules_yaml(plan))
    _check_rules(tmp_path / "r.yaml")
    assert ops_outputs.dashboard(plan)["panels"]


def test_the_report_section_shows_what_to_watch_for_no_go_and_escapes(tmp_path):
    _, d = _report(tmp_path, {1: (0.7, 0.6, 0.8), 4: (0.6, 0.5, 0.7)}, sweep={"acc_at_prod": 0.3, "p10": 0.2},
                   expected_peak_concurrency=4)
    html = ops_outputs.operations_html(d.monitoring)
    assert "Watch before trying again" in html and "<b>Alerts</b>" not in html
    assert "grafana-dashboard.json" in html and "prometheus-rules.yaml" in html
    assert 'team \\"a' not in html and "team \\&quot;a\\&quot;" in html  # the name escaped for PromQL, then HTML
