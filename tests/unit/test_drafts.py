"""Draft ranking: size-ratio scoring, tokenizer comparison from files, methods, ranking."""

from __future__ import annotations

import json

import pytest

from playbook.helpers import drafts, models
from tests.support.tiny_models import llama_dir


@pytest.mark.parametrize("ratio,expected", [(8, 1.0), (10, 1.0), (12, 1.0)])
def test_ratio_inside_the_sweet_spot_scores_full(ratio, expected):
    assert drafts.ratio_score(ratio) == expected


@pytest.mark.parametrize("worse,better", [(5, 7), (70, 20), (2, 5), (140, 70), (7.5, 8)])
def test_ratio_score_falls_away_from_the_sweet_spot(worse, better):
    assert drafts.ratio_score(worse) < drafts.ratio_score(better)


def test_costly_side_falls_faster_than_the_small_side():
    assert drafts.ratio_score(5) < 0.5 and drafts.ratio_score(70) < 0.3 < drafts.ratio_score(24)
    assert drafts.ratio_score(1) == 0.0


def _write_vocab(d, vocab: dict[str, int]):
    (d / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE", "vocab": vocab}, "added_tokens": [
        {"id": len(vocab), "content": "<eos>"}]}))


def test_tokenizers_compared_by_vocabulary_not_by_name(tmp_path):
    t = llama_dir(tmp_path, "target", layers=4, hidden=128, heads=4, kv=2)
    same = llama_dir(tmp_path, "same", layers=1)
    other = llama_dir(tmp_path, "other", layers=1)
    vocab = {f"tok{i}": i for i in range(99)}
    _write_vocab(t, vocab)
    _write_vocab(same, vocab)
    _write_vocab(other, {**vocab, "tok5": 7, "tok7": 5})  # same size, two ids swapped
    T, S, X = (models.resolve(str(p)) for p in (t, same, other))
    assert drafts.compare_tokenizers(T, S)[0] is True
    ok, detail = drafts.compare_tokenizers(T, X)
    assert ok is False and "differ" in detail
    assert T.tokenizer == S.tokenizer != X.tokenizer
    ranked = drafts.rank(T, [X, S])
    assert ranked.best == "same"
    other_row = ranked.candidates[-1]  # another token -> id map: a heterogeneous-vocab candidate only
    assert other_row.name == "other" and other_row.heterogeneous_vocab and other_row.same_tokenizer is False
    assert other_row.speculative_config == {"use_heterogeneous_vocab": True, "draft_sample_method": "greedy"}
    assert other_row.score < ranked.candidates[0].score


def test_missing_tokenizer_files_are_unverified_not_equal(tmp_path):
    T = models.resolve(str(llama_dir(tmp_path, "t")))
    D = models.resolve(str(llama_dir(tmp_path, "d")))
    same, detail = drafts.compare_tokenizers(T, D)
    assert same is None and "no tokenizer" in detail


def test_catalog_tokenizer_ids_and_family():
    t = models.from_catalog("Llama-3.1-70B")
    r = drafts.rank(t, [models.from_catalog("Qwen2.5-0.5B"), models.from_catalog("Llama-3.2-1B"),
                        models.from_catalog("Llama-3.1-8B")])
    assert [c.name for c in r.candidates] == ["Llama-3.1-8B", "Llama-3.2-1B", "Qwen2.5-0.5B"]
    assert r.candidates[0].ratio == pytest.approx(8.8, abs=0.1) and r.candidates[0].same_tokenizer
    assert r.candidates[-1].same_tokenizer is False and not r.candidates[-1].same_family
    assert r.candidates[-1].heterogeneous_vocab and r.candidates[-1].methods == ["draft_model"]


def test_qwen25_72b_never_ranks_another_vocab_size_as_same_tokenizer():
    """vocab_size from the public config.json of each model (catalog `source`): Qwen2.5-72B/7B/14B/32B
    152064, Qwen2.5-0.5B/1.5B/3B and every Qwen3 151936; vLLM's draft_model refuses unequal sizes."""
    t = models.from_catalog("Qwen2.5-72B")
    r = drafts.rank(t, drafts.catalog_siblings(t))
    names = {c.name for c in r.candidates}
    assert {"Qwen2.5-0.5B", "Qwen2.5-1.5B", "Qwen2.5-3B", "Qwen3-8B", "Qwen2.5-7B"} <= names
    for c in r.candidates:
        cand = models.from_catalog(c.name)
        if cand.vocab_size != t.vocab_size:
            assert c.same_tokenizer is False and c.heterogeneous_vocab, c.name
            assert c.speculative_config["use_heterogeneous_vocab"] and c.methods == ["draft_model"]
        else:
            assert c.same_tokenizer is True and not c.heterogeneous_vocab
    assert r.best == "Qwen2.5-7B" and "same tokenizer" in r.finding


