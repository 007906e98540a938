"""The eight faults of issue 6, each injected with real processes, real signals and real sockets.

Shared by ``tests/faults/test_faults.py`` (asserts every outcome) and ``benchmarks/faults/run.py``
(prints the figures). Each scenario makes its own workspace under a temporary directory, drives the
playbook as a user would (``python -m playbook run ...`` as a subprocess, external mode against
fake OpenAI-style server *processes* from ``tests/support/fake_openai.py``; fakes are for fault
injection only), injects its fault, and returns an :class:`Outcome`:

- ``survived``: every check of the expected behaviour held (``detail`` names the ones that did not);
- ``records_lost``: complete raw records on disk before the fault that are gone afterwards;
- ``orphans``: processes still alive after the scenario whose command line mentions its workspace or
  its ports (a notebook kernel, a server, a watchdog).

Ports come from 23000-23999.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playbook.helpers.reaper import descendants
from tests.support import FAKE_OPENAI

PYTHON = sys.executable
REQUESTS = "50_load_requests.jsonl"
PHASES = "phases.jsonl"  # the phase log: one entry per load level (both configurations), done or failed


@dataclass
class Outcome:
    name: str
    survived: bool = False
    records_lost: int = 0
    orphans: int = 0
    detail: str = ""
    seconds: float = 0.0
    checks: dict[str, bool] = field(default_factory=dict)

    def check(self, what: str, ok: bool) -> bool:
        self.checks[what] = bool(ok)
        return bool(ok)

    def finish(self) -> Outcome:
        failed = [k for k, v in self.checks.items() if not v]
        self.survived = bool(self.checks) and not failed and self.records_lost == 0 and self.orphans == 0
        if failed:
            self.detail = "FAILED: " + "; ".join(failed) + (f" | {self.detail}" if self.detail else "")
        return self


# -- processes ---------------------------------------------------------------------------------
def is_running(pid: int) -> bool:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return raw[raw.rfind(")") + 2:].split()[0] not in ("Z", "X")


def procs_mentioning(*texts: str) -> list[int]:
    """Live processes (not this one) whose command line contains any of ``texts``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(t in cmd for t in texts) and is_running(int(entry.name)):
            found.append(int(entry.name))
    return found


