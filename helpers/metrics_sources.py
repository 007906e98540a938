"""Where speculative-decoding counters come from: one interface, four sources (``metrics_source``).

- ``server``: ``<url>/metrics`` of the URL measured (one vLLM server; wrong behind a router, which
  answers with its own metrics or a different replica's on each scrape);
- ``pods``: each replica's ``/metrics`` (``metrics_urls``), summed; a restart of any replica is seen;
- ``prometheus``: a Prometheus server (``prometheus_url``) and a label selector (``prometheus_selector``);
  each measured window's figures are ``increase()`` over that window, via the HTTP API
  ``/api/v1/query`` (https://prometheus.io/docs/prometheus/latest/querying/api/);
- ``per_request``: the responses' own ``metrics.speculative_decoding`` blocks, pooled, so only the
  benchmark's requests count. vLLM 0.32 returns them when started with
  ``--per-request-spec-decode-metrics summary`` (``vllm/config/observability.py``; the block is built by
  ``RequestSpecDecodeMetrics.to_dict`` in ``vllm/v1/metrics/stats.py``: ``num_spec_steps``,
  ``num_draft_tokens``, ``num_accepted_draft_tokens``, ``acceptance_histogram``).

Callers take a :class:`Snapshot` before and after a phase and ask the source for the :class:`Window`
between them (``records``: the phase's request records, used by ``per_request`` only).
:func:`router_check` is preflight's router detection for the ``server`` source.
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from . import http_policy
from .errors import MetricsError, ParameterError
from .metrics import (
    ACCEPTED,
    ACCEPTED_PER_POS,
    DRAFT_TOKENS,
    DRAFTS,
    GAUGES,
    HISTOGRAMS,
    RUNNING,
    Snapshot,
    SpecDelta,
    colon_name,
    merge,
    scrape,
    series,
    server_mean_ms,
    spec_delta,
)

SOURCES = ("server", "pods", "prometheus", "per_request")
FIX_SOURCES = ("set metrics_source to pods (metrics_urls: each replica's base URL), prometheus (prometheus_url "
               "and prometheus_selector matching the speculative replicas) or per_request (vLLM started with "
               "--per-request-spec-decode-metrics summary)")


@dataclass
class Window:
    """What a source measured between two snapshots: spec-decode deltas and the server's latency means."""

    spec: SpecDelta
    server_ms: dict[str, float | None] = field(default_factory=dict)  # "ttft" / "tpot" means, ms


class MetricsSource:
    """Counters of one role's server(s). ``snapshot()`` before and after a phase, then ``window()``."""

    kind: ClassVar[str] = ""

    def snapshot(self) -> Snapshot:
        raise NotImplementedError

    def window(self, before: Snapshot, after: Snapshot, records: Sequence[dict] = ()) -> Window:
        """Deltas between two snapshots; CounterResetError when a counter went backwards."""
        d = spec_delta(before, after)
        d.origin = self.kind
        return Window(d, {k: server_mean_ms(before, after, k) for k in HISTOGRAMS})

    def speculating(self) -> bool | None:
        """Whether the server(s) expose spec-decode metrics (None: cannot tell before any request)."""
        return self.snapshot().speculates

    def gauges(self) -> dict[str, float]:
        """KV cache usage (max over replicas), running and waiting requests (summed), for the sampler."""
        return self.snapshot().gauges

    def describe(self) -> str:
        raise NotImplementedError


class ServerSource(MetricsSource):
    kind = "server"

    def __init__(self, url: str, api_key: str | None = None):
        self.url, self.api_key = url.rstrip("/"), api_key

    def snapshot(self) -> Snapshot:
        return scrape(self.url, api_key=self.api_key)

    def gauges(self) -> dict[str, float]:
        return scrape(self.url, timeout_s=2, api_key=self.api_key).gauges  # the sampler's pace: never wait long

    def describe(self) -> str:
        return f"{self.url}/metrics"


