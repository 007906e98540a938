"""A prompt to send: one line of a prompt set, with the temperature its workload class uses."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator


class PromptItem(BaseModel):
    """``prompt`` goes to /v1/completions; ``messages`` (chat) to /v1/chat/completions."""

    id: str
    workload: str = Field(description="workload class or file the prompt came from")
    prompt: str | None = None
    messages: list[dict] | None = None
    max_tokens: int = Field(64, ge=1)
    temperature: float = Field(0.0, ge=0, le=2)

    @model_validator(mode="after")
    def _has_text(self):
        if not self.prompt and not self.messages:
            raise ValueError("needs a non-empty 'prompt' or 'messages'")
        return self

    @property
    def is_chat(self) -> bool:
        return bool(self.messages)
