"""The report's sections below the first screen, in pipeline order; each returns one HTML string.

Every section opens with its finding in one sentence (:func:`render.section`), then the evidence:
tables in plain words with units, figures inline. A step that did not run yields a line saying so
and what to run; nothing here raises on a missing or partial result, so the report renders with any
subset of artifacts. To add a topic: one function here returning ``render.section(...)``, one cell
in notebooks/90_report.ipynb calling it (hooks: :func:`workload_classes`, :func:`operations`,
:func:`predicted_vs_measured`'s memory part, :func:`provenance`'s ``provenance`` field).
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ValidationError

from . import measure_plots, plots
from .artifacts import RunDir, TruncatedRecordWarning, read_jsonl, run_state
from .headline import crossover, model_name
from .loadgen import attempt_of
from .multinode import NODES_LABEL, as_script
from .predict import acceptance_words, fit_notes
from .prediction_check import error_sentence
from .render import code, collapse, esc, figure, frame, section
from .schemas.decision import Decision, Evidence
from .schemas.load import LevelStats, LoadResult
from .schemas.lossless import LosslessResult
from .schemas.predict import Prediction, PredictionCheck
from .schemas.sweep import SweepResult

TABLES = "tables"  # full tables as CSV, beside report.html
REQUESTS_JSONL = "50_load_requests.jsonl"  # the load test's raw records (helpers/loadtest.py)
# Published calibration (SPEC.md section 4): vLLM team, "How Speculative Decoding Boosts vLLM Performance by up
# to 2.8x", vLLM blog, 17 Oct 2024, https://blog.vllm.ai/2024/10/17/spec-decode.html
CALIBRATION = ("Published for comparison (vLLM team, vLLM blog, Oct 2024; Llama-3-70B on 4x H100): at 1 query per second "
               "1.5x with a draft model (ShareGPT chat) and 2.8x with n-gram lookup (CNN/DailyMail summaries); at high "
               "query rates 1.4x and 1.8x slowdowns. Compare the shape, gains at low load turning into losses at high "
               "load, rather than the multipliers.")
# Typical acceptance by task (seed article of SPEC.md; SPEC.md section 4)
TYPICAL_ACCEPTANCE = ("Typical acceptance by task, for comparison: templated output and code 0.85 to 0.95; chat 0.60 to "
                      "0.80; creative writing 0.40 to 0.65.")


def _missing(step: str, how: str) -> str:
    return f"<p><i>Not measured: step {esc(step)} did not run or wrote no result. {esc(how)}</i></p>"


def _load(run: RunDir, name: str) -> dict | None:
    data = run.read_json_if_valid(name)
    return data if isinstance(data, dict) else None


def _model(run: RunDir, name: str, model: type[BaseModel]):
    data = _load(run, name)  # read once; an empty or mismatched result shows as missing
    try:
        return model.model_validate(data) if data else None
    except ValidationError:
        return None


def _csv(run: RunDir, name: str, df: pd.DataFrame) -> str:
    """Write the full table to <run>/tables/<name>.csv; the sentence that points at it."""
    out = run.path / TABLES / f"{name}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    return f"<p><small>Full table ({len(df)} rows): <code>{esc(out.relative_to(run.path))}</code>.</small></p>"


def _gib(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.2f} GiB" if x >= 0.1 else f"{x * 1024:.1f} MiB"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f} ms" if x >= 100 else f"{x:.1f} ms"


# -- why this verdict ----------------------------------------------------------------------------
_ORDER = {"no-go": 0, "unknown": 1, "borderline": 2, "go": 3}


def reasons(decision: Decision) -> str:
    """Every rule once, explained, the ones that drove the verdict first; failed steps and what to measure next."""
    from .render import rules_table

    counts = {v: sum(r.verdict == v for r in decision.rules) for v in ("go", "borderline", "no-go", "unknown")}
    finding = (f"{decision.verdict}: {counts['no-go']} rule(s) fail, {counts['borderline']} are borderline, "
               f"{counts['unknown']} could not be checked and {counts['go']} pass.")
    steps = [r for r in decision.reasons if r.startswith("[unknown] step ")]
    body = "".join(f"<p><b>{esc(r.removeprefix('[unknown] '))}</b></p>" for r in steps)
    nxt = "".join(f"<li>{esc(m)}</li>" for m in decision.measure_next)
    body += f"<p><b>Measure next:</b></p><ul>{nxt}</ul>" if nxt else ""
    thresholds = (decision.inputs or {}).get("thresholds")
    body += ("<p>Each rule of thumb says what it checks and why, then what this run measured; the ones that drove "
             "the verdict come first. <i>Not measured</i> means the step that measures it did not run or could not "
             "count its result.</p>" + rules_table(sorted(decision.rules, key=lambda r: _ORDER[r.verdict]), thresholds))
    return section("why", "Why this verdict", finding, body)


# -- provenance ----------------------------------------------------------------------------------
def _flat(d: dict, prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _flat(v, key + ".")
        elif isinstance(v, list):
            out.append((key, "; ".join(json.dumps(x) if isinstance(x, dict) else str(x) for x in v)))
        else:
            out.append((key, "" if v is None else str(v)))
    return out


def server_commands(run: RunDir, state: dict) -> list[dict]:
    """The exact command of each vLLM server the run started (the ``# command:`` line of its log)."""
    rows = []
    for cfg in ((state.get("servers") or {}).get("per_config") or []):
        for name in cfg.get("logs", []):
            cmd = ""
            try:
                with open(run.path / "server-logs" / f"{name}.log", errors="replace") as fh:
                    for line in fh.readlines()[:5]:
                        if line.startswith("# command:"):
                            cmd = line.removeprefix("# command:").strip()
            except OSError:
                pass
            rows.append({"server": name, "configuration": cfg.get("config", ""), "command": cmd or "(not in the log)"})
    return rows


def _duration(state: dict) -> str:
    steps = state.get("steps") or []
    secs = sum(float(s.get("seconds") or 0) for s in steps)
    return f"{secs / 60:.1f} min over {len(steps)} steps" if steps else "-"


def _recorded(prov: dict) -> tuple[list[tuple[str, str]], list[dict]] | None:
    """Rows and server commands from run.json's ``provenance`` (helpers/schemas/provenance.py), or None."""
    try:
        from .schemas.provenance import Provenance

        pv = Provenance.model_validate(prov)
    except (ImportError, ValidationError):
        return None
    if pv.imported is not None:
        return _imported_rows(pv)
    if pv.cpu is None or pv.accelerators is None or pv.software is None:
        return None
    gpus = ", ".join(f"{g.name}" + (f" ({g.memory_gib:.0f} GiB)" if g.memory_gib else "") for g in pv.accelerators.gpus)
    drv = "; ".join(f"{k} {v}" for k, v in (("driver", pv.accelerators.driver_version), ("CUDA", pv.accelerators.cuda_version),
                                             ("ROCm", pv.accelerators.rocm_version)) if v)
    isa = f" ({' '.join(pv.cpu.matrix_isa)})" if pv.cpu.matrix_isa else ""
    rows = [("hardware", f"{pv.cpu.model or 'CPU'}{isa}: {pv.cpu.logical_cores} cores, {pv.cpu.memory_gib:.0f} GiB RAM; "
                         f"GPUs: {gpus or 'none'}" + (f" ({drv})" if drv else "")),
            ("host", pv.host), ("collected at", pv.collected_at)]
    rows += [(f"version: {k}", str(v)) for k, v in pv.software.model_dump().items() if v]
    rows += [(f"{m.role} model", f"{m.name}" + (f" at {m.path}" if m.path and m.path != m.name else "")
              + f"; revision {m.revision or 'unknown'}" + (f" ({m.note})" if m.note else "")) for m in pv.models]
    rows += [(f"server {sv.name}", f"vLLM {sv.vllm_version or '?'} ({sv.version_source}), {sv.url or '-'}") for sv in pv.servers]
    cmds = [{"server": sv.name, "configuration": sv.role, "command": sv.command or "(not started by the playbook)"}
            for sv in pv.servers]
    return rows, cmds


def _imported_rows(pv) -> tuple[list[tuple[str, str]], list[dict]]:
    """An imported run's rows: the tool, that the hardware is not recorded, each file and what it records; its
    commands (secrets redacted). Never this machine's facts: it only read the files."""
    imp = pv.imported
    rows = [("measured on", imp.summary or f"imported from {imp.tool}; hardware {imp.hardware}"),
            ("imported at", imp.imported_at or "-")]
    for f in imp.files:
        parts = [f"sha256 {f.sha256[:12]}" if f.sha256 else "", f"model {f.model}" if f.model else "",
                 f"{imp.tool} {f.tool_version}" if f.tool_version else "", *(f"{k}: {v}" for k, v in f.recorded.items())]
        what = "; ".join(x for x in parts if x)
        rows.append((f"{f.role} file" + (f" at {f.level:g}" if f.level is not None else ""),
                     f.path + (f" ({what})" if what else "")))
    cmds = {(f.role, f.command): None for f in imp.files if f.command}
    return rows, [{"server": role, "configuration": f"the {imp.tool} command (as its file records it, secrets redacted)",
                   "command": cmd} for role, cmd in cmds]


def provenance(run: RunDir, ev: Evidence) -> str:
    """Hardware, versions, models, the exact server commands, requests per level, run duration."""
    from .provenance import imported_record
    from .render import servers_table

    state = run_state(run)
    rows: list[tuple[str, str]] = []
    prov = state.get("provenance")
    imported = imported_record(run.path)  # an import: the tool's record, never this machine's facts
    if imported is not None:
        prov = imported.model_dump(mode="json")
    recorded = _recorded(prov) if isinstance(prov, dict) and prov else None
    cmds = server_commands(run, state)
    if recorded is not None:
        rows, cmds = recorded[0], recorded[1] or cmds
    elif isinstance(prov, dict) and prov:
        rows += _flat(prov)
    else:
        pre = _load(run, "00_preflight.json") or {}
        hw = pre.get("hardware") or {}
        gpus = ", ".join(f"{g.get('name')} ({g.get('memory_gib', 0):.0f} GiB)" for g in hw.get("gpus", [])) or "none (CPU)"
        rows += [("hardware", f"{hw.get('cpu_count', '?')} CPU cores, {hw.get('memory_gib', 0):.0f} GiB RAM; GPUs: {gpus}")]
        rows += [(f"version: {k.replace('_', ' ')}", v) for k, v in sorted(ev.versions.items())]
        rows += [("target model", model_name(ev.target, "tiny-target") or "?"), ("draft", model_name(ev.draft, "tiny-draft") or ev.method or "-"),
                 ("model revisions", "not recorded by this run (paths as in the server commands)")]
    rows += [("profile", str(state.get("profile", "-"))),
             ("run duration", "measured by the tool (each level's duration is in the load section)" if imported
              else _duration(state))]
    load = _model(run, "50_load.json", LoadResult)
    if load is not None and load.levels:
        per = {}
        for x in load.levels:
            per.setdefault(x.level, []).append(f"{x.config} {x.requests}" + (f" in {x.rounds} rounds" if x.rounds else ""))
        rows.append(("requests per load level", "; ".join(f"{load.level_kind} {k:g}: " + ", ".join(v)
                                                          for k, v in sorted(per.items()))))
    table = frame(pd.DataFrame(rows, columns=["what", "value"]))
    cmd_html = (("<p><b>The benchmark's commands</b> (as its files record them):</p>" if imported else
                 "<p><b>Exact server commands</b>:</p>")
                + "".join(f"<p><small>{esc(c['server'])}: {esc(c['configuration'])}</small></p>"
                          f"<pre style='white-space:pre-wrap;font-size:11px'>{esc(c['command'])}</pre>" for c in cmds)
                if cmds else "")
    finding = (f"Not measured here: {rows[0][1]}; " + (f"{len(cmds)} benchmark command(s) below." if cmds else
                                                        "the files record no command line.") if imported else
               f"Measured on {rows[0][1]}, in {_duration(state)}; {len(cmds)} server command(s) below.")
    return section("provenance", "What was measured, on what", finding,
                   table + cmd_html + "<p><b>vLLM servers this run started</b></p>" + servers_table(state.get("servers")))


# -- per step ------------------------------------------------------------------------------------
def preflight(run: RunDir, ev: Evidence) -> str:
    pre = _load(run, "00_preflight.json")
    if not pre:
        return section("preflight", "Preflight (step 00)", "Preflight did not run.", _missing("00_preflight", "Run step 00."))
    bad = [c for c in pre.get("checks", []) if c.get("status") != "ok"]
    body = (frame(pd.DataFrame(bad).reindex(columns=["name", "status", "detail", "fix"])) if bad
            else f"<p>All {len(pre.get('checks', []))} checks passed.</p>")
    counters = "exposes" if ev.acceptance_counters else "does not expose"
    found = str(pre.get("finding") or "Preflight ran").removeprefix("preflight: ")
    return section("preflight", "Preflight (step 00)",
                   f"{found[:1].upper() + found[1:]}; the speculative server {counters} vLLM's acceptance counters.", body)


def drafts(run: RunDir) -> str:
    d = _load(run, "10_drafts.json")
    title = "Draft choice (step 10)"
    if not d or not d.get("candidates"):
        return section("drafts", title, "No draft was ranked.", _missing("10_drafts", "Run `playbook drafts` or step 10."))
    cols = ["rank", "name", "params_b", "ratio", "same_family", "same_tokenizer", "methods", "score", "acceptance_rate"]
    df = pd.DataFrame(d["candidates"]).reindex(columns=cols)
    df["methods"] = df["methods"].map(lambda m: ", ".join(m) if isinstance(m, list) else m)
    df = df.rename(columns={"params_b": "parameters (B)", "ratio": "target : draft size", "acceptance_rate": "probed acceptance",
                            "same_family": "same family", "same_tokenizer": "same tokenizer"})
    finding = (f"Best draft for {d.get('target', '?')}: {d.get('best') or 'none'} "
               "(same family and tokenizer, 8 to 12 times smaller is the sweet spot).")
    return section("drafts", title, finding, frame(df.sort_values("rank")))


def memory(run: RunDir, ev: Evidence) -> str:
    m = _load(run, "20_memory.json")
    title = "Memory and concurrency (step 20)"
    if not m or "budget" not in m:
        return section("memory", title, "The memory budget was not computed.", _missing("20_memory", "Run step 20."))
    b = m["budget"]
    lost = b.get("concurrency_lost_pct")
    rows = [("device", f"{b.get('num_gpus', 1)} x {b.get('gpu')}"),
            ("target weights per device", _gib(b.get("target_weights_per_gpu_gib"))),
            ("draft weights per device", _gib(b.get("draft_weights_per_gpu_gib"))),
            ("KV cache", f"{_gib(b.get('kv_cache_gib'))}, {b.get('kv_cache_tokens', 0):,} tokens with the draft, "
                         f"{b.get('kv_cache_tokens_without_draft', 0):,} without"),
            ("KV bytes per token", f"{b.get('kv_bytes_per_token', '?')} B (target {b.get('kv_bytes_per_token_target', '?')} B"
                                   f" + draft {b.get('kv_bytes_per_token_draft', '?')} B)"),
            *([("recurrent state per request", f"{b['state_bytes_per_request'] / 2**20:,.1f} MiB (linear-attention "
                                                "layers: a fixed size, whatever the context)")]
              if b.get("state_bytes_per_request") else []),
            (f"concurrent {b.get('context_length', '?')}-token requests",
             f"{b.get('concurrency_at_context', 0):,.0f} with the draft, {b.get('concurrency_at_context_without_draft', 0):,.0f} without"),
            ("draft weights / usable memory", f"{(b.get('draft_share_of_usable') or 0):.2%}"),
            ("target weights / device memory", f"{(b.get('target_share_of_vram') or 0):.2%}"),
            ("fits", "yes" if b.get("fits") else "no")]
    finding = (f"The draft costs {lost:.0f}% of concurrency at {b.get('context_length')} tokens per request: its KV layers "
               "take KV cache slots one for one." if lost is not None and b.get("fits", True) else m.get("finding", ""))
    bars = [{"label": "with draft", "target_weights_gib": b.get("target_weights_per_gpu_gib"),
             "draft_weights_gib": b.get("draft_weights_per_gpu_gib"), "kv_cache_gib": b.get("kv_cache_gib")}]
    body = frame(pd.DataFrame(rows, columns=["quantity", "value"])) + figure(plots.memory_bars(bars), "memory budget")
    body += "<p><small>Every precision pair's budget is in the quantization section below.</small></p>"
    return section("memory", title, finding, body)


_PLAIN = {"target_quant": "target", "draft_quant": "draft", "acceptance_rate": "acceptance", "drop_pp": "drop (pp)",
          "target_weights_gib": "target weights (GiB)", "draft_weights_gib": "draft weights (GiB)",
          "kv_cache_tokens": "KV cache tokens", "concurrency_at_context": "concurrent requests at context",
          "concurrency_lost_pct": "concurrency lost (%)", "reason": "why not"}


def quantization(run: RunDir) -> str:
    q = _load(run, "30_quantization.json")
    title = "Precision of target and draft (step 30)"
    if not q:
        return section("quantization", title, "No precision was compared.", _missing("30_quantization", "Run step 30."))
    body = ""
    if q.get("acceptance"):
        acc = pd.DataFrame(q["acceptance"])
        measured = acc[acc.get("measured", False) == True]  # noqa: E712 - pandas mask
        cols = ["target_quant", "draft_quant", "acceptance_rate", "drop_pp", "flagged", "note"]
        body += "<p><b>Acceptance by precision pair</b> (greedy, a few prompts; drop in percentage points against the " \
                "unquantized pair):</p>" + frame(measured.reindex(columns=cols).rename(columns=_PLAIN))
        skipped = acc[acc.get("measured", False) != True]  # noqa: E712
        if len(skipped):
            body += f"<p><small>{len(skipped)} pair(s) not measured here (this engine cannot serve them); reasons in " \
                    "the CSV.</small></p>" + _csv(run, "30_acceptance_by_precision", acc)
    if q.get("matrix"):
        full = pd.DataFrame(q["matrix"])
        cols = ["target_quant", "draft_quant", "target_weights_gib", "draft_weights_gib", "fits", "kv_cache_tokens",
                "concurrency_at_context", "concurrency_lost_pct", "reason"]
        short, note = collapse(full.reindex(columns=cols).rename(columns=_PLAIN), ["target", "draft"],
                               ignore=[_PLAIN["target_weights_gib"], _PLAIN["draft_weights_gib"]])
        if len(short) == 1:  # every pair alike: one sentence, no table
            body += (f"<p><b>Memory by precision pair</b>: all {len(full)} pairs alike here (weights per pair in the CSV). "
                     f"{esc(note)}</p>")
        else:
            body += ("<p><b>Memory by precision pair</b>: pairs with the same fit, KV cache and concurrency merged into one "
                     "row (weights per pair in the CSV):</p>" + frame(short) + (f"<p><small>{esc(note)}</small></p>" if note else ""))
        body += _csv(run, "30_precision_matrix", full)
    return section("quantization", title, q.get("finding") or "Precision pairs compared.", body)


def sweep(run: RunDir, ev: Evidence) -> str:
    title = "Acceptance by temperature (step 40)"
    if not ev.acceptance_by_temperature:
        return section("sweep", title, "Acceptance was not measured.", _missing("40_sweep", "Run `playbook sweep` or step 40."))
    t = ev.acceptance_temperature
    a = ev.acceptance_production
    p10 = "" if ev.acceptance_p10 is None else f", and the worst-served tenth of requests accept {ev.acceptance_p10:.2f} or less"
    finding = (f"At the production temperature {t:g} the target accepts {a:.2f} of the draft's tokens{p10}."
               if a is not None and t is not None else "Acceptance measured by temperature.")
    pts = ev.sweep_points or [{"temperature": k, "workload": "all", "acceptance_rate": v} for k, v in ev.acceptance_by_temperature.items()]
    body = figure(plots.acceptance_by_temperature(pts, production_temperature=t), "acceptance by temperature")
    body += f"<p><small>{esc(TYPICAL_ACCEPTANCE)}</small></p>"
    s = _model(run, "40_sweep.json", SweepResult)
    if s is not None and s.temperatures:
        pooled = pd.DataFrame([{"temperature": p.temperature, "acceptance": p.acceptance_rate,
                                "tokens per target step": p.mean_acceptance_length, "P10 per request": p.per_request_p10,
                                "P50 per request": p.per_request_p50, "requests": p.requests} for p in s.temperatures])
        if any(p.proposal_rate is not None and p.proposal_rate < 0.95 for p in s.temperatures):
            # an n-gram or suffix lookup proposes only where it finds a match; vLLM's counters cover those steps only
            pooled["steps with a proposal"] = [p.proposal_rate for p in s.temperatures]
            pooled = pooled.rename(columns={"tokens per target step": "tokens per step with a proposal"})
        body += "<p><b>Pooled over workload classes</b>:</p>" + frame(pooled.sort_values("temperature"))
        body += ("<p><b>Per draft position</b> (a steep fall means later drafted tokens are mostly wasted: a smaller k "
                 "wastes less) and <b>per request</b> (the spread behind the average):</p>")
        body += figure(measure_plots.per_position_acceptance(s.temperatures), "acceptance by draft position")
        body += figure(measure_plots.per_request_acceptance(s.temperatures, no_go_below=s.no_go_below), "acceptance per request")
    if ev.sweep_points and len({p.get("workload") for p in ev.sweep_points}) > 1:
        body += _csv(run, "40_acceptance_by_workload", pd.DataFrame(ev.sweep_points))
    return section("sweep", title, finding, body)


def lossless(run: RunDir) -> str:
    """The output guard's statistics: identical greedy share, log-likelihood test p-values, first divergence."""
    title = "Outputs unchanged (the lossless guard)"
    load = _load(run, "50_load.json") or {}
    data = load.get("lossless") or _load(run, "lossless.json")
    try:
        res = LosslessResult.model_validate(data) if data else None
    except ValidationError:
        res = None
    if res is None or not res.temperatures:
        return section("lossless", title, "The guard did not run.", _missing("50_load", "The load test runs the guard first."))
    rows = [{"temperature": p.temperature, "requests": p.requests,
             "identical outputs": "-" if p.identical_share is None else f"{p.identical_share:.0%}",
             "near-tie flips": "-" if p.identical_share is None else len(p.near_tie_margins),
             "mean log-likelihood, baseline": p.loglik_baseline, "mean log-likelihood, speculative": p.loglik_spec,
             "p-value": p.p_value, "alpha": p.alpha,
             "first divergence": "-" if not p.first_divergence else json.dumps(p.first_divergence),
             "result": {True: "unchanged", False: "CHANGED", None: "unknown"}[p.lossless]} for p in res.temperatures]
    verdict = {True: "Speculation did not change the outputs", False: "Speculation CHANGED the outputs",
               None: "The guard could not decide"}[res.lossless]
    finding = (f"{verdict} (greedy outputs compared token for token, a flip where the baseline itself nearly tied "
               f"counted as rounding; sampled outputs by a permutation test at alpha {res.alpha:g}).")
    body = ("<p>At temperature 0 both servers must write the same tokens; above 0 the speculative server's outputs must be "
            "as likely under the baseline model as the baseline's own (a small p-value says they are not).</p>"
            + frame(pd.DataFrame(rows), "{:.4g}"))
    return section("lossless", title, finding, body)


def _server_metrics(run: RunDir) -> pd.DataFrame:
    """Per (config, level): max KV cache usage, max waiting requests, preemptions, from the server's own /metrics."""
    rows: dict[tuple[str, float], dict] = {}
    for r in read_jsonl(run.artifact("50_load_samples.jsonl")) if run.artifact("50_load_samples.jsonl").exists() else []:
        if "error" in r or "config" not in r:
            continue
        key = (r["config"], float(r.get("level", 0)))
        row = rows.setdefault(key, {"config": r["config"], "level": key[1], "kv": [], "waiting": [], "pre": []})
        for src, dst in (("kv_cache_usage", "kv"), ("waiting", "waiting"), ("preemptions", "pre")):
            if r.get(src) is not None:
                row[dst].append(float(r[src]))
    out = [{"level": k[1], "config": k[0],
            "KV cache used, max": (f"{max(v['kv']):.1%}" if max(v["kv"]) >= 0.001 else f"{max(v['kv']):.4%}") if v["kv"] else "-",
            "waiting requests, max": f"{max(v['waiting']):.0f}" if v["waiting"] else "-",
            "preemptions": f"{max(v['pre']) - min(v['pre']):.0f}" if v["pre"] else "not recorded"}
           for k, v in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0]))]
    return pd.DataFrame(out)


