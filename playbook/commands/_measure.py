"""What the measurement commands (sweep, load, lossless) share: run directory, API key, params."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from playbook.helpers.artifacts import PriorResults, RunDir
from playbook.helpers.errors import ParameterError
from playbook.helpers.params import validate_params


class Owned(NamedTuple):
    """What a command writes into its run directory: globs relative to it, the steps whose phase-log entries
    its new results make stale, and how to name them."""

    patterns: tuple[str, ...]
    phase_steps: tuple[str, ...]
    what: str


OWNED = {
    "sweep": Owned(("artifacts/40_*",), ("40_sweep",), "a temperature sweep's results"),
    "load": Owned(("artifacts/50_*", "candidates"), ("50_load",), "a load test's results"),
    "lossless": Owned(("artifacts/lossless*",), (), "a losslessness check's result"),
}


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="", help="served model name ('' = the first one /v1/models lists)")
    parser.add_argument("--api-key-env", default="", metavar="VAR",
                        help="environment variable holding the API key (the key itself is never an argument)")
    parser.add_argument("--run-dir", default="", help="where raw records go (default: runs/cli-<command>-<time>)")
    parser.add_argument("--force", action="store_true",
                        help="when --run-dir already holds this command's results, move them into its "
                             "artifacts/replaced-<UTC time>/ and measure anew (without it: refused)")
    parser.add_argument("--seed", type=int, default=0, help="seed for prompt sampling and arrivals")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def prior_results(args: argparse.Namespace, command: str) -> PriorResults:
    """The results of an earlier ``command`` in the run directory (--run-dir, or the default new one): refused
    here, before any server is asked, unless --force (then :func:`run_dir` moves them aside)."""
    path = args.run_dir or f"runs/cli-{command}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}"
    owned = OWNED[command]
    prior = PriorResults.find(path, owned.patterns, owned.phase_steps)
    prior.refuse_unless(args.force, command, owned.what)
    return prior


def run_dir(args: argparse.Namespace, command: str, prior: PriorResults) -> RunDir:
    """The run directory of ``prior`` (:func:`prior_results`), the earlier results moved aside first."""
    moved = prior.describe()  # before the move: a directory is named with its number of files
    backup = prior.back_up(command)
    if backup is not None:
        print(f"--force: moved the earlier results ({moved}) into {backup}", file=sys.stderr)
    run = RunDir(prior.run_dir)
    print(f"raw records: {run.artifacts}", file=sys.stderr)
    return run


def same_server_warning(baseline_url: str, spec_url: str) -> str | None:
    """A warning when the baseline and speculative URLs name one server (printed before measuring, and kept
    in the result): the comparison then measures a server against itself."""
    from playbook.helpers.preflight import server_key  # two spellings of one server compare equal

    if server_key(baseline_url) != server_key(spec_url):
        return None
    return (f"--baseline-url {baseline_url} and --spec-url {spec_url} name the same server: this compares the "
            "server with itself (a speedup near 1.00x, outputs trivially identical), not speculation with its "
            "absence; give the server without speculation as --baseline-url and the one with it as --spec-url")


def warn_same_server(baseline_url: str, spec_url: str) -> str | None:
    warning = same_server_warning(baseline_url, spec_url)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    return warning


def params(model, args: argparse.Namespace, **values):
    """Validate through the step's parameter model, so the CLI and the notebooks reject the same input;
    an ``--api-key-env`` must name a variable that is set."""
    p = validate_params(model, {"mode": "external", "served_model_name": args.model,
                                "api_key_env": args.api_key_env, "seed": args.seed, **values})
    if p.api_key_env and not p.api_key():
        raise ParameterError(f"--api-key-env names {p.api_key_env}, but that environment variable is not set or is empty",
                             f"export {p.api_key_env}=<key> first, or leave --api-key-env out")
    from playbook.helpers.workloads import check_specs

    check_specs(p)  # an unknown workload or a bad prompts file fails before any server is asked, as in `playbook run`
    if args.run_dir and Path(args.run_dir).expanduser().exists() and not Path(args.run_dir).expanduser().is_dir():
        raise ParameterError(f"--run-dir {args.run_dir} is a file, not a directory",
                             "give a directory for the raw records (created if missing), or leave --run-dir out")
    return p


def reachable_model(url: str, given: str, api_key: str | None, flag: str = "--model") -> str:
    """Check that ``url`` answers /v1/models (naming the URL and the cause when not: a closed port, a 401)
    before anything is written; returns the model to ask for."""
    from playbook.helpers.server import served_model

    return served_model(url, given, api_key, flag=flag)


def model_name(url: str, given: str, api_key: str | None) -> str:
    return reachable_model(url, given, api_key)
