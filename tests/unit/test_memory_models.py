"""Model facts: catalog, local directories (config.json + safetensors headers), bad input."""

from __future__ import annotations

import json
import struct

import pytest

from playbook.helpers import models
from playbook.helpers.errors import ModelError
from tests.support.tiny_models import llama_dir


@pytest.mark.parametrize("name", models.catalog_names())
def test_catalog_architecture_reproduces_the_published_parameter_count(name):
    spec = models.from_catalog(name)
    computed = models.total_params(spec) / 1e9
    assert computed == pytest.approx(spec.param_count, rel=0.02), f"{name}: {computed:.2f}B"


@pytest.mark.parametrize("alias,expected", [
    ("meta-llama/Llama-3.1-70B-Instruct", "Llama-3.1-70B"),
    ("llama-3.1-8b", "Llama-3.1-8B"),
    ("Qwen/Qwen2.5-0.5B-Instruct", "Qwen2.5-0.5B"),
    ("deepseek-ai/DeepSeek-V3", "DeepSeek-V3"),
])
def test_catalog_aliases_resolve(alias, expected):
    assert models.resolve(alias).name == expected


def test_a_2507_qwen3_is_its_base_architecture_with_256k_context():
    new, old = models.resolve("Qwen/Qwen3-30B-A3B-Instruct-2507"), models.resolve("Qwen/Qwen3-30B-A3B")
    assert new.name == "Qwen3-30B-A3B-2507" and models.resolve("Qwen/Qwen3-235B-A22B-Thinking-2507").is_moe
    assert (new.max_position_embeddings, old.max_position_embeddings) == (262144, 40960)
    same = ("hidden_size", "num_layers", "num_kv_heads", "num_experts", "num_experts_per_tok", "moe_intermediate_size")
    assert [getattr(new, f) for f in same] == [getattr(old, f) for f in same]


def test_a_like_entry_takes_the_earlier_entrys_fields_but_not_its_names(monkeypatch):
    """`like:` in models.yaml: every field of the named entry but its aliases and source, with its own on top."""
    raw = {"families": {}, "models": {
        "A": {"aliases": ["org/A"], "source": "a card", "hidden_size": 8, "max_position_embeddings": 1024},
        "A-2": {"like": "A", "aliases": ["org/A-2"], "source": "another card", "max_position_embeddings": 4096}}}
    monkeypatch.setattr(models.yaml, "safe_load", lambda _: raw)
    models._catalog.cache_clear()
    try:
        a2 = models._catalog()["A-2"]
        assert a2 == {"aliases": ["org/A-2"], "source": "another card", "hidden_size": 8, "max_position_embeddings": 4096}
        raw["models"] = {"B": {"like": "C"}, "C": {"hidden_size": 8}}
        models._catalog.cache_clear()
        with pytest.raises(ValueError, match="B is like 'C', which is not an entry above it"):
            models._catalog()
    finally:
        models._catalog.cache_clear()


def test_unknown_name_lists_the_closest_catalog_names():
    with pytest.raises(ModelError) as exc:
        models.resolve("Lama-3.1-70B")
    assert "Llama-3.1-70B" in str(exc.value) and "closest" in str(exc.value)


def test_catalog_special_architectures():
    ds = models.from_catalog("DeepSeek-V3")
    assert ds.attention == "mla" and ds.mtp_layers == 1 and ds.kv_lora_rank == 512
    g3 = models.from_catalog("Gemma-3-27B")
    assert g3.kinds().count("full") == 10 and g3.kinds().count("sliding") == 52
    g2 = models.from_catalog("Gemma-2-9B")
    assert g2.kinds()[:2] == ["sliding", "full"] and g2.kinds().count("full") == 21
    assert models.from_catalog("Mixtral-8x7B").num_experts == 8


def test_directory_counts_parameters_exactly_from_safetensors_headers(tmp_path):
    d = llama_dir(tmp_path)
    spec = models.resolve(str(d))
    assert spec.source == "dir" and spec.num_kv_heads == 1 and spec.head_dim == 32
    assert spec.exact_params == models.total_params(spec) == sum(models.architecture_params(spec).values())
    assert spec.weight_bytes_on_disk == 2 * spec.exact_params
    parts = models.param_breakdown(spec)
    assert parts["embedding"] == parts["lm_head"] == 100 * 64


def test_tied_embeddings_have_no_lm_head(tmp_path):
    spec = models.resolve(str(llama_dir(tmp_path, tie=True)))
    assert models.param_breakdown(spec)["lm_head"] == 0


