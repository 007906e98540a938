"""`playbook sweep`: acceptance by temperature against a running speculative server."""

from __future__ import annotations

import argparse

from playbook.commands import _measure
from playbook.commands._common import print_json

NAME = "sweep"
HELP = "measure speculative-decoding acceptance at several temperatures against a running server"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="base URL of the speculative vLLM server, e.g. http://host:8000")
    parser.add_argument("--temperatures", default="0,0.4,0.8,1.0", help="comma-separated temperatures in [0, 2]")
    parser.add_argument("--workload", default="structured",
                        help="workload class, prompts file, or mix; several separated by ';'")
    parser.add_argument("--requests", type=int, default=8, help="requests per (workload, temperature)")
    parser.add_argument("--max-tokens", type=int, default=64, help="output tokens per request")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--production-temperature", type=float, default=None,
                        help="the temperature production uses (default: the one temperature swept, else 0.2)")
    parser.add_argument("--timeout", type=float, default=120, help="per-request timeout in seconds")
    _measure.add_common(parser)


def run(args: argparse.Namespace) -> int:
    from playbook.helpers.loadgen import Target
    from playbook.helpers.params import SweepParams
    from playbook.helpers.sweep import run_sweep

    p = _measure.params(SweepParams, args, spec_url=args.url, temperatures=args.temperatures,
                        workloads=[w for w in args.workload.split(";") if w.strip()],
                        requests_per_point=args.requests, max_tokens=args.max_tokens,
                        sweep_concurrency=args.concurrency, request_timeout_s=args.timeout,
                        **({} if args.production_temperature is None
                           else {"production_temperature": args.production_temperature}))
    if args.production_temperature is None and len(p.temperatures) == 1:  # not 0.2 read off a sweep at T=0 only
        p = p.model_copy(update={"production_temperature": p.temperatures[0]})
    prior = _measure.prior_results(args, NAME)  # an earlier sweep there is refused before the server is asked
    api_key = p.api_key()
    target = Target(p.spec_url, _measure.model_name(p.spec_url, p.served_model_name, api_key), api_key)
    run_ = _measure.run_dir(args, NAME, prior)
    result = run_sweep(target, p.workloads, p.temperatures, p.requests_per_point, p.max_tokens, run_,
                       p.production_temperature, p.sweep_concurrency, p.request_timeout_s, p.seed,
                       not args.no_progress)
    run_.write_json("40_sweep.json", result)
    if args.json:
        print_json(result.model_dump(mode="json", exclude={"points": {"__all__": {"per_request"}},
                                                           "temperatures": {"__all__": {"per_request"}}}))
    else:
        print(result.finding)
    return 1 if result.status == "failed" else 0  # nothing measured (no speculation, every request failed): not a success
