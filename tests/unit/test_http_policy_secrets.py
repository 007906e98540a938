"""Issue 17, point 5: one HTTP policy (proxies, CA bundle, the key stays with the named URL), secrets
redacted from server arguments, a --host override reported, the launch command quoted; plus the port
check (TIME_WAIT is free) and mathtext-safe plot labels."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import urllib.request

import pytest

from playbook.helpers import http_policy, redact


@pytest.mark.parametrize("url, loopback", [
    ("http://127.0.0.1:8000", True), ("http://localhost:1", True), ("http://[::1]:80", True),
    ("http://127.8.9.10", True), ("https://gpu-node:8000", False), ("http://10.0.0.1", False),
])
def test_loopback_never_goes_through_a_proxy(monkeypatch, url, loopback):
    monkeypatch.setenv("http_proxy", "http://proxy.corp:3128")
    monkeypatch.setenv("https_proxy", "http://proxy.corp:3128")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert http_policy.is_loopback(url) is loopback
    assert http_policy.proxy_for(url) == (None if loopback else "http://proxy.corp:3128")
    kwargs = http_policy.request_kwargs(url)
    assert kwargs["allow_redirects"] is False and kwargs.get("proxy") == http_policy.proxy_for(url)


def test_no_proxy_is_honoured(monkeypatch):
    monkeypatch.setenv("https_proxy", "http://proxy.corp:3128")
    monkeypatch.setenv("no_proxy", "gpu-node,.internal")
    assert http_policy.proxy_for("https://gpu-node:8000") is None
    assert http_policy.proxy_for("https://a.internal:8000") is None
    assert http_policy.proxy_for("https://elsewhere:8000") == "http://proxy.corp:3128"


def test_the_ca_bundle_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    assert http_policy.ca_bundle() == str(tmp_path / "ca.pem")
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "other.pem"))
    assert http_policy.ca_bundle() == str(tmp_path / "other.pem")


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list = []
    redirect_to = ""

    def do_GET(self):  # noqa: N802
        type(self).seen.append((self.server.server_address[1], self.path, self.headers.get("Authorization")))
        if self.path == "/go" and type(self).redirect_to:
            self.send_response(302)
            self.send_header("Location", type(self).redirect_to)
            self.end_headers()
            return
        body = json.dumps({"data": [{"id": "m"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def _serve():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_the_key_is_not_sent_to_another_host_on_a_redirect(monkeypatch):
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # a loopback URL must ignore it (else: refused)
    a, b = _serve(), _serve()
    try:
        _Recorder.seen = []
        # "localhost" vs "127.0.0.1": another origin, same machine
        _Recorder.redirect_to = f"http://localhost:{b.server_address[1]}/landing"
        req = urllib.request.Request(f"http://127.0.0.1:{a.server_address[1]}/go",
                                     headers={"Authorization": "Bearer s3cret"})
        with http_policy.urlopen(req, timeout=5) as resp:
            assert resp.status == 200
        (pa, _, auth_a), (pb, path_b, auth_b) = _Recorder.seen
        assert auth_a == "Bearer s3cret" and pb == b.server_address[1] and path_b == "/landing" and auth_b is None
    finally:
        a.shutdown()
        b.shutdown()


@pytest.mark.parametrize("args, shown", [
    (["--api-key", "s3cret", "--enforce-eager"], ["--api-key", "<redacted>", "--enforce-eager"]),
    (["--api-key=s3cret"], ["--api-key=<redacted>"]),
    (["--hf-token", "hf_x", "--max-num-batched-tokens", "512"], ["--hf-token", "<redacted>", "--max-num-batched-tokens", "512"]),
    (["--kv-cache-dtype", "fp8", "--tokenizer", "/m"], ["--kv-cache-dtype", "fp8", "--tokenizer", "/m"]),
])
def test_secrets_in_server_arguments_are_redacted(args, shown):
    assert redact.redact_args(args) == shown
    assert redact.redact_params({"extra_server_args": args, "seed": 1}) == {"extra_server_args": shown, "seed": 1}


def test_a_host_override_is_a_finding():
    assert redact.host_warning(["--host", "0.0.0.0"]) and "0.0.0.0" in redact.host_warning(["--host", "0.0.0.0"])
    assert redact.host_warning(["--host=::"]) is not None
    assert redact.host_warning(["--host", "127.0.0.1"]) is None and redact.host_warning([]) is None


def test_the_launch_command_quotes_values_and_hides_the_key():
    from playbook.helpers.schemas.server import ServerConfig
    from playbook.helpers.specconfig import launch_command

    cmd = launch_command(ServerConfig(model="/models/my model", api_key_env="MY_KEY",
                                      extra_args=["--api-key", "s3cret", "--chat-template", "a b"]))
    assert "s3cret" not in cmd and "'/models/my model'" in cmd and "'a b'" in cmd
    assert 'VLLM_API_KEY="$MY_KEY"' in cmd
    bad = launch_command(ServerConfig(model="/m", api_key_env="A$(touch /tmp/x)"))
    assert "$(" not in bad


def test_api_key_env_must_be_a_variable_name():
    from playbook.helpers.errors import ParameterError
    from playbook.helpers.params import PreflightParams, validate_params

    with pytest.raises(ParameterError, match="not an environment variable name"):
        validate_params(PreflightParams, {"api_key_env": "A$(cmd)"})
    assert validate_params(PreflightParams, {"api_key_env": "VLLM_KEY_2"}).api_key_env == "VLLM_KEY_2"


def test_a_port_in_time_wait_is_free():
    """A connection closed by the server side leaves its port in TIME_WAIT; the check must not call it busy."""
    from playbook.helpers.server import check_port_free

    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    cli = socket.create_connection(("127.0.0.1", port))
    conn, _ = srv.accept()
    conn.close()  # the server side closes first: TIME_WAIT on the server's port
    cli.close()
    srv.close()
    check_port_free("127.0.0.1", port)  # raises ServerStartError when TIME_WAIT counts as in use


def test_a_listening_port_is_still_busy():
    from playbook.helpers.errors import ServerStartError
    from playbook.helpers.server import check_port_free

    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        with pytest.raises(ServerStartError, match="already in use"):
            check_port_free("127.0.0.1", srv.getsockname()[1])


def test_a_workload_named_like_mathtext_plots(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from playbook.helpers import plots

    fig = plots.acceptance_by_temperature([{"workload": r"$\foo$", "temperature": 0.0, "acceptance_rate": 0.5},
                                           {"workload": "a$b", "temperature": 0.5, "acceptance_rate": 0.6}])
    fig.savefig(tmp_path / "x.png")  # mathtext would raise ValueError on "$\foo$"
    assert plots.plain_text(r"$\foo$") == r"\$\foo\$"


def test_the_launch_command_takes_the_key_from_api_key_env_never_a_value(tmp_path, monkeypatch):
    from playbook.helpers import steps
    from playbook.helpers.params import ReportParams, validate_params
    from tests.support.decide_fixtures import load, make_run, sweep

    monkeypatch.setenv("MY_VLLM_KEY", "s3cret-value")
    run = make_run(tmp_path / "run", sweep_result=sweep(), load_result=load({1: (1.6, 1.4, 1.8), 4: (1.3, 1.15, 1.45)}))
    p = validate_params(ReportParams, {"run_dir": str(run.path), "mode": "managed", "target_model": "embedded",
                                       "draft_model": "embedded", "api_key_env": "MY_VLLM_KEY"})
    result = steps.report(p, run)
    assert result.decision.verdict == "GO"
    assert 'VLLM_API_KEY="$MY_VLLM_KEY"' in result.decision.recommended.launch_command
    for name in ("decision.json", "summary.md"):
        assert "s3cret-value" not in (run.path / name).read_text(), name


@pytest.mark.parametrize("args", ["--api-key,s3cret-value", "--api-key=s3cret-value", "--hf-token s3cret-value",
                                  "--enforce-eager,--some-secret=s3cret-value"])
def test_a_secret_value_in_extra_server_args_is_refused_before_a_run_directory_exists(tmp_path, args):
    """It would be written into the executed notebooks (papermill's injected cell) and their HTML."""
    from playbook import runner
    from playbook.helpers.errors import ParameterError

    with pytest.raises(ParameterError) as err:
        runner.run_playbook(overrides={"extra_server_args": args}, only=["20"], runs_dir=str(tmp_path / "runs"))
    text = f"{err.value.problem} {err.value.fix}"
    assert "s3cret-value" not in text and "'extra_server_args'" in text and "a value: a secret" in text
    assert "environment" in text
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_bare_hf_token_flag_carries_no_secret_and_passes():
    from playbook.helpers.params import LoadParams, validate_params

    p = validate_params(LoadParams, {"mode": "managed", "target_model": "embedded", "draft_model": "embedded",
                                     "extra_server_args": "--hf-token,--enforce-eager"})
    assert p.extra_server_args == ["--hf-token", "--enforce-eager"]


def test_resume_of_a_run_json_holding_a_redacted_secret_says_where_the_key_goes_now(tmp_path, monkeypatch):
    """Older versions took a key in extra_server_args and recorded it redacted."""
    import json

    from playbook import runner
    from playbook.helpers.errors import ParameterError

    monkeypatch.setattr(runner, "_execute", lambda *a, **k: ([], []))  # no notebook: only what run.json records
    monkeypatch.setattr(runner, "build_html", lambda run: None, raising=False)
    out = runner.run_playbook(overrides={"extra_server_args": "--enforce-eager"}, only=["20"],
                              runs_dir=str(tmp_path / "runs"))
    state = tmp_path / "runs" / out.run_dir.split("/")[-1] / "run.json"
    data = json.loads(state.read_text())
    data["parameters"]["extra_server_args"] = ["--api-key", "<redacted>", "--enforce-eager"]
    state.write_text(json.dumps(data))
    with pytest.raises(ParameterError, match="redacted") as err:
        runner.run_playbook(resume=out.run_dir)
    assert "api_key_env" in err.value.fix


def test_a_host_override_is_a_preflight_warning(tmp_path, monkeypatch):
    from playbook.helpers import preflight, steps

    monkeypatch.setattr(preflight, "check_servers", lambda p, run, result: result)  # no server here
    from playbook.helpers.artifacts import RunDir
    from playbook.helpers.params import PreflightParams, validate_params

    p = validate_params(PreflightParams, {"mode": "managed", "target_model": "embedded", "draft_model": "embedded",
                                          "extra_server_args": "--host,0.0.0.0", "run_dir": str(tmp_path)})
    result = steps.preflight(p, RunDir(tmp_path / "r"))
    bind = [c for c in result.checks if c.name == "server bind address"]
    assert bind and bind[0].status == "warn" and "0.0.0.0" in bind[0].detail


def test_the_step_kernels_get_no_sigint_when_papermill_shuts_them_down(monkeypatch):
    """jupyter_client interrupts a kernel before every shutdown; ipykernel then logs "KeyboardInterrupt caught
    in kernel" when a handler is running, which read like a failure in a normal `make run` (issue 17)."""
    import asyncio
    import shutil

    from jupyter_client.manager import AsyncKernelManager

    from playbook import runner

    sent = []

    async def interrupt(self):
        sent.append(self.shutting_down)

    monkeypatch.setattr(AsyncKernelManager, "_async_interrupt_kernel", interrupt)
    km = runner.LocalKernelManager(kernel_name="python3")
    try:
        km.shutting_down = True
        asyncio.run(km._async_interrupt_kernel())
        assert sent == []  # no SIGINT on the way out
        km.shutting_down = False
        asyncio.run(km._async_interrupt_kernel())
        assert sent == [False]  # a real interrupt still goes through
    finally:
        while runner._KERNEL_DIRS:
            shutil.rmtree(runner._KERNEL_DIRS.pop(), ignore_errors=True)