def _goodput(run: RunDir, levels: list[LevelStats], slo_ttft_ms: float, slo_tpot_ms: float) -> dict[tuple[str, float], float]:
    """Share of a level's successful requests that met both SLOs (0: no bound), from the raw records."""
    attempts = {(x.config, a): (x.config, x.level) for x in levels for a in (x.attempts or [x.attempt]) if a}
    met: dict[tuple[str, float], list[bool]] = {}
    for r in read_jsonl(run.artifact(REQUESTS_JSONL)):
        if r.get("status") != "ok" or r.get("warmup"):
            continue
        config = str(r.get("phase", "")).split("@")[0]
        parts = str(r.get("id", "")).split("/")
        key = next((attempts[(config, a)] for p in parts for a in [p.split("-")[0]] if (config, a) in attempts), None)
        if key is None:
            continue
        ok = (not slo_ttft_ms or (r.get("ttft_ms") or 0) <= slo_ttft_ms) and \
             (not slo_tpot_ms or (r.get("tpot_ms") or 0) <= slo_tpot_ms)
        met.setdefault(key, []).append(ok)
    return {k: sum(v) / len(v) for k, v in met.items() if v}


def records_shortfall(run: RunDir, res: LoadResult) -> str | None:
    """A warning when artifacts/50_load_requests.jsonl holds fewer measured records of 50_load.json's levels than
    that summary counts (the file was cut or edited after the run), naming both counts; None when none is missing."""
    levels = [x for x in res.levels if any(x.attempts or [x.attempt])]
    owner = {a: (x.config, x.level) for x in levels for a in (x.attempts or [x.attempt]) if a}
    expected = Counter()
    for x in levels:
        expected[(x.config, x.level)] += x.requests
    with warnings.catch_warnings():  # a dropped line is already told by the goodput table's reading
        warnings.simplefilter("ignore", TruncatedRecordWarning)
        records = read_jsonl(run.artifact(REQUESTS_JSONL))
    found = Counter(owner[a] for r in records if not r.get("warmup") and (a := attempt_of(str(r.get("id", "")))) in owner)
    short = [(k, found[k], n) for k, n in expected.items() if found[k] < n]
    if not short:
        return None
    where = "; ".join(f"{c} at {res.level_kind} {lv:g}: {got} of {n}" for (c, lv), got, n in short[:4])
    return (f"artifacts/{REQUESTS_JSONL} holds {sum(found.values())} measured request records, but 50_load.json "
            f"counts {sum(expected.values())} ({where}{'; ...' if len(short) > 4 else ''}): the file was cut or edited "
            f"after the run. The speedup tables and the verdict come from 50_load.json, written while the records "
            f"were whole, and are unchanged; what is read from the raw records (goodput, the per-class breakdown, "
            f"sample outputs) covers only those left. Restore the file from a copy of the run if you have one.")


