"""Typed server configuration and the facts a vLLM server logs at start-up."""

from __future__ import annotations

import sys
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ServerConfig(BaseModel):
    """Everything needed to start one vLLM OpenAI-compatible server (CPU or GPU install).

    ``speculative_config`` is vLLM's own ``--speculative-config`` JSON as a dict. Secrets never
    live here: ``api_key_env`` names the environment variable whose value the server receives
    as ``VLLM_API_KEY`` at launch.
    """

    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., description="local model directory (or a hub name when allow_hub_model)")
    served_model_name: str | None = Field(None, description="name clients use ('' / None = model path)")
    host: str = Field("127.0.0.1", description="bind address; 127.0.0.1 unless told otherwise")
    port: int | None = Field(None, ge=1, le=65535, description="port (None = pick a free one)")
    dtype: str = Field("auto", description="vLLM --dtype")
    max_model_len: int | None = Field(None, ge=1, description="vLLM --max-model-len")
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1, description="vLLM --gpu-memory-utilization")
    tensor_parallel_size: int = Field(1, ge=1)
    pipeline_parallel_size: int = Field(1, ge=1)
    data_parallel_size: int = Field(1, ge=1)
    distributed_executor_backend: str | None = Field(None, description="'mp', 'ray', ... (multi-node: ray)")
    quantization: str | None = Field(None, description="vLLM --quantization (awq, gptq, fp8, ...)")
    kv_cache_dtype: str = Field("auto", description="vLLM --kv-cache-dtype")
    speculative_config: dict[str, Any] | None = Field(None, description="vLLM --speculative-config JSON")
    per_request_spec_metrics: bool = Field(True, description="add --per-request-spec-decode-metrics summary")
    enforce_eager: bool = False
    extra_args: list[str] = Field(default_factory=list, description="further vLLM CLI args, passed as given")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment for the server")
    api_key_env: str = Field("", description="env var holding the API key the server should require")
    python: str = Field(default_factory=lambda: sys.executable, description="python that has vLLM installed")
    allow_hub_model: bool = Field(False, description="let vLLM download a hub model name")

    @property
    def speculative(self) -> bool:
        return bool(self.speculative_config)


class StartupFacts(BaseModel):
    """What vLLM logged at start-up: the ground truth for the memory budget."""

    kv_cache_tokens: int | None = Field(None, description="'KV cache size: N tokens'")
    max_concurrency: float | None = Field(None, description="'Maximum concurrency for L tokens per request: X'")
    max_concurrency_context: int | None = Field(None, description="L in that line")
    kv_cache_device: str | None = Field(None, description="GPU, CPU, ... as vLLM names the pool")
    vllm_version: str | None = None
    warnings: list[str] = Field(default_factory=list)


class EngineRecord(BaseModel):
    """A CLI-started (detached) embedded engine, as kept in the engine registry."""

    url: str
    pid: int
    pgid: int
    port: int
    host: str
    log: str
    model: str
    served_model_name: str
    speculative_config: dict[str, Any] | None = None
    started_at: str = ""
    proc_start_ticks: int | None = Field(None, description="/proc start time, guards against pid reuse")
