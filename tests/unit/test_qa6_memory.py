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


def test_a_budget_without_a_draft_does_not_speak_of_one(capsys):
    assert main(["memory", "--target", "Llama-3.1-70B", "--target-quant", "int8", "--gpu", "H100-SXM", "--tp", "2",
                 "--num-gpus", "2", "--method", "ngram", "--gpu-memory-utilization", "0.6"]) == 0
    out = capsys.readouterr().out
    assert "(method ngram: no draft weights)" in out and "with the draft" not in out and "0.0% lost" not in out
    main(["memory", "--target", "Llama-3.1-70B", "--gpu", "H100-SXM", "--method", "ngram"])
    out = capsys.readouterr().out
    assert "Does not fit: weights" in out and "+ draft 0.00" not in out


V1_LOG = """\
INFO [gpu_model_runner.py:6142] Estimated CUDA graph memory: 0.52 GiB total
INFO [gpu_worker.py:462] Available KV cache memory: 6.37 GiB
INFO [gpu_worker.py:477] CUDA graph memory profiling is enabled (default since v0.21.0). The current \
--gpu-memory-utilization=0.9764 is equivalent to --gpu-memory-utilization=0.9543 without CUDA graph memory profiling.
INFO [kv_cache_utils.py:1710] GPU KV cache size: 46,368 tokens
"""


def test_the_log_parser_reads_v1s_utilization_graph_estimate_and_a_pasted_v0_block_line():
    from playbook.helpers import startup_log

    log = startup_log.parse(V1_LOG)
    assert log.gpu_memory_utilization == 0.9764 and log.cuda_graph_gib == 0.52
    v0 = startup_log.parse("INFO 12-02 executor_base.py:110] GPU blocks: 1952, # CPU blocks: 2048", block_size=16)
    assert v0.num_gpu_blocks == 1952 and v0.kv_cache_tokens == 31232  # the Markdown-eaten '#'
    desired = startup_log.parse(
        "INFO Free memory on device (78.5/79.19 GiB) on startup. Desired GPU memory utilization is (0.9, 71.27 GiB). "
        "Actual usage is 15.2 GiB for consumed memory (weights + non-torch), 1.4 GiB for peak activation, and 3.45 GiB "
        "for CUDAGraph memory. Replace gpu_memory_utilization config with ...")
    assert (desired.total_gpu_memory_gib, desired.gpu_memory_utilization) == (79.19, 0.9)
    assert (desired.activation_peak_gib, desired.cuda_graph_gib) == (1.4, 3.45)


def test_reserve_from_log_uses_the_logs_utilization_and_refuses_an_impossible_reserve(tmp_path, capsys):
    log = tmp_path / "v.log"
    log.write_text(V1_LOG)
    args = ["memory", "--target", "Qwen3-8B", "--gpu-memory-gib", "23.99", "--max-model-len", "16384", "--json"]
    assert main([*args, "--reserve-from-log", str(log)]) == 0
    assert json.loads(capsys.readouterr().out)["reserve_gib"] == pytest.approx(1.8, abs=0.05)  # 0 before: clamped
    log.write_text(V1_LOG.replace("The current --gpu-memory-utilization=0.9764 is", "It is"))
    assert main([*args, "--reserve-from-log", str(log), "--gpu-memory-utilization", "0.3"]) != 0
    err = json.loads(capsys.readouterr().out)["error"]
    assert "cannot be" in err["problem"] and "--gpu-memory-utilization" in err["fix"]


def test_an_int8_70b_weighs_what_vllm_loads_for_a_w8a8_checkpoint(capsys):
    """vllm-project/vllm#12569 (Llama-3.1-70B w8a8 on an H100, V1 0.7.1): "Model loading took 67.72 GiB". W8A8 has a
    scale per output channel, not per group of 128 (which added 2 GiB)."""
    assert main(["memory", "--target", "Llama-3.1-70B", "--target-quant", "int8", "--gpu", "H100-SXM", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["target_weights_gib"] == pytest.approx(67.72, rel=0.01)


def test_data_parallelism_is_said_in_the_memory_step():
    from playbook.helpers import memory

    assert memory.data_parallel_notes(1, 2, 1, 2) == []
    (note,) = memory.data_parallel_notes(2, 2, 1, 2)
    assert "2 ranks need 4 GPUs, the node has 2: the ranks beyond it must run on other nodes" in note
    assert "per rank" in note
