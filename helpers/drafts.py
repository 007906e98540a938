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
    """Methods the target supports (see :func:`compat.target_methods`); for a local target, also the EAGLE methods
    of heads trained for its catalog twin (:func:`catalog_twin`)."""
    methods = compat.target_methods(target, candidates)
    twin = catalog_twin(target)
    if twin is None:
        return methods
    extra = [compat.eagle_method(h) for h in candidates if h.eagle_head and head_for(h, target)
             and not head_mismatch(target, h)]
    offered = compat.target_methods(twin, [h for h in candidates if h.eagle_head])
    for m in dict.fromkeys(extra):
        if m not in methods and m in offered:
            methods.insert(methods.index("ngram") if "ngram" in methods else len(methods), m)
    return methods


# Fields a local model's config must share with a catalog entry to be read as that entry's architecture.
_TWIN_FIELDS = ("model_type", "vocab_size", "hidden_size", "num_layers", "num_attention_heads", "num_kv_heads",
                "intermediate_size", "num_experts")


def catalog_twin(target: ModelSpec) -> ModelSpec | None:
    """The catalog entry a local model directory is a copy of (a fine-tune keeps it too): the one its name resolves
    to when the architecture agrees, else the first of the same architecture (model_type, vocabulary, widths,
    layers) and checkpoint precision. None for a catalog target, or a local one the catalog does not know."""
    if target.source == "catalog":
        return None
    from .models import _lookup

    def same(spec: ModelSpec) -> bool:
        return all(getattr(spec, f) == getattr(target, f) for f in _TWIN_FIELDS) \
            and (spec.quantization or "") == (target.quantization or "")

    found = _lookup(target.name)
    if found and same(twin := from_catalog(found[0])):
        return twin
    for name in catalog_names():
        spec = from_catalog(name)
        if not spec.eagle_head and same(spec):
            return spec
    return None


def head_for(head: ModelSpec, target: ModelSpec) -> bool:
    """The head's config names this target, or (a local target) the catalog entry it is a copy of."""
    if compat.head_names_target(head, target):
        return True
    twin = catalog_twin(target)
    return twin is not None and compat.head_names_target(head, twin)


def candidate_methods(target: ModelSpec, cand: ModelSpec, vocab: compat.VocabVerdict) -> list[str]:
    if cand.eagle_head:
        return [compat.eagle_method(cand)] if head_for(cand, target) and not head_mismatch(target, cand) else []
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
    mismatch = head_mismatch(target, cand)
    if mismatch:
        reasons.append(mismatch)
    elif cand.eagle_head:
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
    if cand.eagle_head and not mismatch:  # a head of another width or vocabulary was said first
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


def head_mismatch(target: ModelSpec, draft: ModelSpec | None) -> str:
    """Why vLLM cannot load the EAGLE/EAGLE-3 head ``draft`` for ``target`` at all ('' when it can, or when ``draft``
    is not a head): a head reads the target's hidden states (its hidden_size must be the target's) and drafts into the
    target's vocabulary (its vocab_size, the target side of an EAGLE-3 head's d2t map, must be the target's). The one
    check ``playbook predict``, ``playbook memory`` (a reason: vLLM refuses to start), the run's parameter validation
    and ``playbook drafts`` share."""
    if draft is None or not draft.eagle_head:
        return ""
    if draft.hidden_size != target.hidden_size:
        named = compat.head_target(draft)
        trained = f" (trained for {named})" if named else ""
        return (f"{draft.name}{trained} drafts from hidden size {draft.hidden_size}; {target.name} has "
                f"{target.hidden_size}: an EAGLE head reads the target's hidden states, so vLLM cannot load it for "
                "this target")
    if draft.vocab_size and target.vocab_size and draft.vocab_size != target.vocab_size:
        return (f"{draft.name} drafts into a vocabulary of {draft.vocab_size} tokens; {target.name} has "
                f"{target.vocab_size}: an EAGLE head shares the target's embedding and vocabulary, so vLLM cannot "
                "load it for this target")
    return ""


