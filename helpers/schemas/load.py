"""Result of the load test (notebook 50, ``playbook load``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from .base import StepResult
from .lossless import LosslessResult


class Percentiles(BaseModel):
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


class LevelStats(BaseModel):
    """One configuration at one load level."""

    config: Literal["baseline", "spec"]
    level: float = Field(description="concurrency or request rate")
    level_kind: Literal["concurrency", "rate"] = "concurrency"
    workload: str = ""
    status: Literal["ok", "failed", "missing"] = "ok"
    reason: str = ""
    phase: str = Field("", description="phase label of its records")
    attempt: str = Field("", description="which measurement of the phase these numbers come from")
    resumed: bool = Field(False, description="taken from an earlier, interrupted run of this step")
    fingerprint: str = Field("", description="hash of the parameters it was measured with")
    requests: int = 0
    errors: int = 0
    error_rate: float = 0.0
    errors_by_status: dict[str, int] = Field(default_factory=dict)
    ttft_ms: Percentiles = Field(default_factory=Percentiles)
    tpot_ms: Percentiles = Field(default_factory=Percentiles)
    itl_ms: Percentiles = Field(default_factory=Percentiles)
    e2e_ms: Percentiles = Field(default_factory=Percentiles)
    output_tok_s: float | None = None
    req_s: float | None = None
    duration_s: float = 0.0
    dispatch_lag_p99_ms: float | None = None
    acceptance_rate: float | None = None
    mean_acceptance_length: float | None = None
    server_ttft_ms_mean: float | None = Field(None, description="the server's own mean TTFT (vllm histogram) in this level")
    server_tpot_ms_mean: float | None = Field(None, description="the server's own mean TPOT: a cross-check when "
                                              "streams reach the client in bursts (client TPOT near 0)")
    kv_cache_usage_max: float | None = None
    waiting_max: float | None = None


class SpeedupPoint(BaseModel):
    """TPOT speedup = median TPOT baseline / median TPOT spec, with a bootstrap interval."""

    level: float
    speedup: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    throughput_ratio: float | None = Field(None, description="output tok/s spec / baseline")
    p50_p99_gap_baseline_ms: float | None = None
    p50_p99_gap_spec_ms: float | None = None
    gap_change: float | None = Field(None, description="spec gap / baseline gap of TPOT P99 - P50")
    significant: bool = Field(False, description="the interval excludes 1.0")


class WorkloadComparison(BaseModel):
    """Homogeneous vs mixed workload at one level: the P50-to-P99 TPOT gap under speculation."""

    level: float
    homogeneous: str
    mixed: str
    gap_change_homogeneous: float | None = None
    gap_change_mixed: float | None = None
    speedup_homogeneous: float | None = None
    speedup_mixed: float | None = None


class LoadResult(StepResult):
    step: str = "50_load"
    level_kind: Literal["concurrency", "rate"] = "concurrency"
    workload: str = ""
    temperature: float = 0.0
    levels: list[LevelStats] = Field(default_factory=list)
    speedup: list[SpeedupPoint] = Field(default_factory=list)
    crossover: float | None = Field(None, description="first level where the speedup's CI upper bound < 1")
    crossover_rule: str = "first level whose bootstrap 95% CI upper bound of the TPOT speedup is below 1.0"
    saturation_level: float | None = Field(None, description="level past which baseline throughput stopped growing")
    missing_levels: list[str] = Field(default_factory=list)
    error_rate: float = 0.0
    mixed: WorkloadComparison | None = None
    mixed_levels: list[LevelStats] = Field(default_factory=list, description="the mixed-workload phases, apart from levels")
    lossless: LosslessResult | None = None
