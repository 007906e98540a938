"""Servers belong to the run: one vLLM server per distinct configuration, shared by every step.

The process that owns the run (``playbook run``, ``playbook lab``) hosts a :class:`ServerPool`. It
launches the servers itself, so the watchdog of :mod:`.server` ties them to *its* lifetime (kill -9
of ``playbook run`` still leaves nothing behind), and serves a JSON-lines protocol on a Unix socket
whose path the notebook kernels inherit in ``$PLAYBOOK_POOL``::

    {"op": "acquire", "config": {...}, "role": "spec", "step": "40_sweep", "log_dir": "...",
     "timeout_s": 300, "exclusive": false}   -> {"ok": true, "lease": Lease}
        the connection stays open while the step uses the server; {"op": "release"} on it (answered
        {"ok": true} once done) or its closing releases the server: an exclusive one stops then,
        a shared one keeps running for the next step
    {"op": "list"}                           -> {"ok": true, "servers": [PooledServer, ...]}
    {"op": "stop", "key": "..."}             -> {"ok": true, "stopped": true}
    errors                                   -> {"ok": false, "error": {"type", "problem", "fix", "log_tail"}}

A server is keyed by its full ServerConfig (model, dtype, quantization, speculative config,
parallelism, server args, env). A pooled server found dead at acquire is started once more and the
lease says so. Idle servers are stopped when a new configuration would not fit next to them (their
``gpu_memory_utilization`` shares on the same devices add up past 1). Every start, reuse, restart,
eviction and stop is appended to ``<run>/artifacts/servers.jsonl``; :func:`summarize` turns that into
run.json's ``servers``. Without ``$PLAYBOOK_POOL`` (CLI subcommands, tests) nothing here is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import socketserver
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import errors as _errors
from .artifacts import append_jsonl, read_jsonl
from .errors import ArtifactError, PlaybookError, ServerError, ServerStartError
from .schemas.server import ServerConfig
from .schemas.servers import ConfigUse, Lease, PooledServer, ServerEvent, ServersSummary, StepServers
from .server import ManagedServer, _redacted_command, free_port, health_ok, launch

ENV = "PLAYBOOK_POOL"
EVENTS = "servers.jsonl"
SOCKET_NAME = ".server-pool.sock"
VLLM_DEFAULT_SHARE = 0.9  # vLLM's default --gpu-memory-utilization
_LOG_TAIL_MARK = "\n--- last lines of the server log ---\n"

__all__ = ["ENV", "ServerPool", "PoolLease", "PoolUnavailable", "acquire", "config_key", "config_summary",
           "list_pooled", "log_name", "pool_address", "run_pool", "stop_pooled", "summarize"]


class PoolUnavailable(ServerError):
    """$PLAYBOOK_POOL names a pool that does not answer (its owner is gone)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def log_name(log_dir: Path, role: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """The first free ``<role>-<n>`` in ``log_dir`` (server-logs/spec-1.log, spec-2.log, ...) that is not
    among ``taken`` (the names a run already gave, so a server logging elsewhere never shares a name)."""
    n = 1
    while (Path(log_dir) / f"{role}-{n}.log").exists() or f"{role}-{n}" in taken:
        n += 1
    return f"{role}-{n}"


def config_key(config: ServerConfig, api_key: str | None = None) -> str:
    """Equal for two configs that would start the same server (every field counts; a different API
    key too, hashed)."""
    blob = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    if api_key:
        blob += "|" + hashlib.sha256(api_key.encode()).hexdigest()
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def config_summary(config: ServerConfig) -> str:
    """One line a person reads: 'tiny-target bfloat16, draft_model k=4 (tiny-draft)'."""
    head = [Path(config.model).name or config.model]
    head += [x for x in (config.dtype if config.dtype != "auto" else "", config.quantization or "",
                         f"kv {config.kv_cache_dtype}" if config.kv_cache_dtype != "auto" else "") if x]
    spec = config.speculative_config
    if spec:
        draft = spec.get("model")
        extra = {k: v for k, v in spec.items() if k not in ("method", "num_speculative_tokens", "model")}
        how = (f"{spec.get('method', '?')} k={spec.get('num_speculative_tokens', '?')}"
               + (f" ({Path(str(draft)).name})" if draft else "")
               + (f" {json.dumps(extra, separators=(',', ':'))}" if extra else ""))
    else:
        how = "no speculation"
    tail = [f"{n}={v}" for n, v in (("tp", config.tensor_parallel_size), ("pp", config.pipeline_parallel_size),
                                     ("dp", config.data_parallel_size)) if v != 1]
    return ", ".join([" ".join(head), how, *tail, *([_redacted_command(config.extra_args)] if config.extra_args else [])])


def _share(config: ServerConfig) -> float:
    return config.gpu_memory_utilization if config.gpu_memory_utilization is not None else VLLM_DEFAULT_SHARE


def _devices(config: ServerConfig) -> set[str] | None:
    """The devices a server may use (None: all of them)."""
    vis = config.env.get("CUDA_VISIBLE_DEVICES")
    return None if vis is None else {d.strip() for d in vis.split(",") if d.strip()}


def _overlap(a: set[str] | None, b: set[str] | None) -> bool:
    return a is None or b is None or bool(a & b)


# -- the pool (in the process that owns the run) ---------------------------------------------------
@dataclass
class _Entry:
    key: str
    base_key: str
    role: str
    config: ServerConfig
    summary: str
    server: ManagedServer
    exclusive: bool = False
    start_s: float = 0.0
    steps: list[str] = field(default_factory=list)
    reuses: int = 0
    restarts: int = 0
    users: int = 0
    last_used: float = field(default_factory=time.monotonic)

    def info(self) -> PooledServer:
        return PooledServer(key=self.key, name=self.server.name, role=self.role, config=self.summary,
                            url=self.server.url, pid=self.server.pid, log=str(self.server.log_path),
                            alive=self.server.is_alive(), in_use=self.users, exclusive=self.exclusive,
                            steps=list(self.steps), start_s=self.start_s, reuses=self.reuses, restarts=self.restarts)


class ServerPool:
    """Run-scoped servers behind a Unix socket. ``start()`` before the first step, ``close()`` after the
    last (it stops every server and removes the socket); :func:`run_pool` does both."""

    def __init__(self, run_dir: str | os.PathLike, progress: Callable[[str], None] | None = None):
        self.run_dir = Path(run_dir).expanduser().resolve()
        self.id = uuid.uuid4().hex[:8]
        self.address: str | None = None
        self._progress = progress or (lambda msg: None)
        self._entries: dict[str, _Entry] = {}
        self._evicted: dict[str, str] = {}  # base key -> why it was stopped (said when it starts again)
        self._lock = threading.RLock()      # the entries
        self._launch = threading.Lock()     # one start at a time: memory profiling, log names, ports
        self._closed = False
        self._n_exclusive = 0
        self._names: set[str] = set()     # every log name given in this run, whatever its directory
        self._server: _SocketServer | None = None
        self._tmp_dir: str | None = None

    # -- lifetime ------------------------------------------------------------------------------
    def start(self) -> ServerPool:
        path = self.run_dir / SOCKET_NAME
        if len(os.fsencode(path)) > 100:  # sun_path holds 108 bytes: a deep run dir gets a private temp dir
            self._tmp_dir = tempfile.mkdtemp(prefix="playbook-pool-")
            path = Path(self._tmp_dir) / "pool.sock"
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            if _answers(str(path)):
                raise ArtifactError(f"another server pool is serving {self.run_dir} ({path})",
                                    "stop the other `playbook run` / `playbook lab` using this directory")
            path.unlink()  # left by a killed run
        server = _SocketServer(str(path), _Handler)
        server.pool = self
        os.chmod(path, 0o600)
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="server-pool",
                         daemon=True).start()
        self.address = str(path)
        return self

    def close(self) -> None:
        """Stop every server (in parallel) and remove the socket. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            entries = list(self._entries.values())
            self._entries.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self.address:
            with contextlib.suppress(OSError):
                os.unlink(self.address)
        if self._tmp_dir:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
        threads = [threading.Thread(target=self._stop_entry, args=(e, "the run ended")) for e in entries]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def __enter__(self) -> ServerPool:
        return self.start() if self.address is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- operations ----------------------------------------------------------------------------
    def acquire(self, config: ServerConfig, role: str, step: str = "", log_dir: str | os.PathLike | None = None,
                timeout_s: float = 300, exclusive: bool = False, api_key: str | None = None) -> tuple[Lease, _Entry]:
        """A running server for ``config`` (started, reused, or restarted once if it died); the
        caller must :meth:`release` the entry."""
        base = config_key(config, api_key)
        log_dir = Path(log_dir) if log_dir else self.run_dir / "server-logs"
        with self._launch:
            self._check_open()
            notes: list[str] = []
            restarting = None
            entry = None if exclusive else self._entries.get(base)
            if entry is not None:
                why = self._why_dead(entry)
                if why is None:
                    with self._lock:
                        entry.users += 1
                        entry.reuses += 1
                        entry.last_used = time.monotonic()
                        if step not in entry.steps:
                            entry.steps.append(step)
                    self._event("reuse", entry, step)
                    self._progress(f"server {entry.server.name} ({entry.summary}) reused by {step or 'a notebook'}")
                    return self._lease(entry, reused=True), entry
                restarting = entry
                notes.append(f"pooled server {entry.server.name} ({entry.summary}) {why}; restarted it once for "
                             f"{step or 'this step'}")
                with self._lock:
                    self._entries.pop(base, None)
                entry.server.stop(grace_s=5)
            elif base in self._evicted:
                notes.append(f"started {config_summary(config)} again: {self._evicted.pop(base)}")
            notes += self._make_room(config, step)
            entry = self._start(base, config, role, step, log_dir, timeout_s, exclusive, api_key, restarting, notes)
            return self._lease(entry, restarted=restarting is not None, notes=notes), entry

    def release(self, entry: _Entry) -> None:
        """A step is done with the server: an exclusive one stops, a shared one stays for the next."""
        with self._lock:
            entry.users = max(0, entry.users - 1)
            entry.last_used = time.monotonic()
            stop = entry.exclusive and self._entries.get(entry.key) is entry
            if stop:
                self._entries.pop(entry.key)
        if stop:
            self._stop_entry(entry, "its exclusive step released it")

    def list(self) -> list[PooledServer]:
        with self._lock:
            return [e.info() for e in self._entries.values()]

    def stop(self, key: str) -> bool:
        """Stop a pooled server by key (or log name); False if the pool has no such server."""
        with self._lock:
            entry = self._entries.get(key) or next((e for e in self._entries.values() if e.server.name == key), None)
            if entry is None:
                return False
            self._entries.pop(entry.key)
        self._stop_entry(entry, "stopped on request")
        return True

    # -- internals -----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ServerError("the run's server pool is closed (the run is ending)", "run the step again")

    def _why_dead(self, entry: _Entry) -> str | None:
        """Why a pooled server cannot be handed out again, or None. A server another step is using is
        never declared dead while its process runs (a busy server may answer /health slowly)."""
        server = entry.server
        for _ in range(3):
            if not server.is_alive():
                rc = server.proc.poll() if server.proc is not None else None
                return f"had exited (code {rc})" if rc is not None else "had exited"
            if entry.users or health_ok(server.url, timeout_s=10):
                return None
            time.sleep(2)
        return f"stopped answering {server.url}/health"

    def _make_room(self, config: ServerConfig, step: str) -> list[str]:
        """Stop idle servers on the same devices while the new one would not fit next to them."""
        need, devices = _share(config), _devices(config)
        with self._lock:
            near = [e for e in self._entries.values() if _overlap(devices, _devices(e.config))]
        used = sum(_share(e.config) for e in near)
        notes = []
        for e in sorted((e for e in near if e.users == 0), key=lambda e: e.last_used):
            if used + need <= 1.0 + 1e-9:
                break
            with self._lock:
                if self._entries.get(e.key) is not e or e.users:
                    continue
                self._entries.pop(e.key)
            why = (f"stopped idle server {e.server.name} ({e.summary}) to make room for {config_summary(config)} "
                   f"(gpu_memory_utilization {used:g} + {need:g} > 1)")
            self._stop_entry(e, why, event="evict", step=step)
            self._evicted[e.base_key] = why
            used -= _share(e.config)
            notes.append(why)
        return notes

    def _free_port(self, host: str) -> int:
        with self._lock:
            taken = {e.server.config.port for e in self._entries.values()}
        for _ in range(50):
            port = free_port(host)
            if port not in taken:
                return port
        raise ServerStartError("no free port found for a pooled server", "free some ports")

    def _start(self, base: str, config: ServerConfig, role: str, step: str, log_dir: Path, timeout_s: float,
               exclusive: bool, api_key: str | None, restarting: _Entry | None, notes: list[str]) -> _Entry:
        key = base
        if exclusive:
            self._n_exclusive += 1
            key = f"{base}-x{self._n_exclusive}"
        summary = config_summary(config)
        if config.port is None:
            run_config = config.model_copy(update={"port": self._free_port(config.host)})
        else:
            run_config = config
            with self._lock:
                holder = next((e for e in self._entries.values() if e.server.config.port == config.port), None)
            if holder is not None:
                raise ServerStartError(f"port {config.port} is already used by pooled server {holder.server.name} "
                                       f"({holder.summary})", "give each configuration its own port, or none")
        if config.api_key_env and api_key and os.environ.get(config.api_key_env) != api_key:
            os.environ[config.api_key_env] = api_key  # the server gets the key the step has
        log_dir.mkdir(parents=True, exist_ok=True)
        name = log_name(log_dir, role, self._names | {p.stem for p in (self.run_dir / "server-logs").glob("*.log")})
        self._names.add(name)
        t0 = time.monotonic()
        try:
            server = launch(run_config, log_dir, timeout_s=timeout_s, name=name)
        except PlaybookError as exc:
            self._append(ServerEvent(at=_now(), event="failed", key=base, name=name, role=role, step=step,
                                     config=summary, log=str(log_dir / f"{name}.log"),
                                     start_s=round(time.monotonic() - t0, 1),
                                     reason=exc.problem.split(_LOG_TAIL_MARK)[0].splitlines()[0][:500]))
            if restarting is not None:
                exc.problem = f"{notes[0]}, but it did not start: {exc.problem}"
            raise
        start_s = round(time.monotonic() - t0, 1)
        entry = _Entry(key=key, base_key=base, role=role, config=config, summary=summary, server=server,
                       exclusive=exclusive, start_s=start_s, steps=[step], users=1,
                       restarts=(restarting.restarts + 1) if restarting else 0,
                       reuses=restarting.reuses if restarting else 0)
        with self._lock:
            if self._closed:
                server.stop(grace_s=5)
                self._check_open()
            self._entries[key] = entry
        kind = "restart" if restarting is not None else "start"
        self._event(kind, entry, step, start_s=start_s, reason="; ".join(notes))
        said = f"server {name} ({summary}) {'restarted' if restarting else 'started'} for {step or 'a notebook'} " \
               f"in {start_s:.1f} s"
        self._progress(f"warning: {notes[0]}" if restarting else said)
        return entry

    def _stop_entry(self, entry: _Entry, reason: str, event: str = "stop", step: str = "") -> None:
        entry.server.stop()
        self._event(event, entry, step, reason=reason)

    def _lease(self, entry: _Entry, reused: bool = False, restarted: bool = False,
               notes: list[str] | None = None) -> Lease:
        s = entry.server
        return Lease(key=entry.key, name=s.name, url=s.url, model=s.model_name, pid=s.pid, log=str(s.log_path),
                     reused=reused, restarted=restarted, start_s=0.0 if reused else entry.start_s,
                     exclusive=entry.exclusive, notes=notes or [])

    def _event(self, kind: str, entry: _Entry, step: str, start_s: float = 0.0, reason: str = "") -> None:
        s = entry.server
        self._append(ServerEvent(at=_now(), event=kind, key=entry.base_key, name=s.name, role=entry.role, step=step,
                                 config=entry.summary, pid=s.pid, port=s.config.port, log=str(s.log_path),
                                 start_s=start_s, reason=reason))

    def _append(self, event: ServerEvent) -> None:
        event.pool = self.id
        try:
            append_jsonl(self.run_dir / "artifacts" / EVENTS, event)
        except OSError as exc:  # accounting must never take a measurement down
            self._progress(f"warning: cannot record server accounting: {exc}")


class _SocketServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    pool: ServerPool


class _Handler(socketserver.StreamRequestHandler):
    def _reply(self, obj: dict) -> None:
        self.wfile.write((json.dumps(obj) + "\n").encode())
        self.wfile.flush()

    def handle(self) -> None:
        pool: ServerPool = self.server.pool
        try:
            req = json.loads(self.rfile.readline(1 << 20) or b"{}")
            op = req.get("op")
            if op == "acquire":
                self._acquire(pool, req)
            elif op == "list":
                self._reply({"ok": True, "servers": [s.model_dump(mode="json") for s in pool.list()]})
            elif op == "stop":
                self._reply({"ok": True, "stopped": pool.stop(str(req.get("key", "")))})
            else:
                raise ServerError(f"unknown server-pool operation {op!r}", "use acquire, list or stop")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the step that asked
            with contextlib.suppress(OSError):
                self._reply({"ok": False, "error": _error_payload(exc)})

    def _acquire(self, pool: ServerPool, req: dict) -> None:
        lease, entry = pool.acquire(ServerConfig.model_validate(req["config"]), str(req.get("role", "server")),
                                    str(req.get("step", "")), req.get("log_dir"), float(req.get("timeout_s", 300)),
                                    bool(req.get("exclusive")), req.get("api_key"))
        released = False
        try:
            self._reply({"ok": True, "lease": lease.model_dump(mode="json")})
            released = bool(self.rfile.readline())  # held until the step releases it, or its process dies
        finally:
            pool.release(entry)
        if released:  # answered once the release is done: the step's next acquire sees the server idle
            self._reply({"ok": True})


def _error_payload(exc: BaseException) -> dict:
    if isinstance(exc, PlaybookError):
        problem = exc.problem.split(_LOG_TAIL_MARK)[0]
        return {"type": type(exc).__name__, "problem": problem, "fix": exc.fix,
                "log_tail": getattr(exc, "log_tail", "")}
    return {"type": "ServerError", "problem": f"the run's server pool failed: {type(exc).__name__}: {exc}",
            "fix": "read the run's stderr; run the step again", "log_tail": ""}


def _raise_remote(err: dict) -> None:
    cls = getattr(_errors, str(err.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, PlaybookError)):
        cls = ServerError
    if issubclass(cls, ServerStartError):
        raise cls(err.get("problem", ""), err.get("fix"), log_tail=err.get("log_tail") or "")
    raise cls(err.get("problem", ""), err.get("fix"))


# -- the client (in a notebook kernel) -----------------------------------------------------------
def pool_address() -> str | None:
    """The socket of the run's pool, when this process runs under one."""
    return os.environ.get(ENV) or None


