"""Benchmark: our load generator vs vLLM's own `vllm bench serve`, measured side by side in one run.

1. Accuracy: against one real embedded vLLM server (no speculation), the same prompts, the same
   output length (ignore_eos) at concurrency 1, alternating ours / theirs for ``--rounds`` rounds:
   median TTFT and median TPOT, ours / theirs (target: within 5%).
2. Client capacity: against a minimal local streaming server (aiohttp, 127.0.0.1, separate process),
   a ladder of constant request rates; a client sustains a rate when the P99 of its dispatch lag is
   under 5 ms with no errors. The lag is computed the same way for both clients, from each client's
   own send timestamps (vllm bench returns them as ``start_times``): request i is due at
   ``t0 + i / rate``; lag_i = sent - due. Capacity ratio = ours / theirs (target >= 1).

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
from pathlib import Path

import numpy as np

from playbook.helpers.loadgen import LoadShape, Target, run_phase_sync
from playbook.helpers.schemas.workloads import PromptItem
from playbook.helpers.workloads import build_requests

LAG_LIMIT_MS = 5.0


# -- the minimal streaming server (runs as `python benchmarks/loadgen.py --serve PORT`) ------------
def serve(port: int, chunks: int) -> None:
    from aiohttp import web

    async def completions(request: web.Request) -> web.StreamResponse:
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

    async def models(_request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model"}]})

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    web.run_app(app, host="127.0.0.1", port=port, print=lambda *_: print("ready", flush=True), access_log=None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    """Median TTFT/TPOT ratios, ours / vllm bench serve, from adjacent pairs of runs.

    The server is warmed up first; each round runs both clients back to back (the order alternates),
    and the ratio is the median over rounds of each round's ratio, so slow drifts of a shared machine
    cancel. The server's own TPOT (``vllm:request_time_per_output_token_seconds``) is printed beside.
    """
    from playbook.engine import embedded_server_config
    from playbook.helpers.server import launch

    items = [it.model_copy(update={"max_tokens": max_tokens}) for it in build_requests("structured", n, seed=0)]
    data = workdir / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": it.prompt, "output_tokens": max_tokens}) + "\n" for it in items))
    rows = []
    with launch(embedded_server_config("none"), workdir, name="bench-accuracy") as server:
        target = Target(server.url, server.model_name, extra_body={"ignore_eos": True})
        run_phase_sync(target, items[:4], LoadShape("concurrency", concurrency=1), progress=False)  # warm-up

        def ours() -> tuple[float, float]:
            res = run_phase_sync(target, items, LoadShape("concurrency", concurrency=1), progress=False)
            ok = [x for x in res.records if x["status"] == "ok"]
            return float(np.median([x["ttft_ms"] for x in ok])), float(np.median([x["tpot_ms"] for x in ok]))

        def theirs() -> tuple[float, float]:
            out = vllm_bench([
                "--backend", "vllm", "--base-url", server.url, "--model", server.model_name,
                "--tokenizer", str(server.config.model), "--dataset-name", "custom", "--dataset-path", str(data),
                "--custom-output-len", str(max_tokens), "--skip-chat-template", "--disable-shuffle",
                "--num-prompts", str(n), "--max-concurrency", "1", "--ignore-eos", "--disable-tqdm",
                "--seed", "0", "--ready-check-timeout-sec", "0"])
            return out["median_ttft_ms"], out["median_tpot_ms"]

        for r in range(rounds):
            row = {}
            for name, fn in ((("ours", ours), ("theirs", theirs)) if r % 2 == 0 else (("theirs", theirs), ("ours", ours))):
                before = _server_tpot(server.url)
                row[name] = fn()
                row[f"{name}_server_tpot"] = _server_tpot(server.url, before)
            rows.append(row)
            print(f"round {r}: ours TTFT {row['ours'][0]:.2f} ms TPOT {row['ours'][1]:.3f} ms "
                  f"(server {row['ours_server_tpot']:.3f}) | vllm bench TTFT {row['theirs'][0]:.2f} ms "
                  f"TPOT {row['theirs'][1]:.3f} ms (server {row['theirs_server_tpot']:.3f})", flush=True)
    ttft = float(np.median([r["ours"][0] / r["theirs"][0] for r in rows]))
    tpot = float(np.median([r["ours"][1] / r["theirs"][1] for r in rows]))
    return ttft, tpot, {"rounds": rows}


def _server_tpot(url: str, before: tuple[float, float] | None = None):
    """The server's own mean TPOT (ms) since ``before`` (a (sum, count) pair), or the pair itself."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families


    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    total = count = 0.0
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            if smp.name == "vllm:request_time_per_output_token_seconds_sum":
                total += smp.value
            elif smp.name == "vllm:request_time_per_output_token_seconds_count":
                count += smp.value
    if before is None:
        return total, count
    return 1000.0 * (total - before[0]) / max(count - before[1], 1)


