"""helpers/startup_log.py against real public vLLM start-up logs (fixtures/vllm_logs/README.md names each source)."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbook.helpers import startup_log
from playbook.helpers.server import parse_startup_log

LOGS = Path(__file__).parent / "fixtures" / "vllm_logs"


def log(name: str, **kw):
    return startup_log.parse_file(LOGS / name, **kw)


def test_every_fixture_is_named_in_the_readme():
    readme = (LOGS / "README.md").read_text()
    files = sorted(p.name for p in LOGS.glob("*.log"))
    assert len(files) >= 10
    assert all(f in readme for f in files)


@pytest.mark.parametrize("name, tokens, conc, ctx, device", [
    ("v1_0.7.3_vllm13596.log", 2_042_016, 997.08, 2048, "GPU"),                # two lines, 0.7.3
    ("v1_2025-10_lmcache1739.log", 42_656, 1.30, 32_768, "GPU"),
    ("v1_2025-11_tp2_vllm28228.log", 75_840, 2.48, 120_000, "GPU"),
    ("v1_2025-11_vllm29335.log", 1_587_648, 775.22, 2048, "GPU"),
    ("v1_0.26.1rc1_b200_vllm51494.log", 2_558_976, 2.44, 1_048_576, "GPU"),    # one line, 0.26
    ("v1_0.32.0_cpu_embedded.log", 838_784, 819.12, 1024, "CPU"),
])
def test_kv_cache_and_concurrency(name, tokens, conc, ctx, device):
    s = log(name)
    assert (s.kv_cache_tokens, s.max_concurrency, s.max_concurrency_context, s.kv_cache_device) == \
        (tokens, conc, ctx, device)
    assert not s.warnings


def test_available_memory_weights_and_graphs_v1():
    s = log("v1_2025-11_vllm29335.log")
    assert s.available_kv_cache_gib == 33.31
    assert (s.model_weights_gib, s.model_load_seconds) == (2.0513, 27.200487)
    assert s.cuda_graph_shapes == 51 + 35  # PIECEWISE mixed batches + FULL decode graphs
    s = log("v1_2025-09_tp4_vllm25848.log")
    assert (s.cuda_graph_seconds, s.cuda_graph_gib) == (38.0, 1.64)


def test_early_v1_blocks_and_weights_in_gb():
    s = log("v1_0.7.1_h100_vllm12569.log", block_size=16)
    assert s.num_gpu_blocks == 1381 and s.model_weights_gib == 67.7229
    assert s.kv_cache_tokens == 1381 * 16 and s.max_concurrency == 10.79
    # 1381 blocks x 16 / 2048 tokens = 10.79x: the concurrency line agrees with the block count
    assert round(s.kv_cache_tokens / s.max_concurrency_context, 2) == s.max_concurrency


def test_v0_memory_profiling_line():
    s = log("v0_2024-12_rtx3090_vllm10517.log", block_size=16)
    assert (s.total_gpu_memory_gib, s.non_torch_memory_gib, s.available_kv_cache_gib, s.gpu_memory_utilization) == \
        (23.58, 0.35, 3.81, 0.90)
    assert s.num_gpu_blocks == 1952 and s.kv_cache_tokens == 1952 * 16 and s.model_weights_gib == 14.9888
    assert s.max_concurrency == 1.56  # 31,232 tokens / 20,000


def test_v0_08_budget_lines():
    s = log("v0_2025-03_h100_gaie550.log")
    assert (s.total_gpu_memory_gib, s.gpu_memory_utilization) == (79.19, 0.90)
    assert (s.model_weights_gib, s.non_torch_memory_gib, s.activation_peak_gib, s.available_kv_cache_gib) == \
        (12.55, 0.16, 2.38, 56.18)
    assert s.num_gpu_blocks == 7191 and s.kv_cache_tokens is None  # no block size in the excerpt
    # the reserve vLLM kept: 79.19 x 0.9 - 12.55 - 56.18 = non-torch + activation peak
    reserve = startup_log.reserve_gib_from_log(s, weights_gib_per_gpu=0, gpu_memory_gib=0, gpu_memory_utilization=0)
    assert reserve == pytest.approx(0.16 + 2.38, abs=0.02)


def test_versions_engines_and_capture_sizes():
    s = log("v0_0.7.4dev_vllm12529.log")
    assert (s.vllm_version, s.engine, s.enforce_eager) == ("0.7.4.dev390+gdebd6bbf", "V0", False)
    assert s.cuda_graph_capture_sizes[:4] == [1, 2, 4, 8] and max(s.cuda_graph_capture_sizes) == 256
    s = log("v0_0.8.1_kserve4368.log")
    assert (s.vllm_version, s.engine, s.max_num_batched_tokens) == ("0.8.1", "V0", 2048)
    s = log("v1_0.32.0_cpu_embedded.log")
    assert (s.vllm_version, s.engine) == ("0.32.0", "V1")


def test_server_keeps_its_startup_facts_interface():
    facts = parse_startup_log((LOGS / "v1_2025-10_lmcache1739.log").read_text())
    assert (facts.kv_cache_tokens, facts.max_concurrency, facts.kv_cache_device) == (42_656, 1.30, "GPU")


def test_reserve_from_log_uses_node_figures_without_v0_profile():
    s = log("v1_2025-11_vllm29335.log")
    r = startup_log.reserve_gib_from_log(s, weights_gib_per_gpu=99, gpu_memory_gib=40.0, gpu_memory_utilization=0.92)
    assert r == pytest.approx(40 * 0.92 - 2.0513 - 33.31, abs=0.01)  # the log's own weights win
    assert startup_log.reserve_gib_from_log(log("v1_0.7.3_vllm13596.log"), weights_gib_per_gpu=1,
                                            gpu_memory_gib=80, gpu_memory_utilization=0.9) is None


def test_no_kv_line_warns():
    s = startup_log.parse("INFO starting\nINFO loading weights\n")
    assert s.kv_cache_tokens is None and s.warnings
