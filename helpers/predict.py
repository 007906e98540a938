"""Speedup predictor: speculative and baseline TPOT, speedup and best k per batch size, the crossover.

One speculative step runs k draft passes and one verification pass of ``batch * (k+1)`` tokens, plus a fixed
per-step overhead, so the gain shrinks from small batches on and turns into a loss where verification's extra
tokens cost more than the accepted tokens save: the crossover. Step times come from :mod:`step_model` (catalog
facts, :mod:`catalog_predict`, or fitted to a node's measurements, :mod:`calibration`); tokens per step from
:mod:`acceptance_math`; predicted vs measured in :mod:`prediction_check`.
"""

from __future__ import annotations

from collections.abc import Sequence

from .acceptance_math import expected_tokens_by_k, optimal_k, with_proposals
from .errors import ParameterError
from .schemas.predict import Prediction, PredictionPoint, StepTimeModel
from .stats import interpolate
from .step_model import step_ms

DEFAULT_BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256]

# Methods whose proposals come from a lookup, not a model: no draft step; they propose only where it finds a match.
LOOKUP_METHODS = ("ngram", "suffix")


def draft_tokens_per_step(b: float, k: int, verify: int | None = None, width: int = 1) -> float:
    """Tokens the draft's k passes of one speculative step are charged for at batch ``b``: ``width``
    per sequence and pass (1 for vLLM's chain, SGLang's ``speculative_eagle_topk`` for a tree).

    vLLM's proposer (vllm/v1/spec_decode/eagle.py ``propose``, also the base of ``draft_model``)
    runs its first pass over the positions the target just verified, not one per sequence. Charging
    those b x (k+1) tokens made the prediction worse where it can be measured: on the embedded
    engine the error of benchmarks/predictor/run.py grew from 0.073 to 0.117, 0.076 to 0.122 and
    0.31 to 0.38 on three recorded runs (2026-12-02). On a GPU the draft's per-token cost is ~1% of
    the target's, so the choice moves GPU predictions by < 1%. ``verify`` is kept for callers."""
    return k * b * max(width, 1)


def drafting_ms(draft: StepTimeModel, b: int, k: int, ctx: float, verify: int | None = None, width: int = 1) -> float:
    """The k draft passes of one speculative step: k fixed costs, the tokens of :func:`draft_tokens_per_step`."""
    per_pass = step_ms(draft.model_copy(update={"compute_ms_per_token": 0.0}), b, b * ctx, seqs=b)
    return k * per_pass + draft_tokens_per_step(b, k, verify, width) * draft.compute_ms_per_token


def _spec_tpot(target: StepTimeModel, draft: StepTimeModel | None, b: int, k: int, e: float, ctx: float,
               verify: int | None = None, engine_ms: float = 0.0, spec_ms: float = 0.0, ngram: bool = False,
               width: int = 1, seq_ms: float = 0.0, proposal_rate: float = 1.0):
    """Speculative TPOT at batch ``b``: k draft passes (:func:`drafting_ms`), one verification pass
    of b x ``verify`` tokens (k+1 for a chain), the engine step and the speculative step's own
    cost (``spec_ms`` once, ``seq_ms`` per sequence), over the tokens a step yields. ``e`` is E(k) per
    proposal; with ``proposal_rate`` q < 1 (an n-gram finds no match on some steps) a sequence verifies
    1 + q (v - 1) tokens and yields 1 + q (E - 1) per step."""
    v = with_proposals(verify or k + 1, proposal_rate)
    e = with_proposals(e, proposal_rate)
    t_target = step_ms(target, b * v, b * ctx, seqs=b)
    t_draft = step_ms(draft, b, b * ctx, seqs=b) if draft is not None else 0.0
    drafting = drafting_ms(draft, b, k, ctx, verify, width) if draft is not None else 0.0
    # n-gram lookup: ~0.59% of the verification pass (SpecDecode-Bench predictor.py, ngram_draft_percentage)
    lookup = 0.005875 * t_target if ngram and draft is None else 0.0
    return (drafting + t_target + engine_ms + spec_ms + seq_ms * b + lookup) / e, t_target, t_draft


