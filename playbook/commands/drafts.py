"""`playbook drafts`: rank draft candidates for a target (vLLM's vocabulary rule, family and generation,
size ratio, methods). A draft of another vocab_size is never "same tokenizer": it is listed as a
heterogeneous-vocab candidate with the flags and conditions vLLM needs (helpers/compat.py)."""

from __future__ import annotations

import argparse

from playbook.commands._common import print_json
from playbook.helpers import steps
from playbook.helpers.errors import ParameterError
from playbook.helpers.params import DraftsParams, validate_params

NAME = "drafts"
HELP = "rank draft candidates for a target: vocabulary (as vLLM checks it), family, size ratio, methods"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", required=True, help="local model dir, catalog name or 'embedded'")
    p.add_argument("--candidates", default="", help="comma-separated drafts (dirs, catalog names, 'embedded'); "
                                                     "default: smaller catalog models with the target's tokenizer")
    p.add_argument("--ratio-low", type=float, default=8.0, help="sweet spot lower bound (target/draft size)")
    p.add_argument("--ratio-high", type=float, default=12.0, help="sweet spot upper bound")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")


def run(args: argparse.Namespace) -> int:
    if not 1 < args.ratio_low <= args.ratio_high:
        raise ParameterError(f"sweet spot --ratio-low {args.ratio_low:g} .. --ratio-high {args.ratio_high:g} is not "
                             "a range above 1", "use e.g. --ratio-low 8 --ratio-high 12")
    if args.candidates.strip() and not [c for c in args.candidates.split(",") if c.strip()]:
        raise ParameterError(f"--candidates '{args.candidates[:80]}' names no draft",
                             "give comma-separated drafts (dirs, catalog names, 'embedded'), or leave --candidates "
                             "out for the catalog's smaller models with the target's tokenizer")
    p = validate_params(DraftsParams, dict(
        target_model=args.target, draft_candidates=args.candidates, ratio_low=args.ratio_low, ratio_high=args.ratio_high,
        draft_model="embedded" if args.target == "embedded" else "",  # the embedded pair's draft, else catalog siblings
    ))
    _, _, result = steps.rank_drafts(p)  # the same ranking as step 10, without a probe or a run directory
    if args.json:
        print_json(result)
        return 0
    print(result.finding)
    for c in result.candidates:
        hetero = "  [heterogeneous vocab]" if c.heterogeneous_vocab else ""
        print(f"  {c.rank}. {c.name:28s} 1:{c.ratio:<8.1f} score {c.score:5.1f}  {', '.join(c.methods) or '-'}{hetero}")
        for r in c.reasons:
            print(f"       - {r}")
        if c.speculative_config:
            print(f"       - speculative config needs: {c.speculative_config}")
    for s in result.lossy_settings:
        print(f"  lossy, never recommended: {s}")
    return 0
