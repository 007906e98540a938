"""Workloads: the shipped prompt sets, user JSONL and ShareGPT files, and mixes of classes.

A workload spec is one of:

- a class name shipped in ``playbook/data/workloads/<name>.jsonl`` (``structured``, ``code``,
  ``summarization``, ``chat``, ``creative``), lines ``{"id", "prompt", "max_tokens"}`` (chat also
  ``"messages"``);
- a path to a user file: JSONL of the same shape (``prompt`` or ``messages``), or ShareGPT
  (a JSON list or JSONL of ``{"conversations": [{"from": "human", "value": ...}, ...]}``);
- a mix ``structured:0.6@0.1,creative:0.4@1.0``: class (or file) : share @ temperature.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from .errors import WorkloadError
from .schemas.workloads import PromptItem


def workloads_dir() -> Path:
    """Where the shipped prompt sets live."""
    return Path(str(resources.files("playbook.data").joinpath("workloads")))


def known_workloads(directory: Path | None = None) -> list[str]:
    d = Path(directory) if directory else workloads_dir()
    return sorted(p.stem for p in d.glob("*.jsonl")) if d.is_dir() else []


def _sharegpt_item(obj: dict, lineno: int, source: str, path: Path | None = None) -> dict | None:
    conv = obj.get("conversations") or obj.get("conversation")
    if not isinstance(conv, list):
        return None
    bad = next((i for i, t in enumerate(conv) if not isinstance(t, dict)), None)
    if bad is not None:
        raise WorkloadError(f"{path or source} record {lineno}: conversation turn {bad + 1} is not a JSON object",
                            'write each turn as {"from": "human", "value": "..."}')
    first = next((t for t in conv if t.get("from") in ("human", "user") and t.get("value")), None)
    if first is None or not isinstance(first["value"], str):
        return None
    return {"id": str(obj.get("id", f"{source}-{lineno}")), "prompt": first["value"]}


def _read_records(path: Path) -> list[tuple[int, dict]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise WorkloadError(f"prompts file {path} is not UTF-8 text (byte {exc.start}: {exc.reason})",
                            "save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
    except OSError as exc:
        raise WorkloadError(f"cannot read prompts file {path}: {exc.strerror or exc}",
                            "give a readable JSONL or ShareGPT file") from None
    if not text.strip():
        raise WorkloadError(f"prompts file {path} is empty", "put one JSON object per line: {\"prompt\": \"...\"}")
    stripped = text.lstrip()
    if stripped.startswith("["):  # ShareGPT as one JSON list
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WorkloadError(f"{path}: not valid JSON at line {exc.lineno}: {exc.msg}", "fix that line") from None
        if not isinstance(data, list):
            raise WorkloadError(f"{path} is JSON but not a list of records", "write a JSON list of {...} objects, "
                                "or one object per line (JSONL)")
        bad = next((i for i, obj in enumerate(data) if not isinstance(obj, dict)), None)
        if bad is not None:
            raise WorkloadError(f"{path}: entry {bad + 1} of the JSON list is not an object",
                                "each entry must be an object with 'prompt', 'messages' or 'conversations'")
        return [(i + 1, obj) for i, obj in enumerate(data)]
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise WorkloadError(
                f"{path} line {lineno} is not valid JSON: {exc.msg}",
                "each line must be one JSON object, e.g. {\"id\": \"1\", \"prompt\": \"...\", \"max_tokens\": 64}",
            ) from None
        if not isinstance(obj, dict):
            raise WorkloadError(f"{path} line {lineno} is not a JSON object", "write one {...} object per line")
        out.append((lineno, obj))
    return out


def load_file(path: str | Path, workload: str | None = None, max_tokens: int | None = None) -> list[PromptItem]:
    """Read a prompts file (JSONL or ShareGPT); errors name the file and line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WorkloadError(f"prompts file {path} does not exist", "give an existing JSONL/ShareGPT file or a workload name")
    name = workload or path.stem
    items = []
    for lineno, obj in _read_records(path):
        if "prompt" not in obj and "messages" not in obj:
            obj = _sharegpt_item(obj, lineno, name, path) or obj
        if "prompt" not in obj and "messages" not in obj:
            raise WorkloadError(
                f"{path} line {lineno} has neither 'prompt' nor 'messages' (nor ShareGPT 'conversations')",
                "add a \"prompt\" field to that line",
            )
        fields = {"id": str(obj.get("id", f"{name}-{lineno}")), "workload": name,
                  "prompt": obj.get("prompt"), "messages": obj.get("messages")}
        if max_tokens is not None or obj.get("max_tokens") is not None:
            fields["max_tokens"] = max_tokens if max_tokens is not None else obj["max_tokens"]
        try:
            items.append(PromptItem(**fields))
        except ValidationError as exc:
            msg = "; ".join(e["msg"] for e in exc.errors())
            raise WorkloadError(f"{path} line {lineno}: {msg}", "fix that line") from None
    if not items:
        raise WorkloadError(f"prompts file {path} holds no prompts", "put one JSON object per line")
    return items