def predict(
    *,
    target_step: StepTimeModel,
    draft_step: StepTimeModel | None,
    num_speculative_tokens: int,
    acceptance: float | None = None,
    acceptance_per_position: Sequence[float] = (),
    acceptance_length: float | None = None,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    context_tokens: float = 512,
    target: str = "target",
    draft: str = "draft",
    method: str = "draft_model",
    k_max: int = 8,
    engine_step_ms: float = 0.0,
    spec_step_ms: float = 0.0,
    spec_seq_ms: float = 0.0,
    baseline_engine_step_ms: float | None = None,
    verify_tokens_per_seq: int | None = None,
    tree_width: int = 1,
    proposal_rate: float = 1.0,
    shared_tpot_ms: dict[int, float] | None = None,
    baseline_tpot_ms: dict[int, float] | None = None,
) -> Prediction:
    """Predicted TPOT with and without speculation, speedup and best k per batch size, crossover.

    Give one of ``acceptance`` (i.i.d. per-token a), ``acceptance_length`` (mean acceptance length
    at this k, 1 + accepted/drafts) or ``acceptance_per_position`` (p_i from the sweep).
    ``draft_step`` None means a draft with no model cost (n-gram, suffix). ``engine_step_ms`` is in
    both TPOTs, ``spec_step_ms`` (once) and ``spec_seq_ms`` (per sequence) only in the speculative
    one (0 for fitted models, which hold them already); ``baseline_engine_step_ms`` replaces
    ``engine_step_ms`` in the baseline TPOT where the engine hides its host work without speculation.
    ``verify_tokens_per_seq`` replaces k+1 for tree verification (SGLang's ``speculative_num_draft_tokens``),
    ``tree_width`` the tokens per sequence of each later draft pass (SGLang's ``speculative_eagle_topk``; 1 for
    vLLM's chain). ``proposal_rate``: the fraction of steps on which the method proposes at all (an n-gram or
    suffix lookup finds no match on the others, which then verify one token); the acceptance is per proposal,
    as vLLM counts it (its metrics count only steps with draft tokens: vllm/v1/core/sched/scheduler.py,
    ``make_spec_decoding_stats``). 1 (every step) is the upper bound on the verification cost.
    ``shared_tpot_ms`` {batch size: ms}: what every output token pays beyond the decode steps with or without
    speculation (other requests' prompts prefilled inside them), as measured on a baseline; linear between the
    batch sizes given, held at the nearest outside them. ``baseline_tpot_ms`` {batch size: ms}: the baseline's
    TPOT where it was measured, used there instead of the model's (only the speculative TPOT is predicted).
    """
    k = num_speculative_tokens
    if k < 1:
        raise ParameterError(f"num_speculative_tokens={k}", "give k >= 1")
    if not 0 < proposal_rate <= 1:
        raise ParameterError(f"proposal rate {proposal_rate} is outside (0, 1]",
                             "give the fraction of decode steps on which the method proposes (vLLM: "
                             "spec_decode_num_drafts / decode steps), or leave it at 1")
    e_of, a, positions = expected_tokens_by_k(k, acceptance, acceptance_length, acceptance_per_position)
    sizes = sorted({int(b) for b in batch_sizes if int(b) >= 1})
    if not sizes:
        raise ParameterError(f"batch sizes {list(batch_sizes)} hold no positive size", "give e.g. 1,2,4,8")
    ngram = method in LOOKUP_METHODS
    over = {"engine_ms": engine_step_ms, "spec_ms": spec_step_ms, "ngram": ngram, "width": max(int(tree_width), 1),
            "seq_ms": spec_seq_ms, "proposal_rate": proposal_rate}

    base_engine_ms = engine_step_ms if baseline_engine_step_ms is None else baseline_engine_step_ms
    points: list[PredictionPoint] = []
    best_k: dict[int, int] = {}
    shared = dict(sorted((shared_tpot_ms or {}).items()))
    for b in sizes:
        extra = interpolate(b, list(shared), list(shared.values())) if shared else 0.0
        base = step_ms(target_step, b, b * context_tokens, seqs=b) + base_engine_ms + extra
        base = (baseline_tpot_ms or {}).get(b, base)
        spec, t_target, t_draft = _spec_tpot(target_step, draft_step, b, k, e_of(k), context_tokens,
                                             verify_tokens_per_seq, **over)
        spec += extra
        points.append(
            PredictionPoint(
                batch_size=b, speedup=base / spec, tpot_baseline_ms=base, tpot_spec_ms=spec,
                target_step_ms=t_target, draft_step_ms=t_draft,
            )
        )
        kk_best, s_best = 0, 1.0
        for kk in range(1, k_max + 1):
            s = base / (_spec_tpot(target_step, draft_step, b, kk, e_of(kk), context_tokens, None, **over)[0] + extra)
            if s > s_best + 1e-9:
                kk_best, s_best = kk, s
        best_k[b] = kk_best
    crossover = next((p.batch_size for p in points if p.speedup < 1.0), None)
    t1 = step_ms(target_step, 1, context_tokens)
    c = (step_ms(draft_step, 1, context_tokens) / t1) if draft_step is not None else 0.0
    pred = Prediction(
        target=target, draft=draft, method=method, num_speculative_tokens=k, acceptance=a,
        acceptance_per_position=positions, expected_tokens_per_step=with_proposals(e_of(k), proposal_rate), cost_ratio=c,
        optimal_k=best_k[sizes[0]] if sizes[0] == 1 else optimal_k(a, c, k_max),
        optimal_k_by_batch_size=best_k, points=points, crossover_batch_size=crossover,
        target_step=target_step, draft_step=draft_step, engine_step_ms=engine_step_ms, spec_step_ms=spec_step_ms,
        spec_seq_ms=spec_seq_ms, baseline_engine_step_ms=baseline_engine_step_ms,
        verify_tokens_per_seq=verify_tokens_per_seq or k + 1, proposal_rate=proposal_rate, shared_tpot_ms=shared,
        baseline_tpot_ms=dict(baseline_tpot_ms or {}), context_tokens=context_tokens, tree_width=max(int(tree_width), 1),
        assumptions=[
            f"context of {context_tokens:.0f} tokens per sequence read from the KV cache each step",
            f"one verification pass of batch*{verify_tokens_per_seq or k + 1} tokens plus "
            + ("k draft passes of batch tokens" if draft_step is not None else "a lookup (no draft pass)")
            + " per step" + (f"; a proposal on {proposal_rate:.0%} of steps (the others verify one token)"
                                 if proposal_rate < 1 else ""),
            f"step-time model: target {target_step.source}, draft {draft_step.source if draft_step else 'free (n-gram)'}",
            (f"per engine step {engine_step_ms:.2f} ms in both TPOTs" if base_engine_ms == engine_step_ms else
             f"per engine step {engine_step_ms:.2f} ms with speculation, {base_engine_ms:.2f} ms without")
            + f"; per speculative step {spec_step_ms:.2f} ms"
            + (f" + {spec_seq_ms:.3f} ms per sequence" if spec_seq_ms else ""),
            *([f"per-position acceptance given for {len(acceptance_per_position)} positions; positions "
               f"{len(acceptance_per_position) + 1}-{k} extend it at its last conditional rate"]
              if 0 < len(acceptance_per_position) < k else []),
            *([f"baseline TPOT as measured at batch {', '.join(map(str, sorted(baseline_tpot_ms)))} (only the "
               "speculative TPOT is predicted there), the model's elsewhere"] if baseline_tpot_ms else []),
            *([("other requests' prefills inside the decode steps cost every output token, with or without "
                "speculation, " + ", ".join(f"{v:.2f} ms at {b}" for b, v in shared.items())
                + " (the baseline's TPOT minus its typical step)")] if shared else []),
        ],
    )
    pred.assumptions += fit_notes(pred)
    pred.finding = finding(pred)
    return pred


