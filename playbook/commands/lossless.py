"""`playbook lossless`: does speculation change what the model says? (baseline vs spec server)"""

from __future__ import annotations

import argparse
import sys

from playbook.commands import _measure
from playbook.commands._common import print_json

NAME = "lossless"
HELP = "compare a speculative server's outputs with a baseline's: identical at T=0, same likelihood at T>0"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline-url", required=True, help="URL of the server without speculation")
    parser.add_argument("--spec-url", required=True, help="URL of the server with speculation")
    parser.add_argument("--temperatures", default="0,0.8", help="comma-separated temperatures in [0, 2]")
    parser.add_argument("--workload", default="structured", help="workload class, prompts file, or mix")
    parser.add_argument("--requests", type=int, default=12, help="prompts per temperature")
    parser.add_argument("--max-tokens", type=int, default=32, help="output tokens per prompt")
    parser.add_argument("--alpha", type=float, default=0.01, help="false-alarm rate of the T>0 test")
    _measure.add_common(parser)


def run(args: argparse.Namespace) -> int:
    from playbook.helpers import lossless
    from playbook.helpers.loadgen import Target
    from playbook.helpers.params import LoadParams
    from playbook.helpers.schemas.lossless import LosslessResult
    from playbook.helpers.workloads import build_requests

    p = _measure.params(LoadParams, args, baseline_url=args.baseline_url, spec_url=args.spec_url,
                        lossless_temperatures=args.temperatures, lossless_requests=args.requests,
                        lossless_alpha=args.alpha, workload=args.workload, max_tokens=args.max_tokens)
    prior = _measure.prior_results(args, NAME) if args.run_dir else None  # refused before a server is asked
    same = _measure.warn_same_server(p.baseline_url, p.spec_url)
    key = p.api_key()
    base = Target(p.baseline_url, _measure.model_name(p.baseline_url, p.served_model_name, key), key)
    spec = Target(p.spec_url, _measure.model_name(p.spec_url, p.served_model_name, key), key)
    problems, notes = lossless.role_problems(base, spec)  # which server speculates, before any output is compared
    if problems:
        result = LosslessResult(status="failed", alpha=p.lossless_alpha, warnings=problems + notes,
                                finding="not checked: " + "; ".join(problems))
    else:
        items = build_requests(p.workload, p.lossless_requests, max_tokens=p.max_tokens, seed=p.seed)
        result = lossless.check(base, spec, items, p.lossless_temperatures, p.max_tokens, p.lossless_alpha, seed=p.seed)
        result.warnings.extend(notes)
    if same:
        result.warnings.append(same)
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    if prior is not None:
        _measure.run_dir(args, NAME, prior).write_json("lossless.json", result)
    if args.json:
        print_json(result)
    else:
        print(result.finding)
    return 1 if result.status == "failed" else 0
