"""playbook predict: speedup vs batch size and the crossover, before any load test (SPEC section 1)."""

from __future__ import annotations

import sys

from playbook.commands._common import csv_floats, csv_ints, flag_problems, print_json
from playbook.helpers.errors import ParameterError

NAME = "predict"
HELP = "predict speculative-decoding speedup vs batch size, the crossover and the best k"


def add_arguments(p) -> None:
    p.add_argument("--target", required=True, help="target: catalog name, local dir or 'embedded'")
    p.add_argument("--draft", default="",
                   help="draft: catalog name, local dir (an EAGLE/EAGLE-3 head's config.json is enough) or 'embedded' "
                        "('' for n-gram)")
    p.add_argument("--method", default="",
                   help="draft_model, eagle, eagle3 (default from --draft) or ngram (default without --draft)")
    p.add_argument("--gpu", default="", help="GPU catalog name for the step-time model (e.g. H100-SXM)")
    p.add_argument("--engine", default="vllm", choices=["vllm", "sglang"],
                   help="serving engine whose per-step costs the --gpu model uses: vllm (V1, the engine the playbook "
                        "drives) or sglang (EAGLE without its overlap scheduler; fitted on the EAGLE-3 paper's batch table)")
    p.add_argument("--num-gpus", type=int, default=None, help="GPUs on the node (replicas = num_gpus / tp; default: --tp)")
    p.add_argument("--tp", type=int, default=0, help="tensor parallel size (default: --num-gpus, else 1)")
    p.add_argument("--draft-tp", type=int, default=0,
                   help="draft tensor parallel size: 1 or --tp, and --tp for draft_model, as vLLM (default: --tp)")
    p.add_argument("--precision", default=None, type=str.lower,
                   help="target weight precision: bf16, fp16, fp8, int8, int4 (awq, gptq, w4a16, nvfp4 read as int4, "
                        "w8a8, w8a16 as int8; an 8-bit GPTQ is int8); default bf16. A pre-quantized checkpoint is "
                        "predicted at its own")
    p.add_argument("--draft-precision", default=None, type=str.lower, help="draft weight precision (as --precision)")
    acc = p.add_mutually_exclusive_group(required=True)
    acc.add_argument("--acceptance", type=float, help="per-token acceptance rate a (i.i.d.)")
    acc.add_argument("--acceptance-length", type=float,
                     help="mean acceptance length at this k: 1 + accepted / drafts (what papers and vLLM's logs report)")
    acc.add_argument("--acceptance-per-position", "--per-position", dest="per_position", type=csv_floats,
                     help="per-position acceptance p_1,...,p_k from vLLM counters, e.g. 0.8,0.6,0.4")
    p.add_argument("--proposal-rate", type=float, default=1.0,
                   help="n-gram/suffix: fraction of decode steps on which the lookup finds a match and proposes "
                        "(vLLM: spec_decode_num_drafts / decode steps; its acceptance counts only those steps); "
                        "default 1, the most verification work")
    p.add_argument("--num-speculative-tokens", "-k", type=int, default=None,
                   help="k, tokens proposed per step (default: as many as --acceptance-per-position gives, else 4)")
    p.add_argument("--verify-tokens", type=int, default=None,
                   help="tokens verified per sequence per step when drafting a tree (default k+1, a chain)")
    p.add_argument("--tree-width", type=int, default=1,
                   help="draft tokens per sequence in each later draft pass of a tree (SGLang's speculative_eagle_topk)")
    p.add_argument("--batch-sizes", type=csv_ints, default=[1, 2, 4, 8, 16, 32, 64, 128, 256], help="e.g. 1,2,4,8")
    p.add_argument("--context-length", type=int, default=1024,
                   help="tokens of context per sequence (KV read per step), >= 1 (default 1024)")
    p.add_argument("--target-step-ms", type=float, default=None,
                   help="measured target step (TPOT at concurrency 1); with --per-token-ms replaces the GPU model")
    p.add_argument("--per-token-ms", type=float, default=0.0, help="measured cost of one more token in a pass (prefill slope)")
    p.add_argument("--draft-step-ms", type=float, default=None, help="measured draft step at batch 1")
    p.add_argument("--tpot-ms", type=csv_floats, default=None, metavar="BASE,SPEC",
                   help="calibrate on this node: measured TPOT (ms) at concurrency 1 without and with speculation")
    p.add_argument("--tpot-at", type=csv_floats, default=None, metavar="N,BASE,SPEC",
                   help="with --tpot-ms: the same TPOTs measured at concurrency N (fits the per-token costs)")
    p.add_argument("--json", action="store_true", help="print the prediction as JSON")