def load(run: RunDir, ev: Evidence, decision: Decision) -> str:
    title = "Speed under load (step 50)"
    res = _model(run, "50_load.json", LoadResult)
    if not ev.load_levels or res is None:
        return section("load", title, "The load test did not run.", _missing("50_load", "Run `playbook load` or step 50."))
    kind = ev.load_kind
    counted = [x for x in ev.load_levels if x.status == "ok" and x.speedup is not None]
    x = crossover(ev.load_levels)
    if counted:
        best = max(counted, key=lambda v: v.speedup)
        finding = (f"Speculation's best measured speedup is {best.speedup:.2f}x at {kind} {best.concurrency:g}; "
                   + (f"from {kind} {x:g} it slows tokens down." if x is not None else "no measured level is a clear slowdown."))
    else:
        finding = "No level could be counted as a win or a loss: see the status column."
    temp = f" at temperature {ev.load_temperature:g}" if ev.load_temperature is not None else ""
    body = f"<p>Workload {esc(ev.load_workload or '?')}{temp}; design: {esc(res.design)}.</p>"
    if short := records_shortfall(run, res):
        body = (f'<p class="pb-warning" style="border-left:5px solid #c62828;padding-left:8px"><b>Warning: raw '
                f'records missing.</b> {esc(short)}</p>') + body
    measured = {x.level: x for x in res.speedup}
    sp = pd.DataFrame([{kind: v.concurrency, "speedup": v.speedup, "95% interval": (
        f"{v.speedup_ci_low:.2f} to {v.speedup_ci_high:.2f}" if v.speedup_ci_low is not None and v.speedup_ci_high is not None else "-"),
        "output throughput ratio": v.throughput_ratio, "status": v.status if v.status == "ok" else f"{v.status}: {v.reason}",
        "round pairs": measured[v.concurrency].rounds if v.concurrency in measured else "-",
        "measuring stopped": measured[v.concurrency].stop_reason if v.concurrency in measured else "-"}
        for v in ev.load_levels])
    body += "<p><b>Speedup per level</b> (median time per output token, baseline / speculative):</p>" + frame(sp)
    sd = max((x.between_start_sd or 0.0 for x in res.speedup), default=0.0)
    if sd > 0:
        body += (f"<p><small>Each interval is the paired interval of this run widened by the spread measured between "
                 f"server starts (SD {sd:.2f} of the log speedup): more round pairs narrow only the first part, so a "
                 f"level can stop at its within-run target and still show a wider interval.</small></p>")
    body += f"<p><small>{esc(CALIBRATION)}</small></p>"
    inputs = decision.inputs or {}
    slo_ttft, slo_tpot = float(inputs.get("slo_ttft_ms") or 0), float(inputs.get("slo_tpot_ms") or 0)
    share = _goodput(run, res.levels, slo_ttft, slo_tpot)
    slo = " and ".join(s for s in (f"TTFT <= {slo_ttft:g} ms" if slo_ttft else "", f"TPOT <= {slo_tpot:g} ms" if slo_tpot else "") if s)
    ok = sorted((x for x in res.levels if x.status == "ok"), key=lambda s: (s.level, s.config))
    tp = pd.DataFrame([{kind: s.level, "config": s.config, "requests": s.requests, "output tokens/s": s.output_tok_s,
                        "requests/s": s.req_s, "met the SLO": f"{share[(s.config, s.level)]:.0%}" if (s.config, s.level) in share else "-",
                        "goodput (requests/s within SLO)": (s.req_s or 0) * share.get((s.config, s.level), float("nan")),
                        "error rate": f"{s.error_rate:.1%}"} for s in ok])
    body += (f"<p><b>Throughput and goodput</b> (goodput: requests per second that met {esc(slo)}):</p>" if slo else
             "<p><b>Throughput and goodput</b> (no SLO was given, so every successful request counts: set "
             "<code>slo_tpot_ms</code> or <code>slo_ttft_ms</code> and re-decide with <code>playbook report RUN_DIR -p</code>):</p>")
    body += frame(tp) + figure(measure_plots.throughput(res.levels), "throughput vs load")
    lat = pd.DataFrame([{kind: s.level, "config": s.config, "TTFT P50": _ms(s.ttft_ms.p50), "TTFT P99": _ms(s.ttft_ms.p99),
                         "TPOT P50": _ms(s.tpot_ms.p50), "TPOT P99": _ms(s.tpot_ms.p99), "E2E P50": _ms(s.e2e_ms.p50),
                         "E2E P99": _ms(s.e2e_ms.p99)} for s in ok])
    body += ("<p><b>Latency percentiles</b> (TTFT: time to first token; TPOT: time per output token after the first; "
             "E2E: whole request):</p>" + frame(lat) + figure(measure_plots.latency_percentiles(res.levels), "latency percentiles"))
    sm = _server_metrics(run)
    body += ("<p><b>The servers' own view</b> (vLLM /metrics sampled every second: the draft's KV slots show up here first, "
             "as a fuller cache, waiting requests and preemptions):</p>" + (frame(sm) if len(sm) else "<p>No samples recorded.</p>"))
    if ev.load_mixed:
        body += ("<p><b>Homogeneous vs mixed traffic</b> (spec / baseline change of the P50-to-P99 time-per-token gap):</p>"
                 + frame(pd.DataFrame(ev.load_mixed)))
    return section("load", title, finding, body)


