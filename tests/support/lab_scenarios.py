"""Issue 17, point 4: `playbook lab` ended in the ways a user ends it, and what it leaves behind.

Real processes and signals: the lab's stdout is a pipe whose reader goes away (``playbook lab | tee``,
then Ctrl-C: tee exits first) before SIGTERM; or the lab is killed with SIGKILL (no handler runs: the
watchdog of helpers/reaper.py stops JupyterLab). Used by tests/faults/test_lab_orphans.py and
benchmarks/faults/run.py. Needs JupyterLab (the 'interactive' extra).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playbook.helpers import reaper
from tests.support.scenarios import Outcome


def start_lab(ws: Path) -> tuple[subprocess.Popen, int]:
    """The lab, its stdout a pipe held here; returns it and JupyterLab's pid once it answers."""
    env = {**os.environ, "PLAYBOOK_HOME": str(ws / "home"), "BROWSER": "true"}
    env.pop("DISPLAY", None)
    lab = subprocess.Popen([sys.executable, "-m", "playbook", "lab", str(ws / "w"), "--no-browser",
                            "--startup-timeout", "240"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.monotonic() + 300
    for line in iter(lab.stdout.readline, b""):
        if b"JupyterLab: http" in line or time.monotonic() > deadline:
            break
    jupyter = [p for p in reaper.descendants(lab.pid) if b"jupyterlab" in _cmdline(p)]
    if lab.poll() is not None or not jupyter:
        lab.kill()
        raise RuntimeError("playbook lab did not bring JupyterLab up")
    return lab, jupyter[0]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not reaper.is_running(pid):
            return True
        time.sleep(0.5)
    return False


def lab_ends(how: str) -> Outcome:
    """how: 'reader-gone-then-sigterm' or 'sigkill'."""
    out = Outcome(f"lab {how}")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lab-fault-") as tmp:
        lab, jupyter = start_lab(Path(tmp))
        try:
            watched = [jupyter, *reaper.descendants(jupyter)]
            if how == "sigkill":
                lab.kill()
            else:
                lab.stdout.close()  # tee exited: the next print to stdout gets EPIPE
                lab.send_signal(signal.SIGTERM)
            lab.wait(timeout=60)
            out.check("JupyterLab stopped", gone(jupyter, 60))
            out.orphans = sum(not gone(p, 10) for p in watched)
            if how != "sigkill":
                out.check("lab exited 0, not killed by SIGPIPE", lab.returncode == 0)
            out.detail = f"lab exit {lab.returncode}, JupyterLab pid {jupyter}, {len(watched)} processes watched"
        finally:
            for pid in (lab.pid, jupyter):
                if reaper.is_running(pid):
                    reaper.kill_tree(pid, grace_s=5)
    out.seconds = time.monotonic() - t0
    return out.finish()


LAB_SCENARIOS = {f"lab {how}": (lambda how=how: lab_ends(how)) for how in ("reader-gone-then-sigterm", "sigkill")}