class PodsSource(MetricsSource):
    kind = "pods"

    def __init__(self, urls: Sequence[str], api_key: str | None = None):
        if not urls:
            raise ParameterError("metrics_source 'pods' needs metrics_urls (each replica's base URL)",
                                 "set metrics_urls=http://pod-a:8000,http://pod-b:8000")
        self.urls, self.api_key = [u.rstrip("/") for u in urls], api_key

    def snapshot(self) -> Snapshot:
        return merge({u: scrape(u, api_key=self.api_key) for u in self.urls})

    def gauges(self) -> dict[str, float]:
        return merge({u: scrape(u, timeout_s=2, api_key=self.api_key) for u in self.urls}).gauges

    def describe(self) -> str:
        return f"/metrics of {len(self.urls)} replica(s) summed: {', '.join(self.urls)}"


def _selector(selector: str) -> str:
    """``a="b",c=~"d"`` or ``{a="b"}`` -> ``{a="b",c=~"d"}`` (matchers only, no metric name)."""
    inner = selector.strip()
    if inner.startswith("{") and inner.endswith("}"):
        inner = inner[1:-1].strip()
    if not inner or not re.fullmatch(r'\s*[A-Za-z_][A-Za-z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"\s*'
                                     r'(,\s*[A-Za-z_][A-Za-z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"\s*)*,?\s*', inner):
        raise ParameterError(f"prometheus_selector '{selector}' is not a PromQL label selector",
                             'write it as label matchers, e.g. namespace="llm",pod=~"spec-.*"')
    return "{" + inner + "}"


