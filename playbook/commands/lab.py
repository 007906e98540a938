"""playbook lab: the interactive walkthrough, JupyterLab on 127.0.0.1 over a workspace.

Creates the workspace when needed (as ``playbook init``), optionally writes a profile's values into
its notebooks (an ``injected-parameters`` cell after each parameters cell, as papermill does),
starts JupyterLab with a random token and ``PLAYBOOK_INTERACTIVE=1`` (so ``ui.show_form`` shows its
forms), prints the URL of the first notebook and runs until Ctrl-C.

This process also hosts the workspace's server pool (:mod:`playbook.helpers.servers`): notebooks get
their vLLM servers from it, so a configuration starts once for the whole session, whichever notebook
asks first; the servers stop with JupyterLab. From a cell: ``servers.list_pooled()`` and
``servers.stop_pooled("spec-1")``.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from playbook.helpers import http_policy, reaper
from playbook.helpers.errors import ArtifactError, PlaybookError
from playbook.helpers.params import resolve_parameters
from playbook.helpers.servers import ENV as POOL_ENV
from playbook.helpers.servers import run_pool
from playbook.resources import INJECTED_TAG, copy_workspace, profile_path, refuse_run_directory, step_names

NAME = "lab"
HELP = "open the interactive walkthrough in JupyterLab (needs the 'interactive' extra)"
FIRST_NOTEBOOK = "notebooks/00_preflight.ipynb"
INSTALL_HINT = "pip install 'specdecode-playbook[interactive]'"


def add_arguments(p) -> None:
    p.add_argument("dir", nargs="?", default="workspace", help="workspace directory (created if missing; default ./workspace)")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: 8888 if free, else a free one)")
    p.add_argument("--profile", help="write this profile's values into the workspace notebooks (e.g. lab, embedded-cpu)")
    p.add_argument("--force", action="store_true",
                   help="re-copy the shipped notebooks into an existing workspace (a notebook you edited or ran is kept "
                        "as <name>.ipynb.bak-<time>; runs/ is kept; a run directory is refused)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser (automatic without a display)")
    p.add_argument("--startup-timeout", type=float, default=120, help="seconds to wait for JupyterLab to answer")


def require_jupyterlab() -> None:
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        raise PlaybookError("JupyterLab is not installed in this environment", f"install the interactive extra: {INSTALL_HINT}") from None


def free_port(preferred: int = 8888) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise PlaybookError("no free port on 127.0.0.1", "free a port or give --port")


def inject_parameters(notebook: Path, values: dict) -> None:
    """Put ``values`` in an injected-parameters cell right after the parameters cell (replacing one)."""
    import nbformat  # here, not at the top: ~0.3 s that other commands need not pay (playbook/cli.py drops the 2 s more)

    nb = nbformat.read(notebook, as_version=4)
    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.metadata.get("tags", [])]
    idx = next((i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])), None)
    if idx is None or not values:
        return
    lines = ["# Values from the profile given to `playbook lab` (they override the cell above)."]
    lines += [f"{k} = {v!r}" for k, v in values.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    cell.metadata["tags"] = [INJECTED_TAG]
    nb.cells.insert(idx + 1, cell)
    nbformat.validate(nb)
    notebook.write_text(nbformat.writes(nb) + "\n")


def prepare_workspace(directory: str, profile: str | None = None, force: bool = False) -> Path:
    """The workspace, created (or re-copied with force) and, with a profile, parameterised."""
    ws = Path(directory).expanduser().resolve()
    refuse_run_directory(ws, "lab")  # its notebooks are a run's executed record, not a workspace to open and re-run
    nb_dir = ws / "notebooks"
    exists = nb_dir.is_dir() and any(nb_dir.glob("*.ipynb"))
    if exists and not force:
        if profile:
            raise ArtifactError(f"{ws} already has notebooks; --profile only parameterises new ones",
                                "add --force to re-copy the notebooks with the profile's values (a notebook you "
                                "edited or ran is kept as <name>.ipynb.bak-<time>; runs/ is kept)")
        return ws
    # Validate the profile for every step before copying anything.
    from playbook.runner import profile_values  # a profile's relative paths read from its own directory

    per_step = resolve_parameters(profile_values(profile_path(profile)), {}, step_names()) if profile else {}
    done = copy_workspace(ws, force=True, command="lab")
    if exists and force:
        from playbook.commands.init import forced_lines

        first, *kept = forced_lines(done)
        _say(first)
        for line in kept:
            _say(f"  {line}")
    ws = done.path
    for step, values in per_step.items():
        inject_parameters(nb_dir / f"{step}.ipynb", values)
    return ws


def jupyter_command(ws: Path, port: int, open_browser: bool) -> list[str]:
    first = f"/lab/tree/{FIRST_NOTEBOOK}"
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={ws}", f"--LabApp.default_url={first}",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly",
    ]
    if not open_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI run as root
        cmd.append("--allow-root")
    return cmd


def wait_ready(proc: subprocess.Popen, url: str, token: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    req = urllib.request.Request(f"{url}/api/status", headers={"Authorization": f"token {token}"})
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PlaybookError(f"JupyterLab exited with code {proc.returncode} before it answered",
                                "read its log above; a busy port? give --port")
        try:
            with http_policy.urlopen(req, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise PlaybookError(f"JupyterLab did not answer at {url} within {timeout_s:.0f} s", "raise --startup-timeout")


def stop(proc: subprocess.Popen, grace_s: float = 20) -> None:
    """SIGTERM the server's process group (it shuts its kernels down), SIGKILL after grace_s."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run(args) -> int:
    if not 0 <= args.port <= 65535 or not 0 < args.startup_timeout < float("inf"):
        from playbook.helpers.errors import ParameterError

        raise ParameterError(f"--port {args.port} / --startup-timeout {args.startup_timeout:g} out of range",
                             "give a port in 1..65535 (or leave --port out) and a positive --startup-timeout")
    require_jupyterlab()
    ws = prepare_workspace(args.dir, args.profile, args.force)
    port = args.port or free_port()
    token = secrets.token_hex(24)
    open_browser = not args.no_browser and bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                                                or sys.platform == "darwin")
    # The token travels in the environment, not argv (argv is visible to every user in `ps`).
    # Notebooks opened here write to this workspace's runs/interactive/, whatever the shell had set.
    run_dir = (Path(ws) / "runs" / "interactive").resolve()
    env = {**os.environ, "JUPYTER_TOKEN": token, "PLAYBOOK_INTERACTIVE": "1", "PLAYBOOK_RUN_DIR": str(run_dir)}
    base = f"http://127.0.0.1:{port}"
    # Our own process group gets Ctrl-C (or SIGTERM); JupyterLab, in its own session, gets a clean
    # SIGTERM from stop() so it shuts its kernels down.
    signal.signal(signal.SIGTERM, _interrupt)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, _interrupt)  # the terminal closed
    if hasattr(signal, "SIGPIPE"):  # `playbook lab | tee lab.log`, tee gone first: a failed print, not death
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    with run_pool(run_dir, _say, handle_sigterm=False) as pool:  # servers live while JupyterLab runs
        env[POOL_ENV] = pool.address or ""
        return _serve(jupyter_command(ws, port, open_browser), ws, env, base, token, args.startup_timeout)


