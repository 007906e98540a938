"""`playbook engine start|stop|status|info`: manage the embedded vLLM server (the tiny pair)."""

from __future__ import annotations

import argparse
import re
import sys

from playbook.commands._common import print_json

NAME = "engine"
HELP = "start, stop and inspect the embedded vLLM server that serves the shipped tiny model pair"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="engine_command", metavar="ACTION", required=True)
    start = sub.add_parser("start", help="start an embedded server; prints JSON {url, pid, log, ...} once healthy",
                           description="Start an embedded vLLM server (detached: it keeps running after this "
                                       "command) and print JSON with url, pid, log, model, speculative_config.")
    start.add_argument("--speculative", choices=["none", "draft_model", "ngram"], default="none",
                       help="speculative method (default: none)")
    start.add_argument("--num-speculative-tokens", type=int, default=4, metavar="K", help="tokens proposed per step")
    start.add_argument("--port", type=int, default=None, metavar="N", help="port (default: a free one)")
    start.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    start.add_argument("--kv-cache-gib", type=float, default=1.0, help="KV cache space in GiB")
    start.add_argument("--max-model-len", type=int, default=1024, help="max context length")
    start.add_argument("--timeout", type=float, default=300, help="seconds to wait for /health")

    stop = sub.add_parser("stop", help="stop the engine on a port, or all engines",
                          description="Stop engines started by `playbook engine start` (the whole process group).")
    group = stop.add_mutually_exclusive_group()
    group.add_argument("--port", type=int, metavar="N", help="the engine's port")
    group.add_argument("--all", action="store_true", help="every running engine")

    status = sub.add_parser("status", help="list running engines", description="List running engines.")
    status.add_argument("--json", action="store_true", help="print JSON")

    info = sub.add_parser("info", help="tiny target and draft paths, vLLM version",
                          description="Show the shipped tiny model pair's paths and the installed vLLM.")
    info.add_argument("--json", action="store_true", help="print JSON")


HOST_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


def valid_host(host: str) -> bool:
    """An IPv4/IPv6 address or an RFC 1123 host name (what vLLM's --host can bind to)."""
    import ipaddress

    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return bool(HOST_NAME.fullmatch(host))


def check_start_arguments(args: argparse.Namespace) -> None:
    """The same ranges as ``playbook run`` (the shared parameter model), and a real port, before starting."""
    from playbook.helpers.errors import ParameterError
    from playbook.helpers.params import PreflightParams, validate_params

    if args.port is not None and not 1 <= args.port <= 65535:
        raise ParameterError(f"--port {args.port} is not a TCP port", "give a port in 1..65535, or leave --port out")
    if not valid_host(args.host):
        raise ParameterError(f"--host {args.host[:80]!r} is not an IP address or a host name to bind to",
                             "give e.g. --host 127.0.0.1 (the default), or leave --host out")
    validate_params(PreflightParams, {"num_speculative_tokens": args.num_speculative_tokens,
                                      "kv_cache_gib": args.kv_cache_gib, "max_model_len": args.max_model_len,
                                      "server_start_timeout_s": args.timeout})
    if args.kv_cache_gib <= 0:
        raise ParameterError(f"--kv-cache-gib {args.kv_cache_gib:g} leaves no KV cache", "give e.g. --kv-cache-gib 1")


def run(args: argparse.Namespace) -> int:
    from playbook import engine

    action = args.engine_command
    if action == "start":
        check_start_arguments(args)
        rec = engine.start_engine(args.speculative, args.num_speculative_tokens, args.port, args.kv_cache_gib,
                                  args.max_model_len, args.host, args.timeout)
        print_json({"url": rec.url, "pid": rec.pid, "log": rec.log, "model": rec.model,
                    "port": rec.port, "speculative_config": rec.speculative_config})
        return 0
    if action == "stop":
        stopped = engine.stop_engines(port=args.port, all_=args.all)
        print_json({"stopped": [{"port": r.port, "pid": r.pid, "url": r.url} for r in stopped]})
        return 0
    if action == "status":
        engines = engine.engine_status()
        if args.json:
            print_json(engines)
        elif not engines:
            print("no engine running (start one with `playbook engine start`)")
        else:
            for e in engines:
                method = (e["speculative_config"] or {}).get("method", "none")
                print(f"{e['url']}  pid {e['pid']}  speculative {method}  "
                      f"{'healthy' if e['healthy'] else 'NOT healthy'}  log {e['log']}")
        return 0
    if action == "info":
        from playbook.helpers.embedded import tiny_pair
        from playbook.helpers.specconfig import vllm_version

        pair = tiny_pair(check=False)
        data = {"target": str(pair.target), "draft": str(pair.draft),
                "target_exists": (pair.target / "config.json").exists(),
                "draft_exists": (pair.draft / "config.json").exists(),
                "vllm_version": vllm_version(), "python": sys.executable,
                "registry": str(engine.registry_dir())}
        if args.json:
            print_json(data)
        else:
            for k, v in data.items():
                print(f"{k}: {v}")
        return 0
    return 2
