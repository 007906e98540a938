"""The runner's state file, run.json: what was asked and how far each step got."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .provenance import Provenance
from .servers import ServersSummary

StepStatus = Literal["pending", "running", "done", "failed", "interrupted"]


class StepState(BaseModel):
    name: str
    status: StepStatus = "pending"
    started_at: str | None = None
    finished_at: str | None = None
    seconds: float | None = None
    error: str | None = None


class RunState(BaseModel):
    run_id: str
    created_at: str
    profile: str
    parameters: dict[str, Any] = Field(default_factory=dict, description="merged profile + overrides (names only for secrets)")
    steps: list[StepState] = Field(default_factory=list)
    versions: dict[str, str | None] = Field(default_factory=dict)
    servers: ServersSummary | None = Field(None, description="the run's server pool: starts, reuses, start-up "
                                                             "time per configuration and per step")
    provenance: Provenance | None = Field(None, description="GPUs, driver, CUDA, vLLM versions, exact server "
                                          "commands and model revisions (helpers/provenance.py)")

    def step(self, name: str) -> StepState:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    def unfinished(self) -> list[str]:
        return [s.name for s in self.steps if s.status != "done"]


class RunOutcome(BaseModel):
    """What `playbook run` prints at the end."""

    run_dir: str
    report: str | None
    verdict: str | None
    failed_steps: list[str] = Field(default_factory=list)
