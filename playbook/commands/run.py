"""playbook run: execute the notebooks in order into a new run directory."""

from __future__ import annotations

from playbook.commands._common import print_json
from playbook.helpers.params import parse_override
from playbook.runner import run_playbook

NAME = "run"
HELP = "run the playbook's notebooks headless (papermill) into runs/<timestamp>/ and print the verdict"


def add_arguments(p) -> None:
    p.add_argument("--profile", help="profile YAML path or shipped name (default: embedded-cpu)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="override one parameter (repeatable)")
    p.add_argument("--only", nargs="+", metavar="STEP", help="run only these steps (e.g. 20_memory or 20); the report always runs")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its first unfinished step")
    p.add_argument("--runs-dir", default="runs", help="where new run directories go (default: ./runs)")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")


def run(args) -> int:
    overrides = dict(parse_override(x) for x in args.param)
    outcome = run_playbook(
        profile=args.profile, overrides=overrides, only=args.only, resume=args.resume, runs_dir=args.runs_dir
    )
    if args.json:
        print_json(outcome)
    else:
        print(f"report:  {outcome.report or '(not built: the report step failed)'}")
        print(f"verdict: {outcome.verdict or 'none'}")
    return 1 if outcome.failed_steps else 0
