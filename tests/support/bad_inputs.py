"""Issue 17: the table of mistaken or hostile inputs a new user might give the CLI.

Each :class:`Case` is an argv (``{d}`` is a scratch directory, ``{url401}`` / ``{closed}`` two local
URLs), the files it needs, and the words its error must hold. Every case must end with a non-zero
exit, exactly one ``error:`` line, no traceback, and every file already there unchanged (checksums).
Used in-process by tests/faults/test_bad_input_table.py and as subprocesses by benchmarks/faults/run.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

Setup = Callable[[Path], None]


def _write(rel: str, data: str | bytes) -> Setup:
    def setup(d: Path) -> None:
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
    return setup


def _all(*setups: Setup) -> Setup:
    def setup(d: Path) -> None:
        for s in setups:
            s(d)
    return setup


def _workspace(d: Path) -> None:
    from playbook.resources import init_workspace

    init_workspace(d / "w")
    nb = d / "w" / "notebooks" / "90_report.ipynb"
    nb.write_text(nb.read_text().replace('"cells": [', '"cells": [', 1) + "\n")  # "edited" by the user


RUN_JSON = json.dumps({"run_id": "r", "created_at": "2026-01-01T00:00:00Z", "profile": "p", "parameters": {},
                       "steps": [{"name": "50_load", "status": "done"}]})
GOOD_CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
               "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
               "intermediate_size": 128, "vocab_size": 256}


def _model(rel: str, config: object = None, raw: bytes | None = None, extra: dict[str, bytes] | None = None) -> Setup:
    files = {"config.json": raw if raw is not None else json.dumps(config if config is not None else GOOD_CONFIG).encode()}
    files.update(extra or {})
    return _all(*[_write(f"{rel}/{name}", data) for name, data in files.items()])


def _safetensors(header: bytes) -> bytes:
    return struct.pack("<Q", len(header)) + header


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]
    setup: Setup | None = None
    needles: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


def _run(*args: str) -> list[str]:
    return ["run", "--runs-dir", "{d}/runs", *args]


CASES: list[Case] = [
    # -- playbook report: refuse what is not a run directory, never overwrite -----------------
    Case("report-workspace", ["report", "{d}/w"], _workspace, ("no run.json",)),
    Case("report-empty-dir", ["report", "{d}/empty"], _write("empty/.keep", ""), ("no run.json",)),
    Case("report-runs-parent", ["report", "{d}/runs"], _write("runs/r1/run.json", RUN_JSON), ("no run.json", "r1")),
    Case("report-missing-dir", ["report", "{d}/nowhere"], None, ("does not exist",)),
    Case("report-corrupt-run-json", ["report", "{d}/r"], _write("r/run.json", '{"run_id": "r", oops'), ("run.json",)),
    Case("report-run-json-a-list", ["report", "{d}/r"], _write("r/run.json", "[1, 2]"), ("run.json",)),
    Case("report-jsonl-not-object", ["report", "{d}/r"],
         _all(_write("r/run.json", RUN_JSON), _write("r/artifacts/50_load_records.jsonl", '{"ttft_ms": 1}\n5\n')),
         ("line 2", "not a JSON object")),
    # -- numeric ranges and cross-parameter constraints (shared models) -------------------------
    Case("concurrency-zero", _run("-p", "concurrencies=0"), None, ("'concurrencies'", "0")),
    Case("concurrency-negative-in-list", _run("-p", "concurrencies=1,-4"), None, ("'concurrencies'",)),
    Case("rates-negative", _run("-p", "concurrencies=", "-p", "rates=-1"), None, ("'rates'",)),
    Case("rates-nan", _run("-p", "concurrencies=", "-p", "rates=nan"), None, ("'rates'",)),
    Case("seed-negative", _run("-p", "seed=-1"), None, ("'seed'",)),
    Case("ratio-band-reversed", _run("-p", "ratio_low=12", "-p", "ratio_high=8"), None, ("ratio_low",)),
    Case("burstiness-inf", _run("-p", "burstiness=.inf"), None, ("'burstiness'",)),
    Case("timeout-nan", _run("-p", "request_timeout_s=.nan"), None, ("'request_timeout_s'",)),
    Case("kv-cache-inf", _run("-p", "kv_cache_gib=.inf"), None, ("'kv_cache_gib'",)),
    Case("temperature-nan", _run("-p", "temperatures=0,nan"), None, ("'temperatures'",)),
    Case("num-gpus-zero", _run("-p", "num_gpus=0"), None, ("'num_gpus'",)),
    Case("gpu-memory-negative", _run("-p", "gpu_memory_gib=-80"), None, ("'gpu_memory_gib'",)),
    Case("tp-not-dividing-heads", _run("-p", "mode=managed", "-p", "target_model=Llama-3.1-70B",
                                       "-p", "draft_model=Llama-3.2-1B", "-p", "tensor_parallel_size=3"),
         None, ("64", "tensor_parallel_size")),
    Case("traffic-temperature-high", _run("-p", "traffic_temperatures=0.2,7"), None, ("traffic_temperatures",)),
    # -- values the YAML reader types differently from what the user meant ---------------------
    Case("served-name-number", _run("-p", "served_model_name=1234"), None, ("quote", "1234")),
    Case("served-name-bool", _run("-p", "served_model_name=yes"), None, ("quote",)),
    Case("url-with-space", _run("-p", "mode=external", "-p", "spec_url=http://gpu node:8000"), None, ("space",)),
    Case("url-other-scheme", _run("-p", "mode=external", "-p", "spec_url=ftp://x"), None, ("ftp://x",)),
    Case("api-key-env-shell", _run("-p", "api_key_env=A$(touch {d}/pwned)"), None, ("api_key_env",)),
    # -- profiles -----------------------------------------------------------------------------
    Case("profile-not-utf8", _run("--profile", "{d}/p.yaml"), _write("p.yaml", b"seed: 1\nmode: \xff\xfe\n"), ("UTF-8",)),
    Case("profile-a-directory", _run("--profile", "{d}/pdir"), _write("pdir/.keep", ""), ("directory",)),
    Case("profile-alias-bomb", _run("--profile", "{d}/bomb.yaml"), _write(
        "bomb.yaml", "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                     "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
                     "seed: [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"), ("anchors and aliases",)),
    Case("profile-duplicate-key", _run("--profile", "{d}/dup.yaml"), _write("dup.yaml", "seed: 1\nseed: 2\n"), ("twice",)),
    Case("profile-huge-value", _run("--profile", "{d}/big.yaml"), _write("big.yaml", "seed: " + "9" * 200_000 + "x\n"),
         ("'seed'",)),
    Case("profile-a-list", _run("--profile", "{d}/list.yaml"), _write("list.yaml", "- seed\n- 1\n"), ("mapping",)),
    Case("resume-with-profile", ["run", "--resume", "{d}/r", "--profile", "embedded-cpu"], _write("r/run.json", RUN_JSON),
         ("--resume", "--profile")),
    # -- prompts files ------------------------------------------------------------------------
    Case("prompts-not-utf8", _run("--only", "50", "-p", "workload={d}/p.jsonl"), _write("p.jsonl", b'{"prompt": "\xff"}\n'),
         ("UTF-8",)),
    Case("prompts-json-list-of-strings", _run("--only", "50", "-p", "workload={d}/p.json"), _write("p.json", '["a", "b"]'),
         ("not an object",)),
    Case("prompts-sharegpt-turns", _run("--only", "50", "-p", "workload={d}/s.jsonl"),
         _write("s.jsonl", '{"conversations": ["hi", "there"]}\n'), ("turn 1",)),
    Case("prompts-jsonl-line-a-list", _run("--only", "50", "-p", "workload={d}/l.jsonl"), _write("l.jsonl", "[1, 2]\n"),
         ("not an object",)),
    Case("mix-share-inf", _run("--only", "50", "-p", "workload=structured:inf,code:1"), None, ("inf",)),
    # -- playbook memory ----------------------------------------------------------------------
    Case("memory-num-gpus-negative", ["memory", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM", "--num-gpus", "-2"],
         None, ("num_gpus",)),
    Case("memory-gpu-gib-negative", ["memory", "--target", "Llama-3.1-8B", "--gpu-memory-gib", "-80"], None,
         ("gpu_memory_gib",)),
    Case("memory-gpu-gib-nan", ["memory", "--target", "Llama-3.1-8B", "--gpu-memory-gib", "nan"], None,
         ("gpu_memory_gib",)),
    Case("memory-gpu-gib-inf", ["memory", "--target", "Llama-3.1-8B", "--gpu-memory-gib", "inf"], None,
         ("gpu_memory_gib",)),
    Case("memory-context-negative", ["memory", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM", "--context-length", "-5"],
         None, ("context_length",)),
    Case("memory-tp-not-dividing-heads", ["memory", "--target", "Llama-3.1-70B", "--gpu", "H100-SXM", "--tp", "3"],
         None, ("64", "tensor_parallel_size")),
    Case("memory-model-config-a-list", ["memory", "--target", "{d}/m", "--gpu", "H100-SXM"], _model("m", [1, 2]),
         ("config.json",)),
    Case("memory-model-zero-heads", ["memory", "--target", "{d}/m", "--gpu", "H100-SXM"],
         _model("m", {**GOOD_CONFIG, "num_attention_heads": 0}), ("num_attention_heads",)),
    Case("memory-model-string-number", ["memory", "--target", "{d}/m", "--gpu", "H100-SXM"],
         _model("m", {**GOOD_CONFIG, "hidden_size": "big"}), ("hidden_size",)),
    Case("memory-model-not-utf8", ["memory", "--target", "{d}/m", "--gpu", "H100-SXM"],
         _model("m", raw=b'{"hidden_size": "\xff"}'), ("UTF-8",)),
    Case("memory-model-broken-tokenizer", ["memory", "--target", "{d}/m", "--gpu", "H100-SXM"],
         _model("m", extra={"tokenizer.json": b'{"model": {"vocab": 5}'}), ("tokenizer.json",)),
    Case("memory-model-tokenizer-wrong-shape", ["memory", "--target", "{d}/m", "--gpu", "H100-SXM"],
         _model("m", extra={"tokenizer.json": b'{"model": {"vocab": 5}}'}), ("tokenizer.json",)),
    Case("memory-model-safetensors-header", ["memory", "--target", "{d}/m", "--gpu", "H100-SXM"],
         _model("m", extra={"model.safetensors": _safetensors(b'{"w": {"dtype": "F16", "shape": "x"}}')}),
         ("model.safetensors",)),
    Case("memory-model-safetensors-huge-length", ["memory", "--target", "{d}/m", "--gpu", "H100-SXM"],
         _model("m", extra={"model.safetensors": struct.pack("<Q", 2**62) + b"{}"}), ("model.safetensors",)),
    Case("drafts-model-config-a-list", ["drafts", "--target", "{d}/m"], _model("m", [1, 2]), ("config.json",)),
    Case("drafts-ratio-reversed", ["drafts", "--target", "Llama-3.1-70B", "--ratio-low", "12", "--ratio-high", "8"],
         None, ("ratio",)),
    # -- measurement commands -----------------------------------------------------------------
    Case("sweep-api-key-env-unset", ["sweep", "--url", "{closed}", "--api-key-env", "PLAYBOOK_NO_SUCH_VAR",
                                     "--run-dir", "{d}/out"], None, ("PLAYBOOK_NO_SUCH_VAR",)),
    Case("load-api-key-env-unset", ["load", "--baseline-url", "{closed}", "--spec-url", "{closed}", "--api-key-env",
                                    "PLAYBOOK_NO_SUCH_VAR", "--run-dir", "{d}/out"], None, ("PLAYBOOK_NO_SUCH_VAR",)),
    Case("lossless-api-key-env-unset", ["lossless", "--baseline-url", "{closed}", "--spec-url", "{closed}",
                                        "--api-key-env", "PLAYBOOK_NO_SUCH_VAR"], None, ("PLAYBOOK_NO_SUCH_VAR",)),
    Case("load-closed-port", ["load", "--baseline-url", "{closed}", "--spec-url", "{closed}", "--model", "m",
                              "--run-dir", "{d}/out"], None, ("{closed}",)),
    Case("load-401", ["load", "--baseline-url", "{url401}", "--spec-url", "{url401}", "--model", "m",
                      "--run-dir", "{d}/out"], None, ("{url401}", "401")),
    Case("sweep-401", ["sweep", "--url", "{url401}", "--run-dir", "{d}/out"], None, ("{url401}", "401")),
    Case("sweep-concurrency-zero", ["sweep", "--url", "{closed}", "--concurrency", "0"], None, ("sweep_concurrency",)),
    Case("load-rates-negative", ["load", "--baseline-url", "{closed}", "--spec-url", "{closed}", "--rates", "-1"],
         None, ("rates",)),
    Case("load-seed-negative", ["load", "--baseline-url", "{closed}", "--spec-url", "{closed}", "--seed", "-3"],
         None, ("seed",)),
    Case("lossless-alpha-high", ["lossless", "--baseline-url", "{closed}", "--spec-url", "{closed}", "--alpha", "2"],
         None, ("lossless_alpha",)),
    Case("sweep-url-space", ["sweep", "--url", "http://a b:8000"], None, ("space",)),
    # -- engine -------------------------------------------------------------------------------
    Case("engine-port-negative", ["engine", "start", "--port", "-5"], None, ("port",)),
    Case("engine-kv-negative", ["engine", "start", "--kv-cache-gib", "-1"], None, ("kv",)),
    # -- second pass: new mistakes of the same kinds ------------------------------------------
    Case("report-a-file", ["report", "{d}/f.txt"], _write("f.txt", "x"), ("f.txt",)),
    Case("report-bad-override", ["report", "{d}/r", "-p", "expected_peak_concurrency=0"], _write("r/run.json", RUN_JSON),
         ("expected_peak_concurrency",)),
    Case("resume-missing", ["run", "--resume", "{d}/gone"], None, ("gone",)),
    Case("resume-corrupt", ["run", "--resume", "{d}/r"], _write("r/run.json", "{"), ("run.json",)),
    Case("only-unknown-step", _run("--only", "99"), None, ("99",)),
    Case("seed-overflow", _run("-p", "seed=1e400"), None, ("'seed'",)),
    Case("extra-args-numbers", _run("-p", "extra_server_args=[1, {a: 2}]"), None, ("extra_server_args",)),
    Case("profile-list-key", _run("--profile", "{d}/k.yaml"), _write("k.yaml", "? [a, b]\n: 1\n"), ("k.yaml",)),
    Case("profile-binary", _run("--profile", "{d}/b.yaml"), _write("b.yaml", bytes(range(256))), ("b.yaml",)),
    Case("url-bad-ipv6", _run("-p", "mode=external", "-p", "spec_url=http://[::1:8000"), None, ("spec_url",)),
    Case("prompts-a-directory", _run("--only", "50", "-p", "workload={d}/pd"), _write("pd/x.jsonl", '{"prompt": "a"}\n'),
         ("pd",)),
    Case("prompts-prompt-a-number", _run("--only", "50", "-p", "workload={d}/n.jsonl"), _write("n.jsonl", '{"prompt": 5}\n'),
         ("n.jsonl",)),
    Case("memory-tp-zero", ["memory", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM", "--tp", "0"], None, ("tp",)),
    Case("memory-max-len-zero", ["memory", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM", "--max-model-len", "0"],
         None, ("max",)),
    Case("memory-util-nan", ["memory", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM", "--gpu-memory-utilization", "nan"],
         None, ("utilization",)),
    Case("memory-config-a-directory", ["memory", "--target", "{d}/m", "--gpu", "H100-SXM"], _write("m/config.json/x", "{}"),
         ("config.json",)),
    Case("memory-heads-float", ["memory", "--target", "{d}/m", "--gpu", "H100-SXM"],
         _model("m", {**GOOD_CONFIG, "num_attention_heads": 4.5}), ("num_attention_heads",)),
    Case("drafts-ratio-nan", ["drafts", "--target", "Llama-3.1-70B", "--ratio-low", "nan"], None, ("ratio",)),
    Case("sweep-temperature-nan", ["sweep", "--url", "{closed}", "--temperatures", "nan"], None, ("temperatures",)),
    Case("load-concurrency-text", ["load", "--baseline-url", "{closed}", "--spec-url", "{closed}", "--concurrency", "1,a"],
         None, ("concurrencies",)),
    Case("params-unknown", ["params", "nosuch"], None, ("nosuch",)),
    Case("engine-port-too-big", ["engine", "start", "--port", "70000"], None, ("70000",)),
    Case("lab-port-negative", ["lab", "{d}/w", "--port", "-1"], None, ("port",)),
]


ACCEPTED = "BAD-INPUT-ACCEPTED"  # run_in_process: the input passed every check and a run would have started


def checksums(root: Path) -> dict[str, str]:
    """sha256 of every file under root (relative path -> digest)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


