"""Build run directories holding step results (real result models) for the decision tests."""

from __future__ import annotations

import json

from playbook.helpers.artifacts import RunDir
from playbook.helpers.schemas.load import LevelStats, LoadResult, Percentiles, SpeedupPoint
from playbook.helpers.schemas.preflight import PreflightResult
from playbook.helpers.schemas.sweep import SweepPoint, SweepResult


def sweep(acc_at_prod=0.75, p10=0.6, per_position=(0.8, 0.6, 0.45, 0.3), workloads=None) -> SweepResult:
    """Swept at T=0 and T=0.8; the production temperature 0.2 lies between, where the evidence interpolates: the
    P10 there is ``p10`` (T=0's is 0.05 above, T=0.8's 0.15 below)."""
    temps = [SweepPoint(temperature=0.0, acceptance_rate=min(acc_at_prod + 0.1, 1), per_position=list(per_position),
                        per_request_p10=min(p10 + 0.05, 1), requests=8),
             SweepPoint(temperature=0.8, acceptance_rate=max(acc_at_prod - 0.4, 0), per_position=[0.2, 0.05, 0.01, 0.0],
                        per_request_p10=max(p10 - 0.15, 0), requests=8)]
    points = [SweepPoint(temperature=0.2, workload=w, acceptance_rate=a, requests=4) for w, a in (workloads or {}).items()]
    return SweepResult(method="draft_model", num_speculative_tokens=4, production_temperature=0.2,
                       production_acceptance=acc_at_prod, temperatures=temps, points=points,
                       finding=f"acceptance {acc_at_prod:.2f} at the production temperature 0.2")


def load(levels: dict[float, tuple[float, float, float]], *, tpot_base=5.0, error_rate=0.0, p99_factor=1.2,
         temperature=0.2, withheld: dict | None = None, ttft_spec_p50=22.0, throughput_ratio=None) -> LoadResult:
    """levels: {concurrency: (speedup, ci_low, ci_high)}; TPOTs derived from the speedup.
    withheld: {concurrency: (status, reason)} for levels the load test excluded or found inconclusive."""
    stats, sps = [], []
    for c, (s, lo, hi) in levels.items():
        b = tpot_base * (1 + 0.1 * c)
        stats.append(LevelStats(config="baseline", level=c, requests=16, tpot_ms=Percentiles(p50=b, p99=b * p99_factor),
                                ttft_ms=Percentiles(p50=20, p99=30), error_rate=error_rate))
        stats.append(LevelStats(config="spec", level=c, requests=16, tpot_ms=Percentiles(p50=b / s, p99=b / s * p99_factor),
                                ttft_ms=Percentiles(p50=ttft_spec_p50, p99=33), error_rate=error_rate, acceptance_rate=0.6))
        status, reason = (withheld or {}).get(c, ("ok", ""))
        sps.append(SpeedupPoint(level=c, speedup=s, ci_low=lo, ci_high=hi, significant=lo > 1 or hi < 1,
                                status=status, reason=reason, throughput_ratio=throughput_ratio))
    return LoadResult(levels=stats, speedup=sps, error_rate=error_rate, workload="structured", temperature=temperature,
                      finding="load test")


def make_run(path, *, sweep_result=None, load_result=None, preflight=True, extra: dict | None = None) -> RunDir:
    run = RunDir(path)
    if preflight:
        run.write_json("00_preflight.json", PreflightResult(vllm_version="0.32.0", vllm_build="cpu", finding="ready"))
    if sweep_result is not None:
        run.write_json("40_sweep.json", sweep_result)
    if load_result is not None:
        run.write_json("50_load.json", load_result)
    for name, data in (extra or {}).items():
        run.write_json(name, data)
    return run


def executed_notebook(run: RunDir, step: str, **params) -> None:
    """A step's executed notebook in ``run`` as papermill records it: the parameters it ran with, no cells."""
    run.notebooks.mkdir(exist_ok=True)
    (run.notebooks / f"{step}.ipynb").write_text(json.dumps(
        {"cells": [], "metadata": {"papermill": {"parameters": params}}, "nbformat": 4, "nbformat_minor": 5}))
