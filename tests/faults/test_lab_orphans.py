"""Issue 17, point 4: `playbook lab` leaves no JupyterLab (nor kernel) behind, however it ends: its
stdout reader gone before SIGTERM (``playbook lab | tee``, Ctrl-C), or SIGKILL (the watchdog of
helpers/reaper.py). The scenarios live in tests/support/lab_scenarios.py (benchmarks/faults too)."""

from __future__ import annotations

import pytest

pytest.importorskip("jupyterlab")

from tests.support.lab_scenarios import LAB_SCENARIOS  # noqa: E402


@pytest.mark.parametrize("name", list(LAB_SCENARIOS))
def test_lab_leaves_no_jupyterlab_behind(name):
    out = LAB_SCENARIOS[name]()
    assert out.survived, out.detail
    assert out.orphans == 0, f"{name}: {out.orphans} processes left behind ({out.detail})"
