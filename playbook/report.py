"""Turn the executed report notebook into report.html (input cells hidden). The only nbconvert user."""

from __future__ import annotations

from pathlib import Path

from playbook.helpers.artifacts import RunDir
from playbook.helpers.errors import ArtifactError

REPORT_NOTEBOOK = "90_report.ipynb"


def build_html(run: RunDir) -> Path:
    """Render run/notebooks/90_report.ipynb to run/report.html with code hidden, images embedded."""
    import nbformat
    from nbconvert import HTMLExporter

    src = run.notebooks / REPORT_NOTEBOOK
    if not src.exists():
        raise ArtifactError(f"{src} does not exist: the report step has not run", f"run `playbook report {run.path}`")
    nb = nbformat.read(src, as_version=4)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": f"Speculative decoding report {run.path.name}"}})
    out = run.path / "report.html"
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(body)
    tmp.replace(out)
    return out