def candidates(run: RunDir, ev: Evidence) -> str:
    """Step 50's comparison of configurations (50_candidates.json): speedup per configuration, the Pareto front per
    level, acceptance per position, the choice per level and the measured k table; pruned ones and why."""
    from .candidates import K_ZERO_NOTE, comparison_table, read

    title = "Which configuration: method and k (step 50)"
    res = read(run)
    if res is None:
        return _no_comparison(run, ev, title)
    kind = res.level_kind
    body = f"<p><small>{esc(res.budget_note)}</small></p>" if res.budget_note else ""
    body += "<p><b>Each configuration at each level</b> (speedup: median TPOT baseline / configuration, in paired rounds "
    body += "against the same baseline server; predicted: the predictor, scaled by the step's own measured speedup):</p>"
    body += frame(comparison_table(res))
    body += figure(plots.candidates_speedup(res, kind), "speedup vs load per configuration")
    choice = pd.DataFrame([{kind: c.level, "chosen configuration (interval above 1.0; the step's own unless another is clearly faster)": c.winner or "none: off",
                            "speedup": c.speedup, "95% interval": f"{c.ci_low:.2f} to {c.ci_high:.2f}"
                            if c.ci_low is not None and c.ci_high is not None else "-",
                            "k of the winner's method": res.k_by_level.get(c.level, 0) if res.winner else "-"}
                           for c in res.per_level])
    body += "<p><b>The choice per level</b>:</p>" + frame(choice)
    if res.k_table:
        body += (f"<p><b>Measured <code>num_speculative_tokens_per_batch_size</code></b> ({esc(res.winner_method)}): "
                 f"<code>{esc(json.dumps(res.k_table))}</code></p>")
        body += _launch_check(res, kind)
    body += f"<p><small>{esc(res.k_zero_note or K_ZERO_NOTE)}</small></p>"
    body += ("<p><b>Latency vs throughput per level</b> (lower and to the right is better):</p>"
             + figure(plots.candidates_pareto(res), "TPOT vs output throughput per level"))
    body += figure(plots.candidates_acceptance(res), "acceptance per position per configuration")
    if res.warnings:
        body += "<ul>" + "".join(f"<li>{esc(w)}</li>" for w in res.warnings) + "</ul>"
    return section("candidates", title, res.finding, body)


