"""playbook report: decide a run directory's verdict (decision.json, summary.md), then render report.html.

The decision is computed here, in-process (``steps.report``), so a verdict exists even where no
Jupyter kernel can start; the kernel only renders the report notebook into report.html.
"""

from __future__ import annotations

import contextlib
import re
import sys
import warnings

from playbook.commands._common import print_json
from playbook.helpers import steps
from playbook.helpers.artifacts import RunDir, read_jsonl
from playbook.helpers.errors import ArtifactError, ParameterError, PlaybookError
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


STEP_RESULT = re.compile(r"\d\d_\w+\.json")  # artifacts/40_sweep.json, 50_load.json, ...


def check_run_directory(run: RunDir) -> None:
    """Refuse what is not a run directory (a workspace, ``runs/``, an empty directory) before writing
    anything into it: one with run.json (``playbook run``), or an interactive run's artifacts/ holding a
    step result."""
    if (run.path / "run.json").exists() or (
            run.artifacts.is_dir() and any(STEP_RESULT.fullmatch(p.name) for p in run.artifacts.iterdir())):
        # a run (or an interactive run: no run.json, but step results); a raw-record file the playbook
        # did not write (a line that is no JSON object) is refused before anything is written
        for path in sorted(run.artifacts.glob("*.jsonl")):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                read_jsonl(path)
        return
    inside = sorted(p.parent.name for p in run.path.glob("*/run.json"))[:3]
    raise ArtifactError(
        f"{run.path} has no run.json and no step results in artifacts/: it is not a run directory"
        + (f" (it holds the runs {', '.join(inside)})" if inside else ""),
        "pass a directory made by `playbook run` (runs/<timestamp>) or an interactive run (runs/interactive)",
    )


def report_parameters(run: RunDir) -> dict:
    """The report step's parameters the run recorded in run.json (none for an interactive run)."""
    if not (run.path / "run.json").exists():
        return {}
    return {k: v for k, v in load_state(run).parameters.items() if k in ReportParams.model_fields}


def _validated(run: RunDir, params: dict, overrides: dict) -> ReportParams:
    """The report step's parameters; a value that fails, and that no -p gave, is named as run.json's (the user did
    not type it): the fix is to mend run.json or override it."""

    try:
        return validate_params(ReportParams, {**params, "run_dir": str(run.path)})
    except ParameterError as exc:
        if any(f"'{name}'" in exc.problem for name in overrides):
            raise
        raise ParameterError(f"{exc.problem} (a value recorded in {run.path / 'run.json'})",
                             f"correct it in run.json with an editor, or give it: playbook report {run.path} "
                             "-p NAME=VALUE") from None


def refuse_read_only(run: RunDir, p: ReportParams, args) -> None:
    """A run directory nothing can be written to (a read-only mount, no permission): decide in memory, print the
    verdict, then refuse saying so (not "free some disk space": the disk is not full)."""
    from playbook.commands._common import read_only_reason

    reason = read_only_reason(run.path)
    if reason is None:
        return
    from playbook.helpers import decide, evidence

    verdict = None
    with contextlib.suppress(Exception):  # the verdict is a courtesy here; the error below is the answer
        d = decide.decide_for(evidence.gather(run, p.production_temperature, params=p), p)
        verdict = d.verdict
        if args.json:
            print_json({"run_dir": str(run.path), "report": None, "verdict": d.verdict, "written": False})
        else:
            print(f"verdict: {d.verdict} ({d.confidence} confidence): {d.headline}\n"
                  "         computed, not written: decision.json, summary.md and report.html stay as they were")
    raise ArtifactError(
        f"the run directory {run.path} is read-only ({reason})" + ("" if verdict else ": nothing was decided"),
        f"copy it somewhere writable and report there: cp -a {run.path} /tmp/{run.path.name} && "
        f"playbook report /tmp/{run.path.name}")


def run(args) -> int:
    from playbook.helpers import redecide
    from playbook.helpers.params import parse_override

    run_dir = RunDir(args.run_dir, create=False)
    check_run_directory(run_dir)
    overrides = redecide.check_overrides(dict(parse_override(x) for x in getattr(args, "param", [])))
    params = report_parameters(run_dir)
    if not (run_dir.path / "run.json").exists() and not args.json:
        print("note: no run.json (an interactive run, or it was removed): the report step's default thresholds, "
              "peak and SLOs apply; give yours with -p name=value", file=sys.stderr)
    recorded = params
    params = {**params, **overrides}
    p_after = _validated(run_dir, params, overrides)
    before, p_before = redecide.previous_decision(run_dir), p_after
    if overrides:  # what the decision was taken with, for the changes block (run.json's own, if they are valid)
        with contextlib.suppress(PlaybookError):
            p_before = _validated(run_dir, recorded, {})
    refuse_read_only(run_dir, p_after, args)  # says the verdict it computed, then why nothing is written
    result = steps.report(p_after, run_dir)
    out = {"run_dir": str(run_dir.path), "report": None, "verdict": result.decision.verdict}
    # a re-decision whenever the previous decision used other parameters: -p values, or going back to run.json's
    changes = redecide.changes(before, p_before, p_after, result.decision, overrides)
    changes = changes if redecide.worth_recording(changes) else None
    if changes:
        redecide.record(run_dir, changes)  # before rendering: the report notebook may show redecide.md
    failure = None
    try:
        run_dir.notebooks.mkdir(exist_ok=True)
        execute_step(run_dir, REPORT_STEP, params)
        out["report"] = str(build_html(run_dir))
    except Exception as exc:  # noqa: BLE001 - the verdict stands; say why the HTML is missing (one error line)
        reason = (f"{getattr(exc, 'ename', '')}: {getattr(exc, 'evalue', '')}" if hasattr(exc, "ename")
                  else f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        failure = ArtifactError(f"report.html not rendered ({reason[:300]}); decision.json and summary.md are written",
                                f"see {run_dir.notebooks / '90_report.ipynb'}, fix the cause and rerun `playbook report`")
    if changes:  # the report notebook wrote decision.json again: the changes block goes back in
        redecide.record(run_dir, changes, append=False)
        out["changes"] = changes
    if args.json:
        print_json(out)
    else:
        print(f"report:  {out['report'] or '(not rendered)'}\nverdict: {out['verdict']}")
        if changes:
            used = (", ".join(f"{k}={v}" for k, v in overrides.items()) if overrides else "back to run.json's "
                    "parameters: " + ", ".join(f"{k}={v['to']}" for k, v in changes["parameters"].items()))
            print(f"re-decided without measuring: {changes['previous_verdict'] or 'none'} -> {changes['verdict']} "
                  f"({used}); see {run_dir.path / redecide.NOTE}")
    if failure is not None:
        raise failure
    return 0
