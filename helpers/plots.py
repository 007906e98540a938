"""Matplotlib figures the report shows, one function per figure; each returns a Figure.

Every function takes plain data (result models or lists) and never reads files, so a notebook can
draw whatever subset of the run exists. Figures are closed before they are returned: a notebook
shows them once with ``display(fig)``, a script saves them with ``fig.savefig``.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .schemas.decision import LoadLevel
from .schemas.predict import Prediction

COLORS = {"go": "#2e7d32", "borderline": "#f9a825", "no-go": "#c62828", "unknown": "#9e9e9e"}


def acceptance_by_temperature(points: Sequence[dict], *, no_go_below: float = 0.50, go_above: float = 0.65,
                              production_temperature: float | None = None) -> Figure:
    """Acceptance rate vs temperature, one line per workload class, with the SPEC bands shaded."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.axhspan(0, no_go_below, color=COLORS["no-go"], alpha=0.08)
    ax.axhspan(no_go_below, go_above, color=COLORS["borderline"], alpha=0.10)
    ax.axhspan(go_above, 1, color=COLORS["go"], alpha=0.08)
    by: dict[str, list[tuple[float, float]]] = {}
    for p in points:
        if p.get("acceptance_rate") is not None:
            by.setdefault(p.get("workload", "all"), []).append((p["temperature"], p["acceptance_rate"]))
    for wl, pts in sorted(by.items()):
        pts.sort()
        ax.plot([t for t, _ in pts], [a for _, a in pts], marker="o", label=wl)
    if production_temperature is not None:
        ax.axvline(production_temperature, color="k", ls=":", lw=1, label=f"production T={production_temperature:g}")
    ax.set(xlabel="temperature", ylabel="draft acceptance rate", ylim=(0, 1), title="Acceptance by temperature")
    if by:
        ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def speedup_vs_load(levels: Sequence[LoadLevel], prediction: Prediction | None = None, kind: str = "concurrency") -> Figure:
    """Measured TPOT speedup with its 95% interval vs load, the predicted curve beside it, 1.0 marked."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    lv = [x for x in levels if x.speedup is not None]
    if lv:
        xs = [x.concurrency for x in lv]
        ys = [x.speedup for x in lv]
        lo = [x.speedup - x.speedup_ci_low if x.speedup_ci_low is not None else 0 for x in lv]
        hi = [x.speedup_ci_high - x.speedup if x.speedup_ci_high is not None else 0 for x in lv]
        ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label="measured (95% CI)")
    if prediction is not None:
        ax.plot([p.batch_size for p in prediction.points], [p.speedup for p in prediction.points], ls="--", marker=".",
                label=f"predicted (k={prediction.num_speculative_tokens})")
    ax.axhline(1.0, color="k", lw=1)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.set(xlabel=kind, ylabel="TPOT speedup (baseline / spec)", title="Speedup vs load")
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def latency_vs_load(levels: Sequence[LoadLevel], kind: str = "concurrency") -> Figure:
    """TPOT P50 and P99 vs load, baseline and speculative."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    xs = [x.concurrency for x in levels]
    series = [("tpot_p50_baseline_ms", "baseline P50", "C0", "-"), ("tpot_p99_baseline_ms", "baseline P99", "C0", ":"),
              ("tpot_p50_spec_ms", "spec P50", "C1", "-"), ("tpot_p99_spec_ms", "spec P99", "C1", ":")]
    for attr, label, color, ls in series:
        ys = [getattr(x, attr) for x in levels]
        if any(y is not None for y in ys):
            ax.plot([x for x, y in zip(xs, ys, strict=True) if y is not None], [y for y in ys if y is not None],
                    marker="o", color=color, ls=ls, label=label)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.set(xlabel=kind, ylabel="TPOT (ms)", title="Latency vs load")
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def memory_bars(rows: Sequence[dict]) -> Figure:
    """Stacked memory per GPU: target weights, draft weights, KV cache (from 20_memory's budget/matrix)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = [r["label"] for r in rows]
    bottom = [0.0] * len(rows)
    for key, color in (("target_weights_gib", "C0"), ("draft_weights_gib", "C1"), ("kv_cache_gib", "C2")):
        vals = [float(r.get(key) or 0) for r in rows]
        ax.bar(labels, vals, bottom=bottom, color=color, label=key.replace("_gib", "").replace("_", " "))
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set(ylabel="GiB per GPU", title="Memory budget")
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig
