"""The report's per-step sections: each returns (HTML, figure or None) from what the run holds.

A step that did not run yields a line saying so and what to run; nothing here raises on a missing
or partial result, so the report renders with any subset of artifacts.
"""

from __future__ import annotations

import json

import pandas as pd
from matplotlib.figure import Figure

from . import plots
from .artifacts import RunDir
from .render import esc, frame
from .schemas.decision import Evidence
from .schemas.predict import Prediction, PredictionCheck

Section = tuple[str, Figure | None]


def _missing(step: str, how: str) -> Section:
    return f"<p><i>Not measured: step {esc(step)} did not run or wrote no result. {esc(how)}</i></p>", None


def _load(run: RunDir, name: str) -> dict | None:
    path = run.artifact(name)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def drafts(run: RunDir) -> Section:
    d = _load(run, "10_drafts.json")
    if not d or not d.get("candidates"):
        return _missing("10_drafts", "Run `playbook drafts` or step 10 to rank draft candidates.")
    cols = ["rank", "name", "params_b", "ratio", "same_family", "same_tokenizer", "methods", "score", "acceptance_rate"]
    df = pd.DataFrame(d["candidates"]).reindex(columns=cols)
    df["methods"] = df["methods"].map(lambda m: ", ".join(m) if isinstance(m, list) else m)
    return f"<p>Target {esc(d.get('target', ''))}: best draft <b>{esc(d.get('best') or 'none')}</b>.</p>" + frame(df.sort_values("rank")), None


def memory(run: RunDir) -> Section:
    m = _load(run, "20_memory.json")
    if not m or "budget" not in m:
        return _missing("20_memory", "Run `playbook memory` or step 20 for the memory budget.")
    b = m["budget"]
    keys = ["gpu", "num_gpus", "target_weights_per_gpu_gib", "draft_weights_per_gpu_gib", "kv_cache_gib", "kv_cache_tokens",
            "kv_cache_tokens_without_draft", "context_length", "concurrency_at_context", "concurrency_at_context_without_draft",
            "concurrency_lost_pct", "draft_share_of_usable", "target_share_of_vram", "fits"]
    table = frame(pd.DataFrame([{"quantity": k, "value": b.get(k)} for k in keys]))
    rows = [{"label": "with draft", "target_weights_gib": b.get("target_weights_per_gpu_gib"),
             "draft_weights_gib": b.get("draft_weights_per_gpu_gib"), "kv_cache_gib": b.get("kv_cache_gib")}]
    matrix = ""
    if m.get("matrix"):
        matrix = "<p>Precision matrix:</p>" + frame(pd.DataFrame(m["matrix"]))
    return table + matrix, plots.memory_bars(rows)


def quantization(run: RunDir) -> Section:
    q = _load(run, "30_quantization.json")
    if not q:
        return _missing("30_quantization", "Run step 30 to compare precisions and their acceptance.")
    html = f"<p>{esc(q.get('finding', ''))}</p>"
    if q.get("acceptance"):
        cols = ["target_quant", "draft_quant", "servable", "measured", "acceptance_rate", "drop_pp", "flagged", "note"]
        html += "<p>Acceptance by precision pair:</p>" + frame(pd.DataFrame(q["acceptance"]).reindex(columns=cols))
    if q.get("matrix"):
        cols = ["target_quant", "draft_quant", "target_weights_gib", "draft_weights_gib", "fits", "kv_cache_tokens",
                "concurrency_at_context", "concurrency_lost_pct", "reason"]
        html += "<p>Memory by precision pair:</p>" + frame(pd.DataFrame(q["matrix"]).reindex(columns=cols))
    return html, None


def sweep(ev: Evidence) -> Section:
    if not ev.acceptance_by_temperature:
        return _missing("40_sweep", "Run `playbook sweep` or step 40 to measure acceptance by temperature.")
    pts = ev.sweep_points or [{"temperature": t, "workload": "all", "acceptance_rate": a} for t, a in ev.acceptance_by_temperature.items()]
    df = pd.DataFrame(pts).reindex(columns=["workload", "temperature", "acceptance_rate", "mean_acceptance_length",
                                            "per_request_p10", "per_request_p50", "requests", "verdict"])
    head = (f"<p>Acceptance at the production temperature {ev.acceptance_temperature:g}: "
            f"<b>{ev.acceptance_production:.2f}</b>; P10 per request: "
            f"{'-' if ev.acceptance_p10 is None else f'{ev.acceptance_p10:.2f}'}.</p>") if ev.acceptance_production is not None else ""
    fig = plots.acceptance_by_temperature(pts, production_temperature=ev.acceptance_temperature)
    return head + frame(df.sort_values(["workload", "temperature"])), fig


def load(ev: Evidence) -> Section:
    if not ev.load_levels:
        return _missing("50_load", "Run `playbook load` or step 50 for latency and speedup under load.")
    df = pd.DataFrame([x.model_dump() for x in ev.load_levels]).rename(columns={"concurrency": ev.load_kind})
    cols = [ev.load_kind, "temperature", "speedup", "speedup_ci_low", "speedup_ci_high", "tpot_p50_baseline_ms", "tpot_p50_spec_ms",
            "tpot_p99_baseline_ms", "tpot_p99_spec_ms", "ttft_p50_baseline_ms", "ttft_p50_spec_ms", "acceptance_rate", "error_rate"]
    cols += ["status", "reason"] if any(x.status != "ok" for x in ev.load_levels) else []  # withheld levels: no speedup, the reason
    head = f"<p>Workload {esc(ev.load_workload)} at temperature {ev.load_temperature if ev.load_temperature is not None else '?'}.</p>"
    mixed = ("<p>Homogeneous vs mixed workload (P50-to-P99 TPOT gap, spec / baseline):</p>" + frame(pd.DataFrame(ev.load_mixed))
             if ev.load_mixed else "")
    return head + frame(df[cols]) + mixed, plots.latency_vs_load(ev.load_levels, ev.load_kind)


def prediction(pred: Prediction | None, check: PredictionCheck | None, ev: Evidence) -> Section:
    if pred is None:
        fig = plots.speedup_vs_load(ev.load_levels, None, ev.load_kind) if ev.load_levels else None
        return ("<p><i>No prediction: it needs TPOT at concurrency 1 with and without speculation and the sweep's "
                "acceptance (steps 40 and 50).</i></p>"), fig
    df = pd.DataFrame([p.model_dump() for p in pred.points])
    html = f"<p>{esc(pred.finding)}</p>" + frame(df[["batch_size", "speedup", "tpot_baseline_ms", "tpot_spec_ms"]])
    if check is not None:
        cmp = pd.DataFrame({ev.load_kind: check.concurrency, "measured": check.measured_speedup,
                            "predicted": check.predicted_speedup, "relative error": check.relative_error})
        html += (f"<p>Predicted vs measured: mean absolute relative error <b>{check.mean_abs_relative_error:.0%}</b>.</p>"
                 + frame(cmp))
    return html, plots.speedup_vs_load(ev.load_levels, pred, ev.load_kind)
