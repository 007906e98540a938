"""Notebook 90 end to end on synthetic step results: first screen, sections, numbers, escaping, no secrets,
no table twice, plain words, exports.

Runs the real notebook with papermill (a few seconds) and renders it with the report builder.
"""

import html as h
import json
import re

import pytest
from pypdf import PdfReader

from playbook.helpers.artifacts import append_jsonl
from playbook.report import build_html
from playbook.runner import execute_step
from tests.support.decide_fixtures import load, make_run, sweep
from tests.support.report_fixtures import memory_and_quantization

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
    run = make_run(tmp_path_factory.mktemp("run"), sweep_result=sweep(), extra=memory_and_quantization(),
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


def _text(page: str) -> str:
    """The visible text: no style, script, code or pre blocks (commands and rule files are code), no tags."""
    page = re.sub(r"<(style|script|pre|code)\b.*?</\1>", " ", page, flags=re.S | re.I)
    return h.unescape(re.sub(r"<[^>]+>", " ", page))


def test_first_screen_holds_the_verdict_numbers_chart_and_command(report):
    _, html, d = report
    first = html[html.index('id="first-screen"'):html.index("How to read this report")]
    for element in ('id="verdict"', 'id="headline-speedup"', 'id="headline-acceptance"', 'id="headline-concurrency"',
                    'id="deciding-chart"', 'id="launch"', 'id="would-change"', "data:image/png;base64,"):
        assert element in first, element
    assert f"Verdict: {d['verdict']}" in first
    text = _text(first)
    assert "0.80x" in text and "0.70x to 0.90x" in text  # the level at the expected peak (16) with its interval
    assert "0.75" in text and "P10 per request 0.60" in text  # acceptance at T=0.2 with its P10
    assert "21% fewer" in text and "39 to 31" in text  # the draft's concurrency cost
    assert h.unescape(d["recommended"]["launch_command"]) in h.unescape(first)


def test_sections_follow_the_pipeline_each_with_a_finding(report):
    _, html, _ = report
    ids = re.findall(r'<section class="pb-section" id="([a-z]+)"', html)
    order = ["why", "provenance", "preflight", "drafts", "memory", "quantization", "sweep", "lossless", "load", "predicted",
             "workloads", "recommendation", "operations"]
    assert [i for i in ids if i in order] == order, ids  # pipeline order (other sections may sit between)
    assert len(re.findall(r'<section class="pb-section"', html)) == len(re.findall(r'<p class="pb-finding">\S', html))
    assert "from playbook.helpers import" not in html and "display(HTML(" not in html  # input cells hidden


def test_no_table_twice_and_wide_matrix_collapsed_with_full_csv(report):
    run, html, _ = report
    tables = [re.sub(r"\s+", " ", _text(t)) for t in re.findall(r"<table.*?</table>", html, flags=re.S)]
    repeated = {t[:80] for t in tables if tables.count(t) > 1}
    assert not repeated, repeated
    assert html.count("Memory by precision pair") == 1
    csv = (run.path / "tables" / "30_precision_matrix.csv").read_text().splitlines()
    assert len(csv) == 7  # header + the 6 pairs, while the page merges the 5 that fit alike into one row
    assert "bf16/int8, int8/bf16, int8/int8, int4/bf16, int4/int8" in html


def test_plain_words_no_internal_names(report):
    _, html, d = report
    text = _text(html)
    assert "SPEC" not in text
    for rule in d["rules"]:
        assert rule["name"] not in text, rule["name"]  # titles, not identifiers
    assert "Verification is cheap only while decoding is memory-bound" in text  # each rule explained once
    assert text.count("Verification is cheap only while decoding is memory-bound") == 1


def test_numbers_match_decision_json(report):
    run, html, d = report
    assert d["verdict"] == "GO WITH LIMITS"
    assert f"Verdict: {d['verdict']}" in html
    text = h.unescape(html)  # the escaping itself is checked in test_model_output_is_escaped
    for rule in d["rules"]:
        assert rule["reason"] in text
    summary = (run.path / "summary.md").read_text()
    assert f"**{d['verdict']}**" in summary


def test_exports_pdf_and_notebooks(report):
    """The PDF opens in a PDF reader (pypdf parses every page): the first page says the verdict and the
    launch command, and the figures are in it as images."""
    run, _, d = report
    pdf = PdfReader(run.path / "report.pdf", strict=True)
    pages = [page.extract_text() for page in pdf.pages]
    assert len(pages) >= 2 and all(text or page.images for text, page in zip(pages, pdf.pages, strict=True))  # no blank page
    first = " ".join(pages[0].split())  # the first screen fits page 1, under the title
    assert f"Verdict: {d['verdict']}" in first and "vllm serve" in first
    assert sum(len(page.images) for page in pdf.pages) >= 3  # the deciding chart and the other figures


def test_launch_command_in_todays_syntax(report):
    _, html, d = report
    cmd = d["recommended"]["launch_command"]
    assert "--speculative-config" in cmd and '"num_speculative_tokens":4' in cmd.replace(" ", "")
    assert "num_speculative_tokens_per_batch_size" not in cmd  # a limit, not a table no level ran as launched
    assert "--speculative-model" not in cmd
    assert "/models/draft" in d["recommended"]["speculative_config"]["model"]
    assert "rate(" in html and "spec_decode_num_accepted_tokens_total" in html  # the monitoring queries


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
    assert 'id="headline-speedup"' in html and "not measured" in html
    assert (run.path / "summary.md").read_text().startswith("## Speculative decoding: **INCONCLUSIVE**")
