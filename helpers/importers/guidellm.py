"""Read a GuideLLM report (``benchmarks.json``, GenerativeBenchmarksReport, metadata version 2).

Format as serialized by vllm-project/guidellm (src/guidellm/benchmark/schemas/report.py and
benchmark.py, src/guidellm/schemas/request_stats.py, checked at commit ee7a774, and against a file
GuideLLM 0.8.1 wrote): ``metadata``
(``guidellm_version``), ``benchmarks`` (one per strategy: ``config.strategy`` with ``type_``
synchronous / concurrent (``streams``) / constant / poisson (``rate``) / throughput, ``duration`` (s),
``requests.successful / errored / incomplete``: each request's ``prompt_tokens``, ``output_tokens``,
``time_to_first_token_ms``, ``inter_token_latency_ms`` (last minus first token over output tokens - 1:
our TPOT), ``request_latency`` (s), ``request_start_time``). GuideLLM's ``time_per_output_token_ms``
includes the first token and is not used. Chunk gaps are not serialized, so burst delivery cannot be
checked on imported GuideLLM runs. Each benchmark becomes one level.

Also read: the GuideLLM 0.2/0.3 layout (vllm-project/guidellm src/guidellm/benchmark/benchmark.py: the strategy in
``benchmarks[i].args.strategy`` (BenchmarkArgs), the model in ``worker.backend_model``, each request's
``start_time`` and an errored one's ``error``), the same report saved as YAML (``--output-path benchmarks.yaml``),
and an output folder holding ``benchmarks.json`` (or ``.yaml``). A CSV or HTML report has no per-request data
and is refused saying so.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ImportFileError, ProfileError
from .common import ImportedSide, read_json, record

TOOL = "guidellm"
REPORT_NAMES = ("benchmarks.json", "benchmarks.yaml", "benchmarks.yml")  # what guidellm --output-path writes
SUMMARIES = (".csv", ".html", ".htm")  # GuideLLM's other report formats: aggregates only


def _report_file(path: Path) -> Path:
    """The report a path names: the file, or the benchmarks.json/.yaml inside a GuideLLM output folder."""
    if not path.is_dir():
        return path
    for name in REPORT_NAMES:
        if (path / name).is_file():
            return path / name
    found = sorted(p.name for p in path.iterdir() if p.suffix.lower() in (".json", ".yaml", ".yml"))[:5]
    raise ImportFileError(f"{path} is a folder without GuideLLM's benchmarks.json or benchmarks.yaml"
                          + (f" (it holds {', '.join(found)})" if found else ""),
                          "give the folder GuideLLM wrote its report into, or the report file itself "
                          "(guidellm benchmark --output-path DIR/benchmarks.json)")


def _load(path: Path) -> object:
    """The report as data: JSON, or YAML for a .yaml/.yml file (anchors and aliases refused, as in profiles)."""
    suffix = path.suffix.lower()
    if suffix in SUMMARIES:
        raise ImportFileError(f"{path} is GuideLLM's {suffix[1:].upper()} summary: it has no per-request data, and the "
                              "decision needs each request's TTFT and latency",
                              "give the benchmarks.json (or .yaml) of the same run (guidellm benchmark --output-path "
                              "benchmarks.json), or the folder holding it")
    if suffix not in (".yaml", ".yml"):
        return read_json(path, TOOL)
    if not path.is_file():
        return read_json(path, TOOL)  # says what is wrong with the path
    import yaml

    from ..safe_yaml import load as yaml_load

    try:
        return yaml_load(path.read_text(encoding="utf-8"), str(path))
    except ProfileError as exc:  # anchors, aliases or a key twice
        raise ImportFileError(exc.problem, "give the benchmarks.json GuideLLM wrote (--output-path benchmarks.json)") \
            from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ImportFileError(f"{path} is not a YAML file ({str(exc).splitlines()[0][:120]})",
                              "give the benchmarks.yaml or benchmarks.json GuideLLM wrote") from None


def _strategy(benchmark: dict) -> dict:
    """A benchmark's scheduling strategy: ``config.strategy`` (0.8), ``args.strategy`` (0.2/0.3, BenchmarkArgs)."""
    for holder in ("config", "args"):
        part = benchmark.get(holder)
        if isinstance(part, dict) and isinstance(part.get("strategy"), dict):
            return part["strategy"]
    return {}


def _level(strategy: dict) -> tuple[float, str] | None:
    kind = strategy.get("type_")
    if kind == "synchronous":
        return 1.0, "concurrency"
    if kind == "concurrent" and strategy.get("streams"):
        return float(strategy["streams"]), "concurrency"
    if kind in ("constant", "poisson") and strategy.get("rate"):
        return float(strategy["rate"]), "rate"
    return None


def _start(r: dict) -> float | None:
    """When a request started (s): ``request_start_time`` (0.8), ``start_time`` (0.2/0.3)."""
    v = r.get("request_start_time", r.get("start_time"))
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def speculation(requests: list[dict]) -> str | None:
    """What shows the server speculated: GuideLLM keeps vLLM's per-request spec-decode metrics in each
    request's ``response_metrics.speculative_decoding`` (drafts, accepted tokens) when the server sends them."""
    for r in requests:
        sd = (r.get("response_metrics") or {}).get("speculative_decoding") if isinstance(r, dict) else None
        if isinstance(sd, dict) and sd:
            return "per-request speculative-decoding metrics (response_metrics.speculative_decoding)"
    return None


