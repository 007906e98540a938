"""Workloads: the shipped prompt sets, user JSONL / ShareGPT / Spec-Bench files, mixes of classes,
and the shaping each spec can ask for (chat template, input and output lengths).

A workload spec is one of:

- a class name shipped in ``playbook/data/workloads/<name>.jsonl`` (``structured``, ``code``,
  ``summarization``, ``chat``, ``creative``, ``json_schema`` (vLLM guided decoding to each line's JSON
  schema), ``tool_calls`` (each request must call one of its tools)), lines ``{"id", "prompt",
  "max_tokens"}`` (chat also ``"messages"``), or the generated ``long_context`` class (documents of
  ``in`` tokens, default 768, with a question at the end);
- a path to a user file: JSONL of the same shape (``prompt`` or ``messages``, optional ``json_schema``
  and ``tools``), ShareGPT (a JSON list or JSONL of ``{"conversations": [{"from": "human", "value":
  ...}, ...]}``), or a Spec-Bench / MT-Bench ``question.jsonl`` (``{"question_id", "category",
  "turns"}``: the first turn is sent, as vLLM's own SpecBench dataset does; each category is a class);
- options in brackets after a class or file: ``sharegpt.json[in=256,out=16-64]``,
  ``question.jsonl[category=translation]``, ``long_context[in=4096,out=64]``: ``in`` and ``out`` take
  ``128`` (fixed), ``64-256`` (uniform) or ``file:PATH`` (lengths sampled from a file); ``out`` wins
  over the step's ``max_tokens``; ``template=none`` keeps chat messages for the server to template;
- a mix ``structured:0.6@0.1,creative:0.4@1.0``: class (or file) : share @ temperature.

Chat messages are rendered with the model's own chat template when ``build_requests`` gets the model's
tokenizer directory (the load test passes the target's): the prompt then goes to /v1/completions as the
chat endpoint would have built it. Without one they go to /v1/chat/completions (the server templates).
"""

from __future__ import annotations

import functools
import json
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from . import prompt_shaping as shaping
from .errors import WorkloadError
from .schemas.workloads import LengthSpec, PromptItem

GENERATED = ("long_context",)  # classes built in code, not read from a shipped file
LONG_CONTEXT_TOKENS = 768  # long_context's default prompt length: fits the embedded engine (max_model_len 1024)
LONG_CONTEXT_CUE = "\n\nQuestion: "
_OPTIONS = ("in", "out", "template", "category")


def workloads_dir() -> Path:
    """Where the shipped prompt sets live."""
    return Path(str(resources.files("playbook.data").joinpath("workloads")))


def known_workloads(directory: Path | None = None) -> list[str]:
    d = Path(directory) if directory else workloads_dir()
    return sorted([p.stem for p in d.glob("*.jsonl")] + list(GENERATED)) if d.is_dir() else []


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
    system = next((t["value"] for t in conv if t.get("from") == "system" and isinstance(t.get("value"), str)), None)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": first["value"]}]
    return {"id": str(obj.get("id", f"{source}-{lineno}")), "messages": messages}


def _question_item(obj: dict, lineno: int, source: str, path: Path) -> dict | None:
    """A Spec-Bench / MT-Bench question (``{"question_id", "category", "turns": [...]}``, the format of
    hemingkx/Spec-Bench data/spec_bench/question.jsonl and lm-sys/FastChat llm_judge mt_bench/question.jsonl):
    its first turn as a user message, its category as the class. Later turns need the model's own answer
    to the first, so a load test sends the first only (as vllm/benchmarks/datasets SpecBench does)."""
    turns = obj.get("turns")
    if not isinstance(turns, list):
        return None
    if not turns or not isinstance(turns[0], str) or not turns[0].strip():
        raise WorkloadError(f"{path} record {lineno}: 'turns' holds no first question", "give turns as [\"question\", ...]")
    category = str(obj.get("category") or "uncategorized")
    return {"id": f"{source}-{obj.get('question_id', lineno)}", "messages": [{"role": "user", "content": turns[0]}],
            "workload": f"{source}/{category}", "category": category}


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


