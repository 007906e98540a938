"""Server manager under faults, with a fake vLLM (a test double that dies, stalls or serves).

The fake is started exactly as vLLM would be (ServerConfig.python points at a wrapper script), so
launch, health wait, log handling, stop and the watchdog run their real code paths.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from playbook.helpers.endpoints import endpoint
from playbook.helpers.errors import ModelError, ParameterError, ServerStartError, ServerUnreachableError
from playbook.helpers.params import StepParams
from playbook.helpers.reaper import descendants, is_running
from playbook.helpers.schemas.server import ServerConfig
from playbook.helpers.server import check_reachable, free_port, launch

FAKE_VLLM = r'''
import http.server, json, os, subprocess, sys, time
args = sys.argv[1:]
port, model = int(args[args.index("--port") + 1]), args[args.index("--model") + 1]
mode = os.environ.get("FAKE_MODE", "serve")
print("INFO fake vllm starting with", " ".join(args), flush=True)
if mode == "exit":
    print("Traceback (most recent call last):", flush=True)
    print("ValueError: fake failure: not enough memory for the KV cache", flush=True)
    sys.exit(3)
if mode == "oom":  # what the kernel's OOM killer does
    os.kill(os.getpid(), 9)
# like vLLM: an engine-core child in our group, and a supervisor child that leaves the group
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
subprocess.Popen([sys.executable, "-c", "import os, time; os.setpgrp(); time.sleep(600)"])
print("(EngineCore pid=1) INFO 11-23 19:00:00 [kv_cache_utils.py:2327] CPU KV cache size: 931,968 tokens, "
      "Maximum concurrency for 1,024 tokens per request: 910.12x", flush=True)
if mode == "stall":
    time.sleep(600)
key = os.environ.get("VLLM_API_KEY")
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_GET(self):
        if self.path == "/health":
            code, body = 200, b""
        elif key and self.headers.get("Authorization") != f"Bearer {key}":
            code, body = 401, b'{"error": "unauthorized"}'
        else:
            code, body = 200, json.dumps({"data": [{"id": model}]}).encode()
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
'''


@pytest.fixture
def fake_python(tmp_path) -> str:
    """An executable that behaves like `python -m vllm.entrypoints.openai.api_server ...` (per FAKE_MODE)."""
    script = tmp_path / "fake_vllm.py"
    script.write_text(FAKE_VLLM)
    wrapper = tmp_path / "fakepython"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {script} \"$@\"\n")
    wrapper.chmod(0o755)
    return str(wrapper)


@pytest.fixture
def model_dir(tmp_path) -> str:
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text("{}")
    return str(d)


def procs_mentioning(text: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains ``text``: orphans if any."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd and is_running(int(entry.name)):
                found.append(int(entry.name))
    return found


def wait_gone(pids: list[int], limit_s: float = 30) -> list[int]:
    deadline = time.monotonic() + limit_s
    while (alive := [p for p in pids if is_running(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


def test_exit_during_startup_raises_at_once_with_reason_and_log_tail(tmp_path, fake_python, model_dir, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "exit")
    with pytest.raises(ServerStartError) as err:
        launch(ServerConfig(model=model_dir, python=fake_python), tmp_path / "logs", timeout_s=300)
    msg = str(err.value)
    assert "exited with code 3 during start-up" in msg
    assert "ValueError: fake failure: not enough memory" in msg.splitlines()[0]
    assert "fake failure" in err.value.log_tail and "# command:" in err.value.log_tail
    assert "memory" in err.value.fix
    assert (tmp_path / "logs" / "server.log").exists()
    assert procs_mentioning(str(tmp_path)) == []


def test_oom_kill_during_startup_is_explained(tmp_path, fake_python, model_dir, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "oom")
    with pytest.raises(ServerStartError, match=r"exited with code -9 during start-up: killed by signal 9 \(out of memory") as err:
        launch(ServerConfig(model=model_dir, python=fake_python), tmp_path / "logs")
    assert "gpu_memory_utilization" in err.value.fix and "fake vllm starting" in err.value.log_tail
    assert procs_mentioning(str(tmp_path)) == []


def test_stalled_server_times_out_and_leaves_nothing(tmp_path, fake_python, model_dir, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "stall")
    with pytest.raises(ServerStartError, match=r"did not answer .*/health within 3 s") as err:
        launch(ServerConfig(model=model_dir, python=fake_python), tmp_path / "logs", timeout_s=3)
    assert "KV cache size" in err.value.log_tail
    assert wait_gone(procs_mentioning(str(tmp_path)), 10) == []


def test_launch_parses_facts_and_stop_kills_whole_tree(tmp_path, fake_python, model_dir):
    with launch(ServerConfig(model=model_dir, python=fake_python), tmp_path / "logs", name="baseline-1") as srv:
        assert srv.is_alive() and srv.url.startswith("http://127.0.0.1:")
        assert check_reachable(srv.url) == [model_dir]
        facts = srv.startup_facts()
        assert (facts.kv_cache_tokens, facts.max_concurrency, facts.max_concurrency_context) == (931968, 910.12, 1024)
        tree = [srv.pid, *descendants(srv.pid)]
        assert len(tree) >= 3  # server, engine-core-like child, setpgrp'd child
        assert srv.log_path == tmp_path / "logs" / "baseline-1.log"
    assert not srv.is_alive()
    assert wait_gone(tree, 10) == []


def test_second_log_does_not_overwrite_first(tmp_path, fake_python, model_dir):
    for _ in range(2):
        with launch(ServerConfig(model=model_dir, python=fake_python), tmp_path / "logs", name="spec-1"):
            pass
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["spec-1.1.log", "spec-1.log"]


LAUNCHER = """
import json, sys, time
from playbook.helpers.schemas.server import ServerConfig
from playbook.helpers.server import launch
from playbook.helpers.reaper import descendants
srv = launch(ServerConfig(model=sys.argv[1], python=sys.argv[2]), sys.argv[3])
print(json.dumps({"pid": srv.pid, "tree": [srv.pid, *descendants(srv.pid)]}), flush=True)
time.sleep(600)
"""


def test_sigkill_of_the_launcher_kills_the_server_tree(tmp_path, fake_python, model_dir):
    """The notebook kernel dies by SIGKILL: the watchdog still kills the server and its children."""
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, model_dir, fake_python, str(tmp_path / "logs")],
                                stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(launcher.stdout.readline())
        assert all(is_running(p) for p in info["tree"]) and len(info["tree"]) >= 3
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
    assert wait_gone(info["tree"], 30) == []
    assert wait_gone(procs_mentioning(str(tmp_path)), 10) == []


def test_port_taken_is_named_before_launch(tmp_path, fake_python, model_dir):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ServerStartError, match=f"port {port} on 127.0.0.1 is already in use") as err:
            launch(ServerConfig(model=model_dir, python=fake_python, port=port), tmp_path / "logs")
    assert f"pid {os.getpid()}" in str(err.value)
    assert not (tmp_path / "logs").exists()  # nothing was launched


def test_missing_model_dir_fails_before_launch(tmp_path, fake_python):
    with pytest.raises(ModelError, match="model directory .*nope does not exist"):
        launch(ServerConfig(model=str(tmp_path / "nope"), python=fake_python), tmp_path / "logs")
    assert not (tmp_path / "logs").exists()


def test_missing_draft_dir_fails_before_launch(tmp_path, fake_python, model_dir):
    spec = {"method": "draft_model", "model": str(tmp_path / "no-draft"), "num_speculative_tokens": 4}
    with pytest.raises(ModelError, match="draft model directory"):
        launch(ServerConfig(model=model_dir, python=fake_python, speculative_config=spec), tmp_path / "logs")


def test_dir_without_config_json(tmp_path, fake_python):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="has no config.json"):
        launch(ServerConfig(model=str(tmp_path / "empty"), python=fake_python), tmp_path / "logs")


def test_api_key_reaches_the_server_but_never_the_log(tmp_path, fake_python, model_dir, monkeypatch):
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("PLAYBOOK_TEST_KEY", secret)
    cfg = ServerConfig(model=model_dir, python=fake_python, api_key_env="PLAYBOOK_TEST_KEY",
                       env={"HF_TOKEN": "hf-secret-token"})
    with launch(cfg, tmp_path / "logs") as srv:
        assert check_reachable(srv.url, api_key=secret) == [model_dir]
        with pytest.raises(ServerUnreachableError, match="HTTP 401") as err:
            check_reachable(srv.url)
        assert "api_key_env" in err.value.fix
        assert secret not in " ".join(srv.command)
    log = srv.log_path.read_text()
    assert secret not in log and "hf-secret-token" not in log
    assert "VLLM_API_KEY=<from $PLAYBOOK_TEST_KEY, redacted>" in log and "HF_TOKEN=<redacted>" in log


def test_unreachable_url_is_named(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServerUnreachableError, match=f"server {url} is unreachable"):
        check_reachable(url)


def test_unroutable_url_errors_within_the_timeout():
    start = time.monotonic()
    with pytest.raises(ServerUnreachableError, match=r"http://10\.255\.255\.1:8000"):
        check_reachable("http://10.255.255.1:8000", timeout_s=3)
    assert time.monotonic() - start < 10  # the bound: an error within 10 s


def test_url_without_scheme():
    with pytest.raises(ServerUnreachableError, match="no scheme") as err:
        check_reachable("localhost:8000")
    assert err.value.fix == "write it as http://localhost:8000"


# -- endpoint(): external and managed modes ---------------------------------------------------

def test_external_endpoint_takes_model_from_server(tmp_path, fake_python, model_dir):
    with launch(ServerConfig(model=model_dir, python=fake_python), tmp_path / "logs") as srv:
        p = StepParams(mode="external", spec_url=srv.url, run_dir=str(tmp_path))
        with endpoint(p, tmp_path, "spec") as ep:
            assert (ep.url, ep.model, ep.server) == (srv.url, model_dir, None)
        with endpoint(p.model_copy(update={"served_model_name": "alias"}), tmp_path, "spec") as ep:
            assert ep.model == "alias"
        with pytest.raises(ParameterError, match="needs baseline_url"):
            with endpoint(p, tmp_path, "baseline"):
                pass
    assert not (tmp_path / "server-logs").exists()  # external mode starts nothing


def test_external_endpoint_unreachable(tmp_path):
    p = StepParams(mode="external", baseline_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ServerUnreachableError, match="127.0.0.1"):
        with endpoint(p, tmp_path, "baseline"):
            pass


def test_external_endpoint_needs_the_named_key(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    p = StepParams(mode="external", baseline_url="http://127.0.0.1:1", api_key_env="NO_SUCH_KEY_VAR")
    with pytest.raises(ParameterError, match="NO_SUCH_KEY_VAR"):
        with endpoint(p, tmp_path, "baseline"):
            pass


def test_managed_endpoint_starts_logs_and_stops(tmp_path, fake_python, model_dir):
    p = StepParams(mode="managed", target_model=model_dir, draft_model="", method="ngram",
                   tensor_parallel_size=1, extra_server_args=["--seed", "7"])
    with endpoint(p, tmp_path, "baseline", python=fake_python) as ep:
        assert ep.server is not None and ep.model == model_dir
        assert "--seed 7" in " ".join(ep.server.command) and "--speculative-config" not in ep.server.command
        tree = [ep.server.pid, *descendants(ep.server.pid)]
    assert (tmp_path / "server-logs" / "baseline-1.log").exists()
    assert wait_gone(tree, 10) == []


def test_endpoint_rejects_unknown_override(tmp_path):
    with pytest.raises(ParameterError, match="no_such_thing"):
        with endpoint(StepParams(), tmp_path, "spec", no_such_thing=1):
            pass


def test_fake_script_is_valid_python():
    compile(textwrap.dedent(FAKE_VLLM), "fake_vllm.py", "exec")


def test_http_errors_name_the_fix_for_a_v1_base_url_and_a_refused_key():
    """The OpenAI base-URL habit (http://host:port/v1) met /v1/v1/models 404 with 'check the URL'; a key the server
    refuses was told to set api_key_env, which was set."""
    from playbook.helpers import server
    from tests.support import start_fake, stop_fake

    proc, url = start_fake(FAKE_API_KEY="right-key")
    try:
        with pytest.raises(ServerUnreachableError) as exc:
            server.list_models(url + "/v1", api_key="right-key")
        assert f"drop the trailing /v1: give {url}" in str(exc.value.fix)
        with pytest.raises(ServerUnreachableError) as exc:
            server.list_models(url, api_key="wrong-key")
        assert "refused the API key" in str(exc.value.fix) and "wrong-key" not in str(exc.value)
        with pytest.raises(ServerUnreachableError) as exc:
            server.list_models(url)
        assert "set api_key_env" in str(exc.value.fix)
        assert server.list_models(url, api_key="right-key")
    finally:
        stop_fake(proc)
