"""Read an AIPerf profile: the per-request ``profile_export.jsonl`` and, beside it, the aggregate
``profile_export_aiperf.json`` (for the load level, the command and the version).

Format as documented in ai-dynamo/aiperf docs/tutorials/working-with-profile-exports.md (and as
AIPerf 0.13.0 writes it: the load in ``input_config.phases``, the model in ``input_config.models``,
``--extra-inputs temperature:T`` in ``input_config.endpoint.extra``): one JSON
record per request with ``metadata`` (``request_start_ns``, ``benchmark_phase``, ``was_cancelled``),
``metrics`` (each ``{"value", "unit"}``: ``input_sequence_length``, ``output_sequence_length``,
``time_to_first_token`` (ms), ``request_latency`` (ms), ``inter_chunk_latency`` (list, ms)) and
``error`` (null on success); the aggregate file's ``input_config`` holds ``loadgen.concurrency`` or
``loadgen.request_rate`` and ``cli_command``. TPOT = (latency - TTFT) / (output tokens - 1).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ImportFileError
from .common import ImportedSide, read_json, record, spec_decode_metrics, tpot

TOOL = "aiperf"
RECORDS = "profile_export.jsonl"
AGGREGATE = "profile_export_aiperf.json"
_MS = {"ms": 1.0, "ns": 1e-6, "us": 1e-3, "sec": 1000.0, "s": 1000.0}


def _ms(metric: dict | None):
    if not metric or metric.get("value") is None:
        return None
    f = _MS.get(str(metric.get("unit", "ms")), 1.0)
    v = metric["value"]
    return [x * f for x in v] if isinstance(v, list) else v * f


def speculation(aggregate: object, metric_names: set[str]) -> str | None:
    """What shows the server speculated: AIPerf records vLLM's spec-decode metrics (``spec_decode_*``) per
    request and in the aggregate when the server reports them."""
    names = sorted(k for k in metric_names if k.startswith("spec_decode_"))
    if isinstance(aggregate, dict):
        names = names or sorted(k for k, v in aggregate.items() if k.startswith("spec_decode_") and v is not None)
    if not names:
        return None
    return f"spec-decode metrics ({spec_decode_metrics(names)})"


def _refuse_summary(path: Path) -> None:
    """AIPerf's summary (``profile_export_aiperf.json``, one JSON document) given instead of the per-request
    ``profile_export.jsonl``: refused naming the file to give (the summary has no per-request data)."""
    if path.name == RECORDS:
        return
    with open(path, "rb") as f:
        first = f.readline().decode("utf-8", "replace").strip()
    try:
        obj = json.loads(first) if first else None
    except ValueError:
        obj = None
    summary = isinstance(obj, dict) and ("input_config" in obj or "aiperf_version" in obj)
    pretty = obj is None and first.startswith("{")  # a JSON document over several lines, not one record a line
    if path.name != AGGREGATE and not summary and not pretty:
        return  # a per-request export under another name (or not JSON at all: said when its lines are read)
    right = path.parent / RECORDS
    there = f"{right} (beside it)" if right.is_file() else f"the {RECORDS} AIPerf wrote in the same artifact directory"
    what = "is AIPerf's summary" if path.name == AGGREGATE or summary else "looks like AIPerf's summary"
    raise ImportFileError(f"{path} {what} (one JSON document), not its per-request export {RECORDS}: "
                          "the decision needs each request's TTFT and latency",
                          f"give the artifact directory {path.parent} or {there}")


# genai-perf, AIPerf's predecessor: perf_analyzer's per-request export and genai-perf's own summaries
GENAI_PERF_RECORDS = "profile_export.json"
GENAI_PERF_SUMMARIES = ("profile_export_genai_perf.json", "profile_export_genai_perf.csv")
RERUN_WITH_AIPERF = ("re-run the benchmark with AIPerf, genai-perf's successor (`aiperf profile` takes genai-perf's "
                     "main flags: -m, --url, --endpoint-type, --streaming, --concurrency), and give its artifact "
                     f"directory ({RECORDS} with {AGGREGATE} beside it)")


def _head(path: Path, size: int = 65536) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(size).decode("utf-8", "replace")
    except OSError:
        return ""


def _refuse_other_formats(path: Path) -> None:
    """What is not AIPerf's per-request export, said before anything else is read (the load level included):
    genai-perf's exports and any CSV summary."""
    name = path.name.lower()
    if name in GENAI_PERF_SUMMARIES or "genai_perf" in name:
        raise ImportFileError(f"{path} is genai-perf's summary ({path.name}): aggregates only, no per-request data, "
                              "and genai-perf is not AIPerf", RERUN_WITH_AIPERF)
    if path.suffix.lower() == ".csv":
        raise ImportFileError(f"{path} is a CSV summary: it has no per-request data (the decision needs each "
                              "request's TTFT and latency)",
                              f"give the AIPerf artifact directory {path.parent} or the {RECORDS} in it")
    head = _head(path).lstrip()
    if name == GENAI_PERF_RECORDS or (head.startswith("{") and '"experiments"' in head):
        raise ImportFileError(
            f"{path} is a genai-perf export (perf_analyzer's per-request {GENAI_PERF_RECORDS}), not AIPerf's "
            f"{RECORDS}: its requests record response timestamps but no token counts (genai-perf counts them with "
            "the model's tokenizer), and with speculative decoding one streamed chunk carries several tokens, so "
            "the TPOT the decision needs cannot be read from it", RERUN_WITH_AIPERF)