HOW_TO_COMPARE = ("Run step 50 again with `candidates` empty (derived: the step's own k, another k, n-gram) or e.g. "
                  "`-p candidates=draft_model:2,ngram:4` to compare other configurations at the same levels.")


def _load_parameter(run: RunDir, name: str):
    """A parameter step 50 ran with: its executed notebook's (papermill's record), else run.json's; None if neither."""
    try:
        nb = json.loads((run.notebooks / "50_load.ipynb").read_text())
        params = (nb.get("metadata") or {}).get("papermill", {}).get("parameters") or {}
    except (OSError, ValueError, AttributeError):
        params = {}
    if not isinstance(params, dict) or name not in params:
        params = run_state(run).get("parameters") or {}
    return params.get(name) if isinstance(params, dict) else None


def _no_comparison(run: RunDir, ev: Evidence, title: str) -> str:
    """No 50_candidates.json: step 50 did not run, or ran without comparing (``candidates: [off]``, an external
    server), or its comparison left no result."""
    if _load(run, "50_load.json") is None:
        return section("candidates", title, "No configurations were compared.", _missing("50_load", HOW_TO_COMPARE))
    own = f"{ev.method}:{ev.num_speculative_tokens}" if ev.method and ev.num_speculative_tokens else \
        (ev.method or "the step's own configuration")
    cands = _load_parameter(run, "candidates")
    off = cands is False or (isinstance(cands, list) and [str(c).lower() for c in cands] in (["off"], ["false"]))
    mode = _load_parameter(run, "mode")
    if off:
        finding = (f"Only the step's own configuration ({own}) was measured: step 50 ran with candidates: [off], "
                   "so no other method or k was compared.")
        how = HOW_TO_COMPARE
    elif mode == "external":
        finding = (f"Only the step's own configuration ({own}) was measured: against an external server the "
                   "playbook cannot start other configurations.")
        how = ("Compare others in managed or embedded mode (`-p candidates=draft_model:2,ngram:4`), or start each "
               "configuration yourself and load-test it.")
    else:
        finding = (f"Only the step's own configuration ({own}) has a result: step 50 ran but left no comparison of "
                   "configurations (50_candidates.json).")
        how = HOW_TO_COMPARE
    return section("candidates", title, finding,
                   f"<p>Its speedups are in the load test section above.</p><p><i>{esc(how)}</i></p>")


