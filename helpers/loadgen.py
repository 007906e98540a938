"""Async streaming load generator for OpenAI-compatible servers (aiohttp + asyncio).

Per request it records TTFT, TPOT = (E2E - TTFT) / (output tokens - 1), per-token ITL (a chunk's
gap divided by the tokens it carries: with speculation one chunk carries several), E2E, the
scheduled and actual send times (dispatch lag), status and error, the server's
``metrics.speculative_decoding`` block when it sends one, and whether the stream was
**burst-delivered** (:func:`is_burst`: its TPOT and ITL then say nothing about the server's pace).
Token counts come from the server (``stream_options: include_usage + continuous_usage_stats``);
without them each non-empty chunk counts as one token and ``usage_from_server`` is false.

Load shapes: a fixed concurrency cap (closed loop), or an arrival process at a request rate
(constant, Poisson, gamma with a burstiness shape), optionally capped in flight. Warmup requests
are sent first and excluded; a phase stops at its request count or duration limit.

Robustness: HTTP 4xx/5xx, timeouts (a stalled stream ends at ``timeout_s``) and connection resets
are recorded and counted and the phase goes on; malformed SSE lines are counted, never raised;
connection refused (the server is gone) ends the phase as ``failed`` with the reason, keeping
every record completed before. Each record is appended to JSONL (fsynced, by a writer thread so
the event loop never blocks on disk) as it completes.

The hot path uses plain dicts and ``time.perf_counter``; :func:`run_phase_sync` runs a phase from
synchronous code or from inside Jupyter's running event loop (in a worker thread with its own loop).
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
import numpy as np
from tqdm.auto import tqdm

from . import http_policy
from .artifacts import append_jsonl
from .schemas.loadgen import PhaseSummary
from .schemas.workloads import PromptItem
from .server import auth_headers
from .workloads import request_extras

ShapeKind = Literal["concurrency", "constant", "poisson", "gamma"]
_DATA = b"data:"
NEAR_ZERO_GAP_MS = 0.1  # two token-carrying chunks closer than this arrived together (no decode is this fast)
BURST_MIN_SHARE = 0.5  # burst-delivered: at least this share of the chunk gaps is near zero
BURST_MIN_GAPS = 4  # ... out of at least this many (a client late to read may merge a pair of chunks now and then)
BURST_MAX_DECODE_SHARE = 0.25  # ... and the tokens after the first came in under this share of the request's time


def is_burst(gaps: int, near_zero: int, decode_ms: float | None = None, e2e_ms: float | None = None) -> bool:
    """A burst-delivered stream: at least four gaps between token-carrying chunks, and at least half
    of them under 0.1 ms. Each chunk is one engine step (with speculation, several tokens), and no
    engine step takes 0.1 ms, so such chunks were held back somewhere (server, proxy) and reached the
    client together: the stream's TPOT and ITL are then not the server's pace. Typical case on the
    embedded CPU server: the first chunk arrives after about the whole generation time, the rest
    within ~0.01 ms. Chunk gaps, not per-token ITL, are tested: a speculative chunk's gap divided by
    its tokens can be small without any burst.

    With the times known, the chunks after the first must also have come within a quarter of the
    request's time (``decode_ms`` < 0.25 ``e2e_ms``): chunks merged in pairs by a busy client, still
    arriving at the server's pace over the whole request, leave TPOT = (E2E - TTFT) / (tokens - 1)
    right and are not a burst (measured on the embedded engine: 39 of 1680 streams merged pairs this
    way, at a client/server TPOT ratio of 0.997)."""
    merged = gaps >= BURST_MIN_GAPS and near_zero >= BURST_MIN_SHARE * gaps
    if not merged or decode_ms is None or not e2e_ms:
        return merged
    return decode_ms < BURST_MAX_DECODE_SHARE * e2e_ms


def attempt_of(record_id: str) -> str:
    """The attempt id in a record id ``<phase>/<attempt>-<index>`` (a phase label may hold '/')."""
    return record_id.rsplit("/", 1)[-1].split("-", 1)[0]


def records_of_attempts(records: list[dict], attempts: set[str], warmup: bool = False) -> dict[str, list[dict]]:
    """The records of the given attempts (measured ones only unless ``warmup``), by attempt."""
    out: dict[str, list[dict]] = {a: [] for a in attempts}
    for r in records:
        a = attempt_of(str(r.get("id", "")))
        if a in out and (warmup or not r.get("warmup")):
            out[a].append(r)
    return out


@dataclass
class LoadShape:
    """How requests arrive. ``concurrency``: closed loop with that many in flight.
    ``constant``/``poisson``/``gamma``: open loop at ``rate`` req/s (gamma shape ``burstiness``,
    1 = Poisson, < 1 burstier), with at most ``concurrency`` in flight when it is > 0."""

    kind: ShapeKind = "concurrency"
    concurrency: int = 0
    rate: float = 0.0
    burstiness: float = 1.0

    @property
    def level(self) -> float:
        return float(self.concurrency if self.kind == "concurrency" else self.rate)

    def label(self) -> str:
        return f"c{self.concurrency}" if self.kind == "concurrency" else f"{self.kind}{self.rate:g}rps"


def arrival_offsets(shape: LoadShape, n: int, seed: int = 0) -> np.ndarray:
    """Send times (s from phase start) for an open-loop shape; the first request goes at 0."""
    if shape.rate <= 0:
        raise ValueError("a rate-based load shape needs rate > 0")
    rng = np.random.default_rng(seed)
    if shape.kind == "constant":
        gaps = np.full(n, 1.0 / shape.rate)
    elif shape.kind == "poisson":
        gaps = rng.exponential(1.0 / shape.rate, size=n)
    elif shape.kind == "gamma":
        gaps = rng.gamma(shape.burstiness, 1.0 / (shape.rate * shape.burstiness), size=n)
    else:
        raise ValueError(f"{shape.kind} is not a rate-based shape")
    gaps[0] = 0.0
    return np.cumsum(gaps)


@dataclass
class Target:
    """Where to send: base URL (no /v1), served model name, optional API key (never recorded)."""

    url: str
    model: str
    api_key: str | None = None
    extra_body: dict = field(default_factory=dict)

    def __repr__(self) -> str:  # keep the key out of logs and tracebacks
        return f"Target(url={self.url!r}, model={self.model!r})"


@dataclass
class PhaseResult:
    records: list[dict]
    summary: PhaseSummary
    warmup_records: list[dict] = field(default_factory=list)


class _Writer:
    """Appends records to JSONL from a thread, so fsync never stalls the event loop."""

    def __init__(self, path: Path | None):
        self.path = path
        self.q: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="jsonl-writer", daemon=True) if path else None
        if self.thread:
            self.thread.start()

    def _run(self) -> None:
        while (rec := self.q.get()) is not None:
            append_jsonl(self.path, rec)

    def put(self, rec: dict) -> None:
        if self.thread:
            self.q.put(rec)

    def close(self) -> None:
        if self.thread:
            self.q.put(None)
            self.thread.join()


def request_body(item: PromptItem, model: str, extra: dict | None = None) -> tuple[str, dict]:
    """(path, JSON body) for one prompt: chat for ``messages``, completions for ``prompt``."""
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": item.max_tokens,
        "temperature": item.temperature,
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
    }
    if item.is_chat:
        body["messages"] = item.messages
        path = "/v1/chat/completions"
    else:
        body["prompt"] = item.prompt
        path = "/v1/completions"
    body.update(request_extras(item))  # guided decoding (JSON schema, tool calls), templated prompts
    if extra:
        body.update(extra)
    return path, body


def _chat_piece(delta: dict) -> str | None:
    """A chat chunk's text: its content, or the arguments of the tool calls it streams."""
    if delta.get("content") or not delta.get("tool_calls"):
        return delta.get("content")
    return "".join((t.get("function") or {}).get("arguments") or "" for t in delta["tool_calls"]) or None


