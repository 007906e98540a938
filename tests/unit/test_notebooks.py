"""The notebooks as committed: thin, parameterised, in sync with their pydantic models, no outputs."""

import json

import papermill
import pytest

from playbook.helpers.params import STEP_MODELS
from playbook.resources import step_notebooks
from scripts.sync_params_cells import params_source

NOTEBOOKS = step_notebooks()


def test_every_step_has_a_model_and_a_notebook():
    assert [p.stem for p in NOTEBOOKS][0] == "00_preflight"
    assert [p.stem for p in NOTEBOOKS][-1] == "90_report"
    for nb in NOTEBOOKS:
        assert nb.stem in STEP_MODELS, f"{nb.name} has no parameter model in helpers/params.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs_and_first_code_cell_is_parameters(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"].get("tags", [])
    assert not any(c.get("outputs") for c in code), "strip outputs before committing"
    assert not any(c.get("execution_count") for c in code)
    assert nb["cells"][0]["cell_type"] == "markdown", "each notebook opens with its guide"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_matches_its_model(path):
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    source = "".join(cell["source"])
    assert source == params_source(STEP_MODELS[path.stem]), "run: python -m scripts.sync_params_cells"
    inspected = papermill.inspect_notebook(str(path))
    assert set(inspected) == set(STEP_MODELS[path.stem].model_fields)
    assert all(p["help"] for p in inspected.values()), "every parameter needs a # help comment"
