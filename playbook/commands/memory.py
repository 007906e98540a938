"""`playbook memory`: vLLM's memory budget for a target (and draft) on a GPU, without a GPU."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from playbook.commands._common import flag_problems, print_json
from playbook.helpers import gpus, memory, models, startup_log, steps
from playbook.helpers.errors import ParameterError
from playbook.helpers.params import MemoryParams, validate_params
from playbook.helpers.quantization import ALL_PRECISIONS

NAME = "memory"
HELP = "predict weights, KV cache tokens and max concurrency with and without the draft"
PRECISIONS = ALL_PRECISIONS
METHODS = ["none", "draft_model", "eagle", "eagle3", "mtp", "ngram", "suffix"]


# Profile parameter -> flag: `--profile` fills every flag left at its default from these.
PROFILE_KEYS = {"target_model": "target", "draft_model": "draft", "method": "method", "gpu": "gpu",
                "gpu_memory_gib": "gpu_memory_gib", "num_gpus": "num_gpus", "tensor_parallel_size": "tp",
                "pipeline_parallel_size": "pp",
                "target_quant": "target_quant", "draft_quant": "draft_quant", "kv_cache_dtype": "kv_cache_dtype",
                "max_model_len": "max_model_len", "context_length": "context_length",
                "gpu_memory_utilization": "gpu_memory_utilization", "reserve_gib": "reserve_gib",
                "kv_cache_gib": "kv_cache_gib", "num_speculative_tokens": "num_speculative_tokens"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="", metavar="YAML",
                   help="take the models, GPUs and memory settings from a profile (flags given here win)")
    p.add_argument("--target", help="local model dir, catalog name (see --list-models) or 'embedded'")
    p.add_argument("--draft", default="", help="draft model (dir, catalog name, 'embedded'); omit for none")
    p.add_argument("--method", choices=METHODS, default=None, help="speculative method (default: draft_model with --draft, else none)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--gpu", default="", help="GPU catalog name (see --list-gpus), or 'cpu' for the embedded engine")
    g.add_argument("--gpu-memory-gib", type=float, default=None, help="memory per GPU in GiB instead of a catalog GPU")
    p.add_argument("--num-gpus", type=int, default=0, help="GPUs on the node (default: --tp)")
    p.add_argument("--tp", type=int, default=1, help="tensor parallel size")
    p.add_argument("--pp", type=int, default=1, help="pipeline parallel size (the target's layers split over stages)")
    p.add_argument("--target-quant", choices=PRECISIONS, default="bf16", type=str.lower)
    p.add_argument("--draft-quant", choices=PRECISIONS, default="bf16", type=str.lower)
    p.add_argument("--kv-cache-dtype", choices=["auto", "fp8"], default="auto", type=str.lower)
    p.add_argument("--max-model-len", type=int, default=4096)
    p.add_argument("--context-length", type=int, default=None,
                   help="tokens per request for the concurrency figures, >= 1 (default: max-model-len)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--reserve-gib", type=float, default=-1.0, help="activation/CUDA-graph reserve per GPU (-1: estimate)")
    p.add_argument("--kv-cache-gib", type=float, default=0.0, help="fix the KV space (CPU backend, kv_cache_memory_bytes)")
    p.add_argument("--max-num-batched-tokens", type=int, default=0,
                   help="vLLM's batched-token budget; sizes the activation reserve (0: vLLM's default for the GPU)")
    p.add_argument("--reserve-from-log", default="", metavar="LOG",
                   help="set --reserve-gib from a vLLM start-up log of this node ('Available KV cache memory')")
    p.add_argument("--compare-log", default="", metavar="LOG",
                   help="show predicted vs what this vLLM start-up log allocated (KV tokens, concurrency, KV GiB)")
    p.add_argument("--num-speculative-tokens", type=int, default=4)
    p.add_argument("--block-size", type=int, default=0, help="KV block size in tokens (0: vLLM's default)")
    p.add_argument("--vllm-version", default=None, metavar="X.Y.Z",
                   help="the serving vLLM's version where its KV layout changed (sliding-window layers before 0.26); "
                        "default: current vLLM")
    p.add_argument("--matrix", action="store_true", help="also print the (target x draft precision) matrix")
    p.add_argument("--list-models", action="store_true", help="list catalog model names and exit")
    p.add_argument("--list-gpus", action="store_true", help="list catalog GPU names and exit")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")


def params_from(args: argparse.Namespace, method: str) -> MemoryParams:
    """The memory step's model from the flags ('none' budgets no draft: validated as ngram, a method without one)."""
    embedded = args.target == "embedded" or (bool(args.kv_cache_gib) and not args.gpu and not args.gpu_memory_gib
                                            and gpus.detect() is None)
    num_gpus = args.num_gpus or args.tp * args.pp
    return validate_params(MemoryParams, dict(
        mode="embedded" if embedded else "managed", target_model=args.target,
        draft_model="" if method == "none" else args.draft, method="ngram" if method == "none" else method,
        gpu=args.gpu, gpu_memory_gib=args.gpu_memory_gib or 0.0, num_gpus=num_gpus,
        tensor_parallel_size=args.tp, pipeline_parallel_size=args.pp, target_quant=args.target_quant, draft_quant=args.draft_quant,
        kv_cache_dtype=args.kv_cache_dtype, max_model_len=args.max_model_len,
        context_length=args.context_length or args.max_model_len, gpu_memory_utilization=args.gpu_memory_utilization,
        reserve_gib=args.reserve_gib, kv_cache_gib=args.kv_cache_gib, num_speculative_tokens=args.num_speculative_tokens,
    ))


