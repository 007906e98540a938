"""Notebook 90 end to end on synthetic step results: sections, numbers, escaping, no secrets.

Runs the real notebook with papermill (a few seconds) and renders it with the report builder.
"""

import json

import pytest

from playbook.helpers.artifacts import append_jsonl
from playbook.report import build_html
from playbook.runner import execute_step
from tests.support.decide_fixtures import load, make_run, sweep

SECRET = "sk-test-DO-NOT-LEAK-4242"
SCRIPT = "<script>alert('pwned')</script>"


def _records(run):
    for i, phase in enumerate(["baseline@c1", "baseline@c1", "spec@c1"]):
        append_jsonl(run.artifact("50_load_requests.jsonl"), {
            "id": f"{phase}-{i}", "prompt_id": f"p{i}", "workload": "structured", "temperature": 0.2, "phase": phase,
            "scheduled_s": 0, "sent_s": 0, "dispatch_lag_ms": 0, "status": "ok", "prompt_tokens": 10 + 40 * i,
            "output_tokens": 8, "ttft_ms": 12.0 + 4 * i, "tpot_ms": 5.0, "e2e_ms": 50, "text": f"answer {SCRIPT} {i}",
        })


@pytest.fixture(scope="module")
def report(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setenv("PLAYBOOK_TEST_KEY", SECRET)
    run = make_run(tmp_path_factory.mktemp("run"), sweep_result=sweep(),
                   load_result=load({1: (1.6, 1.4, 1.8), 4: (1.3, 1.15, 1.45), 16: (0.8, 0.7, 0.9)}))
    _records(run)
    execute_step(run, "90_report", {"expected_peak_concurrency": 16, "api_key_env": "PLAYBOOK_TEST_KEY",
                                    "slo_tpot_ms": 40.0, "mode": "managed", "target_model": "/models/target",
                                    "draft_model": "/models/draft"})
    html = build_html(run).read_text()
    return run, html, json.loads((run.path / "decision.json").read_text())


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_sections_present(report):
    _, html, _ = report
    for title in ("Verdict:", "Rules", "Draft ranking", "Memory budget", "Quantization", "Acceptance by temperature",
                  "Latency vs load", "predicted and measured", "Recommended configuration", "Monitoring"):
        assert title in html, title
    assert "def " not in html and "import " not in html  # input cells hidden


def test_numbers_match_decision_json(report):
    run, html, d = report
    assert d["verdict"] == "GO WITH LIMITS"
    assert f"Verdict: {d['verdict']}" in html
    import html as h

    text = h.unescape(html)  # the escaping itself is checked in test_model_output_is_escaped
    for reason in d["reasons"]:
        assert reason in text
    for rule in d["rules"]:
        assert rule["reason"] in text
    summary = (run.path / "summary.md").read_text()
    assert f"**{d['verdict']}**" in summary


def test_launch_command_in_todays_syntax(report):
    _, html, d = report
    cmd = d["recommended"]["launch_command"]
    assert "--speculative-config" in cmd and "num_speculative_tokens_per_batch_size" in cmd
    assert "--speculative-model" not in cmd
    assert "/models/draft" in d["recommended"]["speculative_config"]["model"]
    assert "rate(vllm:spec_decode_num_accepted_tokens_total" in html


def test_model_output_is_escaped(report):
    _, html, _ = report
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(" in html


def test_api_key_never_written(report):
    run, _, _ = report
    for path in run.path.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="ignore"), path


def test_only_preflight_renders_inconclusive(tmp_path):
    run = make_run(tmp_path)
    execute_step(run, "90_report", {})
    html = build_html(run).read_text()
    d = json.loads((run.path / "decision.json").read_text())
    assert d["verdict"] == "INCONCLUSIVE" and d["measure_next"]
    assert "Verdict: INCONCLUSIVE" in html and "Measure next" in html
    assert "Not measured: step 50_load" in html
    assert (run.path / "summary.md").read_text().startswith("## Speculative decoding: **INCONCLUSIVE**")
