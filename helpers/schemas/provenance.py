"""Provenance of a run: the machine, the software, each vLLM server's version and exact command, and the
revision of each model measured. Written into run.json (``provenance``) and decision.json."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class GpuDevice(BaseModel):
    index: int
    name: str
    memory_gib: float | None = None
    uuid: str = ""
    mig_mode: Literal["enabled", "disabled"] | None = Field(None, description="MIG mode (None: unknown or unsupported)")
    nvlink_active_links: int | None = Field(None, description="NVLink links up on this GPU (None: unknown)")


class Accelerators(BaseModel):
    source: Literal["nvml", "nvidia-smi", "rocm-smi", "none"] = Field(
        "none", description="where the facts come from: nvidia-ml-py (NVML), nvidia-smi, rocm-smi, or no GPU found")
    gpus: list[GpuDevice] = Field(default_factory=list)
    driver_version: str | None = None
    cuda_version: str | None = Field(None, description="the CUDA version the driver supports")
    rocm_version: str | None = None
    nvlink: bool | None = Field(None, description="any NVLink link up (None: unknown)")
    notes: list[str] = Field(default_factory=list, description="what could not be read, and why")


class CpuInfo(BaseModel):
    model: str = ""
    logical_cores: int = 0
    physical_cores: int | None = None
    memory_gib: float = 0.0
    matrix_isa: list[str] = Field(default_factory=list, description="the CPU's instruction sets that decide how fast "
                                  "it multiplies matrices (AVX-512 BF16, AMX, ...): two CPUs of one model name can "
                                  "differ, and on the CPU engine they decide whether verifying k+1 tokens is cheap")


class Software(BaseModel):
    python: str
    platform: str
    playbook: str | None = None
    vllm: str | None = Field(None, description="the vLLM installed beside the playbook")
    vllm_build: Literal["cpu", "gpu", "missing"] = "missing"
    torch: str | None = None
    transformers: str | None = None


class ServerProvenance(BaseModel):
    """One vLLM server the run measured."""

    name: str = Field(..., description="log name (server-logs/<name>.log), or the role of an external server")
    role: str = ""
    url: str = ""
    vllm_version: str | None = None
    version_source: Literal["/version", "log", "installed", "unknown"] = "unknown"
    command: str = Field("", description="the exact command line that started it (API keys redacted); '' when "
                                         "the playbook did not start it (external mode)")
    started_at: str = ""
    log: str = ""
    steps: list[str] = Field(default_factory=list, description="steps it served (from artifacts/servers.jsonl)")


class ModelRevision(BaseModel):
    role: Literal["target", "draft"]
    name: str = Field(..., description="as given in the parameters")
    path: str = ""
    revision: str | None = Field(None, description="short sha256 of config.json, the weight index and every "
                                                   "safetensors header (None: no local directory)")
    hashed: list[str] = Field(default_factory=list, description="files that went into the revision hash")
    note: str = ""


class ImportedFile(BaseModel):
    """One file of another tool's that an imported run was read from (``playbook import``)."""

    role: str = Field("", description="baseline or spec")
    level: float | None = Field(None, description="the concurrency or request rate it measured")
    path: str = Field("", description="where it was read from, on the importing machine")
    sha256: str = ""
    tool_version: str | None = None
    model: str = ""
    command: str | None = Field(None, description="the tool's command line as the file records it (secrets "
                                                  "redacted); None when the file records none")
    recorded: dict[str, str] = Field(default_factory=dict, description="what else the file records of where and "
                                     "when it ran (vllm bench serve's date, GuideLLM's client platform, ...)")


class ImportedFrom(BaseModel):
    """An imported run: another tool measured it, on hardware that tool does not record."""

    tool: str
    tool_version: str | None = None
    imported_at: str = ""
    hardware: str = Field("not recorded by the tool", description="what the files say of the measuring machine")
    summary: str = Field("", description="'imported from aiperf 0.13.0; hardware not recorded by the tool'")
    files: list[ImportedFile] = Field(default_factory=list)


class Provenance(BaseModel):
    collected_at: str = Field(description="when the facts were collected (an import: when it was imported)")
    host: str | None = Field(description="the measuring machine's host name; None when not recorded (an import)")
    accelerators: Accelerators | None = Field(default_factory=Accelerators,
                                              description="None when not recorded (an import)")
    cpu: CpuInfo | None = Field(default_factory=CpuInfo, description="None when not recorded (an import)")
    software: Software | None = Field(description="None when not recorded (an import: see ``imported``)")
    servers: list[ServerProvenance] = Field(default_factory=list)
    models: list[ModelRevision] = Field(default_factory=list)
    imported: ImportedFrom | None = Field(None, description="set when the run was imported from another tool's "
                                          "files (playbook import): then host, accelerators, cpu and software are "
                                          "None, never the importing machine's")