def _log_path(path: str) -> Path:
    if not Path(path).is_file():
        raise ParameterError(f"no vLLM log at '{path}'", "give the server log file (a run's server-logs/*.log)")
    return Path(path)


MIN_LOGGED_RESERVE_GIB = 0.1


def _reserve_from_log(path: str, b) -> float:
    """The reserve vLLM kept on this node: memory x utilization - weights - 'Available KV cache memory'."""
    log = startup_log.parse_file(_log_path(path))
    reserve = startup_log.reserve_gib_from_log(
        log, weights_gib_per_gpu=b.target_weights_per_gpu_gib + b.draft_weights_per_gpu_gib,
        gpu_memory_gib=b.gpu_memory_gib or 0.0, gpu_memory_utilization=b.gpu_memory_utilization)
    if reserve is None:
        raise ParameterError(f"'{path}' has no 'Available KV cache memory' line (vLLM V1 GPU logs have it)",
                             "give --reserve-gib yourself, or a GPU server's start-up log")
    if reserve < MIN_LOGGED_RESERVE_GIB:  # vLLM always keeps activations and non-torch memory outside the KV cache
        total = log.total_gpu_memory_gib or b.gpu_memory_gib or 0.0
        util = log.gpu_memory_utilization or b.gpu_memory_utilization
        raise ParameterError(
            f"'{path}': {total:g} GiB x utilization {util:g} - weights - {log.available_kv_cache_gib:g} GiB of KV cache "
            f"leaves {reserve:g} GiB for activations and CUDA graphs, which cannot be: the log's server ran with another "
            "memory size or --gpu-memory-utilization than assumed (the log does not say which)",
            "give --gpu-memory-utilization (and --gpu-memory-gib) as that server ran, or --reserve-gib yourself")
    return reserve


def apply_profile(args: argparse.Namespace) -> None:
    """Fill each flag still at its default from the profile's parameter of the same meaning. The profile is
    validated as `playbook run` validates it (the memory step's parameters, its mode's defaults, its relative model
    paths read from its directory): a quoted number is converted, a bad value is a ParameterError naming the
    parameter, never a flag the user did not type."""
    from playbook.helpers.params import (
        command_line,
        known_parameters,
        unknown_parameter_error,
        with_mode_defaults,
    )
    from playbook.resources import profile_path
    from playbook.runner import profile_values

    defaults = argparse.ArgumentParser()
    add_arguments(defaults)
    default = vars(defaults.parse_args([]))
    path = profile_path(args.profile)  # a path, or a shipped profile's name as `run` takes it
    with command_line("memory", {}):  # errors name the profile's parameters, not this command's flags
        try:
            profile = profile_values(path)
            unknown = sorted(set(profile) - known_parameters())
            if unknown:  # a misspelt key would silently leave its flag at the default (`run` refuses the same file)
                raise unknown_parameter_error(unknown)
            subset = {k: v for k, v in with_mode_defaults(profile).items() if k in MemoryParams.model_fields}
            p = validate_params(MemoryParams, subset)
        except ParameterError as exc:
            raise type(exc)(f"{exc.problem} (profile read: {path})", exc.fix) from None
    for key, flag in PROFILE_KEYS.items():
        if key not in profile or profile[key] is None:
            continue
        value = getattr(p, key)
        if key == "gpu_memory_gib" and not value:  # 0 GiB: take the GPU's own memory
            continue
        if getattr(args, flag) == default[flag]:
            setattr(args, flag, "none" if flag == "method" and not p.draft_model and value == "draft_model" else value)


