"""Losslessness guard: does the speculative configuration change what the model says?

- Temperature 0: both servers decode greedily; the share of outputs identical token for token and
  the first divergence (prompt and token index). ``lossless`` when the share is at least
  ``min_identical`` (bf16 numerics of a k+1-token verification pass can flip a near-tie, so a
  single flip is not proof of a defect; a broken sampler flips most outputs).
- Temperature > 0: outputs are samples, so they differ; instead both sets are scored with the
  BASELINE server's own log-probabilities (``prompt_logprobs`` on ``/v1/completions`` over prompt +
  output tokens) and the per-output mean log-likelihoods are compared with a two-sided
  permutation test. ``lossless`` is false when ``p < alpha``: the false-alarm rate is ``alpha``
  (default 0.01) when the two configurations really sample the same distribution.

Only :func:`generate` and :func:`score` talk HTTP; both use the non-streaming completions API
with ``return_token_ids`` so comparisons are on token ids, not text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp
import numpy as np

from . import http_policy
from .errors import MeasurementError
from .loadgen import Target, run_sync
from .schemas.lossless import LosslessPoint, LosslessResult
from .schemas.workloads import PromptItem
from .server import auth_headers
from .stats import permutation_test


def _prompt_text(item: PromptItem) -> str:
    if item.prompt:
        return item.prompt
    return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in item.messages or []) + "\nassistant:"


async def _post(session: aiohttp.ClientSession, target: Target, body: dict, timeout_s: float) -> dict:
    headers = auth_headers(target.api_key)
    url = target.url.rstrip("/") + "/v1/completions"
    try:
        async with session.post(url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s),
                                **http_policy.request_kwargs(url)) as resp:
            if resp.status != 200:
                raise MeasurementError(f"{url} answered HTTP {resp.status}: {(await resp.text())[:300]}",
                                       "check the model name and that the server is a vLLM OpenAI server")
            return await resp.json()
    except (aiohttp.ClientError, TimeoutError, asyncio.TimeoutError) as exc:
        raise MeasurementError(f"request to {url} failed: {type(exc).__name__}: {exc}",
                               "check the server is up (it may have been restarted or killed)") from exc


async def _gather(coros: list, concurrency: int) -> list:
    sem = asyncio.Semaphore(concurrency)

    async def one(c):
        async with sem:
            return await c
    return await asyncio.gather(*(one(c) for c in coros))


async def _generate(target: Target, items: Sequence[PromptItem], temperature: float, max_tokens: int,
                    seed: int, concurrency: int, timeout_s: float) -> list[dict]:
    async with http_policy.client_session() as session:
        async def one(i: int, item: PromptItem) -> dict:
            body = {"model": target.model, "prompt": _prompt_text(item), "max_tokens": max_tokens,
                    "temperature": temperature, "seed": seed + i, "return_token_ids": True}
            data = await _post(session, target, body, timeout_s)
            c = data["choices"][0]
            return {"prompt_id": item.id, "temperature": temperature, "prompt_token_ids": c.get("prompt_token_ids"),
                    "token_ids": c.get("token_ids") or [], "text": c.get("text", "")}
        return await _gather([one(i, it) for i, it in enumerate(items)], concurrency)


def generate(target: Target, items: Sequence[PromptItem], temperature: float, max_tokens: int = 32,
             seed: int = 0, concurrency: int = 4, timeout_s: float = 120) -> list[dict]:
    """Outputs (token ids and text) of one server for the prompts, seeded per request."""
    return run_sync(_generate, target, items, temperature, max_tokens, seed, concurrency, timeout_s)


async def _score(target: Target, outputs: list[dict], concurrency: int, timeout_s: float) -> list[float | None]:
    async with http_policy.client_session() as session:
        async def one(o: dict) -> float | None:
            prompt_ids, out_ids = o["prompt_token_ids"] or [], o["token_ids"]
            if not prompt_ids or not out_ids:
                return None
            body = {"model": target.model, "prompt": prompt_ids + out_ids, "max_tokens": 1,
                    "temperature": 0, "prompt_logprobs": 0}
            data = await _post(session, target, body, timeout_s)
            plp = data["choices"][0].get("prompt_logprobs") or []
            lps = []
            for pos, tok in enumerate(out_ids, start=len(prompt_ids)):
                entry = plp[pos] if pos < len(plp) else None
                if entry and str(tok) in entry:
                    lps.append(entry[str(tok)]["logprob"])
            return float(np.mean(lps)) if lps else None
        return await _gather([one(o) for o in outputs], concurrency)


def score(target: Target, outputs: list[dict], concurrency: int = 4, timeout_s: float = 120) -> list[float | None]:
    """Mean per-token log-likelihood of each output under ``target`` (the baseline server)."""
    return run_sync(_score, target, outputs, concurrency, timeout_s)


def compare(temperature: float, base: list[dict], spec: list[dict], ll_base: list[float | None],
            ll_spec: list[float | None], alpha: float = 0.01, min_identical: float = 0.9,
            seed: int = 0) -> LosslessPoint:
    """One temperature's verdict from both servers' outputs and their baseline log-likelihoods."""
    pt = LosslessPoint(temperature=temperature, requests=min(len(base), len(spec)), alpha=alpha)
    lb = [x for x in ll_base if x is not None]
    ls = [x for x in ll_spec if x is not None]
    pt.loglik_baseline = float(np.mean(lb)) if lb else None
    pt.loglik_spec = float(np.mean(ls)) if ls else None
    pt.p_value = permutation_test(lb, ls, seed=seed)
    if temperature == 0:
        same = 0
        for b, s in zip(base, spec, strict=False):
            if b["token_ids"] == s["token_ids"]:
                same += 1
            elif pt.first_divergence is None:
                idx = next((i for i, (x, y) in enumerate(zip(b["token_ids"], s["token_ids"], strict=False)) if x != y),
                           min(len(b["token_ids"]), len(s["token_ids"])))
                pt.first_divergence = {"prompt_id": b["prompt_id"], "token_index": idx,
                                       "baseline": b["text"][:200], "spec": s["text"][:200]}
        pt.identical_share = same / pt.requests if pt.requests else None
        pt.lossless = pt.identical_share is not None and pt.identical_share >= min_identical
        pt.reason = (f"{pt.identical_share:.0%} of greedy outputs identical token for token "
                     f"(threshold {min_identical:.0%})" if pt.identical_share is not None else "no outputs")
    else:
        if pt.p_value is None:
            pt.reason = "no output could be scored"
        else:
            pt.lossless = pt.p_value >= alpha
            pt.reason = (f"mean log-likelihood under the baseline: baseline outputs {pt.loglik_baseline:.3f}, "
                         f"spec outputs {pt.loglik_spec:.3f}, permutation p = {pt.p_value:.4f} "
                         f"({'no significant gap' if pt.lossless else 'significant gap'} at alpha {alpha:g})")
    return pt


def check_against_baseline(baseline: Target, items: Sequence[PromptItem], spec_outputs: dict[float, list[dict]],
                           max_tokens: int = 32, alpha: float = 0.01, min_identical: float = 0.9,
                           seed: int = 0, concurrency: int = 4) -> LosslessResult:
    """With the speculative outputs already generated: generate the baseline's, score, compare."""
    res = LosslessResult(alpha=alpha)
    for t, spec in spec_outputs.items():
        base = generate(baseline, items, t, max_tokens, seed, concurrency)
        res.temperatures.append(compare(t, base, spec, score(baseline, base, concurrency),
                                        score(baseline, spec, concurrency), alpha, min_identical, seed))
    verdicts = [p.lossless for p in res.temperatures]
    res.lossless = None if any(v is None for v in verdicts) or not verdicts else all(verdicts)
    bad = [p for p in res.temperatures if p.lossless is False]
    res.finding = ("NOT LOSSLESS: " + "; ".join(f"T={p.temperature:g}: {p.reason}" for p in bad) if bad
                   else "lossless: " + "; ".join(f"T={p.temperature:g}: {p.reason}" for p in res.temperatures))
    return res


def check(baseline: Target, spec: Target, items: Sequence[PromptItem], temperatures: Sequence[float],
          max_tokens: int = 32, alpha: float = 0.01, min_identical: float = 0.9, seed: int = 0,
          concurrency: int = 4) -> LosslessResult:
    """Both servers reachable at once (external mode): the full guard."""
    outs = {t: generate(spec, items, t, max_tokens, seed, concurrency) for t in temperatures}
    return check_against_baseline(baseline, items, outs, max_tokens, alpha, min_identical, seed, concurrency)
