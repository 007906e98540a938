"""Write a notebook from a list of cells, the way this project commits them (no outputs).

Usage from Python::

    from scripts.nbwrite import write_notebook
    write_notebook("notebooks/40_sweep.ipynb", [
        ("md", "# Temperature sweep ..."),
        ("params", "temperatures = [0.0, 0.4]  # temperatures to sweep"),
        ("code", "p = SweepParams.from_namespace(globals())"),
    ])

The first code cell must be ("params", ...): it is tagged `parameters` for papermill.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat


def write_notebook(path: str | Path, cells: list[tuple[str, str]]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    out = []
    for kind, src in cells:
        src = src.strip("\n")
        if kind == "md":
            out.append(nbformat.v4.new_markdown_cell(src))
        elif kind == "params":
            c = nbformat.v4.new_code_cell(src)
            c.metadata["tags"] = ["parameters"]
            out.append(c)
        elif kind == "code":
            out.append(nbformat.v4.new_code_cell(src))
        else:
            raise ValueError(f"unknown cell kind {kind!r}")
    first_code = next(c for c in out if c.cell_type == "code")
    if "parameters" not in first_code.metadata.get("tags", []):
        raise ValueError("the first code cell must be the parameters cell")
    for i, c in enumerate(out):
        c["id"] = f"{Path(path).stem.replace('_', '-')}-{i:02d}"
    nb.cells = out
    path = Path(path)
    nbformat.validate(nb)
    path.write_text(nbformat.writes(nb) + "\n")
    return path


if __name__ == "__main__":
    sys.exit("import write_notebook from this module")