class _Unauthorized(http.server.BaseHTTPRequestHandler):
    def _deny(self):
        body = b'{"error": "Unauthorized"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _deny

    def log_message(self, *args):  # quiet
        pass


@contextlib.contextmanager
def local_urls() -> Iterator[dict[str, str]]:
    """``url401``: a loopback server answering 401 to everything; ``closed``: a loopback port nobody listens on."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unauthorized)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    try:
        yield {"url401": f"http://127.0.0.1:{server.server_address[1]}", "closed": f"http://127.0.0.1:{closed}"}
    finally:
        server.shutdown()
        server.server_close()


def fill(text: str, d: Path, urls: dict[str, str]) -> str:
    return text.replace("{d}", str(d)).replace("{url401}", urls["url401"]).replace("{closed}", urls["closed"])


@dataclass
class Outcome:
    case: str
    returncode: int
    stderr: str
    error_lines: int
    traceback: bool
    files_changed: list[str]
    missing: list[str]

    @property
    def ok(self) -> bool:
        return (self.returncode != 0 and self.error_lines == 1 and not self.traceback
                and not self.files_changed and not self.missing and ACCEPTED not in self.stderr)


def judge(case: Case, d: Path, urls: dict[str, str], before: dict[str, str], returncode: int, stderr: str) -> Outcome:
    after = checksums(d)
    changed = sorted(k for k in before if after.get(k) != before[k])
    created = sorted(k for k in after if k not in before)
    missing = [n for n in (fill(x, d, urls) for x in case.needles) if n not in stderr]
    return Outcome(case.name, returncode, stderr,
                   sum(1 for line in stderr.splitlines() if line.startswith("error:")),
                   "Traceback" in stderr, changed + [f"+{c}" for c in created], missing)


def prepare(case: Case, d: Path) -> dict[str, str]:
    d.mkdir(parents=True, exist_ok=True)
    if case.setup:
        case.setup(d)
    return checksums(d)


def run_in_process(case: Case, d: Path, urls: dict[str, str]) -> Outcome:
    """The case through ``playbook.cli.main`` in this process (stderr captured)."""
    import io
    import os
    from contextlib import redirect_stderr, redirect_stdout
    from unittest import mock

    from playbook.cli import main

    def refuse(*args, **kwargs):
        raise RuntimeError(ACCEPTED)

    before = prepare(case, d)
    err, out = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in case.env}
    os.environ.update(case.env)
    try:
        with redirect_stderr(err), redirect_stdout(out), mock.patch("playbook.runner.new_run_dir", refuse), \
                mock.patch("playbook.engine.start_engine", refuse):
            rc = main([fill(a, d, urls) for a in case.argv])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return judge(case, d, urls, before, rc, err.getvalue())


def run_subprocess(case: Case, d: Path, urls: dict[str, str], python: str, timeout_s: float = 300) -> Outcome:
    """The case through the real program (``python -m playbook``), as a user runs it."""
    import os
    import subprocess

    before = prepare(case, d)
    env = {**os.environ, **case.env}
    env.pop("PLAYBOOK_DEBUG", None)
    res = subprocess.run([python, "-m", "playbook", *[fill(a, d, urls) for a in case.argv]], cwd=d, env=env,
                         capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    return judge(case, d, urls, before, res.returncode, res.stderr)