def _answers(address: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(address)
        return True
    except OSError:
        return False


def _connect(address: str | None) -> socket.socket:
    address = address or pool_address()
    if not address:
        raise PoolUnavailable(f"no server pool here (${ENV} is not set)",
                              "run under `playbook run` or `playbook lab`, or start servers yourself")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address)
    except OSError as exc:
        sock.close()
        raise PoolUnavailable(f"the run's server pool at {address} does not answer ({exc.strerror or exc})",
                              "its `playbook run` / `playbook lab` has ended: start it again") from None
    return sock


def _call(sock: socket.socket, request: dict) -> dict:
    sock.sendall((json.dumps(request) + "\n").encode())
    line = sock.makefile("rb").readline()
    if not line:
        raise ServerError("the run's server pool closed the connection without an answer",
                          "the run is ending or its owner died; run the step again")
    reply = json.loads(line)
    if not reply.get("ok"):
        _raise_remote(reply.get("error") or {})
    return reply


class PoolLease:
    """A server held from the pool; ``release()`` (or leaving the ``with``) gives it back."""

    def __init__(self, sock: socket.socket, lease: Lease):
        self._sock, self.lease = sock, lease

    def release(self, timeout_s: float = 60) -> None:
        """Give the server back, and wait until the pool has (an exclusive server is stopped by then)."""
        if self._sock is None:
            return
        try:
            self._sock.settimeout(timeout_s)
            self._sock.sendall(b'{"op": "release"}\n')
            self._sock.makefile("rb").readline()
        except OSError:
            pass  # the pool is gone: nothing left to release
        finally:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Lease:
        return self.lease

    def __exit__(self, *exc) -> None:
        self.release()