def test_config_missing_a_field_names_it(tmp_path):
    """A field nothing can fill is named. (A model type transformers knows gets its config class's default instead,
    as vLLM does: LlamaConfig's 32 layers; tests/unit/test_qa5_configs.py.)"""
    d = llama_dir(tmp_path, drop=("num_hidden_layers",), extra_cfg={"model_type": "my_own_arch"})
    with pytest.raises(ModelError, match="num_layers.*num_hidden_layers"):
        models.resolve(str(d))


def test_directory_without_config_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        models.resolve(str(tmp_path / "empty"))


def test_corrupt_safetensors_header_is_a_model_error(tmp_path):
    d = llama_dir(tmp_path)
    (d / "model.safetensors").write_bytes(struct.pack("<Q", 10) + b"not json!!")
    with pytest.raises(ModelError, match="corrupt safetensors header"):
        models.resolve(str(d))


def test_mtp_and_eagle_detected_from_config(tmp_path):
    mtp = models.resolve(str(llama_dir(tmp_path, "mtp", extra_cfg={"num_nextn_predict_layers": 1})))
    assert mtp.mtp_layers == 1
    eagle = models.resolve(str(llama_dir(tmp_path, "head", layers=1, extra_cfg={"architectures": ["LlamaForCausalLMEagle3"]})))
    assert eagle.eagle_head


def test_gemma3_text_config_and_layer_types(tmp_path):
    d = llama_dir(tmp_path, "g", layers=6, extra_cfg={"model_type": "gemma3", "sliding_window": 512})
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({"architectures": ["Gemma3ForConditionalGeneration"],
                                                "model_type": "gemma3", "text_config": cfg}))
    spec = models.resolve(str(d))
    assert spec.sliding_window == 512 and spec.kinds() == ["sliding"] * 5 + ["full"]


def test_prequantized_checkpoint_counts_parameters_from_the_architecture(tmp_path):
    from playbook.helpers import gpus, memory

    d = llama_dir(tmp_path, extra_cfg={"quantization_config": {"quant_method": "awq", "bits": 4}})
    spec = models.resolve(str(d))
    assert spec.quantization == "int4"
    assert models.param_breakdown(spec) == models.architecture_params(spec)
    b = memory.budget(spec, None, gpus.get_gpu("cpu"), method="none", kv_cache_gib=1, target_quant="bf16")
    assert any("pre-quantized int4" in w for w in b.warnings)
    ok = memory.budget(spec, None, gpus.get_gpu("cpu"), method="none", kv_cache_gib=1, target_quant="int4")
    assert not any("pre-quantized" in w for w in ok.warnings)
    # vLLM loads a quantized checkpoint as stored: asked for bf16 (the default), it is still budgeted at int4
    assert (b.target_quant, b.target_weights_gib) == ("int4", ok.target_weights_gib)


def test_a_prequantized_checkpoint_fits_where_its_bf16_weights_would_not():
    """The FP8 70B on one H100 at vLLM PR 12569's settings: budgeted at FP8 without --target-quant (it was
    budgeted at bf16, 131 GiB, 'does not fit'), and the precision matrix has FP8 target rows only."""
    from playbook.helpers import gpus, memory

    target, draft, h100 = models.resolve("Llama-3.1-70B-FP8"), models.resolve("Llama-3.2-1B"), gpus.get_gpu("H100-SXM")
    b = memory.budget(target, None, h100, method="none", max_model_len=2048, gpu_memory_utilization=0.98)
    assert b.fits and b.target_quant == "fp8" and 66 < b.target_weights_gib < 69
    rows = memory.matrix_budgets(target, draft, h100, tensor_parallel_size=2, num_gpus=2)
    assert {r.target_quant for r in rows} == {"fp8"} and len(rows) == len({r.draft_quant for r in rows}) == 4


def test_a_gpu_family_name_says_which_entries_it_could_mean():
    """'H100' or 'a100' (what people type) is two catalog entries: the error names both, not the nearest spelling."""
    from playbook.helpers import gpus
    from playbook.helpers.errors import ParameterError

    with pytest.raises(ParameterError) as exc:
        gpus.get_gpu("H100")
    assert "H100-SXM or H100-PCIe" in str(exc.value) and "H200" not in str(exc.value)
    with pytest.raises(ParameterError) as exc:
        gpus.get_gpu("a100")
    assert "A100-40GB or A100-80GB" in str(exc.value)
    with pytest.raises(ParameterError) as exc:  # no family: the nearest spellings, and every name
        gpus.get_gpu("V100")
    assert "unknown GPU 'V100'; closest:" in str(exc.value) and "--gpu-memory-gib" in str(exc.value)
    assert gpus.get_gpu("h100-sxm").name == "H100-SXM"


