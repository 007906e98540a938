"""A resumed sweep reuses the points an interrupted run completed with the same parameters and
measures only the rest; with nothing left it starts no server. Fake server: fault injection only."""

from __future__ import annotations

import pytest

from playbook.helpers.artifacts import PHASES_JSONL, RunDir
from playbook.helpers.loadgen import Target
from playbook.helpers.params import SweepParams
from playbook.helpers.sweep import NOT_IN_FINGERPRINT, REQUESTS_JSONL, run_sweep, run_sweep_step
from tests.support import start_fake, stop_fake


@pytest.fixture
def live_server():
    proc, url = start_fake(FAKE_METRICS="live")
    yield url
    stop_fake(proc)


def _phases(run: RunDir) -> list[str]:
    return [r["phase"] for r in run.read_jsonl(REQUESTS_JSONL)]


def test_resume_measures_only_the_missing_points(tmp_path, live_server):
    run = RunDir(tmp_path / "run")
    first = run_sweep(Target(live_server, "m"), ["structured"], [0.0], requests_per_point=3, max_tokens=9,
                      run=run, progress=False, fingerprint="fp1")
    assert first.status == "ok" and first.resumed_points == 0
    assert len(run.read_jsonl(PHASES_JSONL)) == 1

    again = run_sweep(Target(live_server, "m"), ["structured"], [0.0, 0.8], requests_per_point=3, max_tokens=9,
                      run=run, progress=False, fingerprint="fp1")
    assert again.resumed_points == 1 and again.status == "ok"
    assert _phases(run).count("sweep:structured@T0") == 3  # not measured twice
    assert _phases(run).count("sweep:structured@T0.8") == 3
    reused = again.points[0]
    assert reused.temperature == 0.0 and reused.acceptance_rate == first.points[0].acceptance_rate
    pooled_t0 = again.temperatures[0]
    assert pooled_t0.requests == 3  # the pooled point is built from the reused point's records, read back


def test_a_different_fingerprint_is_measured_again(tmp_path, live_server):
    run = RunDir(tmp_path / "run")
    run_sweep(Target(live_server, "m"), ["structured"], [0.0], 2, 9, run=run, progress=False, fingerprint="a")
    res = run_sweep(Target(live_server, "m"), ["structured"], [0.0], 2, 9, run=run, progress=False, fingerprint="b")
    assert res.resumed_points == 0 and _phases(run).count("sweep:structured@T0") == 4


def test_nothing_left_to_measure_starts_no_server(tmp_path, live_server):
    run = RunDir(tmp_path / "run")
    run_sweep(Target(live_server, "m"), ["structured", "code"], [0.0], 2, 9, run=run, progress=False,
              fingerprint="fp")

    def must_not_start():
        raise AssertionError("the server was started although every point was already measured")

    res = run_sweep(must_not_start, ["structured", "code"], [0.0], 2, 9, run=run, progress=False, fingerprint="fp")
    assert res.resumed_points == 2 and res.status == "ok" and res.production_acceptance is not None


def test_an_incomplete_point_is_not_reused(tmp_path, live_server):
    run = RunDir(tmp_path / "run")
    run_sweep(Target(live_server, "m"), ["structured"], [0.0], 2, 9, run=run, progress=False, fingerprint="fp")
    rows = run.read_jsonl(PHASES_JSONL)
    rows[0]["status"] = "incomplete"  # e.g. the server restarted during the point (counter reset)
    run.artifact(PHASES_JSONL).write_text("".join(__import__("json").dumps(r) + "\n" for r in rows))
    res = run_sweep(Target(live_server, "m"), ["structured"], [0.0], 2, 9, run=run, progress=False, fingerprint="fp")
    assert res.resumed_points == 0


def test_fingerprint_ignores_the_temperature_list_but_not_what_a_point_measures(tmp_path):
    base = SweepParams(run_dir=str(tmp_path))
    def fp(p):
        return p.fingerprint(NOT_IN_FINGERPRINT)

    assert fp(base) == fp(base.model_copy(update={"temperatures": [0.0], "workloads": ["code"]}))
    assert fp(base) != fp(base.model_copy(update={"requests_per_point": 3}))
    assert fp(base) != fp(base.model_copy(update={"num_speculative_tokens": 2}))


def test_the_step_resumes_against_an_external_server(tmp_path, live_server):
    run = RunDir(tmp_path / "run")
    p = SweepParams(run_dir=str(run.path), mode="external", spec_url=live_server, served_model_name="m",
                    workloads=["structured"], temperatures=[0.0, 0.8], requests_per_point=2, max_tokens=9)
    first = run_sweep_step(p, run, progress=False)
    again = run_sweep_step(p, run, progress=False)
    assert first.resumed_points == 0 and again.resumed_points == 2
    assert len(run.read_jsonl(REQUESTS_JSONL)) == 4