def wait_gone(pids: list[int], limit_s: float) -> list[int]:
    deadline = time.monotonic() + limit_s
    while (alive := [p for p in pids if is_running(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def wait_for(cond: Callable[[], bool], limit_s: float, every_s: float = 0.01) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(every_s)
    return cond()


def free_port() -> int:
    """A free TCP port on 127.0.0.1 in 23000-23999."""
    ports = list(range(23000, 24000))
    random.shuffle(ports)
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 23000-23999")


class FakeServer:
    """tests/support/fake_openai.py as a process of its own (its own session: we kill its whole group)."""

    def __init__(self, port: int | None = None, env: dict[str, str] | None = None):
        self.port = port or free_port()
        self.env = env or {}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeServer:
        for _ in range(50):  # after a SIGKILL the port may need a moment
            self.proc = subprocess.Popen([PYTHON, str(FAKE_OPENAI), str(self.port)], stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, env={**os.environ, **self.env},
                                         start_new_session=True)
            if self.proc.stdout.readline().strip() == b"ready":
                return self
            self.proc.wait()
            self.proc.stdout.close()
            time.sleep(0.1)
        raise RuntimeError(f"fake server on port {self.port} did not start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc:
            self.proc.wait()
            self.proc.stdout.close()


class Workspace:
    """A scenario's temporary directory, its fake servers, and the `playbook` subprocesses."""

    def __init__(self, name: str):
        self.dir = Path(tempfile.mkdtemp(prefix=f"faults-{name}-"))
        self.runs = self.dir / "runs"
        self.servers: list[FakeServer] = []
        self.procs: list[subprocess.Popen] = []
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(self._mk("tmp")),
                    "JUPYTER_RUNTIME_DIR": str(self._mk("jupyter-runtime"))}  # kernels name the workspace

    def _mk(self, sub: str) -> Path:
        (self.dir / sub).mkdir(exist_ok=True)
        return self.dir / sub

    def server(self, **env: str) -> FakeServer:
        srv = FakeServer(env=env).start()
        self.servers.append(srv)
        return srv

    def prompts(self, words: list[str], name: str = "prompts.jsonl") -> Path:
        path = self.dir / name
        path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"{w} prompt number {i}"}) + "\n"
                                for i, w in enumerate(words)))
        return path

    def argv(self, *args: str) -> list[str]:
        return [PYTHON, "-m", "playbook", *args]

    def playbook(self, *args: str, timeout: float = 180, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), cwd=self.dir, env={**self.env, **kw.pop("env", {})},
                              capture_output=True, text=True, timeout=timeout, **kw)

    def start_playbook(self, *args: str) -> subprocess.Popen:
        proc = subprocess.Popen(self.argv(*args), cwd=self.dir, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc

    def run_dirs(self) -> list[Path]:
        return sorted(p for p in self.runs.iterdir() if p.is_dir()) if self.runs.exists() else []

    def orphans(self) -> list[int]:
        """After our own servers are stopped: anything still mentioning the workspace or its ports."""
        marks = [str(self.dir)] + [f"{FAKE_OPENAI.name} {s.port}" for s in self.servers]
        return wait_gone(procs_mentioning(*marks), 10)

    def close(self) -> int:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        for srv in self.servers:
            srv.kill()
        return len(self.orphans())


@contextmanager
def scenario(name: str):
    out = Outcome(name)
    ws = Workspace(name)
    t0 = time.monotonic()
    try:
        yield out, ws
    except Exception as exc:  # noqa: BLE001 - a scenario that breaks is a fault not survived
        out.check(f"ran to the end ({type(exc).__name__}: {exc})", False)
    finally:
        out.orphans = ws.close()
        out.seconds = round(time.monotonic() - t0, 1)
        out.finish()
        if out.survived:
            import shutil

            shutil.rmtree(ws.dir, ignore_errors=True)
        else:
            out.detail += f" (workspace kept: {ws.dir})"


# -- run-directory readers ---------------------------------------------------------------------
def jsonl(path: Path) -> list[dict]:
    """Complete records only (a truncated line is skipped)."""
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def measured(records: list[dict]) -> list[dict]:
    return [r for r in records if not r.get("warmup")]


def read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def step_status(run: Path, step: str) -> dict:
    return next((s for s in read(run / "run.json").get("steps", []) if s["name"] == step), {})


def load_args(ws: Workspace, spec: FakeServer, base: FakeServer, prompts: Path, **extra) -> list[str]:
    params = dict(mode="external", spec_url=spec.url, baseline_url=base.url, concurrencies="1,2",
                  requests_per_level=8, warmup_requests=1, find_saturation="false", lossless_check="false",
                  workload=str(prompts), max_tokens=9, request_timeout_s=20, server_start_timeout_s=20,
                  level_decision_budget_s=0)
    params.update(extra)
    out = ["run", "--runs-dir", str(ws.runs), "--only", "50_load"]
    for k, v in params.items():
        out += ["-p", f"{k}={v}"]
    return out


def level_of(record: dict) -> str:
    """'spec@c2' from a phase label 'spec@c2/<workload>'."""
    return record["phase"].split("/")[0]


def final_levels_hold_n(run: Path, n: int) -> bool:
    """Every round of every level of the final result has exactly n measured records."""
    res = read(run / "artifacts" / "50_load.json")
    recs = measured(jsonl(run / "artifacts" / REQUESTS))
    per_attempt = Counter((r["phase"], r["id"].split("/")[-1].split("-")[0]) for r in recs)
    levels = res.get("levels", [])
    return bool(levels) and all(lv["attempts"] and all(per_attempt[(lv["phase"], a)] == n for a in lv["attempts"])
                                for lv in levels)


def lost(before: list[dict], after: list[dict]) -> int:
    ids = {r["id"] for r in after}
    return sum(r["id"] not in ids for r in before)


def start_slow_load_run(ws, n: int):
    """A `playbook run` of 50_load (slow streams, n requests per level) against two fresh servers."""
    spec, base = ws.server(), ws.server()
    prompts = ws.prompts(["slow"] * 8)
    runner = ws.start_playbook(*load_args(ws, spec, base, prompts, requests_per_level=n))
    assert wait_for(lambda: len(ws.run_dirs()) == 1, 60), "no run directory appeared"
    run = ws.run_dirs()[0]
    return spec, runner, run, run / "artifacts" / REQUESTS


# == 1. the server is SIGKILLed in the middle of a load test =====================================
def server_killed_mid_load() -> Outcome:
    with scenario("server-killed-mid-load") as (out, ws):
        n = 8
        spec, runner, run, recs = start_slow_load_run(ws, n)
        # spec@c1 done, and spec@c2 half-way: kill the speculative server now
        half = wait_for(lambda: sum(level_of(r) == "spec@c2" for r in measured(jsonl(recs))) >= 2, 90)
        spec.kill()
        _, err = runner.communicate(timeout=120)
        out.check("killed while spec@c2 was half-measured", half)
        out.check("first run exits 1 (a step measured only part)", runner.returncode == 1)
        before = jsonl(recs)
        st = step_status(run, "50_load")
        out.check("run.json marks 50_load failed with the reason",
                  st.get("status") == "failed" and "spec@2" in (st.get("error") or "")
                  and "refused" in (st.get("error") or ""))
        failed = [st for e in jsonl(run / "artifacts" / PHASES) if e["step"] == "50_load" and e["status"] == "failed"
                  for st in e["result"]["stats"].values() if st["status"] == "failed"]
        out.check("the level is marked failed with its reason",
                  [(lv["config"], lv["level"]) for lv in failed] == [("spec", 2.0)] and "refused" in failed[0]["reason"])
        kept = [r for r in measured(before) if level_of(r) == "spec@c2" and r["status"] == "ok"]
        out.check("records completed before the kill are on disk", len(kept) >= 2)
        decision = read(run / "decision.json")
        out.check("decision.json is INCONCLUSIVE and names the missing level",
                  decision.get("verdict") == "INCONCLUSIVE" and any("spec@2" in m for m in decision.get("measure_next", [])))
        out.check("report.html names the missing level", "spec@2" in (run / "report.html").read_text())
        err_rule = next((r for r in decision.get("rules", []) if r["name"] == "error_rate"), {})
        out.check("the dead server's refused requests are a missing level, not an error burst",
                  err_rule.get("verdict") == "go")
        out.check("stderr says how to resume", f"--resume {run}" in err)

        spec.start()  # the same port again, as a restarted vLLM would
        again = ws.playbook("run", "--resume", str(run))
        out.check("resume exits 0", again.returncode == 0)
        after = jsonl(recs)
        out.records_lost = lost(before, after)
        new = [r for r in measured(after) if r["id"] not in {x["id"] for x in before}]
        out.check("resume measured only the missing level (both halves of its round pairs)",
                  {level_of(r) for r in new} == {"spec@c2", "baseline@c2"})
        out.check("no record duplicated", len({r["id"] for r in after}) == len(after))
        out.check(f"every level holds exactly {n} records of its final attempt", final_levels_hold_n(run, n))
        res = read(run / "artifacts" / "50_load.json")
        out.check("the result is complete, with level 1 (both configurations) resumed",
                  res.get("status") == "ok" and sum(lv["resumed"] for lv in res["levels"]) == 2)
        out.check("run.json: every step done", all(s["status"] == "done" for s in read(run / "run.json")["steps"]))
        out.detail = (f"spec@2 failed ({failed[0]['reason'][:40]}...), {len(kept)} of its records kept; "
                      f"resume measured only level c2 ({len(new)} records)")
    return out


# == 2. the playbook process is SIGKILLed mid-run ================================================
def playbook_killed_mid_run() -> Outcome:
    with scenario("playbook-killed") as (out, ws):
        n = 8
        spec, runner, run, recs = start_slow_load_run(ws, n)
        mid = wait_for(lambda: sum(level_of(r) == "spec@c1" for r in measured(jsonl(recs))) >= 3, 90)
        kernel = descendants(runner.pid)
        os.kill(runner.pid, signal.SIGKILL)  # kill -9 of `playbook run` itself, not of its group
        runner.communicate()
        out.check("killed mid-level", mid)
        out.check("the runner had a kernel child", bool(kernel))
        t_kill = time.monotonic()
        left = wait_gone(kernel, 10)
        kernel_s = time.monotonic() - t_kill
        out.check("the kernel dies with the runner (no orphan writing records)", not left)
        size = recs.stat().st_size
        time.sleep(2)
        out.check("nothing writes records after the kill", recs.stat().st_size == size)
        out.check("run.json shows 50_load still 'running'", step_status(run, "50_load").get("status") == "running")
        before = jsonl(recs)
        with open(recs, "a") as fh:  # what a kill -9 in the middle of a write leaves
            fh.write('{"id": "spec@c1/deadbeef-9", "phase": "spec@c1", "ttft_ms": 12.')
        again = ws.playbook("run", "--resume", str(run))
        out.check("resume exits 0", again.returncode == 0)
        out.check("resume warns about the truncated line", "dropped a truncated record" in again.stderr)
        after = jsonl(recs)
        out.records_lost = lost(before, after)
        out.check("no truncated line left in the records", all(
            _parses(line) for line in recs.read_text().splitlines() if line.strip()))
        out.check("no record duplicated", len({r["id"] for r in after}) == len(after))
        out.check(f"every level holds exactly {n} records of its final attempt", final_levels_hold_n(run, n))
        out.check("run.json: every step done", all(s["status"] == "done" for s in read(run / "run.json")["steps"]))
        out.check("decision.json written", bool(read(run / "decision.json").get("verdict")))
        out.detail = (f"kernel exited {kernel_s:.1f} s after the runner; truncated line dropped on resume; "
                      f"{len(before)} -> {len(after)} records")
    return out


def _parses(line: str) -> bool:
    try:
        json.loads(line)
        return True
    except ValueError:
        return False


# == 3. the server restarts between two scrapes ==================================================
def server_restart_between_scrapes() -> Outcome:
    from playbook.helpers.errors import CounterResetError
    from playbook.helpers.loadgen import LoadShape, Target, run_phase_sync
    from playbook.helpers.metrics import scrape, spec_delta
    from playbook.helpers.schemas.workloads import PromptItem

    with scenario("counter-reset") as (out, ws):
        srv = ws.server(FAKE_METRICS="live")
        items = [PromptItem(id=f"p{i}", workload="fake", prompt="ok prompt", max_tokens=9) for i in range(3)]

        def phase(label: str, n: int):
            return run_phase_sync(Target(srv.url, "fake"), items[:n], LoadShape("concurrency", concurrency=1),
                                  phase=label, progress=False, jsonl=ws.dir / "records.jsonl")

        first = scrape(srv.url)
        phase("a", 3)
        second = scrape(srv.url)
        out.check("a rate between two scrapes of one server", spec_delta(first, second).draft_tokens > 0)
        srv.kill()  # the server restarts: its counters start again at 0
        srv.start()
        phase("b", 1)  # fewer requests since the restart: the counters went backwards
        third = scrape(srv.url)
        try:
            spec_delta(second, third)
            out.check("the reset is detected", False)
        except CounterResetError as exc:
            out.check("the reset is detected and no rate is computed across it", "restarted" in exc.problem)
        out.check("the requests around the restart are recorded", len(jsonl(ws.dir / "records.jsonl")) == 4)
        drafts = "vllm:spec_decode_num_drafts_total"
        out.detail = (f"drafts counter {second.counters.get(drafts):g} -> {third.counters.get(drafts):g} across the "
                      "restart: CounterResetError, no rate computed")
    return out


# == 4. a stream stalls ===========================================================================
def stream_stalls() -> Outcome:
    from playbook.helpers.loadgen import LoadShape, Target, run_phase_sync
    from playbook.helpers.schemas.workloads import PromptItem

    with scenario("stream-stalls") as (out, ws):
        srv = ws.server()
        items = [PromptItem(id=f"p{i}", workload="fake", prompt=f"{w} prompt", max_tokens=9)
                 for i, w in enumerate(["ok", "stall", "ok", "stall"])]
        t0 = time.monotonic()
        res = run_phase_sync(Target(srv.url, "fake"), items, LoadShape("concurrency", concurrency=2), phase="stall",
                             timeout_s=1.0, progress=False, jsonl=ws.dir / "records.jsonl")
        took = time.monotonic() - t0
        by = Counter(r["status"] for r in res.records)
        out.check("stalled requests end at their timeout as 'timeout'", by == {"ok": 2, "timeout": 2})
        out.check("each stalled request lasted about the timeout",
                  all(900 <= r["e2e_ms"] <= 3000 for r in res.records if r["status"] == "timeout"))
        out.check("the phase went on and is not failed", res.summary.status == "ok" and took < 10)
        out.check("every request is recorded on disk", len(jsonl(ws.dir / "records.jsonl")) == 4)
        out.detail = f"statuses {dict(by)} in {took:.1f} s"
    return out


# == 5. bursts of 429/503 and connection resets ===================================================
def error_bursts_inconclusive() -> Outcome:
    with scenario("error-bursts") as (out, ws):
        spec, base = ws.server(), ws.server()
        prompts = ws.prompts(["http429"] * 3 + ["http503"] * 2 + ["reset"] * 2 + ["ok"] * 3)
        n = 10
        res = ws.playbook(*load_args(ws, spec, base, prompts, requests_per_level=n, concurrencies="2",
                                     warmup_requests=0, max_error_rate=0.2, min_round_pairs=2,
                                     target_ci_halfwidth=5))  # 2 round pairs of n requests, more if a round is unusable
        run = ws.run_dirs()[0]
        out.check("the run continues to the end (exit 0)", res.returncode == 0)
        levels = read(run / "artifacts" / "50_load.json").get("levels", [])
        # each round of n sends the 10 prompts once: 3 x 429, 2 x 503, 2 resets (on a busy machine a round whose
        # few good answers came in one burst is measured again, so the count of rounds is read, not assumed)
        rounds = levels[0].get("rounds", 0) if levels else 0
        out.check("both configurations measured every request", len(levels) == 2 and rounds >= 2 and all(
            lv["rounds"] == rounds and lv["requests"] == n * rounds for lv in levels))
        out.check("errors counted by kind", all(
            lv["errors_by_status"].get("http_error") == 5 * rounds
            and lv["errors_by_status"].get("connection_error") == 2 * rounds for lv in levels))
        recs = measured(jsonl(run / "artifacts" / REQUESTS))
        out.check("every error recorded with its HTTP status", sorted(
            r["http_status"] for r in recs if r["status"] == "http_error") == [429] * 6 * rounds + [503] * 4 * rounds)
        decision = read(run / "decision.json")
        rule = next((r for r in decision.get("rules", []) if r["name"] == "error_rate"), {})
        out.check("decision.json: INCONCLUSIVE because of the error rate",
                  decision.get("verdict") == "INCONCLUSIVE" and rule.get("verdict") == "unknown"
                  and rule.get("numbers", {}).get("max_error_rate") == 0.2)
        out.detail = f"error rate {rule.get('numbers', {}).get('error_rate')} > 0.2 -> {decision.get('verdict')}"
    return out


# == 6. unwritable run directory, full disk ======================================================
def unwritable_or_full_disk() -> Outcome:
    with scenario("unwritable-full-disk") as (out, ws):
        srv = ws.server(FAKE_METRICS="live")
        prompts = ws.prompts(["ok"] * 4)
        blocker = ws.dir / "a-file"
        blocker.write_text("not a directory")
        args = load_args(ws, srv, srv, prompts)
        args[args.index("--runs-dir") + 1] = str(blocker / "runs")
        t0 = time.monotonic()
        bad = ws.playbook(*args)
        out.check("unwritable: exit 1 with a clear error, no traceback",
                  bad.returncode == 1 and "error: cannot use" in bad.stderr and str(blocker) in bad.stderr
                  and "Traceback" not in bad.stderr)

        def no_file_bigger_than_1k():  # a full disk: writes fail past 1 kB (EFBIG, as ENOSPC would)
            resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

        full = ws.playbook(*load_args(ws, srv, srv, prompts), preexec_fn=no_file_bigger_than_1k)
        out.check("full disk: exit 1 naming the run directory and the cause",
                  full.returncode == 1 and "is not writable" in full.stderr and "free some disk space" in full.stderr
                  and "Traceback" not in full.stderr)
        from playbook.helpers.metrics import scrape

        sent = scrape(srv.url).counters.get("vllm:spec_decode_num_drafts_total", 0.0)
        out.check("no request was sent: the errors come before any measurement", sent == 0)
        out.check("errors within seconds", time.monotonic() - t0 < 30)
        out.check("no kernel was started, no notebook written",
                  not any(list((d / "notebooks").glob("*.ipynb")) for d in ws.run_dirs()))
        out.check("no run directory left behind", ws.run_dirs() == [])
        out.detail = "refused before any request: " + " | ".join(
            e.strip().splitlines()[0].removeprefix("error: ").replace(str(ws.dir), "<ws>") for e in (bad.stderr, full.stderr))
    return out


# == 7. two runs in the same workspace at once ===================================================
def two_runs_at_once() -> Outcome:
    with scenario("two-runs") as (out, ws):
        spec, base = ws.server(), ws.server()
        prompts = ws.prompts(["slow"] * 4)
        first = ws.start_playbook(*load_args(ws, spec, base, prompts, requests_per_level=12, concurrencies="1"))
        lock = ws.runs / ".playbook.lock"
        held = wait_for(lambda: len(ws.run_dirs()) == 1 and lock.exists() and str(ws.runs) in lock.read_text()
                        and (ws.run_dirs()[0] / "run.json").exists(), 60)
        first_dir = ws.run_dirs()[0]
        second = ws.playbook("run", "--only", "90_report", "--runs-dir", str(ws.runs))
        still = first.poll() is None
        out.check("the first run held the lock", held and still)
        out.check("the second run is refused naming the first (dir and pid)",
                  second.returncode == 1 and "another playbook run is using this workspace" in second.stderr
                  and str(first_dir) in second.stderr and f"pid {first.pid}" in second.stderr)
        out.check("the refused run made no run directory", ws.run_dirs() == [first_dir])
        first.communicate(timeout=120)
        out.check("the first run finishes normally", first.returncode == 0)
        out.check("the lock is released after it", lock.read_text() == "")
        out.detail = "second run: " + (second.stderr.strip().splitlines()[0].removeprefix("error: ")
                                       .replace(str(ws.dir), "<ws>") if second.stderr else "")
    return out


# == 8. the managed server cannot start ==========================================================
FAKE_VLLM = r'''
import os, subprocess, sys, time
args = sys.argv[1:]
print("INFO fake vllm starting with", " ".join(args), flush=True)
mode = os.environ.get("FAKE_MODE", "exit")
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", __file__])  # an engine-core-like child
if mode == "exit":
    print("Traceback (most recent call last):", flush=True)
    print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", flush=True)
    sys.exit(1)
if mode == "oom":
    os.kill(os.getpid(), 9)
time.sleep(600)
'''


def managed_server_cannot_start() -> Outcome:
    from playbook.helpers.errors import ModelError, ServerStartError
    from playbook.helpers.schemas.server import ServerConfig
    from playbook.helpers.server import launch

    with scenario("managed-start-fails") as (out, ws):
        model = ws.dir / "model"
        model.mkdir()
        (model / "config.json").write_text("{}")
        script = ws.dir / "fake_vllm.py"
        script.write_text(textwrap.dedent(FAKE_VLLM))
        fake_python = ws.dir / "fakepython"
        fake_python.write_text(f"#!/bin/sh\nexec {PYTHON} {script} \"$@\"\n")
        fake_python.chmod(0o755)
        logs = ws.dir / "server-logs"
        cfg = ServerConfig(model=str(model), python=str(fake_python))
        reasons = []
        for mode, needle in (("exit", "CUDA out of memory"), ("oom", "killed by signal 9")):
            os.environ["FAKE_MODE"] = mode
            try:
                launch(cfg, logs, timeout_s=30, name=mode)
                out.check(f"{mode}: start-up fails", False)
            except ServerStartError as exc:
                out.check(f"{mode}: the error carries the reason and the log tail",
                          needle in str(exc) and "fake vllm starting" in exc.log_tail)
                reasons.append(str(exc).splitlines()[0][:70])
            finally:
                os.environ.pop("FAKE_MODE", None)
            out.check(f"{mode}: no process left", not wait_gone(procs_mentioning(str(ws.dir)), 10))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            port = sock.getsockname()[1]
            try:
                launch(cfg.model_copy(update={"port": port}), logs, timeout_s=30, name="port")
                out.check("port taken: refused", False)
            except ServerStartError as exc:
                out.check("port taken: named with its owner", f"port {port}" in str(exc) and "in use" in str(exc))
        try:
            launch(ServerConfig(model=str(ws.dir / "no-such-model"), python=str(fake_python)), logs, name="path")
            out.check("bad model path: refused", False)
        except ModelError as exc:
            out.check("bad model path: named", "no-such-model" in str(exc) and "does not exist" in str(exc))
        # as a user meets it: a managed run whose model path is wrong
        res = ws.playbook("run", "--only", "50_load", "--runs-dir", str(ws.runs), "-p", "mode=managed",
                          "-p", f"target_model={ws.dir / 'no-such-model'}", "-p", "method=ngram", "-p", "draft_model=",
                          "-p", "concurrencies=1", "-p", "lossless_check=false")
        out.check("managed run with a bad model path: exit 1 before any run directory, naming the path",
                  res.returncode == 1 and "no-such-model" in res.stderr and "does not exist" in res.stderr
                  and not ws.run_dirs())
        out.check("nothing left running", not wait_gone(procs_mentioning(str(ws.dir)), 10))
        out.detail = " | ".join(reasons)
    return out


SCENARIOS: dict[str, Callable[[], Outcome]] = {
    "1 server SIGKILLed mid load test": server_killed_mid_load,
    "2 playbook SIGKILLed mid run": playbook_killed_mid_run,
    "3 server restart between scrapes": server_restart_between_scrapes,
    "4 stream stalls": stream_stalls,
    "5 429/503/reset bursts": error_bursts_inconclusive,
    "6 unwritable dir / full disk": unwritable_or_full_disk,
    "7 two runs at once": two_runs_at_once,
    "8 managed server cannot start": managed_server_cannot_start,
}
