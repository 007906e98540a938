"""Two candidate configurations at one level on the embedded pair, for real (three server starts: one
baseline shared by both candidates through the step's own pool, draft_model k=4 and n-gram k=2 with a
lookup window), then the same step again, resumed: nothing is measured and no server starts."""

from __future__ import annotations

import json

import pytest

from playbook.helpers import candidates, steps
from playbook.helpers.artifacts import RunDir, read_jsonl
from playbook.helpers.params import LoadParams

pytestmark = pytest.mark.engine


def test_two_candidates_at_one_level_share_the_baseline_and_resume(tmp_path):
    run = RunDir(tmp_path / "run")
    p = LoadParams(run_dir=str(run.path), concurrencies=[2], requests_per_level=4, warmup_requests=1, max_tokens=24,
                   temperature=0.0, find_saturation=False, lossless_check=False, min_round_pairs=2,
                   level_time_budget_s=10, candidates=["ngram:2:1-3"])
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
    events = read_jsonl(run.artifacts / "servers.jsonl")
    starts = [e for e in events if e["event"] == "start"]
    assert sorted(e["role"] for e in starts) == ["baseline", "spec", "spec"]  # the baseline started once
    ngram = next(e for e in starts if "ngram k=2" in e["config"])  # the candidate's own window, not the defaults
    assert '"prompt_lookup_min":1' in ngram["config"] and '"prompt_lookup_max":3' in ngram["config"]
    before = len(events)
    steps.load(p, run, progress=False)  # resumed: every (candidate, level) is in its phase log
    again = read_jsonl(run.artifacts / "servers.jsonl")[before:]
    assert not [e for e in again if e["event"] == "start"], json.dumps(again)
    assert candidates.read(run).candidates[1].levels[0].speedup == comp.candidates[1].levels[0].speedup