class _Phase:
    """State of one phase: the session, counters, the refusal flag."""

    def __init__(self, target: Target, phase: str, timeout_s: float, writer: _Writer, t0: float):
        self.target, self.phase, self.timeout_s, self.writer, self.t0 = target, phase, timeout_s, writer, t0
        self.headers = auth_headers(target.api_key)
        self.stop = asyncio.Event()
        self.reason = ""
        self.base = target.url.rstrip("/")
        self.http = http_policy.request_kwargs(self.base)  # proxy (never for loopback), no redirects
        self.attempt = uuid.uuid4().hex[:8]  # ids stay unique when a phase is measured again
        self.answered, self.timed_out = False, 0

    def note(self, rec: dict) -> dict:
        """Count an ended request (for :meth:`stalled`); returns it."""
        self.answered = self.answered or rec["status"] == "ok"
        self.timed_out += rec["status"] == "timeout"
        return rec

    def stalled(self, at_once: int) -> bool:
        """No request answered and as many timed out as are sent at once: the server is stalled, and sending more
        would only add a timeout each (a phase stops dispatching; the caller says why)."""
        return not self.answered and self.timed_out >= max(1, at_once)

    async def send(self, session: aiohttp.ClientSession, idx: int, item: PromptItem, scheduled: float,
                   warmup: bool) -> dict:
        path, body = request_body(item, self.target.model, self.target.extra_body)
        chat = item.is_chat
        rec: dict[str, Any] = {
            "id": f"{self.phase}/{self.attempt}-{'w' if warmup else ''}{idx}", "prompt_id": item.id, "workload": item.workload,
            "temperature": item.temperature, "phase": self.phase, "warmup": warmup,
            "scheduled_s": scheduled, "status": "ok", "http_status": None, "error": None,
            "prompt_tokens": None, "output_tokens": None, "ttft_ms": None, "tpot_ms": None, "e2e_ms": None,
            "itl_ms": [], "chunks": 0, "malformed_lines": 0, "usage_from_server": False, "spec": None, "text": "",
            "burst": False, "gaps_near_zero": 0,
        }
        itl: list[float] = []
        pieces: list[str] = []
        first = last = None
        counted = last_ct = 0
        server_ct = None
        malformed = chunks = gaps = near_zero = 0
        ctype = ""
        t_send = time.perf_counter()
        rec["sent_s"] = t_send - self.t0
        rec["dispatch_lag_ms"] = (rec["sent_s"] - scheduled) * 1000.0
        try:
            async with session.post(self.base + path, json=body, headers=self.headers,
                                    timeout=aiohttp.ClientTimeout(total=self.timeout_s), **self.http) as resp:
                rec["http_status"] = resp.status
                if resp.status != 200:
                    rec["status"] = "http_error"
                    rec["error"] = f"HTTP {resp.status}: {(await resp.text())[:300]}"
                else:
                    ctype = resp.content_type
                    async for line in resp.content:
                        if not line.startswith(_DATA):
                            if line.strip() and not line.startswith((b":", b"event:", b"id:", b"retry:")):
                                malformed += 1
                            continue
                        payload = line[5:].strip()
                        if payload == b"[DONE]":
                            break
                        try:
                            obj = json.loads(payload)
                            choices = obj.get("choices")
                        except (ValueError, AttributeError):
                            malformed += 1
                            continue
                        now = time.perf_counter()
                        if obj.get("error"):
                            rec["status"] = "stream_error"
                            rec["error"] = str(obj["error"])[:300]
                            continue
                        usage = obj.get("usage")
                        if choices:
                            chunks += 1
                            c = choices[0]
                            piece = _chat_piece(c.get("delta") or {}) if chat else c.get("text")
                            if piece:
                                pieces.append(piece)
                            ct = usage.get("completion_tokens") if usage else None
                            if ct is not None:
                                ntok, last_ct, server_ct = ct - last_ct, ct, ct
                            else:
                                ntok = 1 if piece else 0
                            if ntok > 0:
                                if first is None:
                                    first = now
                                else:
                                    gap_ms = (now - last) * 1000.0
                                    itl.extend([gap_ms / ntok] * ntok)
                                    gaps += 1
                                    near_zero += gap_ms < NEAR_ZERO_GAP_MS
                                last = now
                                counted += ntok
                        elif usage:
                            rec["prompt_tokens"] = usage.get("prompt_tokens")
                            if usage.get("completion_tokens") is not None:
                                server_ct = usage["completion_tokens"]
                            metrics = obj.get("metrics") or {}
                            if metrics.get("speculative_decoding"):
                                rec["spec"] = metrics["speculative_decoding"]
                        else:
                            malformed += 1
                        if usage and rec["prompt_tokens"] is None:
                            rec["prompt_tokens"] = usage.get("prompt_tokens")
        except (TimeoutError, asyncio.TimeoutError):
            rec["status"], rec["error"] = "timeout", f"no complete response within {self.timeout_s:g} s"
        except aiohttp.ClientConnectorError as exc:
            rec["status"], rec["error"] = "refused", f"cannot connect to {self.base}: {exc.os_error or exc}"
            if not self.stop.is_set():
                self.reason = (f"connection refused by {self.base} (server down?) at request {idx}; "
                               "the phase ended early, completed records are kept")
                self.stop.set()
        except (aiohttp.ClientError, ConnectionError, ValueError) as exc:
            rec["status"], rec["error"] = "connection_error", f"{type(exc).__name__}: {str(exc)[:200]}"
        end = time.perf_counter()
        rec["e2e_ms"] = (end - t_send) * 1000.0
        out = server_ct if server_ct is not None else counted
        rec["output_tokens"] = out
        rec["usage_from_server"] = server_ct is not None
        rec["chunks"], rec["malformed_lines"], rec["itl_ms"] = chunks, malformed, itl
        rec["text"] = "".join(pieces)
        decode_ms = (last - first) * 1000.0 if first is not None and last is not None else None
        rec["gaps_near_zero"], rec["burst"] = near_zero, is_burst(gaps, near_zero, decode_ms, rec["e2e_ms"])
        if first is not None:
            rec["ttft_ms"] = (first - t_send) * 1000.0
            if out > 1:
                rec["tpot_ms"] = (rec["e2e_ms"] - rec["ttft_ms"]) / (out - 1)
        if rec["status"] == "ok" and first is None:
            rec["status"], rec["error"] = "stream_error", "the stream ended without any token" + (
                f"; the server answered {ctype}, not text/event-stream: it does not stream (the request asks for "
                "\"stream\": true); point the URL at a vLLM/OpenAI-compatible server that streams"
                if ctype and ctype != "text/event-stream" else "")
        return rec


