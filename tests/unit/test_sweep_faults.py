"""The sweep refuses to compute acceptance across a server restart (counter reset), keeps the other
points, and says the server has no speculation when /metrics has no spec-decode counters. The fake
server replays /metrics text captured from a real vLLM (fault injection only)."""

from __future__ import annotations

from pathlib import Path

from playbook.helpers.loadgen import Target
from playbook.helpers.sweep import run_sweep
from tests.support import start_fake
from tests.support import stop_fake as _stop

HERE = Path(__file__).parent
EARLY, LATER = HERE / "fixtures" / "vllm_metrics_spec_1.txt", HERE / "fixtures" / "vllm_metrics_spec_2.txt"


def _fake(metrics: list[Path]):
    return start_fake(FAKE_METRICS=",".join(map(str, metrics)))


def test_counter_reset_between_scrapes_is_detected_and_not_computed_across(tmp_path):
    # scrapes: detect, before T=0, after T=0, before T=0.8, after T=0.8 (the server "restarted")
    proc, url = _fake([EARLY, EARLY, LATER, LATER, EARLY])
    try:
        res = run_sweep(Target(url, "m"), ["structured"], [0.0, 0.8], requests_per_point=2, max_tokens=9,
                        progress=False)
    finally:
        _stop(proc)
    first, second = res.points
    assert first.acceptance_rate is not None and first.source == "counters"
    assert second.acceptance_rate is None and second.verdict == "unknown"
    assert second.requests == 2  # its requests were still recorded
    assert res.status == "partial" and any("restarted" in w for w in res.warnings)


def test_a_server_without_speculation_is_reported_as_such(tmp_path):
    plain = tmp_path / "plain-metrics.txt"
    plain.write_text("".join(line + "\n" for line in LATER.read_text().splitlines() if "spec_decode" not in line))
    proc, url = _fake([plain])
    try:
        res = run_sweep(Target(url, "m"), ["structured"], [0.0], requests_per_point=2, progress=False)
    finally:
        _stop(proc)
    assert res.speculation is False and res.points == [] and "without speculation" in res.finding
