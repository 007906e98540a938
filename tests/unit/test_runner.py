"""The runner on the report step alone (fast, no server): run dir layout, resume, lock, errors."""

import json

import pytest

from playbook.cli import main
from playbook.helpers.errors import RunLockedError
from playbook.runner import run_playbook, workspace_lock


def test_report_only_run_makes_the_layout_and_a_verdict(runs_dir):
    out = run_playbook(only=["90"], runs_dir=str(runs_dir), progress=lambda m: None)
    run = runs_dir / out.run_dir.split("/")[-1]
    for name in ("run.json", "report.html", "decision.json", "notebooks/90_report.ipynb"):
        assert (run / name).exists(), name
    state = json.loads((run / "run.json").read_text())
    assert [s["status"] for s in state["steps"]] == ["done"]
    assert state["versions"]["playbook"]
    assert out.verdict == json.loads((run / "decision.json").read_text())["verdict"]
    assert "<code" not in (run / "report.html").read_text().split("<body", 1)[-1][:200]


def test_resume_reruns_only_unfinished_steps(runs_dir):
    out = run_playbook(only=["90"], runs_dir=str(runs_dir), progress=lambda m: None)
    state_path = runs_dir / out.run_dir.split("/")[-1] / "run.json"
    state = json.loads(state_path.read_text())
    first_finish = state["steps"][0]["finished_at"]
    state["steps"][0]["status"] = "running"  # what kill -9 mid-step leaves behind
    state["steps"][0]["finished_at"] = None
    state_path.write_text(json.dumps(state))
    seen = []
    again = run_playbook(resume=out.run_dir, progress=seen.append)
    assert again.run_dir == out.run_dir
    assert any("90_report done" in m for m in seen)
    state = json.loads(state_path.read_text())
    assert state["steps"][0]["status"] == "done" and state["steps"][0]["finished_at"] >= first_finish


def test_second_run_in_the_same_workspace_is_refused_naming_the_first(runs_dir, tmp_path):
    with workspace_lock(runs_dir, tmp_path / "the-first-run"):
        with pytest.raises(RunLockedError, match="the-first-run"):
            run_playbook(only=["90"], runs_dir=str(runs_dir), progress=lambda m: None)


def test_unknown_parameter_fails_before_any_run_dir_is_made(runs_dir, capsys):
    assert main(["run", "-p", "no_such_param=1", "--runs-dir", str(runs_dir)]) == 1
    assert "no_such_param" in capsys.readouterr().err
    assert not [p for p in runs_dir.iterdir() if p.is_dir()]


def test_unknown_step_lists_the_known_ones(runs_dir, capsys):
    assert main(["run", "--only", "99_nothing", "--runs-dir", str(runs_dir)]) == 1
    assert "00_preflight" in capsys.readouterr().err


def test_resume_of_a_non_run_dir_says_so(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path)]) == 1
    assert "not a playbook run directory" in capsys.readouterr().err


def test_params_lists_types_defaults_and_help(capsys):
    assert main(["params", "notebooks/00_preflight.ipynb"]) == 0
    out = capsys.readouterr().out
    assert "num_speculative_tokens" in out and "int" in out and "k, tokens proposed per step" in out


def test_init_copies_notebooks_and_profiles(tmp_path, capsys):
    assert main(["init", str(tmp_path / "ws")]) == 0
    assert (tmp_path / "ws/notebooks/00_preflight.ipynb").exists()
    assert (tmp_path / "ws/environments/embedded-cpu.yaml").exists()
    assert main(["init", str(tmp_path / "ws")]) == 1  # refuses to overwrite without --force


