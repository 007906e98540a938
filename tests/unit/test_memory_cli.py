"""`playbook memory` and `playbook drafts`: stable JSON field names, catalog models with no network."""

from __future__ import annotations

import json

import pytest

from playbook.cli import main

MEMORY_FIELDS = {"target_weights_gib", "draft_weights_gib", "kv_bytes_per_token", "kv_cache_gib", "kv_cache_tokens",
                 "max_concurrency", "max_concurrency_without_draft", "fits", "warnings"}


def run_json(capsys, *argv) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_memory_json_fields_for_catalog_models(capsys):
    out = run_json(capsys, "memory", "--target", "Llama-3.1-70B", "--draft", "Llama-3.2-1B", "--gpu", "H100-SXM",
                   "--tp", "2", "--max-model-len", "4096", "--json")
    assert MEMORY_FIELDS <= set(out)
    assert out["fits"] is True and out["kv_cache_tokens"] > 0
    assert out["max_concurrency_without_draft"] > out["max_concurrency"]


def test_memory_fixed_kv_space_and_matrix(capsys):
    out = run_json(capsys, "memory", "--target", "Llama-3.1-8B", "--gpu-memory-gib", "24", "--kv-cache-gib", "4",
                   "--target-quant", "int4", "--kv-cache-dtype", "fp8", "--matrix", "--json")
    assert out["kv_cache_gib"] == 4.0 and out["kv_space_fixed"] and out["kv_bytes_per_token"] == 32 * 2 * 8 * 128
    assert len(out["matrix"]) == 4 and {"target_quant", "fits", "kv_cache_tokens"} <= set(out["matrix"][0])


def test_memory_not_fitting_is_json_not_an_error(capsys):
    out = run_json(capsys, "memory", "--target", "Llama-3.1-405B", "--gpu", "L4", "--json")
    assert out["fits"] is False and out["reasons"]


def test_memory_unknown_model_exits_1_naming_close_matches(capsys):
    assert main(["memory", "--target", "Qwen2.5-70B", "--gpu", "H100-SXM", "--json"]) == 1
    err = capsys.readouterr().err
    assert "Qwen2.5-72B" in err and "closest" in err


def test_drafts_json_fields(capsys):
    out = run_json(capsys, "drafts", "--target", "Llama-3.3-70B", "--candidates", "Llama-3.1-8B,Qwen2.5-0.5B", "--json")
    c = out["candidates"][0]
    assert {"ratio", "same_family", "same_tokenizer", "methods", "score", "reasons"} <= set(c)
    assert c["name"] == "Llama-3.1-8B" and out["best"] == "Llama-3.1-8B"


def test_list_models(capsys):
    names = run_json(capsys, "memory", "--list-models", "--json")
    assert "DeepSeek-V3" in names and "Gemma-3-27B" in names


def test_memory_profile_with_a_misspelt_key_is_refused_as_run_refuses_it(capsys, tmp_path):
    """A misspelt key left its flag at the default: TP 1 instead of 2, and 'does not fit' with exit 0."""
    from playbook.resources import profile_path

    good = profile_path("h100x2-llama70b-fp8").read_text()
    typo = tmp_path / "typo.yaml"
    typo.write_text(good.replace("tensor_parallel_size:", "tensor_paralel_size:"))
    assert main(["memory", "--profile", str(typo), "--json"]) == 1
    assert "unknown parameter 'tensor_paralel_size' (did you mean tensor_parallel_size" in capsys.readouterr().err
    out = run_json(capsys, "memory", "--profile", "h100x2-llama70b-fp8", "--json")  # a shipped name, as `run` takes it
    assert out["fits"] and out["tensor_parallel_size"] == 2


