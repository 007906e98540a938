"""Read a `vllm bench serve --save-result --save-detailed` result file.

The format is the ``result_json`` vllm/benchmarks/serve.py writes (checked against vLLM 0.32): run
fields ``date``, ``backend``, ``model_id``, ``num_prompts``, ``request_rate`` (a number or "inf"),
``max_concurrency``, ``duration`` (s), any ``--metadata KEY=VALUE`` pairs; with ``--save-detailed``
the per-request lists ``input_lens``, ``output_lens``, ``ttfts`` (s), ``itls`` (s, one list of chunk
gaps per request), ``latencies`` (s), ``start_times``, ``generated_texts``, ``errors`` (empty string =
success); and, when the server exposes them, ``spec_decode_acceptance_rate`` (percent),
``spec_decode_acceptance_length``, ``spec_decode_num_drafts``, ``spec_decode_draft_tokens``,
``spec_decode_accepted_tokens`` and ``spec_decode_per_position_acceptance_rates`` (fractions): vllm
bench serve's own /metrics deltas over the run. TPOT is (latency - TTFT) / (output tokens - 1), the
formula vllm bench serve itself uses. The file records neither the sampling temperature nor the
vLLM version unless given as ``--metadata temperature=0 vllm_version=...``.

Files of the older ``benchmarks/benchmark_serving.py`` (vLLM before ``vllm bench serve``, and its many forks)
hold ``input_lens``, ``output_lens``, ``ttfts``, ``itls``, ``generated_texts`` and ``errors`` but no ``latencies``
and no ``start_times``: each latency is rebuilt as TTFT + the sum of its ITLs (the time to the last token, which
is how that script measured it up to the stream's end), with a note.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import ImportFileError
from .common import ImportedSide, read_json, record, spec_decode_metrics, tpot

TOOL = "vllm bench serve"
DETAILED = ("input_lens", "output_lens", "ttfts", "itls", "latencies", "errors")
LEGACY = ("input_lens", "output_lens", "ttfts", "itls")  # benchmark_serving.py's per-request lists (no latencies)
LEGACY_NOTE = ("written by the older benchmarks/benchmark_serving.py (no 'latencies'): each request's latency is "
               "rebuilt as TTFT + the sum of its ITLs, which leaves out the few ms between the last token and the "
               "stream's end; request start times are not recorded")


def _float(value) -> float | None:
    try:
        v = float(value)
        return v if math.isfinite(v) else None
    except (TypeError, ValueError):
        return None


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0


def _count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


# per-request list -> (what each item must be, its test); vllm bench serve writes exactly these
ITEM_RULES = {
    "input_lens": ("a token count", _count),
    "output_lens": ("a token count", _count),
    "ttfts": ("a time in seconds", _number),
    "latencies": ("a time in seconds", _number),
    "itls": ("a list of times in seconds", lambda x: isinstance(x, list) and all(_number(g) for g in x)),
    "errors": ("an error text ('' when the request succeeded)", lambda x: isinstance(x, str) or x is None),
    "start_times": ("a time in seconds", lambda x: x is None or _number(x)),
    "generated_texts": ("a text", lambda x: isinstance(x, str) or x is None),
}


def _check_types(path: Path, data: dict, legacy: bool = False) -> None:
    """Every field the import reads has the type vllm bench serve writes: a file edited or produced by
    another tool fails here, naming the field and the request, before anything is written. ``legacy``: a file
    of benchmarks/benchmark_serving.py (the fix names what that script takes)."""
    fix = ("give the file benchmarks/benchmark_serving.py --save-result wrote, unedited" if legacy else
           "give the file vllm bench serve --save-result --save-detailed wrote, unedited")
    for key, (what, ok) in ITEM_RULES.items():
        items = data.get(key)
        if items is None and key in ("start_times", "generated_texts"):
            continue
        if not isinstance(items, list):
            raise ImportFileError(f"{path}: '{key}' is not a list", fix)
        bad = next((i for i, x in enumerate(items) if not ok(x)), None)
        if bad is not None:
            raise ImportFileError(f"{path}: '{key}' item {bad + 1} is {json.dumps(items[bad])[:60]}, not {what}", fix)
    for key in ("duration", "max_concurrency", "num_prompts"):
        if data.get(key) is not None and not _number(data[key]):
            raise ImportFileError(f"{path}: '{key}' is {json.dumps(data[key])[:60]}, not a number >= 0", fix)
    rate = data.get("request_rate")
    if rate is not None and rate != "inf" and _float(rate) is None:
        raise ImportFileError(f"{path}: 'request_rate' is {json.dumps(rate)[:60]}, not a rate in req/s or \"inf\"", fix)
    if data.get("spec_decode_draft_tokens"):
        for key in ("spec_decode_draft_tokens", "spec_decode_acceptance_rate"):
            if not _number(data.get(key)):
                raise ImportFileError(f"{path}: '{key}' is {json.dumps(data.get(key))[:60]}, not a number >= 0 "
                                      "(the spec-decode counters must come together)", fix)
    t = data.get("temperature")
    if t is not None and not (_float(t) is not None and 0 <= float(t) <= 2):
        raise ImportFileError(f"{path}: 'temperature' is {json.dumps(t)[:60]}, not a sampling temperature in [0, 2]",
                              "fix the --metadata temperature=... the run was given, or pass --temperature")


# ``--metadata KEY=VALUE`` keys that say the server ran a speculative configuration
SPEC_CONFIG_KEYS = ("speculative_config", "speculative-config", "speculative_model", "num_speculative_tokens")


def speculation(data: dict) -> str | None:
    """What in the file shows the server speculated: vllm bench serve writes its ``spec_decode_*`` counter
    deltas only when the server's /metrics has them and drafts were proposed; a ``--metadata`` speculative
    config says so too. None when nothing does."""
    counters = sorted(k for k, v in data.items() if k.startswith("spec_decode_") and v is not None)
    if counters:
        return f"vLLM's spec-decode counters ({spec_decode_metrics(counters)})"
    key = next((k for k in SPEC_CONFIG_KEYS if data.get(k) not in (None, "", 0, "0", "none", "None")), None)
    return f"a speculative config ({key}={json.dumps(data[key])[:60]})" if key else None


def read(path: str | Path) -> list[ImportedSide]:
    """One :class:`ImportedSide` (vllm bench serve runs one load level per file)."""
    path = Path(path).expanduser()
    data = read_json(path, TOOL)
    if not isinstance(data, dict) or "duration" not in data or "completed" not in data:
        raise ImportFileError(f"{path} is not a `vllm bench serve --save-result` file (no 'duration'/'completed')",
                              "give the JSON file written by vllm bench serve --save-result --save-detailed")
    missing = [k for k in DETAILED if not isinstance(data.get(k), list)]
    legacy = bool(missing) and all(isinstance(data.get(k), list) for k in LEGACY) and "latencies" in missing
    if missing and not legacy:
        raise ImportFileError(f"{path} has no per-request data ({', '.join(missing)} missing)",
                              "run vllm bench serve again with --save-result --save-detailed: the decision needs "
                              "each request's TTFT and latency, not only the summary")
    notes: list[str] = []
    if legacy:  # benchmarks/benchmark_serving.py: latency = TTFT + sum(ITL)
        data = {**data, "latencies": [(t or 0.0) + sum(g for g in (gaps or []) if _number(g))
                                      if _number(t) and isinstance(gaps, list) else t
                                      for t, gaps in zip(data["ttfts"], data["itls"], strict=False)]}
        data.setdefault("errors", [""] * len(data["ttfts"]))
        notes.append(LEGACY_NOTE)
    n = len(data["ttfts"])
    if any(len(data[k]) != n for k in DETAILED):
        raise ImportFileError(f"{path}: the per-request lists have different lengths", "give the file as vllm bench serve wrote it")
    _check_types(path, data, legacy)
    temperature = _float(data.get("temperature"))
    starts = data.get("start_times") or [None] * n
    t0 = min((s for s in starts if s is not None), default=0.0)
    texts = data.get("generated_texts") or [""] * n
    workload = str(data.get("dataset_name") or data.get("label") or "vllm-bench")
    records = []
    for i in range(n):
        ok = not data["errors"][i] and (data["output_lens"][i] or 0) > 0
        ttft = data["ttfts"][i] * 1000.0 if ok and data["ttfts"][i] else None
        e2e = data["latencies"][i] * 1000.0 if data["latencies"][i] else None
        out = data["output_lens"][i]
        records.append(record(
            i, ok=ok, error=data["errors"][i] or (None if ok else "no output tokens (the file records no error text)"),
            prompt_tokens=data["input_lens"][i], output_tokens=out,
            ttft_ms=ttft, e2e_ms=e2e, tpot_ms=tpot(ttft, e2e, out), chunk_gaps_ms=[g * 1000.0 for g in data["itls"][i] or []],
            sent_s=(starts[i] - t0) if starts[i] is not None else 0.0, workload=workload, temperature=temperature,
            text=texts[i] if i < len(texts) else ""))
    if data.get("max_concurrency"):
        level, kind = float(data["max_concurrency"]), "concurrency"
    elif _float(data.get("request_rate")) is not None:
        level, kind = float(data["request_rate"]), "rate"
    else:  # rate inf, no cap: every request at once
        level, kind = float(data.get("num_prompts") or n), "concurrency"
        notes.append(f"request_rate inf without --max-concurrency: counted as concurrency {level:g}")
    acceptance = None
    if data.get("spec_decode_draft_tokens"):
        acceptance = {"rate": data["spec_decode_acceptance_rate"] / 100.0,
                      "mean_length": data.get("spec_decode_acceptance_length"),
                      "per_position": list(data.get("spec_decode_per_position_acceptance_rates") or []),
                      "drafts": data.get("spec_decode_num_drafts") or 0,
                      "draft_tokens": data["spec_decode_draft_tokens"], "accepted": data.get("spec_decode_accepted_tokens") or 0}
    version = data.get("vllm_version") or data.get("version")
    if not version:
        notes.append("the file does not record the vLLM version" + (
            "" if legacy else " (add --metadata vllm_version=X.Y.Z when running it)"))
    recorded = {k: str(data[k]) for k in ("date", "backend", "tokenizer_id", "label") if data.get(k) not in (None, "")}
    if legacy:
        recorded["writer"] = "benchmarks/benchmark_serving.py (before vllm bench serve)"
    return [ImportedSide(tool=TOOL, path=path, level=level, level_kind=kind, records=records, recorded=recorded,
                         duration_s=float(data["duration"]), temperature=temperature, model=str(data.get("model_id") or ""),
                         tool_version=str(version) if version else None, command=data.get("command"),
                         workload=workload, acceptance=acceptance, speculation=speculation(data), notes=notes,
                         dataset=str(data["dataset_name"]) if data.get("dataset_name") else None,
                         requested=int(data["num_prompts"]) if data.get("num_prompts") is not None else None)]
