"""Faults of the run's server pool (issue 14), injected into a real ``playbook run`` with real signals.

The run is managed mode (the pool launches the servers itself, as for vLLM) of 40_sweep and 50_load,
which share one speculative configuration. ``python -m vllm.entrypoints.openai.api_server`` resolves
to a stand-in package put first on PYTHONPATH that serves tests/support/fake_vllm.py (fault injection
only; PLAYBOOK_HOME is private so nothing it probes is cached for real runs).

- runner killed: kill -9 of ``playbook run`` while the pooled speculative server serves its second
  step -> every server, watchdog and kernel is gone; ``--resume`` starts only what 50_load needs.
- server killed between steps: the pooled server dies after 40_sweep -> 50_load gets it restarted
  once, and says so (stderr, the executed notebook, run.json's servers summary).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from playbook.helpers.reaper import descendants
from tests.support.scenarios import (
    Outcome,
    Workspace,
    is_running,
    jsonl,
    read,
    scenario,
    step_status,
    wait_for,
    wait_gone,
)

FAKE_VLLM = Path(__file__).with_name("fake_vllm.py")


def _managed_workspace(ws: Workspace) -> Path:
    """A fake vLLM package on PYTHONPATH, a model directory, a private PLAYBOOK_HOME; returns the model."""
    pkg = ws.dir / "fakevllm" / "vllm" / "entrypoints" / "openai"
    pkg.mkdir(parents=True)
    for d in (pkg, pkg.parent, pkg.parent.parent):
        (d / "__init__.py").write_text("")
    (pkg / "api_server.py").write_text(f"import runpy\nrunpy.run_path({str(FAKE_VLLM)!r}, run_name='__main__')\n")
    model = ws.dir / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    ws.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ws.dir / "fakevllm"), ws.env.get("PYTHONPATH")]))
    ws.env["PLAYBOOK_HOME"] = str(ws.dir / "home")
    return model


def _run_args(ws: Workspace, model: Path, prompts: Path, n: int) -> list[str]:
    params = dict(mode="managed", target_model=str(model), draft_model="", method="ngram", workloads=str(prompts),
                  temperatures="0", requests_per_point=4, workload=str(prompts), concurrencies="1",
                  requests_per_level=n, warmup_requests=0, find_saturation="false", lossless_check="false",
                  max_tokens=9, request_timeout_s=20, server_start_timeout_s=60, level_decision_budget_s=0,
                  gpu_memory_utilization=0.3)  # both servers side by side (managed mode's own default is vLLM's 0.9)
    out = ["run", "--runs-dir", str(ws.runs), "--only", "40_sweep", "50_load"]
    for k, v in params.items():
        out += ["-p", f"{k}={v}"]
    return out


def _events(run: Path) -> list[dict]:
    return jsonl(run / "artifacts" / "servers.jsonl")


def _server_pids(run: Path) -> set[int]:
    return {e["pid"] for e in _events(run) if e.get("pid")}


def _start_run(ws, prompt_kind: str, n: int):
    """Start `playbook run` in managed mode on the stand-in vLLM; returns (runner process, run directory)."""
    model = _managed_workspace(ws)
    runner = ws.start_playbook(*_run_args(ws, model, ws.prompts([prompt_kind] * 8), n=n))
    assert wait_for(lambda: len(ws.run_dirs()) == 1, 60), "no run directory appeared"
    return runner, ws.run_dirs()[0]


# == 9. kill -9 of the runner while a pooled server serves its second step =======================
def runner_killed_while_pool_serves() -> Outcome:
    with scenario("pool-runner-killed") as (out, ws):
        runner, run = _start_run(ws, "slow", n=10)  # ~5 s of streams per configuration: killed mid-way

        def spec_serves_load() -> bool:
            evs = _events(run)
            spec = next((e for e in evs if e["event"] == "start" and e["role"] == "spec"), None)
            return bool(spec) and any(e["event"] == "reuse" and e["key"] == spec["key"] and e["step"] == "50_load"
                                      for e in evs) and bool(jsonl(run / "artifacts" / "50_load_requests.jsonl"))

        serving = wait_for(spec_serves_load, 150, every_s=0.1)
        out.check("the pooled speculative server served 40_sweep and then 50_load", serving)
        tree = descendants(runner.pid)  # kernel, servers, watchdogs
        servers_ = _server_pids(run)
        t0 = time.monotonic()
        os.kill(runner.pid, signal.SIGKILL)
        runner.communicate()
        left = wait_gone(sorted(set(tree) | servers_), 30)
        gone_s = time.monotonic() - t0
        out.check("the runner had servers and a kernel under it", len(servers_) >= 2 and len(tree) > len(servers_))
        out.check("every pooled server, watchdog and kernel died with the runner", not left)
        out.check("run.json shows 50_load still 'running'", step_status(run, "50_load").get("status") == "running")

        again = ws.playbook("run", "--resume", str(run), timeout=240)
        out.check("resume exits 0", again.returncode == 0)
        pools = []
        for e in _events(run):
            if e["pool"] not in pools:
                pools.append(e["pool"])
        resumed = [e for e in _events(run) if len(pools) == 2 and e["pool"] == pools[1]]
        started = sorted(e["role"] for e in resumed if e["event"] in ("start", "restart"))
        out.check("resume started only what 50_load needs (one spec, one baseline)",
                  started == ["baseline", "spec"] and all(e["step"] != "40_sweep" for e in resumed))
        out.check("the resumed pool stopped its servers",
                  sum(e["event"] == "stop" for e in resumed) == 2 and not wait_gone(sorted(_server_pids(run)), 20))
        out.check("no pool socket left", not (run / ".server-pool.sock").exists())
        summary = read(run / "run.json").get("servers") or {}
        out.check("run.json counts the starts of both invocations", summary.get("started") == 4)
        out.detail = (f"{len(servers_)} pooled servers + {len(tree) - len(servers_)} other processes gone "
                      f"{gone_s:.1f} s after kill -9; resume started {', '.join(started)}")
    return out


# == 10. a pooled server dies between two steps =================================================
def pooled_server_killed_between_steps() -> Outcome:
    with scenario("pool-server-killed") as (out, ws):
        runner, run = _start_run(ws, "ok", n=4)
        sweep_done = wait_for(lambda: step_status(run, "40_sweep").get("status") == "done", 150)
        spec = next((e for e in _events(run) if e["event"] == "start" and e["role"] == "spec"), {})
        killed_pid = spec.get("pid")
        if killed_pid and is_running(killed_pid):
            os.killpg(killed_pid, signal.SIGKILL)  # the server leads its own session: the whole server
        _, err = runner.communicate(timeout=240)
        evs = _events(run)
        in_load = [e for e in evs if e["step"] == "50_load" and e["key"] == spec.get("key")]
        out.check("killed after 40_sweep, before 50_load asked for it",
                  sweep_done and bool(killed_pid) and in_load and in_load[0]["event"] == "restart")
        out.check("the run finishes (exit 0)", runner.returncode == 0)
        out.check("the restart is said on stderr", "warning: pooled server spec-1" in err and "restarted it once" in err)
        notebook = (run / "notebooks" / "50_load.ipynb").read_text()
        out.check("the step's notebook says so", "restarted it once for 50_load" in notebook)
        summary = read(run / "run.json").get("servers") or {}
        load = next((s for s in summary.get("per_step", []) if s["step"] == "50_load"), {})
        out.check("run.json: one restart, for 50_load, with the reason",
                  summary.get("restarts") == 1 and load.get("restarted") == 1
                  and any("had exited" in n for n in load.get("notes", [])))
        out.check("a new log for the restarted server", (run / "server-logs" / "spec-2.log").exists())
        out.check("50_load measured everything", read(run / "artifacts" / "50_load.json").get("status") == "ok")
        out.check("nothing left running", not wait_gone(sorted(_server_pids(run)), 20))
        out.detail = next((n for n in load.get("notes", [])), "")[:120]
    return out


SCENARIOS = {
    "9 runner SIGKILLed, pooled server": runner_killed_while_pool_serves,
    "10 pooled server dies between steps": pooled_server_killed_between_steps,
}

