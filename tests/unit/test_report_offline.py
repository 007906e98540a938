"""report.html must render on an air-gapped node: no script, style, image or frame from the network."""

import base64
import re

import nbformat

from playbook.helpers.artifacts import RunDir
from playbook.report import build_html

_NETWORK_REF = re.compile(r"<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", re.I)
_CSS_IMPORT = re.compile(r"(?:@import|url\()\s*[\"']?(?:https?:)?//", re.I)
_PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100ffff03000006000557bfabd40000000049454e44ae426082")).decode()


def _executed_report(run: RunDir) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2,
                                                                             "version_minor": 0}}
    out_html = nbformat.v4.new_output("display_data", data={"text/html": "<b>NO-GO</b>", "text/plain": "x"})
    out_png = nbformat.v4.new_output("display_data", data={"image/png": _PNG, "text/plain": "<Figure>"})
    nb.cells = [nbformat.v4.new_markdown_cell("# 90 · Report with $x^2$ maths"),
                nbformat.v4.new_code_cell("display(x)", outputs=[out_html, out_png])]
    nbformat.write(nb, run.notebooks / "90_report.ipynb")


def test_report_html_has_no_network_resource(tmp_path):
    run = RunDir(tmp_path / "run")
    _executed_report(run)
    html = build_html(run).read_text()
    assert "<b>NO-GO</b>" in html and "data:image/png;base64," in html  # the content is there, images inline
    assert not _NETWORK_REF.findall(html), _NETWORK_REF.findall(html)[:3]
    assert not _CSS_IMPORT.findall(html)
    assert "cdnjs" not in html and "unpkg" not in html
