"""The run's server pool (helpers/servers.py): its socket protocol, sharing, restarts, evictions,
accounting and clean-up, with real processes. The servers are tests/support/fake_vllm.py started through
the real launch() (fault injection only: a cheap process that answers like vLLM)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from playbook.helpers import servers
from playbook.helpers.endpoints import LazyEndpoint, endpoint
from playbook.helpers.errors import ModelError, ServerStartError
from playbook.helpers.params import LoadParams
from playbook.helpers.reaper import is_running
from playbook.helpers.schemas.server import ServerConfig
from playbook.helpers.server import health_ok

FAKE_VLLM = Path(__file__).parents[1] / "support" / "fake_vllm.py"


@pytest.fixture
def fake_python(tmp_path) -> str:
    """A 'python' whose `-m vllm...` serves the fake; anything else runs the real interpreter."""
    path = tmp_path / "fakepython"
    path.write_text(f'#!/bin/sh\nif [ "$1" = "-m" ]; then exec {sys.executable} {FAKE_VLLM} "$@"; fi\n'
                    f'exec {sys.executable} "$@"\n')
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def model(tmp_path) -> str:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    return str(tmp_path / "model")


@pytest.fixture
def cfg(fake_python, model):
    def make(**kw) -> ServerConfig:
        return ServerConfig(**{"model": model, "python": fake_python, "gpu_memory_utilization": 0.3, **kw})
    return make


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.delenv(servers.ENV, raising=False)
    with servers.run_pool(tmp_path / "run", handle_sigterm=False) as pool:
        yield pool


def events(run_dir: Path) -> list[dict]:
    path = run_dir / "artifacts" / servers.EVENTS
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_servers_logging_elsewhere_never_share_a_name(run, cfg):
    """A candidate's server logs under candidates/<slug>/server-logs: its name stays unique in the run."""
    with servers.acquire(cfg(), "spec", step="50_load") as main:
        pass
    with servers.acquire(cfg(speculative_config={"method": "ngram", "num_speculative_tokens": 1}), "spec", step="50_load",
                         log_dir=run.run_dir / "candidates" / "x" / "server-logs") as other:
        pass
    assert (main.name, other.name) == ("spec-1", "spec-2")
    assert (run.run_dir / "candidates" / "x" / "server-logs" / "spec-2.log").exists()
    assert [c.logs for c in servers.summarize(run.run_dir).per_config] == [["spec-1"], ["spec-2"]]


def test_same_configuration_is_started_once_and_shared(run, cfg):
    with servers.acquire(cfg(), "spec", step="00_preflight") as first:
        assert not first.reused and first.start_s > 0 and health_ok(first.url)
    with servers.acquire(cfg(), "spec", step="40_sweep") as second:
        assert second.reused and second.pid == first.pid and second.url == first.url and second.start_s == 0
    assert is_running(first.pid), "releasing a pooled server must not stop it"
    [listed] = servers.list_pooled()
    assert listed.steps == ["00_preflight", "40_sweep"] and listed.reuses == 1 and listed.in_use == 0
    assert [e["event"] for e in events(run.run_dir)] == ["start", "reuse"]
    assert (run.run_dir / "server-logs" / "spec-1.log").exists()
    summary = servers.summarize(run.run_dir)
    assert (summary.started, summary.configurations, summary.reuses) == (1, 1, 1)
    assert [(s.step, s.started, s.reused) for s in summary.per_step] == [("00_preflight", 1, 0), ("40_sweep", 0, 1)]
    assert summary.per_config[0].steps == ["00_preflight", "40_sweep"] and summary.startup_s == first.start_s


def test_two_configurations_are_served_at_once_on_different_ports(run, cfg):
    with servers.acquire(cfg(), "baseline", step="50_load") as base, \
            servers.acquire(cfg(max_model_len=512), "spec", step="50_load") as spec:
        assert base.key != spec.key and base.url != spec.url
        assert health_ok(base.url) and health_ok(spec.url)
        assert {s.in_use for s in servers.list_pooled()} == {1}
    names = sorted(p.name for p in (run.run_dir / "server-logs").glob("*.log"))
    assert names == ["baseline-1.log", "spec-1.log"]


