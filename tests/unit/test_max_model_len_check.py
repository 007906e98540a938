"""Managed mode refuses a max_model_len beyond the target's own maximum context before any server starts."""
import pytest

from playbook.helpers import params


def _load(**kw):
    return params.LoadParams(target_model="Llama-3.1-8B", draft_model="", method="ngram", **kw)


def test_managed_max_model_len_beyond_the_targets_context_is_refused_with_the_limit():
    with pytest.raises(ValueError, match=r"max_model_len 200000 exceeds Llama-3.1-8B's maximum context of 131072.*"
                                         r"give max_model_len 131072 or less"):
        _load(mode="managed", max_model_len=200000)
    assert _load(mode="managed", max_model_len=131072).max_model_len == 131072


def test_vllms_own_override_and_external_servers_are_not_refused(monkeypatch):
    ext = dict(baseline_url="http://127.0.0.1:1", spec_url="http://127.0.0.1:2")
    assert _load(mode="external", max_model_len=200000, **ext).max_model_len == 200000
    monkeypatch.setenv("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "1")
    assert _load(mode="managed", max_model_len=200000).max_model_len == 200000
    monkeypatch.setenv("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "0")
    with pytest.raises(ValueError, match="VLLM_ALLOW_LONG_MAX_MODEL_LEN=1"):
        _load(mode="managed", max_model_len=200000)


def test_the_memory_budget_follows_vllms_override_too(monkeypatch, capsys):
    from playbook.cli import main

    args = ["memory", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM", "--max-model-len", "200000", "--json"]
    monkeypatch.delenv("VLLM_ALLOW_LONG_MAX_MODEL_LEN", raising=False)
    main(args)
    assert "maximum context of 131072" in capsys.readouterr().out
    monkeypatch.setenv("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "1")
    main(args)
    assert "maximum context" not in capsys.readouterr().out