def _profile(data: dict) -> str | None:
    """How GuideLLM chose its load levels: ``config.spec.profile.kind`` (0.8), a benchmark's
    ``args.profile.type_`` (earlier versions), or "sweep" when a throughput benchmark sits beside fixed rates
    (what a sweep runs)."""
    spec = (data.get("config") or {}).get("spec") or {}
    kind = (spec.get("profile") or {}).get("kind") if isinstance(spec.get("profile"), dict) else None
    benches = [b for b in data.get("benchmarks") or [] if isinstance(b, dict)]
    for b in benches:
        prof = (b.get("args") or {}).get("profile") if isinstance(b.get("args"), dict) else None
        kind = kind or (prof.get("type_") if isinstance(prof, dict) else None)
    types = {_strategy(b).get("type_") for b in benches}
    if not kind and "throughput" in types and types & {"constant", "poisson"}:
        kind = "sweep"
    return str(kind) if kind else None


def _requested(benchmark: dict) -> int | None:
    """The request count the benchmark was limited to (``--max-requests``), None when not (time-bound)."""
    args = benchmark.get("args") if isinstance(benchmark.get("args"), dict) else {}
    if "max_number" in args:  # 0.2/0.3 BenchmarkArgs
        count = args.get("max_number") if args.get("max_duration") is None else None
        return count if isinstance(count, int) and not isinstance(count, bool) else None
    cons = (benchmark.get("config") or {}).get("constraints") or {}
    mr = cons.get("max_requests") if isinstance(cons, dict) else None
    count = ((mr or {}).get("args") or {}).get("count") if isinstance(mr, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) and "max_seconds" not in cons else None


def read(path: str | Path) -> list[ImportedSide]:
    """One :class:`ImportedSide` per benchmark (strategy) in the report; throughput sweeps are skipped."""
    path = _report_file(Path(path).expanduser())
    data = _load(path)
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ImportFileError(f"{path} is not a GuideLLM report (no 'benchmarks' list)",
                              "give the benchmarks.json GuideLLM wrote (guidellm benchmark --output-path ...)")
    meta = data.get("metadata") or {}
    scenario = data.get("config") or {}
    backend = (scenario.get("spec") or {}).get("backend") or {}  # 0.8: config.spec.backend.model
    workers = [b.get("worker") for b in data["benchmarks"] if isinstance(b, dict) and isinstance(b.get("worker"), dict)]
    model = str(scenario.get("model") or backend.get("model")  # 0.2/0.3: benchmarks[i].worker.backend_model
                or next((w.get("backend_model") for w in workers if w.get("backend_model")), None) or "")
    recorded = {}  # GuideLLM 0.8's metadata: the client's, not the server's
    if meta.get("platform"):
        recorded["client platform (the machine that ran guidellm)"] = str(meta["platform"])
    if meta.get("python_version"):
        recorded["client python"] = str(meta["python_version"])
    profile = _profile(data)
    sides = []
    for i, b in enumerate(data["benchmarks"]):
        if not isinstance(b, dict):
            raise ImportFileError(f"{path}: benchmark {i + 1} is {json.dumps(b)[:60]}, not an object",
                                  "give the benchmarks.json GuideLLM wrote, unedited")
        lvl = _level(_strategy(b))
        if lvl is None:
            continue
        reqs = b.get("requests") or {}
        records = []
        rows = [(r, True) for r in reqs.get("successful") or []] + \
               [(r, False) for r in (reqs.get("errored") or []) + (reqs.get("incomplete") or [])]
        starts = [_start(r) for r, _ in rows if _start(r) is not None]
        t0 = min(starts, default=0.0)
        for i, (r, ok) in enumerate(rows):
            lat = r.get("request_latency")
            e2e = lat * 1000.0 if lat is not None else None
            ok = ok and r.get("time_to_first_token_ms") is not None
            err = (r.get("info") or {}).get("error") if isinstance(r.get("info"), dict) else None
            records.append(record(
                i, ok=ok, error=err or r.get("error") or ("incomplete or errored" if not ok else None),
                prompt_tokens=r.get("prompt_tokens"), output_tokens=r.get("output_tokens"),
                ttft_ms=r.get("time_to_first_token_ms"), e2e_ms=e2e, tpot_ms=r.get("inter_token_latency_ms"),
                chunk_gaps_ms=[], sent_s=(_start(r) or t0) - t0, workload="guidellm",
                temperature=None, text=r.get("output") or ""))
        if not records:
            continue
        sides.append(ImportedSide(
            tool=TOOL, path=path, level=lvl[0], level_kind=lvl[1], records=records, duration_s=float(b.get("duration") or 0.0),
            model=model, tool_version=meta.get("guidellm_version"), command=None, workload="guidellm", recorded=recorded,
            speculation=speculation([r for r, _ in rows]), profile=profile, requested=_requested(b),
            notes=["GuideLLM does not serialize chunk gaps: burst-delivered streams cannot be detected"]))
    if not sides:
        raise ImportFileError(f"{path} holds no benchmark at a fixed concurrency or rate with requests",
                              "run guidellm with --profile synchronous, concurrent, constant or poisson")
    return sides
