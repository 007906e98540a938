"""What to watch once speculation is on: per-instance PromQL over vLLM's metrics, alerts, a rule file.

Rates always come from ``rate()`` over counter deltas, never from absolute counter values (they grow
from the server's start and reset on restart). Every query is per instance (``by (instance)``): the
crossover the load test measured is one server's, so a replica is compared with it, never the sum of a
fleet. Label values are escaped as PromQL string literals (backslash, double quote, newline: the Go
escapes the PromQL docs name, https://prometheus.io/docs/prometheus/latest/querying/basics/#string-literals).
Metric names are vLLM V1's (``vllm/v1/metrics/loggers.py``, ``vllm/v1/spec_decode/metrics.py``), matched
under either stored form, ``vllm:x`` or ``vllm_x`` (:func:`.metrics.series`: Prometheus 2.x stores vLLM's
names with an underscore, prometheus/client_python issue #1177).

Alerts are proposed only for GO and GO WITH LIMITS; a NO-GO or INCONCLUSIVE plan says instead what to
watch before trying again (``watch``). :func:`prometheus_rules_yaml` writes the plan as a Prometheus
rule file (recording rules always, alerting rules when there are alerts) that ``promtool check rules``
accepts.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

from .metrics import (
    ACCEPTED,
    ACCEPTED_PER_POS,
    DRAFT_TOKENS,
    DRAFTS,
    HISTOGRAMS,
    KV_CACHE_USAGE,
    LEGACY_RATE,
    RUNNING,
    WAITING,
    series,
)
from .schemas.decision import Decision, Evidence

PREEMPTIONS = "vllm:num_preemptions_total"  # counter vllm:num_preemptions (vllm/v1/metrics/loggers.py)
ALERTING_VERDICTS = ("GO", "GO WITH LIMITS")
BY = "instance"


class Query(BaseModel):
    name: str
    promql: str
    meaning: str


class Alert(BaseModel):
    name: str
    expr: str = Field(description="PromQL that is true (per instance) when the alert should fire")
    for_: str = Field("15m", alias="for", serialization_alias="for")
    threshold: float
    why: str

    model_config = {"populate_by_name": True}


def label_value(value: str) -> str:
    """``value`` as a PromQL double-quoted string literal's content (backslash, quote, newline escaped)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def matchers(model_name: str = "", extra: str = "") -> str:
    """``model_name="<escaped>",<extra matchers>`` (no braces), or ""."""
    parts = [f'model_name="{label_value(model_name)}"'] if model_name else []
    extra = extra.strip().removeprefix("{").removesuffix("}").strip().rstrip(",")
    if extra:
        parts.append(extra)
    return ",".join(parts)


def queries(model_name: str = "", window: str = "5m", extra_selector: str = "") -> list[Query]:
    """Per-instance PromQL: acceptance rate, mean acceptance length, per-position acceptance, TPOT/TTFT
    percentiles, running requests, KV cache usage, preemptions."""
    m, w, by = matchers(model_name, extra_selector), window, BY

    def r(metric: str, extra_by: str = "") -> str:
        return f"sum by ({by}{extra_by}) (rate({series(metric, m)}[{w}]))"

    out = [
        Query(name="acceptance_rate", promql=f"{r(ACCEPTED)} / {r(DRAFT_TOKENS)}",
              meaning="draft acceptance rate per instance: accepted / proposed draft tokens over the window"),
        Query(name="mean_acceptance_length", promql=f"1 + {r(ACCEPTED)} / {r(DRAFTS)}",
              meaning="tokens produced per target step (1 + accepted per draft); 1.0 means speculation does nothing"),
        Query(name="acceptance_by_position",
              promql=f"{r(ACCEPTED_PER_POS, ', position')} / on ({by}) group_left {r(DRAFTS)}",
              meaning="p_i: share of drafts whose first i+1 tokens were accepted; a steep fall says k is too large"),
    ]
    for key, label in (("tpot", "time per output token"), ("ttft", "time to first token")):
        for q in (0.5, 0.9, 0.99):
            out.append(Query(
                name=f"{key}_p{round(q * 100)}_seconds",
                promql=f"histogram_quantile({q}, sum by ({by}, le) (rate({series(HISTOGRAMS[key] + '_bucket', m)}[{w}])))",
                meaning=f"P{round(q * 100)} {label} per instance" + (" (speculation may raise it slightly)" if key == "ttft" else "")))
    out += [
        Query(name="running_requests", promql=f"max by ({by}) ({series(RUNNING, m)})",
              meaning="batch size of each replica now: compare with the crossover the load test measured"),
        Query(name="requests_per_replica",
              promql=f"max by ({by}) ({series(RUNNING, m)}) + max by ({by}) ({series(WAITING, m)})",
              meaning="requests each replica holds, running or waiting: the load a --max-num-seqs cap queues too"),
        Query(name="kv_cache_usage", promql=f"max by ({by}) ({series(KV_CACHE_USAGE, m)})",
              meaning="KV cache usage of each replica (1 = full); the draft's KV and weights take room from it"),
        Query(name="preemptions_per_second", promql=r(PREEMPTIONS),
              meaning="requests preempted per second (KV cache exhausted); more of them with speculation on means memory is short"),
        Query(name="acceptance_rate_legacy_gauge", promql=f"avg by ({by}) ({series(LEGACY_RATE, m)})",
              meaning="fallback for vLLM < 0.7, which exposed a gauge instead of counters"),
    ]
    return out


