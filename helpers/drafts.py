"""Draft compatibility and ranking: same tokenizer (vocabularies compared), same family, size
ratio against the 1:8 to 1:12 sweet spot (SPEC section 3), and the methods each option enables."""

from __future__ import annotations

import math

from .models import catalog_names, from_catalog, tokenizer_vocab, total_params
from .schemas.decision import Thresholds
from .schemas.drafts import DraftCandidate, DraftsResult
from .schemas.models import ModelSpec

NO_GO_BELOW = Thresholds().acceptance_no_go_below  # the default; the step passes the user's acceptance_no_go_below

ALWAYS = ["ngram", "suffix"]


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
    """Same vocabulary? Directories: token -> id maps compared; catalog: tokenizer family ids."""
    if a.source == "dir" and b.source == "dir":
        va, vb = tokenizer_vocab(a.path), tokenizer_vocab(b.path)
        if va is None or vb is None:
            missing = a.name if va is None else b.name
            return None, f"{missing} has no tokenizer.json/vocab.json to compare"
        if va == vb:
            return True, f"identical vocabularies ({len(va)} tokens)"
        shared = sum(1 for t, i in va.items() if vb.get(t) == i)
        return False, (f"vocabularies differ: {len(va)} vs {len(vb)} tokens, "
                       f"{shared / max(len(va), len(vb)):.0%} of token ids agree")
    if a.source == "catalog" and b.source == "catalog":
        same = a.tokenizer == b.tokenizer
        return same, f"tokenizer {a.tokenizer} vs {b.tokenizer}"
    if a.vocab_size != b.vocab_size:
        return False, f"vocab_size {a.vocab_size} vs {b.vocab_size}"
    return None, "one model is a catalog entry: vocabularies cannot be compared (same vocab_size)"


def target_methods(target: ModelSpec, candidates: list[ModelSpec] = ()) -> list[str]:
    """Methods the target supports: draft model, EAGLE heads found among candidates, MTP layers in
    its config, and n-gram/suffix always."""
    methods = ["draft_model"]
    if any(c.eagle_head for c in candidates):
        methods += ["eagle", "eagle3"]
    if target.mtp_layers:
        methods.append("mtp")
    return methods + ALWAYS


def candidate_methods(target: ModelSpec, cand: ModelSpec, same_tok: bool | None) -> list[str]:
    if same_tok is False:
        return []
    if cand.eagle_head:
        return ["eagle3" if "3" in " ".join(cand.architectures) or "eagle3" in cand.name.lower() else "eagle"]
    return ["draft_model"]


def score_candidate(target: ModelSpec, cand: ModelSpec, low: float = 8.0, high: float = 12.0,
                    acceptance: float | None = None) -> DraftCandidate:
    tp, dp = total_params(target), total_params(cand)
    ratio = tp / dp if dp else 0.0
    rs = ratio_score(ratio, low, high)
    same_tok, tok_detail = compare_tokenizers(target, cand)
    same_fam = bool(target.family) and target.family == cand.family
    reasons = []
    if same_tok is False:
        reasons.append(f"different tokenizer ({tok_detail}): vLLM's draft_model needs the same vocabulary")
    elif same_tok is None:
        reasons.append(f"tokenizer not verified: {tok_detail}")
    else:
        reasons.append(f"same tokenizer ({tok_detail})")
    where = "in" if rs == 1.0 else ("below (draft too costly)" if ratio < low else "above (draft may be too weak)")
    reasons.append(f"size ratio 1:{ratio:.1f} is {where} the 1:{low:g}-1:{high:g} sweet spot (score {rs:.2f})")
    reasons.append("same family" if same_fam else f"different family ({cand.family or '?'} vs {target.family or '?'})")
    if cand.eagle_head:
        reasons.append("an EAGLE head: trained on this target's hidden states, ratio matters less")
    if same_tok is False or ratio <= 1:
        score = 0.0
        if ratio <= 1:
            reasons.append("not smaller than the target")
    elif acceptance is not None:
        score = 100 * (0.35 * rs + 0.15 * same_fam + 0.5 * acceptance)
        reasons.append(f"measured acceptance {acceptance:.2f}")
    else:
        score = 100 * (0.7 * (1.0 if cand.eagle_head else rs) + 0.3 * same_fam) * (0.8 if same_tok is None else 1.0)
    return DraftCandidate(
        name=cand.name, source=cand.source, params_b=round(dp / 1e9, 6), ratio=round(ratio, 2), ratio_score=rs,
        same_family=same_fam, same_tokenizer=same_tok, tokenizer_detail=tok_detail,
        methods=candidate_methods(target, cand, same_tok), score=round(score, 1), reasons=reasons,
        acceptance_rate=acceptance,
    )


def catalog_siblings(target: ModelSpec) -> list[ModelSpec]:
    """Smaller catalog models sharing the target's tokenizer id (the default candidates)."""
    out = []
    tp = total_params(target)
    for name in catalog_names():
        spec = from_catalog(name)
        if spec.name != target.name and spec.tokenizer == target.tokenizer and total_params(spec) < tp:
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
    return (f"Best draft for {r.target}: {b.name} (1:{b.ratio:.1f}, score {b.score:.0f}/100, "
            f"{'same tokenizer' if b.same_tokenizer else 'tokenizer unverified'}{acc}); "
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

    acceptance: dict[str, float] = {}
    notes: dict[str, str] = {}
    for i, cand in enumerate(candidates, 1):
        if "draft_model" not in score_candidate(target, cand, low, high).methods:
            continue
        over = {} if params.mode == "embedded" else {"draft_model": cand.path or cand.name, "method": "draft_model"}
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