def acquire(config: ServerConfig, role: str, step: str = "", log_dir: str | os.PathLike | None = None,
            timeout_s: float = 300, exclusive: bool = False, api_key: str | None = None,
            address: str | None = None) -> PoolLease:
    """Ask the run's pool for a server running ``config`` (blocks while it starts). Raises
    PoolUnavailable when there is no pool, or the error the start-up raised."""
    sock = _connect(address)
    try:
        reply = _call(sock, {"op": "acquire", "config": config.model_dump(mode="json"), "role": role, "step": step,
                             "log_dir": str(log_dir) if log_dir else None, "timeout_s": timeout_s,
                             "exclusive": exclusive, "api_key": api_key if config.api_key_env else None})
    except BaseException:
        sock.close()
        raise
    return PoolLease(sock, Lease.model_validate(reply["lease"]))


def list_pooled(address: str | None = None) -> list[PooledServer]:
    """The servers of the run's pool (usable from a notebook cell in the lab)."""
    with _connect(address) as sock:
        return [PooledServer.model_validate(s) for s in _call(sock, {"op": "list"})["servers"]]


def stop_pooled(key: str, address: str | None = None) -> bool:
    """Stop one pooled server by key or log name (e.g. 'spec-1'); the next step that needs it starts it again."""
    with _connect(address) as sock:
        return bool(_call(sock, {"op": "stop", "key": key})["stopped"])


