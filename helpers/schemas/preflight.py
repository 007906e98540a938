"""Result of step 00: what this node and its vLLM can do, as a checklist."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from .base import StepResult


class Check(BaseModel):
    name: str
    status: Literal["ok", "warn", "fail", "skip"]
    detail: str = ""
    fix: str = ""


class GpuInfo(BaseModel):
    name: str
    memory_gib: float
    index: int = 0


class Hardware(BaseModel):
    gpus: list[GpuInfo] = Field(default_factory=list)
    cpu_count: int = 0
    memory_gib: float = 0.0
    matrix_isa: list[str] = Field(default_factory=list, description="the CPU's matrix instruction sets (provenance."
                                  "MATRIX_ISA): on the CPU engine they decide whether verifying k+1 tokens is cheap")


class PreflightResult(StepResult):
    step: str = "00_preflight"
    vllm_version: str | None = None
    vllm_build: Literal["cpu", "gpu", "missing"] = "missing"
    hardware: Hardware = Field(default_factory=Hardware)
    mode: str = "embedded"
    spec_metrics: list[str] = Field(default_factory=list, description="spec-decode metric names the server exposes")
    server_versions: dict[str, str | None] = Field(default_factory=dict,
                                                   description="vLLM version per server role (its /version endpoint)")
    features_needed: list[str] = Field(default_factory=list,
                                       description="vLLM features the run uses (keys of helpers/preflight.FEATURES)")
    checks: list[Check] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)
