"""Run the notebooks in order with papermill into a run directory; resume; lock the workspace.

The only module that knows papermill. Notebooks talk to each other only through the run directory,
so an interrupted run (failing cell, Ctrl-C, kill -9) keeps every artifact written so far and
``--resume RUN_DIR`` re-runs the first unfinished step onwards.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
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
from playbook.helpers.artifacts import RunDir, json_file_problem, write_json_atomic
from playbook.helpers.errors import ArtifactError, ParameterError, RunLockedError
from playbook.helpers.params import (
    as_recorded,
    load_profile,
    merge_profile,
    resolve_parameters,
    with_mode_defaults,
)
from playbook.helpers.redact import has_redacted, redact_params
from playbook.helpers.schemas.run import RunOutcome, RunState, StepState
from playbook.helpers.specconfig import installed_vllm
from playbook.resources import notebook_for, profile_origin, profile_path, step_names

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
        "vllm": " ".join(installed_vllm() or ()) or None,
        "torch": ver("torch"),
        "papermill": ver("papermill"),
    }


# -- workspace lock ----------------------------------------------------------------------------
@contextmanager
def workspace_lock(runs_dir: Path, run_dir: Path | None = None):
    """One run per workspace at a time (they would fight over the same GPUs and ports).

    Taken before the run directory is made, so a refused run leaves nothing behind. Yields a
    function that records which run holds the lock (the message a second run prints).
    """
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        lock_path = runs_dir / ".playbook.lock"
        fh = open(lock_path, "a+")
    except OSError as exc:
        raise ArtifactError(
            f"cannot use {runs_dir} for runs: {exc.strerror or exc}",
            "choose a writable location with --runs-dir",
        ) from None
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

    def holder(path: Path) -> None:
        fh.seek(0)
        fh.truncate()
        fh.write(f"{path} (pid {os.getpid()}, started {_now()})\n")
        fh.flush()

    try:
        holder(run_dir if run_dir is not None else runs_dir)
        yield holder
    finally:
        try:
            fh.seek(0)
            fh.truncate()
        except OSError:
            pass
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
    try:
        return RunDir(path)
    except ArtifactError:  # not writable, disk full: leave no empty run directory behind
        shutil.rmtree(path, ignore_errors=True)
        raise


def load_state(run: RunDir) -> RunState:
    path = run.path / "run.json"
    if not path.exists():
        raise ArtifactError(f"{run.path} has no run.json: it is not a playbook run directory", "pass a directory made by `playbook run`")
    try:
        return RunState.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError and pydantic's ValidationError are ValueErrors
        raise ArtifactError(json_file_problem(path, exc), _keep_the_run(run)) from None


def _keep_the_run(run: RunDir) -> str:
    """The fix for a damaged run.json that keeps the run: it holds the runner's state, not the measurements."""
    return (f"correct that in {run.path / 'run.json'} with an editor: it holds the run's state, not its measurements "
            f"(artifacts/*.json and *.jsonl are untouched, and `playbook report {run.path}` re-decides from them); "
            f"if it cannot be mended, move it aside: `playbook report` then decides with the default thresholds "
            f"(give yours with -p NAME=VALUE)")


def save_state(run: RunDir, state: RunState) -> None:
    from playbook.helpers.servers import summarize

    state.servers = summarize(run.path) or state.servers  # the pool's accounting, up to now
    state.provenance = run_provenance(run, state)
    write_json_atomic(run.path / "run.json", state)


def run_provenance(run: RunDir, state: RunState):
    """The machine facts taken when the run started, with its servers and models as far as it got; a failure
    to read them never stops a run (the previous record stays)."""
    from types import SimpleNamespace

    from playbook.helpers import provenance

    try:
        return provenance.collect(run.path, SimpleNamespace(**state.parameters), previous=state.provenance)
    except Exception as exc:  # noqa: BLE001 - provenance is a record, not a step
        _stderr(f"warning: provenance not updated: {type(exc).__name__}: {exc}")
        return state.provenance


