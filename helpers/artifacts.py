"""Run-directory I/O: append-only JSONL for raw records, JSON for step results, parquet for tables.

Layout of a run directory::

    runs/<timestamp>/
      run.json              the runner's state: parameters, step statuses, versions
      notebooks/            executed notebooks
      artifacts/            <step>.json result models, *.jsonl raw records, *.parquet tables, *.png,
                            phases.jsonl (the phase log: what a resumed run may reuse)
      server-logs/          one log per managed vLLM server
      report.html, decision.json, summary.md

Raw records are appended and flushed (fsync) one line at a time, so a crash loses at most what was
in flight; a truncated last line (kill -9 mid-write) is dropped with a warning on read.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import warnings
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError
from pydantic_core import to_jsonable_python

from .errors import ArtifactError

M = TypeVar("M", bound=BaseModel)


class TruncatedRecordWarning(UserWarning):
    """A JSONL file ended with a partial line (the writer was killed mid-write)."""


class DamagedRecordWarning(TruncatedRecordWarning):
    """A JSONL record held NaN or Infinity (the file was edited or damaged): it was dropped, not averaged."""


class NonFiniteNumberError(ValueError):
    """A JSON result holds NaN or Infinity: Python's json accepts them, no step writes them, so the file is damaged
    (hand-edited, or written by another tool); it is rejected as a truncated file is."""


def nonfinite_field(data: Any, where: str = "") -> tuple[str, float] | None:
    """The first number in ``data`` that is NaN or +-Infinity, as (its path ``levels[2].speedup``, the value), else None."""
    if isinstance(data, float):
        return None if math.isfinite(data) else (where or "the top level", data)
    if isinstance(data, dict):
        items = ((f"{where}.{k}" if where else str(k), v) for k, v in data.items())
    elif isinstance(data, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(data))
    else:
        return None
    for path, value in items:
        if (bad := nonfinite_field(value, path)) is not None:
            return bad
    return None


def describe_nonfinite(value: float) -> str:
    """'NaN (not a number)', 'Infinity' or '-Infinity', as the file spells it."""
    return "NaN (not a number)" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def loads_finite(text: str, name: str = "the file") -> Any:
    """``json.loads`` that refuses NaN and Infinity (:class:`NonFiniteNumberError`, naming ``name`` and the field)."""
    data = json.loads(text)
    bad = nonfinite_field(data)
    if bad is not None:
        raise NonFiniteNumberError(
            f"{name}: {bad[0]} is {describe_nonfinite(bad[1])}: the file is damaged (no step writes that); re-run the "
            "step that wrote it, or restore the file")
    return data


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    return obj


class RunDir:
    """A run directory. Creating one checks that it is writable before any measurement starts."""

    def __init__(self, path: str | os.PathLike, create: bool = True):
        self.path = Path(path).expanduser().resolve()
        if create:
            for sub in ("artifacts", "server-logs", "notebooks"):
                try:
                    (self.path / sub).mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise ArtifactError(
                        f"cannot create the run directory {self.path}: {exc.strerror or exc}",
                        "choose a writable location: `playbook run --runs-dir DIR`, `playbook load|sweep|lossless "
                        "--run-dir DIR`, or PLAYBOOK_RUN_DIR=DIR for a notebook",
                    ) from exc
            self.check_writable()
        elif self.path.exists() and not self.path.is_dir():
            raise ArtifactError(f"{self.path} is a file, not a run directory", "give the run's directory (runs/<timestamp>)")
        elif not self.path.is_dir():
            raise ArtifactError(f"run directory {self.path} does not exist", "check the path you gave")

    # -- layout -------------------------------------------------------------------------------
    @property
    def artifacts(self) -> Path:
        return self.path / "artifacts"

    @property
    def server_logs(self) -> Path:
        return self.path / "server-logs"

    @property
    def notebooks(self) -> Path:
        return self.path / "notebooks"

    def artifact(self, name: str) -> Path:
        return self.artifacts / name

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    # -- checks -------------------------------------------------------------------------------
    def check_writable(self, min_free_mb: int = 50) -> None:
        """Fail early, with a clear message, if nothing can be written here (read-only, disk full)."""
        probe = self.path / ".write-probe"
        try:
            with open(probe, "wb") as fh:
                fh.write(b"0" * 4096)
                fh.flush()
                os.fsync(fh.fileno())
            probe.unlink()
        except OSError as exc:
            denied = exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)  # read-only, not full
            raise ArtifactError(
                f"the run directory {self.path} is {'read-only' if denied else 'not writable'}: {exc.strerror or exc}",
                f"copy it somewhere writable (cp -a {self.path} <dir>) and resume the copy" if denied else
                "free some disk space or choose another directory before measuring",
            ) from exc
        st = os.statvfs(self.path)
        free_mb = st.f_bavail * st.f_frsize / 2**20
        if free_mb < min_free_mb:
            raise ArtifactError(
                f"only {free_mb:.0f} MB free under {self.path}; the run needs at least {min_free_mb} MB",
                "free some disk space or choose another directory before measuring",
            )

    # -- JSON results -------------------------------------------------------------------------
    def write_json(self, name: str, data: Any) -> Path:
        """Write a result (a pydantic model or plain data) atomically to artifacts/<name>."""
        path = self.artifact(name)
        write_json_atomic(path, _to_jsonable(data))
        return path

    def read_json(self, name: str, model: type[M] | None = None) -> Any:
        path = self.artifact(name)
        if not path.exists():
            return None
        data = loads_finite(path.read_text(), path.name)  # NaN / Infinity: damaged, as a truncated file is
        return model.model_validate(data) if model else data

    def read_json_if_valid(self, name: str, model: type[M] | None = None) -> Any:
        """Like :meth:`read_json`, for a reader that shows what it can (the report): None when the artifact
        is missing, unreadable, not JSON, or not what ``model`` describes."""
        try:
            return self.read_json(name, model)
        except (OSError, ValueError):  # pydantic's ValidationError and JSONDecodeError are ValueErrors
            return None

    def has(self, name: str) -> bool:
        return self.artifact(name).exists()

    # -- JSONL raw records --------------------------------------------------------------------
    def append_jsonl(self, name: str, record: Any) -> None:
        append_jsonl(self.artifact(name), record)

    def read_jsonl(self, name: str) -> list[dict]:
        return read_jsonl(self.artifact(name))

    # -- tables -------------------------------------------------------------------------------
    def write_parquet(self, name: str, frame) -> Path:
        path = self.artifact(name)
        tmp = path.with_suffix(path.suffix + ".tmp")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
        return path


RUN_STATE = "run.json"


def _read_run_state(run_dir: str | os.PathLike | RunDir | None) -> dict | None:
    """run.json as a dict; {} when there is none (or no run directory: a step run on its own), None when it is not a
    JSON object (truncated, hand-edited)."""
    if run_dir is None:
        return {}
    path = Path(getattr(run_dir, "path", run_dir)) / RUN_STATE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def run_state(run_dir: str | os.PathLike | RunDir | None) -> dict:
    """A run directory's run.json (the runner's state) as a dict, for readers that can do without it: {} when
    there is none (an interactive run) or it is unreadable (:func:`run_state_unreadable` tells which). The runner
    itself validates it (playbook.runner.load_state)."""
    return _read_run_state(run_dir) or {}


def run_state_unreadable(run_dir: str | os.PathLike | RunDir | None) -> bool:
    """run.json exists but is not a JSON object (truncated, hand-edited)."""
    return _read_run_state(run_dir) is None


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(_to_jsonable(data), fh, indent=2, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def append_jsonl(path: Path, record: Any) -> None:
    """Append one record as one line, flushed to disk before returning.

    If the file ends with a partial line (its writer was killed mid-write), the new record starts on
    a line of its own, so only the partial record is lost (and dropped with a warning on read), never
    the new one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(_to_jsonable(record), default=str, separators=(",", ":"))
    with open(path, "ab") as fh:
        if fh.tell() and not _ends_with_newline(path):
            line = "\n" + line
        fh.write((line + "\n").encode())
        fh.flush()
        os.fsync(fh.fileno())


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def repair_jsonl(path: Path) -> str | None:
    """Cut a truncated last line (kill -9 mid-write) off a JSONL file before appending to it again.

    The cut bytes are kept in ``<name>.truncated``; returns a warning naming the file and line, or
    None when the file ends cleanly.
    """
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return None
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1  # 0 when the only line is partial
    tail = data[cut:]
    if not tail:
        return None
    try:
        json.loads(tail)
        complete = True
    except ValueError:
        complete = False
    if complete:  # a whole record that only lacks its newline
        with open(path, "ab") as fh:
            fh.write(b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        return None
    with open(path.with_name(path.name + ".truncated"), "ab") as fh:
        fh.write(tail + b"\n")
    with open(path, "r+b") as fh:
        fh.truncate(cut)
        fh.flush()
        os.fsync(fh.fileno())
    lineno = data.count(b"\n") + 1
    return (f"{path.name} line {lineno}: dropped a truncated record ({len(tail)} bytes; the writer was killed "
            f"mid-write); kept in {path.name}.truncated")


REQUEST_RECORDS_SUFFIX = "_requests.jsonl"  # 40_sweep_requests.jsonl, 50_load_requests.jsonl


def read_jsonl(path: Path) -> list[dict]:
    """Read every complete record; truncated or corrupt lines are dropped with one warning counting them. Request
    records (``*_requests.jsonl``: measured times, null when missing) holding NaN or Infinity are damaged and dropped
    too (a damaged number must not be averaged), with a warning naming the field; other files keep theirs (a
    Prometheus gauge may read NaN, which the metrics samples record as it was)."""
    path = Path(path)
    if not path.exists():
        return []
    records: list[dict] = []
    dropped: list[int] = []
    damaged: list[tuple[int, str]] = []
    with open(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                dropped.append(lineno)
                continue
            if not isinstance(record, dict):  # valid JSON, but no record the playbook wrote
                raise ArtifactError(f"{path} line {lineno} is not a JSON object (a {type(record).__name__})",
                                    "remove that line or restore the file: each line is one {...} record")
            bad = nonfinite_field(record) if path.name.endswith(REQUEST_RECORDS_SUFFIX) else None
            if bad is not None:
                damaged.append((lineno, f"{bad[0]} is {describe_nonfinite(bad[1])}"))
                continue
            records.append(record)
    if dropped:
        warnings.warn(dropped_records(path.name, dropped, lineno), TruncatedRecordWarning, stacklevel=2)
    if damaged:
        n = len(damaged)
        shown = "; ".join(f"line {ln}: {what}" for ln, what in damaged[:3]) + (f"; and {n - 3} more" if n > 3 else "")
        warnings.warn(f"{path.name}: dropped {n} record{'s' if n != 1 else ''} holding NaN or Infinity ({shown}): the "
                      "file was edited or damaged; those records are left out, not averaged", DamagedRecordWarning,
                      stacklevel=2)
    return records


def dropped_records(name: str, dropped: list[int], last: int) -> str:
    """The warning for the lines of ``name`` that were no complete record: how many, which, and the likely cause."""
    n = len(dropped)
    shown = ", ".join(map(str, dropped[:5])) + (f" and {n - 5} more" if n > 5 else "")
    cause = ("the writer was probably killed mid-write" if dropped == [last]
             else "the file was cut or edited: what those lines held is lost")
    return (f"{name}: dropped {n} truncated or corrupt record{'s' if n != 1 else ''} "
            f"(line{'s' if n != 1 else ''} {shown}; {cause})")


def json_file_problem(path: Path, exc: Exception) -> str:
    """What is wrong in a JSON file that failed to load into a model: where its syntax breaks (line, column),
    or which field holds what instead of what it should (``steps[2].status = 123: Input should be ...``)."""
    if isinstance(exc, json.JSONDecodeError) and not exc.doc.strip():
        return f"{path} is empty"
    if isinstance(exc, json.JSONDecodeError):
        return f"{path} is not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
    if isinstance(exc, UnicodeDecodeError):
        return f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason})"
    if not isinstance(exc, ValidationError):
        return f"{path} cannot be read: {str(exc).splitlines()[0][:200]}"
    errors = exc.errors(include_url=False)
    fields = [_field_problem(e) for e in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    n = len(errors)
    return f"{path} has {n} wrong field{'s' if n != 1 else ''}: {'; '.join(fields)}{more}"


def _field_problem(err: dict) -> str:
    """One pydantic error as ``field path = value: what it should be``."""
    where = field_path(err["loc"]) or "the top level"
    if err["type"] == "missing":
        return f"{where} is missing"
    value = json.dumps(err.get("input"), default=str)
    value = value if len(value) <= 60 else value[:57] + "..."
    return f"{where} = {value}: {_expected(err['msg'])}"


JSON_TYPES = {"a valid dictionary": "a JSON object {...}", "a valid list": "a JSON list [...]",
              "a valid string": "a string in double quotes", "a valid number": "a number"}


def _expected(msg: str) -> str:
    """pydantic's ``Input should be a valid list`` as ``should be a JSON list [...]``: in the words of the file."""
    msg = re.sub(r" or instance of \w+$", "", msg.removeprefix("Input "))
    for name, json_name in JSON_TYPES.items():
        msg = msg.replace(name, json_name)
    return msg


def field_path(loc: Iterable[str | int]) -> str:
    """A pydantic error location as a path into the JSON: ``('steps', 2, 'status')`` -> ``steps[2].status``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


PHASES_JSONL = "phases.jsonl"


class PhaseLog:
    """The one resume mechanism: an append-only log of measured phases (``artifacts/phases.jsonl``).

    An entry is keyed by (step, phase key, parameter fingerprint) and holds a status and the phase's
    result (e.g. its attempt ids, so its raw records can be read back). The latest entry of a key
    wins: an ``ok`` entry makes the phase done, a later ``failed`` one makes it undone again. The
    fingerprint comes from ``StepParams.fingerprint(exclude)``: a phase measured with other
    parameters is never reused. ``PhaseLog(run).done(step, key, fp)`` asks, ``.record(...)`` tells.
    """

    def __init__(self, run: RunDir, name: str = PHASES_JSONL):
        self.path = run.artifact(name)
        self._latest: dict[tuple[str, str, str], dict] = {}
        for row in read_jsonl(self.path):
            if {"step", "key", "fp"} <= row.keys():
                self._latest[(row["step"], row["key"], row["fp"])] = row

    def record(self, step: str, key: str, fp: str, status: str = "ok", result: Any = None,
               attempt: str = "") -> None:
        """Append one entry (fsynced) and make it the latest for its key."""
        row = {"step": step, "key": key, "fp": fp, "status": status, "attempt": attempt,
               "result": to_jsonable_python(result, fallback=str)}  # models nested in dicts too
        append_jsonl(self.path, row)
        self._latest[(step, key, fp)] = json.loads(json.dumps(row, default=str))

    def entry(self, step: str, key: str, fp: str) -> dict | None:
        """The latest entry of this phase if it is done (status ``ok``), else None."""
        row = self._latest.get((step, key, fp))
        return row if row is not None and row.get("status") == "ok" else None

    def done(self, step: str, key: str, fp: str) -> bool:
        return self.entry(step, key, fp) is not None

    def result(self, step: str, key: str, fp: str) -> Any:
        """The stored result of a done phase (None if it is not done)."""
        row = self.entry(step, key, fp)
        return row.get("result") if row else None


# -- results a command would replace ----------------------------------------------------------
BACKUP_PREFIX = "replaced-"
LAYOUT = ("artifacts", "server-logs", "notebooks")  # never moved themselves: their contents are


class PriorResults(BaseModel):
    """What a command would replace in a run directory, or leave stale beside its new results.

    Found before anything is written (:meth:`find`); without ``--force`` the command refuses, naming
    them (:meth:`refuse_unless`); with it they are moved, under their own relative paths, into
    ``artifacts/replaced-<UTC time>/`` (:meth:`back_up`): that folder is a run directory of its own,
    nothing is deleted, and no new record is ever appended to an earlier run's raw file.
    """

    run_dir: Path
    paths: list[str] = Field(default_factory=list, description="files and directories, relative to run_dir")
    phase_steps: list[str] = Field(default_factory=list,
                                   description=f"steps whose entries in artifacts/{PHASES_JSONL} would go stale")

    @classmethod
    def find(cls, run_dir: str | os.PathLike, patterns: Iterable[str], phase_steps: Iterable[str] = ()) -> PriorResults:
        """The entries of ``run_dir`` matching ``patterns`` (globs relative to it: ``artifacts/40_*``, ``*``),
        empty directories, hidden files and earlier backups left out; and those of ``phase_steps`` that the
        phase log has entries for."""
        root = Path(run_dir).expanduser().resolve()
        found: set[str] = set()
        if root.is_dir():
            for pattern in patterns:
                for path in root.glob(pattern):
                    found.update(_entries(root, path))
        logged = set() if f"artifacts/{PHASES_JSONL}" in found else _logged_steps(root)
        return cls(run_dir=root, paths=sorted(found), phase_steps=[s for s in phase_steps if s in logged])

    def __bool__(self) -> bool:
        return bool(self.paths or self.phase_steps)

    def describe(self, paths: Iterable[str] | None = None) -> str:
        """Every entry (or those of ``paths``), by its path in the run directory (a directory with its number
        of files), and the phase-log entries."""
        items = []
        for rel in self.paths if paths is None else paths:
            path = self.run_dir / rel
            if path.is_dir():
                n = sum(1 for f in path.rglob("*") if f.is_file())
                items.append(f"{rel}/ ({n} file{'s' if n != 1 else ''})")
            else:
                items.append(rel)
        if self.phase_steps and paths is None:
            items.append(f"the {', '.join(self.phase_steps)} entries of artifacts/{PHASES_JSONL}")
        return ", ".join(items)

    def refuse_unless(self, force: bool, command: str, what: str, error: type[Exception] = ArtifactError,
                      replaces: Iterable[str] | None = None) -> None:
        """Raise ``error`` naming every entry and the two ways out, unless there is none or ``force``. With
        ``replaces`` (the entries the command rewrites), the others are named apart as left stale."""
        if not self or force:
            return
        if replaces is None:
            which = f"would replace or leave stale {self.describe()}"
        else:
            replaced = [p for p in self.paths if p in set(replaces)]
            stale = [p for p in self.paths if p not in set(replaces)]
            which = " and ".join(([f"would replace {self.describe(replaced)}"] if replaced else [])
                                 + ([f"would leave stale beside its own results {self.describe(stale)}"] if stale else []))
        raise error(f"{self.run_dir} already holds {what}: `playbook {command}` {which}",
                    f"give a new directory with --run-dir (or leave --run-dir out), or pass --force to move them "
                    f"into {self.run_dir / 'artifacts' / BACKUP_PREFIX}<UTC time>/ first (nothing is deleted)")

    def back_up(self, command: str) -> Path | None:
        """Move every entry into a new ``artifacts/replaced-<UTC time>/`` under its own relative path (the phase
        log is copied there whole, then loses the entries of ``phase_steps``); returns that folder, or None
        when there was nothing to move. ``replaced.json`` in it says what was moved, when, and by what."""
        if not self:
            return None
        backup = _new_backup_dir(self.run_dir)
        for rel in self.paths:
            dst = backup / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(self.run_dir / rel), str(dst))
        if self.phase_steps:
            log = self.run_dir / "artifacts" / PHASES_JSONL
            (backup / "artifacts").mkdir(parents=True, exist_ok=True)
            shutil.copy2(log, backup / "artifacts" / PHASES_JSONL)
            keep = [row for row in read_jsonl(log) if row.get("step") not in self.phase_steps]
            tmp = log.with_suffix(".jsonl.tmp")
            with open(tmp, "w") as fh:
                fh.writelines(json.dumps(row, default=str, separators=(",", ":")) + "\n" for row in keep)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, log)
        write_json_atomic(backup / "replaced.json", {
            "replaced_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "by": f"playbook {command}",
            "paths": self.paths, "phase_log_steps": self.phase_steps})
        return backup


def _entries(root: Path, path: Path) -> list[str]:
    """``path``'s relative name, or, for a layout directory (artifacts/, ...), those of its entries; never a
    hidden file, an empty directory or an earlier backup."""
    rel = path.relative_to(root)
    if path.name.startswith(".") or (rel.parts[0] == "artifacts" and path.name.startswith(BACKUP_PREFIX)
                                     and path.is_dir()):
        return []
    if path.is_dir() and rel.as_posix() in LAYOUT:
        return [x for child in path.iterdir() for x in _entries(root, child)]
    if path.is_dir() and not any(path.iterdir()):
        return []
    return [rel.as_posix()]


def _logged_steps(root: Path) -> set[str]:
    log = root / "artifacts" / PHASES_JSONL
    if not log.is_file():
        return set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedRecordWarning)
        return {str(row.get("step")) for row in read_jsonl(log)}


def _new_backup_dir(run_dir: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = run_dir / "artifacts" / f"{BACKUP_PREFIX}{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path