def client_session() -> aiohttp.ClientSession:
    """The HTTP session a phase sends on (:func:`http_policy.client_session`): no connection limit (the
    load shape limits), cached DNS, no decompression, the environment's CA bundle, and no per-request
    netrc or proxy lookups (``trust_env`` off: with it on, aiohttp makes two thread-pool hops per request
    inside the timed span; the proxy is resolved once per target instead)."""
    return http_policy.client_session()


async def send_request(session: aiohttp.ClientSession, target: Target, item: PromptItem, *,
                       phase: str = "single", timeout_s: float = 120.0) -> dict:
    """Send one prompt on the caller's session (see :func:`client_session`) and return its record
    (the same fields a phase records; ``scheduled_s`` and ``dispatch_lag_ms`` are relative to this
    call). Nothing is written to disk; a refused connection is recorded as ``refused``, not raised."""
    state = _Phase(target, phase, timeout_s, _Writer(None), time.perf_counter())
    return await state.send(session, 0, item, 0.0, False)


async def run_phase(
    target: Target,
    items: Sequence[PromptItem],
    shape: LoadShape,
    *,
    phase: str = "phase",
    warmup: int = 0,
    duration_s: float = 0.0,
    timeout_s: float = 120.0,
    seed: int = 0,
    jsonl: str | Path | None = None,
    progress: bool = True,
    abort_on_refused: bool = True,
) -> PhaseResult:
    """Send ``items`` (the first ``warmup`` of them as excluded warmup) with the given load shape."""
    warm_items, items = list(items[:warmup]), list(items[warmup:])
    writer = _Writer(Path(jsonl) if jsonl else None)
    records: list[dict] = []
    warm_records: list[dict] = []
    started = time.perf_counter()
    state = _Phase(target, phase, timeout_s, writer, started)
    bar = tqdm(total=len(items), desc=phase, disable=not progress, leave=False, mininterval=0.5)
    try:
        async with client_session() as session:
            if warm_items:
                cap = max(1, min(shape.concurrency or 1, len(warm_items)))
                warm_records = await _closed_loop(state, session, warm_items, cap, True, None, None)
                for r in warm_records:
                    writer.put(r)
                if state.stop.is_set() and abort_on_refused:
                    items = []
            state.t0 = time.perf_counter()

            def done(rec: dict) -> None:
                records.append(rec)
                writer.put(rec)
                bar.update(1)

            limit = state.t0 + duration_s if duration_s > 0 else None
            if shape.kind == "concurrency":
                await _closed_loop(state, session, items, max(1, shape.concurrency), False, limit, done,
                                   abort_on_refused)
            else:
                await _open_loop(state, session, items, shape, seed, limit, done, abort_on_refused)
    finally:
        bar.close()
        writer.close()
    records.sort(key=lambda r: r["sent_s"])
    summary = summarize_phase(phase, records, state.reason, time.perf_counter() - state.t0)
    summary.attempt = state.attempt
    return PhaseResult(records, summary, warm_records)


