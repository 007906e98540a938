"""50_candidates.json: the speculative configurations compared at the load test's levels."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Candidate(BaseModel):
    """One speculative configuration: method, k, and for n-gram its lookup window."""

    method: str
    k: int = Field(ge=1, le=16)
    lookup_min: int | None = Field(None, ge=1, description="n-gram: prompt_lookup_min")
    lookup_max: int | None = Field(None, ge=1, description="n-gram: prompt_lookup_max")

    @property
    def label(self) -> str:
        """As written in the ``candidates`` parameter: ``method:k`` or ``ngram:k:min-max``."""
        window = f":{self.lookup_min}-{self.lookup_max}" if self.lookup_min is not None else ""
        return f"{self.method}:{self.k}{window}"

    @property
    def slug(self) -> str:
        """A directory name for the candidate's own run directory."""
        return self.label.replace(":", "-")


class CandidateLevel(BaseModel):
    """One candidate at one level, against the baseline measured in the same round pairs."""

    level: float
    status: str = "ok"
    reason: str = ""
    speedup: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    tpot_p50_ms: float | None = None
    output_tok_s: float | None = None
    baseline_tpot_p50_ms: float | None = None
    baseline_output_tok_s: float | None = None
    acceptance_rate: float | None = None
    mean_acceptance_length: float | None = None
    acceptance_per_position: list[float] = Field(default_factory=list, description="vLLM's per-position acceptance "
                                                 "(accepted at position i / drafts) over the level")
    rounds: int = 0


class CandidateResult(BaseModel):
    candidate: Candidate
    label: str
    primary: bool = Field(False, description="the step's own configuration (50_load.json)")
    status: Literal["measured", "pruned", "failed", "skipped"] = "measured"
    reason: str = Field("", description="why pruned, failed or skipped")
    predicted_speedup: dict[float, float] = Field(default_factory=dict, description="by level, calibrated on the "
                                                  "primary's measured speedup at that level")
    run_dir: str = Field("", description="the candidate's own run directory (relative to the run)")
    levels: list[CandidateLevel] = Field(default_factory=list)


class LevelChoice(BaseModel):
    """The best candidate at one level whose interval clears 1.0 (none: speculation stays off there)."""

    level: float
    winner: str | None = None
    speedup: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None


class LaunchCheck(BaseModel):
    """The k table measured as launched (vLLM's ``num_speculative_tokens_per_batch_size``) at the measured levels
    on either side of each of its edges, against the static configuration it would replace."""

    table: list[list[int]]
    label: str = Field("", description="the static configuration launched instead when the table does not hold")
    status: Literal["held", "slower", "failed"] = "held"
    levels: list[CandidateLevel] = Field(default_factory=list, description="the table's server against the static "
                                         "configuration's, in paired rounds (speedup: static TPOT / table TPOT)")
    expected: dict[float, float] = Field(default_factory=dict, description="per checked level, the static "
                                         "configuration's measured speedup over no speculation there")
    run_dir: str = ""
    finding: str = ""


class CandidatesResult(BaseModel):
    status: Literal["ok", "partial", "failed", "skipped"] = "ok"
    level_kind: str = "concurrency"
    levels: list[float] = Field(default_factory=list)
    candidates: list[CandidateResult] = Field(default_factory=list)
    per_level: list[LevelChoice] = Field(default_factory=list)
    winner: str | None = Field(None, description="the configuration to run: the most levels won, then the best speedup; the step's own "
                                  "configuration unless the data tell another apart (candidates.displaces)")
    winner_method: str = ""
    winner_k: int | None = Field(None, description="num_speculative_tokens to launch with (the table's largest k)")
    win_levels: list[float] = Field(default_factory=list, description="levels where the k run there (k_by_level) wins")
    k_by_level: dict[float, int] = Field(default_factory=dict, description="the k the winner's method runs at each "
                                         "level: its best winning k; 0 where all its candidates measured no faster than "
                                         "the baseline; the k of the level below where none wins but none lost")
    k_table: list[list[int]] | None = Field(None, description="vLLM's num_speculative_tokens_per_batch_size from "
                                            "k_by_level (None: one k everywhere, or rates)")
    k_zero_note: str = ""
    launch_check: LaunchCheck | None = Field(None, description="k_table measured as launched; the launch command "
                                             "carries the table only when it held")
    budget_note: str = ""
    warnings: list[str] = Field(default_factory=list)
    finding: str = ""