def _given(name: str, step_ms: float, per_token: float):
    from playbook.helpers.schemas.predict import StepTimeModel

    per_token = min(per_token, step_ms)
    return StepTimeModel(name=name, source="given", overhead_ms=step_ms - per_token, compute_ms_per_token=per_token)


def _calibrated(args, target, draft, method: str, tp: int, draft_tp: int | None, acceptance: dict, gpu=None):
    """Constants fitted to this node's measured TPOTs (a GPU catalog entry, when given, keeps its
    KV/attention/MoE terms); the curve and crossover follow before any load test."""
    from playbook.helpers import acceptance_math, calibration, catalog_predict, predict

    if len(args.tpot_ms) != 2 or (args.tpot_at is not None and len(args.tpot_at) != 3):
        raise ParameterError("--tpot-ms takes BASE,SPEC and --tpot-at takes N,BASE,SPEC",
                             "e.g. --tpot-ms 7.1,4.3 --tpot-at 32,9.0,6.2")
    k = args.num_speculative_tokens
    e_of = acceptance_math.expected_tokens_by_k(k, acceptance["acceptance"], acceptance["acceptance_length"],
                                               acceptance["acceptance_per_position"])[0]
    prior_t = prior_d = None
    if gpu is not None and not gpu.is_cpu:
        prior_t = catalog_predict.roofline_from_specs(target, gpu, name="target", tp=tp, precision=args.precision)
        prior_d = catalog_predict.draft_step_model(target, draft, gpu, method, tp=tp, draft_tp=draft_tp,
                                                   precision=args.precision, draft_precision=args.draft_precision)
    n, base_n, spec_n = args.tpot_at if args.tpot_at is not None else (None, None, None)
    t_step, d_step = calibration.calibrate_steps(
        num_speculative_tokens=k, expected_tokens_per_step=e_of(k), tpot_baseline_ms=args.tpot_ms[0],
        tpot_spec_ms=args.tpot_ms[1], concurrency=int(n) if n else None, tpot_baseline_at_ms=base_n,
        tpot_spec_at_ms=spec_n, context_tokens=args.context_length, prior_target=prior_t, prior_draft=prior_d,
        proposal_rate=args.proposal_rate)
    pred = predict.predict(
        target_step=t_step, draft_step=d_step, num_speculative_tokens=k, **acceptance, batch_sizes=args.batch_sizes,
        context_tokens=args.context_length, target=target.name, draft=draft.name if draft else "", method=method,
        verify_tokens_per_seq=args.verify_tokens, proposal_rate=args.proposal_rate)
    pred.assumptions.append("step constants fitted to the TPOTs measured on this node (--tpot-ms/--tpot-at)")
    return pred


def _draft_tp(args, method: str, tp: int) -> int | None:
    """--draft-tp as vLLM takes it (helpers/compat.py draft_tp_rule): 1 or the target's TP, and for draft_model
    the target's only (vLLM refuses to start otherwise); None when unset or for a lookup, which has no draft."""
    from playbook.helpers.compat import VLLM_REF, draft_tp_rule
    from playbook.helpers.errors import SpecConfigError
    from playbook.helpers.predict import LOOKUP_METHODS

    if not args.draft_tp or method in LOOKUP_METHODS:
        return None
    try:
        draft_tp, _ = draft_tp_rule(method, tp, args.draft_tp)
    except SpecConfigError:
        raise ParameterError(f"--draft-tp {args.draft_tp} with --tp {tp}: {VLLM_REF} accepts a draft TP of 1 or the "
                             "target's only (vllm/config/speculative.py _verify_and_get_draft_tp)",
                             f"give --draft-tp {' or '.join(map(str, sorted({1, tp})))}, or leave it out "
                             f"(vLLM then uses {tp})") from None
    if draft_tp != args.draft_tp:
        raise ParameterError(f"--draft-tp {args.draft_tp} with --tp {tp} and method draft_model: {VLLM_REF} refuses "
                             "to start a draft model at another TP than the target's (v1/spec_decode/draft_model.py "
                             "_raise_if_draft_tp_mismatch)",
                             f"give --draft-tp {tp} or leave it out; a draft TP of 1 is for EAGLE/MTP heads")
    return draft_tp


