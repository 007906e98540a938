"""End to end in a real browser: `playbook lab` on the embedded engine, driven in headless Chromium.

1. 00_preflight: Run > Run All Cells; the checklist table appears, with no traceback, and the run
   directory the notebook wrote (runs/interactive) holds the same finding.
2. 20_memory: Run All; the form shows; context_length is typed into its box; Run > Run Selected
   Cell and All Below from the cell under the form; the precision table changes (half the context
   fits about twice the requests) and the step's result on disk records the new context length.
3. 10_drafts and 90_report: Run All, no traceback, their results land in the same run directory
   (90_report writes decision.json there, as `playbook report` does); then `playbook report` on that
   interactive run directory builds report.html.
Screenshots: test-artifacts/browser/.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from labpage import LabPage

pytestmark = [pytest.mark.browser, pytest.mark.engine]

PREFLIGHT_TIMEOUT_S = 420  # the embedded engine starts a real vLLM server (~30-60 s on 2 CPU cores)
STEP_TIMEOUT_S = 180
FORM_CELL = "ui.show_form(p)"


def _floats(rows: list[dict[str, str]], column: str) -> list[float]:
    assert rows and column in rows[0], f"column {column!r} missing from the table: {list(rows[0]) if rows else rows}"
    return [float(r[column]) for r in rows]


def test_walkthrough_in_chromium(lab, driver, shots):
    url, ws = lab.url, lab.workspace
    page = LabPage(driver)
    interactive = ws / "runs" / "interactive" / "artifacts"

    # -- 00_preflight: run everything through the menu, wait for the checklist ----------------
    page.open(url)
    shots(driver, "00-opened")
    page.run_all()
    try:
        checklist = page.wait_for_output("table.checklist", PREFLIGHT_TIMEOUT_S)
        page.wait_idle(PREFLIGHT_TIMEOUT_S)
    finally:
        shots(driver, "00-ran")
    assert page.tracebacks() == []
    assert "vLLM installed" in checklist.text
    assert "spec server reachable" in checklist.text
    result = json.loads((interactive / "00_preflight.json").read_text())
    assert result["finding"].startswith("preflight:")
    assert result["finding"] in page.outputs_text()
    checklist.screenshot(str(shots(driver, "00-checklist")))

    # -- 20_memory: change a widget, re-run below the form, the table changes -----------------
    page.open(url.replace("00_preflight", "20_memory"))
    page.run_all()
    page.wait_idle(STEP_TIMEOUT_S)
    assert page.tracebacks() == []
    page.form()
    before = page.table("table.dataframe")
    before_result = json.loads((interactive / "20_memory.json").read_text())
    assert before_result["budget"]["context_length"] == 1024

    page.set_field("context_length", 512)
    page.wait_until(lambda: "context_length=512" in page.form_status(), 30, "the form to accept the edit")
    shots(driver, "20-edited")
    page.run_from(page.cell_index(FORM_CELL) + 1)
    page.wait_until(lambda: page.table_or_none("table.dataframe") not in (None, before), STEP_TIMEOUT_S,
                    "the table to change")
    page.wait_idle(STEP_TIMEOUT_S)
    shots(driver, "20-reran")
    assert page.tracebacks() == []

    after = page.table("table.dataframe")
    old, new = _floats(before, "concurrency_at_context"), _floats(after, "concurrency_at_context")
    assert len(old) == len(new) and any(o > 0 for o in old), (old, new)
    # Half the context per request: every configuration that fits holds more requests.
    assert all(n > o for o, n in zip(old, new, strict=True) if o > 0), (old, new)
    after_result = json.loads((interactive / "20_memory.json").read_text())
    assert after_result["budget"]["context_length"] == 512

    # -- the quick steps run top to bottom too, into the same run directory -------------------
    for step, written in (("10_drafts", interactive / "10_drafts.json"),
                          ("90_report", interactive.parent / "decision.json")):
        page.open(url.replace("00_preflight", step))
        page.run_all()
        page.wait_idle(STEP_TIMEOUT_S)
        shots(driver, f"{step}-ran")
        assert page.tracebacks() == [], step
        assert written.exists(), f"{step} did not write {written}"
        data, shown = json.loads(written.read_text()), page.outputs_text()
        # a step shows its finding; the report's first screen shows the verdict and its headline
        expected = [data["finding"]] if step != "90_report" else [data["verdict"], data["headline"]]
        assert all(e and e in shown for e in expected), (step, expected)

    # -- `playbook report` works on the interactive run directory ----------------------------
    out = subprocess.run([sys.executable, "-m", "playbook", "report", str(interactive.parent), "--json"],
                         capture_output=True, text=True, timeout=STEP_TIMEOUT_S * 2, cwd=ws)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["verdict"] and (interactive.parent / "report.html").exists()