def _launch_check(res, kind: str) -> str:
    """The k table measured as launched, level by level against the static configuration it would replace."""
    lc = res.launch_check
    if lc is None:
        return "<p>The table was not measured as launched, so the launch command does not carry it.</p>"
    rows = pd.DataFrame([{kind: r.level, f"table vs static {lc.label} (paired, TPOT ratio)": r.speedup,
                          "95% interval": f"{r.ci_low:.2f} to {r.ci_high:.2f}" if r.ci_low is not None and r.ci_high
                          is not None else "-", f"static {lc.label} vs no speculation": lc.expected.get(r.level),
                          "status": r.status} for r in lc.levels])
    table = frame(rows) if not rows.empty else ""
    return f"<p><b>The table measured as launched</b> ({esc(lc.status)}): {esc(lc.finding)}</p>" + table


def predicted_vs_measured(pred: Prediction | None, check: PredictionCheck | None, ev: Evidence, run: RunDir) -> str:
    """Speedup: the predictor against the load test; memory: the budget against vLLM's own start-up log (hook)."""
    title = "Predicted against measured"
    body = ""
    if pred is None:
        finding = "No prediction: it needs single-request step times and the sweep's acceptance (steps 40 and 50)."
    else:
        finding = (f"Against the load test, the predictor's speedup is off by {error_sentence(check)}." if check is not None
                   else pred.finding)
        body += f"<p>{esc(pred.finding)}</p>"
        body += "".join(f"<p><b>The fit could not explain the measurements:</b> {esc(n)}</p>" for n in fit_notes(pred))
        k, best = pred.num_speculative_tokens, pred.optimal_k
        why = (f"with {acceptance_words(pred)} and a draft step costing {pred.cost_ratio:.2f} of a target step; a "
               "drafted token counts only if every one before it was accepted, so each extra one returns less")
        k = (f"<p><b>Why k={k}:</b> it is also the predictor's best k at batch 1, {why}.</p>" if best == k else
             f"<p><b>Why k={k}:</b> this run measured k={k}; the predictor's best k at batch 1 is {best}, {why}: "
             f"try <code>-p num_speculative_tokens={best}</code> in a new run.</p>")
        body += k
        if check is not None:
            ci = check.measured_interval or [None] * len(check.concurrency)
            cmp = pd.DataFrame({ev.load_kind: check.concurrency, "measured": check.measured_speedup,
                                "measured 95% interval": [f"{c[0]:.2f} to {c[1]:.2f}" if c else "-" for c in ci],
                                "predicted": check.predicted_speedup, "relative error": check.relative_error,
                                "fit to it": ["yes" if lv not in check.held_out_levels else "no" for lv in check.concurrency]})
            body += "<p><b>Speedup</b>:</p>" + frame(cmp)
        body += figure(plots.speedup_vs_load(ev.load_levels, pred, ev.load_kind), "predicted and measured speedup")
    allocated = (_load(run, "20_memory.json") or {}).get("allocated") or []
    if allocated:
        rows = [{"server log": Path(str(a.get("source", ""))).name, "draft": "with" if a.get("with_draft", True) else "without",
                 "KV tokens, predicted": a.get("predicted_kv_cache_tokens"), "KV tokens, vLLM logged": a.get("logged_kv_cache_tokens"),
                 "error": a.get("kv_cache_tokens_error"), "max concurrency, predicted": a.get("predicted_max_concurrency"),
                 "max concurrency, vLLM logged": a.get("logged_max_concurrency"), "weights GiB, predicted": a.get("predicted_weights_gib"),
                 "weights GiB, vLLM logged": a.get("logged_weights_gib")} for a in allocated]
        body += "<p><b>Memory</b> (the budget against what each vLLM server logged at start-up):</p>" + frame(pd.DataFrame(rows))
    else:
        body += ("<p><b>Memory</b>: this run did not record vLLM's logged KV cache size beside the budget "
                 "(the budget's arithmetic is checked against vLLM in the project's tests, within 1%).</p>")
    return section("predicted", title, finding, body)


