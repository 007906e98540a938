"""Losslessness guard: does the speculative configuration change what the model says?

- Temperature 0: both servers decode greedily; the share of outputs identical token for token and
  the first divergence (prompt and token index). A k+1-token verification pass rounds differently
  from a 1-token decode pass, so greedy decoding can flip a near-tie: where an output diverges, the
  BASELINE's own log-probabilities of both tokens at that position (same prefix) give the margin by
  which the baseline preferred its token; a margin of at most ``near_tie_nats`` is a near-tie flip
  (numerics), a larger one a changed output. ``lossless`` when identical outputs plus near-tie
  flips are at least ``min_identical`` of the outputs (a broken verifier picks tokens the model
  clearly did not prefer).
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


async def _score(target: Target, outputs: list[dict], concurrency: int, timeout_s: float) -> list[list | None]:
    async with http_policy.client_session() as session:
        async def one(o: dict) -> list | None:
            prompt_ids, out_ids = o["prompt_token_ids"] or [], o["token_ids"]
            if not prompt_ids or not out_ids:
                return None
            body = {"model": target.model, "prompt": prompt_ids + out_ids, "max_tokens": 1,
                    "temperature": 0, "prompt_logprobs": 0}
            data = await _post(session, target, body, timeout_s)
            plp = data["choices"][0].get("prompt_logprobs") or []
            lps: list[float | None] = []
            for pos, tok in enumerate(out_ids, start=len(prompt_ids)):
                entry = plp[pos] if pos < len(plp) else None
                lps.append(entry[str(tok)]["logprob"] if entry and str(tok) in entry else None)
            return lps if any(x is not None for x in lps) else None
        return await _gather([one(o) for o in outputs], concurrency)


def score(target: Target, outputs: list[dict], concurrency: int = 4, timeout_s: float = 120) -> list[list | None]:
    """Each output's per-token log-probabilities under ``target`` (the baseline server), position by
    position (None where the server gave none), or None for an output it could not score."""
    return run_sync(_score, target, outputs, concurrency, timeout_s)


def _mean(lps: list | None) -> float | None:
    vals = [x for x in lps or [] if x is not None]
    return float(np.mean(vals)) if vals else None


def _divergence(b: dict, s: dict) -> int:
    return next((i for i, (x, y) in enumerate(zip(b["token_ids"], s["token_ids"], strict=False)) if x != y),
                min(len(b["token_ids"]), len(s["token_ids"])))


def _margin(lp_b: list | None, lp_s: list | None, idx: int) -> float | None:
    """How much more likely the baseline found its own token than the speculative one at ``idx``
    (log-probabilities on the same prefix), or None when either is unknown (e.g. one output ended)."""
    if not lp_b or not lp_s or idx >= len(lp_b) or idx >= len(lp_s) or lp_b[idx] is None or lp_s[idx] is None:
        return None
    return float(lp_b[idx] - lp_s[idx])


# A bf16 logit keeps 8 significant bits: between 8 and 16 its spacing is 0.0625 nats, and two passes
# of different shapes (a decode step vs a k+1-token verification) round and reduce differently.
# Measured on the embedded engine (2026-12-04, greedy, 24 prompts each of structured, code, chat,
# creative and summarization, 32 tokens): 4 of 120 outputs diverged, at margins 0.0, -0.031, -0.0625
# and 0.0 nats (ties to one bf16 step; negative: the scoring pass itself preferred the speculative
# token). The tolerance is twice the largest: a token the target clearly did not prefer still counts
# as a changed output.
NEAR_TIE_NATS = 0.125


def compare(temperature: float, base: list[dict], spec: list[dict], lp_base: list[list | None],
            lp_spec: list[list | None], alpha: float = 0.01, min_identical: float = 0.9,
            seed: int = 0, near_tie_nats: float = NEAR_TIE_NATS) -> LosslessPoint:
    """One temperature's verdict from both servers' outputs and their per-token log-probabilities
    under the baseline (:func:`score`)."""
    pt = LosslessPoint(temperature=temperature, requests=min(len(base), len(spec)), alpha=alpha,
                       near_tie_nats=near_tie_nats)
    lb = [m for m in map(_mean, lp_base) if m is not None]
    ls = [m for m in map(_mean, lp_spec) if m is not None]
    pt.loglik_baseline = float(np.mean(lb)) if lb else None
    pt.loglik_spec = float(np.mean(ls)) if ls else None
    pt.p_value = permutation_test(lb, ls, seed=seed)
    if temperature == 0:
        same = 0
        for i, (b, s) in enumerate(zip(base, spec, strict=False)):
            if b["token_ids"] == s["token_ids"]:
                same += 1
                continue
            idx = _divergence(b, s)
            margin = _margin(lp_base[i] if i < len(lp_base) else None, lp_spec[i] if i < len(lp_spec) else None, idx)
            tie = margin is not None and margin <= near_tie_nats
            if tie:
                pt.near_tie_margins.append(round(margin, 4))
            if pt.first_divergence is None or (pt.first_divergence["near_tie"] and not tie):
                pt.first_divergence = {"prompt_id": b["prompt_id"], "token_index": idx, "near_tie": tie,
                                       "margin_nats": None if margin is None else round(margin, 4),
                                       "baseline": b["text"][:200], "spec": s["text"][:200]}
        ties = len(pt.near_tie_margins)
        pt.identical_share = same / pt.requests if pt.requests else None
        pt.lossless = pt.identical_share is not None and (same + ties) / pt.requests >= min_identical
        if pt.identical_share is None:
            pt.reason = "no outputs"
        else:
            pt.reason = f"{same} of {pt.requests} greedy outputs identical token for token"
            if ties:
                pt.reason += (f", {ties} diverged at a near-tie (the baseline preferred its own token by "
                              f"{', '.join(f'{m:.3g}' for m in pt.near_tie_margins)} nats, at most {near_tie_nats:g}: "
                              "rounding of a different pass shape)")
            changed = pt.requests - same - ties
            if changed:
                pt.reason += f", {changed} changed beyond a near-tie"
            pt.reason += f" (threshold {min_identical:.0%} unchanged)"
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


def role_problems(baseline: Target, spec: Target) -> tuple[list[str], list[str]]:
    """(problems, notes) of the two servers' roles, read from their /metrics before any output is compared: the
    speculative server must expose vLLM's spec-decode counters (vLLM registers them only with a speculative config)
    and the baseline must not, else identical outputs prove nothing about speculation. A /metrics that cannot be read
    is a note (not checked); one server under two model names (a router) has its baseline left unchecked."""
    from .errors import MetricsError
    from .metrics import scrape
    from .preflight import server_key

    problems: list[str] = []
    notes: list[str] = []
    checks = [("spec", spec)] + ([("baseline", baseline)] if server_key(baseline.url) != server_key(spec.url) else [])
    for role, target in checks:
        try:
            snap = scrape(target.url, api_key=target.api_key)
        except MetricsError as exc:
            notes.append(f"the {role} server's role was not checked: {exc.problem.splitlines()[0]}")
            continue
        if role == "spec" and not snap.speculates:
            problems.append(f"the speculative server {target.url} exposes no vllm:spec_decode counters: it runs without "
                            "speculation, so identical outputs would prove nothing (--spec-url must name the server "
                            "started with --speculative-config)")
        elif role == "baseline" and snap.speculates:
            problems.append(f"the baseline server {target.url} exposes vllm:spec_decode counters: it speculates, so "
                            "this would compare speculation with speculation (--baseline-url must name the server "
                            "started without --speculative-config)")
    if len(problems) == 2:
        problems.append("the two URLs look swapped: give the server without speculation as --baseline-url")
    return problems, notes


def check(baseline: Target, spec: Target, items: Sequence[PromptItem], temperatures: Sequence[float],
          max_tokens: int = 32, alpha: float = 0.01, min_identical: float = 0.9, seed: int = 0,
          concurrency: int = 4) -> LosslessResult:
    """Both servers reachable at once (external mode): the full guard."""
    outs = {t: generate(spec, items, t, max_tokens, seed, concurrency) for t in temperatures}
    return check_against_baseline(baseline, items, outs, max_tokens, alpha, min_identical, seed, concurrency)
