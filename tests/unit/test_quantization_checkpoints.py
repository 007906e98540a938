"""Step 30 with the user's checkpoints: parameters, each checkpoint's own weights, the pairs and their
budgets, the server overrides, drops per temperature. The served path is tests/integration/
test_quantization_checkpoints_engine.py (real vLLM)."""

from __future__ import annotations

import json

import pytest

from playbook.helpers import quantization, steps
from playbook.helpers.errors import ParameterError
from playbook.helpers.params import QuantizationParams
from playbook.helpers.schemas.quantization import AcceptanceRow
from tests.support.checkpoints import copy_at_dtype
from tests.support.tiny_models import llama_dir


def test_checkpoint_parameters_accept_yaml_text_and_check_precisions():
    p = QuantizationParams(target_checkpoints="{int8: /m/t-w8a8}", draft_checkpoints={"fp8": "org/d-fp8"},
                           pair_urls="{int8/bf16: 'http://h:8001'}")
    assert p.target_checkpoints == {"int8": "/m/t-w8a8"} and p.draft_checkpoints == {"fp8": "org/d-fp8"}
    assert p.pair_urls == {"int8/bf16": "http://h:8001"} and p.production_temperature == 0.2
    with pytest.raises(ValueError, match="int3"):
        QuantizationParams(target_checkpoints={"int3": "/x"})


def test_temperatures_production_first_then_greedy():
    assert quantization.temperatures_for(QuantizationParams(production_temperature=0.7)) == (0.7, 0.0)
    assert quantization.temperatures_for(QuantizationParams(production_temperature=0.0)) == (0.0,)