# -- hosting it ----------------------------------------------------------------------------------
def _terminate(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def run_pool(run_dir: str | os.PathLike, progress: Callable[[str], None] | None = None,
             handle_sigterm: bool = True) -> Iterator[ServerPool]:
    """Host the run's pool: ``$PLAYBOOK_POOL`` points kernels started inside at it; on exit (end,
    failure, Ctrl-C, SIGTERM) every pooled server stops and the socket is removed."""
    pool = ServerPool(run_dir, progress).start()
    main = threading.current_thread() is threading.main_thread()
    old_pipe = signal.signal(signal.SIGPIPE, signal.SIG_IGN) if main and hasattr(signal, "SIGPIPE") else None
    old_term = signal.signal(signal.SIGTERM, _terminate) if main and handle_sigterm else None
    old_env = os.environ.get(ENV)
    os.environ[ENV] = pool.address or ""
    try:
        yield pool
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
        try:
            pool.close()
        finally:
            if old_env is None:
                os.environ.pop(ENV, None)
            else:
                os.environ[ENV] = old_env
            if old_term is not None:
                signal.signal(signal.SIGTERM, old_term)
            if old_pipe is not None:
                signal.signal(signal.SIGPIPE, old_pipe)


# -- accounting ----------------------------------------------------------------------------------
def summarize(run_dir: str | os.PathLike) -> ServersSummary | None:
    """run.json's ``servers``: starts, reuses and start-up time per configuration and per step, over
    every pool the run had (a resumed run adds to the first). None when no server was pooled."""
    events = []
    for raw in read_jsonl(Path(run_dir) / "artifacts" / EVENTS):
        with contextlib.suppress(ValueError):
            events.append(ServerEvent.model_validate(raw))
    if not events:
        return None
    out = ServersSummary()
    configs: dict[str, ConfigUse] = {}
    steps: dict[str, StepServers] = {}
    for e in events:
        cu = configs.setdefault(e.key, ConfigUse(key=e.key, config=e.config, role=e.role))
        st = steps.setdefault(e.step, StepServers(step=e.step)) if e.step else None
        if e.event in ("start", "restart"):
            out.started += 1
            out.startup_s += e.start_s
            cu.starts += 1
            cu.startup_s += e.start_s
            cu.logs.append(e.name)
            if st:
                st.started += 1
                st.startup_s += e.start_s
            if e.event == "restart":
                out.restarts += 1
                cu.restarts += 1
                if st:
                    st.restarted += 1
            if e.reason and st:
                st.notes.append(e.reason)
        elif e.event == "reuse":
            out.reuses += 1
            cu.reuses += 1
            if st:
                st.reused += 1
        elif e.event == "failed":
            out.failed += 1
            if st:
                st.failed += 1
                st.notes.append(f"{e.name} did not start: {e.reason}")
        elif e.event == "evict":
            cu.evictions += 1
        if e.event in ("start", "restart", "reuse"):
            if e.step and e.step not in cu.steps:
                cu.steps.append(e.step)
            if st and e.name not in st.servers:
                st.servers.append(e.name)
    for item in [out, *configs.values(), *steps.values()]:
        item.startup_s = round(item.startup_s, 1)
    out.configurations = sum(1 for c in configs.values() if c.starts)
    out.per_config = [c for c in configs.values() if c.starts or c.reuses]
    out.per_step = list(steps.values())
    return out