def load_file(path: str | Path, workload: str | None = None, max_tokens: int | None = None,
              category: str | None = None) -> list[PromptItem]:
    """Read a prompts file (JSONL, ShareGPT or Spec-Bench/MT-Bench questions); errors name the file and
    line. ``category`` keeps only the questions of that category.

    A file is parsed once while it stays the same (path, size and modification time): every round of
    every load level, and the prompt-length check before them, read the same prompts."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WorkloadError(f"prompts file {path} does not exist", "give an existing JSONL/ShareGPT file or a workload name")
    st = path.stat()
    return list(_load_unchanged(path.resolve(), st.st_size, st.st_mtime_ns, workload, max_tokens, category))


@functools.lru_cache(maxsize=16)
def _load_unchanged(path: Path, size: int, mtime_ns: int, workload: str | None, max_tokens: int | None,
                    category: str | None) -> tuple[PromptItem, ...]:
    """:func:`load_file`'s parse, kept per file version (``size`` and ``mtime_ns`` are only the key)."""
    name = workload or path.stem
    items = []
    for lineno, obj in _read_records(path):
        if "prompt" not in obj and "messages" not in obj:
            obj = _sharegpt_item(obj, lineno, name, path) or _question_item(obj, lineno, name, path) or obj
        if "prompt" not in obj and "messages" not in obj:
            raise WorkloadError(
                f"{path} line {lineno} has neither 'prompt' nor 'messages' (nor ShareGPT 'conversations', "
                "nor Spec-Bench/MT-Bench 'turns')",
                "add a \"prompt\" field to that line",
            )
        if category is not None and obj.get("category") != category:
            continue
        fields = {"id": str(obj.get("id", f"{name}-{lineno}")), "workload": obj.get("workload", name),
                  "prompt": obj.get("prompt"), "messages": obj.get("messages"),
                  "json_schema": obj.get("json_schema"), "tools": obj.get("tools")}
        if max_tokens is not None or obj.get("max_tokens") is not None:
            fields["max_tokens"] = max_tokens if max_tokens is not None else obj["max_tokens"]
        try:
            items.append(PromptItem(**fields))
        except ValidationError as exc:
            msg = "; ".join(e["msg"] for e in exc.errors())
            raise WorkloadError(f"{path} line {lineno}: {msg}", "fix that line") from None
    if not items and category is not None:
        raise WorkloadError(f"{path} holds no question of category '{category}'",
                            "use a category the file has (its 'category' fields)")
    if not items:
        raise WorkloadError(f"prompts file {path} holds no prompts", "put one JSON object per line")
    return tuple(items)


def _options(text: str | None, spec: str) -> dict[str, str]:
    """``in=256,out=16-64`` -> ``{"in": "256", "out": "16-64"}`` (separators ',' or ';')."""
    out: dict[str, str] = {}
    for chunk in (text or "").replace(";", ",").split(","):
        if not chunk.strip():
            continue
        key, sep, value = chunk.partition("=")
        key = key.strip()
        if not sep or key not in _OPTIONS or not value.strip():
            raise WorkloadError(f"option '{chunk.strip()}' in workload '{spec}' is not one of "
                                f"{', '.join(k + '=...' for k in _OPTIONS)}",
                                "write options like 'sharegpt.json[in=256,out=16-64]'")
        out[key] = value.strip()
    return out


def split_options(name: str) -> tuple[str, dict[str, str]]:
    """``"chat[in=128]"`` -> ``("chat", {"in": "128"})``; a name without brackets has no options."""
    name = name.strip()
    if not name.endswith("]") or "[" not in name:
        if "[" in name or "]" in name:
            raise WorkloadError(f"workload '{name}' has unbalanced brackets", "write options like 'chat[in=128,out=64]'")
        return name, {}
    i = name.index("[")
    return name[:i].strip(), _options(name[i + 1:-1], name)


