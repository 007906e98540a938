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
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import ImportFileError
from .common import ImportedSide, read_json, record, tpot

TOOL = "vllm bench serve"
DETAILED = ("input_lens", "output_lens", "ttfts", "itls", "latencies", "errors")


def _float(value) -> float | None:
    try:
        v = float(value)
        return v if math.isfinite(v) else None
    except (TypeError, ValueError):
        return None


def read(path: str | Path) -> list[ImportedSide]:
    """One :class:`ImportedSide` (vllm bench serve runs one load level per file)."""
    path = Path(path).expanduser()
    data = read_json(path, TOOL)
    if not isinstance(data, dict) or "duration" not in data or "completed" not in data:
        raise ImportFileError(f"{path} is not a `vllm bench serve --save-result` file (no 'duration'/'completed')",
                              "give the JSON file written by vllm bench serve --save-result --save-detailed")
    missing = [k for k in DETAILED if not isinstance(data.get(k), list)]
    if missing:
        raise ImportFileError(f"{path} has no per-request data ({', '.join(missing)} missing)",
                              "run vllm bench serve again with --save-result --save-detailed: the decision needs "
                              "each request's TTFT and latency, not only the summary")
    n = len(data["ttfts"])
    if any(len(data[k]) != n for k in DETAILED):
        raise ImportFileError(f"{path}: the per-request lists have different lengths", "give the file as vllm bench serve wrote it")
    notes: list[str] = []
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
            i, ok=ok, error=data["errors"][i] or None, prompt_tokens=data["input_lens"][i], output_tokens=out,
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
        notes.append("the file does not record the vLLM version (add --metadata vllm_version=X.Y.Z when running it)")
    return [ImportedSide(tool=TOOL, path=path, level=level, level_kind=kind, records=records,
                         duration_s=float(data["duration"]), temperature=temperature, model=str(data.get("model_id") or ""),
                         tool_version=str(version) if version else None, command=data.get("command"),
                         workload=workload, acceptance=acceptance, notes=notes)]