async def _closed_loop(state, session, items, cap, warmup, limit, done, abort=True) -> list[dict]:
    """``cap`` workers each take the next item when their previous request ends."""
    it = iter(enumerate(items))
    out: list[dict] = []

    async def worker() -> None:
        free_at = time.perf_counter()
        for idx, item in it:
            if (abort and state.stop.is_set()) or (limit and time.perf_counter() >= limit) or state.stalled(cap):
                return
            rec = state.note(await state.send(session, idx, item, free_at - state.t0, warmup))
            free_at = time.perf_counter()
            (done or out.append)(rec)

    await asyncio.gather(*(worker() for _ in range(min(cap, len(items)) or 1)))
    return out


async def _open_loop(state, session, items, shape, seed, limit, done, abort) -> None:
    """Send at the arrival process's times; ``shape.concurrency`` > 0 caps requests in flight."""
    offsets = arrival_offsets(shape, len(items), seed)
    sem = asyncio.Semaphore(shape.concurrency) if shape.kind != "concurrency" and shape.concurrency > 0 else None
    tasks = []

    async def one(idx: int, item: PromptItem, sched: float) -> None:
        if sem:
            async with sem:
                done(state.note(await state.send(session, idx, item, sched, False)))
        else:
            done(state.note(await state.send(session, idx, item, sched, False)))

    for idx, (item, off) in enumerate(zip(items, offsets, strict=True)):
        due = state.t0 + off
        if limit and due >= limit:
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if (abort and state.stop.is_set()) or state.stalled(shape.concurrency or 1):
            break
        tasks.append(asyncio.create_task(one(idx, item, float(off))))
    if tasks:
        await asyncio.gather(*tasks)


