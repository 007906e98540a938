"""playbook predict: speedup vs batch size and the crossover, before any load test (SPEC section 1)."""

from __future__ import annotations

import sys

from playbook.commands._common import csv_floats, csv_ints, print_json
from playbook.helpers.errors import ParameterError

NAME = "predict"
HELP = "predict speculative-decoding speedup vs batch size, the crossover and the best k"


def add_arguments(p) -> None:
    p.add_argument("--target", required=True, help="target: catalog name, local dir or 'embedded'")
    p.add_argument("--draft", default="", help="draft: catalog name, local dir or 'embedded' ('' for n-gram)")
    p.add_argument("--method", default="", help="draft_model (default with --draft) or ngram (default without)")
    p.add_argument("--gpu", default="", help="GPU catalog name for the roofline (e.g. H100-SXM)")
    p.add_argument("--num-gpus", type=int, default=1, help="GPUs on the node (replicas = num_gpus / tp)")
    p.add_argument("--tp", type=int, default=0, help="tensor parallel size (default: --num-gpus)")
    p.add_argument("--precision", default="bf16", help="target weight precision (bf16, fp8, int8, int4)")
    p.add_argument("--draft-precision", default="bf16", help="draft weight precision")
    acc = p.add_mutually_exclusive_group(required=True)
    acc.add_argument("--acceptance", type=float, help="per-token acceptance a (i.i.d.)")
    acc.add_argument("--per-position", type=csv_floats, help="per-position acceptance p_1,...,p_k from vLLM counters")
    p.add_argument("--num-speculative-tokens", "-k", type=int, default=4, help="k, tokens proposed per step")
    p.add_argument("--batch-sizes", type=csv_ints, default=[1, 2, 4, 8, 16, 32, 64, 128, 256], help="e.g. 1,2,4,8")
    p.add_argument("--context-length", type=int, default=1024, help="tokens of context per sequence (KV read per step)")
    p.add_argument("--target-step-ms", type=float, default=None,
                   help="measured target step (TPOT at concurrency 1); with --per-token-ms replaces the roofline")
    p.add_argument("--per-token-ms", type=float, default=0.0, help="measured cost of one more token in a pass (prefill slope)")
    p.add_argument("--draft-step-ms", type=float, default=None, help="measured draft step at batch 1")
    p.add_argument("--json", action="store_true", help="print the prediction as JSON")


def _given(name: str, step_ms: float, per_token: float):
    from playbook.helpers.schemas.predict import StepTimeModel

    per_token = min(per_token, step_ms)
    return StepTimeModel(name=name, source="given", overhead_ms=step_ms - per_token, compute_ms_per_token=per_token)


def run(args) -> int:
    from playbook.helpers import gpus, models, predict

    method = args.method or ("draft_model" if args.draft else "ngram")
    if method == "draft_model" and not args.draft:
        raise ParameterError("method draft_model needs --draft", "give --draft NAME, or --method ngram")
    tp = args.tp or args.num_gpus
    if args.num_gpus % tp:
        raise ParameterError(f"--num-gpus {args.num_gpus} is not a multiple of --tp {tp}", "use e.g. --num-gpus 2 --tp 2")
    target = models.resolve(args.target, "target")
    draft = models.resolve(args.draft, "draft") if method == "draft_model" else None
    if args.target_step_ms is not None:
        t_step = _given("target", args.target_step_ms, args.per_token_ms)
        ratio = models.total_params(draft) / models.total_params(target) if draft else 0.0
        d_step = None
        if draft is not None:
            d_ms = args.draft_step_ms if args.draft_step_ms is not None else args.target_step_ms * max(ratio, 0.05)
            d_step = _given("draft", d_ms, min(args.per_token_ms * ratio, d_ms))
    else:
        if not args.gpu:
            raise ParameterError("no hardware for the roofline", "give --gpu NAME (e.g. H100-SXM), or measured --target-step-ms")
        gpu = gpus.get_gpu(args.gpu)
        if not gpu.bandwidth_gbs or not gpu.bf16_tflops:
            raise ParameterError(f"'{gpu.name}' has no bandwidth/compute figures in the catalog",
                                 "give measured step times: --target-step-ms (TPOT at concurrency 1) and --per-token-ms")
        t_step = predict.roofline_from_specs(target, gpu, name="target", tp=tp, precision=args.precision)
        d_step = predict.roofline_from_specs(draft, gpu, name="draft", tp=tp, precision=args.draft_precision) if draft else None
    replicas = args.num_gpus // tp
    pred = predict.predict(
        target_step=t_step, draft_step=d_step, num_speculative_tokens=args.num_speculative_tokens,
        acceptance=args.acceptance, acceptance_per_position=args.per_position or (),
        batch_sizes=args.batch_sizes, context_tokens=args.context_length,
        target=target.name, draft=draft.name if draft else "", method=method,
    )
    if replicas > 1:
        pred.assumptions.append(f"batch sizes are per replica: {replicas} replicas of TP {tp}")
    if args.json:
        print_json(pred)
        return 0
    print(pred.finding)
    print(f"{'batch':>6} {'speedup':>8} {'TPOT base ms':>13} {'TPOT spec ms':>13} {'best k':>7}")
    for pt in pred.points:
        print(f"{pt.batch_size:>6} {pt.speedup:>8.2f} {pt.tpot_baseline_ms:>13.2f} {pt.tpot_spec_ms:>13.2f} "
              f"{pred.optimal_k_by_batch_size.get(pt.batch_size, 0):>7}")
    print(f"crossover_batch_size: {pred.crossover_batch_size}", file=sys.stderr)
    return 0
