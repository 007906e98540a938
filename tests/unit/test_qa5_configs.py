"""QA round 5 (C): real architectures given as local directories (config.json only, as published on the Hugging Face
Hub, sometimes with model.safetensors.index.json), checked against the model cards' totals and vLLM's own loaders.
Each fixture is the public config's fields that matter, written to tmp_path."""

from __future__ import annotations

import json
import struct

import pytest

from playbook.helpers import catalog_predict, compat, drafts, gpus, memory, models
from playbook.helpers import quantization as q
from tests.support.tiny_models import config_dir

GiB = 2**30


def resolve(root, name: str, cfg: dict, **kw):
    return models.resolve(str(config_dir(root, name, cfg, **kw)))


def weights_gib(spec) -> float:
    return memory._weights(spec, q.served_precision(spec, "bf16"), 128) / GiB


# -- public configs (huggingface.co/<repo>/blob/main/config.json), the fields that matter ----------------------------
LLAMA4_VISION = {"hidden_size": 1408, "intermediate_size": 5632, "num_attention_heads": 16, "num_hidden_layers": 34,
                 "image_size": 336, "patch_size": 14, "model_type": "llama4_vision_model", "vision_output_dim": 4096,
                 "projector_input_dim": 4096, "projector_output_dim": 4096}


def llama4(experts: int, step: int) -> dict:
    """meta-llama/Llama-4-Maverick-17B-128E-Instruct (128 experts, interleave_moe_layer_step 2) and
    Llama-4-Scout-17B-16E-Instruct (16 experts, step 1)."""
    return {"architectures": ["Llama4ForConditionalGeneration"], "model_type": "llama4", "torch_dtype": "bfloat16",
            "text_config": {"model_type": "llama4_text", "hidden_size": 5120, "intermediate_size": 8192,
                            "intermediate_size_mlp": 16384, "num_attention_heads": 40, "num_key_value_heads": 8,
                            "head_dim": 128, "num_hidden_layers": 48, "num_local_experts": experts,
                            "num_experts_per_tok": 1, "interleave_moe_layer_step": step, "vocab_size": 202048,
                            "max_position_embeddings": 1048576, "attention_chunk_size": 8192,
                            "tie_word_embeddings": False,
                            "rope_scaling": {"factor": 16.0, "high_freq_factor": 1.0, "low_freq_factor": 1.0,
                                             "original_max_position_embeddings": 8192, "rope_type": "llama3"}},
            "vision_config": LLAMA4_VISION}


QWEN2_57B = {"architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe", "hidden_size": 3584,  # Qwen/Qwen2-57B-A14B-Instruct
             "intermediate_size": 18944, "moe_intermediate_size": 2560, "shared_expert_intermediate_size": 20480,
             "num_experts": 64, "num_experts_per_tok": 8, "decoder_sparse_step": 1, "mlp_only_layers": [],
             "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4, "vocab_size": 151936,
             "tie_word_embeddings": False, "max_position_embeddings": 32768, "sliding_window": 65536,
             "use_sliding_window": False, "torch_dtype": "bfloat16"}

GEMMA2_9B = {"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "hidden_size": 3584,  # google/gemma-2-9b-it
             "intermediate_size": 14336, "num_attention_heads": 16, "num_hidden_layers": 42, "num_key_value_heads": 8,
             "head_dim": 256, "vocab_size": 256000, "max_position_embeddings": 8192, "sliding_window": 4096,
             "query_pre_attn_scalar": 256, "torch_dtype": "float32"}  # no tie_word_embeddings, as published

GEMMA3_4B = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",  # google/gemma-3-4b-it
             "mm_tokens_per_image": 256, "torch_dtype": "bfloat16",
             "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                             "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                             "sliding_window": 1024},
             "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304,
                               "model_type": "siglip_vision_model", "num_attention_heads": 16,
                               "num_hidden_layers": 27, "patch_size": 14, "vision_use_head": False}}

