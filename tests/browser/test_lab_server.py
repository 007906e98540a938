"""`playbook lab` itself: localhost only, token required, the first notebook served, clean stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.error
import urllib.parse
import urllib.request

import pytest

pytestmark = pytest.mark.browser


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def test_lab_serves_the_workspace_with_a_token_and_stops_cleanly(lab):
    parts = urllib.parse.urlsplit(lab.url)
    token = urllib.parse.parse_qs(parts.query)["token"][0]
    base = f"{parts.scheme}://{parts.netloc}"
    assert parts.hostname == "127.0.0.1" and len(token) >= 32
    assert parts.path == "/lab/tree/notebooks/00_preflight.ipynb"

    assert _get(f"{base}/api/contents/notebooks")[0] == 403  # no token, no access
    status, body = _get(f"{base}/api/contents/notebooks", token)
    assert status == 200
    names = {item["name"] for item in json.loads(body)["content"]}
    assert {"00_preflight.ipynb", "20_memory.ipynb"} <= names
    assert (lab.workspace / "runs").is_dir()

    os.killpg(lab.proc.pid, signal.SIGTERM)  # what Ctrl-C or a service manager sends
    assert lab.proc.wait(timeout=60) == 0
    with pytest.raises(ProcessLookupError):
        os.killpg(lab.proc.pid, 0)  # nothing left in the `playbook lab` process group
    with socket.socket() as s, pytest.raises(OSError):  # and JupyterLab (its own group) has stopped
        s.connect((parts.hostname, parts.port))