# What pair_problem found, by kind: vLLM refuses the pair at start-up, or serves it uselessly ("vocab_ids": equal
# vocab_size, other token ids: vLLM starts, and the draft's proposals are nearly all rejected).
REFUSED_KINDS = ("no_draft", "mtp", "head", "method", "vocab", "size")


def _drafts_fix(target: ModelSpec | str) -> str:
    name = target if isinstance(target, str) else target.name
    return f"`playbook drafts --target {name}` ranks the drafts it can use"


def needs_draft_problem(method: str, target: str) -> tuple[str, str]:
    """(why, fix) for a method that drafts with a model or head given none (``draft_model: ""``)."""
    what = ("an EAGLE head trained for the target" if method in ("eagle", "eagle3") else
            "a smaller model with the target's tokenizer" if method == "draft_model" else "a draft model or head")
    return (f"method {method} needs draft_model ({what}), but draft_model is empty",
            f"give draft_model ({_drafts_fix(target)}); for no draft use method ngram or suffix")


def pair_problem(target: ModelSpec, draft: ModelSpec | None, method: str,
                 heterogeneous_vocab: bool = False) -> tuple[str, str, str]:
    """(kind, why, fix) when vLLM would not serve ``draft`` for ``target`` with ``method`` (this module's checks: MTP
    layers for mtp, same vocabulary, an EAGLE head trained for this target and its method, a draft smaller than the
    target); ('', '', '') when it would. ``heterogeneous_vocab``: the speculative config sets use_heterogeneous_vocab.
    ``kind`` is one of :data:`REFUSED_KINDS`, or "vocab_ids" (vLLM serves it, but its token ids mean other tokens)."""
    if method == "mtp" and not target.mtp_layers:
        return ("mtp", f"{target.name} ships no MTP layers (its config has no num_nextn_predict_layers or "
                "mtp_num_hidden_layers), which vLLM's method mtp drafts with (DeepSeek-V3, Qwen3-Next, MiMo, GLM-4.5 "
                "have them)", "use method ngram or suffix (no draft), or draft_model/eagle3 with a draft "
                f"({_drafts_fix(target)})")
    if draft is None or method not in ("draft_model", "eagle", "eagle3"):
        return "", "", ""
    if draft.eagle_head:  # a head's config rarely names its target: only one naming another target is flagged
        head_fix = (f"give draft_model a head trained for {target.name} ({_drafts_fix(target)}), or method "
                    "draft_model with a smaller model of its tokenizer")
        if mismatch := head_mismatch(target, draft):
            return "head", mismatch, head_fix
        named = compat.head_target(draft)
        if named and not head_for(draft, target):
            return ("head", f"{draft.name} names {named} as its target in its config, not {target.name}: an EAGLE head "
                    "drafts from the hidden states of the target it was trained on", head_fix)
        if method != (own := compat.eagle_method(draft)):
            kind = "an EAGLE-3 head" if own == "eagle3" else "an EAGLE (1) head"
            return "method", f"{draft.name} is {kind}, which vLLM serves with method {own}, not {method}", \
                f"set method: {own}"
        return "", "", ""
    cand = score_candidate(target, draft)
    if cand.heterogeneous_vocab and heterogeneous_vocab and method == "draft_model":
        return "", "", ""
    if cand.heterogeneous_vocab or cand.same_tokenizer is False:
        kind = "vocab" if target.vocab_size != draft.vocab_size else "vocab_ids"
        return (kind, cand.reasons[0], f"give a draft with {target.name}'s tokenizer ({_drafts_fix(target)})"
                + (", or set use_heterogeneous_vocab in extra_server_args' --speculative-config" if cand.heterogeneous_vocab
                   else "") + ", or method ngram or suffix (no draft)")
    if cand.ratio <= 1:
        return ("size", f"not smaller than the target ({cand.params_b:.3g}B parameters vs "
                f"{total_params(target) / 1e9:.3g}B): a draft as costly as the target saves no time",
                f"give a smaller model of its tokenizer as draft_model ({_drafts_fix(target)}), or method ngram or "
                "suffix (no draft)")
    if method not in cand.methods:
        return ("method", f"{draft.name} is not an EAGLE head, and method {method} drafts with a head trained for the "
                f"target (vLLM offers it {', '.join(cand.methods) or 'no method'})",
                f"set method: draft_model to use {draft.name} as a draft model, or give draft_model an EAGLE head "
                f"({_drafts_fix(target)})")
    return "", "", ""


