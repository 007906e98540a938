"""What every step's result has in common."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, Field


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class StepResult(BaseModel):
    """Base of each step's result model, written as artifacts/<step>.json by the step's notebook."""

    step: str
    status: Literal["ok", "partial", "failed", "skipped"] = "ok"
    finding: str = Field("", description="one line the report reuses")
    warnings: list[str] = Field(default_factory=list)
    created_at: str = Field(default_factory=_now)
