"""The decision's inputs (Evidence), each rule's result, and the decision written as decision.json."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from .predict import StepGrowth
from .provenance import Provenance

Verdict = Literal["go", "borderline", "no-go", "unknown"]
Overall = Literal["GO", "GO WITH LIMITS", "NO-GO", "INCONCLUSIVE"]


class Thresholds(BaseModel):
    """Every threshold a rule uses (SPEC.md section 3 defaults). The report step's parameters carry
    them under the same names (``ReportParams``), so a profile or ``-p`` reaches every rule."""

    model_config = ConfigDict(extra="forbid")

    acceptance_no_go_below: float = Field(0.5, ge=0, le=1, description="acceptance below this is a no-go (rule of thumb)")
    acceptance_go_above: float = Field(0.65, ge=0, le=1, description="acceptance above this is likely a go (rule of thumb)")
    acceptance_p10_min: float = Field(0.5, ge=0, le=1, description="rule: per-request acceptance P10 below this is flagged")
    max_draft_share: float = Field(0.15, ge=0, le=1, description="rule: draft weights at most this share of usable memory")
    max_target_share: float = Field(0.70, ge=0, le=1, description="rule: above this share of memory the draft cuts concurrency")
    max_concurrency_loss: float = Field(0.10, ge=0, le=1, description="rule: losing more than this share of max concurrency is flagged")
    acceptance_drop_pp: float = Field(5.0, ge=0, description="flag a drop larger than this (percentage points)")
    max_error_rate: float = Field(0.05, ge=0, le=1, description="above this error rate the verdict is INCONCLUSIVE")
    max_gap_widening: float = Field(1.5, gt=0, description="rule: a P50-to-P99 TPOT gap widening more than this factor is flagged")
    min_gain: float = Field(0.10, ge=0, le=1, description="rule: with no win, intervals that all stay below 1 + this exclude a "
                            "gain worth having: NO-GO (the load test measures to +-10% by default)")
    max_temperature_median: float = Field(0.7, ge=0, le=2, description="rule: a median traffic temperature above this is a no-go")
    homogeneous_temperature_max: float = Field(0.5, ge=0, le=2, description="rule: traffic hotter than this is flagged")
    max_temperature_spread: float = Field(0.5, ge=0, le=2, description="rule: traffic temperatures spread wider than this are flagged")
    max_ttft_rise: float = Field(0.25, ge=0, le=5, description="rule: a TTFT P50 rise beyond this fraction is flagged, SLO or not")
    max_load_temperature_gap: float = Field(0.05, ge=0, le=2, description="rule: speed measured this much colder than production is flagged")


class LoadLevel(BaseModel):
    """One load level of the load test, baseline vs speculative, as the rules need it."""

    concurrency: float = Field(description="concurrency (or request rate when the test used rates)")
    speedup: float | None = Field(None, description="baseline TPOT p50 / spec TPOT p50")
    speedup_ci_low: float | None = None
    speedup_ci_high: float | None = None
    tpot_p50_baseline_ms: float | None = None
    tpot_p50_spec_ms: float | None = None
    tpot_p99_baseline_ms: float | None = None
    tpot_p99_spec_ms: float | None = None
    ttft_p50_baseline_ms: float | None = None
    ttft_p50_spec_ms: float | None = None
    ttft_p99_baseline_ms: float | None = None
    ttft_p99_spec_ms: float | None = None
    error_rate: float | None = None
    throughput_ratio: float | None = None
    acceptance_rate: float | None = Field(None, description="speculative server's acceptance during this level")
    status: Literal["ok", "excluded", "inconclusive"] = Field(
        "ok", description="excluded / inconclusive levels never count as a win or a loss (their speedup is withheld)")
    reason: str = Field("", description="why the level is excluded or inconclusive")
    temperature: float | None = Field(None, description="sampling temperature of the level's requests")
    throughput_baseline_tok_s: float | None = None
    throughput_spec_tok_s: float | None = None
    step_p50_baseline_ms: float | None = Field(None, description="the baseline's typical decode step at this level: "
                                               "the median gap between streamed chunks (other requests' prefills, "
                                               "which the TPOT carries, are outliers there)")


class Evidence(BaseModel):
    """Flat view of every step result the rules read; None means the step did not measure it."""

    run_dir: str = ""
    steps_present: list[str] = Field(default_factory=list)
    steps_failed: list[str] = Field(default_factory=list)
    # configuration
    target: str = ""
    draft: str = ""
    method: str = ""
    num_speculative_tokens: int | None = None
    speculative_config: dict = Field(default_factory=dict, description="as given to vLLM, for the lossy-method rule")
    versions: dict[str, str] = Field(default_factory=dict)
    spec_metrics: list[str] = Field(default_factory=list, description="spec-decode metric names the server exposes")
    acceptance_counters: bool | None = Field(None, description="acceptance can be monitored (None: not checked)")
    # acceptance (40_sweep)
    acceptance_by_temperature: dict[float, float] = Field(default_factory=dict)
    acceptance_production: float | None = Field(None, description="acceptance at the production temperature")
    acceptance_by_workload: dict[str, float] = Field(default_factory=dict, description="at the production temperature")
    acceptance_per_position: list[float] = Field(default_factory=list, description="p_i at the production temperature")
    per_position_by_temperature: dict[float, list[float]] = Field(default_factory=dict, description="pooled p_i per sweep temperature")
    proposal_rate: float | None = Field(None, description="share of decode steps with a proposal at the production "
                                        "temperature (sweep; below 1 for an n-gram or suffix lookup)")
    mean_acceptance_length: float | None = None
    sweep_points: list[dict] = Field(default_factory=list, description="the sweep's points, for the report's plot")
    acceptance_p10: float | None = Field(None, description="P10 of per-request acceptance at the production temperature")
    acceptance_temperature: float | None = Field(None, description="the production temperature the acceptance is for")
    acceptance_note: str = Field("", description="how it was obtained when not measured at that temperature")
    # memory (20_memory, 10_drafts)
    usable_memory_gib: float | None = Field(None, description="memory vLLM may use per GPU (x utilization)")
    gpu_memory_gib: float | None = Field(None, description="memory per GPU (VRAM)")
    kv_cache_tokens: int | None = None
    num_gpus: int | None = Field(None, description="GPUs on the node step 20 budgeted (num_gpus)")
    target_weights_gib: float | None = None
    draft_weights_gib: float | None = None
    max_concurrency_baseline: float | None = None
    memory_fits: bool | None = Field(None, description="step 20's budget fits (None: step 20 did not run)")
    max_concurrency_spec: float | None = None
    memory_context_length: int | None = None
    best_draft: str | None = None
    draft_param_ratio: float | None = Field(None, description="draft / target parameters")
    # quantization (30_quantization)
    precision_in_use: tuple[str, str] | None = Field(None, description="(target, draft) precision from 20_memory")
    quant_acceptance_drop_pp: float | None = None
    quant_config: str | None = None
    # load (50_load)
    load_levels: list[LoadLevel] = Field(default_factory=list)
    load_error_rate: float | None = None
    load_imported_from: str = Field("", description="the tool an imported load test came from (playbook import); "
                                    "'' when measured here")
    load_missing_levels: list[str] = Field(default_factory=list, description="'config@level: reason' of each level "
                                           "the load test planned but did not measure (a server died, ...)")
    load_kind: str = "concurrency"
    load_temperature: float | None = Field(None, description="sampling temperature of the load test's requests")
    load_workload: str = ""
    load_mixed: list[dict] = Field(default_factory=list, description="homogeneous vs mixed workload per level "
                                   "(WorkloadComparison of 50_load)")
    candidates: dict = Field(default_factory=dict, description="50_candidates.json's choice: primary, measured, winner, "
                             "winner_method, winner_k, winner_window, win_levels, k_table, k_zero_note")
    winner_load_levels: list[LoadLevel] = Field(default_factory=list, description="the winner's levels when a compared "
                                                "configuration beat the step's own (the rules judge those)")
    # single-request step times (for the predictor)
    tpot_c1_baseline_ms: float | None = None
    tpot_c1_spec_ms: float | None = None
    prefill_points: list[tuple[float, float]] = Field(default_factory=list, description="(prompt tokens, TTFT ms)")
    spec_step_growth: StepGrowth | None = Field(None, description="the speculative server's typical step against the "
                                                "sequences decoding, from the sweep's streams (step 40)")
    # losslessness
    lossless_passed: bool | None = None
    lossless_detail: str = ""
    # step findings, for the report
    findings: dict[str, str] = Field(default_factory=dict)
    missing_fields: list[str] = Field(default_factory=list, description="fields a present step did not provide")


class RuleResult(BaseModel):
    name: str
    verdict: Verdict
    reason: str = Field(description="one line quoting the numbers")
    numbers: dict[str, float | int | str | bool | None] = Field(default_factory=dict)
    measure_next: str = Field("", description="what to measure when the verdict is unknown")


class NodeCommand(BaseModel):
    """One command, where it runs and in which order (the list's)."""

    node: str = Field(description="where it runs: 'head node', 'node 2 of 3'")
    command: str


class NodePlan(BaseModel):
    """The commands besides the head's launch command, and what to check before running them."""

    nodes: int = 1
    commands: list[NodeCommand] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class RecommendedConfig(BaseModel):
    enable: bool
    method: str = ""
    model: str = ""
    num_speculative_tokens: int = 0
    num_speculative_tokens_per_batch_size: list[list[int]] | None = Field(
        None, description="vLLM's dynamic schedule [[start, end, k], ...] (inclusive batch-size ranges)"
    )
    workload_classes: list[str] = Field(default_factory=list, description="only these classes (empty: all)")
    max_concurrency: float | None = Field(None, description="speculation pays below this load")
    speculative_config: dict = Field(default_factory=dict)
    launch_command: str = ""
    node_commands: list[NodeCommand] = Field(default_factory=list, description="when the server spans nodes: what "
                                             "the other nodes run (a Ray cluster: before the launch command)")
    notes: list[str] = Field(default_factory=list)


def finite_json(data: Any) -> Any:
    """``data`` with every NaN or Infinity replaced by None (JSON null): decision.json must stay valid JSON
    (``JSON.parse``, jq); the rules already call such a number unknown and the evidence names the damaged step."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite_json(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_json(v) for v in data]
    return data


DECISION_SCHEMA_VERSION = 1  # decision.json's layout (README "Run directory"); raised when a field changes meaning


class Decision(BaseModel):
    """decision.json at the run directory's root."""

    @model_serializer(mode="wrap")
    def _finite(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        """As JSON (decision.json), no NaN or Infinity anywhere: null instead; no ``changes`` block unless a
        re-decision set one (a script testing ``"changes" in decision`` must not see an empty one)."""
        data = handler(self)
        if isinstance(data, dict) and not data.get("changes"):
            data.pop("changes", None)
        return finite_json(data) if info.mode_is_json() else data

    schema_version: int = Field(DECISION_SCHEMA_VERSION, description="the layout of decision.json")
    verdict: Overall
    confidence: Literal["high", "medium", "low"]
    headline: str
    reasons: list[str] = Field(description="3 to 5 lines, most decisive first")
    measure_next: list[str] = Field(default_factory=list)
    rules: list[RuleResult]
    recommended: RecommendedConfig
    monitoring: dict = Field(default_factory=dict, description="PromQL queries and alert thresholds")
    prediction: dict = Field(default_factory=dict, description="the predictor's speedup curve, crossover, best k and its error")
    versions: dict[str, str] = Field(default_factory=dict)
    inputs: dict = Field(default_factory=dict, description="the user's situation the rules used (SLOs, load, temperatures)")
    created_at: str = ""
    finding: str = ""
    provenance: Provenance | None = Field(None, description="GPUs, driver, CUDA, vLLM versions, exact server "
                                          "commands and model revisions of the run (helpers/provenance.py)")
    changes: dict = Field(default_factory=dict, description="set by a re-decision (`playbook report RUN_DIR -p ...`, "
                          "or going back to run.json's parameters after one): the previous verdict, the parameters "
                          "changed (from -> to) and the -p values in effect; absent otherwise")
