"""The notebooks as committed: thin, parameterised, in sync with their pydantic models, no outputs.

The notebooks are the source (edit them directly); only the parameters cell is written by a tool,
scripts/sync_params_cells.py, from the step's model.
"""

import json
import shutil

import papermill
import pytest

from playbook.helpers.params import STEP_MODELS, StepParams
from playbook.resources import step_notebooks
from scripts.sync_params_cells import OWN_HEADER, SHARED_HEADER, params_source, sync

NOTEBOOKS = step_notebooks()
MAX_CELL_LINES = 12  # a code cell calls a step or shows its result; the logic lives in helpers/steps.py


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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_lists_the_steps_own_parameters_before_the_shared_ones(path):
    nb = json.loads(path.read_text())
    lines = "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"]).splitlines()
    shared = lines.index(SHARED_HEADER)
    names = [line.split(":")[0] for line in lines if line and not line.startswith("#")]
    own = set(STEP_MODELS[path.stem].model_fields) - set(StepParams.model_fields)
    assert set(names[:len(own)]) == own and set(names[len(own):]) == set(StepParams.model_fields)
    assert (lines[0] == OWN_HEADER) == bool(own) and shared == (len(own) + 2 if own else 0)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_cells_are_short_and_call_the_step_layer(path):
    nb = json.loads(path.read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"][1:]  # after the parameters
    long = [src.splitlines()[0] for src in code if len(src.splitlines()) > MAX_CELL_LINES]
    assert not long, f"cells longer than {MAX_CELL_LINES} lines (move the logic to helpers/steps.py): {long}"
    assert f"p = {STEP_MODELS[path.stem].__name__}.from_namespace(globals())" in code[0]
    assert any("ui.show_form(p)" in src for src in code), "keep the optional form cell"
    assert any("steps." in src for src in code), "the step runs through helpers/steps.py"
    assert not any("not wired yet" in src for src in code)


def test_sync_tool_rewrites_a_stale_parameters_cell(tmp_path):
    path = tmp_path / "20_memory.ipynb"
    shutil.copy(next(p for p in NOTEBOOKS if p.stem == "20_memory"), path)
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    cell["source"] = ["context_length: int = 7  # stale\n"]
    path.write_text(json.dumps(nb))
    assert sync(path) is True
    cell = next(c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    assert "".join(cell["source"]) == params_source(STEP_MODELS["20_memory"])
    assert sync(path) is False  # idempotent
