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


def _bumped(tmp_path, drafts: float, draft_tokens: float, accepted: float) -> Path:
    """EARLY's /metrics with the spec-decode counters moved far ahead: another replica's, or other traffic."""
    text = EARLY.read_text()
    for name, value in (("drafts", drafts), ("draft_tokens", draft_tokens), ("accepted_tokens", accepted)):
        text = "\n".join(f"{line.rsplit(' ', 1)[0]} {value}" if line.startswith(f"vllm:spec_decode_num_{name}_total{{")
                         else line for line in text.splitlines()) + "\n"
    out = tmp_path / f"bumped-{drafts:g}.txt"
    out.write_text(text)
    return out


def test_counters_moving_more_than_the_windows_requests_could_are_not_taken_as_acceptance(tmp_path):
    """A router whose /metrics is another replica's on every other scrape: 300 drafts for 2 requests of 9 tokens
    is impossible; the point gets no acceptance, and a sweep with none anywhere fails (it measured nothing)."""
    proc, url = _fake([EARLY, EARLY, _bumped(tmp_path, 303, 1212, 1100)])
    try:
        res = run_sweep(Target(url, "m"), ["structured"], [0.0], requests_per_point=2, max_tokens=9,
                        progress=False, method="draft_model")
    finally:
        _stop(proc)
    (point,) = res.points
    assert point.acceptance_rate is None and point.requests == 2
    assert any("counters include other traffic" in w for w in res.warnings)
    assert res.status == "failed" and any("no acceptance was measured at any point" in w for w in res.warnings)


def test_a_draft_model_drafting_on_few_steps_is_said_to_be_a_mix(tmp_path, capsys):
    """1 draft over ~15 decode steps for method draft_model (which drafts on every step): requests went to a
    server without speculation (a router over mixed replicas); said in the finding and on stderr."""
    accepted = next(float(line.rsplit(" ", 1)[1]) for line in EARLY.read_text().splitlines()
                    if line.startswith("vllm:spec_decode_num_accepted_tokens_total{"))
    proc, url = _fake([EARLY, EARLY, _bumped(tmp_path, 4, 16, accepted + 1)])
    try:
        res = run_sweep(Target(url, "m"), ["structured"], [0.0], requests_per_point=2, max_tokens=9,
                        progress=False, method="draft_model")
    finally:
        _stop(proc)
    assert res.points[0].acceptance_rate is not None
    assert "some requests were served without speculation" in res.finding
    assert "some requests were served without speculation" in capsys.readouterr().err


def test_a_load_level_mostly_undrafted_for_a_draft_method_is_failed_with_the_reason():
    """`playbook load` behind a router mixing replicas: a draft_model level drafting on 20% of its decode steps is
    a mix, not the configuration (the level fails, so it never counts as a win or a loss)."""
    from playbook.helpers.loadtest import _undrafted_share
    from playbook.helpers.metrics import SpecDelta

    records = [{"status": "ok", "output_tokens": 41}] * 4  # 160 decode steps after the first tokens
    mixed = SpecDelta(available=True, drafts=30, draft_tokens=120, accepted=10)
    why = _undrafted_share(mixed, records, "http://router:8000", "draft_model")
    assert why and "drafted on only 20% of this level's decode steps" in why and "router" in why
    whole = SpecDelta(available=True, drafts=100, draft_tokens=400, accepted=60)
    assert _undrafted_share(whole, records, "http://spec:8000", "draft_model") is None