def _resolve(name: str, directory: Path | None, max_tokens: int | None) -> list[PromptItem]:
    known = known_workloads(directory)
    if name in known:
        d = Path(directory) if directory else workloads_dir()
        return load_file(d / f"{name}.jsonl", workload=name, max_tokens=max_tokens)
    if Path(name).expanduser().is_file():
        return load_file(name, max_tokens=max_tokens)
    raise WorkloadError(
        f"unknown workload '{name}': neither a shipped class nor an existing file",
        f"use one of {', '.join(known) or '(no shipped prompt sets found)'}, a path to a JSONL/ShareGPT "
        "file, or a mix like 'structured:0.6@0.1,creative:0.4@1.0'",
    )


def parse_mix(spec: str) -> list[tuple[str, float, float | None]]:
    """``"a:0.6@0.1,b:0.4@1.0"`` -> ``[("a", 0.6, 0.1), ("b", 0.4, 1.0)]`` (shares normalised)."""
    parts = []
    for chunk in spec.split(","):
        chunk = chunk.strip()
        if not chunk:
            continue
        temp = None
        if "@" in chunk:
            chunk, t = chunk.rsplit("@", 1)
            temp = _number(t, spec, "temperature")
            if not 0 <= temp <= 2:
                raise WorkloadError(f"temperature {temp} in '{spec}' is outside [0, 2]", "use a temperature between 0 and 2")
        name, share = (chunk.rsplit(":", 1) + ["1"])[:2] if ":" in chunk else (chunk, "1")
        parts.append((name.strip(), _number(share, spec, "share"), temp))
    total = sum(s for _, s, _ in parts)
    if not parts or total <= 0:
        raise WorkloadError(f"workload mix '{spec}' has no positive shares", "write it like 'structured:0.6@0.1,creative:0.4@1.0'")
    return [(n, s / total, t) for n, s, t in parts]


def _number(text: str, spec: str, what: str) -> float:
    try:
        value = float(text)
        if not np.isfinite(value) or value < 0:
            raise ValueError(text)
        return value
    except ValueError:
        raise WorkloadError(
            f"'{text}' in workload mix '{spec}' is not a number " + ("(a finite, non-negative share)" if what == "share" else f"({what})"),
            "write it like 'structured:0.6@0.1,creative:0.4@1.0'",
        ) from None


def _is_mix(spec: str) -> bool:
    return "," in spec or "@" in spec or (":" in spec and not Path(spec).expanduser().exists())


def _counts(shares: list[float], n: int) -> list[int]:
    """Largest-remainder split of n into the shares."""
    raw = [s * n for s in shares]
    counts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)[: n - sum(counts)]:
        counts[i] += 1
    return counts


def _sample(items: list[PromptItem], n: int, rng: np.random.Generator) -> list[PromptItem]:
    """n items: shuffled passes over the set, so every prompt is used before any repeats."""
    out: list[PromptItem] = []
    while len(out) < n:
        out.extend(items[i] for i in rng.permutation(len(items)))
    return out[:n]


def build_requests(
    spec: str,
    n: int,
    temperature: float = 0.0,
    max_tokens: int | None = None,
    seed: int = 0,
    directory: Path | None = None,
) -> list[PromptItem]:
    """n prompts for a workload spec, seeded; each carries the temperature of its class."""
    if not spec or not spec.strip():
        raise WorkloadError("no workload given", f"use one of {', '.join(known_workloads(directory))} or a file path")
    rng = np.random.default_rng(seed)
    parts = parse_mix(spec) if _is_mix(spec) else [(spec.strip(), 1.0, None)]
    out: list[PromptItem] = []
    for (name, _share, temp), count in zip(parts, _counts([p[1] for p in parts], n), strict=True):
        items = _resolve(name, directory, max_tokens)
        t = temperature if temp is None else temp
        out.extend(it.model_copy(update={"temperature": t}) for it in _sample(items, count, rng))
    order = rng.permutation(len(out)) if len(parts) > 1 else range(len(out))
    return [out[i] for i in order]
