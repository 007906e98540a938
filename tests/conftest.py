"""Shared fixtures. Engine tests (real vLLM on the CPU) are marked `engine` and run in CI too."""

from __future__ import annotations

import json
import os

import pytest

from tests.support import start_fake, stop_fake, tiny_models

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def fake_pair(tmp_path, monkeypatch):
    """A tiny pair of the shipped pair's shape (config.json, safetensors headers, identical vocabularies)."""
    root = tmp_path / "pair"
    root.mkdir()
    vocab = json.dumps({"model": {"type": "BPE", "vocab": {f"t{i}": i for i in range(100)}}, "added_tokens": []})
    for name, kw in (("tiny-target", dict(layers=4, hidden=128, heads=4, kv=2)), ("tiny-draft", dict(layers=1))):
        d = tiny_models.llama_dir(root, name, **kw)
        (d / "tokenizer.json").write_text(vocab)
    monkeypatch.setenv("PLAYBOOK_TINY_PAIR_DIR", str(root))
    return root


@pytest.fixture
def runs_dir(tmp_path):
    d = tmp_path / "runs"
    d.mkdir()
    return d


@pytest.fixture
def two_fakes():
    """Two fake OpenAI servers (tests/support/fake_openai.py, fault injection only) as [baseline URL, spec URL]."""
    procs = [start_fake() for _ in range(2)]
    yield [url for _, url in procs]
    for proc, _ in procs:
        stop_fake(proc)
