"""Request records as the load generator streams them to disk, for tests of what is read back from them."""

from __future__ import annotations


def stream_record(rid: str, phase: str, sent_s: float, ttft_ms: float, gaps: list[tuple[float, int]], **extra) -> dict:
    """A record as the load generator writes it: per-token ITL = a chunk's gap / its tokens, once per token.
    Measured gaps never repeat to the last bit: each gets its own jitter of a few nanoseconds."""
    gaps = [(g + 1e-6 * (i % 7 - 3), n) for i, (g, n) in enumerate(gaps)]
    itl = [g / n for g, n in gaps for _ in range(n)]
    return {"id": rid, "phase": phase, "status": "ok", "warmup": False, "burst": False, "sent_s": sent_s,
            "ttft_ms": ttft_ms, "e2e_ms": ttft_ms + sum(g for g, _ in gaps), "itl_ms": itl, **extra}
