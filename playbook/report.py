"""Turn the executed report notebook into report.html (input cells hidden). The only nbconvert user.

The HTML is self-contained: JupyterLab's stock template loads require.js, MathJax, Mermaid and the
widget manager from CDNs, which an air-gapped GPU node cannot reach; the template here drops those
scripts (the report uses none of them), and images are embedded, so the page renders offline.
"""

from __future__ import annotations

from pathlib import Path

from playbook.helpers.artifacts import RunDir
from playbook.helpers.errors import ArtifactError

REPORT_NOTEBOOK = "90_report.ipynb"
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
    return out
