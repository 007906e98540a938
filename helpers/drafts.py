"""Draft compatibility and ranking: vLLM's vocabulary rule (equal vocab_size; another vocabulary only
as a ``use_heterogeneous_vocab`` candidate), family and generation, size ratio against the 1:8 to 1:12
sweet spot (SPEC section 3), and the methods each option enables (rules in :mod:`.compat`)."""

from __future__ import annotations

import math

from . import compat
from .models import catalog_names, from_catalog, total_params
from .schemas.decision import Thresholds
from .schemas.drafts import DraftCandidate, DraftsResult
from .schemas.models import ModelSpec

NO_GO_BELOW = Thresholds().acceptance_no_go_below  # the default; the step passes the user's acceptance_no_go_below

ALWAYS = ["ngram", "suffix"]
HETEROGENEOUS_WEIGHT = 0.5  # another vocabulary drafts only shared tokens: ranked below every same-vocabulary draft


def ratio_score(ratio: float, low: float = 8.0, high: float = 12.0) -> float:
    """1.0 inside [low, high]; falls off in log space, faster on the costly side (1:5 -> ~0.4)
    than on the small side (1:30 -> ~0.65, 1:70 -> ~0.2)."""
    if ratio <= 1:
        return 0.0
    if low <= ratio <= high:
        return 1.0
    d, sigma = (math.log(low / ratio), 0.35) if ratio < low else (math.log(ratio / high), 1.0)
    return round(math.exp(-(d * d) / (2 * sigma * sigma)), 3)


def compare_tokenizers(a: ModelSpec, b: ModelSpec) -> tuple[bool | None, str]:
    """Same vocabulary as vLLM's draft_model needs it? (True only with equal vocab_size.)"""
    v = compat.vocab_rule(a, b)
    return v.same, v.detail


def target_methods(target: ModelSpec, candidates: list[ModelSpec] = ()) -> list[str]:
    """Methods the target supports (see :func:`compat.target_methods`)."""
    return compat.target_methods(target, candidates)


def candidate_methods(target: ModelSpec, cand: ModelSpec, vocab: compat.VocabVerdict) -> list[str]:
    if cand.eagle_head:
        return [compat.eagle_method(cand)] if compat.head_names_target(cand, target) else []
    if vocab.same is False and not vocab.heterogeneous:
        return []
    return ["draft_model"]


def score_candidate(target: ModelSpec, cand: ModelSpec, low: float = 8.0, high: float = 12.0,
                    acceptance: float | None = None) -> DraftCandidate:
    tp, dp = total_params(target), total_params(cand)
    ratio = tp / dp if dp else 0.0
    rs = ratio_score(ratio, low, high)
    vocab = compat.vocab_rule(target, cand)
    same_tok = vocab.same
    fam_t, fam_c = compat.generation(target), compat.generation(cand)
    same_fam = bool(fam_t) and fam_t == fam_c
    methods = candidate_methods(target, cand, vocab)
    hetero = vocab.heterogeneous and not cand.eagle_head
    reasons = []
    if cand.eagle_head:
        reasons.append("an EAGLE head: it drafts from the target's hidden states into the target's vocabulary")
    elif same_tok is True:
        reasons.append(f"same tokenizer ({vocab.detail})")
    elif hetero:
        reasons.append(f"another vocabulary ({vocab.detail}): usable only as a heterogeneous-vocab draft, "
                       "with use_heterogeneous_vocab=true, method draft_model and greedy draft sampling")
    elif same_tok is False:
        reasons.append(f"different tokenizer ({vocab.detail}): vLLM's draft_model needs the same vocabulary")
    else:
        reasons.append(f"tokenizer not verified: {vocab.detail}")
    where = "in" if rs == 1.0 else ("below (draft too costly)" if ratio < low else "above (draft may be too weak)")
    reasons.append(f"size ratio 1:{ratio:.1f} is {where} the 1:{low:g}-1:{high:g} sweet spot (score {rs:.2f})")
    reasons.append(f"same family and generation ({fam_t})" if same_fam
                   else f"different family or generation ({fam_c or '?'} vs {fam_t or '?'})")
    if cand.eagle_head:
        named = compat.head_target(cand)
        reasons.append("an EAGLE head: trained on this target's hidden states, ratio matters less" if methods else
                       f"an EAGLE head whose config names {named or 'no target'}, not {target.name}: not usable")
    if not methods or ratio <= 1:
        score = 0.0
        if ratio <= 1:
            reasons.append("not smaller than the target")
    elif acceptance is not None:
        score = 100 * (0.35 * rs + 0.15 * same_fam + 0.5 * acceptance)
        reasons.append(f"measured acceptance {acceptance:.2f}")
    else:
        score = 100 * (0.7 * (1.0 if cand.eagle_head else rs) + 0.3 * same_fam) * (0.8 if same_tok is None else 1.0)
    if hetero and methods:
        score *= HETEROGENEOUS_WEIGHT
    return DraftCandidate(
        name=cand.name, source=cand.source, params_b=round(dp / 1e9, 6), ratio=round(ratio, 2), ratio_score=rs,
        same_family=same_fam, same_tokenizer=same_tok, tokenizer_detail=vocab.detail,
        heterogeneous_vocab=hetero and bool(methods), speculative_config=vocab.flags if hetero and methods else {},
        conditions=vocab.conditions if hetero and methods else [],
        methods=methods, score=round(score, 1), reasons=reasons, acceptance_rate=acceptance,
    )


