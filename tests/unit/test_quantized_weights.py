"""A pre-quantized checkpoint's weights come from its own safetensors headers (or the index's
total_size), not from parameters x bytes per parameter (SPEC 4; vLLM PR 12569: a w8a8 70B loads 67.7 GiB)."""

import json
import struct

import pytest

from playbook.helpers import gpus, memory, models
from tests.support.tiny_models import config_dir

CFG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
       "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 1000,
       "quantization_config": {"quant_method": "compressed-tensors",
                               "config_groups": {"group_0": {"weights": {"num_bits": 8, "type": "int"}}}}}


def _header_only_safetensors(path, tensors):
    """A safetensors file holding just its JSON header (the budget reads nothing else)."""
    header, offset = {}, 0
    for name, (dtype, shape, nbytes) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob)


@pytest.fixture
def w8a8_dir(tmp_path):
    d = config_dir(tmp_path, "tiny-w8a8", CFG)
    _header_only_safetensors(d / "model.safetensors", {
        "model.embed_tokens.weight": ("BF16", [1000, 256], 512000),
        "model.layers.0.mlp.down_proj.weight": ("I8", [256, 512], 131072),
        "model.layers.0.mlp.down_proj.weight_scale": ("BF16", [256, 1], 512),
        "lm_head.weight": ("BF16", [1000, 256], 512000),
    })
    return d


def test_prequantized_weights_from_headers(w8a8_dir):
    spec = models.resolve(str(w8a8_dir))
    assert spec.quantization == "int8"
    assert spec.weight_bytes_on_disk == 512000 + 131072 + 512 + 512000
    b = memory.budget(spec, None, gpus.get_gpu("H100-SXM"), method="ngram", target_quant="int8")
    assert b.target_weights_gib * 2**30 == pytest.approx(spec.weight_bytes_on_disk, abs=1100)  # GiB kept to 6 decimals


def test_index_total_size_when_shards_absent(tmp_path):
    d = config_dir(tmp_path, "index-only", CFG, index={"metadata": {"total_size": 72_717_000_000}, "weight_map": {}})
    spec = models.resolve(str(d))
    assert spec.weight_bytes_on_disk == 72_717_000_000  # 67.72 GiB, what vLLM logged for the w8a8 70B
    b = memory.budget(spec, None, gpus.get_gpu("H100-SXM"), method="ngram", target_quant="int8")
    assert b.target_weights_gib == pytest.approx(72_717_000_000 / 2**30, rel=1e-6)