def test_concurrent_acquires_of_one_configuration_start_one_server(run, cfg):
    leases, threads = [], []
    for step in ("a", "b", "c"):
        threads.append(threading.Thread(target=lambda s=step: leases.append(servers.acquire(cfg(), "spec", step=s))))
        threads[-1].start()
    for t in threads:
        t.join()
    try:
        assert len({h.lease.pid for h in leases}) == 1 and sum(h.lease.reused for h in leases) == 2
        assert servers.list_pooled()[0].in_use == 3
    finally:
        for h in leases:
            h.release()


def test_a_server_killed_between_steps_is_restarted_once_and_the_step_is_told(run, cfg):
    with servers.acquire(cfg(), "spec", step="40_sweep") as first:
        pass
    os.killpg(first.pid, signal.SIGKILL)
    assert not _wait(lambda: is_running(first.pid), 10)
    with servers.acquire(cfg(), "spec", step="50_load") as again:
        assert again.restarted and not again.reused and again.pid != first.pid and health_ok(again.url)
        assert "spec-1" in again.notes[0] and "had exited" in again.notes[0] and "50_load" in again.notes[0]
        assert again.name == "spec-2"
    kinds = [e["event"] for e in events(run.run_dir)]
    assert kinds == ["start", "restart"]
    summary = servers.summarize(run.run_dir)
    assert summary.restarts == 1 and summary.started == 2 and summary.configurations == 1
    load = next(s for s in summary.per_step if s.step == "50_load")
    assert load.restarted == 1 and "restarted" in load.notes[0]


def test_an_exclusive_server_is_its_own_and_stops_on_release(run, cfg):
    with servers.acquire(cfg(), "spec", step="40_sweep") as shared:
        pass
    with servers.acquire(cfg(), "spec", step="50_load", exclusive=True) as own:
        assert own.exclusive and own.pid != shared.pid and not own.reused
    assert not _wait(lambda: is_running(own.pid), 20), "the exclusive server outlived its release"
    assert is_running(shared.pid) and [s.pid for s in servers.list_pooled()] == [shared.pid]


def test_idle_servers_are_stopped_when_a_new_one_would_not_fit(run, cfg):
    with servers.acquire(cfg(gpu_memory_utilization=0.6), "spec", step="30") as big:
        pass
    with servers.acquire(cfg(gpu_memory_utilization=0.5, max_model_len=256), "spec", step="30") as other:
        assert "stopped idle server spec-1" in other.notes[0] and "0.6 + 0.5 > 1" in other.notes[0]
    assert not _wait(lambda: is_running(big.pid), 20)
    with servers.acquire(cfg(gpu_memory_utilization=0.6), "spec", step="40") as back:
        assert not back.reused and "again" in " ".join(back.notes)
    assert [e["event"] for e in events(run.run_dir)] == ["start", "evict", "start", "evict", "start"]


def test_a_server_in_use_is_never_evicted(run, cfg):
    with servers.acquire(cfg(gpu_memory_utilization=0.6), "baseline", step="50") as held, \
            servers.acquire(cfg(gpu_memory_utilization=0.6, max_model_len=256), "spec", step="50") as spec:
        assert is_running(held.pid) and is_running(spec.pid) and not spec.notes


def test_stop_from_a_notebook_and_start_again(run, cfg):
    with servers.acquire(cfg(), "spec", step="40") as lease:
        pass
    assert servers.stop_pooled("spec-1") and not servers.stop_pooled("no-such")
    assert not _wait(lambda: is_running(lease.pid), 20) and servers.list_pooled() == []
    with servers.acquire(cfg(), "spec", step="50") as again:
        assert not again.reused and again.name == "spec-2"


def test_start_errors_reach_the_step_with_problem_fix_and_log_tail(run, cfg, tmp_path):
    with pytest.raises(ModelError, match="does not exist") as bad:
        servers.acquire(cfg(model=str(tmp_path / "nope")), "spec", step="40")
    assert bad.value.fix
    crash = tmp_path / "crashpython"
    crash.write_text("#!/bin/sh\necho 'torch.OutOfMemoryError: CUDA out of memory'\nexit 1\n")
    crash.chmod(0o755)
    with pytest.raises(ServerStartError, match="CUDA out of memory") as dead:
        servers.acquire(cfg(python=str(crash)), "spec", step="40")
    assert "CUDA out of memory" in dead.value.log_tail
    summary = servers.summarize(run.run_dir)
    assert summary.failed == 2 and summary.started == 0 and "did not start" in summary.per_step[0].notes[0]


