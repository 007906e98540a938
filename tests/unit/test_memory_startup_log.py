"""Memory budget vs real vLLM start-up logs: predicted vs allocated, reserve from a log, batched-token reserve."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from playbook.helpers import gpus, memory, models, startup_log

LOGS = Path(__file__).parent / "fixtures" / "vllm_logs"
CPU_LOG = LOGS / "v1_0.32.0_cpu_embedded.log"


def _embedded_budget():
    target, draft = models.resolve("embedded", "target"), models.resolve("embedded", "draft")
    return memory.budget(target, draft, gpus.resolve_gpu("cpu", 0, embedded=True), kv_cache_gib=1.0,
                         max_model_len=1024, num_speculative_tokens=4)


def test_embedded_budget_matches_the_real_cpu_log():
    b = _embedded_budget()
    check = memory.check_against_log(b, startup_log.parse_file(CPU_LOG), source=CPU_LOG.name)
    assert check.logged_kv_cache_tokens == 838_784 and check.logged_max_concurrency == 819.12
    assert abs(check.kv_cache_tokens_error) < 0.01 and abs(check.max_concurrency_error) < 0.01
    assert check.predicted_kv_cache_gib == check.logged_kv_cache_gib == 1.0
    assert check.vllm_version == "0.32.0"


def test_allocated_from_a_run_dir_reads_spec_and_baseline_logs(tmp_path):
    shutil.copy(CPU_LOG, tmp_path / "spec-1.log")
    shutil.copy(CPU_LOG, tmp_path / "baseline-1.log")
    (tmp_path / "spec-2.log").write_text("INFO starting\n")  # never reached its KV line: skipped
    checks = memory.allocated_from_logs(_embedded_budget(), tmp_path)
    assert [(c.source, c.with_draft) for c in checks] == [("baseline-1.log", False), ("spec-1.log", True)]
    # the baseline server has no draft layers: its predicted pool holds more tokens
    assert checks[0].predicted_kv_cache_tokens > checks[1].predicted_kv_cache_tokens
    assert memory.allocated_from_logs(_embedded_budget(), tmp_path / "missing") == []


def test_reserve_grows_with_the_batched_token_budget():
    target, gpu = models.resolve("Llama-3.1-8B", "target"), gpus.get_gpu("H100-SXM")
    small = memory.budget(target, None, gpu, method="none", max_model_len=4096, max_num_batched_tokens=2048)
    large = memory.budget(target, None, gpu, method="none", max_model_len=4096, max_num_batched_tokens=16384)
    assert large.reserve_gib > small.reserve_gib + 0.5
    assert large.kv_cache_tokens < small.kv_cache_tokens
    assert (small.max_num_batched_tokens, small.reserve_source) == (2048, "estimate")
    # the V0 0.8 H100 log (8B class, 2,048 batched tokens) kept 0.16 + 2.38 GiB: the estimate is near
    assert small.reserve_gib == pytest.approx(2.54, abs=1.0)


def test_cli_reserve_from_log_and_compare_log():
    log = LOGS / "v1_2025-11_vllm29335.log"
    out = subprocess.run([sys.executable, "-m", "playbook", "memory", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM",
                          "--max-model-len", "2048", "--reserve-from-log", str(log), "--compare-log", str(log),
                          "--json"], capture_output=True, text=True, check=True)
    d = json.loads(out.stdout)
    assert d["reserve_source"] == "log"
    usable = d["gpu_memory_gib"] * d["gpu_memory_utilization"]
    assert d["reserve_gib"] == pytest.approx(usable - 2.0513 - 33.31, abs=0.02)
    assert d["allocated"]["logged_kv_cache_tokens"] == 1_587_648


def test_cli_reserve_from_a_log_without_available_memory_says_so():
    out = subprocess.run([sys.executable, "-m", "playbook", "memory", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM",
                          "--reserve-from-log", str(LOGS / "v1_0.7.3_vllm13596.log")], capture_output=True, text=True)
    assert out.returncode != 0 and "Available KV cache memory" in out.stderr + out.stdout


def test_cli_compare_log_says_when_the_log_is_from_other_hardware():
    """A CPU server's log compared with an H100 budget gave a +5,000% 'error' without a word."""
    out = subprocess.run([sys.executable, "-m", "playbook", "memory", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM",
                          "--compare-log", str(LOGS / "v1_0.32.0_cpu_embedded.log")], capture_output=True, text=True)
    assert out.returncode == 0 and "the log is from a CPU server, the budget is for H100-SXM" in out.stdout
