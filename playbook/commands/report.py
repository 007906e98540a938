"""playbook report: (re)build report.html and decision.json of a run directory."""

from __future__ import annotations

from playbook.commands._common import print_json
from playbook.helpers.artifacts import RunDir
from playbook.report import build_html
from playbook.runner import REPORT_STEP, execute_step, load_state, verdict_of

NAME = "report"
HELP = "(re)build report.html, decision.json and summary.md from a run directory's artifacts"


def add_arguments(p) -> None:
    p.add_argument("run_dir", help="a run directory made by `playbook run` (or an interactive session)")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")


def run(args) -> int:
    run_dir = RunDir(args.run_dir, create=False)
    params: dict = {}
    if (run_dir.path / "run.json").exists():
        from playbook.helpers.params import STEP_MODELS

        fields = STEP_MODELS[REPORT_STEP].model_fields
        params = {k: v for k, v in load_state(run_dir).parameters.items() if k in fields}
    execute_step(run_dir, REPORT_STEP, params)
    html = build_html(run_dir)
    out = {"run_dir": str(run_dir.path), "report": str(html), "verdict": verdict_of(run_dir)}
    if args.json:
        print_json(out)
    else:
        print(f"report:  {html}\nverdict: {out['verdict']}")
    return 0
