"""Turn the executed report notebook into report.html (input cells hidden), then the exports beside
it: report.pdf (WeasyPrint, when installed: the ``pdf`` extra) and the executed step notebooks as
HTML under notebooks-html/. The only nbconvert user.

The HTML is self-contained: JupyterLab's stock template loads require.js, MathJax, Mermaid and the
widget manager from CDNs, which an air-gapped GPU node cannot reach; the template here drops those
scripts (the report uses none of them), and images are embedded, so the page renders offline.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from playbook.helpers.artifacts import RunDir
from playbook.helpers.errors import ArtifactError

REPORT_NOTEBOOK = "90_report.ipynb"
NOTEBOOKS_HTML = "notebooks-html"
# Printed pages: landscape for the wide tables; figures and table rows not split across pages. The first
# screen is one unbreakable table: its text column gets the width so that it fits page 1 under the title.
_PRINT_CSS = """@page { size: A4 landscape; margin: 12mm }
body { font-size: 10px } img { max-width: 100%; page-break-inside: avoid } tr { page-break-inside: avoid }
pre { white-space: pre-wrap; word-break: break-all } h1 { font-size: 20px }
.pb-first { display: table !important; width: 100%; font-size: 10px } .pb-first .pb-number { padding: 4px !important }
.pb-first > div { display: table-cell !important; vertical-align: top; width: 58% } .pb-first > .pb-chart { width: 42% }
.jp-Cell, .jp-Cell-outputWrapper, .jp-OutputArea, .jp-OutputArea-child, .jp-OutputArea-output
  { break-inside: auto !important; page-break-inside: auto !important }"""
_OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def offline_exporter():
    """nbconvert's lab HTML exporter without any network resource, input cells hidden."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab", template_file="offline.html.j2",
                        extra_loaders=[DictLoader({"offline.html.j2": _OFFLINE_TEMPLATE})],
                        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)


def build_html(run: RunDir) -> Path:
    """Render run/notebooks/90_report.ipynb to run/report.html with code hidden, images embedded."""
    import nbformat

    src = run.notebooks / REPORT_NOTEBOOK
    if not src.exists():
        raise ArtifactError(f"{src} does not exist: the report step has not run", f"run `playbook report {run.path}`")
    nb = nbformat.read(src, as_version=4)
    body, _ = offline_exporter().from_notebook_node(nb, resources={"metadata": {"name": f"Speculative decoding report {run.path.name}"}})
    out = run.path / "report.html"
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(body)
    tmp.replace(out)
    for export in (build_pdf, build_notebooks_html):
        try:
            export(run)
        except Exception as exc:  # noqa: BLE001 - an export never costs the report; say why it is missing
            print(f"{export.__name__}: not written ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                  file=sys.stderr)
    return out


def build_pdf(run: RunDir) -> Path | None:
    """run/report.pdf from report.html with WeasyPrint (no browser); None, and a line saying so, without it."""
    try:
        import weasyprint
    except ImportError:  # the optional `pdf` extra
        print("report.pdf not written: WeasyPrint is not installed (pip install 'specdecode-playbook[pdf]')",
              file=sys.stderr)
        return None
    logging.getLogger("weasyprint").setLevel(logging.ERROR)  # the lab template's CSS has much it ignores
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    src = run.path / "report.html"
    out = run.path / "report.pdf"
    tmp = out.with_suffix(".pdf.tmp")
    weasyprint.HTML(filename=str(src), base_url=str(run.path)).write_pdf(
        str(tmp), stylesheets=[weasyprint.CSS(string=_PRINT_CSS)])
    tmp.replace(out)
    return out


def build_notebooks_html(run: RunDir) -> list[Path]:
    """Each executed step notebook (code shown: it is the record of what ran) as run/notebooks-html/<step>.html."""
    import nbformat

    outdir = run.path / NOTEBOOKS_HTML
    written = []
    for src in sorted(run.notebooks.glob("[0-9]*.ipynb")):
        if src.name == REPORT_NOTEBOOK:
            continue  # report.html is that one
        nb = nbformat.read(src, as_version=4)
        exporter = offline_exporter()
        exporter.exclude_input = False
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": src.stem}})
        outdir.mkdir(exist_ok=True)
        path = outdir / f"{src.stem}.html"
        path.write_text(body)
        written.append(path)
    return written
