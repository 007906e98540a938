"""Result models of the speedup predictor (helpers/predict.py); field names are the CLI's JSON names."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class StepTimeModel(BaseModel):
    """Time of one forward pass: ``overhead + max(weights + kv_tokens * kv, tokens * compute)``.

    ``tokens`` is every token processed in the pass (batch x (k+1) when verifying), ``kv_tokens``
    every token of context read from the KV cache. A roofline comes from a GPU catalog entry; a
    fitted model comes from measured step times (on a CPU the compute term dominates).
    """

    name: str
    source: Literal["roofline", "fitted", "given"]
    overhead_ms: float = Field(ge=0, description="fixed per-step cost (launch, scheduling, sampling)")
    weights_ms: float = Field(0.0, ge=0, description="time to stream the weights once")
    kv_ms_per_token: float = Field(0.0, ge=0, description="time to read one context token's KV cache")
    compute_ms_per_token: float = Field(ge=0, description="time to compute one token of the pass")


class PredictionPoint(BaseModel):
    batch_size: int
    speedup: float = Field(description="baseline TPOT / speculative TPOT (> 1 is a win)")
    tpot_baseline_ms: float
    tpot_spec_ms: float
    target_step_ms: float = Field(description="one target verification pass of batch x (k+1) tokens")
    draft_step_ms: float = Field(description="one draft pass of batch tokens (0 for n-gram)")


class Prediction(BaseModel):
    """Predicted speedup vs batch size for one (target, draft, k, acceptance)."""

    target: str
    draft: str
    method: str
    num_speculative_tokens: int
    acceptance: float = Field(description="per-token acceptance a used (i.i.d.), or the mean of per-position rates")
    acceptance_per_position: list[float] = Field(default_factory=list)
    expected_tokens_per_step: float = Field(description="E(k) = 1 + sum of per-position acceptance")
    cost_ratio: float = Field(description="c = draft step / target step at batch 1")
    optimal_k: int = Field(description="k maximising the speedup at batch 1")
    optimal_k_by_batch_size: dict[int, int] = Field(default_factory=dict, description="best k per batch size (0 = off)")
    points: list[PredictionPoint]
    crossover_batch_size: int | None = Field(
        None, description="smallest batch size where speculation stops winning (null: wins over the whole range)"
    )
    target_step: StepTimeModel
    draft_step: StepTimeModel | None = None
    assumptions: list[str] = Field(default_factory=list)
    finding: str = ""


class PredictionCheck(BaseModel):
    """Predicted vs measured speedup at each measured load level."""

    concurrency: list[int]
    measured_speedup: list[float]
    predicted_speedup: list[float]
    relative_error: list[float]
    mean_abs_relative_error: float
