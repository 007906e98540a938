"""`playbook drafts`: rank draft candidates for a target (tokenizer, family, size ratio, methods)."""

from __future__ import annotations

import argparse

from playbook.commands._common import print_json
from playbook.helpers import drafts, models
from playbook.helpers.errors import ParameterError

NAME = "drafts"
HELP = "rank draft candidates for a target: same tokenizer, family, size ratio, methods"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", required=True, help="local model dir, catalog name or 'embedded'")
    p.add_argument("--candidates", default="", help="comma-separated drafts (dirs, catalog names, 'embedded'); "
                                                     "default: smaller catalog models with the target's tokenizer")
    p.add_argument("--ratio-low", type=float, default=8.0, help="sweet spot lower bound (target/draft size)")
    p.add_argument("--ratio-high", type=float, default=12.0, help="sweet spot upper bound")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")


def run(args: argparse.Namespace) -> int:
    if not 1 < args.ratio_low <= args.ratio_high:
        raise ParameterError(f"sweet spot {args.ratio_low}..{args.ratio_high} is not a range above 1",
                             "use e.g. --ratio-low 8 --ratio-high 12")
    target = models.resolve(args.target, "target")
    names = [c.strip() for c in args.candidates.split(",") if c.strip()]
    if names:
        cands = [models.resolve(n, "draft") for n in names]
    elif args.target == "embedded":
        cands = [models.resolve("embedded", "draft")]
    else:
        cands = drafts.catalog_siblings(target)
    result = drafts.rank(target, cands, args.ratio_low, args.ratio_high)
    if args.json:
        print_json(result)
        return 0
    print(result.finding)
    for c in result.candidates:
        print(f"  {c.rank}. {c.name:28s} 1:{c.ratio:<8.1f} score {c.score:5.1f}  {', '.join(c.methods) or '-'}")
        for r in c.reasons:
            print(f"       - {r}")
    return 0
