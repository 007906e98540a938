"""Quantization formats the budget reads (qa3 P10): bitsandbytes and ModelOpt checkpoints at their weights'
precision, an unknown method said (never silently bf16), format names for --precision, and which precision a
pre-quantized checkpoint is predicted at when --precision differs."""

from __future__ import annotations

import json

import pytest

from playbook.cli import main
from playbook.helpers import gpus, memory, models, quantization
from tests.support.tiny_models import config_dir

LLAMA_8B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
            "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
            "vocab_size": 128256, "max_position_embeddings": 131072, "torch_dtype": "bfloat16"}


def _dir(tmp_path, name: str, qc: dict | None = None):
    """A config-only Llama-3.1-8B directory (as /tmp/qa3/models), with this quantization_config."""
    return config_dir(tmp_path, name, {**LLAMA_8B, **({"quantization_config": qc} if qc else {})})


# transformers BitsAndBytesConfig.to_dict() as saved with a 4-bit checkpoint (private and public keys)
BNB_4BIT = {"quant_method": "bitsandbytes", "_load_in_4bit": True, "_load_in_8bit": False, "load_in_4bit": True,
            "load_in_8bit": False, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": "bfloat16",
            "bnb_4bit_use_double_quant": True, "bnb_4bit_quant_storage": "uint8", "llm_int8_threshold": 6.0}


