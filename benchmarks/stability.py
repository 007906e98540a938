"""Benchmark: does the same node give the same verdict? The whole playbook, N times in a row.

Runs ``playbook run`` (the embedded default unless ``--profile``) ``--runs`` times, one after the
other, each into a fresh runs directory, and reads each run's decision.json and 50_load.json.
Prints one line per run (verdict, the concurrency-1 TPOT speedup with its interval, wall time), then:

    verdict_agreement=<runs with the most common verdict>/<runs>
    recommendation_agreement=<runs recommending the most common configuration (none counts as one)>/<runs>
    speedup_spread=<max / min of the concurrency-1 speedup point estimates>

Each run's line also names the configuration it recommends, as its launch command runs it (step 50's
comparison, 50_candidates.json: the method and num_speculative_tokens, ``+table`` when its k table held as
launched), and the levels where that method
won: a verdict that holds while the recommended method or k changes would still flip what a user launches.

Goal on this 2-core machine with nothing else running: 3/3 and at most 1.25. Each line names the CPU and its matrix
instruction sets (decision.json's provenance): the embedded verdict depends on them (see README, What to expect).
A level the load test excluded (burst-delivered streams, drift) has no speedup; it is shown as such and left out
of the spread.
Run: .venv/bin/python benchmarks/stability.py   (about 15 minutes per run on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from playbook.helpers import candidates

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class RunSummary:
    run_dir: str
    verdict: str | None
    speedup_c1: float | None
    ci_c1: tuple[float, float] | None
    c1_status: str
    seconds: float
    exit_code: int
    load: tuple[float, float] | None = None  # 1-minute load average at the run's start and end
    best: str | None = None  # the recommended configuration (method:k), None when none won
    best_levels: tuple[float, ...] = ()  # where it won
    cpu: str = ""  # the CPU model and its matrix instruction sets (provenance): runs on two hosts are not a repeat


    def line(self, i: int) -> str:
        if self.speedup_c1 is None:
            c1 = f"c=1 speedup n/a ({self.c1_status})"
        else:
            ci = f" [{self.ci_c1[0]:.2f}, {self.ci_c1[1]:.2f}]" if self.ci_c1 else ""
            c1 = f"c=1 speedup {self.speedup_c1:.3f}{ci}"
        load = f" load={self.load[0]:.1f}->{self.load[1]:.1f}" if self.load else ""
        best = (f" best={self.best}@{','.join(f'{x:g}' for x in self.best_levels)}" if self.best else " best=none")
        cpu = f" cpu={self.cpu}" if self.cpu else ""
        return (f"run {i}: verdict={self.verdict or 'none'}{best} {c1} wall={self.seconds:.0f}s exit={self.exit_code}{load}"
                f"{cpu} ({self.run_dir})")


def read_run(run_dir: str | Path, seconds: float = 0.0, exit_code: int = 0) -> RunSummary:
    """Verdict (decision.json) and the concurrency-1 speedup (artifacts/50_load.json) of one run."""
    run = Path(run_dir)
    verdict, cpu = None, ""
    try:
        decision = json.loads((run / "decision.json").read_text())
        verdict = decision.get("verdict")
        info = (decision.get("provenance") or {}).get("cpu") or {}
        cpu = f"{info.get('model', '')} [{' '.join(info.get('matrix_isa') or [])}]" if info else ""
    except (OSError, ValueError, AttributeError):
        pass
    speedup, ci, status = None, None, "no load test result"
    try:
        load = json.loads((run / "artifacts" / "50_load.json").read_text())
    except (OSError, ValueError):
        load = None
    if load is not None:
        point = next((sp for sp in load.get("speedup") or [] if float(sp.get("level", 0)) == 1.0), None)
        if point is None:
            status = "concurrency 1 not measured"
        elif point.get("status", "ok") != "ok":
            status = f"{point['status']}: {point.get('reason', '')}".strip(": ")
        elif point.get("speedup") is None:
            status = "no speedup"
        else:
            speedup, status = float(point["speedup"]), "ok"
            if point.get("ci_low") is not None and point.get("ci_high") is not None:
                ci = (float(point["ci_low"]), float(point["ci_high"]))
    best, levels = None, ()
    comparison = candidates.read(run)  # the choice as today's rule makes it, as `playbook report` re-decides
    if comparison is not None and comparison.winner:  # what the launch command runs: method, k, and the table if launched
        table = "+table" if candidates.launched_table(comparison) else ""
        best = f"{comparison.winner_method}:{candidates.launch_k(comparison)}{table}"
        levels = tuple(comparison.win_levels)
    return RunSummary(str(run), verdict, speedup, ci, status, seconds, exit_code, best=best, best_levels=levels, cpu=cpu)


def verdict_agreement(verdicts: list[str | None]) -> tuple[int, int]:
    """(runs sharing the most common verdict, runs); a run without a verdict agrees with nothing."""
    counts = Counter(v for v in verdicts if v)
    return (counts.most_common(1)[0][1] if counts else 0), len(verdicts)


def recommendation_agreement(best: list[str | None]) -> tuple[int, int]:
    """(runs recommending the most common configuration, runs); "none won" is a recommendation too."""
    counts = Counter(b or "none" for b in best)
    return (counts.most_common(1)[0][1] if counts else 0), len(best)


def speedup_spread(speedups: list[float | None]) -> float | None:
    """max / min of the point estimates that exist (None when fewer than two, or a non-positive one)."""
    xs = [x for x in speedups if x is not None]
    if len(xs) < 2 or min(xs) <= 0:
        return None
    return max(xs) / min(xs)


def run_once(profile: str | None, params: list[str], runs_dir: Path) -> RunSummary:
    cmd = [sys.executable, "-m", "playbook", "run", "--runs-dir", str(runs_dir), "--json"]
    cmd += ["--profile", profile] if profile else []
    for p in params:
        cmd += ["-p", p]
    t0, load0 = time.monotonic(), os.getloadavg()[0]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - t0
    try:
        run_dir = json.loads(proc.stdout[proc.stdout.index("{"):])["run_dir"]
    except (ValueError, KeyError):
        sys.stderr.write(proc.stderr[-3000:])
        dirs = sorted(p for p in runs_dir.iterdir() if p.is_dir())
        run_dir = str(dirs[-1]) if dirs else str(runs_dir)
    summary = read_run(run_dir, seconds, proc.returncode)
    summary.load = (load0, os.getloadavg()[0])  # other jobs on the machine move the numbers: say how busy it was
    return summary


def headline(summaries: list[RunSummary]) -> list[str]:
    """The closing lines: verdict_agreement=<same>/<runs>, recommendation_agreement=<same>/<runs> and
    speedup_spread=<max/min>."""
    same, n = verdict_agreement([s.verdict for s in summaries])
    rec, _ = recommendation_agreement([s.best for s in summaries])
    spread = speedup_spread([s.speedup_c1 for s in summaries])
    hosts = sorted({s.cpu for s in summaries if s.cpu})
    differ = [f"note: the runs ran on {len(hosts)} different CPUs ({'; '.join(hosts)}): agreement across hosts is not "
              "a repeat"] if len(hosts) > 1 else []
    return [*differ, f"verdict_agreement={same}/{n}", f"recommendation_agreement={rec}/{n}",
            f"speedup_spread={spread:.3f}" if spread is not None else "speedup_spread=n/a"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="playbook runs in a row (default 3)")
    ap.add_argument("--profile", help="profile (default: the embedded default)")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="override passed to every run")
    ap.add_argument("--keep", metavar="DIR", help="put the runs here (default: a temporary directory, removed)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="playbook-stability-") as tmp:
        base = Path(args.keep or tmp)
        summaries = []
        for i in range(1, args.runs + 1):
            s = run_once(args.profile, args.param, base / f"runs-{i}")  # a fresh runs dir: nothing reused
            print(s.line(i), flush=True)
            summaries.append(s)
    print("\n".join(headline(summaries)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