def workload_classes(ev: Evidence) -> str:
    """Acceptance per workload class at the production temperature (hook: the class breakdown adds here)."""
    title = "Workload classes"
    if not ev.acceptance_by_workload:
        return section("workloads", title, "Only one workload class was measured.", "")
    worst = min(ev.acceptance_by_workload.items(), key=lambda kv: kv[1])
    df = pd.DataFrame([{"class": k, "acceptance": v} for k, v in sorted(ev.acceptance_by_workload.items())])
    return section("workloads", title, f"The class that accepts least is {worst[0]} ({worst[1]:.2f}).", frame(df))


def recommendation(decision: Decision) -> str:
    rec = decision.recommended
    notes = "".join(f"<li>{esc(n)}</li>" for n in rec.notes)
    if not rec.enable:
        return section("recommendation", "Recommended configuration", "Leave speculative decoding off.", f"<ul>{notes}</ul>")
    extra = ""
    if rec.num_speculative_tokens_per_batch_size:
        extra = ("<p>k by batch size (vLLM's dynamic schedule: fewer drafted tokens as batches grow, none where "
                 "verification stops being cheap):</p>" + frame(pd.DataFrame(
                     rec.num_speculative_tokens_per_batch_size, columns=["from batch size", "to batch size", "k"])))
    if rec.node_commands:  # a server over several nodes: the launch command at the top is the head node's
        extra += f"<p><b>{esc(NODES_LABEL)}</b>:</p>{code(as_script(rec.node_commands))}"
    return section("recommendation", "Recommended configuration",
                   f"Enable {rec.method} with k={rec.num_speculative_tokens} (the launch command is at the top).",
                   extra + f"<ul>{notes}</ul>")