LLAVA_15_7B = {"architectures": ["LlavaForConditionalGeneration"], "model_type": "llava",  # llava-hf/llava-1.5-7b-hf
               "text_config": {"architectures": ["LlamaForCausalLM"], "max_position_embeddings": 4096,
                               "model_type": "llama", "rms_norm_eps": 1e-05, "torch_dtype": "float16",
                               "vocab_size": 32064},
               "tie_word_embeddings": False, "torch_dtype": "float16", "vision_feature_layer": -2,
               "vision_config": {"hidden_size": 1024, "image_size": 336, "intermediate_size": 4096,
                                 "model_type": "clip_vision_model", "num_attention_heads": 16,
                                 "num_hidden_layers": 24, "patch_size": 14, "projection_dim": 768},
               "vocab_size": 32064}

GPT_OSS_20B = {"architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "hidden_size": 2880,  # openai/gpt-oss-20b
               "intermediate_size": 2880, "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64,
               "num_hidden_layers": 24, "num_local_experts": 32, "num_experts_per_tok": 4, "vocab_size": 201088,
               "tie_word_embeddings": False, "sliding_window": 128,
               "layer_types": ["sliding_attention", "full_attention"] * 12, "max_position_embeddings": 131072,
               "attention_bias": True, "torch_dtype": "bfloat16",
               "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0,
                                "original_max_position_embeddings": 4096, "rope_type": "yarn", "truncate": False},
               "quantization_config": {"modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                                                  "model.embed_tokens", "lm_head"],
                                       "quant_method": "mxfp4"}}

QWEN25_VL_7B = {"architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",  # Qwen/Qwen2.5-VL-7B-Instruct
                "hidden_size": 3584, "intermediate_size": 18944, "num_attention_heads": 28, "num_hidden_layers": 28,
                "num_key_value_heads": 4, "vocab_size": 152064, "tie_word_embeddings": False,
                "max_position_embeddings": 128000, "sliding_window": 32768, "use_sliding_window": False,
                "torch_dtype": "bfloat16", "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
                "vision_config": {"depth": 32, "hidden_act": "silu", "hidden_size": 1280, "intermediate_size": 3420,
                                  "num_heads": 16, "in_chans": 3, "out_hidden_size": 3584, "patch_size": 14,
                                  "spatial_merge_size": 2, "spatial_patch_size": 14, "window_size": 112,
                                  "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2,
                                  "temporal_patch_size": 2}}

