"""QA round 4, problem 7: `init --force` / `lab --force` keep a notebook the user edited or executed as
<name>.ipynb.bak-<time> and say so; a run directory (it holds run.json) is refused by both, with or without
--force. Problem 18: `playbook params` takes a step name in any case."""

from __future__ import annotations

import contextlib
import json
import types

import pytest

from playbook.cli import main
from playbook.commands import lab
from playbook.resources import notebook_for, notebooks_dir


def _workspace(tmp_path, capsys):
    ws = tmp_path / "ws"
    assert main(["init", str(ws)]) == 0
    capsys.readouterr()
    return ws


def _add_note(notebook, text="MY NOTES: measured 3x on node A"):
    nb = json.loads(notebook.read_text())
    nb["cells"].append({"cell_type": "markdown", "id": "my-notes", "metadata": {}, "source": [text]})
    notebook.write_text(json.dumps(nb))


def _execute(notebook):
    """As papermill leaves it: outputs and an execution count on the code cells."""
    nb = json.loads(notebook.read_text())
    for n, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        cell["execution_count"] = n + 1
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": [f"measured {n}\n"]}]
    notebook.write_text(json.dumps(nb, indent=1))


def _run_dir(tmp_path):
    run = tmp_path / "runs" / "20261206-140041"
    (run / "notebooks").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"run_id": "20261206-140041", "steps": []}))
    executed = run / "notebooks" / "50_load.ipynb"
    executed.write_text((notebooks_dir() / "50_load.ipynb").read_text())
    _execute(executed)
    return run, executed.read_bytes()


def test_init_force_keeps_an_edited_and_an_executed_notebook_and_says_how_many(tmp_path, capsys):
    ws = _workspace(tmp_path, capsys)
    memory, load = ws / "notebooks/20_memory.ipynb", ws / "notebooks/50_load.ipynb"
    _add_note(memory)
    _execute(load)
    executed = load.read_text()
    assert main(["init", str(ws)]) == 1
    assert "notebook you edited or ran is kept beside it as <name>.ipynb.bak-<time>" in capsys.readouterr().err
    assert main(["init", str(ws), "--force"]) == 0
    out = capsys.readouterr().out
    (memory_bak,) = (ws / "notebooks").glob("20_memory.ipynb.bak-*")
    (load_bak,) = (ws / "notebooks").glob("50_load.ipynb.bak-*")
    assert "MY NOTES: measured 3x on node A" in memory_bak.read_text()
    assert load_bak.read_text() == executed  # outputs and all
    assert memory.read_bytes() == (notebooks_dir() / memory.name).read_bytes()  # the shipped ones again
    assert load.read_bytes() == (notebooks_dir() / load.name).read_bytes()
    assert f"2 notebooks you had edited or run kept beside them in {ws / 'notebooks'}" in out
    assert str(memory_bak) in out and str(load_bak) in out
    assert len(list((ws / "notebooks").glob("*.bak-*"))) == 2  # unchanged notebooks are not backed up
    assert main(["init", str(ws), "--force"]) == 0  # nothing changed since: no new backup
    assert "no notebook had been edited or run" in capsys.readouterr().out
    assert len(list((ws / "notebooks").glob("*.bak-*"))) == 2


def test_a_damaged_notebook_is_kept_too(tmp_path, capsys):
    ws = _workspace(tmp_path, capsys)
    (ws / "notebooks/40_sweep.ipynb").write_text("{ not json")
    assert main(["init", str(ws), "--force"]) == 0
    (bak,) = (ws / "notebooks").glob("40_sweep.ipynb.bak-*")
    assert bak.read_text() == "{ not json" and "1 notebook you had edited or run kept beside it" in capsys.readouterr().out


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_init_refuses_a_run_directory_and_leaves_it_as_it_was(tmp_path, capsys, force):
    run, executed = _run_dir(tmp_path)
    assert main(["init", str(run), *force]) == 1
    err = capsys.readouterr().err
    assert f"{run} is a run directory, not a workspace" in err and f"playbook report {run}" in err
    assert (run / "notebooks/50_load.ipynb").read_bytes() == executed
    assert sorted(p.name for p in run.iterdir()) == ["notebooks", "run.json"]  # no environments/ or runs/ inside it
    assert sorted(p.name for p in (run / "notebooks").iterdir()) == ["50_load.ipynb"]


@pytest.fixture
def lab_without_jupyterlab(monkeypatch):
    """`playbook lab` up to the workspace: no JupyterLab started, no server pool."""
    served = []
    monkeypatch.setattr(lab, "require_jupyterlab", lambda: None)
    monkeypatch.setattr(lab, "run_pool", lambda *a, **k: contextlib.nullcontext(types.SimpleNamespace(address=None)))
    monkeypatch.setattr(lab, "_serve", lambda cmd, ws, *a: served.append(ws) or 0)
    return served


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_lab_refuses_a_run_directory(tmp_path, capsys, lab_without_jupyterlab, force):
    run, executed = _run_dir(tmp_path)
    assert main(["lab", str(run), "--no-browser", *force]) == 1
    err = capsys.readouterr().err
    assert f"{run} is a run directory, not a workspace" in err and "`playbook lab` another directory" in err
    assert not lab_without_jupyterlab  # JupyterLab was not started on it
    assert (run / "notebooks/50_load.ipynb").read_bytes() == executed
    assert sorted(p.name for p in run.iterdir()) == ["notebooks", "run.json"]


def test_lab_force_keeps_an_executed_notebook_but_not_its_own_injected_values(tmp_path, capsys, lab_without_jupyterlab):
    ws = tmp_path / "ws"
    assert main(["lab", str(ws), "--no-browser", "--profile", "lab"]) == 0
    assert main(["lab", str(ws), "--no-browser", "--profile", "embedded-cpu", "--force"]) == 0
    assert "nothing to keep" in capsys.readouterr().err  # lab's injected-parameters cells are not the user's edits
    assert not list((ws / "notebooks").glob("*.bak-*"))
    memory = ws / "notebooks/20_memory.ipynb"
    _execute(memory)
    executed = memory.read_text()
    assert main(["lab", str(ws), "--no-browser", "--force"]) == 0
    err = capsys.readouterr().err
    (bak,) = (ws / "notebooks").glob("*.bak-*")
    assert bak.name.startswith("20_memory.ipynb.bak-") and bak.read_text() == executed
    assert f"1 notebook you had edited or run kept beside it in {ws / 'notebooks'}" in err and str(bak) in err
    assert lab_without_jupyterlab == [ws, ws, ws]


@pytest.mark.parametrize("name", ["20_MEMORY", "20_memory", "20", "memory", "Memory", "20_Memory.IPYNB", " 20_memory "])
def test_params_takes_a_step_name_in_any_case(name, capsys):
    assert notebook_for(name).stem == "20_memory"
    assert main(["params", name]) == 0
    assert capsys.readouterr().out.startswith("Parameters of 20_memory.ipynb:")


def test_an_unknown_step_still_lists_the_steps(capsys):
    assert main(["params", "21_MEMORY"]) == 1
    err = capsys.readouterr().err
    assert "unknown step '21_MEMORY'" in err and "20_memory" in err
