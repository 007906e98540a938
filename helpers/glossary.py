"""Plain words for the report: each rule's title and the one sentence that explains it.

The rules (helpers/rules.py) are named for code (``load_crossover_vs_peak``); a reader sees the
title and, the first time, why the rule exists. Reasons come from the seed framework
(../shared/SPEC.md section 3, in our words) and the thresholds the decision used.
"""

from __future__ import annotations

# name -> (title, why: formatted with the decision's thresholds)
RULES: dict[str, tuple[str, str]] = {
    "acceptance_at_production_temperature": (
        "Draft acceptance at your production temperature",
        "The share of the draft's proposed tokens the target keeps, at the temperature your traffic uses: below "
        "{acceptance_no_go_below:.2f} the draft costs more than it saves, above {acceptance_go_above:.2f} it likely pays."),
    "acceptance_p10": (
        "Acceptance of the worst-served tenth of requests",
        "Acceptance varies from request to request; when its 10th percentile is below {acceptance_p10_min:.2f}, "
        "at least one request in ten is made slower."),
    "draft_vram_share": (
        "Draft size against usable memory",
        "The draft's weights should take at most {max_draft_share:.0%} of the memory vLLM may use, or they crowd "
        "out the KV cache."),
    "target_vram_share": (
        "Target size against GPU memory",
        "When the target already takes more than {max_target_share:.0%} of memory, any draft visibly reduces how "
        "many requests fit at once."),
    "concurrency_lost_to_draft": (
        "Concurrency lost to the draft",
        "The draft's weights and KV layers come out of the same memory pool as the target's KV cache, one for one, "
        "so fewer requests of your context length fit at once; more than {max_concurrency_loss:.0%} lost is flagged."),
    "quantization_acceptance_drop": (
        "Acceptance lost to quantization",
        "A quantized target shifts the distribution the draft was trained to match; a drop of more than "
        "{acceptance_drop_pp:g} percentage points says: use a higher-precision target (quantize the draft first)."),
    "ttft_bound_slo": (
        "Which latency your SLO binds",
        "Speculation speeds up the tokens after the first (time per output token), not the first token; an SLO "
        "bound by time to first token gains nothing."),
    "tpot_slo_at_peak": (
        "Time-per-token SLO at the expected peak",
        "Whether the 99th percentile of time per output token meets your SLO at the expected peak load."),
    "p50_p99_gap_change": (
        "Tail latency gap",
        "If the gap between median and 99th-percentile time per token widens more than {max_gap_widening:g}x under "
        "speculation, requests that accept little are slowing the others down."),
    "load_crossover_vs_peak": (
        "Speedup at your expected peak load",
        "Verification is cheap only while decoding is memory-bound: as load grows the extra tokens verified per "
        "step cost real compute, so the load where the speedup drops below 1 must lie above your peak; a gain "
        "under {min_gain:.0%} is not worth the risk."),
    "ttft_rise": (
        "First-token latency rise",
        "The draft adds its own prefill before the first token, so time to first token may rise; more than "
        "{max_ttft_rise:.0%} is flagged even without an SLO on it."),
    "throughput_at_peak": (
        "Output throughput at the expected peak",
        "Output tokens per second with speculation divided by without, at your expected peak load."),
    "load_temperature": (
        "Load-test temperature against production",
        "A speedup measured at a colder temperature than production overstates the gain (colder means more "
        "accepted tokens); more than {max_load_temperature_gap:g} colder is flagged."),
    "mixed_workload_gap": (
        "Mixed against homogeneous traffic",
        "Requests in one batch share one verification pass, so low-acceptance requests add their cost to "
        "high-acceptance ones; a tail gap that widens only with mixed traffic shows it."),
    "error_rate": (
        "Failed requests",
        "Failed requests make every latency number suspect; above {max_error_rate:.0%} the verdict is inconclusive."),
    "temperature_mix": (
        "Temperatures in your traffic",
        "Temperature flattens the distribution the draft must match: speculation suits traffic that is mostly at "
        "or below {homogeneous_temperature_max:g} and uniform; a median above {max_temperature_median:g} is a no-go."),
    "lossless_method": (
        "Outputs unchanged",
        "Speculative decoding must not change what the model says: a lossy method or a failed output check is a "
        "no-go."),
    "acceptance_monitoring": (
        "Acceptance can be monitored",
        "Without vLLM's acceptance counters nobody sees, in production, when speculation stops paying."),
}

VERDICT_WORDS = {"go": "passes", "borderline": "borderline", "no-go": "fails", "unknown": "not measured"}
INCONCLUSIVE = "inconclusive"  # an unknown rule that had measurements to judge, but they did not settle it


def verdict_word(rule) -> str:
    """The word for a rule's verdict (a :class:`RuleResult`): "inconclusive" for an unknown rule that was measured
    (it quotes numbers: intervals too wide, a peak above the levels measured, a temperature not recorded), "not
    measured" only when nothing was (its step did not run)."""
    if rule.verdict == "unknown" and (rule.numbers or not str(rule.reason).startswith("not measured")):
        return INCONCLUSIVE
    return VERDICT_WORDS[rule.verdict]


def title(rule: str) -> str:
    """The rule's plain title (the rule's own name, de-underscored, when it is not listed)."""
    return RULES.get(rule, (rule.replace("_", " ").capitalize(), ""))[0]


def why(rule: str, thresholds: dict | None = None) -> str:
    """One sentence explaining the rule, with the thresholds the decision used."""
    from .schemas.decision import Thresholds

    text = RULES.get(rule, ("", ""))[1]
    values = {**Thresholds().model_dump(), **(thresholds or {})}
    try:
        return text.format(**values)
    except (KeyError, ValueError):
        return text