QWEN25_7B = {**{k: v for k, v in QWEN25_VL_7B.items() if k not in ("vision_config", "rope_scaling")},
             "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "max_position_embeddings": 32768}

DEEPSEEK_V3 = {"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "hidden_size": 7168,  # deepseek-ai/DeepSeek-V3
               "intermediate_size": 18432, "moe_intermediate_size": 2048, "n_routed_experts": 256,
               "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 3, "moe_layer_freq": 1,
               "num_attention_heads": 128, "num_key_value_heads": 128, "num_hidden_layers": 61, "kv_lora_rank": 512,
               "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
               "vocab_size": 129280, "tie_word_embeddings": False, "num_nextn_predict_layers": 1,
               "max_position_embeddings": 163840, "torch_dtype": "bfloat16",
               "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                                "original_max_position_embeddings": 4096, "type": "yarn"},
               "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                       "weight_block_size": [128, 128]}}
DEEPSEEK_V3_TOTAL_SIZE = 688586727753  # its model.safetensors.index.json metadata.total_size (layer 61 included)

LLAMA31_8B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,  # meta-llama/Llama-3.1-8B-Instruct
              "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
              "vocab_size": 128256, "tie_word_embeddings": False, "max_position_embeddings": 131072,
              "torch_dtype": "bfloat16"}


# -- 1. Llama-4 --------------------------------------------------------------------------------------------------
def test_llama4_maverick_interleaves_moe_layers_with_a_shared_expert(tmp_path):
    """Maverick: 24 MoE layers x (128 routed + 1 shared) x 3 x 5120 x 8192 + 24 dense layers of intermediate_size_mlp
    16384 + attention + embeddings = 400.7B text (the card: 400B total, 17B active), plus the 0.87B vision tower. In
    bf16 at TP8 it fits on 8x H200 (vLLM's Llama-4 recipe serves it so); it was 778B and 'does not fit'."""
    m = resolve(tmp_path, "Llama-4-Maverick-17B-128E-Instruct", llama4(128, 2))
    assert (m.first_k_dense, m.num_shared_experts, m.intermediate_size, m.moe_intermediate_size) == (24, 1, 16384, 8192)
    text = models.total_params(m) - m.extra_params * 1e9
    assert text / 1e9 == pytest.approx(400.7, abs=0.3) and m.extra_params == pytest.approx(0.87, abs=0.02)
    pf = catalog_predict.pass_facts(m)
    assert pf["moe_layers"] == 24
    assert (pf["active_params"] + m.vocab_size * m.hidden_size) / 1e9 == pytest.approx(17.2, abs=0.2)  # + the embedding
    b = memory.budget(m, None, gpus.get_gpu("H200"), method="none", num_gpus=8, tensor_parallel_size=8,
                      max_model_len=32768)
    assert b.fits and b.target_weights_gib == pytest.approx(748.0, abs=1.0) and b.target_weights_per_gpu_gib < 94


def test_llama4_scout_counts_its_shared_expert_and_vision_tower(tmp_path):
    """Scout: every layer MoE, 16 routed + 1 shared expert: 107.8B text + 0.87B vision ~ the card's 109B."""
    s = resolve(tmp_path, "Llama-4-Scout-17B-16E-Instruct", llama4(16, 1))
    assert s.first_k_dense == 0 and s.num_shared_experts == 1
    assert models.total_params(s) / 1e9 == pytest.approx(108.6, abs=0.4)


@pytest.mark.parametrize("name, experts, step", [("Llama-4-Scout-17B-16E", 16, 1), ("Llama-4-Maverick-17B-128E", 128, 2)])
def test_the_catalogs_llama4_entries_are_what_their_config_json_gives(tmp_path, name, experts, step):
    """`playbook predict --target meta-llama/Llama-4-...` without the checkpoint: the catalog entry counts what the
    published config.json does (weights, layer kinds, experts, vision tower) and budgets the same memory."""
    cat, local = models.resolve(name), resolve(tmp_path, name, llama4(experts, step))
    assert cat.source == "catalog" and cat.kinds() == local.kinds() and cat.kinds().count("chunked") == 36
    assert models.total_params(cat) == pytest.approx(models.total_params(local), rel=1e-3)
    assert (cat.first_k_dense, cat.num_experts, cat.num_shared_experts) == (local.first_k_dense, local.num_experts, 1)
    assert catalog_predict.pass_facts(cat)["active_params"] == pytest.approx(
        catalog_predict.pass_facts(local)["active_params"], rel=1e-6)
    h200 = gpus.get_gpu("H200")
    kw = dict(method="none", num_gpus=8, tensor_parallel_size=8, max_model_len=32768)
    assert memory.budget(cat, None, h200, **kw).max_concurrency == pytest.approx(
        memory.budget(local, None, h200, **kw).max_concurrency, rel=1e-3)


def test_moe_layer_layouts_follow_vllms_loaders():
    assert models.moe_layer_flags({"interleave_moe_layer_step": 2}, 4) == [False, True, False, True]
    assert models.moe_layer_flags({"decoder_sparse_step": 1, "mlp_only_layers": [0, 2]}, 4) == [False, True, False, True]
    assert models.moe_layer_flags({"first_k_dense_replace": 3, "moe_layer_freq": 1}, 5) == [False] * 3 + [True] * 2
    assert models.moe_layer_flags({}, 3) == [True] * 3


# -- 2. Qwen2-MoE shared expert ----------------------------------------------------------------------------------
def test_qwen2_moe_shared_expert_has_its_own_width(tmp_path):
    """Qwen2-57B-A14B: a 20480-wide shared expert (8 routed widths of 2560) in each of 28 layers: 57.4B total (the
    name's 57B, it was 51.2B), ~14.2B active with the embedding (A14B, it was 7.5B), ~15 GB streamed per bf16 pass."""
    s = resolve(tmp_path, "Qwen2-57B-A14B-Instruct", QWEN2_57B)
    assert s.num_shared_experts == 8 and s.first_k_dense == 0
    assert models.total_params(s) / 1e9 == pytest.approx(57.4, abs=0.1)
    assert weights_gib(s) == pytest.approx(106.9, abs=0.1)
    pf = catalog_predict.pass_facts(s)
    assert (pf["active_params"] + s.vocab_size * s.hidden_size) / 1e9 == pytest.approx(14.2, abs=0.1)
    assert pf["read_bytes"] / 1e9 == pytest.approx(15.1, abs=0.2)


def test_qwen2_moe_dense_layers_from_mlp_only_layers(tmp_path):
    s = resolve(tmp_path, "q", {**QWEN2_57B, "mlp_only_layers": [0, 1]})
    assert s.first_k_dense == 2 and catalog_predict.pass_facts(s)["moe_layers"] == 26


# -- 3. tie_word_embeddings defaults -----------------------------------------------------------------------------
def test_gemma_without_tie_word_embeddings_is_tied_as_transformers_defaults_it(tmp_path):
    """Gemma2Config defaults tie_word_embeddings to True: the local gemma-2-9b-it weighs what the catalog's Gemma-2-9B
    does (17.21 GiB; it was 18.92 and 'does not fit' on an L4)."""
    local = resolve(tmp_path, "gemma-2-9b-it", GEMMA2_9B)
    assert local.tie_word_embeddings and models.param_breakdown(local)["lm_head"] == 0
    cat = models.from_catalog("Gemma-2-9B")
    assert weights_gib(local) == pytest.approx(weights_gib(cat), rel=1e-3) == pytest.approx(17.21, abs=0.01)
    l4 = gpus.get_gpu("L4")
    kw = {"method": "none", "max_model_len": 1024}
    assert memory.budget(local, None, l4, **kw).fits == memory.budget(cat, None, l4, **kw).fits is True


def test_tie_default_without_transformers(tmp_path, monkeypatch):
    """When transformers cannot read the config: the model type's default from models._CONFIG_DEFAULTS (Gemma: True),
    False for a type it does not know; an explicit value always wins."""
    monkeypatch.setattr(models, "_transformers_config", lambda *a: None)
    assert resolve(tmp_path, "g", GEMMA2_9B).tie_word_embeddings is True
    assert resolve(tmp_path, "x", {**GEMMA2_9B, "model_type": "my_own_arch"}).tie_word_embeddings is False
    assert resolve(tmp_path, "e", {**GEMMA2_9B, "tie_word_embeddings": False}).tie_word_embeddings is False


def test_draft_size_ratio_uses_tied_gemma_weights(tmp_path):
    nine = resolve(tmp_path, "gemma-2-9b-it", GEMMA2_9B)
    two = resolve(tmp_path, "gemma-2-2b-it", {**GEMMA2_9B, "hidden_size": 2304, "intermediate_size": 9216,
                                              "num_attention_heads": 8, "num_hidden_layers": 26,
                                              "num_key_value_heads": 4, "query_pre_attn_scalar": 224})
    assert models.total_params(two) / 1e9 == pytest.approx(2.61, abs=0.01)
    assert models.total_params(nine) / models.total_params(two) == pytest.approx(3.5, abs=0.05)


# -- 4. vocabularies ---------------------------------------------------------------------------------------------
BASE = {f"tok{i}": i for i in range(5000)}


def llama3_added(v31: bool) -> list[dict]:
    """Llama-3.0 vs 3.1 added tokens (meta-llama tokenizer.json): 3.1 renamed reserved ids 128004/128008/128010 to
    <|finetune_right_pad_id|>, <|eom_id|>, <|python_tag|> and renumbered the remaining reserved tokens (here at 5000+)."""
    names = {0: "<|begin_of_text|>", 1: "<|end_of_text|>", 6: "<|start_header_id|>", 7: "<|end_header_id|>",
             9: "<|eot_id|>"}
    names.update({4: "<|finetune_right_pad_id|>", 8: "<|eom_id|>", 10: "<|python_tag|>"} if v31 else {})
    r = 0
    for i in range(16):
        if i not in names:
            names[i] = f"<|reserved_special_token_{r}|>"
            r += 1
    return [{"id": 5000 + i, "content": c, "special": True} for i, c in sorted(names.items())]


def tok_dir(root, name, added, base=BASE, vocab_size=5016):
    cfg = {**LLAMA31_8B, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2,
           "num_key_value_heads": 1, "num_hidden_layers": 1, "vocab_size": vocab_size}
    return resolve(root, name, cfg, tokenizer={"model": {"type": "BPE", "vocab": base, "merges": []},
                                               "added_tokens": added})


def test_renamed_reserved_special_tokens_are_the_same_vocabulary(tmp_path):
    """Llama-3-8B-Instruct with Llama-3.2-1B-Instruct: vLLM's draft_model accepts them as they are (no heterogeneous
    mode, no greedy-only sampling); the note says which special-token names differ."""
    t, d = tok_dir(tmp_path, "llama3", llama3_added(False)), tok_dir(tmp_path, "llama32", llama3_added(True))
    v = compat.vocab_rule(t, d)
    assert v.same is True and not v.heterogeneous and not v.flags
    assert "carry other names" in v.note and "<|eom_id|>" in v.note and v.note in v.detail
    row = drafts.score_candidate(t, d)
    assert not row.heterogeneous_vocab and row.same_tokenizer is True


def test_a_superset_vocabulary_is_the_same_with_a_note(tmp_path):
    """Qwen3 = Qwen2.5 + <tool_response>, </tool_response>, <think>, </think> at the end (151665-151668)."""
    q25 = [{"id": 5000 + i, "content": c} for i, c in enumerate(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])]
    q3 = q25 + [{"id": 5003 + i, "content": c} for i, c in
                enumerate(["<tool_response>", "</tool_response>", "<think>", "</think>"])]
    t, d = tok_dir(tmp_path, "qwen3", q3, vocab_size=5100), tok_dir(tmp_path, "qwen25", q25, vocab_size=5100)
    v = compat.vocab_rule(t, d)
    assert v.same is True and "has 4 token(s)" in v.note and "<think>" in v.note and "5003-5006" in v.note