# -- 2. capacity ----------------------------------------------------------------------------------
def lag_p99(send_times: list[float], rate: float) -> float:
    """P99 dispatch lag (ms) of a constant-rate run from the client's own send timestamps.

    Request i is due at ``t0 + i / rate``; t0 is anchored on the best-timed request, so lags are >= 0.
    The same formula is applied to both clients (ours: ``sent_s``; vllm bench: ``start_times``)."""
    a = np.sort(np.asarray(send_times, dtype=float))
    if a.size == 0:
        return float("inf")
    offset = a - np.arange(a.size) / rate
    return float(np.percentile((offset - offset.min()) * 1000.0, 99))


def capacity(rates: list[float], seconds: float, workdir: Path, chunks: int) -> tuple[float, float, list]:
    """Highest rate of the ladder each client sustains (lag P99 < 5 ms, no errors). A client leaves the
    ladder after two failed rungs in a row (one rung can fail to a burst of load on a shared machine)."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--chunks", str(chunks)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    rows = []
    best = {"ours": 0.0, "theirs": 0.0}
    fails = {"ours": 0, "theirs": 0}
    try:
        assert proc.stdout.readline().strip() == b"ready"
        data = workdir / "cap.jsonl"
        data.write_text("".join(json.dumps({"prompt": f"hello {i}", "output_tokens": chunks}) + "\n"
                                for i in range(64)))
        tok = _tokenizer_dir()
        for rate in rates:
            n = max(100, int(rate * seconds))
            for client in ("ours", "theirs"):
                if fails[client] >= 2:
                    continue
                if client == "ours":
                    items = [PromptItem(id=str(i), workload="cap", prompt=f"hello {i}", max_tokens=chunks)
                             for i in range(n)]
                    res = run_phase_sync(Target(url, "m"), items, LoadShape("constant", rate=rate), progress=False,
                                         timeout_s=30)
                    sends, errors = [r["sent_s"] for r in res.records], res.summary.errors
                else:
                    out = vllm_bench([
                        "--backend", "vllm", "--base-url", url, "--model", "m", "--tokenizer", tok,
                        "--dataset-name", "custom", "--dataset-path", str(data), "--custom-output-len", str(chunks),
                        "--skip-chat-template", "--num-prompts", str(n), "--request-rate", str(rate),
                        "--burstiness", "inf", "--disable-tqdm", "--seed", "0", "--ready-check-timeout-sec", "0",
                        "--save-detailed"])
                    sends, errors = out["start_times"], out.get("failed", 0)
                lag = lag_p99(sends, rate)
                ok = lag < LAG_LIMIT_MS and errors == 0 and len(sends) == n
                rows.append({"client": client, "rate": rate, "n": n, "lag_p99_ms": lag, "errors": errors,
                             "sustained": ok})
                print(f"capacity {client:6s} rate {rate:7.0f}/s n={n:5d}: dispatch lag P99 {lag:8.2f} ms "
                      f"errors {errors} -> {'ok' if ok else 'FAIL'}", flush=True)
                if ok:
                    best[client], fails[client] = rate, 0
                else:
                    fails[client] += 1
            if min(fails.values()) >= 2:
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
    ap.add_argument("--rounds", type=int, default=3, help="alternating accuracy rounds")
    ap.add_argument("--rates", default="10,25,50,100,200,400,800,1600", help="capacity ladder (req/s)")
    ap.add_argument("--seconds", type=float, default=2.0, help="duration of each capacity rung")
    ap.add_argument("--part", choices=["both", "accuracy", "capacity"], default="both", help="run only one part")
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.chunks)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-loadgen-") as tmp:
        work = Path(tmp)
        ttft_ratio = tpot_ratio = float("nan")
        ours = theirs = 0.0
        if args.part in ("both", "accuracy"):
            ttft_ratio, tpot_ratio, _ = accuracy(args.requests, args.max_tokens, args.rounds, work)
        if args.part in ("both", "capacity"):
            ours, theirs, _ = capacity([float(r) for r in args.rates.split(",")], args.seconds, work, args.chunks)
    print(f"capacity: ours {ours:g} req/s, vllm bench serve {theirs:g} req/s (dispatch lag P99 < {LAG_LIMIT_MS:g} ms)")
    print(f"ttft_median_ratio={ttft_ratio:.4f}")
    print(f"tpot_median_ratio={tpot_ratio:.4f}")
    print(f"capacity_ratio={(ours / theirs) if theirs else float('nan'):.4f}")
    return 0


if __name__ == "__main__":
    if sys.platform != "win32":
        asyncio.set_event_loop_policy(None)
    sys.exit(main())
