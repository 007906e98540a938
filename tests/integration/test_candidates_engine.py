"""Two candidate configurations at one level on the embedded pair, for real, as `playbook run` runs step 50:
through the run's server pool (here the session's, which already holds the embedded baseline and the
draft_model k=4 server; only the n-gram k=2 candidate with its own lookup window starts). One baseline
serves both candidates; then the same step again, resumed: nothing is measured and no server starts."""

from __future__ import annotations

import json

import pytest

from playbook.helpers import candidates, steps
from playbook.helpers.artifacts import RunDir, read_jsonl
from playbook.helpers.params import LoadParams
from playbook.helpers.servers import ENV as POOL_ENV

pytestmark = pytest.mark.engine


def test_two_candidates_at_one_level_share_the_baseline_and_resume(tmp_path, server_pool, spec_server,
                                                                   baseline_server, monkeypatch):
    monkeypatch.setenv(POOL_ENV, server_pool.address)
    pool_log = server_pool.run_dir / "artifacts" / "servers.jsonl"
    seen = len(read_jsonl(pool_log))
    run = RunDir(tmp_path / "run")
    p = LoadParams(run_dir=str(run.path), concurrencies=[2], requests_per_level=4, warmup_requests=1, max_tokens=24,
                   temperature=0.0, find_saturation=False, lossless_check=False, min_round_pairs=2,
                   level_time_budget_s=10, level_decision_budget_s=0, candidates=["ngram:2:1-3"])
    load = steps.load(p, run, progress=False)
    assert [sp.level for sp in load.speedup] == [2]
    comp = candidates.read(run)
    assert comp is not None and comp.levels == [2]
    assert [(c.label, c.status, c.primary) for c in comp.candidates] == [
        ("draft_model:4", "measured", True), ("ngram:2:1-3", "measured", False)]
    for c in comp.candidates:
        (row,) = c.levels
        assert row.level == 2 and row.rounds >= 2 and row.tpot_p50_ms and row.baseline_tpot_p50_ms
        if row.status == "ok":
            assert row.ci_low <= row.speedup <= row.ci_high
        assert row.acceptance_per_position and len(row.acceptance_per_position) == c.candidate.k
    sub = run.path / "candidates" / "ngram-2-1-3"
    assert (sub / "artifacts" / "50_load.json").is_file() and read_jsonl(sub / "artifacts" / "50_load_requests.jsonl")
    assert "10 s / 1 per level" in comp.budget_note  # the one other candidate has the whole level budget
    events = read_jsonl(pool_log)[seen:]
    starts = [e for e in events if e["event"] == "start"]
    assert [e["role"] for e in starts] == ["spec"], json.dumps(events)  # the pooled baseline and k=4 reused
    ngram = starts[0]  # the candidate's own window, not the defaults
    assert "ngram k=2" in ngram["config"]
    assert '"prompt_lookup_min":1' in ngram["config"] and '"prompt_lookup_max":3' in ngram["config"]
    baseline = [e for e in events if e["role"] == "baseline" and e["event"] == "reuse"]
    assert len(baseline) >= 2 and len({e["name"] for e in baseline}) == 1, json.dumps(events)  # one, twice
    before = len(read_jsonl(pool_log))
    steps.load(p, run, progress=False)  # resumed: every (candidate, level) is in its phase log
    again = read_jsonl(pool_log)[before:]
    assert not [e for e in again if e["event"] == "start"], json.dumps(again)
    assert candidates.read(run).candidates[1].levels[0].speedup == comp.candidates[1].levels[0].speedup


def test_a_k_table_is_measured_as_launched_on_its_own_server(tmp_path, server_pool, spec_server, baseline_server,
                                                             monkeypatch):
    """The launch check for real: the table [[1, 2, 4], [3, 256, 0]] is served by a vLLM started with it (not the
    pooled static k=4 server) and measured at the levels either side of its edge, paired against the static k=4
    configuration (the pooled k=4 server, reused as the reference)."""
    monkeypatch.setenv(POOL_ENV, server_pool.address)
    pool_log = server_pool.run_dir / "artifacts" / "servers.jsonl"
    seen = len(read_jsonl(pool_log))
    run = RunDir(tmp_path / "run")
    p = LoadParams(run_dir=str(run.path), concurrencies=[1, 3], requests_per_level=3, warmup_requests=1, max_tokens=24,
                   temperature=0.0, find_saturation=False, lossless_check=False, min_round_pairs=2,
                   level_time_budget_s=8, level_decision_budget_s=0, candidates=["off"])
    own = candidates.Candidate(method="draft_model", k=4)
    rows = [candidates.CandidateLevel(level=1, speedup=1.5, ci_low=1.2, ci_high=1.8),
            candidates.CandidateLevel(level=3, speedup=1.3, ci_low=1.1, ci_high=1.5)]
    res = candidates.CandidatesResult(levels=[1, 3], winner="draft_model:4", winner_method="draft_model", winner_k=4,
                                      k_table=[[1, 2, 4], [3, 256, 0]], candidates=[candidates.CandidateResult(
                                          candidate=own, label=own.label, primary=True, levels=rows)])
    lc = candidates.check_launch(p, run, res, progress=False)
    assert lc.table == [[1, 2, 4], [3, 256, 0]] and lc.label == "draft_model:4" and lc.expected == {1: 1.5, 3: 1.3}
    assert [r.level for r in lc.levels] == [1, 3] and all(r.rounds >= 2 for r in lc.levels)
    assert lc.status in ("held", "slower", "failed") and "[[1, 2, 4], [3, 256, 0]]" in lc.finding
    assert (run.path / lc.run_dir / "artifacts" / "50_load.json").is_file()
    events = read_jsonl(pool_log)[seen:]
    (table,) = [e for e in events if e["event"] == "start"]  # the table's own server; the static k=4 one is pooled
    assert "num_speculative_tokens_per_batch_size" in table["config"], json.dumps(events)
    reference = [e for e in events if e["event"] == "reuse" and "draft_model k=4" in e["config"]
                 and "per_batch_size" not in e["config"]]
    assert reference and reference[0]["name"] != table["name"], json.dumps(events)
