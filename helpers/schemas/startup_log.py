"""What a vLLM server logged while starting (helpers/startup_log.py); sizes in GiB as vLLM prints them."""

from __future__ import annotations

from pydantic import BaseModel, Field


class StartupLog(BaseModel):
    """Facts read from one vLLM start-up log (V0 and V1 wordings, vLLM 0.6 to 0.3x)."""

    vllm_version: str | None = Field(None, description="'vLLM API server version X', 'LLM engine (vX)', banner 'version X'")
    engine: str | None = Field(None, description="'V0' or 'V1' from 'Initializing a V? LLM engine'")
    kv_cache_tokens: int | None = Field(None, description="'GPU KV cache size: N tokens' (V1), or blocks x block size")
    kv_cache_device: str | None = Field(None, description="GPU, CPU, ... as vLLM names the pool")
    num_gpu_blocks: int | None = Field(None, description="'# GPU blocks: N' / '# cuda blocks: N' (V0, early V1)")
    max_concurrency: float | None = Field(None, description="'Maximum concurrency for L tokens per request: X'")
    max_concurrency_context: int | None = Field(None, description="L in that line")
    available_kv_cache_gib: float | None = Field(
        None, description="'Available KV cache memory: X GiB' (V1), V0's 'kv_cache_size=' / 'reserved for KV Cache is'")
    model_weights_gib: float | None = Field(None, description="'Model loading took X GiB' / 'Loading model weights took X GB'")
    model_load_seconds: float | None = None
    total_gpu_memory_gib: float | None = Field(None, description="V0 memory profiling: total_gpu_memory")
    gpu_memory_utilization: float | None = None
    non_torch_memory_gib: float | None = Field(None, description="V0 memory profiling: non_torch_memory")
    activation_peak_gib: float | None = Field(None, description="V0: 'PyTorch activation peak memory takes X'")
    max_num_batched_tokens: int | None = Field(None, description="'max_num_batched_tokens=N' (chunked prefill line)")
    cuda_graph_seconds: float | None = Field(None, description="'Graph capturing finished in N secs'")
    cuda_graph_gib: float | None = Field(None, description="'..., took X GiB' (memory of the captured graphs)")
    cuda_graph_capture_sizes: list[int] = Field(default_factory=list, description="cudagraph_capture_sizes of the config line")
    cuda_graph_shapes: int | None = Field(None, description="graphs captured, from the 'Capturing CUDA graph' progress bars")
    enforce_eager: bool | None = None
    warnings: list[str] = Field(default_factory=list)
