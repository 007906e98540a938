"""What the load generator records: one record per request, one summary per phase.

The hot path builds plain dicts with exactly :class:`RequestRecord`'s fields (no per-token
objects); this model documents them and validates records read back from JSONL.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Status = Literal["ok", "http_error", "timeout", "connection_error", "refused", "stream_error"]


class RequestRecord(BaseModel):
    """One request. Times are in ms; ``sent_s``/``scheduled_s`` are seconds from the phase start."""

    id: str = Field(description="unique: <phase>/<attempt>-<index> (warmups: -w<index>)")
    prompt_id: str
    workload: str
    temperature: float | None = Field(description="sampling temperature; None only in an import whose files do not "
                                      "record it (unknown, not 0)")
    phase: str = Field(description="label of the phase, e.g. 'baseline@c4'")
    warmup: bool = False
    scheduled_s: float = Field(description="when the arrival process said to send it")
    sent_s: float = Field(description="when it was actually sent")
    dispatch_lag_ms: float = Field(description="sent - scheduled: the client's own delay")
    status: Status
    http_status: int | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    ttft_ms: float | None = None
    tpot_ms: float | None = Field(None, description="(e2e - ttft) / (output_tokens - 1)")
    e2e_ms: float | None = None
    itl_ms: list[float] = Field(default_factory=list, description="per token: chunk gap / tokens in the chunk")
    chunks: int = 0
    malformed_lines: int = 0
    usage_from_server: bool = Field(False, description="token counts came from the server's usage stats")
    spec: dict | None = Field(None, description="the server's metrics.speculative_decoding block, if any")
    text: str = ""
    burst: bool = Field(False, description="burst-delivered: at least half the gaps between token-carrying chunks "
                        "were under 0.1 ms (loadgen.is_burst); its TPOT/ITL are not the server's pace")
    gaps_near_zero: int = Field(0, description="gaps between token-carrying chunks under 0.1 ms")


class PhaseSummary(BaseModel):
    """How a phase of requests ended: ``failed`` keeps the records completed before the failure."""

    phase: str
    attempt: str = Field("", description="random id of this measurement of the phase (record ids carry it)")
    status: Literal["ok", "failed"] = "ok"
    reason: str = ""
    sent: int = 0
    completed: int = 0
    ok: int = 0
    errors: int = 0
    errors_by_status: dict[str, int] = Field(default_factory=dict)
    malformed_lines: int = 0
    duration_s: float = 0.0
    dispatch_lag_p99_ms: float | None = None
