"""The run's server pool: what a step gets when it acquires a server, what the pool lists, and the
accounting written to ``artifacts/servers.jsonl`` and summarised in ``run.json``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

EventKind = Literal["start", "reuse", "restart", "failed", "evict", "stop"]


class Lease(BaseModel):
    """A pooled server handed to a step (the answer to ``acquire``)."""

    key: str = Field(..., description="the configuration's key (a hash of its full ServerConfig)")
    name: str = Field(..., description="log name, e.g. spec-1 (server-logs/spec-1.log)")
    url: str
    model: str
    pid: int
    log: str
    reused: bool = Field(False, description="the server was already running for an earlier step")
    restarted: bool = Field(False, description="the pooled server had died and was started again for this step")
    start_s: float = Field(0.0, description="start-up seconds spent for this acquire (0 when reused)")
    exclusive: bool = False
    notes: list[str] = Field(default_factory=list, description="what the step should say (a restart, an eviction)")


class PooledServer(BaseModel):
    """One server of the pool, as ``list`` shows it."""

    key: str
    name: str
    role: str
    config: str = Field(..., description="one-line summary of the configuration")
    url: str
    pid: int
    log: str
    alive: bool
    in_use: int = Field(0, description="steps holding it right now")
    exclusive: bool = False
    steps: list[str] = Field(default_factory=list, description="steps it served, in order")
    start_s: float = 0.0
    reuses: int = 0
    restarts: int = 0


class ServerEvent(BaseModel):
    """One line of artifacts/servers.jsonl (appended as it happens, so a killed run loses nothing)."""

    at: str
    event: EventKind
    key: str
    name: str = ""
    role: str = ""
    step: str = ""
    config: str = ""
    pid: int | None = None
    port: int | None = None
    log: str = ""
    start_s: float = 0.0
    reason: str = ""
    pool: str = Field("", description="id of the pool (one per `playbook run` invocation or lab session)")


class ConfigUse(BaseModel):
    """Per configuration: how often it started, for whom, and what that cost."""

    key: str
    config: str
    role: str
    starts: int = Field(0, description="starts, restarts included")
    restarts: int = 0
    reuses: int = 0
    evictions: int = 0
    startup_s: float = 0.0
    steps: list[str] = Field(default_factory=list)
    logs: list[str] = Field(default_factory=list, description="server-logs/*.log names")


class StepServers(BaseModel):
    """Per step: servers it started, reused or had to restart."""

    step: str
    started: int = 0
    reused: int = 0
    restarted: int = 0
    failed: int = 0
    startup_s: float = 0.0
    servers: list[str] = Field(default_factory=list, description="log names of the servers it used")
    notes: list[str] = Field(default_factory=list, description="restarts and evictions, with their reason")


class ServersSummary(BaseModel):
    """run.json ``servers``: the pool's accounting over the whole run (every invocation, resumes included)."""

    started: int = Field(0, description="server starts, restarts included")
    configurations: int = Field(0, description="distinct configurations started")
    restarts: int = 0
    reuses: int = Field(0, description="acquires served by a server already running")
    failed: int = Field(0, description="starts that failed")
    startup_s: float = Field(0.0, description="total start-up seconds")
    per_config: list[ConfigUse] = Field(default_factory=list)
    per_step: list[StepServers] = Field(default_factory=list)
