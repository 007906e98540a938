"""Result of the load test (notebook 50, ``playbook load``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .base import StepResult
from .lossless import LosslessResult
from .workloads import BreakdownRow


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
    acceptance_per_position: list[float] = Field(default_factory=list, description="accepted at draft position i / "
                                                 "drafts over the level (vLLM's per-position counter)")
    server_ttft_ms_mean: float | None = Field(None, description="the server's own mean TTFT (vllm histogram) in this level")
    server_tpot_ms_mean: float | None = Field(None, description="the server's own mean TPOT: a cross-check when "
                                              "streams reach the client in bursts (client TPOT near 0)")
    kv_cache_usage_max: float | None = None
    waiting_max: float | None = None
    rounds: int = Field(0, description="rounds (phases of requests_per_level requests) this level's numbers pool")
    attempts: list[str] = Field(default_factory=list, description="attempt ids of those rounds (record ids carry them)")
    burst_requests: int = Field(0, description="burst-delivered streams: counted here, left out of the TPOT/ITL "
                                "percentiles (their client-side TPOT says nothing about the server)")
    burst_share: float | None = Field(None, description="burst_requests / successful requests")
    client_tpot_ms_mean: float | None = Field(None, description="mean client-side TPOT of every successful request "
                                              "(bursts included), to compare with server_tpot_ms_mean")
    client_server_tpot_ratio: float | None = Field(None, description="client_tpot_ms_mean / server_tpot_ms_mean")


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
    status: Literal["ok", "excluded", "inconclusive"] = Field(
        "ok", description="excluded: the level's streams failed the integrity checks (bursts, client/server "
        "disagreement) and it cannot count as a win or a loss; inconclusive: baseline drift exceeded the interval")
    reason: str = Field("", description="why the level is excluded or inconclusive")
    excluded_for: list[Literal["errors", "integrity"]] = Field(
        default_factory=list, description="what excluded it: failed requests above max_error_rate, and/or streams "
        "that failed the integrity checks")
    withheld: dict[str, float | None] | None = Field(
        None, description="an excluded level's speedup, ci_low and ci_high, kept so that a re-decision with a higher "
        "max_error_rate can count a level excluded for errors alone (`playbook report RUN -p max_error_rate=...`)")
    design: Literal["paired", "abba", "sequential"] = Field(
        "sequential", description="paired: baseline and spec alternate in rounds on the same prompts")
    rounds: int = Field(0, description="round pairs measured (paired design)")
    stop_reason: str = Field("", description="why measuring stopped: the interval reached its target width, "
                             "or the level's time budget ran out")
    burst_share_baseline: float | None = Field(None, description="share of burst-delivered streams, baseline")
    burst_share_spec: float | None = Field(None, description="share of burst-delivered streams, speculative")
    client_server_tpot_ratio_baseline: float | None = Field(None, description="client TPOT mean / server's own")
    client_server_tpot_ratio_spec: float | None = None
    drift: float | None = Field(None, description="baseline re-measured at the end / first measurement (ABBA)")
    between_start_sd: float | None = Field(None, description="SD of the log speedup between server starts added "
                                           "to the interval (paired design; None: not added)")
    temperature: float | None = Field(None, description="sampling temperature of this level's requests")


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
    temperature: float | None = Field(0.0, description="sampling temperature of the requests; None only for an "
                                      "import whose files do not record it (unknown, not 0)")
    levels: list[LevelStats] = Field(default_factory=list)
    speedup: list[SpeedupPoint] = Field(default_factory=list)
    crossover: float | None = Field(None, description="first level (status ok) where the speedup's CI upper bound < 1")
    crossover_rule: str = "first level whose bootstrap 95% CI upper bound of the TPOT speedup is below 1.0"
    saturation_level: float | None = Field(None, description="level past which baseline throughput stopped growing")
    missing_levels: list[str] = Field(default_factory=list)
    error_rate: float = 0.0
    mixed: list[WorkloadComparison] = Field(default_factory=list, description="homogeneous vs mixed, per level")
    mixed_levels: list[LevelStats] = Field(default_factory=list, description="the mixed-workload phases, apart from levels")
    lossless: LosslessResult | None = None
    design: Literal["paired", "abba", "sequential"] = Field(
        "paired", description="paired: both servers up, alternating rounds; abba: one server at a time, baseline "
        "re-measured at the end for drift")
    drift: float | None = Field(None, description="abba: baseline median TPOT re-measured at the end / first")
    pinning: str = Field("", description="where the client and the servers ran (CPU cores), or why they were not pinned")
    breakdown: list[BreakdownRow] = Field(default_factory=list, description="acceptance and speedup by workload class "
                                          "and by prompt-length bucket at each level (helpers/workload_breakdown.py)")
    source: dict | None = Field(None, description="imported results: the tool, its version, the files and their "
                                "SHA-256, the command if recorded (playbook import); None when measured here")
    measured_for: dict[str, Any] = Field(default_factory=dict, description="the configuration measured: target, "
                                         "draft, method, k, mode, max_model_len (evidence.identity_of), so a report "
                                         "on a directory whose steps ran with other parameters can say so")
