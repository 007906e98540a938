"""Issue 14: faults of the run's server pool, injected into a real `playbook run` (see tests/support/pool_scenarios.py):
every check held and no process was left behind."""

from __future__ import annotations

import pytest

from tests.support import pool_scenarios


@pytest.mark.parametrize("fault", list(pool_scenarios.SCENARIOS), ids=lambda f: f.split()[0])
def test_pool_fault_is_survived(fault):
    out = pool_scenarios.SCENARIOS[fault]()
    failed = [k for k, ok in out.checks.items() if not ok]
    assert out.checks and not failed, f"{fault}: {out.detail}"
    assert out.orphans == 0, f"{fault}: {out.orphans} processes left behind"
    assert out.survived