def check_arguments(args) -> None:
    """Every number in range and every name known, before any model is resolved (one error naming each
    bad flag); the acceptance values themselves are checked by the predictor."""
    import math
    import typing

    from playbook.helpers.acceptance_math import check_positions
    from playbook.helpers.params import Method

    if args.per_position:
        check_positions(args.per_position)
    if args.num_speculative_tokens is None:
        args.num_speculative_tokens = len(args.per_position) if args.per_position else 4

    def finite(x) -> bool:
        return x is not None and math.isfinite(x) and x > 0

    checks = [
        ("--num-gpus", args.num_gpus, args.num_gpus is None or args.num_gpus >= 1, "must be >= 1"),
        ("--tp", args.tp, args.tp >= 0, "must be >= 1; 0 takes --num-gpus"),
        ("--draft-tp", args.draft_tp, args.draft_tp >= 0, "must be >= 1; 0 takes --tp"),
        ("-k", args.num_speculative_tokens, 1 <= args.num_speculative_tokens <= 16, "must lie in 1..16"),
        ("--tree-width", args.tree_width, args.tree_width >= 1, "must be >= 1"),
        ("--proposal-rate", args.proposal_rate, 0 < args.proposal_rate <= 1, "must lie in (0, 1]"),
        ("--verify-tokens", args.verify_tokens, args.verify_tokens is None or args.verify_tokens >= 1, "must be >= 1"),
        ("--context-length", args.context_length, args.context_length >= 1,
         "must be >= 1: a sequence of 0 tokens is no request (leave the flag out for 1024; `playbook memory` "
         "refuses 0 too)"),
        ("--batch-sizes", ",".join(map(str, args.batch_sizes)),
         bool(args.batch_sizes) and all(b >= 1 for b in args.batch_sizes), "each must be >= 1"),
        ("--target-step-ms", args.target_step_ms, args.target_step_ms is None or finite(args.target_step_ms),
         "must be a time > 0"),
        ("--draft-step-ms", args.draft_step_ms, args.draft_step_ms is None or finite(args.draft_step_ms),
         "must be a time > 0"),
        ("--per-token-ms", args.per_token_ms, math.isfinite(args.per_token_ms) and args.per_token_ms >= 0,
         "must be >= 0"),
        ("--tpot-ms", args.tpot_ms, args.tpot_ms is None or all(finite(x) for x in args.tpot_ms), "must be times > 0"),
        ("--tpot-at", args.tpot_at, args.tpot_at is None or all(finite(x) for x in args.tpot_at),
         "must be a concurrency and times > 0"),
        ("--acceptance-per-position", args.per_position, args.per_position is None or bool(args.per_position),
         "holds no number"),
    ]
    bad = flag_problems(checks)
    if args.tpot_at is not None and args.tpot_ms is None:
        bad.append("--tpot-at without --tpot-ms (it adds a concurrency to the calibration --tpot-ms starts)")
    methods = typing.get_args(Method)
    if args.method and args.method not in methods:
        bad.append(f"--method {args.method} (not one of {', '.join(methods)})")
    fixes = ["give each flag named a value its rule allows (`playbook predict --help`)"] if bad else []
    wrong, fix = _read_precisions(args)
    if bad or wrong:
        raise ParameterError(f"playbook predict: {'; '.join(bad + wrong)}", "; ".join(fixes + fix))


def _read_precisions(args) -> tuple[list[str], list[str]]:
    """--precision/--draft-precision as the budget names them (awq -> int4, with a note; unset -> bf16), and
    the names it cannot read: (problems, fixes). Records which were given (:func:`_checkpoint_notes`)."""
    from playbook.helpers.quantization import BYTES_PER_PARAM, canonical_precision, format_names

    bad, args.precisions_given, args.precision_notes = [], set(), []
    for flag, dest in (("--precision", "precision"), ("--draft-precision", "draft_precision")):
        value = getattr(args, dest)
        found = canonical_precision(value) if value is not None else "bf16"
        if found is None:
            bad.append(f"{flag} {value} (not a weight precision the budget knows: {', '.join(BYTES_PER_PARAM)})")
            continue
        if value is not None:
            args.precisions_given.add(dest)
        if value not in (None, found):
            args.precision_notes.append(f"{flag} {value} read as {found}, the budget's precision for its weights")
        setattr(args, dest, found)
    flags = " and ".join(b.split(" ", 1)[0] for b in bad)
    return bad, [f"give {flags} one of {', '.join(BYTES_PER_PARAM)} ({format_names('int4')} weights are int4; "
                 f"{format_names('int8')} int8)"] if bad else []


