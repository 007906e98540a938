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



def plain_text(text: object) -> str:
    """A user's name (workload, model) as literal text: matplotlib reads "$...$" as mathtext and fails
    on e.g. "$\\foo$" (matplotlib docs, "Writing mathematical expressions": escape "$" as "\\$")."""
    return str(text).replace("$", r"\$")

def acceptance_by_temperature(points: Sequence[dict], *, no_go_below: float = 0.50, go_above: float = 0.65,
                              production_temperature: float | None = None) -> Figure:
    """Acceptance rate vs temperature, one line per workload class, with the no-go / borderline / go bands shaded."""
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
        ax.plot([t for t, _ in pts], [a for _, a in pts], marker="o", label=plain_text(wl))
    if production_temperature is not None:
        ax.axvline(production_temperature, color="k", ls=":", lw=1, label=f"production T={production_temperature:g}")
    ax.set(xlabel="temperature", ylabel="draft acceptance rate", ylim=(0, 1), title="Acceptance by temperature")
    if by:
        ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def speedup_vs_load(levels: Sequence[LoadLevel], prediction: Prediction | None = None, kind: str = "concurrency", *,
                    expected_peak: float | None = None, min_gain: float | None = None,
                    figsize: tuple[float, float] = (6, 3.5)) -> Figure:
    """Measured TPOT speedup with its 95% interval vs load, the predicted curve beside it, 1.0 marked;
    the expected peak as a vertical line, the smallest gain worth having as a dotted line, and levels
    whose speedup was withheld (excluded or inconclusive) as grey crosses on the 1.0 line."""
    fig, ax = plt.subplots(figsize=figsize)
    lv = [x for x in levels if x.speedup is not None]
    if lv:
        xs = [x.concurrency for x in lv]
        ys = [x.speedup for x in lv]
        lo = [x.speedup - x.speedup_ci_low if x.speedup_ci_low is not None else 0 for x in lv]
        hi = [x.speedup_ci_high - x.speedup if x.speedup_ci_high is not None else 0 for x in lv]
        ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label="measured (95% interval)")
    held = [x.concurrency for x in levels if x.speedup is None and x.status != "ok"]
    if held:
        ax.plot(held, [1.0] * len(held), "x", color=COLORS["unknown"], ms=9, mew=2, label="withheld (not counted)")
    if prediction is not None:
        ax.plot([p.batch_size for p in prediction.points], [p.speedup for p in prediction.points], ls="--", marker=".",
                label=f"predicted (k={prediction.num_speculative_tokens})")
    ax.axhline(1.0, color="k", lw=1)
    if min_gain:
        ax.axhline(1.0 + min_gain, color=COLORS["go"], lw=1, ls=":", label=f"gain worth having ({1 + min_gain:.2f}x)")
    if expected_peak is not None:
        ax.axvline(expected_peak, color=COLORS["no-go"], lw=1.5, ls="--", label=f"expected peak ({expected_peak:g})")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.set(xlabel=kind, ylabel="speedup (baseline / speculative TPOT)", title="Speedup vs load")
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
    labels = [plain_text(r["label"]) for r in rows]
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


# -- candidates (helpers/candidates.py, 50_candidates.json) -------------------------------------
def _measured(res) -> list:
    return [c for c in res.candidates if c.status == "measured" and c.levels]


def _colour(i: int) -> str:
    """The i-th measured configuration's colour, the same in every candidates figure (C0 is the baseline's)."""
    return f"C{i + 1}"


def candidates_speedup(res, kind: str = "concurrency") -> Figure:
    """TPOT speedup vs load per candidate configuration, each with its 95% interval; 1.0 marked."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    cands = _measured(res)
    for i, c in enumerate(cands):
        rows = [r for r in c.levels if r.speedup is not None]
        if not rows:
            continue
        dx = 1 + 0.04 * (i - (len(cands) - 1) / 2)  # side by side at each level
        xs = [r.level * dx for r in rows]
        err = [[r.speedup - (r.ci_low if r.ci_low is not None else r.speedup) for r in rows],
               [(r.ci_high if r.ci_high is not None else r.speedup) - r.speedup for r in rows]]
        ax.errorbar(xs, [r.speedup for r in rows], yerr=err, marker="o", capsize=3, color=_colour(i),
                    label=plain_text(c.label + (" (step's own)" if c.primary else "")))
    ax.axhline(1.0, color="k", lw=1)
    if kind == "concurrency":
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set(xlabel=kind, ylabel="TPOT speedup (baseline / spec)", title="Speedup vs load, per configuration")
    if cands:
        ax.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def candidates_pareto(res) -> Figure:
    """Median TPOT vs output throughput, one panel per level: each configuration and the baseline
    (lower and to the right is better; the configurations not beaten on both are on the front)."""
    levels = list(res.levels) or [0.0]
    fig, axes = plt.subplots(1, len(levels), figsize=(3.2 * len(levels), 3.3), squeeze=False)
    for ax, lvl in zip(axes[0], levels, strict=True):
        base = []
        for i, c in enumerate(_measured(res)):
            r = next((r for r in c.levels if r.level == lvl), None)
            if r is None or r.tpot_p50_ms is None or r.output_tok_s is None:
                continue
            ax.scatter([r.output_tok_s], [r.tpot_p50_ms], color=_colour(i), label=plain_text(c.label), zorder=3)
            if r.baseline_tpot_p50_ms is not None and r.baseline_output_tok_s is not None:
                base.append((r.baseline_output_tok_s, r.baseline_tpot_p50_ms))
        if base:
            ax.scatter([b[0] for b in base], [b[1] for b in base], color="C0", marker="s", zorder=2,
                       label="baseline (beside each)" if len(base) > 1 else "baseline")
        ax.set(title=f"level {lvl:g}", xlabel="output tokens/s")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("median TPOT (ms)")
    fig.tight_layout()
    plt.close(fig)
    return fig


def candidates_acceptance(res) -> Figure:
    """Acceptance per draft position per configuration (vLLM's per-position counter, pooled over the levels
    weighted equally): the share of drafts whose first i tokens were all accepted."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    drawn = 0
    for i, c in enumerate(_measured(res)):
        rows = [r.acceptance_per_position for r in c.levels if r.acceptance_per_position]
        if not rows:
            continue
        n = min(len(r) for r in rows)
        mean = [sum(r[j] for r in rows) / len(rows) for j in range(n)]
        ax.plot(range(1, n + 1), mean, marker="o", color=_colour(i), label=plain_text(c.label))
        drawn += 1
    ax.set(xlabel="draft position", ylabel="acceptance at position", ylim=(0, 1),
           title="Acceptance per position, per configuration")
    if drawn:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no per-position counters recorded", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    plt.close(fig)
    return fig