def unusable_reason(target: ModelSpec, draft: ModelSpec | None, method: str) -> str:
    """Why vLLM would not serve ``draft`` for ``target`` with ``method`` (this module's checks: same vocabulary, an
    EAGLE head trained for this target, a draft smaller than the target), said for a prediction about the pair
    (``playbook predict``); '' when it would."""
    if method == "mtp" and not target.mtp_layers:
        return (f"{target.name} ships no MTP layers (its config has no num_nextn_predict_layers or "
                "mtp_num_hidden_layers), which vLLM's method mtp drafts with (DeepSeek-V3, Qwen3-Next, MiMo, GLM-4.5 "
                "have them); the prediction is a what-if with one decoder layer as the draft")
    if draft is None or method not in ("draft_model", "eagle", "eagle3"):
        return ""
    if draft.eagle_head:  # a head's config rarely names its target: only one naming another target is flagged
        if draft.hidden_size != target.hidden_size:
            return (f"{draft.name} has hidden size {draft.hidden_size}, {target.name} {target.hidden_size}: an EAGLE "
                    "head reads the target's hidden states, so it was trained for another target (vLLM cannot load "
                    "it for this one); the prediction is a what-if")
        named = compat.head_target(draft)
        if not named or compat.head_names_target(draft, target):
            return ""
        return (f"{draft.name} names {named} as its target in its config, not {target.name}: an EAGLE head drafts "
                "from the hidden states of the target it was trained on; the prediction is a what-if")
    cand = score_candidate(target, draft)
    if cand.heterogeneous_vocab or cand.same_tokenizer is False:
        why = cand.reasons[0]  # score_candidate's tokenizer verdict comes first
    elif cand.ratio <= 1:
        why = "not smaller than the target"
    elif method not in cand.methods:
        why = f"vLLM offers it {', '.join(cand.methods) or 'no method'}"
    else:
        return ""
    return (f"{draft.name} as the {method} draft of {target.name}: {why}; the prediction is a what-if "
            "(`playbook drafts --target ...` ranks the drafts this target can use)")


def catalog_siblings(target: ModelSpec) -> list[ModelSpec]:
    """Smaller catalog models sharing the target's tokenizer id (the default candidates); those of another
    vocab_size rank as heterogeneous-vocab candidates only."""
    out = []
    tp = total_params(target)
    for name in catalog_names():
        spec = from_catalog(name)
        if spec.name == target.name or total_params(spec) >= tp:
            continue
        if spec.eagle_head and not compat.head_names_target(spec, target):
            continue  # a head trained for another target
        if spec.eagle_head or spec.tokenizer == target.tokenizer:
            out.append(spec)
    return out


