"""What to watch once speculation is on: PromQL over vLLM's counters, and alert thresholds.

Rates always come from ``rate()`` over counter deltas, never from the absolute counter values
(they grow from the server's start and reset on restart). Metric names are vLLM V1's
(``vllm/v1/metrics``, kept in :mod:`.metrics`); the old acceptance-rate gauge is given as a
fallback for vLLM < 0.7.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from .metrics import ACCEPTED, ACCEPTED_PER_POS, DRAFT_TOKENS, DRAFTS, HISTOGRAMS, LEGACY_RATE, RUNNING
from .schemas.decision import Decision, Evidence


class Query(BaseModel):
    name: str
    promql: str
    meaning: str


class Alert(BaseModel):
    name: str
    expr: str = Field(description="PromQL that is true when the alert should fire")
    for_: str = Field("15m", alias="for", serialization_alias="for")
    threshold: float
    why: str

    model_config = {"populate_by_name": True}


def _sel(model_name: str) -> str:
    return f'{{model_name="{model_name}"}}' if model_name else ""


def queries(model_name: str = "", window: str = "5m") -> list[Query]:
    """PromQL for acceptance rate, mean acceptance length, per-position acceptance and latency."""
    s, w = _sel(model_name), window
    acc = f"sum(rate({ACCEPTED}{s}[{w}]))"
    drafted = f"sum(rate({DRAFT_TOKENS}{s}[{w}]))"
    drafts = f"sum(rate({DRAFTS}{s}[{w}]))"
    return [
        Query(name="acceptance_rate", promql=f"{acc} / {drafted}",
              meaning="draft acceptance rate: accepted / proposed draft tokens over the window"),
        Query(name="mean_acceptance_length", promql=f"1 + {acc} / {drafts}",
              meaning="tokens produced per target step (1 + accepted per draft); 1.0 means speculation does nothing"),
        Query(name="acceptance_by_position",
              promql=f"sum by (position) (rate({ACCEPTED_PER_POS}{s}[{w}])) / scalar({drafts})",
              meaning="p_i: share of drafts whose first i+1 tokens were accepted; a steep fall says k is too large"),
        Query(name="tpot_p99_seconds",
              promql=f"histogram_quantile(0.99, sum by (le) (rate({HISTOGRAMS['tpot']}_bucket{s}[{w}])))",
              meaning="P99 time per output token"),
        Query(name="ttft_p99_seconds",
              promql=f"histogram_quantile(0.99, sum by (le) (rate({HISTOGRAMS['ttft']}_bucket{s}[{w}])))",
              meaning="P99 time to first token (speculation may raise it slightly)"),
        Query(name="running_requests", promql=f"sum({RUNNING}{s})",
              meaning="batch size now: compare with the crossover"),
        Query(name="acceptance_rate_legacy_gauge", promql=f"avg({LEGACY_RATE}{s})",
              meaning="fallback for vLLM < 0.7, which exposed a gauge instead of counters"),
    ]


def alerts(
    *,
    model_name: str = "",
    measured_acceptance: float | None = None,
    no_go_below: float = 0.50,
    relative_drop: float = 0.20,
    crossover_concurrency: float | None = None,
    slo_tpot_ms: float = 0.0,
    window: str = "15m",
) -> list[Alert]:
    """Alert thresholds: acceptance below the no-go band (or 20% under what was measured),
    running requests above the crossover, TPOT P99 above the SLO."""
    q = {x.name: x.promql for x in queries(model_name, window="5m")}
    floor = no_go_below
    why = f"below {no_go_below:.2f} speculation is a net loss (SPEC rule)"
    if measured_acceptance is not None and measured_acceptance * (1 - relative_drop) > no_go_below:
        floor = max(no_go_below, measured_acceptance * (1 - relative_drop))
        why = f"acceptance fell {relative_drop:.0%} below the measured {measured_acceptance:.2f} (or under {no_go_below:.2f}): traffic or temperature changed"
    out = [
        Alert(name="SpecDecodeAcceptanceLow", expr=f"({q['acceptance_rate']}) < {floor:.3f}", for_=window, threshold=round(floor, 3), why=why),
        Alert(name="SpecDecodeNoGain", expr=f"({q['mean_acceptance_length']}) < 1.5", for_=window, threshold=1.5,
              why="fewer than 1.5 tokens per target step: the draft's cost is barely repaid"),
    ]
    if crossover_concurrency:
        out.append(Alert(name="SpecDecodePastCrossover", expr=f"{q['running_requests']} >= {crossover_concurrency:g}", for_=window,
                         threshold=crossover_concurrency, why=f"at {crossover_concurrency:g}+ running requests the load test measured no gain"))
    if slo_tpot_ms:
        out.append(Alert(name="TpotSloBreached", expr=f"{q['tpot_p99_seconds']} > {slo_tpot_ms / 1000:g}", for_="5m",
                         threshold=slo_tpot_ms, why=f"TPOT P99 above the {slo_tpot_ms:g} ms SLO"))
    return out


def monitoring_plan(decision: Decision, ev: Evidence, *, slo_tpot_ms: float = 0.0, model_name: str = "") -> dict:
    """Queries and alerts for this decision, as plain data for decision.json and the report."""
    crossover = None
    rule = next((r for r in decision.rules if r.name == "load_crossover_vs_peak"), None)
    if rule is not None and rule.verdict in ("go", "borderline") and ev.load_kind == "concurrency":
        crossover = rule.numbers.get("first_non_win")
    return {
        "queries": [x.model_dump() for x in queries(model_name)],
        "alerts": [x.model_dump(by_alias=True) for x in alerts(model_name=model_name, measured_acceptance=ev.acceptance_production,
                                                                crossover_concurrency=crossover, slo_tpot_ms=slo_tpot_ms)],
    }


def prometheus_rules_yaml(plan: dict, group: str = "speculative-decoding") -> str:
    """The alerts as a Prometheus rule file (YAML text)."""
    import yaml

    rules = [{"alert": a["name"], "expr": a["expr"], "for": a["for"], "annotations": {"summary": a["why"]}} for a in plan["alerts"]]
    return yaml.safe_dump({"groups": [{"name": group, "rules": rules}]}, sort_keys=False, width=200)
