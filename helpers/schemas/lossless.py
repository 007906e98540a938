"""Result of the losslessness guard: does speculation change what the model says?"""

from __future__ import annotations

from pydantic import BaseModel, Field

from .base import StepResult


class LosslessPoint(BaseModel):
    temperature: float
    requests: int = 0
    identical_share: float | None = Field(None, description="temperature 0: share of outputs identical token for token")
    first_divergence: dict | None = Field(None, description="temperature 0: the first output changed beyond a near-tie "
                                          "(prompt id, token index, the baseline's margin in nats), else the first near-tie")
    near_tie_margins: list[float] = Field(default_factory=list, description="temperature 0: per output that diverged "
                                          "at a near-tie, the baseline's preference for its own token there (nats)")
    near_tie_nats: float | None = Field(None, description="the largest margin counted as a near-tie")
    loglik_baseline: float | None = Field(None, description="mean per-token log-likelihood of baseline outputs under the baseline server")
    loglik_spec: float | None = Field(None, description="same for the speculative server's outputs")
    p_value: float | None = Field(None, description="two-sided permutation test of equal mean log-likelihood")
    alpha: float = 0.01
    lossless: bool | None = None
    reason: str = ""


class LosslessResult(StepResult):
    step: str = "lossless"
    lossless: bool | None = None
    alpha: float = Field(0.01, description="false-alarm rate of the T>0 test")
    temperatures: list[LosslessPoint] = Field(default_factory=list)