def rank(target: ModelSpec, candidates: list[ModelSpec], low: float = 8.0, high: float = 12.0,
         acceptance: dict[str, float] | None = None, no_go_below: float = NO_GO_BELOW) -> DraftsResult:
    acceptance = acceptance or {}
    rows = [score_candidate(target, c, low, high, acceptance.get(c.name)) for c in candidates]
    rows.sort(key=lambda r: (-r.score, abs(math.log(max(r.ratio, 1e-9) / math.sqrt(low * high)))))
    for i, r in enumerate(rows, 1):
        r.rank = i
    best = rows[0].name if rows and rows[0].score > 0 else ""
    result = DraftsResult(
        target=target.name, target_params_b=round(total_params(target) / 1e9, 6),
        target_methods=target_methods(target, candidates), candidates=rows, best=best,
        lossy_settings=compat.lossy_settings(),
    )
    result.finding = finding(result, no_go_below)
    return result


def finding(r: DraftsResult, no_go_below: float = NO_GO_BELOW) -> str:
    if not r.candidates:
        return f"No draft candidates for {r.target}; n-gram/suffix need none ({', '.join(r.target_methods)} supported)"
    if not r.best:
        return f"No usable draft for {r.target}: {r.candidates[0].reasons[0]}; consider {', '.join(ALWAYS)}"
    b = r.candidates[0]
    acc = "" if b.acceptance_rate is None else f", measured acceptance {b.acceptance_rate:.2f}" + (
        f" (below {no_go_below:.2f}: a no-go at this acceptance)" if b.acceptance_rate < no_go_below else "")
    tok = ("an EAGLE head naming this target" if b.methods and b.methods[0].startswith("eagle") else
           "same tokenizer" if b.same_tokenizer else
           "another vocabulary: needs use_heterogeneous_vocab=true, method draft_model, greedy draft sampling"
           if b.heterogeneous_vocab else "tokenizer unverified")
    return (f"Best draft for {r.target}: {b.name} (1:{b.ratio:.1f}, score {b.score:.0f}/100, {tok}{acc}); "
            f"methods: {', '.join(r.target_methods)}")


def candidates_for(target: ModelSpec, draft_candidates: list[str], draft_model: str) -> list[ModelSpec]:
    """The step's candidates: the listed ones, else the configured draft, else catalog siblings."""
    from .models import resolve

    names = list(draft_candidates) or ([draft_model] if draft_model else [])
    if names:
        return [resolve(n, "draft") for n in names]
    return catalog_siblings(target) if target.source == "catalog" else []


def probe(params, run, target: ModelSpec, candidates: list[ModelSpec], low: float = 8.0, high: float = 12.0,
          n_requests: int = 4) -> DraftsResult:
    """Measure each usable candidate's acceptance on a few prompts (one server each), then rank
    with the measurements. A candidate vLLM refuses keeps its static score, with the reason."""
    from .errors import PlaybookError
    from .quantization import measure_acceptance
    from .specconfig import build_speculative_config

    acceptance: dict[str, float] = {}
    notes: dict[str, str] = {}
    for i, cand in enumerate(candidates, 1):
        row = score_candidate(target, cand, low, high)
        if "draft_model" not in row.methods:
            continue
        over = {} if params.mode == "embedded" else {"draft_model": cand.path or cand.name, "method": "draft_model"}
        if row.heterogeneous_vocab and params.mode != "embedded":
            over["speculative_config"] = build_speculative_config(
                "draft_model", cand.path or cand.name, params.num_speculative_tokens, **row.speculative_config)
        try:
            delta, _ = measure_acceptance(params, run, f"10_probe_{i}", n_requests, **over)
        except PlaybookError as exc:
            notes[cand.name] = f"probe failed: {str(exc.problem).splitlines()[0][:200]}"
            continue
        if delta.acceptance_rate is not None:
            acceptance[cand.name] = round(delta.acceptance_rate, 4)
        else:
            notes[cand.name] = "probe: the server reported no speculative-decoding counters"
    result = rank(target, candidates, low, high, acceptance,
                  no_go_below=getattr(params, "acceptance_no_go_below", NO_GO_BELOW))
    for row in result.candidates:
        if row.name in notes:
            row.reasons.append(notes[row.name])
    return result
