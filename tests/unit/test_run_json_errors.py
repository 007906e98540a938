"""A damaged run.json is named precisely (the field path and what it should hold, or the line and column of a
syntax error), and the fix keeps the run: the measurements are not in run.json (qa3 P13, qa2 C47)."""

import json

import pytest

from playbook import cli
from playbook.helpers.artifacts import RunDir
from playbook.helpers.errors import ArtifactError
from playbook.helpers.schemas.run import RunState, StepState
from playbook.runner import load_state


def _run(tmp_path) -> RunDir:
    run = RunDir(tmp_path / "run")
    state = RunState(run_id="r1", created_at="2026-12-06T12:00:00+00:00", profile="smoke", parameters={"seed": 1},
                     steps=[StepState(name=n, status="done") for n in ("00_preflight", "10_drafts", "20_memory")])
    (run.path / "run.json").write_text(state.model_dump_json(indent=2))
    return run


def _damage(run: RunDir, edit) -> None:
    state = json.loads((run.path / "run.json").read_text())
    edit(state)
    (run.path / "run.json").write_text(json.dumps(state, indent=2))


@pytest.mark.parametrize("edit, said", [
    (lambda s: s.update(steps={x["name"]: x for x in s["steps"]}), "steps = {"),
    (lambda s: s["steps"][2].update(status=123), "steps[2].status = 123: should be 'pending', 'running', 'done'"),
    (lambda s: s.update(parameters=None), "parameters = null: should be a JSON object"),
    (lambda s: s.pop("run_id"), "run_id is missing"),
])
def test_a_wrong_type_names_the_field_and_what_it_should_be(tmp_path, edit, said):
    run = _run(tmp_path)
    _damage(run, edit)
    with pytest.raises(ArtifactError) as err:
        load_state(run)
    assert "1 wrong field" in err.value.problem and said in err.value.problem
    assert "validation error for RunState" not in str(err.value)


def test_steps_given_as_a_mapping_says_a_list_is_expected(tmp_path):
    run = _run(tmp_path)
    _damage(run, lambda s: s.update(steps={x["name"]: x for x in s["steps"]}))
    with pytest.raises(ArtifactError, match=r"should be a JSON list \[\.\.\.\]"):
        load_state(run)


@pytest.mark.parametrize("text, said", [
    ('{\n  "run_id": "r1",\n  garbage\n}', "is not valid JSON at line 3, column 3"),
    ("{garbage", "is not valid JSON at line 1, column 2"),
    ("", "is empty"),
    ("[]", "the top level = []: should be a JSON object"),
])
def test_broken_json_names_the_line_and_column(tmp_path, text, said):
    run = _run(tmp_path)
    (run.path / "run.json").write_text(text)
    with pytest.raises(ArtifactError) as err:
        load_state(run)
    assert said in err.value.problem


def test_the_fix_keeps_the_measurements(tmp_path):
    run = _run(tmp_path)
    _damage(run, lambda s: s.update(parameters=None))
    with pytest.raises(ArtifactError) as err:
        load_state(run)
    fix = err.value.fix
    assert "untouched" in fix and f"playbook report {run.path}" in fix and "move it aside" in fix
    assert "start a new run" not in fix and "backup" not in fix


def test_playbook_report_on_a_damaged_run_json_is_one_error_line(tmp_path, capsys):
    run = _run(tmp_path)
    _damage(run, lambda s: s["steps"][1].update(status=123))
    assert cli.main(["report", str(run.path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "steps[1].status = 123" in err and "re-decides from them" in err


def test_an_intact_run_json_still_loads(tmp_path):
    assert [s.name for s in load_state(_run(tmp_path)).steps] == ["00_preflight", "10_drafts", "20_memory"]