def at_k(pred: Prediction, k: int, batch_sizes: Sequence[int] | None = None) -> Prediction:
    """``pred`` at another k: the same step models, acceptance, engine, per-sequence and shared costs and
    measured baseline TPOTs (what comparing k values needs: only k differs). A tree's k and verified tokens go
    together, so a tree prediction is predicted afresh instead."""
    if pred.tree_width > 1 or pred.verify_tokens_per_seq not in (0, pred.num_speculative_tokens + 1):
        raise ParameterError(f"the prediction drafts a tree ({pred.verify_tokens_per_seq} tokens verified per "
                             f"sequence, width {pred.tree_width})",
                             "predict the other k afresh with its own verify tokens and tree width")
    return predict(
        target_step=pred.target_step, draft_step=pred.draft_step, num_speculative_tokens=k,
        acceptance=None if pred.acceptance_per_position else pred.acceptance,
        acceptance_per_position=pred.acceptance_per_position,
        batch_sizes=batch_sizes or [pt.batch_size for pt in pred.points], context_tokens=pred.context_tokens,
        target=pred.target, draft=pred.draft, method=pred.method, engine_step_ms=pred.engine_step_ms,
        spec_step_ms=pred.spec_step_ms, spec_seq_ms=pred.spec_seq_ms, baseline_engine_step_ms=pred.baseline_engine_step_ms,
        proposal_rate=pred.proposal_rate, shared_tpot_ms=pred.shared_tpot_ms, baseline_tpot_ms=pred.baseline_tpot_ms,
    )


