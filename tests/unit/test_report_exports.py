"""Exports beside report.html: report.pdf (WeasyPrint, when installed) and the executed step notebooks as HTML."""

import sys

import nbformat
from pypdf import PdfReader

from playbook.helpers.artifacts import RunDir
from playbook.report import NOTEBOOKS_HTML, build_html


def _run(tmp_path) -> RunDir:
    run = RunDir(tmp_path / "run")
    step = nbformat.v4.new_notebook()
    step.cells = [nbformat.v4.new_markdown_cell("# 00 · Preflight"),
                  nbformat.v4.new_code_cell("print('checks')", outputs=[nbformat.v4.new_output("stream", text="all 3 checks ok\n")])]
    nbformat.write(step, run.notebooks / "00_preflight.ipynb")
    report = nbformat.v4.new_notebook()
    report.cells = [nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output(
        "display_data", data={"text/html": "<h2>Verdict: GO</h2>" + "<p>evidence</p>" * 50, "text/plain": "x"})])]
    nbformat.write(report, run.notebooks / "90_report.ipynb")
    return run


def test_pdf_and_step_notebooks_written(tmp_path):
    run = _run(tmp_path)
    build_html(run)
    pdf = PdfReader(run.path / "report.pdf", strict=True)  # opens in a PDF reader, every page parses
    text = " ".join(page.extract_text() for page in pdf.pages)
    assert "Verdict: GO" in text and text.count("evidence") == 50
    page = (run.path / NOTEBOOKS_HTML / "00_preflight.html").read_text()
    assert "all 3 checks ok" in page and 'class="highlight' in page  # executed, and the code that ran is shown
    assert not (run.path / NOTEBOOKS_HTML / "90_report.html").exists()  # that one is report.html


def test_without_weasyprint_the_report_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # import fails as if the extra were not installed
    run = _run(tmp_path)
    assert build_html(run).exists()
    assert not (run.path / "report.pdf").exists()
    assert "report.pdf not written: WeasyPrint is not installed" in capsys.readouterr().err
