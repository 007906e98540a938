"""Result models of the speedup predictor (helpers/predict.py); field names are the CLI's JSON names."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class StepTimeModel(BaseModel):
    """Time of one forward pass, additive (measured steps are, see helpers/step_model.py):

    ``overhead + weights + moe_layers * distinct_experts(tokens) * expert + kv_tokens * kv
    + tokens * compute + attention pairs * attention + sequences * state``.

    ``tokens`` is every token processed in the pass (batch x (k+1) when verifying), ``kv_tokens``
    every token of context read from the KV cache. A roofline comes from GPU and model catalog
    facts; a fitted model comes from measured step times (on a CPU the compute term dominates).
    """

    name: str
    source: Literal["roofline", "fitted", "given"]
    overhead_ms: float = Field(ge=0, description="fixed per-pass cost (launches per layer, all-reduce latency, sampling)")
    weights_ms: float = Field(0.0, ge=0, description="time to stream the weights every pass reads (all but routed experts)")
    kv_ms_per_token: float = Field(0.0, ge=0, description="time to read one context token's KV cache")
    compute_ms_per_token: float = Field(ge=0, description="time to compute one token of the pass (and its all-reduce bytes)")
    attention_ms_per_pair: float = Field(0.0, ge=0, description="attention compute per (query token, context token) pair")
    state_ms_per_sequence: float = Field(0.0, ge=0, description="time to read and write one sequence's fixed recurrent "
                                         "state per pass (linear-attention layers: Qwen3-Next's Gated DeltaNet)")
    moe_layers: int = Field(0, ge=0, description="layers with routed experts")
    num_experts: int = Field(0, ge=0)
    experts_per_token: int = Field(0, ge=0)
    expert_ms: float = Field(0.0, ge=0, description="time to stream one routed expert of one layer")
    fit_notes: list[str] = Field(default_factory=list, description="what a fit to measured times had to clamp to stay "
                                 "physical (a negative cost): the measurements and the acceptance given disagree")


class StepConstants(BaseModel):
    """Engine and kernel constants of the GPU step-time model (defaults: vLLM V1 on H100; sources in step_model.py)."""

    engine_step_ms: float = Field(ge=0, description="scheduler/output work per engine step, with or without speculation")
    spec_step_ms: float = Field(ge=0, description="extra work per speculative step (rejection sampler, proposer bookkeeping)")
    spec_seq_ms: float = Field(0.0, ge=0, description="extra work per sequence in each speculative step (host-side "
                               "bookkeeping that grows with the batch)")
    baseline_overlaps_engine_step: bool = Field(
        False, description="the engine overlaps its host work with the GPU without speculation (SGLang's overlap "
                           "scheduler), so only the speculative TPOT pays engine_step_ms")
    forward_fixed_ms: float = Field(ge=0, description="fixed cost of one target forward pass")
    draft_forward_fixed_ms: float = Field(ge=0, description="fixed cost of one draft forward pass inside a step")
    eagle3_forward_extra_ms: float = Field(0.0, ge=0, description="extra per EAGLE-3 draft pass (hidden-state fusion, vocab map)")
    per_layer_ms: float = Field(ge=0, description="kernel launches per decoder layer")
    moe_layer_ms: float = Field(ge=0, description="routing/permutation kernels per MoE layer")
    memory_efficiency: float = Field(gt=0, le=1, description="achieved share of HBM bandwidth streaming weights")
    kv_efficiency: float = Field(gt=0, le=1, description="achieved share of HBM bandwidth reading the KV cache")
    compute_efficiency: float = Field(gt=0, le=1, description="achieved share of peak tensor FLOPs per batched token")
    allreduce_ms_per_log2_tp: float = Field(ge=0, description="latency of one all-reduce per doubling of TP")


class PredictionPoint(BaseModel):
    batch_size: int
    speedup: float = Field(description="baseline TPOT / speculative TPOT (> 1 is a win)")
    tpot_baseline_ms: float
    tpot_spec_ms: float
    target_step_ms: float = Field(description="one target verification pass of batch x (k+1) tokens")
    draft_step_ms: float = Field(description="one draft pass of batch tokens (0 for n-gram)")
    fits_kv_cache: bool | None = Field(None, description="whether the speculative server's KV cache holds this many "
                                       "sequences at the prediction's context (null: not checked, no GPU memory given)")


class KVFit(BaseModel):
    """How many sequences the KV cache holds at the prediction's context, with and without the draft (the memory
    budget of ``playbook memory``): above that vLLM queues requests and the predicted speedup is not reachable."""

    context_tokens: int
    max_batch_spec: float = Field(description="sequences the speculative server holds at once (draft weights and KV "
                                  "cache and the k lookahead slots included)")
    max_batch_baseline: float = Field(description="sequences the server without speculation holds at once")
    kv_cache_gib_spec: float
    where: str = Field("", description="the GPU, TP and weight precision budgeted, e.g. 'L4, TP 1, bf16 weights'")
    reasons: list[str] = Field(default_factory=list, description="why the configuration does not fit at all "
                               "(the memory budget's reasons); empty when it fits")
    note: str = ""


class Prediction(BaseModel):
    """Predicted speedup vs batch size for one (target, draft, k, acceptance)."""

    target: str
    draft: str
    method: str
    num_speculative_tokens: int
    acceptance: float = Field(description="per-token acceptance a used (i.i.d.), or the mean of per-position rates")
    acceptance_per_position: list[float] = Field(default_factory=list)
    expected_tokens_per_step: float = Field(description="tokens a step yields: 1 + q (E(k) - 1), E(k) = 1 + sum of "
                                            "per-position acceptance, q the proposal rate")
    cost_ratio: float = Field(description="c = draft step / target step at batch 1")
    optimal_k: int = Field(description="k maximising the speedup at batch 1")
    optimal_k_by_batch_size: dict[int, int] = Field(default_factory=dict, description="best k per batch size (0 = off)")
    points: list[PredictionPoint]
    crossover_batch_size: int | None = Field(
        None, description="smallest batch size where speculation stops winning (null: wins over the whole range)"
    )
    target_step: StepTimeModel
    draft_step: StepTimeModel | None = None
    engine_step_ms: float = Field(0.0, description="per engine step, in both TPOTs (folded into a fitted target step)")
    baseline_engine_step_ms: float | None = Field(None, description="per engine step without speculation when it "
                                                  "differs (None: engine_step_ms)")
    spec_step_ms: float = Field(0.0, description="extra per speculative step (folded into a fitted draft step)")
    spec_seq_ms: float = Field(0.0, description="extra per sequence in each speculative step")
    engine: str = Field("", description="the serving engine whose constants the prediction used (catalog predictions)")
    verify_tokens_per_seq: int = Field(0, description="tokens verified per sequence per step (k+1 for a chain)")
    proposal_rate: float = Field(1.0, description="fraction of steps on which the method proposes (n-gram, suffix: "
                                 "the steps with a match); acceptance is per proposal, as vLLM counts it")
    shared_tpot_ms: dict[int, float] = Field(
        default_factory=dict, description="per output token, by batch size, what both TPOTs pay beyond their decode "
        "steps (other requests' prompts prefilled inside them), measured on the baseline: TPOT minus its typical step")
    baseline_tpot_ms: dict[int, float] = Field(
        default_factory=dict, description="the baseline's TPOT where it was measured, used there instead of the "
        "model's (only the speculative TPOT is predicted at those batch sizes)")
    context_tokens: float = Field(512, description="tokens of context per sequence read from the KV cache each step")
    tree_width: int = Field(1, description="draft tokens per sequence in each later draft pass (1: a chain)")
    kv_fit: KVFit | None = Field(None, description="the batch sizes the KV cache holds (catalog GPUs only)")
    assumptions: list[str] = Field(default_factory=list)
    finding: str = ""


class PredictionCheck(BaseModel):
    """Predicted vs measured speedup at each measured load level."""

    concurrency: list[int]
    measured_speedup: list[float]
    predicted_speedup: list[float]
    relative_error: list[float]
    mean_abs_relative_error: float
    held_out_error: float | None = Field(None, description="mean absolute relative error over the levels the prediction "
                                         "was not calibrated on (above concurrency 1, where the run's fit reproduces "
                                         "the measurement by construction); None when only calibration levels exist")
    held_out_levels: list[int] = Field(default_factory=list)
    measured_interval: list[tuple[float, float] | None] = Field(
        default_factory=list, description="the load test's 95% interval of each level's speedup, when it gave one")


class InflightStep(BaseModel):
    """A server's typical decode step with ``in_flight`` sequences decoding: the median gap between streamed chunks."""

    in_flight: int = Field(ge=1)
    step_ms: float = Field(ge=0, description="median gap between token-carrying chunks while this many decoded")
    chunks: int = Field(ge=0, description="chunk gaps measured at this count")


class StepGrowth(BaseModel):
    """How a server's typical step grows with the sequences decoding (helpers/step_growth.py): a line through its
    median steps at 1, 2, ... sequences in flight, per further sequence as a share of its step with one."""

    source: str = Field(description="the records it comes from")
    levels: list[InflightStep]
    in_flight: int = Field(ge=2, description="the count of sequences in flight measured most (the line spans 1 to it)")
    share: float = Field(description="the line's slope / its step at one sequence: the growth without the "
                         "server's absolute speed, which drifts between phases on a shared machine")
