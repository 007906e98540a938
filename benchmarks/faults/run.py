"""Fault injection figures (issue 6): every fault of tests/support/scenarios.py, injected with real
processes, real signals and real sockets against fake OpenAI-style servers (fault injection only,
never a real vLLM), and what came of it.

Prints one row per fault, then four lines:
faults_injected=N, faults_survived=N, records_lost=N (must be 0), orphan_processes=N (must be 0).
Then (issue 17) every mistaken or hostile input of tests/support/bad_inputs.py through the real program
(``python -m playbook``, one subprocess each): one row per input, then bad_inputs_tried=N,
bad_inputs_refused=N (exit non-zero with exactly one `error:` line naming the input), tracebacks=N
(must be 0) and files_changed=N (must be 0: files already there, by checksum, and none created).
Run: .venv/bin/python benchmarks/faults/run.py [-k WORD] [--inputs-only | --no-inputs]
(about 2 minutes for the faults, 4-8 for the inputs; loopback only, no vLLM)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.pool_scenarios import SCENARIOS as POOL_SCENARIOS  # noqa: E402
from tests.support.scenarios import SCENARIOS  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", default="", help="run only the faults (and bad inputs) whose name contains this")
    ap.add_argument("--inputs-only", action="store_true", help="only the bad inputs (issue 17)")
    ap.add_argument("--no-inputs", action="store_true", help="only the injected faults")
    ap.add_argument("--jobs", type=int, default=3, help="bad inputs run in parallel")
    args = ap.parse_args()
    ok_faults = True if args.inputs_only else run_faults(args)
    ok_inputs = True if args.no_inputs else run_bad_inputs(args)
    return 0 if ok_faults and ok_inputs else 1


def run_bad_inputs(args) -> bool:
    """The issue-17 table through the real CLI, as subprocesses; prints the four summary lines."""
    from tests.support.bad_inputs import CASES, local_urls, run_subprocess

    cases = [c for c in CASES if args.k.lower() in c.name.lower()]
    print(f"\n{'bad input':38s} {'exit':>4s} {'errors':>6s} {'tb':>3s} {'changed':>7s}  error line", flush=True)
    with tempfile.TemporaryDirectory(prefix="bad-inputs-") as tmp, local_urls() as urls, \
            ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outs = list(pool.map(lambda c: run_subprocess(c, Path(tmp) / c.name, urls, sys.executable), cases))
    for o in outs:
        line = next((x for x in o.stderr.splitlines() if x.startswith("error:")), o.stderr.strip()[-120:])
        print(f"{o.case:38s} {o.returncode:>4d} {o.error_lines:>6d} {int(o.traceback):>3d} {len(o.files_changed):>7d}  "
              f"{line[:110]}{'' if o.ok else '   <-- NOT OK' + (f' (missing {o.missing})' if o.missing else '')}",
              flush=True)
    tracebacks = sum(o.traceback for o in outs)
    changed = sum(len(o.files_changed) for o in outs)
    refused = sum(o.ok for o in outs)
    print(f"bad_inputs_tried={len(outs)}")
    print(f"bad_inputs_refused={refused}")
    print(f"tracebacks={tracebacks}")
    print(f"files_changed={changed}")
    return refused == len(outs) and not tracebacks and not changed


def run_faults(args) -> bool:
    try:
        import jupyterlab  # noqa: F401 - the lab faults need the 'interactive' extra

        from tests.support.lab_scenarios import LAB_SCENARIOS
    except ImportError:
        LAB_SCENARIOS = {}
    every = {**SCENARIOS, **POOL_SCENARIOS, **LAB_SCENARIOS}
    chosen = {name: fn for name, fn in every.items() if args.k.lower() in name.lower()}
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
    return survived == len(outcomes) and not lost and not orphans


if __name__ == "__main__":
    sys.exit(main())