def unusable_reason(target: ModelSpec, draft: ModelSpec | None, method: str) -> str:
    """Why vLLM would not serve ``draft`` for ``target`` with ``method`` (:func:`pair_problem`), said for a prediction
    about the pair (``playbook predict``); '' when it would."""
    kind, why, _fix = pair_problem(target, draft, method)
    if not kind:
        return ""
    if kind in ("mtp", "head") or draft is None:
        return f"{why}; the prediction is a what-if" + ("" if kind == "head" else " with one decoder layer as the draft")
    return (f"{draft.name} as the {method} draft of {target.name}: {why}; the prediction is a what-if "
            "(`playbook drafts --target ...` ranks the drafts this target can use)")


def check_pair(target_model: str, draft_model: str, method: str, mode: str = "managed",
               heterogeneous_vocab: bool = False) -> None:
    """Raise ValueError('problem; fix') when the run would start vLLM with a (method, draft) pair it cannot serve
    (:func:`needs_draft_problem`, :func:`pair_problem` but for a vocabulary vLLM accepts): for parameter validation,
    as ``params.check_tensor_parallel`` does. Managed mode only: an external server was configured by whoever started
    it (its method and draft may be left at the defaults), and the embedded pair is fixed. Names that do not resolve
    are left to the model checks (nothing raised here)."""
    from .errors import ModelError
    from .models import resolve
    from .specconfig import NEEDS_MODEL

    if mode != "managed" or not target_model:
        return
    if method in NEEDS_MODEL and not draft_model:
        why, fix = needs_draft_problem(method, target_model)
        raise ValueError(f"{why}; {fix}")
    if method not in ("mtp", "draft_model", "eagle", "eagle3"):
        return
    try:
        target = resolve(target_model, "target")
        draft = resolve(draft_model, "draft") if method != "mtp" else None
    except ModelError:
        return
    kind, why, fix = pair_problem(target, draft, method, heterogeneous_vocab)
    if kind in REFUSED_KINDS:
        pair = f"method {method} with target {target_model}" + (f" and draft {draft_model}" if draft is not None else "")
        raise ValueError(f"{pair}: vLLM cannot serve it: {why}; {fix}")


def configured_pair_warning(target: ModelSpec, p) -> str:
    """What step 10 says of the run's own (method, draft_model) when vLLM would not serve it, or would serve it
    uselessly: in managed mode only a vocabulary vLLM accepts gets here (the rest is refused with the parameters,
    :func:`check_pair`); in external mode the parameters describe servers someone else started, so the step says it
    instead of refusing. '' on the embedded pair, and when the pair is fine or a name does not resolve."""
    from .errors import ModelError
    from .models import resolve
    from .specconfig import NEEDS_MODEL

    method, draft_model = p.method, p.draft_model
    if p.mode == "embedded":
        return ""
    if method in NEEDS_MODEL and not draft_model:
        why, fix = needs_draft_problem(method, target.name)
    else:
        try:
            draft = resolve(draft_model, "draft") if draft_model and method in ("draft_model", "eagle", "eagle3") else None
        except ModelError:
            return ""
        _kind, why, fix = pair_problem(target, draft, method)
    if not why:
        return ""
    said = ("the servers' configuration as the parameters describe it" if p.mode == "external"
            else "the configured draft")
    return (f"{said} (method {method}, draft_model {draft_model or '(none)'}) is not one vLLM serves usefully: {why}; "
            f"{fix}" + ("; if your servers run another configuration, set method and draft_model to describe it (the "
                        "memory budget and the report's launch command follow them)" if p.mode == "external" else ""))


