"""helpers/ui.py (forms, live load view) and `playbook lab` without starting JupyterLab."""

from __future__ import annotations

import sys

import nbformat
import pytest

from playbook import cli
from playbook.commands import lab
from playbook.helpers import ui
from playbook.helpers.errors import ArtifactError, ParameterError
from playbook.helpers.params import LoadParams, MemoryParams, PreflightParams, SweepParams
from playbook.helpers.schemas.load import LevelStats, Percentiles


@pytest.fixture(autouse=True)
def _headless(monkeypatch):
    monkeypatch.delenv(ui.ENV_VAR, raising=False)


# -- show_form is a no-op headless ----------------------------------------------------------------
def test_show_form_headless_returns_none_and_never_imports_ipywidgets(monkeypatch):
    monkeypatch.delitem(sys.modules, "ipywidgets", raising=False)
    assert ui.show_form(PreflightParams()) is None
    assert ui.build_form(MemoryParams()) is None
    assert "ipywidgets" not in sys.modules


def test_interactive_without_ipywidgets_warns_and_returns_none(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # as if the extra were not installed
    with pytest.warns(UserWarning, match=r"specdecode-playbook\[interactive\]"):
        assert ui.show_form(PreflightParams(interactive=True)) is None


@pytest.mark.parametrize("value, on", [("1", True), ("true", True), ("YES", True), ("0", False), ("", False)])
def test_environment_variable_turns_forms_on(monkeypatch, value, on):
    monkeypatch.setenv(ui.ENV_VAR, value)
    assert ui.interactive_enabled(PreflightParams()) is on


# -- the form ----------------------------------------------------------------------------------
def test_widget_kinds_follow_the_model():
    form = ui.build_form(MemoryParams(interactive=True))
    kinds = {name: type(w).__name__ for name, w in form.widgets.items()}
    assert kinds["target_quant"] == "Dropdown"            # Literal
    assert kinds["num_speculative_tokens"] == "IntSlider"  # int with ge and le
    assert kinds["gpu_memory_utilization"] == "FloatSlider"
    assert kinds["context_length"] == "BoundedIntText"     # int with a lower bound only
    assert kinds["reserve_gib"] == "FloatText"             # unbounded float
    assert kinds["target_model"] == "Combobox"
    assert kinds["gpu"] == "Dropdown"
    assert "run_dir" not in kinds and "interactive" not in kinds
    assert "Llama-3.1-70B" in form.widgets["target_model"].options
    assert "H100-SXM" in [v for _, v in form.widgets["gpu"].options]
    assert type(ui.build_form(SweepParams(interactive=True)).widgets["temperatures"]).__name__ == "Text"
    assert type(ui.build_form(LoadParams(interactive=True)).widgets["find_saturation"]).__name__ == "Checkbox"


def test_edit_goes_into_the_same_params_object():
    p = MemoryParams(interactive=True)
    form = ui.build_form(p)
    form.widgets["context_length"].value = 512  # what a user's edit does
    assert p.context_length == 512
    assert form.edited == {"context_length": 512}
    assert "context_length=512" in form.status.value


def test_list_field_is_parsed_and_validated():
    p = SweepParams(interactive=True)
    form = ui.build_form(p)
    form.widgets["temperatures"].value = "0.1, 0.3"
    assert p.temperatures == [0.1, 0.3]
    form.widgets["temperatures"].value = "0.1, 9"
    assert p.temperatures == [0.1, 0.3]
    assert form.widgets["temperatures"].value == "0.1, 0.3"
    assert "[0, 2]" in form.notes["temperatures"].value


def test_rejected_value_shows_the_error_and_keeps_the_old_value():
    p = PreflightParams(interactive=True)
    form = ui.build_form(p)
    form.widgets["mode"].value = "external"  # the model-level check needs a URL first
    assert p.mode == "embedded"
    assert form.widgets["mode"].value == "embedded"
    assert "needs baseline_url" in form.notes["mode"].value
    assert form.errors == {"mode": "mode 'external' needs baseline_url and/or spec_url"}
    form.widgets["spec_url"].value = "example:8000"
    assert p.spec_url == "" and "http://example:8000" in form.notes["spec_url"].value
    assert form.set("spec_url", "http://127.0.0.1:8000/") is None
    assert form.set("mode", "external") is None
    assert (p.mode, p.spec_url) == ("external", "http://127.0.0.1:8000")
    assert form.errors == {}


def test_error_text_is_escaped():
    form = ui.build_form(PreflightParams(interactive=True))
    form.set("spec_url", "<img src=x onerror=alert(1)>")
    note = form.notes["spec_url"].value
    assert "<img" not in note and "&lt;img" in note


def test_assign_leaves_params_untouched_on_error():
    p = MemoryParams()
    assert ui.assign(p, "context_length", 0) is not None
    assert p.context_length == 1024
    assert ui.assign(p, "context_length", 512) is None and p.context_length == 512
    # QA5: a context beyond max_model_len (1024 here) is refused, as `playbook memory` refuses it
    assert "exceeds max_model_len 1024" in ui.assign(p, "context_length", 4096) and p.context_length == 512


# -- live load view ----------------------------------------------------------------------------
def _level(config, level, p50, p99, workload="structured"):
    return LevelStats(config=config, level=level, workload=workload, requests=16,
                      tpot_ms=Percentiles(p50=p50, p99=p99), ttft_ms=Percentiles(p50=30.0))


def test_live_view_collects_replaces_and_sorts_levels():
    view = ui.LiveLoadView()
    view.update(_level("spec", 4, 10.0, 14.0))
    view.update(_level("baseline", 1, 5.0, 6.0).model_dump())
    view.update(_level("spec", 4, 11.0, 15.0))  # the same level again replaces the row
    df = view.frame()
    assert list(df["config"]) == ["baseline", "spec"]
    assert list(df["TPOT P50 ms"]) == [5.0, 11.0]
    assert view.figure_png().startswith(b"\x89PNG")


def test_live_view_escapes_names():
    view = ui.LiveLoadView(title="<b>t</b>")
    view.update({**_level("spec", 1, 1.0, 2.0).model_dump(), "config": "<script>x</script>"})
    html = view.table_html()
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;t" in html


def test_live_view_without_latencies_has_no_plot():
    view = ui.LiveLoadView()
    view.update(LevelStats(config="baseline", level=1, status="failed", reason="server died"))
    assert view.figure_png() is None


# -- playbook lab ------------------------------------------------------------------------------
def test_lab_help(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["lab", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ("--port", "--profile", "--no-browser", "dir"):
        assert word in out


def test_lab_without_jupyterlab_says_what_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "jupyterlab", None)  # as if the extra were not installed
    assert cli.main(["lab", str(tmp_path / "ws"), "--no-browser"]) == 1
    err = capsys.readouterr().err
    assert "JupyterLab is not installed" in err
    assert "pip install 'specdecode-playbook[interactive]'" in err
    assert not (tmp_path / "ws").exists()  # nothing done before the check


def test_workspace_gets_the_profile_values_after_the_parameters_cell(tmp_path):
    ws = lab.prepare_workspace(str(tmp_path / "ws"), profile="lab")
    nb = nbformat.read(ws / "notebooks" / "20_memory.ipynb", as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"]
    assert tags[0] == ["parameters"] and tags[1] == [lab.INJECTED_TAG]
    injected = next(c.source for c in nb.cells if lab.INJECTED_TAG in c.metadata.get("tags", []))
    assert "interactive = True" in injected and "context_length = 1024" in injected
    assert "temperatures" not in injected  # only names this step's model declares
    assert (ws / "runs").is_dir() and (ws / "environments" / "lab.yaml").exists()
    # Reopening the workspace keeps it; a profile on an existing one needs --force.
    assert lab.prepare_workspace(str(ws)) == ws
    with pytest.raises(ArtifactError, match="--force"):
        lab.prepare_workspace(str(ws), profile="lab")
    lab.prepare_workspace(str(ws), profile="embedded-cpu", force=True)
    again = nbformat.read(ws / "notebooks" / "20_memory.ipynb", as_version=4)
    assert sum(lab.INJECTED_TAG in c.metadata.get("tags", []) for c in again.cells) == 1


def test_bad_profile_fails_before_copying(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("context_lenght: 10\n")
    with pytest.raises(ParameterError, match="context_length"):
        lab.prepare_workspace(str(tmp_path / "ws"), profile=str(bad))
    assert not (tmp_path / "ws").exists()


def test_jupyter_command_binds_localhost_and_keeps_the_token_out_of_argv(tmp_path):
    cmd = lab.jupyter_command(tmp_path, 18650, open_browser=False)
    assert "--ip=127.0.0.1" in cmd and "--port=18650" in cmd and "--no-browser" in cmd
    assert f"--ServerApp.root_dir={tmp_path}" in cmd
    assert any(a.endswith("/lab/tree/notebooks/00_preflight.ipynb") for a in cmd)
    assert not any("token" in a.lower() for a in cmd)