def test_family_means_family_and_generation_not_vendor():
    t = models.from_catalog("Qwen2.5-72B")
    q25, q3 = (drafts.score_candidate(t, models.from_catalog(n)) for n in ("Qwen2.5-7B", "Qwen3-8B"))
    assert q25.same_family and not q3.same_family
    moe = models.from_catalog("Qwen3-30B-A3B")  # qwen3_moe is Qwen3's generation too
    assert drafts.score_candidate(moe, models.from_catalog("Qwen3-1.7B")).same_family


def test_catalog_siblings_share_tokenizer_and_are_smaller():
    sib = drafts.catalog_siblings(models.from_catalog("Qwen2.5-72B"))
    assert sib and all(s.tokenizer == "qwen2-151k" for s in sib)
    assert "Qwen2.5-72B" not in [s.name for s in sib]


def test_methods_detected(tmp_path):
    ds = models.from_catalog("DeepSeek-V3")
    assert "mtp" in drafts.target_methods(ds) and drafts.target_methods(ds)[-2:] == ["ngram", "suffix"]
    assert "mtp" not in drafts.target_methods(models.from_catalog("Llama-3.1-8B"))
    t = models.resolve(str(llama_dir(tmp_path, "t", layers=8)))
    head = models.resolve(str(llama_dir(tmp_path, "eagle3-head", layers=1, extra_cfg={
        "architectures": ["LlamaForCausalLMEagle3"],
        "speculators_config": {"verifier": {"name_or_path": str(tmp_path / "t")}}})))
    assert "eagle3" in drafts.target_methods(t, [head])
    assert drafts.score_candidate(t, head).methods == ["eagle3"]
    stranger = models.resolve(str(llama_dir(tmp_path, "eagle3-other", layers=1, extra_cfg={
        "architectures": ["LlamaForCausalLMEagle3"], "speculators_config": {"verifier": {"name_or_path": "x/other"}}})))
    assert "eagle3" not in drafts.target_methods(t, [stranger])
    row = drafts.score_candidate(t, stranger)
    assert row.methods == [] and row.score == 0 and any("names x/other" in r for r in row.reasons)


def test_measured_acceptance_changes_the_ranking():
    t = models.from_catalog("Llama-3.1-70B")
    c = [models.from_catalog("Llama-3.1-8B"), models.from_catalog("Llama-3.2-3B")]
    assert drafts.rank(t, c).best == "Llama-3.1-8B"
    assert drafts.rank(t, c, acceptance={"Llama-3.1-8B": 0.3, "Llama-3.2-3B": 0.8}).best == "Llama-3.2-3B"


def test_the_public_eagle_heads_of_llama_31_8b_are_offered_for_it_only():
    """The catalog's EAGLE-3 and EAGLE-1 heads of Llama-3.1-8B (by their Hub ids, as vLLM's docs name them)
    rank for that target, EAGLE-3 first; the EAGLE-1 head trained for Llama-3-70B is not offered for 3.1-70B."""
    assert models.resolve("yuhuili/EAGLE-LLaMA3.1-Instruct-8B", "draft").name == "EAGLE-Llama-3.1-8B"
    assert models.resolve("yuhuili/EAGLE-LLaMA3-Instruct-70B", "draft").eagle_head
    target = models.resolve("Llama-3.1-8B")
    ranked = drafts.rank(target, drafts.catalog_siblings(target)).candidates
    names = [c.name for c in ranked]
    assert names[:2] == ["EAGLE3-Llama-3.1-8B", "EAGLE-Llama-3.1-8B"]
    assert ranked[0].methods == ["eagle3"] and ranked[1].methods == ["eagle"]
    big = models.resolve("Llama-3.1-70B")
    assert not any(c.eagle_head for c in drafts.catalog_siblings(big))
