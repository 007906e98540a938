"""Benchmark: our load generator vs vLLM's own `vllm bench serve`, measured side by side in one run.

1. Accuracy: against one real embedded vLLM server (no speculation), the same prompts, the same
   output length (ignore_eos) at concurrency 1, alternating ours / theirs for ``--rounds`` rounds:
   median TTFT and median TPOT, ours / theirs (target: within 5%).
2. Client capacity: against a minimal local streaming server (aiohttp, 127.0.0.1, separate process),
   a ladder of constant request rates; a client sustains a rate when the P99 of its dispatch lag is
   under 5 ms. The lag is measured the same way for both clients, at the server: request i should
   arrive at ``t0 + i / rate``; lag_i = actual - scheduled. Capacity ratio = ours / theirs (target >= 1).

Ends with three lines: ttft_median_ratio=, tpot_median_ratio=, capacity_ratio=.
Run: .venv/bin/python benchmarks/loadgen.py   (about 3 to 5 minutes; loopback only)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from playbook.helpers.loadgen import LoadShape, Target, run_phase_sync
from playbook.helpers.schemas.workloads import PromptItem
from playbook.helpers.workloads import build_requests

LAG_LIMIT_MS = 5.0


# -- the minimal streaming server (runs as `python benchmarks/loadgen.py --serve PORT`) ------------
def serve(port: int, chunks: int) -> None:
    from aiohttp import web

    arrivals: list[float] = []

    async def completions(request: web.Request) -> web.StreamResponse:
        arrivals.append(time.perf_counter())
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(chunks):
            obj = {"id": "x", "object": "text_completion", "model": "m",
                   "choices": [{"index": 0, "text": " tok", "finish_reason": None if i < chunks - 1 else "length"}],
                   "usage": {"prompt_tokens": 4, "completion_tokens": i + 1, "total_tokens": 5 + i}}
            await resp.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
        final = {"id": "x", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": chunks}}
        await resp.write(b"data: " + json.dumps(final).encode() + b"\n\ndata: [DONE]\n\n")
        return resp

    async def take_arrivals(_request: web.Request) -> web.Response:
        out = list(arrivals)
        arrivals.clear()
        return web.json_response(out)

    async def models(_request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/arrivals", take_arrivals)
    app.router.add_get("/v1/models", models)
    web.run_app(app, host="127.0.0.1", port=port, print=lambda *_: print("ready", flush=True), access_log=None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str):
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


# -- vllm bench serve, in-process ------------------------------------------------------------------
def vllm_bench(argv: list[str]) -> dict:
    from vllm.benchmarks.serve import add_cli_args, main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    args = parser.parse_args(argv)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        result = main(args)
    return result


def _tokenizer_dir() -> str:
    from playbook.engine import tiny_pair

    return str(tiny_pair().target)


# -- 1. accuracy ----------------------------------------------------------------------------------
def accuracy(n: int, max_tokens: int, rounds: int, workdir: Path) -> tuple[float, float, dict]:
    from playbook.engine import embedded_server_config
    from playbook.helpers.server import launch

    items = [it.model_copy(update={"max_tokens": max_tokens}) for it in build_requests("structured", n, seed=0)]
    data = workdir / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": it.prompt, "output_tokens": max_tokens}) + "\n" for it in items))
    ours_ttft, ours_tpot, theirs_ttft, theirs_tpot = [], [], [], []
    with launch(embedded_server_config("none"), workdir, name="bench-accuracy") as server:
        target = Target(server.url, server.model_name, extra_body={"ignore_eos": True})
        for r in range(rounds):
            res = run_phase_sync(target, items, LoadShape("concurrency", concurrency=1), phase=f"ours{r}",
                                 progress=False)
            ok = [x for x in res.records if x["status"] == "ok"]
            ours_ttft.append(float(np.median([x["ttft_ms"] for x in ok])))
            ours_tpot.append(float(np.median([x["tpot_ms"] for x in ok])))
            theirs = vllm_bench([
                "--backend", "vllm", "--base-url", server.url, "--model", server.model_name,
                "--tokenizer", str(server.config.model), "--dataset-name", "custom", "--dataset-path", str(data),
                "--custom-output-len", str(max_tokens), "--skip-chat-template", "--disable-shuffle",
                "--num-prompts", str(n), "--max-concurrency", "1", "--ignore-eos", "--disable-tqdm",
                "--seed", "0"])
            theirs_ttft.append(theirs["median_ttft_ms"])
            theirs_tpot.append(theirs["median_tpot_ms"])
            print(f"round {r}: ours TTFT {ours_ttft[-1]:.2f} ms TPOT {ours_tpot[-1]:.3f} ms | "
                  f"vllm bench TTFT {theirs_ttft[-1]:.2f} ms TPOT {theirs_tpot[-1]:.3f} ms", flush=True)
    detail = {"ours_ttft": ours_ttft, "ours_tpot": ours_tpot, "theirs_ttft": theirs_ttft, "theirs_tpot": theirs_tpot}
    return float(np.mean(ours_ttft) / np.mean(theirs_ttft)), float(np.mean(ours_tpot) / np.mean(theirs_tpot)), detail


# -- 2. capacity ----------------------------------------------------------------------------------
def _lag_p99(arrivals: list[float], rate: float, n: int) -> float:
    """P99 of (actual - scheduled) arrival at the server, for the last n arrivals of a constant-rate run.

    The schedule is ``t0 + i / rate``, with t0 anchored on the best-timed request (so lags are >= 0)."""
    a = np.sort(np.asarray(arrivals[-n:]))
    if a.size < n:
        return float("inf")
    offset = a - np.arange(a.size) / rate
    return float(np.percentile((offset - offset.min()) * 1000.0, 99))


def capacity(rates: list[float], seconds: float, workdir: Path, chunks: int) -> tuple[float, float, list]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--chunks", str(chunks)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    rows = []
    best = {"ours": 0.0, "theirs": 0.0}
    alive = {"ours": True, "theirs": True}
    try:
        assert proc.stdout.readline().strip() == b"ready"
        data = workdir / "cap.jsonl"
        data.write_text("".join(json.dumps({"prompt": f"hello {i}", "output_tokens": chunks}) + "\n"
                                for i in range(64)))
        tok = _tokenizer_dir()
        for rate in rates:
            n = max(20, int(rate * seconds))
            for client in ("ours", "theirs"):
                if not alive[client]:
                    continue
                _get_json(url + "/arrivals")
                if client == "ours":
                    items = [PromptItem(id=str(i), workload="cap", prompt=f"hello {i}", max_tokens=chunks)
                             for i in range(n)]
                    res = run_phase_sync(Target(url, "m"), items, LoadShape("constant", rate=rate), progress=False,
                                         timeout_s=30)
                    self_lag = res.summary.dispatch_lag_p99_ms
                    errors = res.summary.errors
                else:
                    out = vllm_bench([
                        "--backend", "vllm", "--base-url", url, "--model", "m", "--tokenizer", tok,
                        "--dataset-name", "custom", "--dataset-path", str(data), "--custom-output-len", str(chunks),
                        "--skip-chat-template", "--num-prompts", str(n), "--request-rate", str(rate),
                        "--burstiness", "inf", "--disable-tqdm", "--seed", "0", "--ready-check-timeout-sec", "0"])
                    self_lag, errors = None, out.get("failed", 0)
                lag = _lag_p99(_get_json(url + "/arrivals"), rate, n)
                ok = lag < LAG_LIMIT_MS and errors == 0
                rows.append({"client": client, "rate": rate, "n": n, "server_lag_p99_ms": lag,
                             "self_reported_lag_p99_ms": self_lag, "errors": errors, "sustained": ok})
                print(f"capacity {client:6s} rate {rate:7.0f}/s n={n:5d}: dispatch lag P99 {lag:8.2f} ms "
                      f"errors {errors} -> {'ok' if ok else 'FAIL'}", flush=True)
                if ok:
                    best[client] = rate
                else:
                    alive[client] = False
            if not any(alive.values()):
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    return best["ours"], best["theirs"], rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--chunks", type=int, default=8, help="chunks per streamed response (capacity server)")
    ap.add_argument("--requests", type=int, default=16, help="requests per accuracy round")
    ap.add_argument("--max-tokens", type=int, default=48, help="output tokens per accuracy request")
    ap.add_argument("--rounds", type=int, default=2, help="alternating accuracy rounds")
    ap.add_argument("--rates", default="25,50,100,200,400,800,1600", help="capacity ladder (req/s)")
    ap.add_argument("--seconds", type=float, default=2.0, help="duration of each capacity rung")
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.chunks)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-loadgen-") as tmp:
        work = Path(tmp)
        ttft_ratio, tpot_ratio, _ = accuracy(args.requests, args.max_tokens, args.rounds, work)
        ours, theirs, _ = capacity([float(r) for r in args.rates.split(",")], args.seconds, work, args.chunks)
    print(f"capacity: ours {ours:g} req/s, vllm bench serve {theirs:g} req/s (dispatch lag P99 < {LAG_LIMIT_MS:g} ms)")
    print(f"ttft_median_ratio={ttft_ratio:.4f}")
    print(f"tpot_median_ratio={tpot_ratio:.4f}")
    print(f"capacity_ratio={(ours / theirs) if theirs else float('inf'):.4f}")
    return 0


if __name__ == "__main__":
    if sys.platform != "win32":
        asyncio.set_event_loop_policy(None)
    sys.exit(main())