def _resolve(name: str, directory: Path | None, max_tokens: int | None) -> list[PromptItem]:
    base, opts = split_options(name)
    known = known_workloads(directory)
    if base in GENERATED:
        return _long_context_items(directory)
    if base in known:
        d = Path(directory) if directory else workloads_dir()
        return load_file(d / f"{base}.jsonl", workload=base, max_tokens=max_tokens)
    if Path(base).expanduser().is_file():
        return load_file(base, max_tokens=max_tokens, category=opts.get("category"))
    raise WorkloadError(
        f"unknown workload '{base}': neither a shipped class nor an existing file",
        f"use one of {', '.join(known) or '(no shipped prompt sets found)'}, a path to a JSONL/ShareGPT/"
        "Spec-Bench file, or a mix like 'structured:0.6@0.1,creative:0.4@1.0'",
    )


def _long_context_items(directory: Path | None) -> list[PromptItem]:
    """The long_context class: one document per shipped summarization text (the others follow it as
    more context until the prompt has its ``in`` tokens), and a question about the first text at the end."""
    d = Path(directory) if directory else workloads_dir()
    texts = [it.prompt.split("Text:", 1)[-1].split("\nSummary:", 1)[0].strip()
             for it in load_file(d / "summarization.jsonl")] \
        if (d / "summarization.jsonl").is_file() else ["The report describes the plan, its cost and its schedule."]
    out = []
    for i, text in enumerate(texts):
        rest = texts[i + 1:] + texts[:i]
        out.append(PromptItem(id=f"long_context-{i + 1:03d}", workload="long_context", max_tokens=64,
                              prompt=text + "\n\n" + "\n\n".join(rest) + LONG_CONTEXT_CUE + "summarize the first "
                              "paragraph of the document above in one sentence.\nAnswer:"))
    return out


def _top_level(spec: str) -> list[str]:
    """``spec`` split at the commas outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in spec:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [*parts, cur]


def parse_mix(spec: str) -> list[tuple[str, float, float | None]]:
    """``"a:0.6@0.1,b:0.4@1.0"`` -> ``[("a", 0.6, 0.1), ("b", 0.4, 1.0)]`` (shares normalised);
    a part's options stay in its name (``"a[in=64]:0.5"`` -> ``("a[in=64]", 0.5, None)``)."""
    parts = _mix_as_written(spec)
    total = sum(s for _, s, _ in parts)
    return [(n, s / total, t) for n, s, t in parts]


def _mix_as_written(spec: str) -> list[tuple[str, float, float | None]]:
    """:func:`parse_mix`'s parts with the shares as written (their sum is positive)."""
    parts = []
    for chunk in _top_level(spec):
        chunk = chunk.strip()
        if not chunk:
            continue
        opts = ""
        if "]" in chunk:  # name[options]:share@temperature
            cut = chunk.rindex("]") + 1
            chunk, opts = chunk[cut:], chunk[:cut]
            name_part = opts
        temp = None
        if "@" in chunk:
            chunk, t = chunk.rsplit("@", 1)
            temp = _number(t, spec, "temperature")
            if not 0 <= temp <= 2:
                raise WorkloadError(f"temperature {temp} in '{spec}' is outside [0, 2]", "use a temperature between 0 and 2")
        if opts:
            share = chunk.split(":", 1)[1] if chunk.startswith(":") else ("1" if not chunk.strip() else None)
            if share is None:
                raise WorkloadError(f"'{chunk}' after the options of '{name_part}' in '{spec}' is not ':share'",
                                    "write it like 'chat[in=128]:0.5@0.7'")
            parts.append((name_part.strip(), _number(share, spec, "share"), temp))
            continue
        name, share = (chunk.rsplit(":", 1) + ["1"])[:2] if ":" in chunk else (chunk, "1")
        parts.append((name.strip(), _number(share, spec, "share"), temp))
    total = sum(s for _, s, _ in parts)
    if not parts or total <= 0:
        raise WorkloadError(f"workload mix '{spec}' has no positive shares", "write it like 'structured:0.6@0.1,creative:0.4@1.0'")
    return parts


def mix_parts(spec: str) -> list[tuple[str, float, float | None]]:
    """A workload spec's parts as :func:`parse_mix` gives them; a single class or file is one part of share 1."""
    return parse_mix(spec) if _is_mix(spec) else [(spec.strip(), 1.0, None)]