def _w8a8(tmp_path, name="t-w8a8"):
    d = llama_dir(tmp_path, name, layers=4, hidden=128, heads=4, kv=2, extra_cfg={"quantization_config": {
        "quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {"num_bits": 8, "type": "int"}}}}})
    return d


def test_each_checkpoint_weighs_its_own_safetensors(tmp_path):
    t = llama_dir(tmp_path, "t", layers=4, hidden=128, heads=4, kv=2)
    d = llama_dir(tmp_path, "d", layers=1)
    half = _fp16_header_copy(d, tmp_path / "d-fp16")
    q = _w8a8(tmp_path)
    p = QuantizationParams(mode="managed", target_model=str(t), draft_model=str(d), gpu="H100-SXM",
                           target_checkpoints={"int8": str(q), "int4": "org/not-local-int4"},
                           draft_checkpoints={"fp16": str(half)})
    plans = quantization.checkpoint_plans_for(p, steps.budget_setup(p))
    pairs = [(c.target.precision, c.draft.precision) for c in plans]
    assert pairs[0] == ("bf16", "bf16") and plans[0].baseline and sum(c.baseline for c in plans) == 1
    assert set(pairs) == {(a, b) for a in ("bf16", "int8", "int4") for b in ("bf16", "fp16")}
    int8 = next(c for c in plans if c.target.precision == "int8")
    assert int8.target.spec.quantization == "int8" and "safetensors headers" in int8.target.weights_from
    assert int8.target_weights_gib == pytest.approx(int8.target.spec.weight_bytes_on_disk / 2**30, abs=1e-3)
    int4 = next(c for c in plans if c.target.precision == "int4")
    assert "estimated" in int4.target.weights_from and "not a local directory" in int4.target.note
    assert all(c.fits for c in plans)


def _fp16_header_copy(src, dst):
    """A weightless copy whose config says float16 (unit tests read headers only)."""
    import shutil

    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    (dst / "config.json").write_text(json.dumps({**cfg, "torch_dtype": "float16"}))
    return dst


def test_a_checkpoint_whose_config_disagrees_is_named(tmp_path):
    t = llama_dir(tmp_path, "t", layers=4, hidden=128, heads=4, kv=2)
    q = _w8a8(tmp_path)
    p = QuantizationParams(mode="managed", target_model=str(t), draft_model="", method="ngram", gpu="H100-SXM",
                           target_checkpoints={"int4": str(q)})
    plans = quantization.checkpoint_plans_for(p, steps.budget_setup(p))
    assert [(c.target.precision, c.draft) for c in plans] == [("bf16", None), ("int4", None)]
    assert "holds int8 weights" in plans[1].target.note


def test_a_pair_that_does_not_fit_is_not_served(tmp_path, monkeypatch):
    t = llama_dir(tmp_path, "t", layers=4, hidden=128, heads=4, kv=2)
    p = QuantizationParams(mode="managed", target_model=str(t), draft_model="", method="ngram", gpu="H100-SXM",
                           gpu_memory_gib=0.001, target_checkpoints={"int8": str(_w8a8(tmp_path))})
    plans = quantization.checkpoint_plans_for(p, steps.budget_setup(p))
    assert not any(c.fits for c in plans)
    monkeypatch.setattr(quantization, "measure_at", lambda *a, **k: pytest.fail("a pair that does not fit was served"))
    rows = quantization.measure_plans(p, None, plans, 2, (0.0,))
    assert all(not r.servable and r.note.startswith("does not fit") for r in rows)


def test_overrides_serve_the_checkpoints(tmp_path):
    t = llama_dir(tmp_path, "t", layers=4, hidden=128, heads=4, kv=2)
    d = llama_dir(tmp_path, "d", layers=1)
    half_t, half_d = _fp16_header_copy(t, tmp_path / "t16"), _fp16_header_copy(d, tmp_path / "d16")
    p = QuantizationParams(mode="managed", target_model=str(t), draft_model=str(d), gpu="H100-SXM",
                           target_checkpoints={"fp16": str(half_t), "int8": str(_w8a8(tmp_path))},
                           draft_checkpoints={"fp16": str(half_d)})
    plans = {(c.target.precision, c.draft.precision): c for c in quantization.checkpoint_plans_for(
        p, steps.budget_setup(p))}
    base = {"method": "draft_model", "model": str(d), "num_speculative_tokens": 4}
    assert quantization.plan_overrides(plans["bf16", "bf16"], base) == {"dtype": "bfloat16"}
    o = quantization.plan_overrides(plans["fp16", "fp16"], base)
    assert o["model"] == str(half_t.resolve()) and o["dtype"] == "float16"
    assert o["speculative_config"] == {**base, "model": str(half_d.resolve())}
    o = quantization.plan_overrides(plans["int8", "bf16"], base)
    assert "dtype" not in o and o["model"].endswith("t-w8a8") and "speculative_config" not in o


def test_drops_are_per_temperature_against_the_baseline_row():
    def row(t, d, temp, acc, base=False):
        return AcceptanceRow(target_quant=t, draft_quant=d, servable=True, measured=True, temperature=temp,
                             acceptance_rate=acc, baseline=base)
    rows = [row("bf16", "bf16", 0.7, 0.60, True), row("bf16", "bf16", 0.0, 0.80, True),
            row("int4", "bf16", 0.7, 0.50), row("int4", "bf16", 0.0, 0.78)]
    assert quantization.acceptance_drop(rows, 5.0) == 0.60
    assert rows[2].drop_pp == 10.0 and rows[2].flagged  # at the production temperature: flagged
    assert rows[3].drop_pp == 2.0 and not rows[3].flagged  # greedy alone would have hidden it


def test_pair_urls_are_checked():
    p = QuantizationParams(mode="external", spec_url="http://h:1", pair_urls={"int9/bf16": "http://h:2"})
    with pytest.raises(ParameterError, match="int9/bf16"):
        quantization.measure_pair_urls(p, None, p.pair_urls, 2, (0.0,))


def test_copy_at_dtype_casts_the_weights(tmp_path):
    from playbook.helpers import models
    from playbook.helpers.embedded import tiny_pair

    pair = tiny_pair()
    half = models.from_dir(copy_at_dtype(pair.draft, tmp_path / "d16", "float16"))
    assert half.dtype == "float16" and quantization.checkpoint_precision(half) == "fp16"
    assert half.exact_params == models.from_dir(pair.draft).exact_params


def test_finding_names_each_served_pair_once_and_the_checkpoints(tmp_path):
    from playbook.helpers.schemas.quantization import QuantizationResult

    t = llama_dir(tmp_path, "t", layers=4, hidden=128, heads=4, kv=2)
    p = QuantizationParams(mode="managed", target_model=str(t), draft_model="", method="ngram", gpu="H100-SXM",
                           target_checkpoints={"int8": str(_w8a8(tmp_path))})
    s = steps.budget_setup(p)
    from playbook.helpers import memory

    result = QuantizationResult(matrix=[memory.precision_row(b) for b in memory.matrix_budgets(
        s.target, s.draft, s.gpu, **s.kwargs)], checkpoints=quantization.checkpoint_plans_for(p, s))
    result.acceptance = [AcceptanceRow(target_quant="int8", draft_quant="", servable=True, measured=True,
                                       temperature=temp, acceptance_rate=0.5) for temp in (0.2, 0.0)]
    _, _, finding = quantization.recommend(result)
    assert "served here: int8/;" in finding and "your checkpoints: 2/2 pairs fit" in finding
    assert "at T=0.2: 0.50" in finding and "at T=0: 0.50" in finding
