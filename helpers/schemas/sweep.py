"""Result of the temperature sweep (notebook 40, ``playbook sweep``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from .base import StepResult


class SweepPoint(BaseModel):
    """Acceptance at one temperature: for one workload class, or pooled over classes."""

    temperature: float
    workload: str = "all"
    acceptance_rate: float | None = Field(None, description="accepted / draft tokens (counter deltas)")
    mean_acceptance_length: float | None = Field(None, description="1 + accepted / drafts")
    per_position: list[float] = Field(default_factory=list, description="p_i = accepted at position i / drafts")
    per_request_p10: float | None = Field(None, description="null when the server has no per-request metrics")
    per_request_p50: float | None = None
    per_request_p90: float | None = None
    per_request: list[float] = Field(default_factory=list, description="per-request acceptance rates")
    drafts: float = 0
    draft_tokens: float = 0
    accepted: float = 0
    proposal_rate: float | None = Field(None, description="decode steps with a proposal / decode steps (n-gram, "
                                        "suffix: the steps with a match): drafts / (output tokens - requests - "
                                        "accepted); vLLM counts acceptance over the steps with a proposal only")
    requests: int = 0
    errors: int = 0
    source: str = Field("counters", description="counters | legacy_gauge | none")
    verdict: str = Field("unknown", description="go | borderline | no-go | unknown (SPEC section 3 bands)")


class SweepResult(StepResult):
    step: str = "40_sweep"
    speculation: bool = Field(True, description="false when the server exposes no speculative decoding")
    method: str = ""
    num_speculative_tokens: int | None = None
    production_temperature: float = 0.2
    production_acceptance: float | None = Field(None, description="pooled acceptance interpolated at the production temperature")
    production_verdict: str = "unknown"
    no_go_below: float = 0.5
    go_above: float = 0.65
    temperatures: list[SweepPoint] = Field(default_factory=list, description="pooled over workload classes, one per temperature")
    points: list[SweepPoint] = Field(default_factory=list, description="one per (workload class, temperature)")
    resumed_points: int = Field(0, description="points reused from an interrupted earlier run of this step")
    measured_for: dict[str, Any] = Field(default_factory=dict, description="the configuration measured: target, "
                                         "draft, method, k, mode, max_model_len (evidence.identity_of), so a report "
                                         "on a directory whose steps ran with other parameters can say so")
