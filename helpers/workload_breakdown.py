"""Acceptance and speedup of a load test broken down by workload class and by prompt-length bucket.

Computed from the load step's raw per-request records (``artifacts/50_load_requests.jsonl``): at each
level, the requests of one class (the ``workload`` each record carries: a shipped class, a file, a
Spec-Bench category) or of one prompt-length bucket (``prompt_tokens`` from the server's usage, in
power-of-two buckets), baseline against speculative. Speedup = median TPOT baseline / median TPOT spec
with an independent bootstrap interval (``stats.bootstrap_ratio``); acceptance is pooled from the
responses' own spec-decode metrics (``metrics.speculative_decoding``: accepted / draft tokens, and
1 + accepted / verify steps), so only the group's requests count. The rows go into ``LoadResult.breakdown``
and ``artifacts/50_load_breakdown.csv``.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from .load_analysis import tpots
from .loadgen import attempt_of
from .schemas.load import LoadResult
from .schemas.workloads import BreakdownRow
from .stats import bootstrap_ratio

BREAKDOWN_CSV = "50_load_breakdown.csv"
MIN_BUCKET = 64  # prompts shorter than this share one bucket


def length_bucket(prompt_tokens: int | None) -> str:
    """Power-of-two bucket of a prompt length: '<64', '64-127', '128-255', ...; 'unknown' without usage."""
    if not prompt_tokens:
        return "unknown"
    if prompt_tokens < MIN_BUCKET:
        return f"<{MIN_BUCKET}"
    low = 1 << (int(prompt_tokens).bit_length() - 1)
    return f"{low}-{2 * low - 1}"


def _bucket_key(bucket: str) -> int:
    return -1 if bucket.startswith("<") else (1 << 62 if bucket == "unknown" else int(bucket.split("-")[0]))


def _attempts(result: LoadResult) -> dict[str, tuple[str, float]]:
    """attempt id -> (config, level) for every level the result pooled (mixed-workload levels too)."""
    out: dict[str, tuple[str, float]] = {}
    for st in [*result.levels, *result.mixed_levels]:
        if st.status != "ok":
            continue
        for a in st.attempts or ([st.attempt] if st.attempt else []):
            out[a] = (st.config, st.level)
    return out


def _pooled_acceptance(records: list[dict]) -> tuple[float | None, float | None]:
    drafted = accepted = steps = 0
    for r in records:
        spec = r.get("spec") or {}
        drafted += spec.get("num_draft_tokens") or 0
        accepted += spec.get("num_accepted_draft_tokens") or 0
        steps += spec.get("num_spec_steps") or 0
    rate = accepted / drafted if drafted else None
    return rate, (1 + accepted / steps if steps else None)


def breakdown(records: list[dict], result: LoadResult, seed: int = 0) -> list[BreakdownRow]:
    """Rows by class and by length bucket at each level, from the records of the attempts ``result`` pooled."""
    where = _attempts(result)
    groups: dict[tuple[str, str, float], dict[str, list[dict]]] = defaultdict(lambda: {"baseline": [], "spec": []})
    for r in records:
        if r.get("warmup") or r.get("status") != "ok":
            continue
        hit = where.get(attempt_of(str(r.get("id", ""))))
        if hit is None:
            continue
        config, level = hit
        groups[("class", str(r.get("workload") or "unknown"), level)][config].append(r)
        groups[("length", length_bucket(r.get("prompt_tokens")), level)][config].append(r)
    rows = []
    for (by, group, level), recs in groups.items():
        base, spec = recs["baseline"], recs["spec"]
        point, low, high = bootstrap_ratio(tpots(base), tpots(spec), seed=seed)
        rate, length = _pooled_acceptance(spec)
        tb, ts = sorted(tpots(base)), sorted(tpots(spec))
        rows.append(BreakdownRow(
            by=by, group=group, level=level, requests_baseline=len(base), requests_spec=len(spec),
            tpot_p50_baseline_ms=_median(tb), tpot_p50_spec_ms=_median(ts), speedup=point, ci_low=low, ci_high=high,
            acceptance_rate=rate, mean_acceptance_length=length))
    rows.sort(key=lambda r: (r.by, r.level, _bucket_key(r.group) if r.by == "length" else 0, r.group))
    return rows


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def write_csv(rows: list[BreakdownRow], path: str | Path) -> Path:
    """The breakdown as CSV (one row per group and level; the columns are BreakdownRow's fields)."""
    path = Path(path)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(BreakdownRow.model_fields))
        w.writeheader()
        for r in rows:
            w.writerow(r.model_dump())
    return path


def table_markdown(rows: list[BreakdownRow]) -> str:
    """A compact Markdown table of the rows (for summary.md or the notebook)."""
    def f(x, fmt):
        return "-" if x is None else format(x, fmt)

    lines = ["| by | group | level | requests (b/s) | speedup [95% CI] | acceptance | mean acc. length |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = f" [{r.ci_low:.2f}, {r.ci_high:.2f}]" if r.ci_low is not None and r.ci_high is not None else ""
        lines.append(f"| {r.by} | {r.group} | {r.level:g} | {r.requests_baseline}/{r.requests_spec} | "
                     f"{f(r.speedup, '.2f')}{ci} | {f(r.acceptance_rate, '.2f')} | {f(r.mean_acceptance_length, '.2f')} |")
    return "\n".join(lines)
