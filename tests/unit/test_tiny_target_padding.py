"""The shipped target is the trained model with its MLP widened by zeros: heavier to serve, the same outputs."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open

from helpers.embedded import tiny_pair
from scripts.pad_tiny_target import PADDED_INTERMEDIATE, TRAINED_KEY, pad_mlp


def _weights(model_dir):
    with safe_open(str(model_dir / "model.safetensors"), "pt") as f:
        return dict(f.metadata() or {}), {name: f.get_tensor(name) for name in f.keys()}


def test_shipped_target_is_padded_with_exact_zeros():
    target = tiny_pair().target
    metadata, tensors = _weights(target)
    trained = int(metadata[TRAINED_KEY])
    assert json.loads((target / "config.json").read_text())["intermediate_size"] == PADDED_INTERMEDIATE > trained
    padded = [name for name in tensors if name.endswith("_proj.weight") and "mlp" in name]
    assert len(padded) == 3 * 4  # gate, up, down in each of the 4 layers
    for name in padded:
        t = tensors[name]
        live, zeros = (t[:, :trained], t[:, trained:]) if name.endswith("down_proj.weight") else (t[:trained], t[trained:])
        assert zeros.numel() and not zeros.any(), name
        assert live.abs().sum() > 0, name  # the trained part is still there


def test_padded_model_gives_the_trained_models_logits(tmp_path):
    transformers = pytest.importorskip("transformers")
    target = tiny_pair().target
    metadata, tensors = _weights(target)
    trained = int(metadata[TRAINED_KEY])
    config = json.loads((target / "config.json").read_text())
    narrow = {name: (t[:, :trained] if name.endswith("down_proj.weight") else
                     t[:trained] if name.endswith(("gate_proj.weight", "up_proj.weight")) else t)
              for name, t in tensors.items()}
    ids = torch.tensor([[0, 17, 230, 41, 999, 5, 77, 1500]])
    logits = {}
    for label, width, state in (("served", config["intermediate_size"], tensors), ("trained", trained, narrow)):
        cfg = transformers.LlamaConfig(**{**config, "intermediate_size": width})
        model = transformers.LlamaForCausalLM(cfg).to(torch.float32).eval()
        model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
        with torch.inference_mode():
            logits[label] = model(ids).logits
    torch.testing.assert_close(logits["served"], logits["trained"], rtol=1e-5, atol=1e-5)


def test_padding_is_idempotent_and_refuses_to_narrow(tmp_path):
    copy = tmp_path / "t"
    shutil.copytree(tiny_pair().target, copy)
    before = _weights(copy)[1]
    assert pad_mlp(copy) == int(_weights(copy)[0][TRAINED_KEY])  # already at the default width: no change
    after = _weights(copy)[1]
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(SystemExit, match="cannot narrow"):
        pad_mlp(copy, 1024)
