"""The shipped tiny pair and prompt sets: loadable, one shared vocabulary, small, held out."""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

import pytest
from safetensors import safe_open
from transformers import AutoConfig, AutoTokenizer

from playbook.helpers.embedded import tiny_pair

ROOT = Path(__file__).resolve().parents[2]
WORKLOADS = ROOT / "playbook" / "data" / "workloads"
CLASSES = ("structured", "code", "summarization", "chat", "creative")
MAX_PAIR_BYTES = 25 * 1024 * 1024  # as git and the wheel store it (compressed)
MAX_PAIR_DISK_BYTES = 64 * 1024 * 1024  # unpacked: the target's zero-padded MLP is 50 MB of it


def _params(model_dir: Path) -> int:
    total = 0
    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as fh:
        for name in fh.keys():
            n = 1
            for d in fh.get_slice(name).get_shape():
                n *= d
            total += n
    return total


def _rows(workload: str) -> list[dict]:
    return [json.loads(line) for line in (WORKLOADS / f"{workload}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def pair():
    return tiny_pair()


@pytest.mark.parametrize("which", ["target", "draft"])
def test_model_dir_loads_as_llama_with_cpu_friendly_heads(pair, which):
    path = getattr(pair, which)
    config = AutoConfig.from_pretrained(path)
    assert config.model_type == "llama"
    assert config.hidden_size // config.num_attention_heads == 32  # CPU attention rejects 16
    for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                 "tokenizer_config.json", "special_tokens_map.json"):
        assert (path / name).is_file(), name
    with safe_open(str(path / "model.safetensors"), framework="pt") as fh:
        assert {str(fh.get_slice(k).get_dtype()) for k in fh.keys()} == {"BF16"}


def test_target_and_draft_share_one_vocabulary(pair):
    t, d = AutoTokenizer.from_pretrained(pair.target), AutoTokenizer.from_pretrained(pair.draft)
    assert t.get_vocab() == d.get_vocab()
    assert (t.bos_token, t.eos_token, t.pad_token) == (d.bos_token, d.eos_token, d.pad_token)
    ct, cd = AutoConfig.from_pretrained(pair.target), AutoConfig.from_pretrained(pair.draft)
    assert ct.vocab_size == cd.vocab_size == len(t)
    assert ct.eos_token_id == cd.eos_token_id == t.eos_token_id


def test_draft_is_much_smaller_than_target(pair):
    ratio = _params(pair.target) / _params(pair.draft)
    assert ratio >= 2.0, ratio


def test_pair_fits_the_size_budget(pair):
    files = [f for d in pair for f in d.iterdir() if f.is_file()]
    assert sum(f.stat().st_size for f in files) <= MAX_PAIR_DISK_BYTES
    stored = sum(len(zlib.compress(f.read_bytes())) for f in files)  # git blobs and wheel members are deflated
    assert stored <= MAX_PAIR_BYTES, stored


def test_chat_template_matches_the_shipped_chat_prompts(pair):
    tok = AutoTokenizer.from_pretrained(pair.target)
    for row in _rows("chat"):
        rendered = tok.apply_chat_template(row["messages"], tokenize=False, add_generation_prompt=True)
        assert rendered == row["prompt"]


@pytest.mark.parametrize("workload", CLASSES)
def test_prompt_file_parses(workload):
    rows = _rows(workload)
    assert 30 <= len(rows) <= 60
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({r["prompt"] for r in rows}) == len(rows)
    for r in rows:
        assert r["id"].startswith(f"{workload}-")
        assert isinstance(r["prompt"], str) and r["prompt"].strip()
        assert isinstance(r["max_tokens"], int) and r["max_tokens"] > 0
        if workload == "chat":
            assert r["messages"] and r["messages"][-1]["role"] == "user"


def test_prompt_sets_are_held_out_from_training():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_tiny_pair
        import tiny_corpus
    finally:
        sys.path.pop(0)
    train = {p for _, p, _ in build_tiny_pair.samples(build_tiny_pair.SEED)}
    shipped = {r["prompt"] for w in CLASSES for r in _rows(w)}
    assert not shipped & train
    # and the script regenerates exactly the shipped files
    for w in CLASSES:
        again = tiny_corpus.prompt_set(w, len(_rows(w)), build_tiny_pair.PROMPT_SEED, train)
        assert again == _rows(w)