class PrometheusSource(MetricsSource):
    """Counters as a Prometheus server scraped them; each window is ``increase(metric[range])``.

    A snapshot waits until Prometheus holds, for every scraped target under the selector (each series
    of ``vllm:num_requests_running``: one per replica and engine), a sample taken after the snapshot
    began, and keeps each one's time (``Snapshot.parts``). A window is then, per target, ``increase()``
    from just before its first snapshot's sample (taken before any request of the window) to its
    second snapshot's sample (taken after all of them), evaluated at that sample's time: the range's
    ends sit on the target's own samples, so ``increase()`` barely extrapolates, and nothing scraped
    before the window counts. The targets' increases are summed.
    """

    kind = "prometheus"

    def __init__(self, url: str, selector: str, timeout_s: float = 10.0, max_wait_s: float = 60.0):
        if not url:
            raise ParameterError("metrics_source 'prometheus' needs prometheus_url", "set prometheus_url=http://prometheus:9090")
        self.url, self.sel, self.timeout_s, self.max_wait_s = url.rstrip("/"), _selector(selector), timeout_s, max_wait_s

    def query(self, promql: str, at: float | None = None) -> list[dict]:
        """``/api/v1/query`` -> the result vector; MetricsError naming the server when it fails."""
        args = {"query": promql} | ({"time": f"{at:.3f}"} if at is not None else {})
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode(args)}"
        try:
            with http_policy.urlopen(url, timeout=self.timeout_s) as resp:
                body = json.loads(resp.read().decode())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            raise MetricsError(f"Prometheus at {self.url} refused the query {promql}: {detail}",
                               "check prometheus_selector (label matchers, e.g. namespace=\"llm\")") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise MetricsError(f"cannot query Prometheus at {self.url}: {getattr(exc, 'reason', exc)}",
                               "check prometheus_url (the server's base URL, e.g. http://prometheus:9090)") from exc
        if body.get("status") != "success":
            raise MetricsError(f"Prometheus at {self.url} answered {body.get('error', body)} to {promql}",
                               "check prometheus_selector")
        return body["data"]["result"]

    def s(self, metric: str) -> str:
        """The selector of a vLLM metric (either stored name, :func:`.metrics.series`) under the selector."""
        return series(metric, self.sel[1:-1])

    def _scalar(self, promql: str, at: float | None = None) -> float | None:
        res = self.query(promql, at)
        return float(res[0]["value"][1]) if res else None

    def _targets(self) -> dict[str, float]:
        """{label matchers of a target: the time of its latest scrape} (a running-requests series each,
        a gauge every vLLM server exposes)."""
        from .monitoring import label_value

        out = {}
        for r in self.query(f"timestamp({self.s(RUNNING)})"):
            labels = {k: v for k, v in r["metric"].items() if k != "__name__"}
            out[",".join(f'{k}="{label_value(v)}"' for k, v in sorted(labels.items()))] = float(r["value"][1])
        return out

    def snapshot(self) -> Snapshot:
        """Wait for a sample of every target taken after now (``parts``: per target, its time); the
        counters' sums then (informative)."""
        began = time.time()
        targets = self._targets()
        while targets and min(targets.values()) < began:
            if time.time() - began > self.max_wait_s:
                raise MetricsError(f"Prometheus at {self.url} took no new sample of {self.s(RUNNING)} within "
                                   f"{self.max_wait_s:g} s", "check that Prometheus still scrapes the replicas (its /targets page)")
            time.sleep(0.25)
            targets = self._targets()
        snap = Snapshot(time=began, parts={k: Snapshot(time=t) for k, t in targets.items()})
        for name in (DRAFTS, DRAFT_TOKENS, ACCEPTED):
            value = self._scalar(f"sum({self.s(name)})")
            if value is not None:
                snap.counters[name] = value
        return snap

    def window(self, before: Snapshot, after: Snapshot, records: Sequence[dict] = ()) -> Window:
        totals: dict[str, float] = {}
        per_pos: dict[int, float] = {}
        found = False
        for key, last in after.parts.items():
            first = before.parts[key].time if key in before.parts else before.time  # a replica new since `before`
            rng = f"[{max(1, math.ceil((last.time - first + 0.001) * 1000))}ms]"

            def inc(name: str, by: str = "", key: str = key, rng: str = rng, at: float = last.time) -> list[dict]:
                return self.query(f"sum{by} (increase({series(name, key)}{rng}))", at)

            for name in (DRAFTS, DRAFT_TOKENS, ACCEPTED, *(f"{h}{sfx}" for h in HISTOGRAMS.values() for sfx in ("_sum", "_count"))):
                rows = inc(name)
                if rows:
                    totals[name] = totals.get(name, 0.0) + float(rows[0]["value"][1])
                    found = found or name == DRAFTS
            for r in inc(ACCEPTED_PER_POS, " by (position)"):
                i = int(r["metric"].get("position", 0))
                per_pos[i] = per_pos.get(i, 0.0) + float(r["value"][1])
        server_ms: dict[str, float | None] = {}
        for key, name in HISTOGRAMS.items():
            count = totals.get(f"{name}_count", 0.0)
            server_ms[key] = 1000.0 * totals.get(f"{name}_sum", 0.0) / count if count > 0 else None
        if not found:  # no spec-decode series under the selector (a baseline, or no speculation)
            return Window(SpecDelta(available=False, source="none", origin=self.kind), server_ms)
        d = SpecDelta(available=True, drafts=totals.get(DRAFTS, 0.0), draft_tokens=totals.get(DRAFT_TOKENS, 0.0),
                      accepted=totals.get(ACCEPTED, 0.0), per_pos_accepted=[per_pos[i] for i in sorted(per_pos)],
                      origin=self.kind)
        return Window(d, server_ms)

    def speculating(self) -> bool | None:
        return bool(self.query(self.s(DRAFTS)))

    def gauges(self) -> dict[str, float]:
        out = {}
        for key, name in GAUGES.items():
            value = self._scalar(f"{'max' if key == 'kv_cache_usage' else 'sum'}({self.s(name)})")
            if value is not None:
                out[key] = value
        return out

    def describe(self) -> str:
        return f"Prometheus {self.url}, series {self.sel}, increase() over each window"