def test_an_explicit_port_held_by_a_pooled_server_is_refused(run, cfg):
    with servers.acquire(cfg(), "spec", step="40") as first:
        port = int(first.url.rsplit(":", 1)[1])
        with pytest.raises(ServerStartError, match=f"port {port} is already used by pooled server spec-1"):
            servers.acquire(cfg(port=port, max_model_len=256), "spec", step="40")


def test_closing_stops_every_server_and_removes_the_socket(tmp_path, cfg, monkeypatch):
    monkeypatch.delenv(servers.ENV, raising=False)
    with servers.run_pool(tmp_path / "run", handle_sigterm=False) as pool:
        address = pool.address
        assert os.environ[servers.ENV] == address and Path(address).exists()
        assert oct(Path(address).stat().st_mode & 0o777) == "0o600"
        held = servers.acquire(cfg(), "spec", step="40")  # a step still holding it when the run ends
        pids = [held.lease.pid, servers.acquire(cfg(max_model_len=256), "baseline", step="50").lease.pid]
    assert not Path(address).exists() and servers.ENV not in os.environ
    assert not _wait(lambda: any(is_running(p) for p in pids), 20)
    assert [e["event"] for e in events(tmp_path / "run")].count("stop") == 2
    held.release()


def test_a_long_run_dir_gets_its_socket_in_a_private_temp_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(servers.ENV, raising=False)
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with servers.run_pool(deep, handle_sigterm=False) as pool:
        assert not pool.address.startswith(str(deep)) and servers.list_pooled() == []
        tmp = Path(pool.address).parent
    assert not tmp.exists()


def test_a_second_pool_on_the_same_run_dir_is_refused_and_a_stale_socket_is_replaced(tmp_path, monkeypatch):
    from playbook.helpers.errors import ArtifactError

    monkeypatch.delenv(servers.ENV, raising=False)
    with servers.ServerPool(tmp_path) as first, pytest.raises(ArtifactError, match="another server pool"):
        servers.ServerPool(tmp_path).start()
    stale = tmp_path / servers.SOCKET_NAME
    stale.write_text("")  # what a kill -9 leaves
    with servers.ServerPool(tmp_path) as second:
        assert second.address == str(stale) and first.address == second.address


def test_endpoint_uses_the_pool_and_does_not_stop_its_server(run, fake_python, model, tmp_path):
    p = LoadParams(mode="managed", target_model=model, draft_model="", method="ngram", run_dir=str(tmp_path))
    with endpoint(p, tmp_path, "baseline", python=fake_python) as ep:
        assert ep.managed and ep.pooled and not ep.pooled.reused and ep.server is None
    lazy = LazyEndpoint(p, tmp_path, "baseline")
    with lazy:
        assert lazy.endpoint is None  # nothing acquired until called
    assert is_running(ep.pooled.pid)
    assert [(e["event"], e["step"], e["role"]) for e in events(run.run_dir)] == [("start", "50_load", "baseline")]
    assert (tmp_path / "server-logs" / "baseline-1.log").exists(), "logs go to the step's run dir"


def test_endpoint_without_an_answering_pool_starts_its_own_server(tmp_path, fake_python, model, monkeypatch):
    monkeypatch.setenv(servers.ENV, str(tmp_path / "gone.sock"))
    p = LoadParams(mode="managed", target_model=model, draft_model="", method="ngram", run_dir=str(tmp_path))
    with pytest.warns(UserWarning, match="does not answer"), endpoint(p, tmp_path, "baseline", python=fake_python) as ep:
        assert ep.server is not None and ep.pooled is None
    assert not ep.server.is_alive()


def test_no_pool_without_the_environment_variable(monkeypatch):
    monkeypatch.delenv(servers.ENV, raising=False)
    assert servers.pool_address() is None
    with pytest.raises(servers.PoolUnavailable, match="PLAYBOOK_POOL"):
        servers.list_pooled()