def _number(text: str, spec: str, what: str) -> float:
    try:
        value = float(text)
        if not np.isfinite(value) or value < 0:
            raise ValueError(text)
        return value
    except ValueError:
        raise WorkloadError(
            f"'{text}' in workload mix '{spec}' is not " + ("a finite, non-negative share" if what == "share"
                                                          else f"a number ({what})"),
            "write it like 'structured:0.6@0.1,creative:0.4@1.0'",
        ) from None


def _is_mix(spec: str) -> bool:
    if len(_top_level(spec)) > 1:
        return True
    rest = spec.strip()
    if rest.endswith("]") and "[" in rest:
        return False
    if "]" in rest:  # options, then ':share' or '@temperature'
        return True
    return "@" in rest or (":" in rest and not Path(rest).expanduser().exists())


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


def _shape(items: list[PromptItem], opts: dict[str, str], base: str, tokenizer: str | None,
           rng: np.random.Generator) -> list[PromptItem]:
    """Apply a part's options: output lengths, the chat template, input lengths."""
    n_in = opts.get("in") or (str(LONG_CONTEXT_TOKENS) if base == "long_context" else None)
    tok = None  # loaded only when something needs it (chat messages, input lengths)
    if tokenizer and opts.get("template", "auto") != "none" and (n_in or any(it.messages for it in items)):
        tok = shaping.load_tokenizer(str(tokenizer))
    ins: LengthSpec | None = shaping.parse_length(n_in, "in") if n_in else None
    outs = shaping.parse_length(opts["out"], "out") if opts.get("out") else None
    in_lens = shaping.sample_lengths(ins, len(items), rng) if ins else [None] * len(items)
    out_lens = shaping.sample_lengths(outs, len(items), rng) if outs else [None] * len(items)
    filler = "\n\n".join(it.prompt or (it.messages or [{}])[-1].get("content", "") for it in items[:8])
    return [_shape_one(it, tok, n, m, filler) for it, n, m in zip(items, in_lens, out_lens, strict=True)]


def _shape_one(it: PromptItem, tok, n_in: int | None, n_out: int | None, filler: str) -> PromptItem:
    upd: dict = {}
    if n_out is not None:
        upd["max_tokens"] = n_out
    chat = tok is not None and it.messages and shaping.has_chat_template(tok)
    if n_in is not None:
        upd["input_tokens"] = n_in
        if it.messages:  # fit the last user message; the template adds the rest
            msgs = [dict(m) for m in it.messages]
            overhead = shaping.count_tokens(tok, shaping.render_chat(tok, msgs[:-1] + [{**msgs[-1], "content": ""}],
                                                                     it.tools), special=False) if chat else 4
            text, target = str(msgs[-1].get("content", "")), max(1, n_in - overhead)
            best: tuple[int, str] | None = None
            for _ in range(4):  # the template's tokens next to the content can merge: refit to the rendered length
                content = shaping.fit_text(text, target, tok, filler)
                if not chat:
                    best = (0, content)
                    break
                got = shaping.count_tokens(tok, shaping.render_chat(tok, msgs[:-1] + [{**msgs[-1], "content": content}],
                                                                    it.tools), special=False)
                if best is None or abs(got - n_in) < best[0]:
                    best = (abs(got - n_in), content)
                if got == n_in or target + n_in - got < 1:
                    break
                target += n_in - got
            msgs[-1]["content"] = best[1]  # exact, or within a token or two where a seam merges (as vllm bench's
            upd["messages"] = msgs  # random dataset also reports after decoding and re-encoding)
        else:
            special = shaping.count_tokens(tok, "") if tok is not None else 0
            doc, cue, question = (it.prompt or "").rpartition(LONG_CONTEXT_CUE)
            if it.workload == "long_context" and cue:  # keep the document's start and the question at the end
                q = cue + question
                q_len = shaping.count_tokens(tok, q, special=False) if tok is not None else len(q) // shaping.CHARS_PER_TOKEN
                upd["prompt"] = shaping.fit_text(doc, max(1, n_in - special - q_len), tok, filler, keep="start") + q
            else:
                upd["prompt"] = shaping.fit_text(it.prompt or "", max(1, n_in - special), tok, filler)
    if chat:
        upd["prompt"] = shaping.render_chat(tok, upd.get("messages") or it.messages, it.tools)
        upd["messages"], upd["templated"] = None, True
    return it.model_copy(update=upd) if upd else it