def alerts(
    *,
    model_name: str = "",
    measured_acceptance: float | None = None,
    no_go_below: float = 0.50,
    relative_drop: float = 0.20,
    crossover_concurrency: float | None = None,
    slo_tpot_ms: float = 0.0,
    window: str = "15m",
    extra_selector: str = "",
) -> list[Alert]:
    """Per-instance alert thresholds from the run: acceptance below the no-go band (or ``relative_drop``
    under what was measured), a replica's running requests at or above the crossover, TPOT P99 above the SLO."""
    q = {x.name: x.promql for x in queries(model_name, window="5m", extra_selector=extra_selector)}
    floor = no_go_below
    why = f"below {no_go_below:.2f} speculation is a net loss (rule of thumb: the draft costs more than it saves)"
    if measured_acceptance is not None and measured_acceptance * (1 - relative_drop) > no_go_below:
        floor = max(no_go_below, measured_acceptance * (1 - relative_drop))
        why = (f"acceptance fell {relative_drop:.0%} below the measured {measured_acceptance:.2f} "
               f"(or under {no_go_below:.2f}): traffic or temperature changed")
    out = [
        Alert(name="SpecDecodeAcceptanceLow", expr=f"({q['acceptance_rate']}) < {floor:.3f}", for_=window,
              threshold=round(floor, 3), why=why),
        Alert(name="SpecDecodeNoGain", expr=f"({q['mean_acceptance_length']}) < 1.5", for_=window, threshold=1.5,
              why="fewer than 1.5 tokens per target step: the draft's cost is barely repaid"),
    ]
    if crossover_concurrency:  # running + waiting: a server capped by --max-num-seqs never runs more than its cap
        out.append(Alert(name="SpecDecodePastCrossover",
                         expr=f"({q['requests_per_replica']}) >= {crossover_concurrency:g}",
                         for_=window, threshold=crossover_concurrency,
                         why=f"a replica holds {crossover_concurrency:g}+ requests (running or waiting): speculation "
                             "is not recommended from that load on (per server, not summed over replicas)"))
    if slo_tpot_ms:
        out.append(Alert(name="TpotSloBreached", expr=f"{q['tpot_p99_seconds']} > {slo_tpot_ms / 1000:g}", for_="5m",
                         threshold=slo_tpot_ms, why=f"TPOT P99 above the {slo_tpot_ms:g} ms SLO"))
    return out


def crossover_of(decision: Decision, ev: Evidence) -> float | None:
    """The first per-server concurrency speculation is not recommended at: one past the verdict's limit
    (``recommended.max_concurrency``, as the headline and the launch command state it), else the first
    level the load test found no win at, when speculation wins below it."""
    rec = decision.recommended
    if rec.enable and rec.max_concurrency is not None and ev.load_kind == "concurrency":
        return float(math.floor(rec.max_concurrency) + 1)
    rule = next((r for r in decision.rules if r.name == "load_crossover_vs_peak"), None)
    if rule is not None and rule.verdict in ("go", "borderline") and ev.load_kind == "concurrency":
        value = rule.numbers.get("first_non_win")
        return float(value) if isinstance(value, (int, float)) else None
    return None


