"""The main job, as a new user runs it: `playbook run` on the embedded default, real vLLM on the CPU."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from playbook.helpers.artifacts import read_jsonl
from playbook.helpers.servers import EVENTS
from playbook.resources import step_names

pytestmark = pytest.mark.engine

VERDICTS = {"GO", "GO WITH LIMITS", "NO-GO", "INCONCLUSIVE"}
# Every step on the embedded pair with the smoke profile (few requests): this test spends its time on the
# path around the measurements (runner, papermill, run directory, report, verdict, server clean-up). The
# full defaults are `make run`'s; other candidate configurations are measured by test_candidates_engine.py.
LIGHTER = ["--profile", "smoke"]


def vllm_processes(ports: set[str]) -> list[str]:
    """Live vLLM servers listening on one of ``ports`` (the run's own: other tests may run servers meanwhile)."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True).stdout  # -ww: whole lines
    return [line for line in out.splitlines() if "vllm.entrypoints.openai.api_server" in line
            and set(re.findall(r"--port (\d+)", line)) & ports]


def server_ports(run: Path) -> set[str]:
    """The ports of the servers the run started, from its pool's own accounting (artifacts/servers.jsonl)."""
    return {str(e["port"]) for e in read_jsonl(run / "artifacts" / EVENTS) if e.get("port")}


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    proc = subprocess.run(
        [sys.executable, "-m", "playbook", "run", "--runs-dir", str(runs), "--json", *LIGHTER],
        capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode == 0, f"playbook run failed:\n{proc.stderr[-4000:]}"
    outcome = json.loads(proc.stdout)
    ports = server_ports(Path(outcome["run_dir"]))
    assert ports, "the pool's accounting names the ports its servers listened on"
    return outcome, vllm_processes(ports), proc.stderr


def test_every_step_ran_and_wrote_its_result(embedded_run):
    outcome, _, _ = embedded_run
    run = __import__("pathlib").Path(outcome["run_dir"])
    state = json.loads((run / "run.json").read_text())
    assert {s["name"]: s["status"] for s in state["steps"]} == {s: "done" for s in step_names()}
    for step in step_names():
        if step != "90_report":
            assert (run / "artifacts" / f"{step}.json").exists(), step
        assert (run / "notebooks" / f"{step}.ipynb").exists(), step
    assert list((run / "server-logs").glob("*.log")), "managed servers keep their logs in the run dir"


def test_ends_with_a_report_and_a_verdict(embedded_run):
    outcome, _, stderr = embedded_run
    assert outcome["verdict"] in VERDICTS
    run = __import__("pathlib").Path(outcome["run_dir"])
    decision = json.loads((run / "decision.json").read_text())
    assert decision["verdict"] == outcome["verdict"]
    html = (run / "report.html").read_text()
    assert outcome["verdict"] in html
    assert "[1/" in stderr, "progress per step is printed"


def test_no_server_is_left_running(embedded_run):
    _, leftover, _ = embedded_run
    assert not leftover, f"orphan vLLM processes: {leftover}"
