"""Write notebooks 40_sweep and 50_load (thin: guide, parameters, a few helper calls), without outputs.

Run: .venv/bin/python -m scripts.make_measure_notebooks
"""

from __future__ import annotations

from pathlib import Path

from playbook.helpers.params import LoadParams, SweepParams
from scripts.nbwrite import write_notebook
from scripts.sync_params_cells import params_source

ROOT = Path(__file__).resolve().parents[1] / "notebooks"

SWEEP_GUIDE = """# 40 · Temperature sweep: how often does the target accept the draft?

**What this step decides:** whether the draft's tokens are accepted often enough, at the temperature
your production traffic uses, for speculation to have a chance. The same prompts are sent at each
temperature, per workload class, to the speculative server; acceptance comes from the deltas of vLLM's
`vllm:spec_decode_*` counters around each point, and its spread across requests from the per-request
metrics (`--per-request-spec-decode-metrics`).

**What to look at:** the acceptance curve against the SPEC bands (red: below 0.50, no-go; amber:
0.50 to 0.65, borderline, decide on P99 under load; green: above 0.65); the per-request P10 (below
0.50 means a share of your traffic is made slower); acceptance by draft position (a steep fall means a
smaller `num_speculative_tokens` wastes less work).

**What number would change the decision:** acceptance at the production temperature crossing 0.50 or
0.65, or a P10 below 0.50. A server without speculation is reported as such, not as zero acceptance."""

LOAD_GUIDE = """# 50 · Load test: baseline vs speculative on the same hardware

**What this step decides:** whether speculation makes tokens come faster for your load, and up to
which load. Each configuration runs the same prompts at each level (concurrency or request rate),
one server at a time so each has the whole machine; with `find_saturation` the levels keep doubling
while throughput still grows. A losslessness guard first checks that speculation does not change what
the model says (identical greedy outputs at T=0; same likelihood under the baseline at T>0).

**What to look at:** TPOT speedup per level with its 95% bootstrap interval (an interval that
contains 1.0 is not a win); the crossover, the first level where the interval lies wholly below 1.0;
TTFT (speculation does not help it, it may rise); the P50-to-P99 gap (a widening gap signals a
mixed-workload problem); the error rate; and the lossless verdict (NOT LOSSLESS is a no-go).

**What number would change the decision:** a speedup interval above 1.0 at your expected peak load,
the crossover moving below that load, an error rate above the report's threshold, or a failed
losslessness check."""

SWEEP_CELLS = [
    ("md", SWEEP_GUIDE),
    ("params", params_source(SweepParams)),
    ("code", """from IPython.display import display

from playbook.helpers import measure_plots, plots
from playbook.helpers.artifacts import RunDir
from playbook.helpers.params import SweepParams
from playbook.helpers.sweep import points_table, run_sweep_step

p = SweepParams.from_namespace(globals())
run = RunDir(p.run_dir)
print(f"run directory: {run.path}")"""),
    ("md", "Requests are appended to `artifacts/40_sweep_requests.jsonl` as they complete, each finished "
           "(workload, temperature) point to `40_sweep_points.jsonl`; the result goes to `artifacts/40_sweep.json`. "
           "Re-running this step in the same run directory with the same parameters (`playbook run --resume`) "
           "measures only the points still missing; the server is not started if none are."),
    ("code", """result = run_sweep_step(p, run)
run.write_json("40_sweep.json", result)
if result.resumed_points:
    print(f"{result.resumed_points} point(s) reused from the interrupted earlier run")
for w in result.warnings:
    print("warning:", w)
display(points_table(result))"""),
    ("code", """fig = plots.acceptance_by_temperature([pt.model_dump() for pt in result.points + result.temperatures],
                                     no_go_below=p.acceptance_no_go_below, go_above=p.acceptance_go_above,
                                     production_temperature=p.production_temperature)
fig.savefig(run.artifact("40_acceptance.png"), dpi=100)
fig"""),
    ("code", """fig = measure_plots.per_request_acceptance(result.temperatures, p.acceptance_no_go_below)
fig.savefig(run.artifact("40_per_request.png"), dpi=100)
fig"""),
    ("code", """fig = measure_plots.per_position_acceptance(result.temperatures)
fig.savefig(run.artifact("40_per_position.png"), dpi=100)
fig"""),
    ("code", "print(result.finding)"),
]

LOAD_CELLS = [
    ("md", LOAD_GUIDE),
    ("params", params_source(LoadParams)),
    ("code", """from IPython.display import display

from playbook.helpers import measure_plots, plots
from playbook.helpers.artifacts import RunDir
from playbook.helpers.loadtest import levels_table, run_load_test, speedup_table
from playbook.helpers.params import LoadParams

p = LoadParams.from_namespace(globals())
run = RunDir(p.run_dir)
print(f"run directory: {run.path}")"""),
    ("md", "Requests go to `artifacts/50_load_requests.jsonl` as they complete, /metrics samples to "
           "`50_load_samples.jsonl`, per-level summaries to `50_load_levels.jsonl`; the result to "
           "`artifacts/50_load.json`. Re-running this step in the same run directory with the same parameters "
           "(`playbook run --resume`) measures only the levels still missing; a server whose levels are all "
           "done is not started."),
    ("code", """live = ui.LiveLoadView("levels measured so far", plot=p.interactive)  # redraws as each level completes
result = run_load_test(p, run, on_level=live.update)
run.write_json("50_load.json", result)
print(result.lossless.finding if result.lossless else "losslessness guard not run")
for w in result.warnings:
    print("warning:", w)"""),
    ("code", "display(levels_table(result))"),
    ("code", """display(speedup_table(result))
print("crossover:", result.crossover, "|", result.crossover_rule)
if result.mixed:
    display(result.mixed.model_dump())"""),
    ("code", """fig = measure_plots.latency_percentiles(result.levels)
fig.savefig(run.artifact("50_latency.png"), dpi=100)
fig"""),
    ("code", """fig = measure_plots.speedup_band(result.speedup, result.level_kind, result.crossover)
fig.savefig(run.artifact("50_speedup.png"), dpi=100)
fig"""),
    ("code", """fig = measure_plots.throughput(result.levels)
fig.savefig(run.artifact("50_throughput.png"), dpi=100)
fig"""),
    ("code", """sweep = run.read_json("40_sweep.json")  # acceptance by temperature, when step 40 ran
if sweep:
    fig = plots.acceptance_by_temperature(sweep["points"] + sweep["temperatures"],
                                          production_temperature=sweep["production_temperature"])
    display(fig)"""),
    ("code", "print(result.finding)"),
]


def main() -> None:
    write_notebook(ROOT / "40_sweep.ipynb", SWEEP_CELLS)
    write_notebook(ROOT / "50_load.ipynb", LOAD_CELLS)


if __name__ == "__main__":
    main()
