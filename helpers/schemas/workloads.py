"""A prompt to send (one line of a prompt set, with the temperature its workload class uses), the
length distributions a workload spec can impose, and the per-class / per-length breakdown of a load test."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class PromptItem(BaseModel):
    """``prompt`` goes to /v1/completions; ``messages`` (chat) to /v1/chat/completions.

    A prompt rendered from ``messages`` with the model's own chat template (``templated``) goes to
    /v1/completions without the tokenizer's special tokens added again (the template has them).
    Frozen: a prompts file's items are shared by every read of it (``workloads.load_file``); change one
    with ``model_copy(update=...)``."""

    model_config = ConfigDict(frozen=True)

    id: str
    workload: str = Field(description="workload class or file the prompt came from (the report's class breakdown)")
    prompt: str | None = None
    messages: list[dict] | None = None
    max_tokens: int = Field(64, ge=1)
    temperature: float = Field(0.0, ge=0, le=2)
    json_schema: dict | None = Field(None, description="structured output: vLLM guided decoding to this JSON schema")
    tools: list[dict] | None = Field(None, description="OpenAI-style tool definitions: the request must call one")
    templated: bool = Field(False, description="prompt rendered from messages with the tokenizer's chat template")
    input_tokens: int | None = Field(None, description="prompt length in tokens when the workload set it (exact "
                                     "with the model's tokenizer)")

    @model_validator(mode="after")
    def _has_text(self):
        if not self.prompt and not self.messages:
            raise ValueError("needs a non-empty 'prompt' or 'messages'")
        for i, m in enumerate(self.messages or []):  # the chat API refuses a turn without role or content
            if not isinstance(m.get("role"), str) or not m["role"]:
                raise ValueError(f"message {i + 1} has no 'role' (write {{\"role\": \"user\", \"content\": \"...\"}})")
            if not isinstance(m.get("content"), (str, list)) and not m.get("tool_calls"):
                raise ValueError(f"message {i + 1} has no 'content' text (write {{\"role\": \"{m['role'][:20]}\", "
                                 "\"content\": \"...\"})")
        return self

    @property
    def is_chat(self) -> bool:
        return bool(self.messages)


class LengthSpec(BaseModel):
    """Token lengths for a workload: ``fixed`` (``128``), ``uniform`` (``64-256``, both ends included)
    or ``file`` (``file:PATH``: one length per line, or JSONL with the field ``field``), sampled with
    replacement from the file's lengths."""

    kind: Literal["fixed", "uniform", "file"]
    low: int = Field(1, ge=1)
    high: int = Field(1, ge=1)
    values: list[int] = Field(default_factory=list)
    source: str = ""

    def describe(self) -> str:
        if self.kind == "fixed":
            return str(self.low)
        if self.kind == "uniform":
            return f"uniform {self.low}-{self.high}"
        return f"{len(self.values)} lengths from {self.source}"


class BreakdownRow(BaseModel):
    """One group of a load test's requests (a workload class, or a prompt-length bucket) at one level:
    the speculative server's acceptance on that group and the TPOT speedup (median baseline / median spec)."""

    by: Literal["class", "length"]
    group: str = Field(description="class name, or length bucket like '128-255' (prompt tokens)")
    level: float
    requests_baseline: int = 0
    requests_spec: int = 0
    tpot_p50_baseline_ms: float | None = None
    tpot_p50_spec_ms: float | None = None
    speedup: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    acceptance_rate: float | None = Field(None, description="pooled from the responses' own spec-decode metrics "
                                          "(accepted / draft tokens); None when the server sent none")
    mean_acceptance_length: float | None = None
