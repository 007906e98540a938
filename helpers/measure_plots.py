"""Figures of the measurement steps (notebooks 40 and 50), one function per figure.

The acceptance-by-temperature figure with SPEC bands is the shared one in :mod:`plots`; these add
the per-request distribution, per-position acceptance, latency percentiles and the speedup band.
"""

from __future__ import annotations

from collections.abc import Sequence

# No matplotlib.use(...) here: in a Jupyter kernel pyplot must keep the inline backend, or figures show
# as "<Figure size ...>" text; without a display matplotlib falls back to Agg by itself.
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .schemas.load import LevelStats, SpeedupPoint
from .schemas.sweep import SweepPoint

CONFIG_COLORS = {"baseline": "C0", "spec": "C1"}


def _log2(ax) -> None:
    """Concurrency doubles from level to level: a log2 axis labelled 1, 2, 4 (not 2^0, 2^1)."""
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))


def per_request_acceptance(points: Sequence[SweepPoint], no_go_below: float = 0.5) -> Figure:
    """Histogram of per-request acceptance, one series per temperature; the no-go line marked."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    bins = [i / 20 for i in range(21)]
    drawn = False
    for p in points:
        if p.per_request:
            ax.hist(p.per_request, bins=bins, alpha=0.5, label=f"T={p.temperature:g} (P10 {p.per_request_p10:.2f})")
            drawn = True
    ax.axvline(no_go_below, color="#c62828", ls="--", lw=1, label=f"no-go below {no_go_below:g}")
    ax.set(xlabel="per-request draft acceptance", ylabel="requests", title="Acceptance per request")
    if not drawn:
        ax.text(0.5, 0.5, "the server returned no per-request metrics", ha="center", transform=ax.transAxes)
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)  # shown once, where the notebook displays it (not again by the inline backend)
    return fig


def per_position_acceptance(points: Sequence[SweepPoint]) -> Figure:
    """p_i (accepted at draft position i / drafts) by position, one line per temperature."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for p in points:
        if p.per_position:
            ax.plot(range(1, len(p.per_position) + 1), p.per_position, marker="o", label=f"T={p.temperature:g}")
    ax.set(xlabel="draft position", ylabel="acceptance p_i", ylim=(0, 1.02), title="Acceptance by draft position")
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)  # shown once, where the notebook displays it (not again by the inline backend)
    return fig


def latency_percentiles(levels: Sequence[LevelStats]) -> Figure:
    """TTFT, TPOT, ITL and E2E at P50 (solid), P95 (dashed) and P99 (dotted) vs load, both configurations."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5))
    kind = levels[0].level_kind if levels else "concurrency"
    for ax, metric in zip(axes.flat, ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"), strict=True):
        for config in ("baseline", "spec"):
            rows = sorted((s for s in levels if s.config == config and s.status == "ok"), key=lambda s: s.level)
            for q, ls in (("p50", "-"), ("p95", "--"), ("p99", ":")):
                pts = [(s.level, getattr(getattr(s, metric), q)) for s in rows if getattr(getattr(s, metric), q) is not None]
                if pts:
                    ax.plot([x for x, _ in pts], [y for _, y in pts], ls=ls, marker="o", ms=3,
                            color=CONFIG_COLORS[config], label=f"{config} {q.upper()}")
        ax.set(xlabel=kind, ylabel="ms", title=metric.replace("_ms", "").upper())
        if kind == "concurrency":
            _log2(ax)
    axes.flat[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    plt.close(fig)  # shown once, where the notebook displays it (not again by the inline backend)
    return fig


def speedup_band(points: Sequence[SpeedupPoint], kind: str = "concurrency", crossover: float | None = None) -> Figure:
    """TPOT speedup vs load with its 95% bootstrap band; 1.0 and the crossover marked."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    pts = sorted((p for p in points if p.speedup is not None), key=lambda p: p.level)
    if pts:
        xs = [p.level for p in pts]
        ax.fill_between(xs, [p.ci_low for p in pts], [p.ci_high for p in pts], alpha=0.25, color="C1",
                        label="95% bootstrap interval")
        ax.plot(xs, [p.speedup for p in pts], marker="o", color="C1", label="speedup (median TPOT ratio)")
    ax.axhline(1.0, color="k", lw=1)
    if crossover is not None:
        ax.axvline(crossover, color="#c62828", ls="--", lw=1, label=f"crossover at {crossover:g}")
    if kind == "concurrency":
        _log2(ax)
    ax.set(xlabel=kind, ylabel="TPOT speedup (baseline / spec)", title="Speedup vs load")
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)  # shown once, where the notebook displays it (not again by the inline backend)
    return fig


def throughput(levels: Sequence[LevelStats]) -> Figure:
    """Output tokens/s vs load for both configurations (saturation shows as a plateau)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for config in ("baseline", "spec"):
        rows = sorted((s for s in levels if s.config == config and s.output_tok_s), key=lambda s: s.level)
        if rows:
            ax.plot([s.level for s in rows], [s.output_tok_s for s in rows], marker="o",
                    color=CONFIG_COLORS[config], label=config)
    kind = levels[0].level_kind if levels else "concurrency"
    if kind == "concurrency":
        _log2(ax)
    ax.set(xlabel=kind, ylabel="output tokens/s", title="Throughput vs load")
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)  # shown once, where the notebook displays it (not again by the inline backend)
    return fig