def _records_file(path: Path) -> Path:
    """The per-request export a path names: the file, or the one in an artifact directory (refused, naming what
    the directory holds, when it has none: genai-perf's artifacts, a CSV)."""
    if not path.is_dir():
        if not path.is_file():
            raise ImportFileError(f"{path} does not exist", f"give an AIPerf artifact directory or its {RECORDS}")
        _refuse_other_formats(path)
        return path
    if (path / RECORDS).is_file():
        return path / RECORDS
    for other in (GENAI_PERF_RECORDS, *GENAI_PERF_SUMMARIES):
        if (path / other).is_file():
            _refuse_other_formats(path / other)
    found = sorted(p.name for p in path.iterdir() if p.is_file())[:6]
    raise ImportFileError(f"{path} holds no {RECORDS}" + (f" (it holds {', '.join(found)})" if found else " (it is empty)"),
                          f"give the artifact directory AIPerf wrote (aiperf profile --artifact-dir DIR), or its {RECORDS}")


def read(path: str | Path) -> list[ImportedSide]:
    """One :class:`ImportedSide` from an AIPerf artifact directory or its ``profile_export.jsonl``."""
    jsonl = _records_file(Path(path).expanduser())
    _refuse_summary(jsonl)
    agg = read_json(jsonl.parent / AGGREGATE, TOOL) if (jsonl.parent / AGGREGATE).is_file() else {}
    cfg = (agg.get("input_config") or {}) if isinstance(agg, dict) else {}
    # the load: input_config.loadgen (the documented 0.x layout) or the profiling phase (AIPerf 0.13)
    phase = next((x for x in cfg.get("phases") or [] if x.get("kind", x.get("name")) == "profiling"), {})
    loadgen = cfg.get("loadgen") or phase
    requested = loadgen.get("request_count", loadgen.get("requests"))
    if loadgen.get("concurrency"):
        level, kind = float(loadgen["concurrency"]), "concurrency"
    elif loadgen.get("request_rate"):
        level, kind = float(loadgen["request_rate"]), "rate"
    else:
        raise ImportFileError(f"no load level for {jsonl}: {AGGREGATE} beside it is missing or names no "
                              "loadgen concurrency / request_rate", f"keep {AGGREGATE} next to {RECORDS}")
    records, starts, metric_names = [], [], set()
    for lineno, line in enumerate(jsonl.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise ImportFileError(f"{jsonl} line {lineno} is not JSON", f"give the {RECORDS} AIPerf wrote") from None
        meta, m = obj.get("metadata") or {}, obj.get("metrics") or {}
        if meta.get("benchmark_phase", "profiling") != "profiling":
            continue
        metric_names.update(m if isinstance(m, dict) else ())
        ok = obj.get("error") is None and not meta.get("was_cancelled") and m.get("time_to_first_token") is not None
        ttft, e2e = _ms(m.get("time_to_first_token")), _ms(m.get("request_latency"))
        out = (m.get("output_sequence_length") or m.get("output_token_count") or {}).get("value")
        start = meta.get("request_start_ns")
        starts.append(start)
        err = obj.get("error") or {}
        records.append(record(
            len(records), ok=ok, error=f"{err.get('code')} {err.get('type')}: {err.get('message')}" if err else None,
            prompt_tokens=(m.get("input_sequence_length") or m.get("error_isl") or {}).get("value"), output_tokens=out,
            ttft_ms=ttft, e2e_ms=e2e, tpot_ms=tpot(ttft, e2e, out), chunk_gaps_ms=_ms(m.get("inter_chunk_latency")) or [],
            sent_s=0.0 if start is None else start, workload="aiperf", temperature=None))
    if not records:
        raise ImportFileError(f"{jsonl} holds no profiling record", f"give the {RECORDS} of a finished AIPerf run")
    t0 = min((s for s in starts if s is not None), default=0)
    for r, s in zip(records, starts, strict=True):
        r["sent_s"] = r["scheduled_s"] = (s - t0) / 1e9 if s is not None else 0.0
    duration = (agg.get("benchmark_duration") or {}).get("avg") if isinstance(agg, dict) else None
    if not duration:
        duration = max(r["sent_s"] + (r["e2e_ms"] or 0) / 1000.0 for r in records)
    version = (agg.get("aiperf_version") if isinstance(agg, dict) else None) or None
    ep = cfg.get("endpoint") or {}
    model = (ep.get("model_names") or [x.get("name") for x in (cfg.get("models") or {}).get("items") or []] or [""])[0]
    temperature = (ep.get("extra") or {}).get("temperature")  # --extra-inputs temperature:T
    run_info = (agg.get("run_info") if isinstance(agg, dict) else None) or {}  # AIPerf 0.13: cli_command is here
    recorded = {k: str(agg[k]) for k in ("start_time", "end_time", "benchmark_id")
                if isinstance(agg, dict) and agg.get(k) not in (None, "")}
    for r in records:
        if temperature is not None:
            r["temperature"] = float(temperature)
    return [ImportedSide(tool=TOOL, path=jsonl, level=level, level_kind=kind, records=records, duration_s=float(duration),
                         model=str(model), tool_version=version,
                         temperature=float(temperature) if temperature is not None else None,
                         command=cfg.get("cli_command") or run_info.get("cli_command"), workload="aiperf",
                         speculation=speculation(agg, metric_names), recorded=recorded,
                         requested=requested if isinstance(requested, int) and not isinstance(requested, bool) else None,
                         extra_files=[jsonl.parent / AGGREGATE] if (jsonl.parent / AGGREGATE).is_file() else [])]