def test_in_process_main_leaves_sigpipe_alone_but_the_program_ends_quietly_in_a_pipe():
    """main() in a host process (pytest, a kernel) must not make a closed pipe fatal to the host."""
    import signal
    import subprocess
    import sys

    before = signal.getsignal(signal.SIGPIPE)
    assert main(["params", "00_preflight"]) == 0
    assert signal.getsignal(signal.SIGPIPE) == before
    out = subprocess.run(f"'{sys.executable}' -m playbook params 90_report | head -1", shell=True,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("Parameters of") and "BrokenPipe" not in out.stderr and "Traceback" not in out.stderr


# -- a verdict never rests on a failed step ------------------------------------------------------
UNREACHABLE = ["-p", "mode=external", "-p", "baseline_url=http://127.0.0.1:9", "-p", "spec_url=http://127.0.0.1:9"]


def _only_run(runs_dir):
    (run,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    return run, json.loads((run / "run.json").read_text()), json.loads((run / "decision.json").read_text())


def test_a_sweep_that_measured_nothing_exits_non_zero_and_inconclusive(runs_dir, capsys):
    code = main(["run", *UNREACHABLE, "--only", "40", "--runs-dir", str(runs_dir)])  # nothing answers: step 40 fails
    assert code != 0
    run, state, decision = _only_run(runs_dir)
    assert decision["verdict"] == "INCONCLUSIVE" and "40_sweep" in decision["headline"]
    assert {s["name"]: s["status"] for s in state["steps"]}["40_sweep"] == "failed"
    assert "verdict: INCONCLUSIVE" in capsys.readouterr().out


def test_preflight_blocking_failures_stop_the_run_unless_forced(runs_dir, tmp_path):
    assert main(["run", *UNREACHABLE, "--only", "00_preflight", "--runs-dir", str(runs_dir)]) != 0
    assert main(["run", *UNREACHABLE, "--only", "00", "20", "--runs-dir", str(tmp_path / "blocked")]) == 1
    run, state, decision = _only_run(tmp_path / "blocked")
    status = {s["name"]: s["status"] for s in state["steps"]}
    assert status == {"00_preflight": "failed", "20_memory": "pending", "90_report": "done"}
    assert "unreachable" in state["steps"][0]["error"] and not (run / "artifacts/20_memory.json").exists()
    assert decision["verdict"] == "INCONCLUSIVE" and "00_preflight" in decision["headline"]
    assert main(["run", *UNREACHABLE, "--only", "00", "20", "--force", "--runs-dir", str(tmp_path / "forced")]) == 0
    run, state, decision = _only_run(tmp_path / "forced")
    assert [s["status"] for s in state["steps"]] == ["done", "done", "done"] and (run / "artifacts/20_memory.json").exists()
    assert "00_preflight" not in decision["headline"]  # forced past preflight: the verdict rests on what was measured


def test_report_re_decides_without_measuring(tmp_path, capsys):
    from tests.support.decide_fixtures import load, make_run, sweep

    run = make_run(tmp_path / "run", sweep_result=sweep(), load_result=load({1: (1.6, 1.4, 1.8), 4: (1.3, 1.15, 1.45),
                                                                               16: (1.1, 1.02, 1.2)}))
    measured = run.artifact("50_load.json").read_text()
    assert main(["report", str(run.path)]) == 0
    assert json.loads((run.path / "decision.json").read_text())["verdict"] == "GO"
    assert main(["report", str(run.path), "-p", "acceptance_no_go_below=0.99"]) == 0
    decision = json.loads((run.path / "decision.json").read_text())
    assert decision["verdict"] == "NO-GO"
    assert decision["changes"]["previous_verdict"] == "GO"
    assert decision["changes"]["parameters"] == {"acceptance_no_go_below": {"from": 0.5, "to": 0.99}}
    note = (run.path / "redecide.md").read_text()
    assert "**GO** -> **NO-GO**" in note and "acceptance_no_go_below" in note
    assert "GO -> NO-GO" in capsys.readouterr().out
    assert main(["report", str(run.path), "-p", "expected_peak_concurrency=10000"]) == 0
    decision = json.loads((run.path / "decision.json").read_text())
    assert decision["verdict"] != "GO" and any("measure at 10000" in m for m in decision["measure_next"])
    assert run.artifact("50_load.json").read_text() == measured  # nothing measured again
    assert main(["report", str(run.path), "-p", "mode=managed"]) == 1
    assert "only the report's parameters" in capsys.readouterr().err


def test_only_a_measuring_step_says_preflight_is_skipped(tmp_path, capsys):
    assert main(["run", *UNREACHABLE, "--only", "50", "--runs-dir", str(tmp_path / "a")]) != 0
    assert "note: 50_load without 00_preflight: its checks" in capsys.readouterr().err
    assert main(["run", *UNREACHABLE, "--only", "20", "--runs-dir", str(tmp_path / "b")]) == 0  # measures nothing
    assert "without 00_preflight" not in capsys.readouterr().err


def test_resume_with_only_runs_steps_the_run_has_not_had_yet(runs_dir):
    out = run_playbook(only=["90"], runs_dir=str(runs_dir), progress=lambda m: None)
    seen = []
    again = run_playbook(resume=out.run_dir, only=["20", "90"], progress=seen.append)
    state = json.loads((runs_dir / again.run_dir.split("/")[-1] / "run.json").read_text())
    assert [(s["name"], s["status"]) for s in state["steps"]] == [("20_memory", "done"), ("90_report", "done")]
    assert any("20_memory done" in m for m in seen) and any("90_report done" in m for m in seen)
    seen.clear()
    run_playbook(resume=out.run_dir, only=["20"], progress=seen.append)
    assert any("20_memory already done in this run, not measured again" in m for m in seen)


def test_resume_with_changed_parameters_says_what_changed_and_records_them_validated(runs_dir):
    out = run_playbook(only=["90"], runs_dir=str(runs_dir), progress=lambda m: None)
    seen = []
    run_playbook(resume=out.run_dir, only=["20", "90"], overrides={"concurrencies": "1,8"}, progress=seen.append)
    said = next(m for m in seen if m.startswith("parameters changed on resume"))
    assert "concurrencies: [1, 4] -> [1, 8]" in said
    assert "steps already done keep what they measured" in said and "90_report" in said
    state = json.loads((runs_dir / out.run_dir.split("/")[-1] / "run.json").read_text())
    assert state["parameters"]["concurrencies"] == [1, 8]  # validated, not the string "1,8"


def test_resume_of_a_finished_run_rebuilds_its_report(runs_dir):
    """A resume after fixing a failed step's cause must not keep the old verdict: the report step runs again even
    when run.json marks it done (what it reads may have changed)."""
    out = run_playbook(only=["90"], runs_dir=str(runs_dir), progress=lambda m: None)
    decision = runs_dir / out.run_dir.split("/")[-1] / "decision.json"
    decision.write_text('{"verdict": "STALE"}')
    seen = []
    again = run_playbook(resume=out.run_dir, progress=seen.append)
    assert any("90_report done" in m for m in seen)
    assert again.verdict != "STALE" and json.loads(decision.read_text())["verdict"] == again.verdict


def test_resume_of_an_imported_run_is_refused_and_changes_nothing(tmp_path, capsys):
    from pathlib import Path

    from playbook.helpers.importers import import_results

    vb = Path(__file__).parent / "fixtures" / "import" / "vllm_bench"
    run_dir = tmp_path / "run"
    import_results("vllm-bench", [vb / "baseline.json"], [vb / "spec.json"], run_dir, temperature=0.0)
    before = (run_dir / "run.json").read_bytes()
    assert main(["run", "--resume", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert "imported from another tool" in err and f"playbook report {run_dir}" in err
    assert (run_dir / "run.json").read_bytes() == before
