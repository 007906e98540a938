"""Fault injection figures (issue 6): every fault of tests/support/scenarios.py, injected with real
processes, real signals and real sockets against fake OpenAI-style servers (fault injection only,
never a real vLLM), and what came of it.

Prints one row per fault, then four lines:
faults_injected=N, faults_survived=N, records_lost=N (must be 0), orphan_processes=N (must be 0).
Run: .venv/bin/python benchmarks/faults/run.py [-k WORD]   (about 2 minutes; loopback only)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.pool_scenarios import SCENARIOS as POOL_SCENARIOS  # noqa: E402
from tests.support.scenarios import SCENARIOS  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", default="", help="run only the faults whose name contains this")
    args = ap.parse_args()
    chosen = {name: fn for name, fn in {**SCENARIOS, **POOL_SCENARIOS}.items() if args.k.lower() in name.lower()}
    print(f"{'fault':36s} {'survived':>8s} {'lost':>5s} {'orphans':>7s} {'secs':>6s}  detail", flush=True)
    outcomes = []
    for name, fn in chosen.items():
        out = fn()
        outcomes.append(out)
        print(f"{name:36s} {'yes' if out.survived else 'NO':>8s} {out.records_lost:>5d} {out.orphans:>7d} "
              f"{out.seconds:>6.1f}  {out.detail}", flush=True)
    survived = sum(o.survived for o in outcomes)
    lost = sum(o.records_lost for o in outcomes)
    orphans = sum(o.orphans for o in outcomes)
    print(f"faults_injected={len(outcomes)}")
    print(f"faults_survived={survived}")
    print(f"records_lost={lost}")
    print(f"orphan_processes={orphans}")
    return 0 if survived == len(outcomes) and not lost and not orphans else 1


if __name__ == "__main__":
    sys.exit(main())