def watch_items(decision: Decision, ev: Evidence, *, model_name: str = "", no_go_below: float = 0.50) -> list[dict]:
    """For NO-GO / INCONCLUSIVE: what to watch in production (speculation off) before measuring again,
    one item per rule that measured a loss, each with the query to watch and when to try again. A rule that
    measured nothing ('unknown') gets no item of its own, since each states a measured cause: what it lacks is
    in ``measure_next``."""
    m = matchers(model_name)
    out: list[dict] = []
    blocking = {r.name: r for r in decision.rules if r.verdict == "no-go"}
    if {"acceptance_at_production_temperature", "acceptance_p10", "temperature_mix"} & set(blocking):
        got = f" (measured {ev.acceptance_production:.2f})" if ev.acceptance_production is not None else ""
        out.append({"what": "acceptance", "query": "",
                    "when": f"acceptance was under the {no_go_below:.2f} band{got}: try again when the traffic's "
                            "temperature falls or its content becomes more predictable (structured output, code), "
                            "or with a draft closer to the target; re-run 40_sweep on a sample of the new traffic"})
    if "load_crossover_vs_peak" in blocking or "tpot_slo_at_peak" in blocking or "throughput_at_peak" in blocking:
        out.append({"what": "running requests per replica", "query": f"max by ({BY}) ({series(RUNNING, m)})",
                    "when": "speculation pays at low batch sizes: try again when each replica's typical running "
                            "requests stay below the lowest load the load test measured a win at, or with more replicas"})
    if {"draft_vram_share", "concurrency_lost_to_draft", "target_vram_share"} & set(blocking):
        out.append({"what": "KV cache usage and preemptions", "query": f"max by ({BY}) ({series(KV_CACHE_USAGE, m)})",
                    "when": "the draft's memory leaves too little KV cache: try again on larger GPUs, with a quantized "
                            "or smaller draft, or when KV usage stays well below 1 and "
                            f"sum by ({BY}) (rate({series(PREEMPTIONS, m)}[5m])) stays at 0"})
    if "ttft_bound_slo" in blocking or "ttft_rise" in blocking:
        out.append({"what": "TTFT P99", "query":
                    f"histogram_quantile(0.99, sum by ({BY}, le) (rate({series(HISTOGRAMS['ttft'] + '_bucket', m)}[5m])))",
                    "when": "TTFT dominates the SLO: speculation only speeds decoding; try again if the SLO moves to TPOT"})
    out += [{"what": "measure next", "query": "", "when": m} for m in decision.measure_next]
    if not out:
        out.append({"what": "the verdict's reasons", "query": "", "when": "; ".join(decision.reasons[:3])})
    return out


def monitoring_plan(decision: Decision, ev: Evidence, *, slo_tpot_ms: float = 0.0, model_name: str = "",
                    no_go_below: float = 0.50) -> dict:
    """Queries, and alerts (GO / GO WITH LIMITS) or what to watch before trying again (NO-GO,
    INCONCLUSIVE), as plain data for decision.json, the report and :mod:`.ops_outputs`."""
    plan: dict = {"verdict": decision.verdict, "model_name": model_name,
                  "queries": [x.model_dump() for x in queries(model_name)], "alerts": [], "watch": [],
                  "crossover_concurrency": crossover_of(decision, ev), "slo_tpot_ms": slo_tpot_ms}
    if decision.verdict in ALERTING_VERDICTS:
        plan["alerts"] = [x.model_dump(by_alias=True) for x in alerts(
            model_name=model_name, measured_acceptance=ev.acceptance_production, no_go_below=no_go_below,
            crossover_concurrency=plan["crossover_concurrency"], slo_tpot_ms=slo_tpot_ms)]
    else:
        plan["watch"] = watch_items(decision, ev, model_name=model_name, no_go_below=no_go_below)
    return plan


def recording_rules(model_name: str = "") -> list[dict]:
    """Per-instance recording rules (``specdecode:<what>:rate5m``) for the dashboard and the alerts."""
    q = {x.name: x.promql for x in queries(model_name)}
    return [{"record": f"specdecode:{name}:rate5m", "expr": q[name]}
            for name in ("acceptance_rate", "mean_acceptance_length", "acceptance_by_position")]


def prometheus_rules_yaml(plan: dict, group: str = "speculative-decoding") -> str:
    """The plan as a Prometheus rule file: recording rules, then the alerts (none for NO-GO / INCONCLUSIVE,
    whose 'watch before trying again' list heads the file as comments)."""
    import yaml

    rules: list[dict] = recording_rules(plan.get("model_name", ""))
    for a in plan.get("alerts", []):
        rules.append({"alert": a["name"], "expr": a["expr"], "for": a["for"],
                      "labels": {"severity": "warning"},
                      "annotations": {"summary": f"{a['name']} on {{{{ $labels.{BY} }}}}", "description": a["why"]}})
    head = f"# Speculative decoding: verdict {plan.get('verdict', '?')}.\n"
    if plan.get("watch"):
        head += "# No alerts: speculation is not recommended. Watch before trying again:\n"
        head += "".join(f"#  - {w['what']}: {w['when']}".replace("\n", " ") + "\n" for w in plan["watch"])
    body = yaml.safe_dump({"groups": [{"name": group, "rules": rules}]}, sort_keys=False, width=200)
    return head + body
