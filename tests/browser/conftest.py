"""Fixtures for the browser test: `playbook lab` on a tmp workspace, and headless Debian Chromium.

The browser is the system's Chromium driven by Selenium through the system's chromedriver
(Debian: `apt-get install chromium chromium-driver`); nothing is downloaded at run time.
Screenshots go to test-artifacts/browser/ (gitignored).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,1000",
]
URL_LINE = re.compile(r"^JupyterLab: (http://\S+)$")


def _find(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="session")
def browser_tools():
    """(chromium, chromedriver) paths; a clear failure naming the install when one is missing."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail("selenium is not installed: pip install 'specdecode-playbook[dev]' (it lists selenium)")
    chromium = _find("chromium", "chromium-browser")
    driver = _find("chromedriver")
    if not chromium or not driver:
        pytest.fail("Chromium or chromedriver is missing: apt-get install -y chromium chromium-driver")
    return chromium, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabServer:
    url: str  # of 00_preflight, with the token
    workspace: Path
    proc: subprocess.Popen  # `playbook lab`, leader of its own process group


@pytest.fixture
def lab(tmp_path):
    """`playbook lab --profile lab` on a fresh workspace, stopped (with its kernels) afterwards."""
    ws = tmp_path / "ws"
    jupyter_home = tmp_path / "jupyter"
    env = {
        **os.environ,
        # Isolate JupyterLab's settings and remembered layouts from the user's own.
        "JUPYTER_CONFIG_DIR": str(jupyter_home / "config"),
        "JUPYTERLAB_WORKSPACES_DIR": str(jupyter_home / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(jupyter_home / "runtime"),
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path / "lab.log"
    cmd = [sys.executable, "-m", "playbook", "lab", str(ws), "--profile", "lab", "--no-browser",
           "--port", str(_free_port())]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=tmp_path,
                                start_new_session=True)
    try:
        url = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and url is None:
            line = proc.stdout.readline()
            if not line:
                break
            m = URL_LINE.match(line.strip())
            url = m.group(1) if m else None
        if url is None:
            pytest.fail(f"`playbook lab` printed no URL (exit {proc.poll()}):\n{log_path.read_text()[-3000:]}")
        yield LabServer(url, ws, proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # playbook lab stops JupyterLab and its kernels
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        proc.stdout.close()


@pytest.fixture
def driver(browser_tools, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never download a driver
    chromium, chromedriver = browser_tools
    opts = Options()
    opts.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    drv = webdriver.Chrome(options=opts, service=Service(executable_path=chromedriver))
    drv.set_page_load_timeout(120)
    try:
        yield drv
    finally:
        drv.quit()


@pytest.fixture
def shots(request):
    """shots(name) saves a screenshot as test-artifacts/browser/<test>-<name>.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)

    def save(drv, name: str) -> Path:
        path = SHOTS / f"{request.node.name}-{name}.png"
        drv.save_screenshot(str(path))
        return path

    return save
