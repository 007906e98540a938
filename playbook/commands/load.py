"""`playbook load`: baseline vs speculative under load, against two running servers."""

from __future__ import annotations

import argparse
import sys

from playbook.commands import _measure
from playbook.commands._common import print_json

NAME = "load"
HELP = "load-test a baseline and a speculative server side by side: latency percentiles, speedup, crossover"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline-url", required=True, help="URL of the server without speculation")
    parser.add_argument("--spec-url", required=True, help="URL of the server with speculation")
    parser.add_argument("--baseline-model", default="", help="the baseline's served model name, when not --model's "
                        "(one router serving both, by name)")
    levels = parser.add_mutually_exclusive_group()
    levels.add_argument("--rates", default="", help="request rates in req/s, e.g. 1,2,4")
    levels.add_argument("--concurrency", default="", help="concurrency levels, e.g. 1,4,16 (default 1,4)")
    parser.add_argument("--load-shape", choices=["poisson", "constant", "gamma"], default="poisson",
                        help="arrival process for --rates")
    parser.add_argument("--burstiness", type=float, default=1.0, help="gamma shape (< 1 burstier)")
    parser.add_argument("--workload", default="structured", help="workload class, prompts file, or mix")
    parser.add_argument("--temperature", type=float, default=-1.0,
                        help="temperature of a single-class workload (default: the production temperature, 0.2)")
    parser.add_argument("--requests", type=int, default=8,
                        help="measured requests per server in each round of a level (a level adds round pairs "
                        "until its interval is narrow enough or its time budget is spent)")
    parser.add_argument("--target-ci", type=float, default=0.10,
                        help="stop a level once its speedup interval's half-width is at most this fraction")
    parser.add_argument("--level-budget", type=float, default=45, help="seconds a level may spend adding rounds")
    parser.add_argument("--min-pairs", type=int, default=3, help="round pairs a level measures at least")
    parser.add_argument("--decision-budget", type=float, default=135,
                        help="seconds in all a level may spend when its speedup interval still holds 1.0 or the "
                        "gain worth having (1.1) as it would stop: it adds rounds until it does not (0 = off)")
    parser.add_argument("--warmup", type=int, default=2, help="warmup requests per level (excluded)")
    parser.add_argument("--duration", type=float, default=0, help="cap on each level's duration in s (0 = none)")
    parser.add_argument("--max-tokens", type=int, default=64, help="output tokens per request")
    parser.add_argument("--timeout", type=float, default=120, help="per-request timeout in seconds")
    parser.add_argument("--find-saturation", action="store_true", help="keep doubling concurrency while throughput grows")
    parser.add_argument("--no-lossless", action="store_true", help="skip the losslessness guard")
    _measure.add_common(parser)


def run(args: argparse.Namespace) -> int:
    from playbook.helpers.loadtest import run_load_test
    from playbook.helpers.params import LoadParams

    concurrencies = args.concurrency if (args.concurrency or not args.rates) else ""
    p = _measure.params(LoadParams, args, baseline_url=args.baseline_url, spec_url=args.spec_url,
                        baseline_served_model_name=args.baseline_model, concurrencies=concurrencies or ("1,4" if not args.rates else ""), rates=args.rates,
                        load_shape=args.load_shape, burstiness=args.burstiness, workload=args.workload,
                        temperature=args.temperature, requests_per_level=args.requests,
                        warmup_requests=args.warmup, duration_s=args.duration, max_tokens=args.max_tokens,
                        request_timeout_s=args.timeout, find_saturation=args.find_saturation,
                        lossless_check=not args.no_lossless, target_ci_halfwidth=args.target_ci,
                        level_time_budget_s=args.level_budget, min_round_pairs=args.min_pairs,
                        level_decision_budget_s=args.decision_budget)
    prior = _measure.prior_results(args, NAME)  # an earlier load test there is refused before a server is asked
    by_name = bool(p.baseline_served_model_name) and p.baseline_served_model_name != p.served_model_name
    same = None if by_name else _measure.warn_same_server(p.baseline_url, p.spec_url)  # one router, two names
    for url, role in ((p.baseline_url, "baseline"), (p.spec_url, "spec")):  # a closed port or a 401 fails here
        given, flag = p.model_name_for(role)
        _measure.reachable_model(url, given, p.api_key(), flag)
    run_ = _measure.run_dir(args, NAME, prior)
    result = run_load_test(p, run_, progress=not args.no_progress)
    for warning in result.warnings:  # a level excluded for its errors, a missing level: said, not only in the JSON
        print(f"warning: {warning}", file=sys.stderr)
    if same:
        result.warnings.append(same)
    run_.write_json("50_load.json", result)
    if args.json:
        print_json(result)
    else:
        print(result.finding)
    return 0 if result.status != "failed" else 1