def pool_per_request(records: Iterable[dict]) -> SpecDelta | None:
    """The ``metrics.speculative_decoding`` blocks of successful records, pooled; None when none has one.

    Per position i: steps that accepted more than i draft tokens, from ``acceptance_histogram`` (its
    index j counts steps that accepted j draft tokens), as vLLM's per-position counter counts them.
    """
    drafts = tokens = accepted = 0.0
    per_pos: list[float] = []
    seen = False
    for r in records:
        spec = r.get("spec") if r.get("status", "ok") == "ok" else None
        if not spec:
            continue
        seen = True
        hist = list(spec.get("acceptance_histogram") or [])
        drafts += spec.get("num_spec_steps", sum(hist))
        tokens += spec.get("num_draft_tokens", 0)
        accepted += spec.get("num_accepted_draft_tokens", sum(j * c for j, c in enumerate(hist)))
        k = max(len(hist) - 1, 0)
        per_pos += [0.0] * (k - len(per_pos))
        for i in range(k):
            per_pos[i] += sum(hist[i + 1:])
    if not seen:
        return None
    return SpecDelta(available=True, drafts=drafts, draft_tokens=tokens, accepted=accepted,
                     per_pos_accepted=per_pos, origin="per_request")


class PerRequestSource(MetricsSource):
    """Only the benchmark's own requests: their responses' spec-decode blocks, pooled per window."""

    kind = "per_request"

    def __init__(self, url: str, role: str = "spec"):
        self.url, self.role = url.rstrip("/"), role

    def snapshot(self) -> Snapshot:
        return Snapshot(time=time.time())

    def window(self, before: Snapshot, after: Snapshot, records: Sequence[dict] = ()) -> Window:
        d = pool_per_request(records)
        if d is None:
            if self.role != "spec" or not any(r.get("status", "ok") == "ok" for r in records):
                return Window(SpecDelta(available=False, source="none", origin=self.kind))
            raise MetricsError(
                f"{self.url} returned no per-request spec-decode metrics (no metrics.speculative_decoding in "
                "its responses): metrics_source 'per_request' has nothing to pool",
                "start vLLM (>= 0.32) with --per-request-spec-decode-metrics summary, or " + FIX_SOURCES.split(", or per_request")[0])
        return Window(d)

    def speculating(self) -> bool | None:
        return None

    def gauges(self) -> dict[str, float]:
        return {}

    def describe(self) -> str:
        return f"the per-request spec-decode metrics of {self.url}'s responses, pooled"


def source_for(params, role: str, url: str, api_key: str | None = None) -> MetricsSource:
    """The step parameters' metrics source for a role's server at ``url``.

    ``pods`` and ``prometheus`` read ``metrics_urls`` / ``prometheus_selector`` for the speculative server
    and ``baseline_metrics_urls`` / ``baseline_prometheus_selector`` for the baseline (unset: its own
    ``/metrics``, which serves only the TPOT cross-check and the KV/queue samples).
    """
    kind = getattr(params, "metrics_source", "server") or "server"
    prefix = "" if role == "spec" else "baseline_"
    if kind == "pods":
        urls = list(getattr(params, f"{prefix}metrics_urls", []) or [])
        if urls or role == "spec":
            return PodsSource(urls, api_key)
    elif kind == "prometheus":
        selector = getattr(params, f"{prefix}prometheus_selector", "") or ""
        if role == "spec" and not selector:
            raise ParameterError("metrics_source 'prometheus' needs prometheus_selector",
                                 'set it to label matchers of the speculative replicas, e.g. job="vllm-spec"')
        if selector:
            return PrometheusSource(getattr(params, "prometheus_url", ""), selector)
    elif kind == "per_request":
        return PerRequestSource(url, role)
    elif kind != "server":
        raise ParameterError(f"metrics_source '{kind}' is unknown", f"use one of {', '.join(SOURCES)}")
    return ServerSource(url, api_key)