def _checkpoint_notes(args, target, draft) -> list[str]:
    """Which precision is used when a --precision given differs from a pre-quantized checkpoint's own."""
    from playbook.helpers.quantization import served_precision

    notes = []
    for flag, dest, spec in (("--precision", "precision", target), ("--draft-precision", "draft_precision", draft)):
        asked = getattr(args, dest)
        if spec is None or dest not in args.precisions_given:
            continue
        if (used := served_precision(spec, asked)) != asked:
            notes.append(f"{flag} {asked} not used: {spec.name} is a pre-quantized {used} checkpoint, predicted at "
                         f"{used} (vLLM serves its weights as stored)")
    return notes


def run(args) -> int:
    from playbook.helpers import catalog_predict, drafts, gpus, models, predict
    from playbook.helpers.params import check_gpus_per_group, check_tensor_parallel

    check_arguments(args)
    args.num_gpus = args.num_gpus if args.num_gpus is not None else (args.tp or 1)  # as `playbook memory`: --tp 4 alone means one group of 4 GPUs
    tp = args.tp or args.num_gpus
    try:
        check_gpus_per_group(args.num_gpus, tp)  # the rules the memory step's parameters follow
        check_tensor_parallel(args.target, tp)
    except ValueError as exc:
        problem, _, fix = str(exc).partition("; ")
        raise ParameterError(problem, fix) from None
    draft = models.resolve(args.draft, "draft") if args.draft and args.method not in predict.LOOKUP_METHODS else None
    method = args.method or catalog_predict.default_method(draft)
    defaulted = "" if args.method or args.draft else \
        "no --draft or --method given: predicted for an n-gram lookup (method ngram); give --draft for a draft model"
    if method in ("draft_model", "eagle", "eagle3") and draft is None:
        raise ParameterError(f"method {method} needs --draft", "give --draft NAME or DIR, or --method ngram")
    draft_tp = _draft_tp(args, method, tp)
    if args.proposal_rate < 1 and method not in predict.LOOKUP_METHODS:
        raise ParameterError(f"--proposal-rate {args.proposal_rate:g} with method {method}: a draft model or head "
                             "proposes on every step", "leave --proposal-rate out (it is for --method ngram or suffix)")
    target = models.resolve(args.target, "target")
    if beyond := models.beyond_max_context(target, args.context_length):
        raise ParameterError(f"--context-length {args.context_length} {beyond}: vLLM serves no request that long",
                             f"give --context-length {target.max_position_embeddings} or less")
    gpu = gpus.get_gpu(args.gpu) if args.gpu else None
    unusable = drafts.unusable_reason(target, draft, method)
    acceptance = {"acceptance": args.acceptance, "acceptance_length": args.acceptance_length,
                  "acceptance_per_position": args.per_position or ()}
    if args.tpot_ms is not None:
        pred = _calibrated(args, target, draft, method, tp, draft_tp, acceptance, gpu)
    elif args.target_step_ms is not None:
        t_step = _given("target", args.target_step_ms, args.per_token_ms)
        ratio = models.total_params(draft) / models.total_params(target) if draft else 0.0
        d_step = None
        if draft is not None:
            d_ms = args.draft_step_ms if args.draft_step_ms is not None else args.target_step_ms * max(ratio, 0.05)
            d_step = _given("draft", d_ms, min(args.per_token_ms * ratio, d_ms))
        pred = predict.predict(
            target_step=t_step, draft_step=d_step, num_speculative_tokens=args.num_speculative_tokens, **acceptance,
            batch_sizes=args.batch_sizes, context_tokens=args.context_length, target=target.name,
            draft=draft.name if draft else "", method=method, verify_tokens_per_seq=args.verify_tokens,
            proposal_rate=args.proposal_rate,
        )
    else:
        if gpu is None:
            raise ParameterError("no hardware for the step-time model",
                                 "give --gpu NAME (e.g. H100-SXM), or measured --target-step-ms")
        pred = catalog_predict.catalog_prediction(
            target, draft, gpu, num_speculative_tokens=args.num_speculative_tokens, tp=tp,
            draft_tp=draft_tp, precision=args.precision, draft_precision=args.draft_precision,
            method=method, **acceptance, batch_sizes=args.batch_sizes, context_tokens=args.context_length,
            verify_tokens_per_seq=args.verify_tokens, tree_width=args.tree_width, engine=args.engine,
            proposal_rate=args.proposal_rate,
        )
        if gpu.name.lower() != args.gpu.lower():  # a product name or a near spelling: say what it was read as
            pred.assumptions.insert(0, f"--gpu {args.gpu} read as {gpu.name}")
    if method in predict.LOOKUP_METHODS and args.proposal_rate == 1:
        pred.assumptions.insert(0, f"the {method} lookup proposes on every step, an upper bound: give --proposal-rate, "
                                   "the share of steps on which it finds a match (step 40 measures it)")
    for note in args.precision_notes + (_checkpoint_notes(args, target, draft) if gpu is not None else []):
        pred.assumptions.insert(0, note)
        print(f"note: {note}", file=sys.stderr)
    if defaulted:
        pred.assumptions.insert(0, defaulted)
        print(f"note: {defaulted}", file=sys.stderr)
    if unusable:  # predicted all the same (a what-if), but said first: vLLM would not serve this pair
        pred.assumptions.insert(0, unusable)
        print(f"warning: {unusable}", file=sys.stderr)
    if gpu is not None:  # which batch sizes the KV cache holds at this context (what `playbook memory` budgets)
        catalog_predict.check_kv_fit(pred, target, draft, gpu, tp=tp, precision=args.precision,
                                     draft_precision=args.draft_precision)
    replicas = args.num_gpus // tp
    if replicas > 1:
        pred.assumptions.append(f"batch sizes are per replica: {replicas} replicas of TP {tp}")
    from playbook.helpers.memory import tp_across_nodes_note, tp_spans_nodes

    if tp_spans_nodes(args.num_gpus, tp):  # a group over whole nodes (check_gpus_per_group let it through)
        pred.assumptions.append(tp_across_nodes_note(tp, args.num_gpus) + "; the step model's all-reduce costs are "
                                "within one node's NVLink, so the prediction is optimistic: calibrate it on the "
                                "node (step 40) or measure (step 50)")
    for note in predict.fit_notes(pred):  # said on stderr as well, also under --json: the curve rests on a clamp
        print(f"warning: {note}", file=sys.stderr)
    blocked = not_served_headline(pred, gpu, unusable)
    if blocked and not blocked.startswith(NOT_LOADED):  # said first: every speedup below is for a server vLLM would
        print(f"warning: {blocked}", file=sys.stderr)  # not start (a draft it cannot load was warned about above)
    if args.json:
        out = pred.model_dump(mode="json")
        if pred.kv_fit is not None:  # whether the KV fit was checked (a catalog GPU): the server would start
            out["fits"] = not blocked
            out["does_not_fit"] = blocked
        print_json(out)
        return 0
    if blocked:
        print(blocked)
    print(pred.finding)
    print(f"{'batch':>6} {'speedup':>8} {'TPOT base ms':>13} {'TPOT spec ms':>13} {'best k':>7}")
    full = ("KV cache too small: queued" if not (pred.kv_fit and pred.kv_fit.max_batch_spec < 1) else
            "not servable" if blocked.startswith(NOT_LOADED) else "does not fit")
    for pt in pred.points:
        print(f"{pt.batch_size:>6} {pt.speedup:>8.2f} {pt.tpot_baseline_ms:>13.2f} {pt.tpot_spec_ms:>13.2f} "
              f"{pred.optimal_k_by_batch_size.get(pt.batch_size, 0):>7}"
              + (f"  ({full})" if pt.fits_kv_cache is False else ""))
    print("assumptions:\n" + "\n".join(f"  - {a}" for a in pred.assumptions))
    return 0  # the crossover is in the finding ("stops winning at batch N" / "wins up to batch N"); --json has it


NOT_LOADED = "vLLM would not start this configuration"  # the headline when only the draft's mismatch stops it


def not_served_headline(pred, gpu, unusable: str = "") -> str:
    """'does not fit on L4 (why): the speedup below is a what-if ...' when the KV fit (``playbook memory``'s budget)
    finds that not one sequence fits, or vLLM would not load the draft for this target; '' otherwise (or unchecked:
    no catalog GPU)."""
    fit = pred.kv_fit
    if fit is None or fit.max_batch_spec >= 1 or gpu is None:
        return ""
    where = fit.where or gpu.name
    why = "; ".join(fit.reasons) or "no sequence fits in the KV cache"
    if unusable and fit.reasons and all(r in unusable for r in fit.reasons):  # only the draft's mismatch stops it
        return f"{NOT_LOADED} on {where}: {unusable}"
    return f"does not fit on {where} ({why}): the speedup below is a what-if for a server vLLM would not start"