def fit_notes(pred: Prediction) -> list[str]:
    """What fitting the prediction's step models to measured times had to clamp (empty for catalog models)."""
    return [*pred.target_step.fit_notes, *(pred.draft_step.fit_notes if pred.draft_step is not None else [])]


def acceptance_words(pred: Prediction) -> str:
    """The predictor's acceptance, named so nobody reads it as the sweep's: 'per-token acceptance a=0.82 (fitted:
    E=3.52 tokens per step)'. ``a`` is the geometric model's per-token rate (the one rate whose 1 + a + ... + a^k
    gives the tokens a step yields), not the share of drafted tokens accepted that the report's acceptance number
    is: at k=4, a=0.82 is a share of (E - 1) / k = 0.63."""
    return f"per-token acceptance a={pred.acceptance:.2f} (fitted: E={pred.expected_tokens_per_step:.2f} tokens per step)"


def break_even_words(pred: Prediction) -> str:
    """Why the speedup at the first batch size is what it is, in the step costs it comes from: how many tokens a
    speculative step must yield to pay for itself (its cost over a baseline step's), what one verification pass costs
    against a baseline step, and what a step yields. On a GPU at low batch the pass over k+1 tokens costs about one
    baseline step (memory-bound) and little acceptance breaks even; where it costs several (compute-bound: a large
    batch, or a CPU without fast matrix units) speculation needs more tokens per step than k+1 can give."""
    first = pred.points[0]
    if first.speedup <= 0 or first.tpot_baseline_ms <= 0:
        return ""
    engine = pred.engine_step_ms if pred.baseline_engine_step_ms is None else pred.baseline_engine_step_ms
    base_pass = first.tpot_baseline_ms - pred.shared_tpot_ms.get(first.batch_size, 0.0) - engine  # the target's pass
    verified = pred.verify_tokens_per_seq or pred.num_speculative_tokens + 1
    cost = f" (its verification pass over {verified} tokens per sequence costs {first.target_step_ms / base_pass:.2f}x " \
           "the baseline's pass)" if base_pass > 0 else ""
    return (f"at batch {first.batch_size} a speculative step must yield {pred.expected_tokens_per_step / first.speedup:.2f} "
            f"tokens to break even{cost} and yields {pred.expected_tokens_per_step:.2f}")


def finding(pred: Prediction) -> str:
    first = pred.points[0]
    where = (
        f"stops winning at batch {pred.crossover_batch_size}" if pred.crossover_batch_size
        else f"wins up to batch {pred.points[-1].batch_size}"
    )
    if first.speedup < 1:
        where = "never wins in the range"
    return (
        f"predicted speedup {first.speedup:.2f}x at batch {first.batch_size} with {pred.method} k={pred.num_speculative_tokens} "
        f"({acceptance_words(pred)}; a draft step costs c={pred.cost_ratio:.2f} of a target step); {where}; "
        f"best k at batch 1: {pred.optimal_k}" + (f"; {why}" if (why := break_even_words(pred)) else "")
    )


def per_batch_size_schedule(best_k_by_batch: dict[int, int], max_batch_size: int | None = None) -> list[list[int]]:
    """vLLM's ``num_speculative_tokens_per_batch_size``: ``[[start, end, k], ...]`` from best k per size.

    Each measured/predicted batch size b_i covers [b_i, b_(i+1) - 1]; the first range starts at 1
    (vLLM requires it) and the last runs to ``max_batch_size`` (default: the last size). k=0 is off.
    """
    sizes = sorted(best_k_by_batch)
    if not sizes:
        return []
    last = max(max_batch_size or sizes[-1], sizes[-1])
    ranges: list[list[int]] = []
    for i, b in enumerate(sizes):
        start = 1 if i == 0 else b
        end = sizes[i + 1] - 1 if i + 1 < len(sizes) else last
        k = int(best_k_by_batch[b])
        if ranges and ranges[-1][2] == k:
            ranges[-1][1] = end
        else:
            ranges.append([start, end, k])
    return ranges