def test_ids_meaning_other_tokens_stay_another_vocabulary_and_never_say_100_percent(tmp_path):
    t = tok_dir(tmp_path, "t", llama3_added(True))
    swapped = tok_dir(tmp_path, "s", llama3_added(True), base={**BASE, "tok5": 7, "tok7": 5})
    v = compat.vocab_rule(t, swapped)
    assert v.same is False and v.heterogeneous and "other tokens" in v.detail and "100%" not in v.detail
    moved = [dict(a, id=5008) if a["content"] == "<|eot_id|>" else dict(a, id=5009) if a["id"] == 5008 else a
             for a in llama3_added(True)]  # <|eot_id|> and <|eom_id|> trade ids: the draft would end turns wrongly
    v = compat.vocab_rule(t, tok_dir(tmp_path, "m", moved))
    assert v.same is False and "<|eom_id|> is id 5008 in t, 5009 in m" in v.detail and "100%" not in v.detail


def test_a_vocabulary_missing_many_ids_is_not_the_same(tmp_path):
    t = tok_dir(tmp_path, "t", llama3_added(True))
    short = tok_dir(tmp_path, "s", llama3_added(True), base={k: i for k, i in BASE.items() if i < 4900})
    v = compat.vocab_rule(t, short)
    assert v.same is False and "in one vocabulary only" in v.detail and "other tokens" not in v.detail


