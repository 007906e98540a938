"""Helpers for the engine tests of the tiny pair: one batched request, vLLM's counters around it.

Acceptance comes from vLLM's own ``/metrics`` counters (delta of accepted / draft tokens between
two scrapes), text sanity from how many output words belong to the shipped prompt sets' words.
"""

from __future__ import annotations

import json
import re
import urllib.request
from dataclasses import dataclass
from importlib import resources

from playbook.helpers.metrics import scrape, spec_delta

WORD = re.compile(r"[A-Za-z]{2,}")


def shipped_prompts(workload: str) -> list[dict]:
    text = resources.files("playbook.data").joinpath("workloads", f"{workload}.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def known_words() -> set[str]:
    """Every word of the five shipped prompt sets (the training formats' vocabulary)."""
    words: set[str] = set()
    for w in ("structured", "code", "summarization", "chat", "creative"):
        for row in shipped_prompts(w):
            words.update(m.lower() for m in WORD.findall(row["prompt"]))
    return words


@dataclass
class Probe:
    temperature: float
    acceptance: float | None
    draft_tokens: float
    texts: list[str]

    def word_share(self, vocab: set[str]) -> float:
        """Share of alphabetic words in the outputs that are known words."""
        words = [m.lower() for t in self.texts for m in WORD.findall(t)]
        return sum(w in vocab for w in words) / len(words) if words else 0.0

    def printable_share(self) -> float:
        chars = "".join(self.texts)
        return sum(c.isprintable() or c in "\n\t" for c in chars) / len(chars) if chars else 0.0


def complete(url: str, model: str, prompts: list[str], temperature: float, max_tokens: int = 64,
             seed: int = 0) -> list[str]:
    body = {"model": model, "prompt": prompts, "max_tokens": max_tokens, "temperature": temperature,
            "seed": seed}
    req = urllib.request.Request(f"{url}/v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as resp:
        choices = json.loads(resp.read())["choices"]
    return [c["text"] for c in sorted(choices, key=lambda c: c["index"])]


def probe(server, prompts: list[str], temperature: float, max_tokens: int = 64) -> Probe:
    """Run ``prompts`` at ``temperature`` in one batched request; acceptance from counter deltas."""
    before = scrape(server.url)
    texts = complete(server.url, server.model_name, prompts, temperature, max_tokens)
    delta = spec_delta(before, scrape(server.url))
    return Probe(temperature, delta.acceptance_rate, delta.draft_tokens, texts)
