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
    assert ranked.best == "same" and ranked.candidates[-1].score == 0 and ranked.candidates[-1].methods == []


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
    # Qwen2.5 sizes share one tokenizer although vocab_size differs (151936 vs 152064)
    assert drafts.compare_tokenizers(models.from_catalog("Qwen2.5-72B"), models.from_catalog("Qwen2.5-0.5B"))[0]


def test_catalog_siblings_share_tokenizer_and_are_smaller():
    sib = drafts.catalog_siblings(models.from_catalog("Qwen2.5-72B"))
    assert sib and all(s.tokenizer == "qwen2-151k" for s in sib)
    assert "Qwen2.5-72B" not in [s.name for s in sib]


def test_methods_detected(tmp_path):
    ds = models.from_catalog("DeepSeek-V3")
    assert "mtp" in drafts.target_methods(ds) and drafts.target_methods(ds)[-2:] == ["ngram", "suffix"]
    assert "mtp" not in drafts.target_methods(models.from_catalog("Llama-3.1-8B"))
    head = models.resolve(str(llama_dir(tmp_path, "eagle3-head", layers=1,
                                        extra_cfg={"architectures": ["LlamaForCausalLMEagle3"]})))
    t = models.resolve(str(llama_dir(tmp_path, "t", layers=8)))
    assert "eagle3" in drafts.target_methods(t, [head])
    assert drafts.score_candidate(t, head).methods == ["eagle3"]


def test_measured_acceptance_changes_the_ranking():
    t = models.from_catalog("Llama-3.1-70B")
    c = [models.from_catalog("Llama-3.1-8B"), models.from_catalog("Llama-3.2-3B")]
    assert drafts.rank(t, c).best == "Llama-3.1-8B"
    assert drafts.rank(t, c, acceptance={"Llama-3.1-8B": 0.3, "Llama-3.2-3B": 0.8}).best == "Llama-3.2-3B"
