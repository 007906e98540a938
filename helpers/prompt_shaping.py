"""Shape prompts with the model's own tokenizer: render chat messages with its chat template, fit a
prompt to a number of tokens, and draw token lengths (fixed, uniform, or from a file).

The tokenizer is the one in the model directory (``tokenizer_config.json``), loaded with
transformers' ``AutoTokenizer``; its ``apply_chat_template`` renders exactly what vLLM's
/v1/chat/completions would (vLLM applies the same template: vllm/entrypoints/chat_utils.py). When no
tokenizer is at hand (a remote model), chat prompts stay as messages and the server applies its own
template; input lengths then cannot be set exactly.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import WorkloadError
from .schemas.workloads import LengthSpec

CHARS_PER_TOKEN = 4  # rough English average (OpenAI's tokenizer guide), used only without a tokenizer


def tokenizer_dir(model: str | None) -> Path | None:
    """The directory whose tokenizer shapes prompts for ``model`` ('embedded', a local model
    directory, or a directory holding only a tokenizer), or None (a catalog or hub name)."""
    if not model:
        return None
    if model == "embedded":
        from .models import embedded_dir

        return Path(embedded_dir("target"))
    p = Path(model).expanduser()
    return p if (p / "tokenizer_config.json").is_file() or (p / "tokenizer.json").is_file() else None


def tokenizer_for(params) -> Path | None:
    """The tokenizer directory a step's parameters point at: the embedded target in embedded mode,
    else ``target_model`` when it is a local directory. ``target_model: embedded`` with an external or
    managed server says nothing about the served model: None (the server templates chat itself)."""
    model = getattr(params, "target_model", None)
    if getattr(params, "mode", None) == "embedded":
        return tokenizer_dir("embedded")
    return None if model == "embedded" else tokenizer_dir(model)


@lru_cache(maxsize=4)
def load_tokenizer(directory: str):
    """transformers' tokenizer of a local directory (cached per directory)."""
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise WorkloadError(f"cannot load the tokenizer in {directory}: {str(exc).splitlines()[0][:200]}",
                            "give a model directory holding tokenizer.json / tokenizer_config.json") from None
    tok.model_max_length = 1 << 30  # prompts are only measured here; the server enforces its own max_model_len
    return tok


def has_chat_template(tok) -> bool:
    return bool(getattr(tok, "chat_template", None))


def render_chat(tok, messages: list[dict], tools: list[dict] | None = None) -> str:
    """The prompt text vLLM's chat endpoint would build: the tokenizer's chat template with the
    generation prompt appended (tools passed to templates that render them)."""
    kwargs = {"tools": tools} if tools else {}
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)


def count_tokens(tok, text: str, special: bool = True) -> int:
    return len(tok(text, add_special_tokens=special)["input_ids"])


def fit_text(text: str, n: int, tok=None, filler: str = "", keep: str = "end") -> str:
    """``text`` cut or extended to ``n`` tokens of ``tok`` (without a tokenizer: about
    ``n * CHARS_PER_TOKEN`` characters). ``keep="end"`` keeps the text's end (where a prompt's
    instruction usually is) and puts ``filler`` (else the text itself) before it as context;
    ``keep="start"`` keeps its start and appends the filler."""
    if n <= 0:
        return ""
    pad = (filler or text or "lorem ipsum").strip()
    front = keep == "end"
    if tok is None:
        chars, out = n * CHARS_PER_TOKEN, text
        while len(out) < chars:
            out = pad + "\n\n" + out if front else out + "\n\n" + pad
        return out[-chars:] if front else out[:chars]
    ids = tok(text, add_special_tokens=False)["input_ids"]
    pad_ids = tok(pad + "\n\n", add_special_tokens=False)["input_ids"] or [0]
    while len(ids) < n:
        ids = pad_ids + ids if front else ids + pad_ids
    ids = ids[-n:] if front else ids[:n]
    out = tok.decode(ids, skip_special_tokens=True)
    for _ in range(8):  # decoding and encoding again can merge or split tokens at the seams: refit
        again = tok(out, add_special_tokens=False)["input_ids"]
        if len(again) == n:
            break
        if len(again) < n:
            again = pad_ids + again if front else again + pad_ids
        again = again[len(again) - n:] if front else again[:n]
        out = tok.decode(again, skip_special_tokens=True)
    return out


def parse_length(text: str, what: str = "length") -> LengthSpec:
    """``128`` (fixed), ``64-256`` (uniform) or ``file:PATH`` (one length per line, or JSONL records
    whose first integer field among output_tokens/input_tokens/max_tokens/tokens/length is used)."""
    text = text.strip()
    hint = f"write {what} as 128, 64-256 or file:PATH"
    if text.startswith("file:"):
        path = Path(text[5:]).expanduser()
        try:
            lines = [x.strip() for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        except OSError as exc:
            raise WorkloadError(f"cannot read the {what} file {path}: {exc.strerror or exc}", hint) from None
        values = []
        for i, line in enumerate(lines, 1):
            try:
                v = json.loads(line)
                if isinstance(v, dict):
                    v = next(v[k] for k in ("output_tokens", "input_tokens", "max_tokens", "tokens", "length") if k in v)
                values.append(int(v))
            except (ValueError, StopIteration, TypeError):
                raise WorkloadError(f"{path} line {i} holds no token length", "one integer per line, or JSONL with "
                                    "'output_tokens' / 'input_tokens' / 'max_tokens'") from None
        if not values or min(values) < 1:
            raise WorkloadError(f"{path} holds no positive token length", "one integer >= 1 per line")
        return LengthSpec(kind="file", low=min(values), high=max(values), values=values, source=str(path))
    try:
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-", 1))
            if lo < 1 or hi < lo:
                raise ValueError
            return LengthSpec(kind="uniform", low=lo, high=hi)
        n = int(text)
        if n < 1:
            raise ValueError
        return LengthSpec(kind="fixed", low=n, high=n)
    except ValueError:
        raise WorkloadError(f"'{text}' is not a {what}", hint) from None


def sample_lengths(spec: LengthSpec, n: int, rng: np.random.Generator) -> list[int]:
    """``n`` lengths drawn from ``spec`` (seeded by ``rng``)."""
    if spec.kind == "fixed":
        return [spec.low] * n
    if spec.kind == "uniform":
        return [int(x) for x in rng.integers(spec.low, spec.high + 1, size=n)]
    return [int(spec.values[i]) for i in rng.integers(0, len(spec.values), size=n)]
