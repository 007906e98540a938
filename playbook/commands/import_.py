"""`playbook import`: bring `vllm bench serve`, GuideLLM or AIPerf results into a run directory as the
load step's evidence (with their provenance), for `playbook report RUN_DIR` to decide on."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from playbook.commands._common import print_json

NAME = "import"
HELP = "import vllm bench serve / guidellm / aiperf results (baseline and speculative) as a run's load evidence"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("tool", choices=["vllm-bench", "guidellm", "aiperf"],
                        help="vllm-bench: files of `vllm bench serve --save-result --save-detailed` (or of the older "
                             "benchmarks/benchmark_serving.py --save-result); guidellm: its benchmarks.json or .yaml, "
                             "or the folder holding it; aiperf: an artifact directory (or its profile_export.jsonl)")
    parser.add_argument("files", nargs="+", metavar="BASELINE SPEC",
                        help="pairs: the run without speculation, then the run with it (repeat the pair for "
                             "more load levels: B1 S1 B2 S2 ...)")
    parser.add_argument("--run-dir", default=None, help="where to write (default runs/import-<time>)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="sampling temperature of the runs, when the files do not record it (a value different "
                             "from the one they record is refused); without it such a temperature is filed as "
                             "unknown, and the report cannot judge acceptance or speedups against production's")
    parser.add_argument("--same-model", action="store_true",
                        help="the baseline and speculative files name different models that are one target model "
                             "(a router serving both configurations by model name): compare them anyway")
    parser.add_argument("--method", default=None, help="speculative method the spec server ran (draft_model, eagle, ngram, ...)")
    parser.add_argument("--draft-model", default=None, help="its draft model (for the launch command)")
    parser.add_argument("--num-speculative-tokens", type=int, default=None, help="its k (for the launch command)")
    parser.add_argument("--force", action="store_true",
                        help="import into a run directory that already holds results: they are moved into its "
                             "artifacts/replaced-<UTC time>/ first (nothing is deleted)")
    parser.add_argument("--json", action="store_true", help="print the load result as JSON")


def check_arguments(args: argparse.Namespace, params: dict) -> None:
    """What the import records in run.json must pass the report step's model (``playbook report`` reads it):
    refused here, before anything is read or written."""
    import math

    from playbook.helpers.errors import ParameterError
    from playbook.helpers.params import ReportParams, validate_params

    t = args.temperature
    if t is not None and not (math.isfinite(t) and 0 <= t <= 2):
        raise ParameterError(f"--temperature {t:g} is not a sampling temperature in [0, 2]",
                             "give the temperature the runs sampled at, e.g. --temperature 0")
    k = args.num_speculative_tokens
    if k is not None and not 1 <= k <= 16:
        raise ParameterError(f"--num-speculative-tokens {k} is outside 1..16",
                             "give the k the speculative server ran (its --speculative-config num_speculative_tokens)")
    validate_params(ReportParams, params)


def run(args: argparse.Namespace) -> int:
    from playbook.helpers.errors import ImportFileError
    from playbook.helpers.importers import import_results

    if len(args.files) % 2:
        raise ImportFileError(f"{len(args.files)} files given: they go in pairs, the run without speculation then "
                              "the run with it, one pair per load level",
                              f"give BASELINE SPEC [BASELINE2 SPEC2 ...]: playbook import {args.tool} B1 S1 B4 S4")
    run_dir = args.run_dir or f"runs/import-{time.strftime('%Y%m%d-%H%M%S')}"
    params = {k: v for k, v in (("method", args.method), ("draft_model", args.draft_model),
                                ("num_speculative_tokens", args.num_speculative_tokens)) if v is not None}
    check_arguments(args, params)
    res = import_results(args.tool, args.files[0::2], args.files[1::2], run_dir,
                         temperature=args.temperature, params=params, force=args.force,
                         same_model=args.same_model, given=args.files)
    if args.json:
        print_json(res)
    else:
        replaced = (res.source or {}).get("replaced")
        if replaced:
            print(f"--force: moved the earlier results of {run_dir} ({len(replaced['paths'])} entries) into "
                  f"{Path(run_dir) / replaced['moved_to']}")
        print(f"imported into {run_dir}: {res.finding}")
        for w in res.warnings:
            print(f"warning: {w}")
        print(f"next: playbook report {run_dir}")
    return 0
