"""Draft ranking results: one row per candidate, and notebook 10's result."""

from __future__ import annotations

from pydantic import BaseModel, Field

from .base import StepResult


class DraftCandidate(BaseModel):
    """One candidate draft for a target, scored (0-100) with a reason per factor."""

    name: str
    source: str = Field(description="catalog or dir")
    params_b: float = Field(description="draft parameters, billions")
    ratio: float = Field(description="target parameters / draft parameters (1:8 to 1:12 is the sweet spot)")
    ratio_score: float
    same_family: bool = Field(description="same model family and generation (config model_type), not vendor")
    same_tokenizer: bool | None = Field(description="equal vocab_size and token -> id map; None when it cannot "
                                        "be checked (catalog vs directory)")
    tokenizer_detail: str = ""
    heterogeneous_vocab: bool = Field(False, description="usable only with vLLM's use_heterogeneous_vocab "
                                      "(draft_model only, greedy draft sampling)")
    speculative_config: dict = Field(default_factory=dict, description="keys this candidate needs in "
                                     "--speculative-config besides method/model/k")
    conditions: list[str] = Field(default_factory=list, description="what vLLM requires for this candidate")
    methods: list[str] = Field(default_factory=list, description="speculative methods this candidate enables")
    score: float
    rank: int = 0
    reasons: list[str] = Field(default_factory=list)
    acceptance_rate: float | None = Field(None, description="measured by the optional probe")


class DraftsResult(StepResult):
    """artifacts/10_drafts.json."""

    step: str = "10_drafts"
    target: str
    target_params_b: float
    target_methods: list[str] = Field(description="methods the target supports (n-gram and suffix always)")
    candidates: list[DraftCandidate] = Field(default_factory=list)
    lossy_settings: list[str] = Field(default_factory=list, description="settings the installed vLLM offers "
                                      "that change the output distribution (never recommended)")
    best: str = Field("", description="name of the top-ranked candidate ('' when none is usable)")
