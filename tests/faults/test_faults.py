"""Issue 6: each fault injected with real processes, signals and sockets (see scenarios.py), and its
outcome asserted: every check of the expected behaviour held, no record lost, no process left.

The scenarios also feed ``benchmarks/faults/run.py``. Unit tests already cover the same faults one
layer down (tests/unit/test_loadgen_faults.py, test_server_faults.py, test_sweep_faults.py,
test_load_resume.py, test_artifacts.py); these drive the playbook as a user does.
"""

from __future__ import annotations

import pytest

from tests.support import scenarios


@pytest.mark.parametrize("fault", list(scenarios.SCENARIOS), ids=lambda f: f.split()[0])
def test_fault_is_survived(fault):
    out = scenarios.SCENARIOS[fault]()
    failed = [k for k, ok in out.checks.items() if not ok]
    assert out.checks and not failed, f"{fault}: {out.detail}"
    assert out.records_lost == 0, f"{fault}: {out.records_lost} records lost"
    assert out.orphans == 0, f"{fault}: {out.orphans} processes left behind"
    assert out.survived


def test_an_outcome_with_a_failed_check_is_not_survived():
    out = scenarios.Outcome("x")
    out.check("held", True)
    out.check("broke", False)
    assert not out.finish().survived and "broke" in out.detail
    assert not scenarios.Outcome("nothing checked").finish().survived
    leaky = scenarios.Outcome("leaky", orphans=1)
    leaky.check("held", True)
    assert not leaky.finish().survived


def test_orphan_detection_sees_a_live_process(tmp_path):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", str(tmp_path)])
    try:
        assert scenarios.wait_for(lambda: proc.pid in scenarios.procs_mentioning(str(tmp_path)), 5)
    finally:
        proc.kill()
        proc.wait()
    assert scenarios.procs_mentioning(str(tmp_path)) == []