# -- executing one notebook ----------------------------------------------------------------------
def execute_step(run: RunDir, step: str, parameters: dict[str, Any], progress_bar: bool = False) -> Path:
    """Execute one step's notebook with papermill into run/notebooks/; raises on a failing cell."""
    import papermill

    src = notebook_for(step)
    out = run.notebooks / src.name
    params = {**parameters, "run_dir": str(run.path)}
    try:
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
    finally:
        while _KERNEL_DIRS:  # the kernel's IPC socket directory (jupyter removes the sockets, not the dir)
            shutil.rmtree(_KERNEL_DIRS.pop(), ignore_errors=True)
    return out


_KERNEL_DIRS: list[str] = []


def _kernel_manager_class():
    from jupyter_client.manager import AsyncKernelManager

    class _Local(AsyncKernelManager):
        """Kernels talk over IPC sockets in the run's temp dir: local only, no TCP port, no warning."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.transport = "ipc"
            _KERNEL_DIRS.append(tempfile.mkdtemp(prefix="playbook-kernel-"))
            self.ip = os.path.join(_KERNEL_DIRS[-1], "kernel")

        async def _async_interrupt_kernel(self):
            """jupyter_client interrupts (SIGINT) every kernel before shutting it down; papermill shuts it down
            after the last cell, so ipykernel logs "KeyboardInterrupt caught in kernel", which reads like a
            failure in a normal run (issue 17). A shutdown asks the kernel to exit, then kills it, anyway."""
            if self.shutting_down:
                return
            await super()._async_interrupt_kernel()

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


# -- workloads -----------------------------------------------------------------------------------
def _absolute_workload_paths(values: dict[str, Any], base: Path | None = None) -> dict[str, Any]:
    """A prompts file given relative to ``base`` (a profile's directory), else to where `playbook run` was started,
    made absolute: the notebooks run with the run directory as cwd."""
    from playbook.helpers.params import _split_list

    def fix(spec: Any) -> Any:
        if not isinstance(spec, str) or not spec or os.path.isabs(spec):
            return spec
        path = Path(spec).expanduser()
        for b in ([base] if base is not None else []) + [Path.cwd()]:
            if (b / path).is_file():
                return str((b / path).resolve())
        return spec

    out = dict(values)
    for name in ("workload", "mixed_workload"):
        if name in out:
            out[name] = fix(out[name])
    if "workloads" in out and isinstance(_split_list(out["workloads"]), list):
        out["workloads"] = [fix(w) for w in _split_list(out["workloads"])]
    return out


MODEL_PATHS = ("target_model", "draft_model")  # and draft_candidates' items, the *_checkpoints mappings' values


def _absolute_model_paths(values: dict[str, Any], base: Path | None = None, origin: str = "") -> dict[str, Any]:
    """Model directories made absolute (helpers/server.py resolve_model_path): ``$VAR`` and ``~`` expanded, a relative
    path read from ``base`` (the directory of the profile ``origin`` names), else from where `playbook run` was
    started. A path that does not exist is refused here, before any run directory exists."""
    import yaml

    from playbook.helpers.params import _parse_mapping, _split_list
    from playbook.helpers.server import resolve_model_path

    def fix(value: Any, what: str) -> Any:
        return resolve_model_path(value, base, what, origin)

    out = dict(values)
    for name in MODEL_PATHS:
        if name in out:
            out[name] = fix(out[name], name)
    if isinstance(_split_list(out.get("draft_candidates")), list):
        out["draft_candidates"] = [fix(d, "draft_candidates item") for d in _split_list(out["draft_candidates"])]
    for name in ("target_checkpoints", "draft_checkpoints"):
        try:
            mapping = _parse_mapping(out[name]) if name in out else None
        except (ValueError, yaml.YAMLError):  # YAML that does not parse: the parameter's validation says so
            continue
        if isinstance(mapping, dict) and mapping:
            out[name] = {k: fix(v, f"{name}[{k}]") for k, v in mapping.items()}
    return out


def profile_values(prof: Path) -> dict[str, Any]:
    """A profile's parameters, its model paths and prompts files read relative to its own directory."""
    values, where = load_profile(prof), prof.resolve().parent
    return _absolute_model_paths(_absolute_workload_paths(values, where), where, f"profile {prof.resolve()}")


def check_workloads(per_step: dict[str, dict[str, Any]]) -> None:
    """An unknown workload or a bad prompts file fails before any run directory or server exists."""
    from playbook.helpers.params import STEP_MODELS
    from playbook.helpers.workloads import check_specs

    for step in ("40_sweep", "50_load"):
        if step in per_step:
            check_specs(STEP_MODELS[step].model_validate(per_step[step]))


# -- the whole run -------------------------------------------------------------------------------
def run_playbook(
    profile: str | None = None,
    overrides: dict[str, Any] | None = None,
    only: list[str] | None = None,
    resume: str | None = None,
    runs_dir: str = "runs",
    progress: Progress = _stderr,
    force: bool = False,
) -> RunOutcome:
    """Validate everything, then execute the steps in order; the report step always runs last.

    A failing cell, or preflight's blocking checks (unless ``force``), stops the steps after it; a
    measuring step with a partial or empty result counts as failed too (resume measures the rest).
    The report is still built, and its verdict is then INCONCLUSIVE naming the step."""
    overrides = overrides or {}
    all_steps = step_names()

    prof: Path | None = None  # the profile file a new run reads
    if resume:
        run = RunDir(resume, create=False)
        state = load_state(run)
        values = {**as_recorded(state.parameters), **overrides}
        if has_redacted(values):
            raise ParameterError("run.json holds extra_server_args with a secret redacted (<redacted>), as older "
                                 "versions recorded one: the servers cannot be started again with it",
                                 "give the key through api_key_env (the servers get it as VLLM_API_KEY) and the other "
                                 "arguments again without it: --resume ... -p extra_server_args='...'")
        from playbook.helpers.provenance import imported_record

        if imported_record(run.path) is not None:  # nothing here was measured by the playbook: nothing to resume
            raise ParameterError(f"{run.path} holds results imported from another tool: there is nothing to measure "
                                 "or resume in it", f"rebuild its report with: playbook report {run.path}")
        todo = sorted(set(state.unfinished()) | {REPORT_STEP})  # the report is rebuilt: what it reads may have changed
        if only:  # the unfinished steps asked for, and steps this run has not had yet (it started with another --only)
            asked = {notebook_for(o).stem for o in only}
            had = {x.name for x in state.steps}
            finished = sorted(asked & had - set(todo) - {REPORT_STEP})
            if finished:
                progress(f"{', '.join(finished)} already done in this run, not measured again (to measure again: a new "
                         "run, or `playbook sweep|load --run-dir RUN --force`, which keeps the old results aside)")
            todo = sorted({s for s in todo if s in asked} | (asked - had) | {REPORT_STEP})
        runs_root = run.path.parent
    else:
        prof = profile_path(profile)
        values = merge_profile(profile_values(prof), overrides)
        todo = all_steps if not only else sorted({notebook_for(o).stem for o in only} | {REPORT_STEP})
        runs_root = Path(runs_dir).expanduser().resolve()
        state = None

    unknown = [s for s in todo if s not in all_steps]
    if unknown:
        raise ParameterError(f"unknown steps {unknown}", "choose from: " + ", ".join(all_steps))
    values = with_mode_defaults(values)  # e.g. vLLM's gpu_memory_utilization on a GPU mode, recorded in run.json
    values = _absolute_workload_paths(values)  # the notebooks run with the run directory as cwd
    values = _absolute_model_paths(values)
    origin = (f"values recorded in {run.path / 'run.json'}, with your -p overrides" if resume else
              f"profile read: {prof.resolve()}, {profile_origin(prof)}" if prof and profile else None)
    every = _resolve(values, all_steps, origin)  # each step's model validates every value anyway
    per_step = {s: every[s] for s in todo}
    values = _as_validated(values, every)  # run.json records concurrencies=[1, 8], not "1,8"
    if state is not None:
        _say_changes(state, values, progress)
    check_workloads(per_step)
    key_env = values.get("api_key_env")
    talks_to_servers = set(todo) - {"20_memory", REPORT_STEP}
    if key_env and talks_to_servers and not os.environ.get(str(key_env)):  # the key is never stored: set it again
        raise ParameterError(f"api_key_env names {key_env}, but that environment variable is not set",
                             f"export {key_env}=<key> before running, or set api_key_env to ''")
    measuring = [s for s in todo if s in MEASURING_STEPS]
    if only and not resume and measuring and "00_preflight" not in todo:  # said once the parameters are valid
        progress(f"note: {', '.join(measuring)} without 00_preflight: its checks (the vLLM version and the features "
                 "the run uses, the servers' reachability and metrics, the GPUs) are skipped; add it to run them "
                 f"first: --only 00 {' '.join(s[:2] for s in measuring)}")

    with workspace_lock(runs_root, run.path if state is not None else None) as hold:
        if state is None:
            run = new_run_dir(runs_root)
            state = RunState(
                run_id=run.path.name,
                created_at=_now(),
                profile=str(prof),
                parameters=redact_params(values),  # no --api-key value from extra_server_args in run.json
                steps=[StepState(name=s) for s in todo],
                versions=software_versions(),
            )
        else:
            run.check_writable()
            for msg in repair_records(run):
                progress(f"warning: {msg}")
            state.parameters = redact_params(values)
            for s in todo:
                st = state.step(s) if s in [x.name for x in state.steps] else None
                if st is None:
                    state.steps.append(StepState(name=s))
                else:
                    st.status, st.error = "pending", None
            state.steps.sort(key=lambda x: all_steps.index(x.name) if x.name in all_steps else len(all_steps))
        hold(run.path)
        save_state(run, state)
        if profile and prof is not None:  # which file, when a name could mean the workspace's copy or the shipped one
            progress(f"profile: {prof.resolve()} ({profile_origin(prof)})")
        progress(f"run directory: {run.path}")
        from playbook.helpers.servers import run_pool

        try:
            with run_pool(run.path, progress):  # each server configuration starts once, stops with the run
                failed, incomplete = _execute(run, state, todo, per_step, progress, force=force)
        finally:
            try:
                save_state(run, state)  # with the final server accounting
            except OSError:
                pass

    report = None
    if state.step(REPORT_STEP).status == "done":
        from playbook.report import build_html

        report = str(build_html(run))
    if failed or incomplete:
        progress(f"some steps failed or measured only part of what was asked; after fixing the cause, "
                 f"resume with: playbook run --resume {run.path}")
    return RunOutcome(run_dir=str(run.path), report=report, verdict=verdict_of(run),
                      failed_steps=failed + [s for s in incomplete if s not in failed])


MEASURING_STEPS = ("30_quantization", "40_sweep", "50_load")  # the steps that start or talk to vLLM servers


def _as_validated(values: dict[str, Any], every: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``values`` with each value replaced by its validated form (the type a step runs with), from ``every`` step's
    resolved parameters."""
    seen = {k: v for step in every.values() for k, v in step.items()}
    return {k: seen.get(k, v) for k, v in values.items()}


def _say_changes(state: RunState, values: dict[str, Any], progress: Progress) -> None:
    """On resume: which parameters differ from the ones the run recorded; finished steps keep what they measured."""
    before = state.parameters
    changed = [k for k in sorted(values) if k in before and before[k] != values[k] and values[k] != "<redacted>"]
    if changed:
        done = [s.name for s in state.steps if s.status == "done"]
        progress("parameters changed on resume: " + "; ".join(f"{k}: {before[k]!r} -> {values[k]!r}" for k in changed)
                 + (f" (steps already done keep what they measured with the old values: {', '.join(done)})"
                    if done else ""))


def _resolve(values: dict[str, Any], todo: list[str], origin: str | None) -> dict[str, dict[str, Any]]:
    """Every step's parameters, validated before any work; an error names where the values came from
    (``origin``: the profile file read, or the resumed run's run.json)."""
    try:
        return resolve_parameters({}, values, todo)
    except ParameterError as exc:
        if origin is None:
            raise
        raise type(exc)(f"{exc.problem} ({origin})", exc.fix) from None


def _execute(run: RunDir, state: RunState, todo: list[str], per_step: dict[str, dict[str, Any]],
             progress: Progress, force: bool = False) -> tuple[list[str], list[str]]:
    """Execute the steps in order; returns (failed steps, steps whose result is only partial).
    After a failed step or preflight's blocking checks, the remaining steps but the report are skipped."""
    failed: list[str] = []
    incomplete: list[str] = []
    for i, step in enumerate(todo, start=1):
        if (failed or "00_preflight" in incomplete) and step != REPORT_STEP:
            progress(f"[{i}/{len(todo)}] {step} not run: {(failed or incomplete)[0]} failed")
            continue
        st = state.step(step)
        st.status, st.started_at, st.error = "running", _now(), None
        save_state(run, state)
        progress(f"[{i}/{len(todo)}] {step} ...")
        t0 = time.monotonic()
        try:
            execute_step(run, step, per_step[step], progress_bar=sys.stderr.isatty())
            st.status = "done"
            missing = incomplete_result(run, step) or blocking_preflight(run, step)
            if missing and force and step == "00_preflight":
                progress(f"warning: --force: going on despite {missing}")
            elif missing:  # the notebook ran, but measured only part (or nothing): resume must measure the rest
                st.status, st.error = "failed", missing
                incomplete.append(step)
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
    return failed, incomplete


# Measuring steps that resume level by level (50) or point by point (40): a partial result (a server
# died mid-way) leaves the step unfinished, so `--resume` measures only what is missing.
PARTIAL_STEPS = ("40_sweep", "50_load")


def incomplete_result(run: RunDir, step: str) -> str | None:
    """Why a measuring step's result is partial or failed (its warnings, e.g. the missing levels), or None."""
    import json

    if step not in PARTIAL_STEPS:
        return None
    path = run.artifact(f"{step}.json")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return f"the step wrote no readable result ({path.name})"
    from playbook.helpers.evidence import measured_nothing

    if data.get("status") not in ("partial", "failed"):
        nothing = measured_nothing(step, data)
        return f"result {data.get('status')}, but {nothing}" if nothing else None
    missing = data.get("missing_levels") or []
    causes = [w for w in data.get("warnings") or [] if w not in missing]  # e.g. why a server did not start
    why = "; ".join(causes + missing) or data.get("finding", "")
    return f"result {data['status']}: {why}"[:2000]


def blocking_preflight(run: RunDir, step: str) -> str | None:
    """Preflight's failed checks (status 'fail'): they block the run unless `playbook run --force`."""
    import json

    if step != "00_preflight":
        return None
    try:
        data = json.loads(run.artifact("00_preflight.json").read_text())
    except (OSError, ValueError):
        return "preflight wrote no readable result (00_preflight.json)"
    fails = [f"{c.get('name')}: {c.get('detail', '')}".strip(": ") + (f" (fix: {c['fix']})" if c.get("fix") else "")
             for c in data.get("checks") or [] if c.get("status") == "fail"]
    if not fails and data.get("status") == "failed":
        fails = [data.get("finding") or "the step reported status 'failed'"]
    return ("blocking preflight checks failed (fix them, or run with --force): " + "; ".join(fails))[:2000] if fails else None


def repair_records(run: RunDir) -> list[str]:
    """Before a resumed run appends again: cut truncated last lines off the raw-record files."""
    from playbook.helpers.artifacts import repair_jsonl

    return [msg for path in sorted(run.artifacts.glob("*.jsonl")) if (msg := repair_jsonl(path))]