# -- 5. transformers defaults --------------------------------------------------------------------------------------
def test_gemma3_text_config_defaults_fill_heads_and_head_dim(tmp_path):
    """gemma-3-4b-it's text_config gives only widths and layers: Gemma3TextConfig's 8 heads, 4 KV heads, head_dim 256
    and vocabulary 262208 apply, as vLLM loads it: 34 x 2 x 4 x 256 x 2 B = 139264 KV bytes per token. Adding the
    heads by hand (the old advice) no longer derives head_dim 320 = 2560 / 8 (348160 B/token)."""
    for name, cfg in (("gemma-3-4b-it", GEMMA3_4B),
                      ("userfixed", {**GEMMA3_4B, "text_config": {**GEMMA3_4B["text_config"],
                                                                  "num_attention_heads": 8, "vocab_size": 262208}})):
        s = resolve(tmp_path, name, cfg)
        assert (s.num_attention_heads, s.num_kv_heads, s.head_dim, s.vocab_size) == (8, 4, 256, 262208)
        assert memory.kv_bytes_per_token(memory.kv_layers(s)) == 139264 and s.tie_word_embeddings
        assert s.kinds().count("full") == 5 and s.max_position_embeddings == 131072
    assert models.total_params(s) / 1e9 == pytest.approx(4.3, abs=0.05)  # the card's 4.3B


