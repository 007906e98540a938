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

import json
import os
import warnings
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from .errors import ArtifactError

M = TypeVar("M", bound=BaseModel)


class TruncatedRecordWarning(UserWarning):
    """A JSONL file ended with a partial line (the writer was killed mid-write)."""


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
                        "choose a writable location with --runs-dir or -p run_dir=...",
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
            raise ArtifactError(
                f"the run directory {self.path} is not writable: {exc.strerror or exc}",
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
        data = json.loads(path.read_text())
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


def read_jsonl(path: Path) -> list[dict]:
    """Read every complete record; a truncated or corrupt line is dropped with a warning."""
    path = Path(path)
    if not path.exists():
        return []
    records: list[dict] = []
    with open(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                warnings.warn(
                    f"{path.name} line {lineno}: dropped a truncated or corrupt record "
                    "(the writer was probably killed mid-write)",
                    TruncatedRecordWarning,
                    stacklevel=2,
                )
                continue
            if not isinstance(record, dict):  # valid JSON, but no record the playbook wrote
                raise ArtifactError(f"{path} line {lineno} is not a JSON object (a {type(record).__name__})",
                                    "remove that line or restore the file: each line is one {...} record")
            records.append(record)
    return records


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
