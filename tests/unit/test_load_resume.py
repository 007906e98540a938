"""The load test keeps what it measured when a server is missing, and a re-run measures only what is
missing (issue 6: resume), against fake servers in real processes (fault injection only)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from playbook.helpers.artifacts import RunDir
from playbook.helpers.loadtest import LEVELS_JSONL, REQUESTS_JSONL, run_load_test
from playbook.helpers.params import LoadParams

FAKE = Path(__file__).with_name("fake_openai.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(FAKE), str(port)], stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout.readline().strip() == b"ready"
    return proc


@pytest.fixture
def servers():
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()


def test_missing_baseline_keeps_spec_levels_and_resume_measures_only_the_rest(servers, tmp_path):
    spec_port, base_port = _free_port(), _free_port()
    servers.append(_start(spec_port))
    p = LoadParams(mode="external", spec_url=f"http://127.0.0.1:{spec_port}",
                   baseline_url=f"http://127.0.0.1:{base_port}", concurrencies=[1, 2], requests_per_level=4,
                   warmup_requests=1, find_saturation=False, lossless_check=False, max_tokens=9)
    run = RunDir(tmp_path / "run")

    first = run_load_test(p, run, progress=False)
    assert first.status == "failed" and not first.speedup
    assert any("baseline" in w and str(base_port) in w for w in first.warnings)
    assert sorted(m.split(":")[0] for m in first.missing_levels) == ["baseline@1", "baseline@2"]
    spec_records_before = [r for r in run.read_jsonl(REQUESTS_JSONL) if r["phase"].startswith("spec@")]
    assert len(spec_records_before) == 2 * (4 + 1)

    servers.append(_start(base_port))
    second = run_load_test(p, run, progress=False)
    assert second.status == "ok" and [sp.level for sp in second.speedup] == [1, 2]
    assert all(lv.resumed for lv in second.levels if lv.config == "spec")
    assert not any(lv.resumed for lv in second.levels if lv.config == "baseline")
    records = run.read_jsonl(REQUESTS_JSONL)
    assert [r for r in records if r["phase"].startswith("spec@")] == spec_records_before  # not re-measured
    assert len({r["id"] for r in records}) == len(records)  # nothing duplicated
    assert len(run.read_jsonl(LEVELS_JSONL)) == 4

    changed = p.model_copy(update={"max_tokens": 5})  # other parameters: nothing is reused
    third = run_load_test(changed, run, progress=False)
    assert not any(lv.resumed for lv in third.levels)