def catalog_siblings(target: ModelSpec) -> list[ModelSpec]:
    """Smaller catalog models sharing the target's tokenizer id (the default candidates); those of another
    vocab_size rank as heterogeneous-vocab candidates only. A local target: those of its catalog twin
    (:func:`catalog_twin`), else the smaller catalog models of its family and vocab_size."""
    if target.source != "catalog":
        return local_siblings(target)
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


def local_siblings(target: ModelSpec) -> list[ModelSpec]:
    """Catalog drafts for a local target directory: its catalog twin's siblings (EAGLE heads trained for the twin
    included), else the smaller catalog models of the same family with the same vocab_size (vLLM's rule for
    draft_model; the token -> id maps cannot be compared with a catalog entry, which the ranking says)."""
    twin = catalog_twin(target)
    if twin is not None:
        return [s for s in catalog_siblings(twin) if s.name != target.name]
    tp = total_params(target)
    out = []
    for name in catalog_names():
        spec = from_catalog(name)
        if spec.eagle_head or spec.vocab_size != target.vocab_size or not target.family \
                or spec.family != target.family or total_params(spec) >= tp:
            continue
        out.append(spec)
    return out


def rank(target: ModelSpec, candidates: list[ModelSpec], low: float = 8.0, high: float = 12.0,
         acceptance: dict[str, float] | None = None, no_go_below: float = NO_GO_BELOW) -> DraftsResult:
    acceptance = acceptance or {}
    rows = [score_candidate(target, c, low, high, acceptance.get(c.name)) for c in candidates]
    twin = catalog_twin(target) if any(c.source == "catalog" for c in candidates) else None
    for row in rows:
        if twin is not None and row.source == "catalog":
            row.reasons.append(f"a catalog entry, offered as {target.name}'s config matches catalog {twin.name}: "
                               "serve it from its local directory (--candidates DIR, or the run's draft_candidates)")
    rows.sort(key=lambda r: (-r.score, abs(math.log(max(r.ratio, 1e-9) / math.sqrt(low * high)))))
    for i, r in enumerate(rows, 1):
        r.rank = i
    best = rows[0].name if rows and rows[0].score > 0 else ""
    result = DraftsResult(
        target=target.name, target_params_b=round(total_params(target) / 1e9, 6),
        target_methods=target_methods(target, candidates), candidates=rows, best=best,
        lossy_settings=compat.lossy_settings(),
    )
    result.finding = finding(result, no_go_below, local=target.source == "dir" and target.name != "embedded-target")
    return result


def why_unusable(c: DraftCandidate) -> str:
    """The reason a candidate scored 0 (its reasons also say what is right about it: "same tokenizer")."""
    decisive = next((r for r in c.reasons if r.startswith("not smaller than the target") or "not usable" in r
                     or "vLLM cannot load it" in r or r.startswith(("different tokenizer", "another vocabulary"))), None)
    return decisive or c.reasons[0]


def finding(r: DraftsResult, no_go_below: float = NO_GO_BELOW, local: bool = False) -> str:
    if not r.candidates:
        if local:  # the catalog knows no model of its architecture: the user's own drafts are elsewhere
            return (f"No draft candidates for {r.target}: a local target whose config matches no catalog model, so "
                    "no catalog draft is offered; list your drafts with --candidates DIR,... (the run's "
                    f"draft_candidates), or use a lookup: {', '.join(ALWAYS)} need no draft "
                    f"({', '.join(r.target_methods)} supported)")
        return f"No draft candidates for {r.target}; n-gram/suffix need none ({', '.join(r.target_methods)} supported)"
    if not r.best:
        return f"No usable draft for {r.target}: {why_unusable(r.candidates[0])}; consider {', '.join(ALWAYS)}"
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
    return catalog_siblings(target)  # a local target: its catalog twin's, or its family's (local_siblings)


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
        if cand.source == "catalog" and target.source == "dir" and params.mode != "embedded":
            notes[cand.name] = ("not probed: a catalog entry offered for a local target, with no weights here; give "
                                "its directory in draft_candidates to measure it")
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