def _say(msg: str, stream=None) -> None:
    """Print, and go on when the reader is gone (EPIPE): JupyterLab must still be stopped."""
    try:
        print(msg, file=stream or sys.stderr, flush=True)
    except (BrokenPipeError, OSError, ValueError):
        pass


def _serve(cmd: list[str], ws: Path, env: dict, base: str, token: str, startup_timeout: float) -> int:
    """Run JupyterLab until it exits or Ctrl-C / SIGTERM; stop it cleanly either way."""
    proc = watchdog = None
    try:
        proc = subprocess.Popen(cmd, cwd=ws, env=env, start_new_session=True)
        # JupyterLab and its kernels stop when this process ends for any reason, SIGKILL included: the
        # same watchdog as the vLLM servers' (it sees EOF on a pipe only this process holds)
        watchdog = reaper.start_reaper(proc.pid, grace_s=20)
        wait_ready(proc, base, token, startup_timeout)
        _say(f"\nworkspace: {ws}\nrun dirs:  {ws / 'runs'} (interactive runs: runs/interactive; "
             f"`playbook report {ws / 'runs' / 'interactive'}` builds the report)", sys.stdout)
        _say(f"JupyterLab: {base}/lab/tree/{FIRST_NOTEBOOK}?token={token}\nstop with Ctrl-C", sys.stdout)
        return proc.wait() or 0
    except KeyboardInterrupt:
        _say("\nstopping JupyterLab ...")
        return 0
    finally:
        if proc is not None:
            stop(proc)
        if watchdog is not None:
            watchdog.disarm()