def summarize_phase(phase: str, records: list[dict], reason: str, duration_s: float) -> PhaseSummary:
    statuses = Counter(r["status"] for r in records)
    lags = [r["dispatch_lag_ms"] for r in records]
    return PhaseSummary(
        phase=phase,
        status="failed" if reason else "ok",
        reason=reason,
        sent=len(records),
        completed=len(records),
        ok=statuses.get("ok", 0),
        errors=len(records) - statuses.get("ok", 0),
        errors_by_status={k: v for k, v in statuses.items() if k != "ok"},
        malformed_lines=sum(r["malformed_lines"] for r in records),
        duration_s=duration_s,
        dispatch_lag_p99_ms=float(np.percentile(lags, 99)) if lags else None,
    )


def run_sync(coro_factory, *args, **kwargs):
    """Run ``coro_factory(*args, **kwargs)`` to completion from sync code or inside a running loop
    (Jupyter): then it runs in a worker thread with its own event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_factory(*args, **kwargs))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="loadgen") as pool:
        return pool.submit(lambda: asyncio.run(coro_factory(*args, **kwargs))).result()


def run_phase_sync(*args, **kwargs) -> PhaseResult:
    """Synchronous :func:`run_phase` (works inside Jupyter's running loop)."""
    return run_sync(run_phase, *args, **kwargs)