def test_gemma3_defaults_without_transformers(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "_transformers_config", lambda *a: None)
    s = resolve(tmp_path, "gemma-3-4b-it", GEMMA3_4B)
    assert (s.num_attention_heads, s.num_kv_heads, s.head_dim, s.vocab_size) == (8, 4, 256, 262208)


def test_llava_text_config_gets_llamaconfig_defaults(tmp_path):
    s = resolve(tmp_path, "llava-1.5-7b-hf", LLAVA_15_7B)
    assert (s.hidden_size, s.num_layers, s.num_attention_heads, s.num_kv_heads, s.vocab_size) == (4096, 32, 32, 32, 32064)
    assert models.total_params(s) / 1e9 == pytest.approx(7.06, abs=0.03)  # the card's 7.06B


def test_a_known_model_type_missing_a_field_gets_its_default(tmp_path):
    s = resolve(tmp_path, "l", {k: v for k, v in LLAMA31_8B.items() if k != "num_hidden_layers"})
    assert s.num_layers == 32  # LlamaConfig's default, what vLLM would build


def test_transformers_notes_do_not_reach_the_user(tmp_path, capfd):
    resolve(tmp_path, "scout", llama4(16, 1))  # its rope_scaling makes transformers 5 log a note on stderr
    assert capfd.readouterr().err == ""


def test_the_embedded_pair_is_read_as_written_without_transformers(monkeypatch):
    """A plain Llama config stating every field read (the tiny pair) skips transformers' ~3 s import; same values."""
    def boom(*a):
        raise AssertionError("transformers consulted")
    monkeypatch.setattr(models, "_transformers_config", boom)
    t, d = models.resolve("embedded", "target"), models.resolve("embedded", "draft")
    assert (t.num_layers, t.num_kv_heads, t.head_dim, t.vocab_size, t.tie_word_embeddings) == (4, 2, 32, 2048, False)
    assert (d.num_layers, d.num_kv_heads, d.head_dim, d.tie_word_embeddings) == (2, 1, 32, True)


# -- 6. modules kept at 16 bits ------------------------------------------------------------------------------------
def test_mxfp4_keeps_attention_in_bf16(tmp_path):
    """gpt-oss-20b: experts 19.11B at 0.53125 B (4 bits + an E8M0 scale per 32) = 10.15 GB, attention 0.64B at bf16,
    embedding + lm_head 2.32 GB: 13.75 GB = 12.8 GiB (it was 11.93); 2.43 GB streamed per pass besides the experts."""
    s = resolve(tmp_path, "gpt-oss-20b", GPT_OSS_20B)
    bd = models.param_breakdown(s)
    assert bd["unquantized"] == 24 * (2 * 2880 * 64 * 64 + 2 * 2880 * 8 * 64)
    assert weights_gib(s) == pytest.approx(12.8, abs=0.05)
    assert catalog_predict.pass_facts(s, "bf16")["read_bytes"] / 1e9 == pytest.approx(2.43, abs=0.03)


