"""Fault injection against a fake streaming server in a real process: the load generator records
every fault, counts it, keeps going, and keeps what completed when the server dies."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from playbook.helpers.artifacts import read_jsonl
from playbook.helpers.loadgen import (
    LoadShape,
    Target,
    arrival_offsets,
    client_session,
    run_phase,
    run_phase_sync,
    send_request,
)
from playbook.helpers.schemas.loadgen import RequestRecord
from playbook.helpers.schemas.workloads import PromptItem
from tests.support import free_port as _free_port
from tests.support import start_fake, stop_fake


@pytest.fixture
def fake():
    proc, url = start_fake()
    yield proc, url
    stop_fake(proc)


def items(*modes: str) -> list[PromptItem]:
    return [PromptItem(id=f"p{i}", workload="fake", prompt=f"{m} please", max_tokens=9) for i, m in enumerate(modes)]


def test_ok_stream_counts_tokens_from_server_and_divides_chunk_gaps(fake, tmp_path):
    _, url = fake
    res = run_phase_sync(Target(url, "m"), items("ok", "ok"), LoadShape("concurrency", concurrency=1),
                         jsonl=tmp_path / "r.jsonl", progress=False)
    assert res.summary.ok == 2
    for r in res.records:
        RequestRecord.model_validate(r)
        assert r["usage_from_server"] and r["output_tokens"] == 9 and r["chunks"] == 3
        # two chunk gaps after the first chunk, each spread over its 3 tokens
        assert len(r["itl_ms"]) == 6
        assert r["itl_ms"][0] == r["itl_ms"][1] == r["itl_ms"][2]
        assert r["tpot_ms"] == pytest.approx((r["e2e_ms"] - r["ttft_ms"]) / 8)
        assert sum(r["itl_ms"]) <= r["e2e_ms"] - r["ttft_ms"]
        assert r["spec"]["draft_acceptance_rate"] == 0.5
    assert [x["id"] for x in read_jsonl(tmp_path / "r.jsonl")] == [r["id"] for r in res.records]


def test_malformed_lines_are_counted_never_raised(fake):
    _, url = fake
    res = run_phase_sync(Target(url, "m"), items("malformed"), LoadShape("concurrency", concurrency=1), progress=False)
    (r,) = res.records
    assert r["status"] == "ok" and r["output_tokens"] == 9
    assert r["malformed_lines"] == 6  # per chunk: one bad JSON payload, one non-SSE line
    assert res.summary.malformed_lines == 6


def test_429_503_and_resets_are_recorded_counted_and_the_run_goes_on(fake, tmp_path):
    _, url = fake
    modes = ["http429", "http503", "reset", "ok", "http429", "ok"]
    res = run_phase_sync(Target(url, "m"), items(*modes), LoadShape("concurrency", concurrency=2),
                         jsonl=tmp_path / "r.jsonl", progress=False)
    by_prompt = {r["prompt_id"]: r for r in res.records}
    assert len(res.records) == len(modes)
    assert by_prompt["p0"]["http_status"] == 429 and by_prompt["p0"]["status"] == "http_error"
    assert "fake 429" in by_prompt["p0"]["error"]
    assert by_prompt["p1"]["http_status"] == 503
    assert by_prompt["p2"]["status"] == "connection_error"
    assert res.summary.status == "ok" and res.summary.ok == 2
    assert res.summary.errors_by_status == {"http_error": 3, "connection_error": 1}
    assert len(read_jsonl(tmp_path / "r.jsonl")) == len(modes)


def test_a_stalled_stream_ends_at_its_timeout_and_is_recorded(fake):
    _, url = fake
    res = run_phase_sync(Target(url, "m"), items("stall", "ok"), LoadShape("concurrency", concurrency=2),
                         timeout_s=1.0, progress=False)
    stalled = next(r for r in res.records if r["prompt_id"] == "p0")
    assert stalled["status"] == "timeout" and "1 s" in stalled["error"]
    assert stalled["ttft_ms"] is not None  # the first chunk did arrive
    assert next(r for r in res.records if r["prompt_id"] == "p1")["status"] == "ok"


def test_server_killed_mid_phase_keeps_completed_records_and_marks_the_phase_failed(fake, tmp_path):
    proc, url = fake
    jsonl = tmp_path / "r.jsonl"

    def kill_after_some_records():
        deadline = time.time() + 30
        while time.time() < deadline and len(read_jsonl(jsonl)) < 3:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_after_some_records)
    killer.start()
    res = run_phase_sync(Target(url, "m"), items(*["slow"] * 40), LoadShape("concurrency", concurrency=2),
                         jsonl=jsonl, progress=False)
    killer.join()
    assert res.summary.status == "failed"
    assert "connection refused" in res.summary.reason and url in res.summary.reason
    ok = [r for r in res.records if r["status"] == "ok"]
    assert len(ok) >= 3
    assert len(res.records) < 40  # the phase stopped instead of hammering a dead server
    on_disk = read_jsonl(jsonl)
    assert {r["id"] for r in on_disk} == {r["id"] for r in res.records}


def test_warmup_is_excluded_and_the_request_limit_holds(fake, tmp_path):
    _, url = fake
    res = run_phase_sync(Target(url, "m"), items(*["ok"] * 7), LoadShape("concurrency", concurrency=3), warmup=2,
                         jsonl=tmp_path / "r.jsonl", progress=False)
    assert len(res.records) == 5 and len(res.warmup_records) == 2
    assert not any(r["warmup"] for r in res.records) and all(r["warmup"] for r in res.warmup_records)
    assert sum(r["warmup"] for r in read_jsonl(tmp_path / "r.jsonl")) == 2


def test_open_loop_follows_the_arrival_schedule(fake):
    _, url = fake
    shape = LoadShape("poisson", rate=50)
    res = run_phase_sync(Target(url, "m"), items(*["ok"] * 10), shape, seed=3, progress=False)
    expected = arrival_offsets(shape, 10, seed=3)
    assert sorted(r["scheduled_s"] for r in res.records) == pytest.approx(list(expected))
    assert all(r["sent_s"] >= r["scheduled_s"] for r in res.records)


def test_runs_inside_a_running_event_loop(fake):
    """Jupyter runs cells inside an event loop: the sync entry point must still work there."""
    _, url = fake

    async def cell():
        return run_phase_sync(Target(url, "m"), items("ok"), LoadShape("concurrency", concurrency=1), progress=False)

    res = asyncio.run(cell())
    assert res.summary.ok == 1


def test_async_entry_point(fake):
    _, url = fake
    res = asyncio.run(run_phase(Target(url, "m"), items("ok", "ok"), LoadShape("constant", rate=100), progress=False))
    assert res.summary.ok == 2


def test_send_request_records_one_request_on_the_callers_session(fake):
    """One request on a kept-alive session (what a per-request comparison needs): the same record a
    phase writes; a refused connection is a record, not an exception."""
    _, url = fake

    async def two():
        async with client_session() as session:
            return [await send_request(session, Target(url, "m"), it) for it in items("ok", "ok")]

    recs = asyncio.run(two())
    for r in recs:
        RequestRecord.model_validate(r)
        assert r["status"] == "ok" and r["output_tokens"] == 9 and r["tpot_ms"] > 0
    assert recs[0]["id"] != recs[1]["id"]

    async def refused():
        async with client_session() as session:
            return await send_request(session, Target(f"http://127.0.0.1:{_free_port()}", "m"), items("ok")[0])

    assert asyncio.run(refused())["status"] == "refused"


def test_refused_from_the_start_fails_the_phase_with_a_clear_reason():
    url = f"http://127.0.0.1:{_free_port()}"
    res = run_phase_sync(Target(url, "m"), items("ok", "ok", "ok"), LoadShape("concurrency", concurrency=1),
                         progress=False)
    assert res.summary.status == "failed" and url in res.summary.reason
    assert res.records[0]["status"] == "refused"
    assert len(res.records) == 1


def test_arrival_processes_are_seeded_and_have_the_right_rate():
    for kind in ("constant", "poisson", "gamma"):
        shape = LoadShape(kind, rate=4.0, burstiness=0.5)
        a = arrival_offsets(shape, 4000, seed=1)
        assert list(a) == list(arrival_offsets(shape, 4000, seed=1))
        assert a[0] == 0 and (a[1:] >= a[:-1]).all()
        assert (len(a) - 1) / a[-1] == pytest.approx(4.0, rel=0.1)
    gaps_p = arrival_offsets(LoadShape("poisson", rate=4), 4000, 1)
    gaps_g = arrival_offsets(LoadShape("gamma", rate=4, burstiness=0.25), 4000, 1)
    import numpy as np
    assert np.diff(gaps_g).std() > np.diff(gaps_p).std()  # burstier