def operations(decision: Decision, rules_yaml: str) -> str:
    """Monitoring queries and alert rules (hook: dashboards and rule files the ops step writes add here)."""
    from .ops_outputs import operations_html

    body = operations_html(decision.monitoring or {}, rules_yaml)  # queries, alerts or what to watch, files
    return section("operations", "Watching it in production",
                   "Rates come from rate() over vLLM's counters; alert when acceptance drifts below what was measured.", body)


def redecisions(run: RunDir) -> str:
    """The history of re-decisions (redecide.md), opened by which parameters the verdict shown was decided with:
    run.json's, or which values in place of run.json's (an earlier re-decision in the history may not be in effect)."""
    path = Path(run.path) / "redecide.md"
    if not path.exists():
        return ""
    from .redecide import in_effect

    try:
        decision = json.loads((Path(run.path) / "decision.json").read_text())
    except (OSError, ValueError):
        decision = None
    state = run_state(run)
    recorded = state.get("parameters") if isinstance(state.get("parameters"), dict) else {}
    shown = (decision or {}).get("verdict", "?")
    if decision is None:
        finding = "The verdict was re-decided from the same measurements; the history is below."
    elif diff := in_effect(decision, recorded):
        finding = (f"The verdict shown ({shown}) was decided with parameters other than run.json's: "
                   + ", ".join(f"{k} = {_shown(u)} (run.json: {_shown(r)})" for k, (u, r) in diff.items())
                   + "; the history of re-decisions is below.")
    else:
        finding = (f"The verdict shown ({shown}) was decided with run.json's parameters: no -p value of the "
                   "re-decisions below is in effect.")
    return section("redecisions", "Re-decisions of this run", finding, code(path.read_text()))


def _shown(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_shown(x) for x in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)

