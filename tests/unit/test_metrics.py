"""/metrics parsing on text captured from a real vLLM 0.32 server (tests/unit/fixtures), deltas, resets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from playbook.helpers.errors import CounterResetError, MetricsError
from playbook.helpers.metrics import (
    ACCEPTED,
    DRAFT_TOKENS,
    DRAFTS,
    parse_metrics,
    spec_delta,
)

FIX = Path(__file__).with_name("fixtures")
EARLY = (FIX / "vllm_metrics_spec_1.txt").read_text()
LATER = (FIX / "vllm_metrics_spec_2.txt").read_text()


def _sum(text: str, name: str) -> float:
    """Independent reading of a counter: regex over the raw lines, summed over label sets."""
    return sum(float(m.group(1)) for m in re.finditer(rf"^{re.escape(name)}{{[^}}]*}} (\S+)$", text, re.M))


def test_counters_match_the_raw_text():
    snap = parse_metrics(LATER)
    for name in (DRAFTS, DRAFT_TOKENS, ACCEPTED):
        assert snap.counters[name] == _sum(LATER, name)
    assert sorted(snap.per_pos) == [0, 1, 2, 3]
    assert "kv_cache_usage" in snap.gauges and "running" in snap.gauges and "waiting" in snap.gauges


def test_delta_rates_follow_the_definitions():
    d = spec_delta(parse_metrics(EARLY), parse_metrics(LATER))
    drafts = _sum(LATER, DRAFTS) - _sum(EARLY, DRAFTS)
    tokens = _sum(LATER, DRAFT_TOKENS) - _sum(EARLY, DRAFT_TOKENS)
    accepted = _sum(LATER, ACCEPTED) - _sum(EARLY, ACCEPTED)
    assert drafts > 0
    assert d.acceptance_rate == pytest.approx(accepted / tokens)
    assert d.mean_acceptance_length == pytest.approx(1 + accepted / drafts)
    assert len(d.per_position) == 4
    assert sum(d.per_position) == pytest.approx(accepted / drafts)  # E(k) - 1 = sum p_i


def test_counter_going_backwards_is_a_reset():
    with pytest.raises(CounterResetError, match="restarted"):
        spec_delta(parse_metrics(LATER), parse_metrics(EARLY))


def test_labels_are_summed_over_engines():
    two = LATER + "\n".join(
        line.replace('engine="0"', 'engine="1"') for line in LATER.splitlines() if line.startswith("vllm:spec_decode")
    )
    # a second engine's samples must be added (same family, other label set)
    text = "\n".join(line for line in two.splitlines() if not line.startswith("#")) + "\n"
    snap = parse_metrics(text)
    assert snap.counters[DRAFTS] == 2 * _sum(LATER, DRAFTS)


def test_server_without_speculation_and_legacy_gauge():
    plain = "\n".join(line for line in LATER.splitlines() if "spec_decode" not in line) + "\n"
    d = spec_delta(parse_metrics(plain), parse_metrics(plain))
    assert not d.available and d.acceptance_rate is None
    legacy = plain + "# TYPE vllm:spec_decode_draft_acceptance_rate gauge\nvllm:spec_decode_draft_acceptance_rate 0.61\n"
    d = spec_delta(parse_metrics(legacy), parse_metrics(legacy))
    assert d.available and d.source == "legacy_gauge" and d.acceptance_rate == 0.61


def test_garbage_is_a_clear_error():
    with pytest.raises(MetricsError, match="not valid Prometheus"):
        parse_metrics("vllm:x{a=\"1\" 2 3 4\n")


def test_server_side_latency_means_from_histogram_deltas():
    from playbook.helpers.metrics import server_mean_ms

    name = "vllm:request_time_per_output_token_seconds"
    total = _sum(LATER, name + "_sum") - _sum(EARLY, name + "_sum")
    count = _sum(LATER, name + "_count") - _sum(EARLY, name + "_count")
    got = server_mean_ms(parse_metrics(EARLY), parse_metrics(LATER), "tpot")
    assert count > 0 and got == pytest.approx(1000 * total / count)
    assert server_mean_ms(parse_metrics(LATER), parse_metrics(LATER), "ttft") is None  # nothing in between


def test_metric_names_lists_what_a_live_endpoint_exposes():
    """metric_names reads a real HTTP /metrics (a local server replaying captured vLLM text)."""
    import http.server
    import threading

    from playbook.helpers.metrics import metric_names

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server API)
            body = LATER.encode() if self.path == "/metrics" else b""
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        names = metric_names(f"http://127.0.0.1:{srv.server_port}")
    finally:
        srv.shutdown()
    assert "vllm:spec_decode_num_drafts_total" in names
    assert "vllm:spec_decode_num_accepted_tokens_per_pos_total" in names
    assert not any(n.startswith("vllm:spec_decode") and n not in LATER for n in names)


def test_metric_names_on_unreachable_url_names_it():
    from playbook.helpers.metrics import metric_names

    with pytest.raises(MetricsError, match="127.0.0.1:9"):
        metric_names("http://127.0.0.1:9", timeout_s=2)
