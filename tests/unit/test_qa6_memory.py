"""Memory budget against published vLLM start-up logs (QA round 6)."""

from __future__ import annotations

import json

import pytest

from playbook.cli import main
from playbook.helpers import models


@pytest.mark.parametrize("name,precision", [
    ("deepseek-ai/DeepSeek-R1", "fp8"), ("DeepSeek-V3", "fp8"), ("moonshotai/Kimi-K2-Instruct", "fp8"),
    ("moonshotai/Kimi-K2-Thinking", "int4"), ("moonshotai/Kimi-K2.6", "int4"), ("nvidia/Kimi-K2.5-NVFP4", "int4"),
])
def test_models_published_only_quantized_are_budgeted_at_their_own_precision(name, precision):
    assert models.resolve(name).quantization == precision


def test_deepseek_r1_fits_eight_h200s_as_it_is_deployed(capsys):
    assert main(["memory", "--target", "deepseek-ai/DeepSeek-R1", "--gpu", "H200", "--tp", "8", "--num-gpus", "8",
                 "--max-model-len", "32768", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fits"] and out["target_quant"] == "fp8" and 600 < out["target_weights_gib"] < 660
