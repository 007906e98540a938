"""Notebooks 10, 20 and 30 run headless (papermill) on the embedded defaults and write their results."""

from __future__ import annotations

from pathlib import Path

import papermill
import pytest

from playbook.helpers.schemas.drafts import DraftsResult
from playbook.helpers.schemas.memory import MemoryResult
from playbook.helpers.schemas.quantization import QuantizationResult

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.mark.parametrize("nb,artifact,model,params", [
    ("10_drafts", "10_drafts.json", DraftsResult, {}),
    ("20_memory", "20_memory.json", MemoryResult, {}),
    ("30_quantization", "30_quantization.json", QuantizationResult, {"measure_acceptance": False}),
])
def test_notebook_runs_on_embedded_defaults(fake_pair, tmp_path, nb, artifact, model, params):
    run_dir = tmp_path / "run"
    papermill.execute_notebook(str(NOTEBOOKS / f"{nb}.ipynb"), str(tmp_path / "out.ipynb"), cwd=str(NOTEBOOKS),
                               parameters={"run_dir": str(run_dir), **params}, progress_bar=False, kernel_name="python3")
    result = model.model_validate_json((run_dir / "artifacts" / artifact).read_text())
    assert result.finding
    if nb == "20_memory":
        assert result.budget.kv_cache_tokens == 931_968 and result.budget.fits
        assert (run_dir / "artifacts" / "20_memory_budget.png").stat().st_size > 1000
    if nb == "10_drafts":
        assert result.best == "embedded-draft" and result.candidates[0].same_tokenizer
    if nb == "30_quantization":
        assert result.matrix and result.recommended == "bf16/bf16" and not result.acceptance
