"""Managed mode launches vLLM only on an existing local directory or on an allowed hub id (issue 16.5)."""

from __future__ import annotations

import subprocess

import pytest

from playbook.helpers import endpoints
from playbook.helpers.errors import ModelError
from playbook.helpers.params import SweepParams
from playbook.helpers.server import hub_allowed, prepare


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PLAYBOOK_ALLOW_HUB", raising=False)
    for name in ("target", "draft"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    return tmp_path


def managed(**kw) -> SweepParams:
    values = dict(mode="managed", target_model="target", draft_model="draft", method="draft_model")
    return SweepParams(**{**values, **kw})


@pytest.fixture
def no_launch(monkeypatch):
    """Fault injection: fail the test if anything tries to start a process."""
    def refuse(*a, **k):
        raise AssertionError(f"a process was started: {a[0] if a else k}")
    monkeypatch.setattr(subprocess, "Popen", refuse)


def test_hub_ids_are_refused_by_default(model_dir):
    config = endpoints.server_config(managed(target_model="meta-llama/Llama-3.1-8B-Instruct"), "baseline")
    assert config.allow_hub_model is False
    with pytest.raises(ModelError) as err:
        prepare(config)
    assert "meta-llama/Llama-3.1-8B-Instruct" in err.value.problem
    assert "allow_hub_models: true" in err.value.fix and "PLAYBOOK_ALLOW_HUB=1" in err.value.fix


@pytest.mark.parametrize("how", ["parameter", "environment"])
def test_hub_ids_pass_when_allowed(model_dir, monkeypatch, how):
    if how == "environment":
        monkeypatch.setenv("PLAYBOOK_ALLOW_HUB", "1")
    p = managed(target_model="meta-llama/Llama-3.1-8B-Instruct", allow_hub_models=how == "parameter")
    config = endpoints.server_config(p, "baseline")
    assert config.allow_hub_model is True
    _, argv, _ = prepare(config)
    assert argv[argv.index("--model") + 1] == "meta-llama/Llama-3.1-8B-Instruct"


def test_env_values_that_do_not_allow(monkeypatch):
    for value in ("", "0", "no"):
        monkeypatch.setenv("PLAYBOOK_ALLOW_HUB", value)
        assert not hub_allowed(False)
    assert hub_allowed(True)


@pytest.mark.parametrize("typo, role", [("./targte", "target_model"), ("target/sub", "target_model"),
                                        ("../draft", "draft_model"), ("drafts/model", "draft_model")])
def test_path_typos_fail_before_any_server_starts(model_dir, no_launch, typo, role):
    """A relative path typo is named with the fix, and no process is started; 'target/sub' has an existing
    first part, so it is a path even when hub ids are allowed."""
    with pytest.raises(ModelError) as err:
        with endpoints.endpoint(managed(**{role: typo}), model_dir / "run", "spec"):
            pass
    assert typo in err.value.problem and "fix the path" in err.value.fix
    if typo == "target/sub":
        with pytest.raises(ModelError, match="target/sub"):
            with endpoints.endpoint(managed(**{role: typo}, allow_hub_models=True), model_dir / "run", "spec"):
                pass


def test_existing_directory_without_config_is_named(model_dir):
    (model_dir / "empty").mkdir()
    with pytest.raises(ModelError, match="empty has no config.json"):
        prepare(endpoints.server_config(managed(target_model="empty"), "baseline"))


def test_relative_model_paths_are_made_absolute(tmp_path):
    from playbook.helpers.server import absolute_model_path

    (tmp_path / "models" / "t").mkdir(parents=True)
    assert absolute_model_path("models/t", base=tmp_path) == str(tmp_path / "models" / "t")
    assert absolute_model_path("./typo", base=tmp_path) == str(tmp_path / "typo")  # written as a path
    for kept in ("meta-llama/Llama-3.1-8B-Instruct", "Llama-3.1-8B", "embedded", "", "/abs/dir"):
        assert absolute_model_path(kept, base=tmp_path) == kept


def test_playbook_run_names_the_typo_and_the_fix_before_any_server(tmp_path, monkeypatch):
    """A whole `playbook run`: the typo (a path that does not exist) is refused with the parameters, naming the path,
    where it was read from and the fix, before any run directory or server exists (QA5: it used to fail in preflight,
    after the run directory was made)."""
    from playbook.helpers.errors import ParameterError
    from playbook.runner import run_playbook

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PLAYBOOK_ALLOW_HUB", raising=False)
    (tmp_path / "models" / "target").mkdir(parents=True)
    (tmp_path / "models" / "target" / "config.json").write_text("{}")
    (tmp_path / "p.yaml").write_text("mode: managed\ntarget_model: ./models/targte\ndraft_model: ''\nmethod: ngram\n"
                                     "gpu: cpu\n")
    with pytest.raises(ParameterError) as exc:
        run_playbook(profile=str(tmp_path / "p.yaml"), only=["00"], runs_dir=str(tmp_path / "runs"))
    assert f"target_model './models/targte' does not exist: no file or directory at {tmp_path}/models/targte" \
        in exc.value.problem
    assert f"the directory of profile {tmp_path / 'p.yaml'}" in exc.value.problem
    assert exc.value.fix.startswith("fix the path")
    assert not (tmp_path / "runs").exists()
