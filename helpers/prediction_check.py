"""Predicted vs measured: the speedup the predictor gave against the load test's, its error said without
flattering it, and what decision.json keeps of a prediction."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .errors import ParameterError
from .predict import break_even_words, per_batch_size_schedule
from .schemas.predict import Prediction, PredictionCheck
from .stats import interpolate


def crossover_from_measured(levels: Sequence[int], speedups: Sequence[float]) -> int | None:
    """The first measured level at which the speedup falls below 1 (None: never in the range)."""
    for level, s in sorted(zip(levels, speedups, strict=True)):
        if s < 1.0:
            return int(level)
    return None


def compare(pred: Prediction, measured: dict[int, float], calibration_levels: Sequence[int] = (1,),
            intervals: dict[int, tuple[float | None, float | None]] | None = None) -> PredictionCheck:
    """Predicted vs measured speedup at the measured concurrency levels (interpolated in log batch); the
    held-out error leaves out ``calibration_levels`` (a run's fit uses the measurements at concurrency 1).
    ``intervals``: the load test's 95% interval per level (low, high), kept to say whether the prediction
    falls inside what the measurement can resolve."""
    if not measured:
        raise ParameterError("no measured speedups to compare with", "run the load test (50_load) first")
    xs = [p.batch_size for p in pred.points]
    ys = [p.speedup for p in pred.points]
    levels = sorted(measured)
    predicted = [interpolate(math.log(lv), [math.log(x) for x in xs], ys) for lv in levels]  # in log batch
    meas = [measured[lv] for lv in levels]
    rel = [abs(p - m) / m if m else math.inf for p, m in zip(predicted, meas, strict=True)]
    calibration = set(calibration_levels)
    held = [e for lv, e in zip(levels, rel, strict=True) if lv not in calibration]
    return PredictionCheck(
        concurrency=levels, measured_speedup=meas, predicted_speedup=predicted,
        relative_error=rel, mean_abs_relative_error=sum(rel) / len(rel),
        held_out_error=sum(held) / len(held) if held else None,
        held_out_levels=[lv for lv in levels if lv not in calibration],
        measured_interval=[_interval((intervals or {}).get(lv)) for lv in levels],
    )


def check_against_load(pred: Prediction, levels: Sequence) -> PredictionCheck | None:
    """:func:`compare` against a load test's levels (``LoadLevel``: speedup and its interval), or None when no
    level has a speedup (all withheld, or none measured)."""
    measured = {int(x.concurrency): x.speedup for x in levels if x.speedup}
    if not measured:
        return None
    return compare(pred, measured, intervals={int(x.concurrency): (x.speedup_ci_low, x.speedup_ci_high) for x in levels})


def _interval(bounds: tuple[float | None, float | None] | None) -> tuple[float, float] | None:
    return (bounds[0], bounds[1]) if bounds and bounds[0] is not None and bounds[1] is not None else None


def held_out_agreement(check: PredictionCheck) -> str:
    """Where the held-out predictions sit against the load test: inside its 95% intervals at how many levels,
    and the bias when every one errs the same way ('' without held-out levels)."""
    rows = [(p, m, ci) for lv, p, m, ci in zip(check.concurrency, check.predicted_speedup, check.measured_speedup,
                                                 check.measured_interval or [None] * len(check.concurrency), strict=True)
            if lv in check.held_out_levels]
    if not rows:
        return ""
    parts = []
    with_ci = [(p, ci) for p, _, ci in rows if ci is not None]
    if with_ci:
        inside = sum(ci[0] <= p <= ci[1] for p, ci in with_ci)
        parts.append(f"inside the load test's 95% interval at {inside} of {len(with_ci)}")
    if len(rows) > 1 and all(p > m for p, m, _ in rows):
        parts.append("above the measured speedup at every one (too optimistic)")
    elif len(rows) > 1 and all(p < m for p, m, _ in rows):
        parts.append("below the measured speedup at every one (too pessimistic)")
    return "; ".join(parts)


def error_sentence(check: PredictionCheck) -> str:
    """How far the predictor was from the load test, said without flattering it: the error at the loads it was
    not calibrated on first, then the mean that counts the calibration level."""
    if check.held_out_error is None:
        return (f"{check.mean_abs_relative_error:.0%} at concurrency {', '.join(map(str, check.concurrency))}, where it "
                "is calibrated (no other level measured)")
    agreement = held_out_agreement(check)
    return (f"{check.held_out_error:.0%} on average at the loads it was not calibrated on "
            f"({', '.join(map(str, check.held_out_levels))}); {check.mean_abs_relative_error:.0%} counting every level"
            + (f"; there, {agreement}" if agreement else ""))


def prediction_summary(pred: Prediction | None, check: PredictionCheck | None) -> dict:
    """What decision.json keeps of the prediction: the curve, crossover, best k, and its measured error."""
    if pred is None:
        return {}
    out = {
        "speedup_by_batch_size": {p.batch_size: round(p.speedup, 4) for p in pred.points},
        "crossover_batch_size": pred.crossover_batch_size, "optimal_k": pred.optimal_k,
        "num_speculative_tokens_per_batch_size": per_batch_size_schedule(pred.optimal_k_by_batch_size),
        "acceptance": round(pred.acceptance, 4), "cost_ratio": round(pred.cost_ratio, 4), "finding": pred.finding,
        "break_even": break_even_words(pred),
    }
    if check is not None:
        out["mean_abs_relative_error"] = round(check.mean_abs_relative_error, 4)
        if check.held_out_error is not None:
            out["held_out_error"] = round(check.held_out_error, 4)
            agreement = held_out_agreement(check)
            if agreement:
                out["held_out_agreement"] = agreement
    return out
