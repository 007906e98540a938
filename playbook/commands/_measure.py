"""What the measurement commands (sweep, load, lossless) share: run directory, API key, params."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from playbook.helpers.artifacts import RunDir
from playbook.helpers.errors import ParameterError
from playbook.helpers.params import validate_params


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="", help="served model name ('' = the first one /v1/models lists)")
    parser.add_argument("--api-key-env", default="", metavar="VAR",
                        help="environment variable holding the API key (the key itself is never an argument)")
    parser.add_argument("--run-dir", default="", help="where raw records go (default: runs/cli-<command>-<time>)")
    parser.add_argument("--seed", type=int, default=0, help="seed for prompt sampling and arrivals")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def run_dir(args: argparse.Namespace, command: str) -> RunDir:
    path = args.run_dir or f"runs/cli-{command}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}"
    run = RunDir(path)
    print(f"raw records: {run.artifacts}", file=sys.stderr)
    return run


def params(model, args: argparse.Namespace, **values):
    """Validate through the step's parameter model, so the CLI and the notebooks reject the same input;
    an ``--api-key-env`` must name a variable that is set."""
    p = validate_params(model, {"mode": "external", "served_model_name": args.model,
                                "api_key_env": args.api_key_env, "seed": args.seed, **values})
    if p.api_key_env and not p.api_key():
        raise ParameterError(f"--api-key-env names {p.api_key_env}, but that environment variable is not set",
                             f"export {p.api_key_env}=<key> first, or leave --api-key-env out")
    from playbook.helpers.workloads import check_specs

    check_specs(p)  # an unknown workload or a bad prompts file fails before any server is asked, as in `playbook run`
    if args.run_dir and Path(args.run_dir).expanduser().exists() and not Path(args.run_dir).expanduser().is_dir():
        raise ParameterError(f"--run-dir {args.run_dir} is a file, not a directory",
                             "give a directory for the raw records (created if missing), or leave --run-dir out")
    return p


def reachable_model(url: str, given: str, api_key: str | None) -> str:
    """Check that ``url`` answers /v1/models (naming the URL and the cause when not: a closed port, a 401)
    before anything is written; returns the model to ask for."""
    from playbook.helpers.server import served_model

    return served_model(url, given, api_key)


def model_name(url: str, given: str, api_key: str | None) -> str:
    return reachable_model(url, given, api_key)