def run(args: argparse.Namespace) -> int:
    if args.profile:
        apply_profile(args)
    if args.list_models or args.list_gpus:
        names = models.catalog_names() if args.list_models else gpus.gpu_names()
        print_json(names) if args.json else print("\n".join(names))
        return 0
    if not args.target:
        raise ParameterError("--target is required", "give a local model dir, a catalog name or 'embedded'")
    bad = flag_problems([
        ("--tp", args.tp, args.tp >= 1, "must be >= 1"),
        ("--pp", args.pp, args.pp >= 1, "must be >= 1"),
        ("--gpu-memory-gib", args.gpu_memory_gib, args.gpu_memory_gib is None or 0 < args.gpu_memory_gib <= 4096,
         "must be the memory of one GPU in GiB, e.g. 80"),
        ("--max-model-len", args.max_model_len, args.max_model_len >= 1, "must be >= 1"),
        ("--context-length", args.context_length, args.context_length is None or args.context_length >= 1,
         "must be >= 1: a request of 0 tokens is no request (leave the flag out for --max-model-len; "
         "`playbook predict` refuses 0 too)"),
        ("--context-length", args.context_length, args.context_length is None or args.context_length < 1
         or args.context_length <= args.max_model_len,
         f"exceeds --max-model-len {args.max_model_len}: a request cannot outgrow the server's context"),
        ("--gpu-memory-utilization", args.gpu_memory_utilization, 0 < args.gpu_memory_utilization <= 1,
         "must lie in (0, 1]"),
        ("--block-size", args.block_size, args.block_size >= 0, "must be >= 0; 0 takes vLLM's default"),
        ("--max-num-batched-tokens", args.max_num_batched_tokens, args.max_num_batched_tokens >= 0,
         "must be >= 0; 0 takes vLLM's default"),
        ("--vllm-version", args.vllm_version, args.vllm_version is None
         or re.fullmatch(r"v?\d+\.\d+(\.\d+)?\S*", args.vllm_version) is not None,
         "must be a version such as 0.25.1 (`vllm --version`, or the server's /version)"),
    ])
    if bad:
        raise ParameterError(f"out of range: {'; '.join(bad)}", "give values in those ranges (`playbook memory --help`)")
    method = args.method or ("draft_model" if args.draft else "none")
    if args.draft and method in memory.NO_DRAFT_METHODS:
        print(f"note: --method {method} drafts without a model; --draft {args.draft} is not budgeted", file=sys.stderr)
    if method in ("draft_model", "eagle", "eagle3") and not args.draft:
        raise ParameterError(f"--method {method} needs --draft (the draft model or head whose memory is budgeted)",
                             "give --draft NAME or DIR, or --method ngram / mtp / none")
    s = steps.budget_setup(params_from(args, method))
    # The CLI fixes the KV space whenever --kv-cache-gib is given (the step only on the CPU backend).
    kwargs = {**s.kwargs, "method": method, "kv_cache_gib": args.kv_cache_gib, "block_size": args.block_size,
              "max_num_batched_tokens": args.max_num_batched_tokens, "vllm_version": args.vllm_version}
    target, draft, gpu = s.target, s.draft, s.gpu
    b = memory.budget(target, draft, gpu, target_quant=args.target_quant, draft_quant=args.draft_quant, **kwargs)
    if args.reserve_from_log:
        kwargs["reserve_gib"] = _reserve_from_log(args.reserve_from_log, b)
        b = memory.budget(target, draft, gpu, target_quant=args.target_quant, draft_quant=args.draft_quant, **kwargs)
        b.reserve_source = "log"
    b.fits_with = memory.fit_options(b, target, draft, gpu, **kwargs)
    out = b.model_dump(mode="json")
    out["finding"] = memory.finding(b)
    if args.compare_log:
        log = startup_log.parse_file(_log_path(args.compare_log), block_size=b.block_size)
        if all(x is None for x in (log.kv_cache_tokens, log.max_concurrency, log.available_kv_cache_gib,
                                   log.model_weights_gib)):
            raise ParameterError(f"'{args.compare_log}' holds none of the lines to compare with (KV cache size, "
                                 "maximum concurrency, available KV cache memory, model loading)",
                                 "give the start-up log of a vLLM server that became healthy (a run's server-logs/*.log)")
        out["allocated"] = memory.check_against_log(b, log, source=args.compare_log, with_draft=draft is not None
                                                    ).model_dump(mode="json")
    if args.matrix:
        out["matrix"] = [r.model_dump(mode="json") for r in memory.precision_matrix(target, draft, gpu, **kwargs)]
    if args.json:
        print_json(out)
        return 0
    print(out["finding"])
    for key in ("target_weights_gib", "draft_weights_gib", "kv_bytes_per_token", "state_bytes_per_request",
                "kv_cache_gib", "kv_cache_tokens", "max_concurrency", "max_concurrency_without_draft",
                "concurrency_lost_pct", "fits"):
        if key != "state_bytes_per_request" or out[key]:  # hybrid models only (linear-attention state)
            print(f"  {key:32s} {out[key]}")
    if "allocated" in out:
        a = out["allocated"]
        for key in ("kv_cache_tokens", "max_concurrency", "kv_cache_gib", "weights_gib"):
            err = a[key.removesuffix("_gib") + "_error" if key == "weights_gib" else key + "_error"]
            print(f"  {key + ' predicted/logged':32s} {a['predicted_' + key]} / {a['logged_' + key]}"
                  + (f" ({err:+.1%})" if err is not None else ""))
    for w in b.reasons + b.warnings + out.get("allocated", {}).get("notes", []):
        print(f"  ! {w}")
    for option in b.fits_with:
        print(f"  + {option}")
    if args.matrix:
        print(f"  {'target':7s}{'draft':7s}{'fits':6s}{'KV tokens':>12s}{'conc@ctx':>10s}{'lost %':>8s}")
        for r in out["matrix"]:
            print(f"  {r['target_quant']:7s}{r['draft_quant'] or '-':7s}{str(r['fits']):6s}{r['kv_cache_tokens']:>12,}"
                  f"{r['concurrency_at_context']:>10.1f}{r['concurrency_lost_pct']:>8.1f}")
    return 0
