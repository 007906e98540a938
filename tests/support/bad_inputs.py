"""Issue 17: the table of mistaken or hostile inputs a new user might give the CLI.

Each :class:`Case` is an argv (``{d}`` is a scratch directory, ``{url401}`` / ``{closed}`` two local
URLs), the files it needs, and the words its error must hold. Every case must end with a non-zero
exit, exactly one ``error:`` line followed by a ``fix:`` line, no traceback, and every file already
there unchanged (checksums); nothing created either.
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


# third pass: files and argv pieces many cases share
_VLLM_BENCH = json.loads((Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "import" / "vllm_bench"
                          / "baseline.json").read_text())
_VB_N = len(_VLLM_BENCH["ttfts"])  # requests in the fixture: every per-request list has this length


def _vb(**changes: object) -> str:
    """The vllm bench serve fixture (tests/unit/fixtures/import), with some fields changed."""
    return json.dumps({**_VLLM_BENCH, **changes})


def _vb_pair(baseline: str) -> Setup:
    return _all(_write("b.json", baseline), _write("s.json", _vb()))


def _run_json(obj: object) -> Setup:
    return _write("r/run.json", json.dumps(obj))


_IMPORT = ["import", "vllm-bench", "{d}/b.json", "{d}/s.json", "--run-dir", "{d}/out"]
_MEMORY = ["memory", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM"]
_PREDICT = ["predict", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM"]
_LOAD = ["load", "--baseline-url", "{closed}", "--spec-url", "{closed}"]


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
         ("--gpu-memory-gib -80",)),
    Case("memory-gpu-gib-nan", ["memory", "--target", "Llama-3.1-8B", "--gpu-memory-gib", "nan"], None,
         ("--gpu-memory-gib nan",)),
    Case("memory-gpu-gib-inf", ["memory", "--target", "Llama-3.1-8B", "--gpu-memory-gib", "inf"], None,
         ("--gpu-memory-gib inf",)),
    Case("memory-context-negative", ["memory", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM", "--context-length", "-5"],
         None, ("--context-length -5",)),
    Case("memory-tp-not-dividing-heads", ["memory", "--target", "Llama-3.1-70B", "--gpu", "H100-SXM", "--tp", "3"],
         None, ("64", "--tp 3", "--tp 1, 2, 4, 8 or 16")),
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
    # -- third pass (issue 17, "done when"): more new mistakes of the same kinds ----------------
    # -- profiles
    Case("profile-empty-file", _run("--profile", "{d}/e.yaml"), _write("e.yaml", ""), ("e.yaml",)),
    Case("profile-only-comments", _run("--profile", "{d}/c.yaml"), _write("c.yaml", "# nothing here\n"), ("c.yaml",)),
    Case("profile-typo-key", _run("--profile", "{d}/t.yaml"), _write("t.yaml", "concurrencys: [1, 4]\n"), ("concurrencys", "concurrencies")),
    Case("profile-scalar", _run("--profile", "{d}/s.yaml"), _write("s.yaml", "just some text\n"), ("mapping",)),
    Case("profile-int-key", _run("--profile", "{d}/i.yaml"), _write("i.yaml", "1: 2\n"), ("i.yaml",)),
    Case("profile-levels-string", _run("--profile", "{d}/l.yaml"), _write("l.yaml", "concurrencies: many\n"), ("concurrencies",)),
    Case("profile-levels-mapping", _run("--profile", "{d}/l.yaml"), _write("l.yaml", "concurrencies: {a: 1}\n"), ("concurrencies",)),
    Case("profile-null-value", _run("--profile", "{d}/n.yaml"), _write("n.yaml", "max_tokens:\n"), ("max_tokens",)),
    Case("profile-bool-as-string", _run("--profile", "{d}/b.yaml"), _write("b.yaml", "find_saturation: maybe\n"), ("find_saturation",)),
    Case("profile-huge-int", _run("--profile", "{d}/h.yaml"), _write("h.yaml", "max_model_len: 100000000000000000000000000000\n"), ("max_model_len",)),
    Case("profile-zero-k", _run("--profile", "{d}/z.yaml"), _write("z.yaml", "num_speculative_tokens: 0\n"), ("num_speculative_tokens",)),
    Case("profile-util-nan", _run("--profile", "{d}/u.yaml"), _write("u.yaml", "gpu_memory_utilization: .nan\n"), ("gpu_memory_utilization",)),
    Case("profile-prod-temp-inf", _run("--profile", "{d}/t.yaml"), _write("t.yaml", "production_temperature: .inf\n"), ("production_temperature",)),
    Case("profile-yaml-syntax", _run("--profile", "{d}/y.yaml"), _write("y.yaml", "seed: [1, 2\nmode: embedded\n"), ("y.yaml", "line")),
    Case("profile-tab-indent", _run("--profile", "{d}/y.yaml"), _write("y.yaml", "seed: 1\n\tmode: embedded\n"), ("y.yaml",)),
    Case("profile-unknown-name", _run("--profile", "nosuch-profile"), None, ("nosuch-profile",)),
    Case("profile-description-list", _run("--profile", "{d}/d.yaml"), _write("d.yaml", "description: [1]\nseed: -1\n"), ("seed",)),
    Case("profile-checkpoints-string", _run("--profile", "{d}/c.yaml"), _write("c.yaml", "target_checkpoints: int8\n"), ("target_checkpoints",)),
    Case("profile-mode-case", _run("--profile", "{d}/m.yaml"), _write("m.yaml", "mode: Embedded\n"), ("mode",)),
    Case("profile-binary-gz", _run("--profile", "{d}/p.yaml.gz"), _write("p.yaml.gz", b"\x1f\x8b\x08\x00" + bytes(40)), ("p.yaml.gz",)),
    # -- -p NAME=VALUE overrides
    Case("override-no-equals", _run("-p", "concurrencies"), None, ("concurrencies",)),
    Case("override-empty-name", _run("-p", "=5"), None, ("=5",)),
    Case("override-typo", _run("-p", "concurency=4"), None, ("concurency", "concurrencies")),
    Case("override-yaml-broken", _run("-p", "concurrencies=[1,"), None, ("concurrencies",)),
    Case("override-float-for-int", _run("-p", "max_tokens=1.5"), None, ("max_tokens",)),
    Case("override-k-true", _run("-p", "num_speculative_tokens=true"), None, ("num_speculative_tokens",)),
    Case("override-empty-temperatures", _run("-p", "temperatures="), None, ("temperatures",)),
    Case("override-empty-workload", _run("-p", "workload="), None, ("workload",)),
    Case("override-unknown-class", _run("--only", "50", "-p", "workload=nosuchclass"), None, ("nosuchclass",)),
    Case("override-workload-option", _run("--only", "50", "-p", "workload=structured[in=abc]"), None, ("'abc'",)),
    Case("override-mix-temp-high", _run("--only", "50", "-p", "workload=structured:0.5@9,code:0.5"), None, ("9",)),
    Case("override-mix-share-negative", _run("--only", "50", "-p", "workload=structured:-1,code:1"), None, ("-1",)),
    Case("override-candidate-bad-k", _run("-p", "candidates=eagle:abc"), None, ("eagle:abc",)),
    Case("override-candidate-window", _run("-p", "candidates=ngram:3:5-2"), None, ("ngram:3:5-2",)),
    Case("override-slo-kind", _run("-p", "slo_kind=latency"), None, ("slo_kind",)),
    Case("override-seed-huge", _run("-p", "seed=99999999999999999999999999"), None, ("seed",)),
    Case("override-max-tokens-huge", _run("-p", "max_tokens=10000000000000"), None, ("max_tokens",)),
    Case("override-k-huge", _run("-p", "num_speculative_tokens=1000"), None, ("num_speculative_tokens",)),
    # -- URLs
    Case("url-no-scheme", _run("-p", "mode=external", "-p", "spec_url=localhost:8000"), None, ("spec_url", "http://")),
    Case("url-port-too-big", _run("-p", "mode=external", "-p", "spec_url=http://127.0.0.1:99999"), None, ("99999",)),
    Case("url-port-not-number", _run("-p", "mode=external", "-p", "baseline_url=http://h:80a"), None, ("baseline_url",)),
    Case("url-metrics-urls-scheme", _run("-p", "metrics_source=pods", "-p", "metrics_urls=ftp://x"), None, ("metrics_urls",)),
    Case("url-prometheus-space", _run("-p", "metrics_source=prometheus", "-p", "prometheus_url=http://p m:9090"), None, ("prometheus_url",)),
    Case("url-zero-width-space", _run("-p", "mode=external", "-p", "spec_url=http://127.0.0.1\u200b:8000"), None, ("U+200B",)),
    Case("url-bad-idna", _run("-p", "mode=external", "-p", "spec_url=http://gpü..x:8000"), None, ("gpü..x",)),
    Case("url-fullwidth-port", _run("-p", "mode=external", "-p", "spec_url=http://127.0.0.1:\uff18\uff10\uff10\uff10"), None, ("spec_url",)),
    Case("url-external-no-urls", _run("-p", "mode=external"), None, ("external",)),
    # -- --only / --resume / --runs-dir
    Case("only-typo", _run("--only", "50_lod"), None, ("50_lod",)),
    Case("runs-dir-a-file", ["run", "--runs-dir", "{d}/f.txt"], _write("f.txt", "x"), ("f.txt",)),
    Case("resume-a-file", ["run", "--resume", "{d}/f.txt"], _write("f.txt", "x"), ("f.txt",)),
    Case("resume-run-json-list", ["run", "--resume", "{d}/r"], _write("r/run.json", "[1, 2]"), ("run.json",)),
    Case("resume-run-json-empty-object", ["run", "--resume", "{d}/r"], _write("r/run.json", "{}"), ("run.json",)),
    Case("resume-bad-override", ["run", "--resume", "{d}/r", "-p", "seed=-4"], _write("r/run.json", RUN_JSON), ("seed",)),
    # -- report on odd run directories
    Case("report-run-json-empty-object", ["report", "{d}/r"], _write("r/run.json", "{}"), ("run.json",)),
    Case("report-run-json-empty-file", ["report", "{d}/r"], _write("r/run.json", ""), ("run.json",)),
    Case("report-run-json-binary", ["report", "{d}/r"], _write("r/run.json", bytes(range(256))), ("run.json",)),
    Case("report-parameters-a-list", ["report", "{d}/r"], _run_json({"run_id": "r", "created_at": "2026-01-01T00:00:00Z", "profile": "p", "parameters": [1], "steps": []}), ("run.json",)),
    Case("report-steps-a-string", ["report", "{d}/r"], _run_json({"run_id": "r", "created_at": "2026-01-01T00:00:00Z", "profile": "p", "parameters": {}, "steps": "50_load"}), ("run.json",)),
    Case("report-run-json-a-directory", ["report", "{d}/r"], _write("r/run.json/x", "{}"), ("run.json",)),
    Case("report-unknown-override", ["report", "{d}/r", "-p", "acceptance_no_go_belw=0.5"], _write("r/run.json", RUN_JSON), ("acceptance_no_go_belw",)),
    Case("report-measurement-override", ["report", "{d}/r", "-p", "concurrencies=1,2"], _write("r/run.json", RUN_JSON), ("concurrencies",)),
    Case("report-threshold-nan", ["report", "{d}/r", "-p", "acceptance_no_go_below=.nan"], _write("r/run.json", RUN_JSON), ("acceptance_no_go_below",)),
    # -- memory
    Case("memory-unknown-model", ["memory", "--target", "Llama-9-Giant", "--gpu", "H100-SXM"], None, ("Llama-9-Giant",)),
    Case("memory-no-target", ["memory", "--gpu", "H100-SXM"], None, ("--target",)),
    Case("memory-unknown-gpu", ["memory", "--target", "Llama-3.1-8B", "--gpu", "H1000"], None, ("H1000",)),
    Case("memory-profile-missing", ["memory", "--profile", "{d}/missing.yaml"], None, ("missing.yaml",)),
    Case("memory-max-len-huge", _MEMORY + ["--max-model-len", "1000000000000000000000000"], None, ("max_model_len",)),
    Case("memory-block-size-negative", _MEMORY + ["--block-size", "-16"], None, ("--block-size -16",)),
    Case("memory-k-negative", _MEMORY + ["--draft", "Llama-3.2-1B", "--num-speculative-tokens", "-1"], None, ("num_speculative_tokens",)),
    Case("memory-util-above-one", _MEMORY + ["--gpu-memory-utilization", "1.5"], None, ("--gpu-memory-utilization 1.5",)),
    Case("memory-reserve-nan", _MEMORY + ["--reserve-gib", "nan"], None, ("--reserve-gib nan",)),
    Case("memory-batched-negative", _MEMORY + ["--max-num-batched-tokens", "-1"], None, ("--max-num-batched-tokens -1",)),
    Case("memory-log-missing", _MEMORY + ["--reserve-from-log", "{d}/missing.log"], None, ("missing.log",)),
    Case("memory-log-binary", _MEMORY + ["--reserve-from-log", "{d}/v.log"], _write("v.log", bytes(range(256)) * 4), ("v.log",)),
    Case("memory-log-no-kv-line", _MEMORY + ["--compare-log", "{d}/v.log"], _write("v.log", "INFO started\n"), ("v.log",)),
    Case("memory-log-a-directory", _MEMORY + ["--compare-log", "{d}/logs"], _write("logs/x", "x"), ("logs",)),
    Case("memory-config-missing-heads", ["memory", "--target", "{d}/m", "--gpu", "H100-SXM"],
         # a model type transformers does not know: nothing fills the field in (a known one gets its default, noted)
         _model("m", {**{k: v for k, v in GOOD_CONFIG.items() if k != "num_attention_heads"},
                      "model_type": "house-arch"}), ("num_attention_heads",)),
    Case("memory-config-empty-file", ["memory", "--target", "{d}/m", "--gpu", "H100-SXM"], _model("m", raw=b""), ("config.json",)),
    Case("memory-config-layers-bool", ["memory", "--target", "{d}/m", "--gpu", "H100-SXM"],
         _model("m", {**GOOD_CONFIG, "num_hidden_layers": True}), ("num_hidden_layers",)),
    Case("memory-config-kv-heads-not-dividing", ["memory", "--target", "{d}/m", "--gpu", "H100-SXM"],
         _model("m", {**GOOD_CONFIG, "num_key_value_heads": 3}), ("num_key_value_heads",)),
    Case("memory-config-vocab-negative", ["memory", "--target", "{d}/m", "--gpu", "H100-SXM"],
         _model("m", {**GOOD_CONFIG, "vocab_size": -5}), ("vocab_size",)),
    Case("memory-config-hidden-huge", ["memory", "--target", "{d}/m", "--gpu", "H100-SXM"],
         _model("m", {**GOOD_CONFIG, "hidden_size": 10**30}), ("hidden_size",)),
    Case("memory-config-nan", ["memory", "--target", "{d}/m", "--gpu", "H100-SXM"],
         _model("m", raw=b'{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": NaN, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 256}'), ("hidden_size",)),
    Case("memory-safetensors-truncated", ["memory", "--target", "{d}/m", "--gpu", "H100-SXM"],
         _model("m", extra={"model.safetensors": struct.pack("<Q", 100) + b'{"w": '}), ("model.safetensors",)),
    Case("memory-draft-missing-dir", _MEMORY + ["--draft", "{d}/nodraft"], None, ("nodraft",)),
    # -- drafts
    Case("drafts-candidates-empty", ["drafts", "--target", "Llama-3.1-70B", "--candidates", ",,,"], None, ("--candidates",)),
    Case("drafts-candidate-missing-dir", ["drafts", "--target", "Llama-3.1-70B", "--candidates", "{d}/nope"], None, ("nope",)),
    Case("drafts-ratio-negative", ["drafts", "--target", "Llama-3.1-70B", "--ratio-low", "-1"], None, ("--ratio-low -1",)),
    Case("drafts-ratio-inf", ["drafts", "--target", "Llama-3.1-70B", "--ratio-high", "inf"], None, ("ratio_high",)),
    Case("drafts-target-a-file", ["drafts", "--target", "{d}/f.txt"], _write("f.txt", "x"), ("f.txt",)),
    # -- predict
    Case("predict-acceptance-above-one", _PREDICT + ["--acceptance", "1.5"], None, ("acceptance",)),
    Case("predict-acceptance-nan", _PREDICT + ["--acceptance", "nan"], None, ("acceptance",)),
    Case("predict-per-position-text", _PREDICT + ["--acceptance-per-position", "0.8,abc"], None, ("0.8,abc",)),
    Case("predict-per-position-empty", _PREDICT + ["--acceptance-per-position", ","], None, ("--acceptance-per-position",)),
    Case("predict-gpu-family-name", ["predict", "--target", "Llama-3.1-8B", "--gpu", "H100", "--acceptance-length", "2"],
         None, ("H100-SXM or H100-PCIe",)),
    Case("predict-length-below-one", _PREDICT + ["--acceptance-length", "0.5"], None, ("0.5",)),
    Case("predict-batch-zero", _PREDICT + ["--acceptance", "0.7", "--batch-sizes", "0,1"], None, ("--batch-sizes 0,1",)),
    Case("predict-k-zero", _PREDICT + ["--acceptance", "0.7", "-k", "0"], None, ("-k 0",)),
    Case("predict-tpot-one-value", _PREDICT + ["--acceptance", "0.7", "--tpot-ms", "10"], None, ("--tpot-ms",)),
    Case("predict-tpot-at-text", _PREDICT + ["--acceptance", "0.7", "--tpot-ms", "10,8", "--tpot-at", "4,a,b"], None, ("4,a,b",)),
    Case("predict-num-gpus-zero", _PREDICT + ["--acceptance", "0.7", "--num-gpus", "0"], None, ("--num-gpus 0",)),
    Case("predict-tp-negative", _PREDICT + ["--acceptance", "0.7", "--tp", "-2"], None, ("--tp -2",)),
    Case("predict-unknown-gpu", ["predict", "--target", "Llama-3.1-8B", "--gpu", "TPU9", "--acceptance", "0.7"], None, ("TPU9",)),
    Case("predict-unknown-method", _PREDICT + ["--acceptance", "0.7", "--method", "medusa2"], None, ("medusa2",)),
    Case("predict-step-negative", ["predict", "--target", "Llama-3.1-8B", "--acceptance", "0.7", "--target-step-ms", "-1", "--per-token-ms", "0.1"], None, ("--target-step-ms -1",)),
    Case("predict-precision-unknown", _PREDICT + ["--acceptance", "0.7", "--precision", "fp3"], None, ("fp3",)),
    # -- params
    Case("params-unknown-number", ["params", "45"], None, ("45",)),
    Case("params-empty-name", ["params", ""], None, ("empty notebook name",)),
    Case("params-not-a-notebook", ["params", "{d}/x.ipynb"], _write("x.ipynb", "not json"), ("x.ipynb",)),
    Case("params-notebook-no-parameters", ["params", "{d}/n.ipynb"], _write("n.ipynb", json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})), ("n.ipynb",)),
    Case("params-path-traversal", ["params", "../../etc/passwd"], None, ("passwd",)),
    # -- import
    Case("import-odd-files", ["import", "vllm-bench", "{d}/b.json", "--run-dir", "{d}/out"], _write("b.json", _vb()), ("pairs",)),
    Case("import-empty-file", _IMPORT, _vb_pair(""), ("b.json",)),
    Case("import-truncated", _IMPORT, _vb_pair(_vb()[: len(_vb()) // 2]), ("b.json",)),
    Case("import-binary", _IMPORT, _all(_write("b.json", bytes(range(256))), _write("s.json", _vb())), ("b.json",)),
    Case("import-json-list", _IMPORT, _vb_pair("[1, 2]"), ("b.json",)),
    Case("import-ttfts-strings", _IMPORT, _vb_pair(_vb(ttfts=["a"] * _VB_N)), ("b.json", "'ttfts'")),
    Case("import-itls-numbers", _IMPORT, _vb_pair(_vb(itls=[1] * _VB_N)), ("b.json", "'itls'")),
    Case("import-concurrency-text", _IMPORT, _vb_pair(_vb(max_concurrency="lots")), ("b.json", "'max_concurrency'")),
    Case("import-duration-text", _IMPORT, _vb_pair(_vb(duration="long")), ("b.json", "'duration'")),
    Case("import-draft-tokens-no-rate", _IMPORT, _vb_pair(_vb(spec_decode_draft_tokens=10)), ("b.json", "'spec_decode_acceptance_rate'")),
    Case("import-output-lens-null", _IMPORT, _vb_pair(_vb(output_lens=[None] * _VB_N)), ("b.json", "'output_lens'")),
    Case("import-errors-numbers", _IMPORT, _vb_pair(_vb(errors=[0] * _VB_N)), ("b.json", "'errors'")),
    Case("import-a-directory", _IMPORT, _all(_write("b.json/x", "{}"), _write("s.json", _vb())), ("b.json",)),
    Case("import-temperature-high", _IMPORT + ["--temperature", "5"], _vb_pair(_vb()), ("temperature",)),
    Case("import-temperature-nan", _IMPORT + ["--temperature", "nan"], _vb_pair(_vb()), ("temperature",)),
    Case("import-k-negative", _IMPORT + ["--num-speculative-tokens", "-1"], _vb_pair(_vb()), ("--num-speculative-tokens -1",)),
    Case("import-existing-run", _IMPORT[:-2] + ["--run-dir", "{d}/r"], _all(_vb_pair(_vb()), _write("r/run.json", RUN_JSON), _write("r/artifacts/50_load.json", "{}")), ("--force",)),
    Case("guidellm-empty-object", ["import", "guidellm", "{d}/b.json", "{d}/s.json", "--run-dir", "{d}/out"], _all(_write("b.json", "{}"), _write("s.json", "{}")), ("b.json",)),
    Case("guidellm-benchmarks-string", ["import", "guidellm", "{d}/b.json", "{d}/s.json", "--run-dir", "{d}/out"], _all(_write("b.json", '{"benchmarks": "x"}'), _write("s.json", '{"benchmarks": "x"}')), ("b.json",)),
    Case("guidellm-benchmark-not-object", ["import", "guidellm", "{d}/b.json", "{d}/s.json", "--run-dir", "{d}/out"], _all(_write("b.json", '{"benchmarks": [1]}'), _write("s.json", '{"benchmarks": [1]}')), ("b.json",)),
    Case("aiperf-empty-dir", ["import", "aiperf", "{d}/b", "{d}/s", "--run-dir", "{d}/out"], _all(_write("b/.keep", ""), _write("s/.keep", "")), ("b",)),
    Case("aiperf-jsonl-line-list", ["import", "aiperf", "{d}/b.jsonl", "{d}/s.jsonl", "--run-dir", "{d}/out"], _all(_write("b.jsonl", "[1]\n"), _write("s.jsonl", "[1]\n")), ("b.jsonl",)),
    Case("aiperf-jsonl-truncated", ["import", "aiperf", "{d}/b.jsonl", "{d}/s.jsonl", "--run-dir", "{d}/out"], _all(_write("b.jsonl", '{"metadata": {"x_request_id": "1"'), _write("s.jsonl", "{}\n")), ("b.jsonl",)),
    # -- sweep / load / lossless
    Case("sweep-url-no-scheme", ["sweep", "--url", "localhost:8000"], None, ("localhost:8000",)),
    Case("sweep-url-port-range", ["sweep", "--url", "http://127.0.0.1:70000"], None, ("70000",)),
    Case("sweep-url-empty", ["sweep", "--url", ""], None, ("url",)),
    Case("sweep-requests-zero", ["sweep", "--url", "{closed}", "--requests", "0"], None, ("requests",)),
    Case("sweep-max-tokens-negative", ["sweep", "--url", "{closed}", "--max-tokens", "-1"], None, ("max_tokens",)),
    Case("sweep-timeout-zero", ["sweep", "--url", "{closed}", "--timeout", "0"], None, ("timeout",)),
    Case("sweep-prod-temp-high", ["sweep", "--url", "{closed}", "--production-temperature", "3"], None, ("production_temperature",)),
    Case("sweep-temperatures-text", ["sweep", "--url", "{closed}", "--temperatures", "0,warm"], None, ("warm",)),
    Case("sweep-prompts-empty", ["sweep", "--url", "{closed}", "--workload", "{d}/e.jsonl", "--run-dir", "{d}/out"], _write("e.jsonl", ""), ("e.jsonl",)),
    Case("sweep-prompts-blank-lines", ["sweep", "--url", "{closed}", "--workload", "{d}/e.jsonl", "--run-dir", "{d}/out"], _write("e.jsonl", "\n\n  \n"), ("e.jsonl",)),
    Case("sweep-prompts-truncated", ["sweep", "--url", "{closed}", "--workload", "{d}/t.jsonl", "--run-dir", "{d}/out"], _write("t.jsonl", '{"prompt": "a"}\n{"prompt": "b'), ("t.jsonl",)),
    Case("sweep-prompts-binary", ["sweep", "--url", "{closed}", "--workload", "{d}/b.jsonl", "--run-dir", "{d}/out"], _write("b.jsonl", bytes(range(256))), ("b.jsonl",)),
    Case("sweep-prompts-empty-prompt", ["sweep", "--url", "{closed}", "--workload", "{d}/e.jsonl", "--run-dir", "{d}/out"], _write("e.jsonl", '{"prompt": ""}\n'), ("e.jsonl",)),
    Case("sweep-prompts-messages-string", ["sweep", "--url", "{closed}", "--workload", "{d}/m.jsonl", "--run-dir", "{d}/out"], _write("m.jsonl", '{"messages": "hello"}\n'), ("m.jsonl",)),
    Case("sweep-prompts-schema-not-object", ["sweep", "--url", "{closed}", "--workload", "{d}/j.jsonl", "--run-dir", "{d}/out"], _write("j.jsonl", '{"prompt": "a", "json_schema": 5}\n'), ("j.jsonl",)),
    Case("sweep-prompts-message-no-content", ["sweep", "--url", "{closed}", "--workload", "{d}/m.jsonl", "--run-dir", "{d}/out"], _write("m.jsonl", '{"messages": [{"role": "user"}]}\n'), ("m.jsonl", "'content'")),
    Case("sweep-workload-separators", ["sweep", "--url", "{closed}", "--workload", ";"], None, ("workload",)),
    Case("sweep-run-dir-a-file", ["sweep", "--url", "{closed}", "--run-dir", "{d}/f.txt"], _write("f.txt", "x"), ("f.txt",)),
    Case("load-burstiness-zero", _LOAD + ["--load-shape", "gamma", "--burstiness", "0", "--rates", "1"], None, ("burstiness",)),
    Case("load-target-ci-zero", _LOAD + ["--target-ci", "0"], None, ("target_ci",)),
    Case("load-min-pairs-one", _LOAD + ["--min-pairs", "1"], None, ("min_round_pairs",)),
    Case("load-warmup-negative", _LOAD + ["--warmup", "-1"], None, ("warmup",)),
    Case("load-duration-nan", _LOAD + ["--duration", "nan"], None, ("duration",)),
    Case("load-temperature-low", _LOAD + ["--temperature", "-2"], None, ("temperature",)),
    Case("load-budget-inf", _LOAD + ["--level-budget", "inf"], None, ("level_time_budget",)),
    Case("load-concurrency-empty", _LOAD + ["--concurrency", ","], None, ("concurrencies",)),
    Case("load-url-no-scheme", ["load", "--baseline-url", "127.0.0.1:8000", "--spec-url", "{closed}"], None, ("127.0.0.1:8000",)),
    Case("lossless-temperature-high", ["lossless", "--baseline-url", "{closed}", "--spec-url", "{closed}", "--temperatures", "0,5"], None, ("temperatures",)),
    Case("lossless-requests-one", ["lossless", "--baseline-url", "{closed}", "--spec-url", "{closed}", "--requests", "1"], None, ("lossless_requests",)),
    Case("lossless-alpha-zero", ["lossless", "--baseline-url", "{closed}", "--spec-url", "{closed}", "--alpha", "0"], None, ("lossless_alpha",)),
    # -- engine
    Case("engine-k-zero", ["engine", "start", "--speculative", "draft_model", "--num-speculative-tokens", "0"], None, ("num_speculative_tokens",)),
    Case("engine-max-len-zero", ["engine", "start", "--max-model-len", "0"], None, ("max_model_len",)),
    Case("engine-timeout-negative", ["engine", "start", "--timeout", "-1"], None, ("timeout",)),
    Case("engine-timeout-nan", ["engine", "start", "--timeout", "nan"], None, ("timeout",)),
    Case("engine-kv-nan", ["engine", "start", "--kv-cache-gib", "nan"], None, ("kv",)),
    Case("engine-host-bad", ["engine", "start", "--host", "not a host"], None, ("not a host",)),
    Case("engine-stop-port-range", ["engine", "stop", "--port", "70000"], None, ("70000",)),
    Case("engine-stop-port-negative", ["engine", "stop", "--port", "-1"], None, ("-1",)),
    Case("engine-port-text", ["engine", "start", "--port", "abc"], None, ("'abc'",)),
    # -- argparse: unknown command, flag, choice
    Case("cli-unknown-command", ["issues", "show", "17"], None, ("'issues'",)),
    Case("cli-unknown-flag", _run("--profle", "x.yaml"), None, ("--profle",)),
    Case("import-unknown-tool", ["import", "vllm_bench", "{d}/b.json", "{d}/s.json"], _vb_pair(_vb()), ("'vllm_bench'",)),
    Case("memory-tp-text", _MEMORY + ["--tp", "two"], None, ("'two'",)),
    # -- lab / init
    Case("lab-timeout-nan", ["lab", "{d}/w", "--startup-timeout", "nan"], None, ("startup-timeout",)),
    Case("lab-dir-a-file", ["lab", "{d}/f.txt"], _write("f.txt", "x"), ("f.txt",)),
    Case("lab-profile-unknown", ["lab", "{d}/w2", "--profile", "nosuch-profile"], None, ("nosuch-profile",)),
    Case("lab-profile-bad-value", ["lab", "{d}/w2", "--profile", "{d}/p.yaml"], _write("p.yaml", "seed: -1\n"), ("seed",)),
    Case("lab-port-too-big", ["lab", "{d}/w", "--port", "65536"], None, ("65536",)),
    Case("init-onto-a-file", ["init", "{d}/f.txt"], _write("f.txt", "x"), ("f.txt",)),
    Case("init-existing-workspace", ["init", "{d}/w"], _workspace, ("w",)),
    Case("init-under-a-file", ["init", "{d}/f.txt/ws"], _write("f.txt", "x"), ("f.txt",)),
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
    def has_fix(self) -> bool:
        """The error says what to do: a ``fix:`` line follows it."""
        return "\n  fix: " in self.stderr

    @property
    def ok(self) -> bool:
        return (self.returncode != 0 and self.error_lines == 1 and self.has_fix and not self.traceback
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
                mock.patch("playbook.engine.start_engine", refuse), mock.patch("playbook.commands.lab.run_pool", refuse):
            rc = main([fill(a, d, urls) for a in case.argv])
    except SystemExit as exc:  # argparse's usage error (exit 2), as the program exits
        rc = exc.code if isinstance(exc.code, int) else 1
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
