"""Quantization choice: the precision matrix plus measured acceptance per servable pair."""

from __future__ import annotations

from pydantic import BaseModel, Field

from .base import StepResult
from .memory import PrecisionRow


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


class QuantizationResult(StepResult):
    """artifacts/30_quantization.json."""

    step: str = "30_quantization"
    matrix: list[PrecisionRow] = Field(default_factory=list)
    acceptance: list[AcceptanceRow] = Field(default_factory=list)
    baseline_acceptance: float | None = None
    acceptance_drop_pp_threshold: float = 5.0
    recommendation: list[str] = Field(default_factory=list, description="pairs that fit, safest first")
    recommended: str = Field("", description="first fitting pair without a flagged acceptance drop")