# -- router detection (preflight) ---------------------------------------------------------------
def router_findings(snapshots: Sequence[Snapshot]) -> list[str]:
    """Why scrapes of one URL, taken with no traffic of ours in between, look like a router's.

    Spec-decode counters that are missing, that move, or that go backwards between scrapes mean each
    scrape reached a different replica (or production traffic runs through it)."""
    if not snapshots:
        return []
    if not any(s.has_spec_counters for s in snapshots):
        return ["its /metrics has no spec-decode counters (a router's own metrics, or a server without speculation)"]
    found = []
    if not all(s.has_spec_counters for s in snapshots):
        found.append("the spec-decode counters appear in some scrapes and not in others")
    for a, b in zip(snapshots, snapshots[1:], strict=False):
        moved = [n.split(":", 1)[1] for n in (DRAFTS, DRAFT_TOKENS, ACCEPTED)
                 if n in a.counters and n in b.counters and a.counters[n] != b.counters[n]]
        back = [n for n in moved if b.counters[f"vllm:{n}"] < a.counters[f"vllm:{n}"]]
        if back:
            found.append(f"counters went backwards between two scrapes {b.time - a.time:.1f} s apart "
                         f"({', '.join(back)}): the scrapes reached different replicas")
        elif moved:
            found.append(f"counters moved between two scrapes {b.time - a.time:.1f} s apart with no request of "
                         f"ours ({', '.join(moved)}): other traffic, or a different replica per scrape")
    return list(dict.fromkeys(found))


def router_check(url: str, api_key: str | None = None, scrapes: int = 4, gap_s: float = 0.5):
    """Preflight's check of the ``server`` source: scrape ``url`` a few times with no traffic of ours;
    a warning naming the sources to use when it looks like a router (see :func:`router_findings`)."""
    from .schemas.preflight import Check

    snaps = []
    for i in range(scrapes):
        if i:
            time.sleep(gap_s)
        snaps.append(scrape(url, api_key=api_key))
    found = router_findings(snaps)
    name = "metrics source (spec)"
    if not found:
        return Check(name=name, status="ok",
                     detail=f"{url}/metrics held still over {scrapes} scrapes with no traffic: one server")
    return Check(name=name, status="warn",
                 detail=f"{url} looks like a router or a shared server: " + "; ".join(found)
                 + ". Counter deltas from it would be wrong or mixed with other traffic",
                 fix=FIX_SOURCES)


def preflight_checks(params, role: str, url: str, api_key: str | None = None) -> list:
    """Preflight's metrics-source checks for a role: router detection with ``server``; with the other
    sources, that the source answers and (speculative role) sees spec-decode counters."""
    from .schemas.preflight import Check

    kind = getattr(params, "metrics_source", "server") or "server"
    name = f"metrics source ({role})"
    try:
        if kind == "server":
            return [router_check(url, api_key)] if role == "spec" else []
        src = source_for(params, role, url, api_key)
        if isinstance(src, ServerSource):
            return []
        speculating = src.speculating()
    except (MetricsError, ParameterError) as exc:
        return [Check(name=name, status="fail", detail=exc.problem.splitlines()[0], fix=exc.fix or "")]
    if role == "spec" and speculating is False:
        return [Check(name=name, status="fail", detail=f"{src.describe()}: no spec-decode counters",
                      fix="check the URLs / selector point at the speculative replicas")]
    note = " (checked on the first measured window)" if speculating is None else ""
    return [Check(name=name, status="ok", detail=f"{kind}: {src.describe()}{note}")]


def metric_names_for(params, url: str, api_key: str | None = None) -> set[str]:
    """Sample names the speculative role's metrics source exposes (preflight's counter check): the
    URL's own ``/metrics`` for ``server`` and ``per_request``, every replica's for ``pods``, the
    series Prometheus holds under the selector for ``prometheus``."""
    from .metrics import metric_names

    src = source_for(params, "spec", url, api_key)
    if isinstance(src, PodsSource):
        return set().union(*(metric_names(u, api_key=api_key) for u in src.urls))
    if isinstance(src, PrometheusSource):
        rows = src.query(f"group by (__name__) ({series('vllm:.*', src.sel[1:-1])})")
        return {colon_name(r["metric"]["__name__"]) for r in rows}
    return metric_names(url, api_key=api_key)