def test_compressed_tensors_ignore_and_awq_modules_to_not_convert(tmp_path):
    ct = {**LLAMA31_8B, "quantization_config": {
        "quant_method": "compressed-tensors", "ignore": ["lm_head", "re:.*self_attn.*"],
        "config_groups": {"group_0": {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "int"}}}}}
    s = resolve(tmp_path, "ct", ct)
    attn = 2 * 4096 * 4096 + 2 * 4096 * 1024
    assert s.quantization == "int4" and models.param_breakdown(s)["unquantized"] == 32 * attn
    awq = resolve(tmp_path, "awq", {**LLAMA31_8B, "quantization_config": {
        "quant_method": "awq", "bits": 4, "modules_to_not_convert": ["model.layers.0.mlp"]}})
    assert models.param_breakdown(awq)["unquantized"] == 3 * 4096 * 14336  # layer 0's MLP only
    plain = resolve(tmp_path, "plain", {**LLAMA31_8B, "quantization_config": {"quant_method": "awq", "bits": 4}})
    assert "unquantized" not in models.param_breakdown(plain)
    assert weights_gib(awq) - weights_gib(plain) == pytest.approx(3 * 4096 * 14336 * (2 - 0.53125) / GiB, rel=1e-6)


# -- 7. vision towers ------------------------------------------------------------------------------------------------
def test_qwen25_vl_vision_tower_is_counted_and_said(tmp_path):
    """Qwen2.5-VL-7B: 32 blocks x 19.7M + merger 44.6M = 0.675B vision params, 8.29B in all (the card): 15.44 GiB."""
    vl = resolve(tmp_path, "Qwen2.5-VL-7B-Instruct", QWEN25_VL_7B)
    text = resolve(tmp_path, "Qwen2.5-7B-Instruct", QWEN25_7B)
    assert vl.extra_params == pytest.approx(0.675, abs=0.005)
    assert models.total_params(vl) / 1e9 == pytest.approx(8.29, abs=0.01) and weights_gib(vl) == pytest.approx(15.44, abs=0.02)
    b = memory.budget(vl, None, gpus.get_gpu("H100-SXM"), method="none", max_model_len=8192)
    assert any("vision encoder (~0.68B parameters" in w and "--language-model-only" in w for w in b.warnings)
    # read only when an image is encoded: a decode pass streams what the text model's does
    assert catalog_predict.pass_facts(vl)["read_bytes"] == pytest.approx(catalog_predict.pass_facts(text)["read_bytes"],
                                                                         rel=1e-4)


def test_vision_tower_estimates_match_published_totals():
    assert models.vision_tower_params(GEMMA3_4B, {**GEMMA3_4B["vision_config"]}, 5376) / 1e9 == pytest.approx(0.42, abs=0.01)
    assert models.vision_tower_params(LLAVA_15_7B, LLAVA_15_7B["vision_config"], 4096) / 1e9 == pytest.approx(0.31, abs=0.01)
    assert models.vision_tower_params({"model_type": "llama4"}, LLAMA4_VISION, 5120) / 1e9 == pytest.approx(0.87, abs=0.02)


def _safetensors(path, tensors: dict[str, list[int]]):
    header, offset = {}, 0
    for name, shape in tensors.items():
        n = 2
        for x in shape:
            n *= x
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob)  # header only: the sizes are what is read


def test_vision_tensors_in_safetensors_are_counted_exactly(tmp_path):
    cfg = {**QWEN25_VL_7B, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2,
           "num_key_value_heads": 1, "num_hidden_layers": 1, "vocab_size": 100}
    d = config_dir(tmp_path, "vl", cfg)
    _safetensors(d / "model.safetensors", {"model.embed_tokens.weight": [100, 64], "lm_head.weight": [100, 64],
                                          "model.layers.0.mlp.down_proj.weight": [64, 128],
                                          "visual.blocks.0.mlp.down_proj.weight": [1280, 3420]})
    s = models.resolve(str(d))
    assert s.extra_params * 1e9 == 1280 * 3420 and models.param_breakdown(s)["other"] >= 1280 * 3420