def build_requests(
    spec: str,
    n: int,
    temperature: float = 0.0,
    max_tokens: int | None = None,
    seed: int = 0,
    directory: Path | None = None,
    tokenizer: str | Path | None = None,
) -> list[PromptItem]:
    """n prompts for a workload spec, seeded; each carries the temperature of its class.

    ``tokenizer``: the model's tokenizer directory (see ``prompt_shaping.tokenizer_dir``): chat messages
    are rendered with its chat template, and ``in=`` lengths are exact in its tokens."""
    if not spec or not spec.strip():
        raise WorkloadError("no workload given", f"use one of {', '.join(known_workloads(directory))} or a file path")
    rng = np.random.default_rng(seed)
    shape_rng = np.random.default_rng([seed, 1])  # lengths: their own stream, the prompt sample stays as it was
    parts = mix_parts(spec)
    out: list[PromptItem] = []
    for (name, _share, temp), count in zip(parts, _counts([p[1] for p in parts], n), strict=True):
        base, opts = split_options(name)
        items = _resolve(name, directory, max_tokens)
        t = temperature if temp is None else temp
        picked = [it.model_copy(update={"temperature": t}) for it in _sample(items, count, rng)]
        out.extend(_shape(picked, opts, base, str(tokenizer) if tokenizer else None, shape_rng))
    order = rng.permutation(len(out)) if len(parts) > 1 else range(len(out))
    return [out[i] for i in order]



def check_specs(p) -> None:
    """Every workload a step's parameters name (``workloads``, ``workload``, ``mixed_workload``) builds: an
    unknown class or a bad prompts file fails here, before any server starts or any file is written."""
    specs = [*(getattr(p, "workloads", None) or []), getattr(p, "workload", ""), getattr(p, "mixed_workload", "")]
    for spec in filter(None, specs):
        build_requests(spec, 1)
        check_lengths(spec, p)
        _note_rescaled_shares(spec)


def _note_rescaled_shares(spec: str) -> None:
    """A mix whose shares do not add up to 1 is sent in proportion to them: say so, with the shares used
    (``a:0.6,b:0.6`` is more often a typo than a ratio)."""
    if not _is_mix(spec):
        return
    written = _mix_as_written(spec)
    total = sum(s for _, s, _ in written)
    if len(written) > 1 and abs(total - 1) > 0.005:
        used = ", ".join(f"{n} {s / total:.0%}" for n, s, _ in written)
        warnings.warn(f"the shares of workload mix '{spec}' add up to {total:g}, not 1: sending in proportion to "
                      f"them ({used}); write shares that add up to 1 if that is not what you meant", UserWarning,
                      stacklevel=3)


def _output_tokens(name: str, max_tokens: int) -> int:
    """The most output tokens a part's requests ask for: its ``out`` option's longest, else its items' own for a
    generated class (long_context asks for its own), else the step's ``max_tokens`` (which replaces a file's)."""
    base, opts = split_options(name)
    if opts.get("out"):
        return shaping.parse_length(opts["out"], "out").high
    if base in GENERATED:
        return max((it.max_tokens or 0 for it in _resolve(name, None, None)), default=0) or max_tokens
    return max_tokens


