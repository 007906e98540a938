"""helpers/metrics_sources.py without a server: summing replicas, pooling per-request blocks, router
detection from scrapes, choosing a source from the parameters. Real servers, a proxy and Prometheus:
tests/integration/test_metrics_sources_engine.py."""

from __future__ import annotations

import socket

import pytest

from playbook.helpers.errors import CounterResetError, MetricsError, ParameterError
from playbook.helpers.metrics import ACCEPTED, DRAFT_TOKENS, DRAFTS, Snapshot, merge, spec_delta
from playbook.helpers.metrics_sources import (
    PerRequestSource,
    PodsSource,
    PrometheusSource,
    ServerSource,
    pool_per_request,
    router_findings,
    source_for,
)
from playbook.helpers.params import LoadParams, SweepParams


def snap(t: float, drafts: float, tokens: float, accepted: float, per_pos=(), running=0.0, kv=0.0) -> Snapshot:
    return Snapshot(time=t, counters={DRAFTS: drafts, DRAFT_TOKENS: tokens, ACCEPTED: accepted},
                    per_pos=dict(enumerate(per_pos)), gauges={"running": running, "kv_cache_usage": kv})


def test_replicas_are_summed_and_a_restart_of_one_is_seen():
    before = merge({"a": snap(0, 10, 40, 20, (8, 6, 4, 2), running=1, kv=0.2), "b": snap(0, 5, 20, 5, (3, 1, 1, 0), kv=0.5)})
    after = merge({"a": snap(1, 20, 80, 50, (16, 14, 12, 8), running=3, kv=0.4), "b": snap(1, 9, 36, 13, (6, 4, 2, 1), kv=0.1)})
    assert after.gauges == {"running": 3, "kv_cache_usage": 0.4}  # running summed, KV the fullest replica
    d = spec_delta(before, after)
    assert (d.drafts, d.draft_tokens, d.accepted) == (14, 56, 38)
    assert d.per_pos_accepted == [11, 11, 9, 7]
    # replica b restarted while a moved on: the sum still grows, the restart is still caught
    restarted = merge({"a": snap(1, 40, 160, 100, (30, 30, 20, 20)), "b": snap(1, 1, 4, 1, (1, 0, 0, 0))})
    with pytest.raises(CounterResetError, match="at b"):
        spec_delta(before, restarted)


def _vllm_block(hist: list[int], draft_tokens: int | None = None) -> dict:
    """A metrics.speculative_decoding block as vLLM 0.32's RequestSpecDecodeMetrics.to_dict builds it."""
    steps, acc = sum(hist), sum(j * c for j, c in enumerate(hist))
    return {"mean_acceptance_length": 1 + acc / steps, "draft_acceptance_rate": acc / (draft_tokens or 4 * steps),
            "acceptance_histogram": hist, "num_spec_steps": steps, "num_accepted_draft_tokens": acc,
            "num_draft_tokens": draft_tokens if draft_tokens is not None else 4 * steps, "num_spec_tokens": 4}


def test_per_request_blocks_pool_like_the_counters():
    records = [{"status": "ok", "spec": _vllm_block([1, 0, 2, 0, 1])},   # steps accepting 0, 2, 2, 4 tokens
               {"status": "ok", "spec": _vllm_block([0, 1, 0, 0, 1])},   # 1 and 4
               {"status": "error", "spec": _vllm_block([5, 0, 0, 0, 0])},  # failed requests do not count
               {"status": "ok"}]
    d = pool_per_request(records)
    assert (d.drafts, d.draft_tokens, d.accepted) == (6, 24, 13)
    assert d.per_pos_accepted == [5, 4, 2, 2]  # steps that accepted more than i tokens
    assert d.acceptance_rate == pytest.approx(13 / 24) and d.mean_acceptance_length == pytest.approx(1 + 13 / 6)
    assert d.per_position[0] == pytest.approx(5 / 6) and d.origin == "per_request"


def test_per_request_source_says_when_the_server_returns_nothing():
    src = PerRequestSource("http://router:8000")
    with pytest.raises(MetricsError, match="per-request-spec-decode-metrics summary"):
        src.window(src.snapshot(), src.snapshot(), [{"status": "ok", "text": "x"}])
    assert PerRequestSource("http://b", role="baseline").window(Snapshot(0), Snapshot(1), [{"status": "ok"}]).spec.available is False


@pytest.mark.parametrize("scrapes,expect", [
    ([snap(0, 10, 40, 20), snap(1, 10, 40, 20), snap(2, 10, 40, 20)], None),
    ([snap(0, 10, 40, 20), snap(1, 30, 120, 70), snap(2, 10, 40, 20)], "backwards"),
    ([snap(0, 10, 40, 20), snap(1, 12, 48, 25)], "moved"),
    ([Snapshot(0), Snapshot(1)], "no spec-decode counters"),
    ([snap(0, 10, 40, 20), Snapshot(1)], "some scrapes and not in others"),
])
def test_router_detection(scrapes, expect):
    found = " ".join(router_findings(scrapes))
    assert (expect in found) if expect else not found


def test_the_parameters_choose_the_source():
    url = "http://router:8000"
    assert isinstance(source_for(SweepParams(), "spec", url), ServerSource)
    pods = source_for(SweepParams(metrics_source="pods", metrics_urls="http://a:1,http://b:2/"), "spec", url)
    assert isinstance(pods, PodsSource) and pods.urls == ["http://a:1", "http://b:2"]
    # the baseline falls back to its own /metrics when no replica list is given for it
    assert isinstance(source_for(LoadParams(metrics_source="pods", metrics_urls="http://a:1"), "baseline", url), ServerSource)
    prom = source_for(LoadParams(metrics_source="prometheus", prometheus_url="http://p:9090",
                                 prometheus_selector='namespace="llm", pod=~"spec-.*"'), "spec", url)
    assert isinstance(prom, PrometheusSource) and prom.sel == '{namespace="llm", pod=~"spec-.*"}'
    assert isinstance(source_for(SweepParams(metrics_source="per_request"), "spec", url), PerRequestSource)
    with pytest.raises(ParameterError, match="metrics_urls"):
        source_for(SweepParams(metrics_source="pods"), "spec", url)
    with pytest.raises(ParameterError, match="prometheus_selector"):
        source_for(SweepParams(metrics_source="prometheus", prometheus_url="http://p:9090"), "spec", url)
    with pytest.raises(ParameterError, match="not a PromQL label selector"):
        PrometheusSource("http://p:9090", "vllm:foo{bar}")


def test_an_unreachable_prometheus_is_named():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    src = PrometheusSource(f"http://127.0.0.1:{port}", 'job="x"', timeout_s=2)
    with pytest.raises(MetricsError, match=f"cannot query Prometheus at http://127.0.0.1:{port}"):
        src.speculating()
