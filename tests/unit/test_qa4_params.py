"""Notebook parameters as papermill and JupyterLab give them (QA round 4): the memory share follows the mode,
and a misspelt name is refused instead of silently unused."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from playbook.helpers.errors import ParameterError
from playbook.helpers.params import STEP_MODELS, MemoryParams, misspelt_names, validate_params

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _cell_globals(model) -> dict:
    """A notebook's globals after its parameters cell: every parameter at its default, as the cell writes it."""
    return {name: f.default for name, f in model.model_fields.items() if f.default is not None or name in (
        "gpu_memory_utilization",)} | {"In": [], "get_ipython": print}


@pytest.mark.parametrize("mode, share", [("embedded", 0.3), ("managed", 0.9), ("external", 0.9)])
def test_the_memory_share_follows_the_mode_in_a_notebook_too(mode, share):
    """papermill -p mode managed used to budget (and start) a GPU at the embedded engine's 0.3."""
    ns = _cell_globals(MemoryParams) | {"mode": mode}
    if mode != "embedded":
        ns |= {"target_model": "Llama-3.1-8B", "draft_model": "Llama-3.2-1B", "gpu": "H100-SXM"}
    if mode == "external":
        ns |= {"baseline_url": "http://127.0.0.1:1", "spec_url": "http://127.0.0.1:2"}
    assert MemoryParams.from_namespace(ns).gpu_memory_utilization == share
    assert MemoryParams.from_namespace(ns | {"gpu_memory_utilization": 0.5}).gpu_memory_utilization == 0.5


def test_a_run_recorded_before_the_mode_defaults_resumes_at_its_share():
    from playbook.helpers.params import as_recorded

    assert as_recorded({"mode": "managed"})["gpu_memory_utilization"] == 0.3
    assert as_recorded({"mode": "managed", "gpu_memory_utilization": 0.8})["gpu_memory_utilization"] == 0.8


def test_a_misspelt_parameter_from_papermill_is_refused_with_the_name_it_meant():
    ns = _cell_globals(MemoryParams) | {"num_gpu": 2, "tensor_paralel_size": 2}
    with pytest.raises(ParameterError) as err:
        MemoryParams.from_namespace(ns)
    assert "'num_gpu' (did you mean num_gpus" in err.value.problem
    assert "'tensor_paralel_size' (did you mean tensor_parallel_size" in err.value.problem


def test_names_that_are_not_parameters_or_not_plain_data_pass():
    import pandas as pd

    ns = {"pd": pd, "p": validate_params(MemoryParams, {}), "x": 5, "_num_gpu": 1, "num_gpu": print}
    assert misspelt_names(ns) == []


def _assigned_names(nb: Path) -> set[str]:
    names: set[str] = set()
    for cell in json.loads(nb.read_text())["cells"]:
        if cell["cell_type"] != "code" or "parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        source = "".join(cell["source"])
        try:
            tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
    return names


@pytest.mark.parametrize("nb", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_no_name_a_notebook_assigns_reads_as_a_misspelt_parameter(nb):
    """Re-running a notebook's validation cell in JupyterLab after its later cells must not trip the check."""
    names = _assigned_names(nb)
    assert names, nb
    assert misspelt_names(dict.fromkeys(names, 0)) == []


def test_every_step_model_takes_its_own_notebooks_defaults():
    for model in STEP_MODELS.values():
        model.from_namespace(_cell_globals(model))


def test_an_eagle_head_of_another_target_is_refused_with_the_parameters():
    with pytest.raises(ParameterError, match="drafts from hidden size 8192; Llama-3.1-8B has 4096"):
        validate_params(MemoryParams, {"mode": "managed", "target_model": "Llama-3.1-8B",
                                       "draft_model": "EAGLE-Llama-3-70B", "method": "eagle", "gpu": "H100-SXM"})


def test_a_profile_key_without_a_value_is_named_as_such():
    with pytest.raises(ParameterError, match="'gpu' = None: has no value .*'gpu:' with nothing after it"):
        validate_params(MemoryParams, {"gpu": None})


def test_run_json_error_is_json_on_stdout_too(capsys, tmp_path):
    from playbook.cli import main

    assert main(["run", "--json", "--only", "20", "--runs-dir", str(tmp_path), "-p", "num_gpus=two"]) == 1
    out = capsys.readouterr()
    error = json.loads(out.out)["error"]
    assert "num_gpus" in error["problem"] and error["fix"] and out.err.startswith("error:")


def test_a_bad_value_run_json_recorded_is_named_as_run_jsons(tmp_path, monkeypatch, capsys):
    from playbook import runner
    from playbook.cli import main

    monkeypatch.setattr(runner, "_execute", lambda *a, **k: ([], []))  # no notebook: only what run.json records
    monkeypatch.setattr(runner, "build_html", lambda run: None, raising=False)
    out = runner.run_playbook(only=["20"], runs_dir=str(tmp_path / "runs"))
    state = Path(out.run_dir) / "run.json"
    data = json.loads(state.read_text())
    data["parameters"]["production_temperature"] = float("nan")
    data["parameters"]["future_knob"] = 1
    state.write_text(json.dumps(data))
    assert main(["report", out.run_dir]) == 1
    err = capsys.readouterr().err
    assert f"a value recorded in {state}" in err and "correct it in run.json" in err
    with pytest.raises(ParameterError, match=f"values recorded in {state}"):
        runner.run_playbook(resume=out.run_dir)