def test_config_key_and_summary():
    a = ServerConfig(model="/m/tiny-target", dtype="bfloat16",
                     speculative_config={"method": "draft_model", "model": "/m/tiny-draft", "num_speculative_tokens": 4})
    assert servers.config_key(a) == servers.config_key(a.model_copy())
    for change in ({"dtype": "float16"}, {"env": {"X": "1"}}, {"extra_args": ["--seed", "1"]},
                   {"speculative_config": {"method": "ngram", "num_speculative_tokens": 4}}, {"tensor_parallel_size": 2}):
        assert servers.config_key(a.model_copy(update=change)) != servers.config_key(a), change
    assert servers.config_key(a, api_key="k1") != servers.config_key(a, api_key="k2")
    assert servers.config_summary(a) == "tiny-target bfloat16, draft_model k=4 (tiny-draft)"
    b = ServerConfig(model="/m/t", extra_args=["--api-key", "sekrit"], tensor_parallel_size=2)
    assert servers.config_summary(b) == "t, no speculation, tp=2, --api-key '<redacted>'"


KILLED_OWNER = """
import sys, time
from playbook.helpers import servers
from playbook.helpers.schemas.server import ServerConfig
with servers.run_pool(sys.argv[1], handle_sigterm=False) as pool:
    lease = servers.acquire(ServerConfig(model=sys.argv[2], python=sys.argv[3]), "spec", step="40").lease
    print(lease.pid, flush=True)
    time.sleep(600)
"""


def test_kill_9_of_the_pool_owner_leaves_no_server(tmp_path, fake_python, model):
    owner = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_OWNER), str(tmp_path / "run"), model,
                              fake_python], stdout=subprocess.PIPE, text=True)
    pid = int(owner.stdout.readline())
    assert is_running(pid)
    owner.kill()
    owner.wait()
    owner.stdout.close()
    assert not _wait(lambda: is_running(pid), 20), "the pooled server outlived its owner"


def test_sigterm_of_the_pool_owner_stops_its_servers_and_removes_the_socket(tmp_path, fake_python, model):
    owner = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_OWNER.replace(
        "handle_sigterm=False", "handle_sigterm=True")), str(tmp_path / "run"), model, fake_python],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid = int(owner.stdout.readline())
    owner.send_signal(signal.SIGTERM)
    _, err = owner.communicate(timeout=60)
    assert "KeyboardInterrupt" in err, "SIGTERM is turned into the same clean exit as Ctrl-C"
    assert not is_running(pid), "the server is stopped before the owner exits, not later by its watchdog"
    assert not (tmp_path / "run" / servers.SOCKET_NAME).exists()
    assert [e["event"] for e in events(tmp_path / "run")] == ["start", "stop"]


def _wait(cond, limit_s: float) -> bool:
    """Wait until ``cond()`` is False (or the limit passes); returns its last value."""
    deadline = time.monotonic() + limit_s
    while cond() and time.monotonic() < deadline:
        time.sleep(0.1)
    return cond()


LAB_CHILD = """
import os, sys
from playbook.helpers import servers
from playbook.helpers.schemas.server import ServerConfig
print(os.environ[servers.ENV], flush=True)
lease = servers.acquire(ServerConfig(model=sys.argv[1], python=sys.argv[2]), "spec", step="40_sweep").lease
print(lease.pid, [s.name for s in servers.list_pooled()], flush=True)
"""


def test_the_lab_hosts_the_pool_for_its_kernels_and_stops_it_with_jupyterlab(tmp_path, fake_python, model,
                                                                            monkeypatch, capfd):
    """`playbook lab` with JupyterLab replaced by a process that acts as a notebook would."""
    import argparse

    from playbook.commands import lab

    monkeypatch.delenv(servers.ENV, raising=False)
    monkeypatch.setattr(lab, "require_jupyterlab", lambda: None)
    monkeypatch.setattr(lab, "wait_ready", lambda *a, **k: None)
    monkeypatch.setattr(lab, "jupyter_command", lambda *a, **k: [sys.executable, "-c", LAB_CHILD, model, fake_python])
    old_term = signal.getsignal(signal.SIGTERM)
    try:
        args = argparse.Namespace(dir=str(tmp_path / "ws"), profile=None, force=False, port=0, no_browser=True,
                                  startup_timeout=5)
        assert lab.run(args) == 0
    finally:
        signal.signal(signal.SIGTERM, old_term)
    out = capfd.readouterr().out.splitlines()
    run_dir = tmp_path / "ws" / "runs" / "interactive"
    [address] = [line for line in out if line.endswith(".sock")]  # what the notebook's process inherited
    pid, names = out[-1].split(" ", 1)
    assert names == "['spec-1']" and (run_dir / "server-logs" / "spec-1.log").exists()
    assert not is_running(int(pid)), "the lab's servers stop with JupyterLab"
    assert not Path(address).exists() and servers.ENV not in os.environ
