"""Quantization choice: the precision matrix plus measured acceptance per servable pair."""

from __future__ import annotations

from pydantic import BaseModel, Field

from .base import StepResult
from .memory import PrecisionRow
from .models import ModelSpec


class Checkpoint(BaseModel):
    """One checkpoint the user has for a precision (the base model at its own precision included)."""

    precision: str
    ref: str = Field(description="local directory or hub id, as given")
    base: bool = Field(False, description="the step's target_model/draft_model itself")
    spec: ModelSpec
    weights_from: str = Field("", description="where the weight bytes come from (safetensors headers, estimate)")
    note: str = ""


class PairPlan(BaseModel):
    """A (target checkpoint, draft checkpoint) pair with its own memory budget."""

    target: Checkpoint
    draft: Checkpoint | None = None
    baseline: bool = False
    fits: bool = True
    target_weights_gib: float = 0.0
    draft_weights_gib: float = 0.0
    reason: str = ""


class AcceptanceRow(BaseModel):
    """Acceptance measured for one (target precision, draft precision) pair on a real server."""

    target_quant: str
    draft_quant: str
    servable: bool = Field(description="the installed vLLM serves this pair for these models")
    measured: bool = False
    acceptance_rate: float | None = None
    mean_acceptance_length: float | None = None
    draft_tokens: float = 0.0
    drop_pp: float | None = Field(None, description="acceptance drop vs the unquantized pair, percentage points")
    flagged: bool = Field(False, description="drop above the threshold")
    server_args: list[str] = Field(default_factory=list)
    note: str = ""
    temperature: float = Field(0.0, description="sampling temperature of the measurement")
    baseline: bool = Field(False, description="the unquantized pair the drops are measured against")
    target_checkpoint: str = Field("", description="the target checkpoint served ('' = the step's target_model)")
    draft_checkpoint: str = Field("", description="the draft checkpoint served")
    fits: bool | None = Field(None, description="the pair fits, by the checkpoints' own weights")
    target_weights_gib: float | None = None
    draft_weights_gib: float | None = None


class QuantizationResult(StepResult):
    """artifacts/30_quantization.json."""

    step: str = "30_quantization"
    matrix: list[PrecisionRow] = Field(default_factory=list)
    acceptance: list[AcceptanceRow] = Field(default_factory=list)
    baseline_acceptance: float | None = None
    acceptance_drop_pp_threshold: float = 5.0
    recommendation: list[str] = Field(default_factory=list, description="pairs that fit, safest first")
    recommended: str = Field("", description="first fitting pair without a flagged acceptance drop")
    checkpoints: list[PairPlan] = Field(default_factory=list, description="the user's checkpoint pairs, budgeted")
    production_temperature: float | None = Field(None, description="the temperature acceptance was measured at "
                                                 "(besides T=0)")
