"""vLLM ``/metrics``: scraping, speculative-decoding counter deltas, counter resets, a load sampler.

Rates come from the difference of two scrapes around a phase, never from absolute values:
``acceptance_rate = accepted / draft_tokens``, ``mean_acceptance_length = 1 + accepted / drafts``,
``p_i = accepted_per_pos[i] / drafts``. Samples are summed over the ``engine`` and ``model_name``
labels. A counter that goes backwards means the server restarted between the scrapes:
:class:`CounterResetError`, and no rate is computed. Old vLLM only had the gauge
``vllm:spec_decode_draft_acceptance_rate``; it is used when the counters are absent.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from . import http_policy
from .artifacts import append_jsonl
from .errors import CounterResetError, MetricsError
from .server import auth_headers

DRAFTS = "vllm:spec_decode_num_drafts_total"
DRAFT_TOKENS = "vllm:spec_decode_num_draft_tokens_total"
ACCEPTED = "vllm:spec_decode_num_accepted_tokens_total"
ACCEPTED_PER_POS = "vllm:spec_decode_num_accepted_tokens_per_pos_total"
LEGACY_RATE = "vllm:spec_decode_draft_acceptance_rate"
SPEC_COUNTERS = (DRAFTS, DRAFT_TOKENS, ACCEPTED, ACCEPTED_PER_POS)
# Gauges sampled during load (names from vllm/v1/metrics/loggers.py).
KV_CACHE_USAGE = "vllm:kv_cache_usage_perc"
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
PREEMPTIONS = "vllm:num_preemptions_total"  # a counter: per level, the report takes max - min of its samples
GAUGES = {"kv_cache_usage": KV_CACHE_USAGE, "running": RUNNING, "waiting": WAITING, "preemptions": PREEMPTIONS}
# Server-side latency histograms (sum and count), a cross-check of the client's TTFT and TPOT.
HISTOGRAMS = {"ttft": "vllm:time_to_first_token_seconds", "tpot": "vllm:request_time_per_output_token_seconds"}


def series(name: str, matchers: str = "") -> str:
    """PromQL selector of a vLLM metric under either of its stored names, ``vllm:x`` or ``vllm_x``.

    prometheus_client >= 0.22 (vLLM's) writes the colon as an underscore in OpenMetrics sample lines when
    the scraper negotiates ``escaping=underscores``, as Prometheus 2.x does (prometheus/client_python
    issue #1177), so the same counter is stored as ``vllm_...`` there and ``vllm:...`` elsewhere.
    ``matchers``: more label matchers, without braces."""
    rest = name.removeprefix("vllm:")
    extra = f",{matchers.strip().strip(',')}" if matchers.strip() else ""
    return f'{{__name__=~"vllm[:_]{rest}"{extra}}}'


def colon_name(name: str) -> str:
    """``vllm_x`` (as Prometheus may store it, see :func:`series`) -> ``vllm:x``."""
    return "vllm:" + name[5:] if name.startswith("vllm_") else name


@dataclass
class Snapshot:
    """One scrape, reduced to what the playbook uses (sums over engine/model_name labels)."""

    time: float
    counters: dict[str, float] = field(default_factory=dict)
    per_pos: dict[int, float] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, float] = field(default_factory=dict)  # "<key>_sum" / "<key>_count"
    legacy_rate: float | None = None
    parts: dict[str, Snapshot] = field(default_factory=dict)  # per replica, when summed (:func:`merge`)

    @property
    def has_spec_counters(self) -> bool:
        return DRAFTS in self.counters

    @property
    def speculates(self) -> bool:
        """The server runs speculation: vLLM registers its spec-decode metrics (V1 counters, V0's rate gauge) only
        with a speculative config."""
        return self.has_spec_counters or self.legacy_rate is not None


@dataclass
class SpecDelta:
    """Speculative-decoding activity between two scrapes."""

    available: bool
    drafts: float = 0.0
    draft_tokens: float = 0.0
    accepted: float = 0.0
    per_pos_accepted: list[float] = field(default_factory=list)
    source: str = "counters"  # "counters" | "legacy_gauge" | "none"
    legacy_rate: float | None = None
    origin: str = "server"  # which metrics source measured it: server | pods | prometheus | per_request

    @property
    def acceptance_rate(self) -> float | None:
        if self.source == "legacy_gauge":
            return self.legacy_rate
        return self.accepted / self.draft_tokens if self.draft_tokens > 0 else None

    @property
    def mean_acceptance_length(self) -> float | None:
        return 1 + self.accepted / self.drafts if self.drafts > 0 else None

    @property
    def per_position(self) -> list[float]:
        return [a / self.drafts for a in self.per_pos_accepted] if self.drafts > 0 else []


def parse_metrics(text: str, at: float | None = None) -> Snapshot:
    """Parse Prometheus text with prometheus_client's parser; raise MetricsError if unparsable."""
    snap = Snapshot(time=time.time() if at is None else at)
    wanted_gauges = {v: k for k, v in GAUGES.items()}
    wanted_hist = {f"{v}{suffix}": f"{k}{suffix}" for k, v in HISTOGRAMS.items() for suffix in ("_sum", "_count")}
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name in (DRAFTS, DRAFT_TOKENS, ACCEPTED):
                    snap.counters[s.name] = snap.counters.get(s.name, 0.0) + s.value
                elif s.name == ACCEPTED_PER_POS:
                    pos = int(s.labels.get("position", 0))
                    snap.per_pos[pos] = snap.per_pos.get(pos, 0.0) + s.value
                elif s.name == LEGACY_RATE:
                    snap.legacy_rate = s.value
                elif s.name in wanted_gauges:
                    key = wanted_gauges[s.name]
                    snap.gauges[key] = snap.gauges.get(key, 0.0) + s.value
                elif s.name in wanted_hist:
                    key = wanted_hist[s.name]
                    snap.histograms[key] = snap.histograms.get(key, 0.0) + s.value
    except (ValueError, TypeError) as exc:
        raise MetricsError(
            f"/metrics is not valid Prometheus text: {exc}",
            "check that the URL points at a vLLM server (GET <url>/metrics)",
        ) from exc
    return snap


def fetch_text(url: str, timeout_s: float = 10, api_key: str | None = None) -> str:
    """GET ``<url>/metrics`` as text; MetricsError naming the URL when it cannot be read."""
    req = urllib.request.Request(url.rstrip("/") + "/metrics", headers=auth_headers(api_key))
    try:
        with http_policy.urlopen(req, timeout=timeout_s) as resp:
            text = resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:  # the URL answers, without vLLM's /metrics: a gateway or router
        raise MetricsError(
            f"cannot read {url}/metrics: HTTP {exc.code} {exc.reason} (the server answers, but not with vLLM's "
            "/metrics: a router or gateway in front of the replicas?)",
            "read the replicas' own metrics: metrics_source pods with metrics_urls (each replica's base URL), "
            "prometheus with prometheus_url, or per_request; or point the URL at a vLLM server directly",
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise MetricsError(
            f"cannot read {url}/metrics: {getattr(exc, 'reason', exc)}",
            "check the server is up and exposes /metrics (vLLM does by default)",
        ) from exc
    return text


def scrape(url: str, timeout_s: float = 10, api_key: str | None = None) -> Snapshot:
    """GET ``<url>/metrics`` and parse it."""
    return parse_metrics(fetch_text(url, timeout_s, api_key))


def metric_names(url: str, timeout_s: float = 10, api_key: str | None = None) -> set[str]:
    """Every sample name the server exposes (counters keep their ``_total`` suffix)."""
    text = fetch_text(url, timeout_s, api_key)
    try:
        return {s.name for family in text_string_to_metric_families(text) for s in family.samples}
    except (ValueError, TypeError) as exc:
        raise MetricsError(f"{url}/metrics is not valid Prometheus text: {exc}",
                           "check that the URL points at a vLLM server (GET <url>/metrics)") from exc


def merge(snapshots: dict[str, Snapshot]) -> Snapshot:
    """One snapshot of several replicas (keyed by URL): counters, histograms, running and waiting summed,
    KV cache usage the maximum; each replica kept in ``parts`` so a restart of one is still seen."""
    out = Snapshot(time=max((s.time for s in snapshots.values()), default=time.time()), parts=dict(snapshots))
    for snap in snapshots.values():
        for src, dst in ((snap.counters, out.counters), (snap.per_pos, out.per_pos), (snap.histograms, out.histograms)):
            for k, v in src.items():
                dst[k] = dst.get(k, 0.0) + v
        for k, v in snap.gauges.items():
            out.gauges[k] = max(out.gauges.get(k, v), v) if k == "kv_cache_usage" else out.gauges.get(k, 0.0) + v
        if out.legacy_rate is None:
            out.legacy_rate = snap.legacy_rate
    return out


def _backwards(before: Snapshot, after: Snapshot, where: str = "") -> list[str]:
    names = [n for n in (DRAFTS, DRAFT_TOKENS, ACCEPTED) if after.counters.get(n, 0.0) < before.counters.get(n, 0.0)]
    names += [f"{ACCEPTED_PER_POS}{{position={i}}}" for i in sorted(before.per_pos)
              if after.per_pos.get(i, 0.0) < before.per_pos[i]]
    return [f"{n}{where}" for n in names]


def spec_delta(before: Snapshot, after: Snapshot) -> SpecDelta:
    """Counter deltas between two scrapes; CounterResetError if any counter went backwards (on any
    replica, for merged snapshots)."""
    if not (before.has_spec_counters and after.has_spec_counters):
        if after.legacy_rate is not None:
            return SpecDelta(available=True, source="legacy_gauge", legacy_rate=after.legacy_rate)
        return SpecDelta(available=False, source="none")
    deltas = {name: after.counters.get(name, 0.0) - before.counters.get(name, 0.0)
              for name in (DRAFTS, DRAFT_TOKENS, ACCEPTED)}
    positions = sorted(set(before.per_pos) | set(after.per_pos))
    per_pos = [after.per_pos.get(i, 0.0) - before.per_pos.get(i, 0.0) for i in positions]
    backwards = _backwards(before, after)
    for key in sorted(set(before.parts) & set(after.parts)):
        backwards += _backwards(before.parts[key], after.parts[key], f" at {key}")
    if backwards:
        raise CounterResetError(
            f"counter(s) went backwards between two scrapes ({', '.join(backwards)}): "
            "the server restarted in between, so no rate can be computed across it",
            "re-run this phase against the running server (playbook run --resume re-measures it)",
        )
    return SpecDelta(
        available=True,
        drafts=deltas[DRAFTS],
        draft_tokens=deltas[DRAFT_TOKENS],
        accepted=deltas[ACCEPTED],
        per_pos_accepted=per_pos,
    )


def server_k(snap: Snapshot) -> int | None:
    """The k (draft tokens per step) a speculative server runs, from the position labels of its per-position counter:
    vLLM creates ``position`` 0 to k-1 when it starts (``SpecDecodingProm`` in vllm/v1/spec_decode/metrics.py), before
    any draft. None when the server exposes no per-position counter."""
    return max(snap.per_pos) + 1 if snap.per_pos else None


def k_mismatch(url: str, k: int, positions: int | None = None,
               mean_acceptance_length: float | None = None) -> tuple[str, str] | None:
    """(problem, fix) when what the speculative server at ``url`` runs cannot be k = ``num_speculative_tokens``:
    another number of per-position counters (``positions``, :func:`server_k`), or a mean acceptance length above k + 1
    (one token per step plus at most k accepted). None when nothing contradicts k."""
    if positions is not None and positions != k:
        problem = (f"the speculative server {url} proposes k={positions} tokens per step (its {ACCEPTED_PER_POS} "
                   f"has positions 0 to {positions - 1}), but num_speculative_tokens is {k}: the results would describe "
                   f"k={k}, a configuration that was never run")
        shown = positions
    elif mean_acceptance_length is not None and mean_acceptance_length > k + 1 + 1e-6:
        problem = (f"the speculative server {url} accepted {mean_acceptance_length:.2f} tokens per step on average (mean "
                   f"acceptance length), more than k+1 = {k + 1} allows with num_speculative_tokens {k}: it runs a "
                   f"larger k, so the results would describe a configuration that was never run")
        shown = None
    else:
        return None
    fix = (f"set -p num_speculative_tokens={shown} (what the server runs)" if shown else
           "set -p num_speculative_tokens to the k the server runs") + (
        f", or point spec_url at the server started with num_speculative_tokens {k}")
    return problem, fix


def server_mean_ms(before: Snapshot, after: Snapshot, key: str) -> float | None:
    """The server's own mean of a latency histogram (``ttft`` or ``tpot``) between two scrapes, in ms."""
    n = after.histograms.get(f"{key}_count", 0.0) - before.histograms.get(f"{key}_count", 0.0)
    total = after.histograms.get(f"{key}_sum", 0.0) - before.histograms.get(f"{key}_sum", 0.0)
    return 1000.0 * total / n if n > 0 and total >= 0 else None


class Sampler:
    """Scrape KV cache usage and running/waiting requests every ``interval_s`` into a JSONL file.

    A background thread (not the load generator's event loop, which must stay lean). Use as a
    context manager; scrape failures are recorded as rows with an ``error``, never raised.
    """

    def __init__(self, url: str, path: Path, interval_s: float = 1.0, label: dict | None = None,
                 api_key: str | None = None, gauges: Callable[[], dict[str, float]] | None = None):
        self.url, self.path, self.interval_s = url, Path(path), interval_s
        self.label = label or {}
        self.api_key = api_key
        # where the gauges come from: ``url``/metrics, or a metrics source's ``gauges`` (pods, Prometheus)
        self._gauges = gauges or (lambda: scrape(self.url, timeout_s=max(self.interval_s, 2), api_key=self.api_key).gauges)
        self.rows: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrics-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            row = {**self.label, "time": time.time()}
            try:
                row.update(self._gauges())
            except MetricsError as exc:
                row["error"] = exc.problem
            self.rows.append(row)
            append_jsonl(self.path, row)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
