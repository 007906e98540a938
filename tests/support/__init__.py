"""What tests and benchmarks share: import it as ``tests.support`` (the repo root is on sys.path).

- :mod:`.fake_openai`: an OpenAI-style server for fault injection only, run as a process (:func:`start_fake`);
- :mod:`.scenarios`: the injected faults of tests/faults and benchmarks/faults;
- :mod:`.tiny_models`: tiny random Llama checkpoints of the shipped pair's shape;
- :mod:`.decide_fixtures`: step results of a made-up run, for the decision and the report;
- :mod:`.spec_probe`: greedy probes of a real speculative server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

FAKE_OPENAI = Path(__file__).with_name("fake_openai.py")


def free_port() -> int:
    """A port nobody listens on now (on 127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_fake(port: int | None = None, **env: str) -> tuple[subprocess.Popen, str]:
    """fake_openai.py as a process in its own session (``env``: FAKE_METRICS, FAKE_API_KEY, ...);
    returns (process, url) once it listens."""
    port = port or free_port()
    proc = subprocess.Popen([sys.executable, str(FAKE_OPENAI), str(port)], stdout=subprocess.PIPE,
                            env={**os.environ, **env}, start_new_session=True)
    assert proc.stdout.readline().strip() == b"ready"
    return proc, f"http://127.0.0.1:{port}"


def stop_fake(proc: subprocess.Popen) -> None:
    """SIGKILL the fake's whole process group (if it still runs) and reap it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
