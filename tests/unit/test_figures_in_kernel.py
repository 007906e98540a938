"""Figures reach Jupyter as images: a notebook cell ending in a helpers figure yields image/png.

(A helper that forces a non-inline backend makes JupyterLab and the report show "<Figure size ...>".)
"""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient

CELL = """
from playbook.helpers import measure_plots, plots
from playbook.helpers.schemas.load import LevelStats
fig = plots.acceptance_by_temperature([{"temperature": 0.0, "acceptance_rate": 0.7},
                                       {"temperature": 0.8, "acceptance_rate": 0.5}])
fig
"""


def test_a_helpers_figure_displays_as_png_in_a_kernel():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    kinds = [k for o in outputs for k in o.get("data", {})]
    assert "image/png" in kinds, outputs
