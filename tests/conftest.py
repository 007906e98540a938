"""Shared fixtures. Engine tests (real vLLM on the CPU) are marked `engine` and run in CI too."""

from __future__ import annotations

import json
import os

import pytest

from tests.support import tiny_models

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