def check_lengths(spec: str, p) -> None:
    """Every request of a workload must fit max_model_len with its output: vLLM answers a longer one with HTTP 400,
    which would count as an error, not a measurement. A part with an ``in`` length (long_context has one by default)
    is checked by that length, the user's; a prompts file or shipped set by each prompt, counted in the target's tokens
    when the parameters name its tokenizer, else bounded from below by bytes / 16 (no BPE token is longer). External
    servers are checked against a max_model_len the user gave (params.servers_context)."""
    from .params import servers_context

    limit, max_tokens = servers_context(p), getattr(p, "max_tokens", None) or 0
    if not limit:  # external servers whose context was not given: theirs to refuse
        return
    tok_dir = None
    for name, _share, _temp in mix_parts(spec):
        base, opts = split_options(name)
        out = _output_tokens(name, max_tokens)
        n_in = opts.get("in") or (str(LONG_CONTEXT_TOKENS) if base in GENERATED else None)
        if n_in:
            prompt = shaping.parse_length(n_in, "in").high
            if prompt + out > limit:
                given = f"in={n_in}" if opts.get("in") else f"its default {LONG_CONTEXT_TOKENS}-token prompts"
                raise WorkloadError(
                    f"workload {name} asks for prompts of up to {prompt} tokens ({given}) and {out} output tokens: "
                    f"{prompt + out} exceeds max_model_len {limit}, and vLLM would answer those requests with HTTP 400",
                    f"give in= at most {max(1, limit - out)} (e.g. {base}[in={max(1, limit - out)}]), fewer output "
                    "tokens, or raise max_model_len (within the model's maximum)")
            continue
        room = limit - out
        tok_dir = tok_dir or shaping.tokenizer_for(p)
        too_long = []
        for it in _resolve(name, None, None):
            text = it.prompt if it.prompt is not None else "\n".join(str(m.get("content", "")) for m in it.messages or [])
            size = len(text.encode())
            if size <= room:  # a token is at least one byte: it fits
                continue
            tok = shaping.load_tokenizer(str(tok_dir)) if tok_dir else None  # only for a prompt that may not fit
            tokens = len(tok(text).input_ids) if tok is not None else size // 16
            if tokens > room:
                too_long.append((it.id, tokens))
        if too_long:
            counted = "tokens" if tok_dir else "tokens at least"
            shown = ", ".join(f"{i} ({n} {counted})" for i, n in too_long[:5]) + (" ..." if len(too_long) > 5 else "")
            raise WorkloadError(
                f"{len(too_long)} prompt(s) of {base} leave no room for {out} output tokens within max_model_len "
                f"{limit}: {shown}; vLLM would answer them with HTTP 400",
                "shorten or drop those prompts, lower max_tokens, or raise max_model_len (within the model's maximum)")


def tool_call_schema(tools: list[dict]) -> dict:
    """The JSON schema vLLM guides a ``tool_choice: "required"`` call to (vllm/tool_parsers/utils.py
    ``_get_json_schema_from_tools``): a non-empty array of ``{"name": <one tool>, "parameters": {...}}``."""
    def one(tool: dict) -> dict:
        fn = tool.get("function", tool)
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        return {"properties": {"name": {"type": "string", "enum": [fn["name"]]}, "parameters": params},
                "required": ["name", "parameters"]}

    return {"type": "array", "minItems": 1, "items": {"type": "object", "anyOf": [one(t) for t in tools]}}


def request_extras(item: PromptItem) -> dict:
    """The body fields a prompt's class needs beyond the text: guided decoding to its JSON schema
    (/v1/completions: ``structured_outputs.json``; chat: ``response_format`` json_schema, both read by
    vLLM's protocol.py), its tools (chat: ``tools`` + ``tool_choice: required``; a templated prompt:
    guided to the schema of a call), and no special tokens added to a prompt its chat template rendered."""
    extra: dict = {}
    if item.is_chat:
        if item.json_schema is not None:
            extra["response_format"] = {"type": "json_schema",
                                        "json_schema": {"name": "output", "schema": item.json_schema}}
        if item.tools:
            extra["tools"], extra["tool_choice"] = item.tools, "required"
        return extra
    if item.templated:
        extra["add_special_tokens"] = False
    schema = item.json_schema if item.json_schema is not None else (tool_call_schema(item.tools) if item.tools else None)
    if schema is not None:
        # whitespace between JSON tokens is a server setting in vLLM 0.32 (embedded.STRUCTURED_OUTPUTS_ARGS)
        extra["structured_outputs"] = {"json": schema}
    return extra
