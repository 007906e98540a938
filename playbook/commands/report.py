"""playbook report: decide a run directory's verdict (decision.json, summary.md), then render report.html.

The decision is computed here, in-process (``steps.report``), so a verdict exists even where no
Jupyter kernel can start; the kernel only renders the report notebook into report.html.
"""

from __future__ import annotations

import sys

from playbook.commands._common import print_json
from playbook.helpers import steps
from playbook.helpers.artifacts import RunDir
from playbook.helpers.params import ReportParams, validate_params
from playbook.report import build_html
from playbook.runner import REPORT_STEP, execute_step, load_state

NAME = "report"
HELP = "(re)build decision.json, summary.md and report.html from a run directory's artifacts"


def add_arguments(p) -> None:
    p.add_argument("run_dir", help="a run directory made by `playbook run` (or an interactive session)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="re-decide with another report parameter (a threshold, an SLO, expected_peak_concurrency, "
                        "production_temperature); the measured numbers stay; writes redecide.md (repeatable)")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")


def report_parameters(run: RunDir) -> dict:
    """The report step's parameters the run recorded in run.json (none for an interactive run)."""
    if not (run.path / "run.json").exists():
        return {}
    return {k: v for k, v in load_state(run).parameters.items() if k in ReportParams.model_fields}


def run(args) -> int:
    from playbook.helpers import redecide
    from playbook.helpers.params import parse_override

    run_dir = RunDir(args.run_dir, create=False)
    overrides = redecide.check_overrides(dict(parse_override(x) for x in getattr(args, "param", [])))
    params = report_parameters(run_dir)
    before, p_before = redecide.previous_decision(run_dir), validate_params(ReportParams, {**params, "run_dir": str(run_dir.path)})
    params = {**params, **overrides}
    p_after = validate_params(ReportParams, {**params, "run_dir": str(run_dir.path)})
    result = steps.report(p_after, run_dir)
    out = {"run_dir": str(run_dir.path), "report": None, "verdict": result.decision.verdict}
    changes = redecide.changes(before, p_before, p_after, result.decision, overrides) if overrides else None
    if changes:
        redecide.record(run_dir, changes)  # before rendering: the report notebook may show redecide.md
    try:
        execute_step(run_dir, REPORT_STEP, params)
        out["report"] = str(build_html(run_dir))
    except Exception as exc:  # noqa: BLE001 - the verdict stands; say why the HTML is missing
        print(f"report.html not rendered ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
              "decision.json and summary.md are written", file=sys.stderr)
    if changes:  # the report notebook wrote decision.json again: the changes block goes back in
        redecide.record(run_dir, changes, append=False)
        out["changes"] = changes
    if args.json:
        print_json(out)
    else:
        print(f"report:  {out['report'] or '(not rendered)'}\nverdict: {out['verdict']}")
        if changes:
            print(f"re-decided without measuring: {changes['previous_verdict'] or 'none'} -> {changes['verdict']} "
                  f"({', '.join(f'{k}={v}' for k, v in overrides.items())}); see {run_dir.path / redecide.NOTE}")
    return 0 if out["report"] else 1