# -- 8. MTP layers in a checkpoint -------------------------------------------------------------------------------
def test_deepseek_v3_index_total_leaves_out_the_mtp_module(tmp_path):
    """model.safetensors.index.json's 688.6 GB hold layer 61 (the MTP module, ~15.4 GB with its embedding and lm_head
    copies): without method mtp vLLM skips it, so the weights and the bytes read per pass are the config-only ones
    (~627 GiB, ~17 GB: it was 641.3 GiB and 32.8 GB)."""
    idx = resolve(tmp_path, "DeepSeek-V3", DEEPSEEK_V3, index={"metadata": {"total_size": DEEPSEEK_V3_TOTAL_SIZE},
                                                                "weight_map": {}})
    cfg_only = resolve(tmp_path, "DeepSeek-V3-noindex", DEEPSEEK_V3)
    assert weights_gib(idx) == pytest.approx(weights_gib(cfg_only), rel=0.001)
    assert catalog_predict.pass_facts(idx, "fp8")["read_bytes"] / 1e9 == pytest.approx(17.3, abs=0.4)
    kw = {"num_gpus": 8, "tensor_parallel_size": 8, "max_model_len": 8192}
    off = memory.budget(idx, None, gpus.get_gpu("H200"), method="none", **kw)
    on = memory.budget(idx, None, gpus.get_gpu("H200"), method="mtp", **kw)
    assert on.target_weights_gib == off.target_weights_gib and 10.5 < on.draft_weights_gib < 11.2


def test_an_index_naming_no_mtp_tensors_is_taken_whole(tmp_path):
    names = {f"model.layers.{i}.self_attn.o_proj.weight": "a.safetensors" for i in range(61)}
    without = resolve(tmp_path, "a", DEEPSEEK_V3, index={"metadata": {"total_size": 10**12}, "weight_map": names})
    with_mtp = resolve(tmp_path, "b", DEEPSEEK_V3, index={"metadata": {"total_size": 10**12}, "weight_map": {
        **names, "model.layers.61.eh_proj.weight": "b.safetensors"}})
    assert without.weight_bytes_on_disk == 10**12 > with_mtp.weight_bytes_on_disk > 10**12 - 13e9


def test_mtp_tensors_in_safetensors_are_not_counted_as_the_target(tmp_path):
    cfg = {**LLAMA31_8B, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2,
           "num_key_value_heads": 1, "num_hidden_layers": 1, "vocab_size": 100, "num_nextn_predict_layers": 1}
    d = config_dir(tmp_path, "m", cfg)
    _safetensors(d / "model.safetensors", {"model.embed_tokens.weight": [100, 64], "lm_head.weight": [100, 64],
                                          "model.layers.0.mlp.down_proj.weight": [64, 128],
                                          "model.layers.1.eh_proj.weight": [64, 128]})
    s = models.resolve(str(d))
    assert s.exact_params == 2 * 100 * 64 + 64 * 128 and s.weight_bytes_on_disk == 2 * s.exact_params
    assert sum(models.param_breakdown(s).values()) == s.exact_params


def test_a_shape_field_filled_from_transformers_defaults_is_said_in_the_budget(tmp_path):
    """A Llama config without num_attention_heads loads in vLLM at LlamaConfig's 32 heads; the budget uses that value
    and says so, naming the field (a plain config that states its fields gets no such note)."""
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "num_hidden_layers": 2,
           "num_key_value_heads": 2, "intermediate_size": 512, "vocab_size": 1000}
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    spec = models.from_dir(d)
    assert spec.num_attention_heads == 32 and spec.defaulted == {"num_attention_heads": 32}
    b = memory.budget(spec, None, gpus.get_gpu("H100-SXM"), method="none", max_model_len=1024)
    note = [w for w in b.warnings if "leaves out" in w]
    assert note and "num_attention_heads 32" in note[0]
    (d / "config.json").write_text(json.dumps({**cfg, "num_attention_heads": 8}))
    assert models.from_dir(d).defaulted == {}
