"""The registry of engines started from the CLI (``playbook engine start|stop|status``).

Each engine serves the embedded tiny pair (:mod:`playbook.helpers.embedded`) detached from the CLI
process; the registry (``$PLAYBOOK_HOME/engines``, default ``~/.cache/specdecode-playbook/engines``)
remembers them, so ``stop`` and ``status`` work across CLI calls.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from playbook.helpers import reaper
from playbook.helpers.artifacts import write_json_atomic
from playbook.helpers.embedded import Speculative, embedded_server_config
from playbook.helpers.errors import ServerError
from playbook.helpers.schemas.server import EngineRecord
from playbook.helpers.server import ManagedServer, health_ok, launch
from playbook.helpers.specconfig import playbook_home


def registry_dir() -> Path:
    return playbook_home() / "engines"


def _record_path(port: int) -> Path:
    return registry_dir() / f"{port}.json"


def _is_alive(rec: EngineRecord) -> bool:
    return reaper.is_running(rec.pid, rec.proc_start_ticks)


def running_engines() -> list[EngineRecord]:
    """Engines started by `playbook engine start` that are still running (stale entries dropped)."""
    found = []
    for path in sorted(registry_dir().glob("*.json")):
        try:
            rec = EngineRecord.model_validate_json(path.read_text())
        except (OSError, ValueError):
            continue
        if _is_alive(rec):
            found.append(rec)
        else:
            path.unlink(missing_ok=True)
    return found


def start_engine(speculative: Speculative = "none", num_speculative_tokens: int = 4, port: int | None = None,
                 kv_cache_gib: float = 1.0, max_model_len: int = 1024, host: str = "127.0.0.1",
                 timeout_s: float = 300) -> EngineRecord:
    """Start a detached embedded engine (it outlives this process), wait for /health, register it."""
    config = embedded_server_config(speculative, num_speculative_tokens, port, kv_cache_gib, max_model_len, host)
    server: ManagedServer = launch(config, registry_dir() / "logs", timeout_s=timeout_s,
                                   name=f"engine-{speculative}", detach=True)
    rec = EngineRecord(
        url=server.url, pid=server.pid, pgid=server.pgid, port=server.config.port, host=server.config.host,
        log=str(server.log_path), model=server.model_name, served_model_name=server.model_name,
        speculative_config=server.config.speculative_config,
        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        proc_start_ticks=server.start_ticks,
    )
    write_json_atomic(_record_path(rec.port), rec.model_dump(mode="json"))
    return rec


def stop_engines(port: int | None = None, all_: bool = False, grace_s: float = 15.0) -> list[EngineRecord]:
    """Stop the engine on ``port``, or all of them; returns what was stopped."""
    engines = running_engines()
    if port is not None:
        targets = [e for e in engines if e.port == port]
        if not targets:
            raise ServerError(f"no engine started by `playbook engine start` is running on port {port}",
                              "see `playbook engine status` for the running ones")
    elif all_ or len(engines) <= 1:
        targets = engines
    else:
        raise ServerError(f"{len(engines)} engines are running (ports {', '.join(str(e.port) for e in engines)})",
                          "say which: --port N, or --all")
    for rec in targets:
        reaper.kill_tree(rec.pid, grace_s=grace_s, pgid=rec.pgid)
        _record_path(rec.port).unlink(missing_ok=True)
    return targets


def engine_status() -> list[dict]:
    """Running engines with a live /health check."""
    return [{**rec.model_dump(mode="json"), "healthy": health_ok(rec.url)} for rec in running_engines()]
