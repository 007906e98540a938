"""The load test resumes through the phase log: a level cut off by a dead server is measured again,
levels done with the same parameters are reused, other parameters reuse nothing (issue 6, issue 12:
one resume mechanism). Fake servers in real processes (fault injection only)."""

from __future__ import annotations

import subprocess

import pytest

from playbook.helpers.artifacts import PhaseLog, RunDir
from playbook.helpers.loadtest import NOT_IN_FINGERPRINT, REQUESTS_JSONL, STEP, run_load_test
from playbook.helpers.params import LoadParams
from tests.support import free_port as _free_port
from tests.support import start_fake, stop_fake


@pytest.fixture
def servers():
    procs: dict[str, subprocess.Popen] = {}
    yield procs
    for proc in procs.values():
        stop_fake(proc)


def _c1(run: RunDir) -> list[dict]:
    return [r for r in run.read_jsonl(REQUESTS_JSONL) if "@c1" in r["phase"]]


def test_a_killed_level_is_measured_again_and_done_levels_are_reused(servers, tmp_path):
    ports = {"baseline": _free_port(), "spec": _free_port()}
    for cfg, port in ports.items():
        servers[cfg] = start_fake(port)[0]
    p = LoadParams(mode="external", spec_url=f"http://127.0.0.1:{ports['spec']}",
                   baseline_url=f"http://127.0.0.1:{ports['baseline']}", concurrencies=[1, 2], requests_per_level=3,
                   warmup_requests=1, find_saturation=False, lossless_check=False, max_tokens=9, min_round_pairs=2,
                   level_time_budget_s=0.1, level_decision_budget_s=0)
    run = RunDir(tmp_path / "run")

    def kill_baseline_after_level_1(st):
        if st.level == 1 and st.config == "spec":
            stop_fake(servers.pop("baseline"))

    first = run_load_test(p, run, progress=False, on_level=kill_baseline_after_level_1)
    assert first.status == "partial" and [sp.level for sp in first.speedup] == [1]
    assert first.speedup[0].design == "paired" and first.speedup[0].rounds == 2
    assert any(m.startswith("baseline@2") and "refused" in m for m in first.missing_levels), first.missing_levels
    fp = p.fingerprint(NOT_IN_FINGERPRINT)
    log = PhaseLog(run)
    assert log.done(STEP, "paired@c1/structured", fp) and not log.done(STEP, "paired@c2/structured", fp)
    c1_before = _c1(run)
    assert len([r for r in c1_before if not r["warmup"]]) == 2 * 2 * 3  # 2 pairs x 2 configs x 3 requests

    servers["baseline"] = start_fake(ports["baseline"])[0]
    second = run_load_test(p, run, progress=False)
    assert second.status == "ok" and [sp.level for sp in second.speedup] == [1, 2]
    assert all(lv.resumed == (lv.level == 1) for lv in second.levels)
    assert _c1(run) == c1_before  # the done level was not measured again
    records = run.read_jsonl(REQUESTS_JSONL)
    assert len({r["id"] for r in records}) == len(records)
    assert second.speedup[0].speedup == first.speedup[0].speedup  # recomputed from the records read back

    third = run_load_test(p.model_copy(update={"max_tokens": 5}), run, progress=False)  # other parameters
    assert not any(lv.resumed for lv in third.levels)


def test_phase_log_latest_entry_wins_and_fingerprints_separate(tmp_path):
    run = RunDir(tmp_path / "run")
    log = PhaseLog(run)
    log.record(STEP, "paired@c1/x", "fp", "ok", {"n": 1}, attempt="a1")
    assert log.done(STEP, "paired@c1/x", "fp") and log.result(STEP, "paired@c1/x", "fp") == {"n": 1}
    assert not log.done(STEP, "paired@c1/x", "other") and not log.done("40_sweep", "paired@c1/x", "fp")
    log.record(STEP, "paired@c1/x", "fp", "failed", {"n": 2})
    again = PhaseLog(run)  # read back from disk
    assert not again.done(STEP, "paired@c1/x", "fp") and again.result(STEP, "paired@c1/x", "fp") is None
    again.record(STEP, "paired@c1/x", "fp", "ok", {"n": 3})
    assert PhaseLog(run).result(STEP, "paired@c1/x", "fp") == {"n": 3}


def test_the_fingerprint_ignores_the_level_list_but_not_what_a_level_measures(tmp_path):
    base = LoadParams(run_dir=str(tmp_path))
    fp = base.fingerprint(NOT_IN_FINGERPRINT)
    assert fp == base.model_copy(update={"concurrencies": [1, 2, 8]}).fingerprint(NOT_IN_FINGERPRINT)
    assert fp != base.model_copy(update={"requests_per_level": 3}).fingerprint(NOT_IN_FINGERPRINT)
    assert fp != base.model_copy(update={"temperature": 0.5}).fingerprint(NOT_IN_FINGERPRINT)