@pytest.mark.parametrize("qc, precision", [
    ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "int4"),  # the qa3 directory
    (BNB_4BIT, "int4"),
    ({"quant_method": "bitsandbytes", "load_in_8bit": True, "llm_int8_threshold": 6.0}, "int8"),
    ({"quant_method": "modelopt", "quant_algo": "NVFP4"}, "int4"),  # the qa3 directory
    ({"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16, "producer": {"name": "modelopt"},
      "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "float", "group_size": 16}}}}, "int4"),
    ({"quant_method": "modelopt", "quant_algo": "FP8", "kv_cache_scheme": {"num_bits": 8, "type": "float"}}, "fp8"),
    ({"quant_method": "modelopt", "quantization": {"quant_algo": "FP8_PB_WO"}}, "fp8"),  # hf_quant_config layout
    ({"quant_method": "modelopt", "quant_algo": "W4A8_AWQ"}, "int4"),
    ({"quant_method": "modelopt", "quant_algo": "W8A16"}, "int8"),
    ({"quant_method": "modelopt", "quant_algo": "MIXED_PRECISION",
      "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "float"}}}}, "int4"),
    ({"quant_method": "mxfp4"}, "int4"),
    ({"quant_method": "awq", "bits": 4, "group_size": 128}, "int4"),  # unchanged
    ({"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {"num_bits": 8, "type": "float"}}}}, "fp8"),
])
def test_quantization_configs_read_as_the_catalog_precision(tmp_path, qc, precision):
    assert models.resolve(str(_dir(tmp_path, "m", qc))).quantization == precision


def test_a_bitsandbytes_4bit_checkpoint_is_budgeted_as_int4_not_bf16(tmp_path):
    """qa3: `playbook memory --target ./llama8b-bnb` gave 14.96 GiB of weights, the bf16 model's."""
    h100 = gpus.get_gpu("H100-SXM")
    bnb, awq, bf16 = (models.resolve(str(_dir(tmp_path, n, qc))) for n, qc in (
        ("bnb", BNB_4BIT), ("awq", {"quant_method": "awq", "bits": 4, "group_size": 128}), ("bf16", None)))
    b = memory.budget(bnb, None, h100, method="ngram")
    assert b.target_quant == "int4" and any("pre-quantized int4 checkpoint" in w for w in b.warnings)
    assert b.target_weights_gib == memory.budget(awq, None, h100, method="ngram").target_weights_gib
    assert b.target_weights_gib < memory.budget(bf16, None, h100, method="ngram").target_weights_gib / 2


@pytest.mark.parametrize("qc, method", [
    ({"quant_method": "hqq", "nbits": 4}, "hqq"),
    ({"quant_method": "gptq", "bits": 3, "group_size": 128}, "gptq 3-bit"),
    ({"quant_method": "bitsandbytes"}, "bitsandbytes"),  # neither load_in_4bit nor load_in_8bit
])
def test_an_unknown_method_is_said_never_silently_bf16(tmp_path, qc, method):
    spec = models.resolve(str(_dir(tmp_path, "m", qc)))
    assert spec.quantization == method
    with pytest.warns(UserWarning, match=f"quantization method '{method}' .* unknown to the budget: counted as bf16"):
        assert quantization.served_precision(spec, "bf16") == "bf16"
    with pytest.warns(UserWarning, match="unknown to the budget: counted as bf16"):
        b = memory.budget(spec, None, gpus.get_gpu("H100-SXM"), method="ngram")
    assert b.target_quant == "bf16"


def test_known_precisions_raise_no_warning(tmp_path, recwarn):
    for name, qc in (("plain", None), ("awq", {"quant_method": "awq", "bits": 4})):
        quantization.served_precision(models.resolve(str(_dir(tmp_path, name, qc))), "bf16")
    assert not [w for w in recwarn if "unknown to the budget" in str(w.message)]


@pytest.mark.parametrize("name, precision", [
    ("awq", "int4"), ("GPTQ", "int4"), ("w4a16", "int4"), ("nvfp4", "int4"), ("w8a8", "int8"), ("w8a16", "int8"),
    ("fp8", "fp8"), ("bfloat16", "bf16"), ("int3", None), ("q4_k_m", None),
])
def test_format_names_read_as_the_catalog_precision(name, precision):
    assert quantization.canonical_precision(name) == precision


def _predict(capsys, *args):
    rc = main(["predict", "--gpu", "H100-SXM", "--acceptance", "0.7", "--batch-sizes", "1,8", "--json", *args])
    return rc, capsys.readouterr()


def test_predict_reads_awq_as_int4_and_says_so(capsys):
    rc, out = _predict(capsys, "--target", "Llama-3.1-8B", "--precision", "awq", "--draft-precision", "W8A8",
                       "--draft", "Llama-3.2-1B")
    assert rc == 0
    assert "--precision awq read as int4" in out.err and "--draft-precision w8a8 read as int8" in out.err
    same = main(["predict", "--gpu", "H100-SXM", "--acceptance", "0.7", "--batch-sizes", "1,8", "--json",
                 "--target", "Llama-3.1-8B", "--precision", "int4", "--draft-precision", "int8",
                 "--draft", "Llama-3.2-1B"])
    assert same == 0
    ints = json.loads(capsys.readouterr().out)
    assert json.loads(out.out)["points"] == ints["points"]


def test_predict_refuses_an_unknown_precision_naming_what_to_give(capsys):
    rc, out = _predict(capsys, "--target", "Llama-3.1-8B", "--precision", "int3")
    assert rc == 1
    assert "--precision int3" in out.err and "fix those flags" not in out.err
    fix = out.err.split("fix:", 1)[1]
    assert "give --precision one of bf16, fp16, fp32, fp8, int8, int4" in fix and "AWQ" in fix and "W8A8" in fix


def test_predict_says_which_precision_a_prequantized_checkpoint_uses(tmp_path, capsys):
    awq = str(_dir(tmp_path, "llama8b-awq", {"quant_method": "awq", "bits": 4, "group_size": 128}))
    rc, out = _predict(capsys, "--target", awq, "--precision", "bf16")
    assert rc == 0
    note = "--precision bf16 not used: llama8b-awq is a pre-quantized int4 checkpoint, predicted at int4"
    assert note in out.err and any(a.startswith(note) for a in json.loads(out.out)["assumptions"])
    rc, out = _predict(capsys, "--target", awq)  # no --precision given: nothing to correct
    assert rc == 0 and "not used" not in out.err


def test_predict_of_a_bitsandbytes_dir_is_the_awq_dirs(tmp_path, capsys):
    """qa3: the bnb directory predicted 1.56x (as bf16), the AWQ one 1.12x."""
    points = []
    for name, qc in (("bnb", {"quant_method": "bitsandbytes", "load_in_4bit": True}),
                     ("awq", {"quant_method": "awq", "bits": 4, "group_size": 128})):
        rc, out = _predict(capsys, "--target", str(_dir(tmp_path, name, qc)))
        assert rc == 0
        points.append(json.loads(out.out)["points"])
    assert points[0] == points[1]


def test_a_modelopt_hf_quant_config_beside_config_json_is_read(tmp_path):
    """ModelOpt checkpoints may keep their quantization in hf_quant_config.json only (vLLM reads it there too)."""
    d = _dir(tmp_path, "nvfp4-dir")
    (d / "hf_quant_config.json").write_text(json.dumps({"producer": {"name": "modelopt"},
                                                        "quantization": {"quant_algo": "NVFP4", "group_size": 16}}))
    from playbook.helpers.models import from_dir

    assert from_dir(d).quantization == "int4"
