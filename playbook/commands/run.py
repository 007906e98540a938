"""playbook run: execute the notebooks in order into a new run directory."""

from __future__ import annotations

from playbook.commands._common import print_json
from playbook.helpers.params import parse_override
from playbook.runner import run_playbook

NAME = "run"
HELP = "run the playbook's notebooks headless (papermill) into runs/<timestamp>/ and print the verdict"

# --exit-code: the verdict as the exit status, for CI pipelines (README, "Exit codes"). A failed step
# (or an error before any step) is 1 with or without the flag: the verdict then rests on nothing.
EXIT_CODES = {"GO": 0, "GO WITH LIMITS": 10, "NO-GO": 20, "INCONCLUSIVE": 30}
STEP_FAILED = 1


def add_arguments(p) -> None:
    p.add_argument("--profile", help="profile YAML path or shipped name (default: embedded-cpu)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="override one parameter (repeatable)")
    p.add_argument("--only", nargs="+", metavar="STEP", help="run only these steps (e.g. 20_memory or 20); the report always runs")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its first unfinished step")
    p.add_argument("--runs-dir", default="runs", help="where new run directories go (default: ./runs)")
    p.add_argument("--force", action="store_true", help="go on after preflight's blocking checks failed")
    p.add_argument("--exit-code", action="store_true",
                   help="exit with the verdict: GO 0, GO WITH LIMITS 10, NO-GO 20, INCONCLUSIVE 30 (a failed step: 1)")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")


def exit_status(verdict: str | None, failed_steps: list[str], by_verdict: bool) -> int:
    """1 when a step failed (always); else the verdict's code with ``by_verdict``, else 0."""
    if failed_steps:
        return STEP_FAILED
    if by_verdict:
        return EXIT_CODES.get(verdict or "", EXIT_CODES["INCONCLUSIVE"])
    return 0


def run(args) -> int:
    if args.resume and args.profile:
        from playbook.helpers.errors import ParameterError

        raise ParameterError(f"--resume continues {args.resume} with the parameters recorded in its run.json; "
                             f"--profile {args.profile} would be ignored",
                             "drop --profile (-p NAME=VALUE still changes one parameter), or start a new run with "
                             "--profile and without --resume")
    overrides = dict(parse_override(x) for x in args.param)
    outcome = run_playbook(
        profile=args.profile, overrides=overrides, only=args.only, resume=args.resume, runs_dir=args.runs_dir,
        force=args.force,
    )
    if args.json:
        print_json(outcome)
    else:
        print(f"report:  {outcome.report or '(not built: the report step failed)'}")
        print(f"verdict: {outcome.verdict or 'none'}")
        from playbook.helpers.candidates import read as read_candidates

        if (comparison := read_candidates(outcome.run_dir)) is not None:  # step 50's configurations (issue 19)
            print(f"compared: {comparison.finding}")
        if outcome.failed_steps:
            print(f"failed:  {', '.join(outcome.failed_steps)}")
    return exit_status(outcome.verdict, outcome.failed_steps, args.exit_code)
