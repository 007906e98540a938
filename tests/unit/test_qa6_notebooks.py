"""Notebooks run on their own (papermill from a shell, Jupyter): where they write without ``run_dir``, and a
measuring step that measured nothing fails there, saying why, as `playbook run` counts it failed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import papermill
import pytest

from playbook.helpers import params, steps
from playbook.helpers.artifacts import RunDir
from playbook.helpers.errors import MeasurementError
from playbook.helpers.schemas.load import LoadResult, SpeedupPoint

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def test_the_default_run_dir_is_beside_the_notebooks_folder_wherever_the_kernel_runs(tmp_path):
    ws = tmp_path / "ws"
    (ws / "notebooks").mkdir(parents=True)
    (ws / "notebooks" / "00_preflight.ipynb").write_text("{}")
    assert params.default_run_dir(ws / "notebooks") == "../runs/interactive"  # Jupyter: the notebook's folder
    assert params.default_run_dir(ws) == "runs/interactive"  # papermill from the workspace root
    assert params.default_run_dir(tmp_path / "elsewhere") == "runs/interactive"  # never beside an unknown parent


def test_a_notebook_without_run_dir_says_where_it_writes(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("PLAYBOOK_RUN_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    p = params.MemoryParams.from_namespace({"gpu": "cpu"})
    assert p.run_dir == "runs/interactive"
    assert f"run directory: {tmp_path / 'runs' / 'interactive'}" in capsys.readouterr().out
    given = params.MemoryParams.from_namespace({"run_dir": str(tmp_path / "mine")})
    assert given.run_dir == str(tmp_path / "mine") and "run directory" not in capsys.readouterr().out


def test_papermill_from_the_workspace_root_writes_into_the_workspace(tmp_path):
    ws = tmp_path / "ws"
    init = subprocess.run([sys.executable, "-m", "playbook", "init", str(ws)], capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    env = {k: v for k, v in os.environ.items() if k != "PLAYBOOK_RUN_DIR"}
    out = subprocess.run([sys.executable, "-m", "papermill", "notebooks/20_memory.ipynb", str(tmp_path / "out.ipynb"),
                          "-p", "target_model", "Llama-3.1-8B", "-p", "draft_model", "Llama-3.2-1B", "-p", "mode",
                          "managed", "-p", "gpu", "H100-SXM", "--no-progress-bar"],
                         cwd=ws, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (ws / "runs" / "interactive" / "artifacts" / "20_memory.json").exists()
    assert not (tmp_path / "runs").exists()


def _empty_load(run: RunDir) -> LoadResult:
    return LoadResult(level_kind="concurrency", missing_levels=["baseline@1: not measured"], status="failed",
                      warnings=["baseline@1: not measured", "baseline: server http://127.0.0.1:9 is unreachable"])


def test_require_measurement_names_the_cause_first_and_passes_a_measured_result(tmp_path):
    run = RunDir(tmp_path / "run")
    with pytest.raises(MeasurementError, match=r"50_load no load level was measured: baseline: server "
                                               r"http://127.0.0.1:9 is unreachable \(what was written is in"):
        steps.require_measurement("50_load", _empty_load(run), run)
    measured = _empty_load(run).model_copy(update={"speedup": [SpeedupPoint(level=1, speedup=1.3, ci_low=1.1,
                                                                            ci_high=1.5)]})
    steps.require_measurement("50_load", measured, run)  # a level measured: nothing raised


def test_50_load_run_alone_against_unreachable_servers_fails_in_papermill(tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(str(NOTEBOOKS / "50_load.ipynb"), str(tmp_path / "out.ipynb"), cwd=str(NOTEBOOKS),
                                   parameters={"run_dir": str(run_dir), "mode": "external",
                                               "baseline_url": "http://127.0.0.1:9", "spec_url": "http://127.0.0.1:7",
                                               "concurrencies": [1], "candidates": ["off"]},
                                   progress_bar=False, kernel_name="python3")
    assert err.value.ename == "MeasurementError" and "no load level was measured" in err.value.evalue
    assert "unreachable" in err.value.evalue
    assert (run_dir / "artifacts" / "50_load.json").exists()  # written before the step failed


def test_30_with_catalog_names_in_managed_mode_plans_without_measuring(tmp_path):
    from playbook.helpers import quantization
    from playbook.helpers.params import QuantizationParams

    p = QuantizationParams(run_dir=str(tmp_path), mode="managed", target_model="Llama-3.1-70B",
                           draft_model="Llama-3.2-1B", gpu="H100-SXM", num_gpus=2, tensor_parallel_size=2)
    rows = quantization.measure_pairs(p, RunDir(tmp_path), [("bf16", "bf16")], n_requests=1)
    assert len(rows) == 1 and not rows[0].measured and rows[0].acceptance_rate is None
    assert "does not exist" in rows[0].note and "measure_acceptance: false" in rows[0].note


def test_the_sweep_finding_says_when_the_production_acceptance_was_interpolated():
    from playbook.helpers import sweep
    from playbook.helpers.schemas.sweep import SweepPoint, SweepResult

    def result(temps, prod):
        return SweepResult(production_temperature=prod, production_acceptance=0.70, production_verdict="go",
                           temperatures=[SweepPoint(temperature=t, acceptance_rate=a) for t, a in temps])

    between = sweep.finding(result([(0.0, 0.73), (0.8, 0.61)], 0.2))
    assert "at the production temperature 0.2 (interpolated between T=0 and T=0.8: not measured there" in between
    assert "interpolated" not in sweep.finding(result([(0.0, 0.73), (0.2, 0.70)], 0.2))
    assert "(taken from T=0.8, the nearest measured" in sweep.finding(result([(0.0, 0.73), (0.8, 0.61)], 1.0))


def test_the_p10_at_a_production_temperature_between_sweeps_is_interpolated_like_the_acceptance():
    from playbook.helpers import evidence
    from playbook.helpers.schemas.sweep import SweepPoint, SweepResult

    s = SweepResult(production_temperature=0.2, temperatures=[
        SweepPoint(temperature=0.0, acceptance_rate=0.69, per_request_p10=0.52, mean_acceptance_length=3.4,
                   per_position=[0.9, 0.7]),
        SweepPoint(temperature=0.8, acceptance_rate=0.46, per_request_p10=0.23, mean_acceptance_length=2.6,
                   per_position=[0.7, 0.5])])
    ev = evidence.Evidence()
    evidence._from_sweep(s, ev, None)
    assert ev.acceptance_p10 == pytest.approx(0.52 + 0.25 * (0.23 - 0.52))  # 0.4475, not T=0's 0.52
    assert ev.mean_acceptance_length == pytest.approx(3.2)
    assert ev.acceptance_per_position == pytest.approx([0.85, 0.65])
    ev0 = evidence.Evidence()
    evidence._from_sweep(s, ev0, 0.0)
    assert ev0.acceptance_p10 == 0.52  # measured there: its own