def test_a_model_path_that_is_not_a_directory_says_what_it_is(tmp_path):
    """'is not a model directory' for a missing path, a config.json and any other file alike."""
    from playbook.helpers.errors import ModelError

    with pytest.raises(ModelError, match="does not exist") as exc:
        models.resolve(str(tmp_path / "no-such-model"))
    assert "check the path" in exc.value.fix
    cfg = llama_dir(tmp_path, "m") / "config.json"
    with pytest.raises(ModelError, match="is a file, not a model directory") as exc:
        models.resolve(str(cfg))
    assert exc.value.fix == f"give its directory, {cfg.parent}"


def test_a_context_beyond_max_model_len_is_said_not_silently_clipped():
    from playbook.helpers import gpus, memory

    b = memory.budget(models.resolve("Llama-3.1-8B"), None, gpus.get_gpu("H100-SXM"), method="none",
                      max_model_len=1024, context_length=4096)
    assert b.context_length == 1024 and any("context_length 4096 exceeds max_model_len 1024" in w for w in b.warnings)


def test_catalog_gpt_oss_is_budgeted_as_its_mxfp4_checkpoint():
    """gpt-oss from the catalog weighs what the local checkpoint does (tests/unit/test_qa5_configs.py: 12.8 GiB for
    the 20b): MXFP4 routed experts at int4 (4 bits + a scale per 32), attention kept in bf16; alternate layers slide
    over 128 tokens."""
    from playbook.helpers import memory
    from playbook.helpers.gpus import resolve_gpu

    small, big = models.resolve("openai/gpt-oss-20b"), models.resolve("openai/gpt-oss-120b")
    assert small.kinds()[:2] == ["sliding", "full"] and small.sliding_window == 128
    assert models.param_breakdown(small)["unquantized"] == 24 * (2 * 2880 * 64 * 64 + 2 * 2880 * 8 * 64)
    b = memory.budget(small, None, resolve_gpu("H100-SXM"), method="none", target_quant="bf16", max_model_len=32768)
    assert b.target_weights_gib == pytest.approx(12.8, abs=0.05)
    assert any("mxfp4 (int4-class weights, the other layers at 16 bits)" in w for w in b.warnings)
    # the 120b: OpenAI's gpt-oss model card lists a 60.8 GiB checkpoint (as fitmygpu.com/models/gpt-oss-120b quotes it)
    b = memory.budget(big, None, resolve_gpu("H100-SXM"), method="none", target_quant="bf16", max_model_len=32768)
    assert b.target_weights_gib == pytest.approx(60.8, abs=0.15)


def test_meta_fp8_405b_keeps_attention_and_its_end_layers_in_bf16():
    """Meta's FBGEMM FP8 405B quantizes only the MLPs of layers 1-124: vLLM loaded it at 57.752 GiB per GPU on 8x H100
    (vllm-project/vllm#6746). Every linear layer at FP8 (the BF16 model quantized on the fly) would be 18% lighter."""
    from playbook.helpers import gpus, memory

    h100 = gpus.get_gpu("H100-SXM")
    meta = memory.budget(models.resolve("meta-llama/Llama-3.1-405B-Instruct-FP8"), None, h100, method="none",
                         num_gpus=8, tensor_parallel_size=8)
    on_the_fly = memory.budget(models.resolve("Llama-3.1-405B"), None, h100, method="none", num_gpus=8,
                               tensor_parallel_size=8, target_quant="fp8")
    assert meta.target_quant == "fp8" and meta.target_weights_gib / 8 == pytest.approx(57.752, rel=0.03)
    assert on_the_fly.target_weights_gib / 8 < 0.85 * 57.752
    assert any("fbgemm_fp8 (fp8-class weights, the other layers at 16 bits)" in w for w in meta.warnings)


def test_mxfp4_experts_say_vllm_holds_more_than_the_checkpoint_on_a_gpu():
    """vLLM converts (and may pad) MXFP4 experts for its MoE kernel: 64.38 GiB for gpt-oss-120b on one H100 (vLLM
    0.14.1, vllm-project/vllm#33155) against 60.7 GiB budgeted from the checkpoint; said on GPUs, not applied."""
    from playbook.helpers import gpus, memory

    oss = models.resolve("openai/gpt-oss-120b")
    b = memory.budget(oss, None, gpus.get_gpu("H100-SXM"), method="ngram", max_model_len=4096)
    assert b.target_weights_gib == pytest.approx(60.7, abs=0.1)
    assert memory.MXFP4_LOADED in b.warnings and "64.38 GiB" in memory.MXFP4_LOADED
    cpu = memory.budget(oss, None, gpus.get_gpu("cpu"), method="ngram", kv_cache_gib=1)
    fp8 = memory.budget(models.resolve("Llama-3.1-70B-FP8"), None, gpus.get_gpu("H100-SXM"), method="ngram")
    assert memory.MXFP4_LOADED not in cpu.warnings + fp8.warnings