def test_memory_flags_that_cannot_describe_a_server_are_named(capsys):
    cases = [(["--gpu-memory-gib", "0"], "--gpu-memory-gib 0"), (["--gpu", "H100-SXM", "--num-gpus", "3", "--tp", "2"],
             "--num-gpus 3 is not a multiple of --tp 2"),
             (["--gpu", "H100-SXM", "--context-length", "8192", "--max-model-len", "4096"], "--context-length 8192"),
             (["--gpu", "H100-SXM", "--reserve-gib", "-5"], "--reserve-gib -5"),
             (["--gpu", "H100-SXM", "--method", "eagle"], "--method eagle needs --draft")]
    for flags, said in cases:
        assert main(["memory", "--target", "Llama-3.1-8B", *flags, "--json"]) == 1, flags
        assert said in capsys.readouterr().err, flags


def test_memory_takes_precisions_in_any_case_and_says_an_ngram_ignores_the_draft(capsys):
    out = run_json(capsys, "memory", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM", "--target-quant", "FP8",
                   "--method", "ngram", "--draft", "Llama-3.2-1B", "--json")
    assert out["target_quant"] == "fp8" and out["draft_weights_gib"] == 0.0
    assert main(["memory", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM", "--method", "ngram",
                 "--draft", "Llama-3.2-1B"]) == 0
    assert "--draft Llama-3.2-1B is not budgeted" in capsys.readouterr().err


def test_pipeline_stages_split_the_targets_weights_and_kv_layers():
    """A 70B in four pipeline stages fits four 80 GiB GPUs as it does with TP 4 (it was counted whole on each)."""
    from playbook.helpers import memory
    from playbook.helpers.gpus import get_gpu
    from playbook.helpers.models import from_catalog

    target, draft, gpu = from_catalog("Llama-3.1-70B"), from_catalog("Llama-3.2-1B"), get_gpu("H100-SXM")
    whole = memory.budget(target, draft, gpu, num_gpus=4, max_model_len=8192)
    staged = memory.budget(target, draft, gpu, num_gpus=4, pipeline_parallel_size=4, max_model_len=8192)
    assert not whole.fits and staged.fits
    assert staged.target_weights_per_gpu_gib == pytest.approx(whole.target_weights_per_gpu_gib / 4)
    assert staged.draft_weights_per_gpu_gib == whole.draft_weights_per_gpu_gib  # vLLM runs the draft unstaged
    assert "4x H100-SXM in 4 pipeline stages" in memory.finding(staged)


def test_a_layout_larger_than_the_node_is_said_not_refused():
    """TP 4 x PP 2 on a 4-GPU node: the stages beyond it may be other nodes' (Ray), so a warning names the sizes."""
    from playbook.helpers import memory
    from playbook.helpers.gpus import get_gpu
    from playbook.helpers.models import from_catalog

    target, gpu = from_catalog("Llama-3.1-70B"), get_gpu("H100-SXM")
    multi = memory.budget(target, None, gpu, method="ngram", num_gpus=4, tensor_parallel_size=4,
                          pipeline_parallel_size=2, max_model_len=8192)
    one = memory.budget(target, None, gpu, method="ngram", num_gpus=8, tensor_parallel_size=4,
                        pipeline_parallel_size=2, max_model_len=8192)
    assert multi.fits and any("needs 8 GPUs; the node has 4" in w for w in multi.warnings)
    assert not any("needs 8 GPUs" in w for w in one.warnings)


def test_vllm_version_flag_sets_the_kv_layout_and_refuses_a_non_version(capsys):
    args = ["memory", "--target", "Gemma-3-27B", "--gpu", "H100-SXM", "--max-model-len", "32768", "--json"]
    now, old = run_json(capsys, *args), run_json(capsys, *args, "--vllm-version", "0.25.1")
    assert old["kv_cache_tokens"] > 1.4 * now["kv_cache_tokens"] and old["vllm_version"] == "0.25.1"
    assert main([*args, "--vllm-version", "latest"]) == 1
    assert "--vllm-version latest (must be a version such as 0.25.1" in capsys.readouterr().err
