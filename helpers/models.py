"""Model facts: from a local directory (config.json + safetensors headers) or the shipped catalog.

``resolve("Llama-3.1-70B")``, ``resolve("/models/my-draft")`` and ``resolve("embedded", role="draft")``
all return a :class:`ModelSpec`. Nothing here loads weights or needs a network.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import re
import struct
import warnings
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .embedded import tiny_pair
from .errors import ModelError
from .schemas.models import ModelSpec

# safetensors dtype names -> bytes per element
DTYPE_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2,
               "I16": 2, "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1, "BOOL": 1}


# -- catalog ----------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _catalog() -> dict[str, dict[str, Any]]:
    raw = yaml.safe_load(resources.files("playbook.helpers.catalog").joinpath("models.yaml").read_text())
    families, out = raw["families"], {}
    for name, entry in raw["models"].items():
        if "like" in entry:  # a re-release of an earlier entry: its architecture, with the fields given here
            if entry["like"] not in out:
                raise ValueError(f"models.yaml: {name} is like {entry['like']!r}, which is not an entry above it")
            like = {k: v for k, v in out[entry["like"]].items() if k not in ("aliases", "source")}
            merged = {**like, **entry}
        else:
            merged = {**families.get(entry.get("base", ""), {}), **entry}
        merged.pop("base", None)
        merged.pop("like", None)
        out[name] = merged
    return out


def catalog_names() -> list[str]:
    return list(_catalog())


def _lookup(name: str) -> tuple[str, dict[str, Any]] | None:
    key = name.strip().lower()
    for cname, entry in _catalog().items():
        names = [cname, *entry.get("aliases", [])]
        if key in {n.lower() for n in names} or key.split("/")[-1] in {n.lower().split("/")[-1] for n in names}:
            return cname, entry
    return None


def closest_names(name: str, n: int = 5) -> list[str]:
    pool = {c.lower(): c for c in catalog_names()}
    for c, e in _catalog().items():
        pool.update({a.lower(): c for a in e.get("aliases", [])})
    hits = difflib.get_close_matches(name.strip().lower(), list(pool), n=n * 3, cutoff=0.3)
    seen: list[str] = []
    for h in hits:
        if pool[h] not in seen:
            seen.append(pool[h])
    return seen[:n]


def layer_types(num_layers: int, sliding_window: int, pattern: int) -> list[str]:
    """Per-layer attention kind. pattern N: every Nth layer is global (Gemma-2: 2, Gemma-3: 6)."""
    if not sliding_window:
        return []
    if pattern <= 1:
        return ["sliding"] * num_layers
    return ["sliding" if (i + 1) % pattern else "full" for i in range(num_layers)]


def interval_layer_types(num_layers: int, interval: int, local: str) -> list[str]:
    """Every ``interval``-th layer full attention, the others ``local``: Qwen3-Next's full_attention_interval (4; the
    rest Gated DeltaNet, 'linear': transformers Qwen3NextConfig.layer_types) and Llama-4's no_rope_layer_interval (4;
    the RoPE layers chunked-local, 'chunked': vllm/model_executor/models/llama4.py Llama4Attention)."""
    return ["full" if (i + 1) % interval == 0 else local for i in range(num_layers)] if interval > 0 else []


def _catalog_layer_types(e: dict[str, Any]) -> list[str]:
    """A catalog entry's kinds: full_attention_interval (linear), attention_chunk_size (+ no_rope_layer_interval,
    default 4: chunked) or sliding_window + sliding_window_pattern (sliding)."""
    if e.get("full_attention_interval"):
        return interval_layer_types(e["num_layers"], e["full_attention_interval"], "linear")
    if e.get("attention_chunk_size"):
        return interval_layer_types(e["num_layers"], e.get("no_rope_layer_interval", 4), "chunked")
    return layer_types(e["num_layers"], e.get("sliding_window", 0), e.get("sliding_window_pattern", 0))


def from_catalog(name: str) -> ModelSpec:
    found = _lookup(name)
    if not found:
        close = closest_names(name)
        raise ModelError(
            f"unknown model '{name}': not a local directory and not in the catalog"
            + (f"; closest catalog names: {', '.join(close)}" if close else ""),
            "give a local model directory (with config.json) or one of `playbook memory --list-models`",
        )
    cname, e = found
    e = dict(e)
    fields = {k: v for k, v in e.items() if k in ModelSpec.model_fields and k not in ("source", "name")}
    fields["layer_types"] = _catalog_layer_types(e)
    return ModelSpec(name=cname, source="catalog", reference=e.get("source", ""), **fields)


# -- local directories ------------------------------------------------------------------------
def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a .safetensors file: 8-byte little-endian length, then JSON."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        if head.startswith(b"version") and fh.read(len(LFS_POINTER) - 8).startswith(LFS_POINTER[8:]):
            raise ModelError(f"{path} is a Git LFS pointer, not the weights (a `git clone` without git-lfs leaves "
                             "these small text files in place of the safetensors)",
                             f"run `git lfs install && git lfs pull` in {Path(path).parent}, or download the model "
                             "with `huggingface-cli download ORG/NAME --local-dir DIR`")
        if len(head) != 8:
            raise ModelError(f"{path} is not a safetensors file (shorter than 8 bytes)", "re-download the weights")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES:
            raise ModelError(f"{path} has a corrupt safetensors header (it claims {n} bytes of header)",
                             "re-download the weights")
        try:
            header = json.loads(fh.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ModelError(f"{path} has a corrupt safetensors header", "re-download the weights") from None
    if not isinstance(header, dict):
        raise ModelError(f"{path} has a corrupt safetensors header (not a JSON object)", "re-download the weights")
    return header


LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"  # how a Git LFS pointer file opens (git-lfs spec)


def hf_cache_snapshot(d: Path) -> Path | None:
    """The snapshot directory a Hugging Face cache entry (``models--org--name`` holding ``snapshots/``) stands for:
    the one ``refs/main`` names, else the only one; None when ``d`` is not such an entry. Raises when it has several
    snapshots and no refs/main (naming them), or none."""
    snaps = d / "snapshots"
    if not d.name.startswith("models--") or not snaps.is_dir():
        return None
    found = sorted(p for p in snaps.iterdir() if p.is_dir())
    ref = d / "refs" / "main"
    if ref.is_file() and (main := snaps / ref.read_text().strip()).is_dir():
        return main
    if len(found) == 1:
        return found[0]
    if not found:
        raise ModelError(f"{d} is a Hugging Face cache entry with no snapshot downloaded",
                         f"download it: `huggingface-cli download {d.name.removeprefix('models--').replace('--', '/')}`")
    raise ModelError(f"{d} is a Hugging Face cache entry with {len(found)} snapshots and no refs/main to choose one "
                     f"({', '.join(p.name[:12] for p in found[:5])})", f"give one snapshot directory, e.g. {found[-1]}")


# The safetensors format caps the header at 100 MB (huggingface/safetensors, MAX_HEADER_SIZE in safetensors/src/tensor.rs).
MAX_HEADER_BYTES = 100_000_000


def tensor_inventory(model_dir: Path) -> dict[str, tuple[str, int]]:
    """name -> (dtype, number of elements), over every *.safetensors file in the directory."""
    out: dict[str, tuple[str, int]] = {}
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        for name, info in read_safetensors_header(f).items():
            if name == "__metadata__":
                continue
            shape = info.get("shape") if isinstance(info, dict) else None
            if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape) \
                    or not isinstance(info.get("dtype"), str):
                raise ModelError(f"{f} has a corrupt safetensors header (tensor '{str(name)[:80]}' has no valid "
                                 "dtype and shape)", "re-download the weights")
            count = 1
            for d in shape:
                count *= d
            out[name] = (info["dtype"], count)
    return out


_REQUIRED = {
    "hidden_size": ("hidden_size", "d_model", "n_embd"),
    "num_layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "num_attention_heads": ("num_attention_heads", "n_head"),
    "vocab_size": ("vocab_size",),
}


def _pick(cfg: dict, names: tuple[str, ...], field: str, where: Path) -> Any:
    for n in names:
        if cfg.get(n) is not None:
            return _positive_int(cfg[n], n, where)
    raise ModelError(
        f"{where} lacks the field '{field}' (looked for {', '.join(names)})",
        f"add '{names[0]}' to {where.name}, or use a catalog name for this architecture",
    )


def _read_config_json(cfg_path: Path) -> dict:
    try:
        top = json.loads(cfg_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ModelError(f"{cfg_path} is not UTF-8 text (byte {exc.start})", "fix or re-download config.json") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"{cfg_path} is not valid JSON: {exc}", "fix or re-download config.json") from None
    if not isinstance(top, dict):
        raise ModelError(f"{cfg_path} holds a JSON {type(top).__name__}, not an object of config fields",
                         "fix or re-download config.json")
    return top


# The text model's type inside a composite config whose text_config names none: the class transformers builds for it
# (Gemma3Config -> Gemma3TextConfig, LlavaConfig -> LlamaConfig by default, Llama4Config -> Llama4TextConfig).
_TEXT_MODEL_TYPE = {"gemma3": "gemma3_text", "llava": "llama", "llama4": "llama4_text"}

# transformers' config-class defaults of the fields read here (each class's __init__ in transformers 5.19; the same in
# 4.5x), for when transformers cannot read config.json itself (not installed, or too old for the model type). vLLM
# reads configs through transformers, so a field a config leaves out is served at these values.
_CONFIG_DEFAULTS: dict[str, dict[str, Any]] = {
    "gemma": {"vocab_size": 256000, "hidden_size": 3072, "intermediate_size": 24576,  # GemmaConfig
              "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 16, "head_dim": 256,
              "tie_word_embeddings": True},
    "gemma2": {"vocab_size": 256000, "hidden_size": 2304, "intermediate_size": 9216,  # Gemma2Config
               "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
               "tie_word_embeddings": True, "max_position_embeddings": 8192},
    "gemma3_text": {"vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216,  # Gemma3TextConfig
                    "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
                    "tie_word_embeddings": True, "max_position_embeddings": 131072, "sliding_window": 4096},
    "llama": {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,  # LlamaConfig (head_dim =
              "num_hidden_layers": 32, "num_attention_heads": 32, "tie_word_embeddings": False},  # hidden / heads)
    "qwen3": {"vocab_size": 151936, "hidden_size": 4096, "intermediate_size": 22016,  # Qwen3Config: head_dim 128
              "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,  # whatever the width
              "head_dim": 128, "tie_word_embeddings": False},
}


@lru_cache(maxsize=256)
def _transformers_config(cfg_path: str, stamp: tuple[int, int]) -> tuple[dict, dict, bool | None] | None:
    """(text config, vision config, tie_word_embeddings) as ``transformers.AutoConfig`` reads config.json, every field
    the file leaves out at its config class's default: what vLLM loads (vllm/transformers_utils/config.py reads it
    through AutoConfig). None when transformers is not installed or cannot read the file (a model_type it does not
    know, remote code, a value it refuses): the caller then reads the JSON itself. Offline (a local directory);
    ``stamp`` (mtime, size) renews the cache when the file changes. Importing transformers (and torch) costs ~2-3 s
    once per process."""
    try:
        from transformers import AutoConfig
        from transformers.utils import logging as hf_logging
    except Exception:  # noqa: BLE001 - not installed, or its torch is broken: read the JSON
        return None
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its notes on rope fields etc. are no concern of a budget
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            conf = AutoConfig.from_pretrained(str(Path(cfg_path).parent), local_files_only=True,
                                              trust_remote_code=False)
            text = conf.get_text_config()
            vision = getattr(conf, "vision_config", None)
            text_dict = text.to_dict()
            tie = text_dict.get("tie_word_embeddings", getattr(conf, "tie_word_embeddings", None))
            return text_dict, (vision.to_dict() if hasattr(vision, "to_dict") else {}), tie
    except Exception:  # noqa: BLE001 - anything transformers refuses is read from the JSON (and judged there)
        return None
    finally:
        hf_logging.set_verbosity(level)


# The fields read from a plain Llama config (no MoE, no sliding window): one that states them all is read as written,
# without importing transformers (~3 s of CPU per process), since AutoConfig would return the file's own values (the
# tiny embedded pair, saved by transformers, is such a file).
_LLAMA_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
                 "intermediate_size", "vocab_size", "tie_word_embeddings", "max_position_embeddings", "attention_bias")


def _states_every_field(top: dict) -> bool:
    return top.get("model_type") == "llama" and not any(k in top for k in ("text_config", "vision_config", "auto_map")) \
        and all(top.get(k) is not None for k in _LLAMA_FIELDS)


def _text_config(cfg_path: Path, top: dict) -> tuple[dict, dict]:
    """The text model's config fields as vLLM sees them, and the vision tower's config ({} for a text-only model).

    Through transformers when it can read the file: its text config (a multimodal model's text_config, else the
    whole config) with every default filled in, over the raw JSON (which keeps fields transformers drops, such as
    quantization_config). Else the raw JSON (text_config over the top level) over :data:`_CONFIG_DEFAULTS` of its
    model_type. ``tie_word_embeddings`` is the file's own value (text_config first), else the config class's default
    (Gemma: True; Llama, Mistral, Qwen: False), else False for a type transformers does not know."""
    raw_text = top["text_config"] if isinstance(top.get("text_config"), dict) else {}
    st = cfg_path.stat()
    loaded = None if _states_every_field(top) else \
        _transformers_config(str(cfg_path.resolve()), (st.st_mtime_ns, st.st_size))
    if loaded is not None:
        text, vision, default_tie = copy.deepcopy(loaded)
        # a text_config transformers did not make the text config (its class keeps it as a plain field) stays on top
        cfg = {**top, **text, **raw_text} if isinstance(text.get("text_config"), dict) else {**top, **raw_text, **text}
        if not vision and isinstance(top.get("vision_config"), dict):
            vision = dict(top["vision_config"])
    else:
        mt = raw_text.get("model_type") or (_TEXT_MODEL_TYPE.get(str(top.get("model_type"))) if raw_text else None) \
            or top.get("model_type")
        defaults = _CONFIG_DEFAULTS.get(str(mt), {})
        cfg = {**defaults, **top, **raw_text}
        vision = dict(top["vision_config"]) if isinstance(top.get("vision_config"), dict) else {}
        default_tie = defaults.get("tie_word_embeddings")
    explicit = next((c["tie_word_embeddings"] for c in (raw_text, top) if c.get("tie_word_embeddings") is not None),
                    None)
    cfg["tie_word_embeddings"] = bool(explicit if explicit is not None else default_tie or False)
    return cfg, vision


def from_dir(model_dir: str | Path, name: str | None = None) -> ModelSpec:
    d = Path(model_dir).expanduser()
    cfg_path = d / "config.json"
    if not cfg_path.exists() and (snapshot := hf_cache_snapshot(d)) is not None:  # ~/.cache/huggingface/hub/models--*
        return from_dir(snapshot, name=name or d.name.removeprefix("models--").split("--")[-1])
    if not cfg_path.exists():
        raise ModelError(f"{d} has no config.json", "point to a Hugging Face model directory (config.json, tokenizer, *.safetensors)")
    top = _read_config_json(cfg_path)
    cfg, vision = _text_config(cfg_path, top)
    v = {k: _pick(cfg, names, k, cfg_path) for k, names in _REQUIRED.items()}
    for key in ("num_key_value_heads", "head_dim", "intermediate_size", "kv_lora_rank"):
        if cfg.get(key) is not None:
            v_key = _positive_int(cfg[key], key, cfg_path, allow_zero=True)
            cfg = {**cfg, key: v_key}
    kv_heads = cfg.get("num_key_value_heads") or 0
    if kv_heads and v["num_attention_heads"] % kv_heads:  # grouped-query attention: whole groups of heads
        raise ModelError(f"{cfg_path}: 'num_attention_heads' ({v['num_attention_heads']}) is not a multiple of "
                         f"'num_key_value_heads' ({kv_heads}): no model has that shape",
                         f"fix the two fields in {cfg_path.name} or re-download it")
    try:
        spec = _spec_from_config(d, name, top, cfg, cfg_path, v, vision)
    except ModelError:
        raise
    except (TypeError, ValueError, ZeroDivisionError, AttributeError, KeyError) as exc:
        raise ModelError(f"{cfg_path} has a field of an unexpected type or value ({type(exc).__name__}: "
                         f"{str(exc)[:200]})", "fix or re-download config.json, or use a catalog name") from None
    return spec.model_copy(update={"defaulted": _defaulted(top, cfg)})


def _defaulted(top: dict, cfg: dict) -> dict[str, int]:
    """The shape fields config.json (its text_config, else its top level) leaves out, at the values filled in; a
    missing head_dim or num_key_value_heads only where its default is not the plain one (hidden / heads; heads)."""
    raw = {**top, **(top["text_config"] if isinstance(top.get("text_config"), dict) else {})}
    out = {names[0]: cfg[names[0]] for names in _REQUIRED.values()
           if not any(raw.get(n) is not None for n in names) and isinstance(cfg.get(names[0]), int)}
    heads, hidden = cfg.get("num_attention_heads"), cfg.get("hidden_size")
    plain = {"num_key_value_heads": heads, "head_dim": hidden // heads if isinstance(hidden, int) and heads else None}
    out.update({f: cfg[f] for f, usual in plain.items()
                if raw.get(f) is None and isinstance(cfg.get(f), int) and cfg[f] != usual
                and not (f == "head_dim" and cfg.get("kv_lora_rank"))})  # MLA: its own head shapes
    return out


def _positive_int(value: Any, field: str, where: Path, allow_zero: bool = False) -> int:
    """A config field that must be a whole number (> 0, or >= 0 with allow_zero), below 2**31 (no layer,
    head or vocabulary count comes near it: a larger one is a corrupt file, and would give absurd budgets)."""
    if isinstance(value, bool) or not isinstance(value, int) or not (0 if allow_zero else 1) <= value < 2**31:
        raise ModelError(f"{where}: '{field}' is {str(json.dumps(value))[:60]}, not a whole number "
                         f"{'>= 0' if allow_zero else '>= 1'} below 2**31", f"fix '{field}' in {where.name} or re-download it")
    return value


def _spec_from_config(d: Path, name: str | None, top: dict, cfg: dict, cfg_path: Path, v: dict,
                      vision: dict | None = None) -> ModelSpec:
    heads, num_layers = v["num_attention_heads"], v["num_layers"]
    kv_heads = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or v["hidden_size"] // heads  # the config class's own (Gemma: 256) when it has one
    inter = cfg.get("intermediate_size") or cfg.get("ffn_dim") or 0
    is_mla = bool(cfg.get("kv_lora_rank"))
    model_type = cfg.get("model_type", "")
    archs = top.get("architectures") or []
    kinds = config_layer_kinds(cfg, num_layers, model_type)
    sw = (cfg.get("sliding_window") or 0) if "sliding" in kinds else 0
    chunk = (cfg.get("attention_chunk_size") or 0) if "chunked" in kinds else 0
    mtp = cfg.get("num_nextn_predict_layers") or cfg.get("mtp_num_hidden_layers") or 0
    experts = cfg.get("num_local_experts") or cfg.get("n_routed_experts") or cfg.get("num_experts") or 0
    # Mixtral, gpt-oss and Llama-4 size a routed expert with intermediate_size; the others with moe_intermediate_size
    expert_width = cfg.get("moe_intermediate_size") or (inter if cfg.get("num_local_experts") else 0)
    moe_layers = sum(moe_layer_flags(cfg, num_layers)) if experts else 0
    inventory = {n: t for n, t in tensor_inventory(d).items() if not (mtp and _is_mtp_tensor(n, num_layers))}
    vision_tensors = sum(n for name_, (_, n) in inventory.items() if _is_vision_tensor(name_))
    exact = sum(n for _, n in inventory.values())
    on_disk = sum(n * DTYPE_BYTES.get(dt, 2) for dt, n in inventory.values())
    dtypes = sorted({dt for dt, _ in inventory.values()})
    spec = ModelSpec(
        name=name or d.name, source="dir", path=str(d.resolve()), reference=str(cfg_path.resolve()),
        family=_family(model_type, archs), architectures=archs, model_type=model_type,
        tokenizer=tokenizer_fingerprint(d),
        hidden_size=v["hidden_size"], num_layers=num_layers, num_attention_heads=heads,
        num_kv_heads=kv_heads, head_dim=head_dim, vocab_size=v["vocab_size"],
        # the dense layers' MLP; Llama-4 gives them their own width (Llama4TextConfig.intermediate_size_mlp)
        intermediate_size=cfg.get("intermediate_size_mlp") or inter,
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings")),  # the file's, else its config class's default
        # Qwen2-family attention has q/k/v biases (vllm/model_executor/models/qwen2.py, qwen2_moe.py: bias=True)
        attention_bias=bool(cfg.get("attention_bias", model_type.startswith("qwen2"))),
        attention="mla" if is_mla else "gqa",
        kv_lora_rank=cfg.get("kv_lora_rank") or 0, qk_rope_head_dim=cfg.get("qk_rope_head_dim") or 0,
        qk_nope_head_dim=cfg.get("qk_nope_head_dim") or 0, v_head_dim=cfg.get("v_head_dim") or 0,
        q_lora_rank=cfg.get("q_lora_rank") or 0,
        num_experts=experts, num_experts_per_tok=cfg.get("num_experts_per_tok") or 0,
        moe_intermediate_size=expert_width if experts else 0,
        num_shared_experts=_shared_experts(cfg, model_type, expert_width) if experts else 0,
        # ModelSpec.first_k_dense counts the dense (non-MoE) layers: the first k for DeepSeek-V3, every other one for
        # Llama-4 Maverick; the parameter and per-pass counts only need how many
        first_k_dense=num_layers - moe_layers if experts else 0,
        sliding_window=sw, attention_chunk_size=chunk, layer_types=kinds, mtp_layers=mtp,
        max_position_embeddings=derived_max_len(cfg),
        # Qwen3-Next's q_proj also yields the output gate (vllm/model_executor/models/qwen3_next.py Qwen3NextAttention)
        attn_output_gate=bool(cfg.get("attn_output_gate", model_type.startswith("qwen3_next"))),
        **{f: cfg.get(f) or 0 for f in _LINEAR_FIELDS},
        eagle_head=any("eagle" in a.lower() for a in archs) or "eagle" in d.name.lower(),
        draft_vocab_size=int(cfg.get("draft_vocab_size") or 0),
        param_count=exact / 1e9 if exact else 0.0, exact_params=exact, weight_bytes_on_disk=on_disk,
        dtype=str(top.get("torch_dtype") or cfg.get("dtype") or (dtypes[0] if dtypes else "bfloat16")),
        quantization=_checkpoint_precision(top.get("quantization_config") or _hf_quant_config(d)),
    )
    # the vision tower vLLM loads with a multimodal model: its own tensors when the safetensors are here, else an
    # estimate from vision_config (counted in the weights, never streamed per decode pass)
    extra = vision_tensors if inventory else (vision_tower_params(top, vision or {}, v["hidden_size"]) if vision else 0)
    update: dict[str, Any] = {"extra_params": extra / 1e9} if extra else {}
    if not inventory and (total := _index_total_size(d)):
        # an index without its shards: its total, less the MTP module(s) it holds, which vLLM loads only as the draft
        # of method 'mtp' (vllm/model_executor/models/deepseek_v2.py load_weights skips the names
        # get_spec_layer_idx_from_weight_name finds). An index whose weight_map is empty is taken to hold them as
        # DeepSeek-V3's does: model.layers.61.* with copies of the embedding and lm_head.
        names = _index_weight_names(d) if mtp else []
        held = [n for n in names if _is_mtp_tensor(n, num_layers)] if names else \
            (["embed_tokens", "shared_head.head"] if mtp else [])
        update["weight_bytes_on_disk"] = max(0, total - (_mtp_checkpoint_bytes(spec, held) if held else 0))
    return spec.model_copy(update=update) if update else spec


# A config's layer_types names -> ModelSpec kinds, first match wins ('full' otherwise)
_KIND_NAMES = (("linear", "linear"), ("mamba", "linear"), ("chunked", "chunked"), ("sliding", "sliding"))
_LINEAR_FIELDS = ("linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim",
                  "linear_conv_kernel_dim")


def _layer_kind(name: Any) -> str:
    """'linear_attention' (Qwen3-Next's Gated DeltaNet) or 'mamba' -> linear, 'chunked_attention' (Llama-4) -> chunked,
    'sliding_attention' -> sliding, anything else full."""
    return next((kind for key, kind in _KIND_NAMES if key in str(name)), "full")


def config_layer_kinds(cfg: dict, num_layers: int, model_type: str) -> list[str]:
    """Per-layer kinds as vLLM builds the layers ([] when all are full attention): the config's layer_types (as
    transformers fills them in), else Qwen3-Next's full_attention_interval, Llama-4's no_rope_layers (1 = a RoPE,
    chunked-local layer; its interval of 4 when empty), Gemma-2/3's and Mistral's sliding windows. Chunked layers
    without an attention_chunk_size are full (vllm llama4.py: ``use_chunked_local_attn``); so are linear layers
    without Gated DeltaNet's linear_* sizes, whose state this budget cannot size (more memory, not less)."""
    sw = cfg.get("sliding_window") or 0
    if cfg.get("layer_types"):
        kinds = [_layer_kind(t) for t in cfg["layer_types"]]
    elif cfg.get("full_attention_interval") and cfg.get("linear_num_value_heads"):
        kinds = interval_layer_types(num_layers, cfg["full_attention_interval"], "linear")
    elif cfg.get("attention_chunk_size") and model_type.startswith("llama4"):
        nope = cfg.get("no_rope_layers") or []
        kinds = ["chunked" if r else "full" for r in nope] if len(nope) == num_layers else \
            interval_layer_types(num_layers, cfg.get("no_rope_layer_interval") or 4, "chunked")
    elif sw and model_type.startswith("gemma2"):
        kinds = layer_types(num_layers, sw, 2)
    elif sw and model_type.startswith("gemma3"):
        kinds = layer_types(num_layers, sw, cfg.get("sliding_window_pattern", 6))
    elif sw and cfg.get("use_sliding_window", True) and model_type in ("mistral", "mixtral"):
        kinds = ["sliding"] * num_layers
    else:
        kinds = []
    if not cfg.get("attention_chunk_size"):
        kinds = ["full" if k == "chunked" else k for k in kinds]
    if not all(cfg.get(f) for f in _LINEAR_FIELDS):  # a linear layer whose state is not Gated DeltaNet's (Kimi-Linear,
        kinds = ["full" if k == "linear" else k for k in kinds]  # MiniMax, Mamba): budgeted as full, never as free
    if not sw:
        kinds = ["full" if k == "sliding" else k for k in kinds]
    return kinds if any(k != "full" for k in kinds) else []


def moe_layer_flags(cfg: dict, num_layers: int) -> list[bool]:
    """Which decoder layers are MoE layers (the others have a dense MLP), as vLLM builds them:
    Llama-4: (i + 1) % interleave_moe_layer_step == 0 (vllm/model_executor/models/llama4.py, Llama4DecoderLayer:
    Maverick's step 2 makes every other layer MoE, Scout's 1 every layer); Qwen2-MoE / Qwen3-MoE: (i + 1) %
    decoder_sparse_step == 0 and i not in mlp_only_layers (qwen2_moe.py, qwen3_moe.py); DeepSeek-V2/V3, Kimi-K2,
    GLM-4.5: i >= first_k_dense_replace and i % moe_layer_freq == 0 (deepseek_v2.py, DeepseekV2DecoderLayer)."""
    step = cfg.get("interleave_moe_layer_step")
    sparse = cfg.get("decoder_sparse_step") or 1
    only = {i for i in (cfg.get("mlp_only_layers") or []) if isinstance(i, int)}
    first = cfg.get("first_k_dense_replace") or 0
    freq = cfg.get("moe_layer_freq") if isinstance(cfg.get("moe_layer_freq"), int) and cfg["moe_layer_freq"] > 0 else 1
    flags = []
    for i in range(num_layers):
        if isinstance(step, int) and not isinstance(step, bool):
            flags.append(step > 0 and (i + 1) % step == 0)
            continue
        flags.append(i >= first and i % freq == 0 and (i + 1) % max(1, int(sparse)) == 0 and i not in only)
    return flags


def _shared_experts(cfg: dict, model_type: str, expert_width: int) -> int:
    """Shared experts per MoE layer, in units of one routed expert's width (ModelSpec.num_shared_experts).
    Qwen2-MoE / Qwen3-Next: one shared MLP of shared_expert_intermediate_size (Qwen2-57B-A14B: 20480 = 8 routed
    widths of 2560; vllm/model_executor/models/qwen2_moe.py Qwen2MoeSparseMoeBlock; its 1-wide shared_expert_gate is
    left out), rounded when not a whole multiple; Llama-4: one shared expert as wide as a routed one (llama4.py
    Llama4MoE.shared_expert, intermediate_size); DeepSeek-V2/V3, Kimi-K2, GLM-4.5: n_shared_experts."""
    width = cfg.get("shared_expert_intermediate_size") or 0
    if isinstance(width, int) and width > 0 and expert_width:
        return max(1, round(width / expert_width))
    if str(model_type).startswith("llama4"):
        return 1
    return int(cfg.get("n_shared_experts") or cfg.get("moe_num_shared_experts") or 0)


# Tensors of a vision tower and its projector, as multimodal checkpoints name them (Qwen2-VL/2.5-VL: visual.*;
# LLaVA, Gemma-3: vision_tower.*, multi_modal_projector.*; Llama-4: vision_model.*; others: vision_encoder, mm_projector)
_VISION_NAMES = ("visual.", "vision_tower", "vision_model", "vision_encoder", "multi_modal_projector", "mm_projector")
_LAYER_INDEX = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def _is_vision_tensor(name: str) -> bool:
    return any(k in name for k in _VISION_NAMES)


def _is_mtp_tensor(name: str, num_layers: int) -> bool:
    """A tensor of a multi-token-prediction module (call only when the config has MTP layers): DeepSeek-V3 and GLM-4.5
    number it after the last decoder layer (model.layers.61.* for 61 layers: vllm deepseek_v2.py
    get_spec_layer_idx_from_weight_name); Qwen3-Next keeps it under mtp.*, MiMo under model.mtp_layers.*."""
    if _is_vision_tensor(name):
        return False
    if name.startswith("mtp.") or ".mtp." in name or "mtp_layers." in name:
        return True
    m = _LAYER_INDEX.search(name)
    return bool(m) and int(m.group(1)) >= num_layers


def _index_weight_names(d: Path) -> list[str]:
    """Tensor names of model.safetensors.index.json's weight_map ([] when absent or unreadable)."""
    idx = d / "model.safetensors.index.json"
    try:
        names = json.loads(idx.read_text()).get("weight_map") or {} if idx.exists() else {}
    except (ValueError, OSError, AttributeError):
        return []
    return list(names) if isinstance(names, dict) else []


def _mtp_checkpoint_bytes(spec: ModelSpec, names: list[str]) -> int:
    """Bytes the MTP module(s) take in the checkpoint: :func:`mtp_params` at the checkpoint's precision, plus the copies
    of the embedding and lm_head DeepSeek-V3 stores with it (model.layers.61.embed_tokens / shared_head.head) when the
    index names them (DeepSeek-V3: ~15.4 GB of its 688.6 GB)."""
    from .quantization import BYTES_PER_PARAM, weight_bytes

    parts = dict(mtp_params(spec))
    copies = spec.mtp_layers or 1
    if any("embed_tokens" in n for n in names):
        parts["embedding"] += copies * spec.vocab_size * spec.hidden_size
    if any("shared_head.head" in n or "lm_head" in n for n in names):
        parts["lm_head"] += copies * spec.vocab_size * spec.hidden_size
    precision = spec.quantization if spec.quantization in BYTES_PER_PARAM else \
        ("fp32" if spec.dtype == "float32" else "bf16")
    return weight_bytes(parts, precision)


def vision_tower_params(top: dict, vc: dict, text_hidden: int) -> int:
    """Parameters of a vision encoder and its projector into the text model, estimated from vision_config.

    A ViT layer: attention 4 w^2 plus biases, its MLP (2 w x intermediate; 3 for a gated one) and two norms; plus the
    patch embedding, the position table and the projector. Per family, as vLLM's model files build them:
    Qwen2-VL / Qwen2.5-VL / Qwen3-VL (vllm/model_executor/models/qwen2_vl.py, qwen2_5_vl.py, qwen3_vl.py): width
    embed_dim (2-VL, whose hidden_size is the output) or hidden_size, MLP mlp_ratio x width (2-VL), gated
    intermediate_size (2.5-VL) or intermediate_size, a patch embedding over temporal_patch_size frames, a merger
    (w m^2 -> w m^2 -> output, m = spatial_merge_size; Qwen3-VL adds one per deepstack_visual_indexes);
    Llama-4 (mllama4.py): a pixel-shuffle MLP (intermediate_size -> projector_input_dim -> projector_output_dim) and a
    projector vision_output_dim -> text hidden; Gemma-3 (gemma3_mm.py): one projection w -> text hidden;
    LLaVA and the rest (llava.py): a two-layer projector w -> text hidden -> text hidden, and the tower only up to
    vision_feature_layer (-2: all layers but the last, llava.py _get_num_hidden_layers).
    Qwen2.5-VL-7B: 0.675B; Gemma-3-27B: 0.42B; Llama-4 Scout/Maverick: 0.87B; LLaVA-1.5-7B: 0.31B."""
    fam = str(top.get("model_type", ""))

    def num(*keys: str, default: float = 0) -> float:
        return next((vc[k] for k in keys if isinstance(vc.get(k), int | float) and not isinstance(vc.get(k), bool)
                     and vc[k] > 0), default)

    layers, w = int(num("depth", "num_hidden_layers", "num_layers")), int(num("embed_dim", "hidden_size", "width"))
    if not layers or not w:
        return 0
    qwen = fam.startswith(("qwen2_vl", "qwen2_5_vl", "qwen3_vl"))
    gated = fam.startswith("qwen2_5_vl")
    inter = int(num("intermediate_size") or num("mlp_ratio", default=4) * w)
    mlp = (3 if gated else 2) * w * inter + (2 if gated else 1) * inter + w
    per_layer = 4 * w * w + 4 * w + mlp + 4 * w
    feature = top.get("vision_feature_layer")
    if isinstance(feature, int) and not isinstance(feature, bool) and feature < 0:
        layers = max(1, layers + feature + 1)
    patch = int(num("patch_size", "spatial_patch_size", default=14))
    channels = int(num("in_channels", "in_chans", "num_channels", default=3))
    embed = channels * (int(num("temporal_patch_size", default=1)) if qwen else 1) * patch * patch * w
    if qwen:
        positions = int(num("num_position_embeddings")) * w
        m = int(num("spatial_merge_size", default=2))
        wide = w * m * m
        out = int(num("out_hidden_size") or (num("hidden_size") if vc.get("embed_dim") else 0) or text_hidden)
        mergers = 1 + len(vc.get("deepstack_visual_indexes") or [])
        projector = mergers * (wide * wide + wide + wide * out + out + 2 * w)
    else:
        side = int(num("image_size")) // patch
        positions = (side * side + (0 if fam == "gemma3" else 1)) * w  # SigLIP has no class token
        if fam.startswith("llama4"):
            mid = int(num("projector_input_dim", default=inter))
            projector = inter * mid + mid * int(num("projector_output_dim", default=mid)) \
                + int(num("vision_output_dim", default=mid)) * text_hidden
        elif fam == "gemma3":
            projector = w * text_hidden + w
        else:
            projector = w * text_hidden + text_hidden * text_hidden + 2 * text_hidden
    return layers * per_layer + embed + positions + projector + 2 * w


def _hf_quant_config(model_dir: Path) -> dict:
    """ModelOpt's hf_quant_config.json (``{"quantization": {"quant_algo": ...}}``) beside a config.json without
    quantization_config, as vLLM also reads it (vllm/model_executor/layers/quantization/modelopt.py); {} without."""
    path = Path(model_dir) / "hf_quant_config.json"
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return {"quant_method": "modelopt", **data} if isinstance(data, dict) and data.get("quantization") else {}


# RoPE types whose max_position_embeddings is already the scaled length (vllm/config/model.py, _get_and_verify_max_len)
_PRESCALED_ROPE = ("su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling")


def derived_max_len(cfg: dict) -> int:
    """The longest max_model_len vLLM accepts without VLLM_ALLOW_LONG_MAX_MODEL_LEN, as it derives it from a config:
    max_position_embeddings (or another length key), times the RoPE factor of linear/dynamic scaling (0 = unknown)."""
    keys = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "max_sequence_length",
            "max_seq_length", "seq_len")
    length = next((int(cfg[k]) for k in keys if isinstance(cfg.get(k), int | float) and cfg[k] > 0), 0)
    rope = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
    if length and isinstance(rope, dict) and "gemma3" not in str(cfg.get("model_type", "")):
        kind = rope.get("rope_type") or rope.get("type") or "default"
        factor = rope.get("factor")
        if kind not in _PRESCALED_ROPE and isinstance(factor, int | float) and factor > 0:
            length = int(length * factor)
    return length


def long_context_allowed() -> bool:
    """vLLM's own override of the model's maximum context: ``VLLM_ALLOW_LONG_MAX_MODEL_LEN=1`` (vllm/envs.py)."""
    return os.environ.get("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "").strip().lower() in ("1", "true")


def beyond_max_context(spec: ModelSpec, tokens: int) -> str | None:
    """'exceeds <model>'s maximum context of N tokens (...)' when ``tokens`` is longer than vLLM accepts, else None
    (also when ``VLLM_ALLOW_LONG_MAX_MODEL_LEN=1`` lifts vLLM's limit)."""
    if spec.max_position_embeddings and tokens > spec.max_position_embeddings and not long_context_allowed():
        return (f"exceeds {spec.name}'s maximum context of {spec.max_position_embeddings} tokens (its config's "
                "max_position_embeddings)")
    return None


def _index_total_size(d: Path) -> int:
    """Tensor bytes from model.safetensors.index.json (metadata.total_size) when the shards are absent."""
    idx = d / "model.safetensors.index.json"
    try:
        return int(json.loads(idx.read_text()).get("metadata", {}).get("total_size") or 0) if idx.exists() else 0
    except (ValueError, json.JSONDecodeError):
        return 0


def _checkpoint_precision(qc: dict) -> str:
    """The catalog precision ('int4' / 'int8' / 'fp8') of a pre-quantized checkpoint's quantization_config ('' if
    none); for a format not read here its quant_method, which quantization.served_precision warns about."""
    if not qc:
        return ""
    method = str(qc.get("quant_method", "")).lower()
    if method == "bitsandbytes":
        return _bitsandbytes_precision(qc) or method
    if method.startswith("modelopt") and (found := _modelopt_precision(qc)):
        return found  # else (MIXED_PRECISION) from its config_groups, as compressed-tensors
    bits = qc.get("bits") or qc.get("w_bit") or qc.get("weight_bits")
    groups = [g.get("weights") or {} for g in (qc.get("config_groups") or {}).values() if isinstance(g, dict)]
    if groups and not bits:  # compressed-tensors (e.g. neuralmagic w8a8): config_groups.*.weights.num_bits/type
        bits = groups[0].get("num_bits")
        if groups[0].get("type") == "float" and bits == 8:
            return "fp8"
    if "fp8" in method:
        return "fp8"
    if bits in (4, 8):
        return f"int{bits}"
    if "fp4" in method:  # mxfp4 (gpt-oss's experts): 4-bit float weights, budgeted as int4
        return "int4"
    return (method or "quantized") + (f" {bits}-bit" if bits else "")  # e.g. 'gptq 3-bit', 'hqq': not budgeted


def _bitsandbytes_precision(qc: dict) -> str:
    """bitsandbytes: 4-bit (NF4/FP4, one absmax per 64 weights) ~ int4, LLM.int8() ~ int8. The keys are
    transformers' BitsAndBytesConfig.to_dict() (transformers/utils/quantization_config.py): load_in_4bit and
    load_in_8bit, plus the private _load_in_4bit/_load_in_8bit it copies from __dict__."""
    if qc.get("load_in_4bit") or qc.get("_load_in_4bit"):
        return "int4"
    if qc.get("load_in_8bit") or qc.get("_load_in_8bit"):
        return "int8"
    return ""


def _modelopt_precision(qc: dict) -> str:
    """NVIDIA ModelOpt: the weights' precision from quant_algo, found where vLLM looks (vllm/model_executor/layers/
    quantization/modelopt.py _extract_modelopt_quant_algo): quantization_config.quant_algo (quant_method 'modelopt',
    as modelopt.torch.export's convert_hf_quant_config_format writes config.json), or quantization.quant_algo
    (the layout of ModelOpt's hf_quant_config.json). NVFP4 (4-bit floats, an FP8 scale per 16) ~ int4; W4A8_AWQ,
    W4A16_NVFP4 ~ int4; W8A16, W8A8_SQ_PER_CHANNEL ~ int8; FP8, FP8_PB_WO, MXFP8 ~ fp8; MIXED_PRECISION ''."""
    nested = qc.get("quantization")
    algo = str((nested if isinstance(nested, dict) else qc).get("quant_algo") or "").upper()
    if algo.startswith(("W4A", "W8A")):  # the weights' bits come first
        return f"int{algo[1]}"
    if "FP4" in algo or "INT4" in algo:
        return "int4"
    if "FP8" in algo:
        return "fp8"
    return "int8" if "INT8" in algo else ""


def _family(model_type: str, archs: list[str]) -> str:
    text = (model_type + " " + " ".join(archs)).lower()
    for fam in ("llama", "qwen", "mixtral", "mistral", "gemma", "deepseek", "phi", "granite"):
        if fam in text:
            return "mistral" if fam == "mixtral" else fam
    return model_type


# -- tokenizers -------------------------------------------------------------------------------
def tokenizer_tables(model_dir: str | Path) -> tuple[dict[str, int], dict[str, int]] | None:
    """(base vocabulary, added tokens) as token -> id: tokenizer.json's model.vocab and added_tokens, or vocab.json
    (no added tokens); None when the directory has neither file."""
    d = Path(model_dir)
    tj, vj = d / "tokenizer.json", d / "vocab.json"
    try:
        if tj.exists():
            data = json.loads(tj.read_text(encoding="utf-8"))
            vocab = data.get("model", {}).get("vocab")
            if isinstance(vocab, list):  # unigram: [[piece, score], ...]
                vocab = {piece: i for i, (piece, _) in enumerate(vocab)}
            added = {tok["content"]: tok["id"] for tok in data.get("added_tokens", [])}
            return dict(vocab or {}), added
        if vj.exists():
            return dict(json.loads(vj.read_text(encoding="utf-8"))), {}
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        bad = tj if tj.exists() else vj
        raise ModelError(f"{bad} is not a readable tokenizer file ({type(exc).__name__}: {str(exc)[:120]})",
                         f"re-download {bad.name} (or remove it: the budget does not need it)") from None
    return None


def tokenizer_vocab(model_dir: str | Path) -> dict[str, int] | None:
    """Token -> id from tokenizer.json (model vocab + added tokens) or vocab.json; None if absent."""
    tables = tokenizer_tables(model_dir)
    if tables is None:
        return None
    base, added = tables
    return {**base, **added}


def tokenizer_fingerprint(model_dir: str | Path) -> str:
    """A short hash of the vocabulary (token -> id), '' when the directory has no tokenizer files."""
    vocab = tokenizer_vocab(model_dir)
    if not vocab:
        return ""
    blob = json.dumps(sorted(vocab.items()), ensure_ascii=False).encode()
    return "vocab-" + hashlib.sha256(blob).hexdigest()[:12]


# -- entry point ------------------------------------------------------------------------------
def embedded_dir(role: str) -> Path:
    """The tiny pair's directory for role 'target' or 'draft'."""
    pair = tiny_pair()
    return Path(pair.draft if role == "draft" else pair.target)


def resolve(name: str, role: str = "target") -> ModelSpec:
    """A model from 'embedded', a local directory or a catalog name."""
    if not name or not str(name).strip():
        raise ModelError(f"no {role} model given", "give a local directory, a catalog name or 'embedded'")
    if name == "embedded":
        return from_dir(embedded_dir(role), name=f"embedded-{role}")
    p = Path(name).expanduser()
    if p.is_dir():
        return from_dir(p)
    if p.is_file():
        fix = f"give its directory, {p.parent}" if p.name == "config.json" else "give a directory holding config.json"
        raise ModelError(f"'{name}' is a file, not a model directory", fix)
    if name.startswith(("/", "./", "../", "~")):
        raise ModelError(f"model directory '{name}' does not exist",
                         "check the path (a directory holding config.json), or give a catalog name")
    if _lookup(name) is None and "/" in name and os.environ.get("PLAYBOOK_ALLOW_HUB"):
        hub = from_hub(name)
        if hub is not None:
            return hub
    return from_catalog(name)


def from_hub(repo_id: str) -> ModelSpec | None:
    """Opt-in (PLAYBOOK_ALLOW_HUB=1): config.json and tokenizer.json from the Hugging Face Hub, the
    parameter count from the Hub's safetensors metadata. None when the hub cannot be reached."""
    try:
        from huggingface_hub import HfApi, hf_hub_download

        cfg = Path(hf_hub_download(repo_id, "config.json"))
        try:
            hf_hub_download(repo_id, "tokenizer.json")
        except Exception:  # noqa: BLE001 - a tokenizer is optional for the budget
            pass
        spec = from_dir(cfg.parent, name=repo_id)
        info = HfApi().model_info(repo_id)
        total = getattr(getattr(info, "safetensors", None), "total", 0) or 0
        return spec.model_copy(update={"param_count": total / 1e9, "reference": f"https://huggingface.co/{repo_id}"})
    except Exception:  # noqa: BLE001 - offline, gated or unknown: fall back to the catalog
        return None


# -- parameter counts -------------------------------------------------------------------------
def _is_embedding(name: str) -> bool:
    return any(k in name for k in ("embed_tokens", "wte.", "word_embeddings", "embeddings.weight"))


def param_breakdown(spec: ModelSpec) -> dict[str, int]:
    """Parameters by role: 'embedding', 'lm_head', 'linear' (quantizable), 'other' (norms, biases, routers, the
    vision tower) and, for a pre-quantized checkpoint that keeps some linear layers at 16 bits, 'unquantized'.
    Exact from safetensors headers for a directory; from the architecture otherwise. MTP layers are left out: vLLM
    loads them only as method 'mtp''s draft (:func:`mtp_params`)."""
    if spec.source == "dir" and spec.path and not spec.quantization:  # packed tensors do not count params
        inv = tensor_inventory(Path(spec.path))
        if inv:
            out = {"embedding": 0, "lm_head": 0, "linear": 0, "other": 0}
            for name, (_, n) in inv.items():
                if spec.mtp_layers and _is_mtp_tensor(name, spec.num_layers):
                    continue
                if "lm_head" in name:
                    out["lm_head"] += n
                elif _is_vision_tensor(name):
                    out["other"] += n  # the vision tower: ModelSpec.extra_params
                elif _is_embedding(name):
                    out["embedding"] += n
                elif name.endswith("weight") and n >= spec.hidden_size * 2 and "norm" not in name:
                    out["linear"] += n
                else:
                    out["other"] += n
            return out
    return architecture_params(spec)


def _layer_parts(spec: ModelSpec) -> dict[str, int]:
    """Parameters of one decoder layer by part: 'attn' (projections), 'attn_other' (q/k/v biases, MLA norms),
    'linear_attn' / 'linear_attn_other' (a Gated DeltaNet layer's, in place of attention: :func:`_linear_attn_parts`),
    'dense_mlp' (a dense layer's MLP), 'routed' (all routed experts of an MoE layer), 'shared' (its shared experts),
    'router' (its router), 'norms'."""
    h = spec.hidden_size
    if spec.attention == "mla":
        qk = spec.qk_nope_head_dim + spec.qk_rope_head_dim
        q = (h * spec.q_lora_rank + spec.q_lora_rank * spec.num_attention_heads * qk) if spec.q_lora_rank \
            else h * spec.num_attention_heads * qk
        attn = (q + h * (spec.kv_lora_rank + spec.qk_rope_head_dim)
                + spec.kv_lora_rank * spec.num_attention_heads * (spec.qk_nope_head_dim + spec.v_head_dim)
                + spec.num_attention_heads * spec.v_head_dim * h)
        attn_other = spec.q_lora_rank + spec.kv_lora_rank
    else:
        hd = spec.head_dim
        attn = (3 if spec.attn_output_gate else 2) * h * spec.num_attention_heads * hd + 2 * h * spec.num_kv_heads * hd
        attn_other = (spec.num_attention_heads + 2 * spec.num_kv_heads) * hd if spec.attention_bias else 0
    expert = 3 * h * spec.moe_intermediate_size
    linear_attn, linear_other = _linear_attn_parts(spec)
    return {"attn": attn, "attn_other": attn_other, "linear_attn": linear_attn, "linear_attn_other": linear_other,
            "dense_mlp": 3 * h * spec.intermediate_size,
            "routed": spec.num_experts * expert if spec.is_moe else 0,
            "shared": spec.num_shared_experts * expert if spec.is_moe else 0,
            "router": h * spec.num_experts if spec.is_moe else 0,
            "norms": (4 if spec.family == "gemma" else 2) * h}


def _linear_attn_parts(spec: ModelSpec) -> tuple[int, int]:
    """(projections, the rest) of one Gated DeltaNet layer (vllm/model_executor/layers/mamba/gdn/
    qwen_gdn_linear_attn.py; Qwen3-Next's checkpoint): in_proj_qkvz (h -> 2 key + 2 value dims), in_proj_ba (h -> 2
    per value head), out_proj (value dim -> h); conv1d over the q/k/v channels (linear_conv_kernel_dim taps), dt_bias
    and A_log per value head, the gated RMSNorm over one value head. (0, 0) for a model without such layers."""
    h, nv = spec.hidden_size, spec.linear_num_value_heads
    key, value = spec.linear_num_key_heads * spec.linear_key_head_dim, nv * spec.linear_value_head_dim
    proj = h * (2 * key + 2 * value) + h * 2 * nv + value * h
    return proj, (2 * key + value) * spec.linear_conv_kernel_dim + 2 * nv + spec.linear_value_head_dim


def architecture_params(spec: ModelSpec) -> dict[str, int]:
    """Parameter counts computed from the architecture fields (no weights needed). An MoE model has
    ``num_layers - first_k_dense`` MoE layers (routed plus shared experts, a router) and dense ones of
    ``intermediate_size``; a hybrid model's 'linear' layers have Gated DeltaNet weights in place of attention; the
    vision tower (``extra_params``) counts as 'other'. A pre-quantized local checkpoint's
    linear layers kept at 16 bits (:func:`kept_linear_params`) are 'unquantized'."""
    if spec.eagle_head:
        return _eagle_head_params(spec)
    h, L = spec.hidden_size, spec.num_layers
    emb = spec.vocab_size * h
    parts = _layer_parts(spec)
    n_moe = L - spec.first_k_dense if spec.is_moe else 0
    n_lin = spec.kinds().count("linear")  # Gated DeltaNet layers: their own projections in place of attention
    out = {
        "embedding": emb,
        "lm_head": 0 if spec.tie_word_embeddings else emb,
        "linear": (L - n_lin) * parts["attn"] + n_lin * parts["linear_attn"] + (L - n_moe) * parts["dense_mlp"]
        + n_moe * (parts["routed"] + parts["shared"]),
        "other": (L - n_lin) * parts["attn_other"] + n_lin * parts["linear_attn_other"] + L * parts["norms"] + h
        + n_moe * parts["router"] + int(spec.extra_params * 1e9),
    }
    if kept := kept_linear_params(spec):
        out["linear"] -= kept
        out["unquantized"] = kept
    return out


def mtp_params(spec: ModelSpec) -> dict[str, int]:
    """Parameters of the target's MTP module(s) (num_nextn_predict_layers) that vLLM loads for method 'mtp', by
    :func:`param_breakdown`'s roles: per module one decoder layer like the target's (an MoE layer for an MoE target),
    the projection of [embedding, hidden] (eh_proj, 2h x h) and its norms (enorm, hnorm, shared_head.norm)
    (vllm/model_executor/models/deepseek_mtp.py). The embedding and lm_head are the target's: vLLM shares them
    ('Detected MTP model. Sharing target model embedding/lm_head weights', vllm/v1/spec_decode/llm_base_proposer.py)."""
    m, h = spec.mtp_layers, spec.hidden_size
    if not m or spec.eagle_head:
        return {"embedding": 0, "lm_head": 0, "linear": 0, "other": 0}
    parts = _layer_parts(spec)
    mlp = parts["routed"] + parts["shared"] if spec.is_moe else parts["dense_mlp"]
    return {"embedding": 0, "lm_head": 0, "linear": m * (parts["attn"] + mlp + 2 * h * h),
            "other": m * (parts["attn_other"] + parts["norms"] + parts["router"] + 3 * h)}


# -- what a pre-quantized checkpoint keeps at 16 bits -----------------------------------------------
def _quant_config(spec: ModelSpec) -> dict:
    """A local checkpoint's quantization_config (or ModelOpt's hf_quant_config.json), {} without."""
    if spec.source != "dir" or not spec.path:
        return {}
    d = Path(spec.path)
    try:
        top = json.loads((d / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    qc = top.get("quantization_config") if isinstance(top, dict) else None
    return qc if isinstance(qc, dict) else _hf_quant_config(d)


def quant_method_of(spec: ModelSpec) -> str:
    """A pre-quantized checkpoint's format ('mxfp4', 'fbgemm_fp8', ...): a local one's config, a catalog entry's
    quant_method; '' when neither says."""
    return str(_quant_config(spec).get("quant_method") or spec.quant_method or "").lower()


def _not_converted_patterns(qc: dict) -> list[str]:
    """Module-name patterns a quantization config leaves at 16 bits: modules_to_not_convert (transformers' AWQ, FP8,
    MXFP4 and bitsandbytes configs; llm_int8_skip_modules for bitsandbytes), ignore (compressed-tensors, 're:' for a
    regular expression), exclude_modules (NVIDIA ModelOpt, also under 'quantization' in hf_quant_config.json) and
    GPTQ's dynamic '-:regex' keys (vllm/model_executor/layers/quantization/gptq.py: a '-:' rule skips the layer)."""
    out: list[str] = []
    nested = qc.get("quantization") if isinstance(qc.get("quantization"), dict) else {}
    for src in (qc, nested):
        for key in ("modules_to_not_convert", "llm_int8_skip_modules", "ignore", "exclude_modules", "ignored_layers"):
            if isinstance(src.get(key), list):
                out += [str(p) for p in src[key] if isinstance(p, str) and p]
    if isinstance(qc.get("dynamic"), dict):
        out += ["re:" + k[2:] for k in qc["dynamic"] if isinstance(k, str) and k.startswith("-:")]
    return out


def _pattern_regex(patterns: list[str]) -> re.Pattern | None:
    """One regular expression for a list of module patterns: 're:<regex>' matched from the start of the name
    (compressed-tensors' is_match); otherwise a name, a dotted prefix or a glob with '*' matched on whole name
    components ('self_attn' covers model.layers.3.self_attn.q_proj, 'mlp.gate' is not mlp.gate_proj)."""
    parts = []
    for p in patterns:
        if p.startswith("re:"):
            parts.append("^(?:" + p[3:] + ")")
        else:
            parts.append(r"(?:^|\.)" + ".*".join(re.escape(x) for x in p.split("*")) + r"(?:\.|$)")
    try:
        return re.compile("|".join(parts)) if parts else None
    except re.error:
        return None


# How checkpoints name a decoder layer's modules: the prefixes of a text model inside a multimodal one, Llama-4's
# feed_forward and Mixtral's block_sparse_moe for the MLP, DeepSeek's shared_experts and Qwen2-MoE's shared_expert.
_LAYER_PREFIXES = ("model.layers.{i}", "model.language_model.layers.{i}", "language_model.model.layers.{i}")
_MLP_NAMES = ("mlp", "feed_forward", "block_sparse_moe")


def _module_parts(spec: ModelSpec, moe_layer: bool) -> list[tuple[int, tuple[str, ...]]]:
    """(parameters, module-name suffixes) of one decoder layer's linear modules."""
    h, nh = spec.hidden_size, spec.num_attention_heads
    if spec.attention == "mla":
        qk = spec.qk_nope_head_dim + spec.qk_rope_head_dim
        q = [(h * spec.q_lora_rank, ("q_a_proj",)), (spec.q_lora_rank * nh * qk, ("q_b_proj",))] if spec.q_lora_rank \
            else [(h * nh * qk, ("q_proj",))]
        attn = q + [(h * (spec.kv_lora_rank + spec.qk_rope_head_dim), ("kv_a_proj_with_mqa",)),
                    (spec.kv_lora_rank * nh * (spec.qk_nope_head_dim + spec.v_head_dim), ("kv_b_proj",)),
                    (nh * spec.v_head_dim * h, ("o_proj",))]
    else:
        hd, kv = spec.head_dim, spec.num_kv_heads
        attn = [(h * nh * hd, ("q_proj", "qkv_proj")), (h * kv * hd, ("k_proj", "qkv_proj")),
                (h * kv * hd, ("v_proj", "qkv_proj")), (nh * hd * h, ("o_proj",))]
    out = [(n, tuple(f"self_attn.{x}" for x in names)) for n, names in attn]
    parts = _layer_parts(spec)
    if not moe_layer:
        return out + [(parts["dense_mlp"] // 3, tuple(f"{m}.{x}" for m in _MLP_NAMES[:2] for x in names))
                      for names in (("gate_proj", "gate_up_proj"), ("up_proj", "gate_up_proj"), ("down_proj",))]
    routed = tuple(f"{m}.experts{x}" for m in _MLP_NAMES for x in ("", ".0.gate_proj", ".0.w1"))
    shared = tuple(f"{m}.{s}.{x}" for m in _MLP_NAMES[:2] for s in ("shared_expert", "shared_experts")
                   for x in ("gate_proj", "down_proj"))
    return out + [(parts["routed"], routed), (parts["shared"], shared)]


def kept_linear_params(spec: ModelSpec) -> int:
    """Linear parameters a pre-quantized checkpoint (local, or a catalog entry with a quant_method) keeps at 16 bits,
    which its quantized precision must not price. MXFP4 (gpt-oss): every linear layer but the routed experts, whatever modules_to_not_convert lists, as
    vLLM's Mxfp4Config.get_quant_method gives each LinearBase the UnquantizedLinearMethod and quantizes only FusedMoE
    (vllm/model_executor/layers/quantization/mxfp4.py; gpt-oss-20b: attention 0.64B params at bf16). Other formats:
    the modules their config excludes (:func:`_not_converted_patterns`), matched per layer against the module names
    of Hugging Face checkpoints. Embeddings, lm_head, norms and routers are 16-bit already ('embedding', 'lm_head',
    'other'), so a pattern naming them changes nothing here."""
    if not spec.quantization or spec.eagle_head:
        return 0
    qc = _quant_config(spec) or ({"quant_method": spec.quant_method, "modules_to_not_convert": spec.not_converted}
                                 if spec.quant_method else {})
    if not qc:
        return 0
    flags = _moe_flags(spec)
    if str(qc.get("quant_method", "")).lower() == "mxfp4":
        parts = _layer_parts(spec)
        return sum(parts["attn"] + (parts["shared"] if moe else parts["dense_mlp"]) for moe in flags)
    regex = _pattern_regex(_not_converted_patterns(qc))
    if regex is None:
        return 0
    per_layer = any(re.search(r"\d", p) for p in _not_converted_patterns(qc))
    kept, cache = 0, {}
    for i, moe in enumerate(flags):
        key = (i if per_layer else 0, moe)
        if key not in cache:
            prefixes = [p.format(i=key[0]) for p in _LAYER_PREFIXES]
            cache[key] = sum(n for n, suffixes in _module_parts(spec, moe)
                             if any(regex.search(f"{p}.{x}") for p in prefixes for x in suffixes))
        kept += cache[key]
    return kept


def _moe_flags(spec: ModelSpec) -> list[bool]:
    """MoE (True) or dense, per decoder layer: a local model's from its config (:func:`moe_layer_flags`), else the
    first ``first_k_dense`` layers dense."""
    if not spec.is_moe:
        return [False] * spec.num_layers
    if spec.source == "dir" and spec.path and (cfg_path := Path(spec.path) / "config.json").is_file():
        try:
            flags = moe_layer_flags(_text_config(cfg_path, _read_config_json(cfg_path))[0], spec.num_layers)
        except ModelError:
            flags = []
        if len(flags) == spec.num_layers and flags.count(False) == spec.first_k_dense:
            return flags
    return [i >= spec.first_k_dense for i in range(spec.num_layers)]


def _eagle_head_params(spec: ModelSpec) -> dict[str, int]:
    """An EAGLE head: decoder layer(s) fed with the target's hidden states, no embedding of its own.

    EAGLE-3 (``*Eagle3`` architectures) fuses three target layers (fc: 3h -> h), its attention reads
    [embedding, hidden] (2h inputs) and its LM head covers ``draft_vocab_size`` tokens; EAGLE-1 fuses
    [embedding, hidden] (fc: 2h -> h) and predicts over the full vocabulary with the target's head.
    Layout per vLLM's llama_eagle3.py / llama_eagle.py and the checkpoints' config.json.
    """
    h, L, hd = spec.hidden_size, spec.num_layers, spec.head_dim
    eagle3 = any("eagle3" in a.lower() for a in spec.architectures) or spec.draft_vocab_size > 0
    attn_in = 2 * h if eagle3 else h
    attn = attn_in * (spec.num_attention_heads + 2 * spec.num_kv_heads) * hd + spec.num_attention_heads * hd * h
    fc = (3 if eagle3 else 2) * h * h
    head = (spec.draft_vocab_size or spec.vocab_size) * h if eagle3 else 0
    return {"embedding": 0, "lm_head": head, "linear": L * (attn + 3 * h * spec.intermediate_size) + fc,
            "other": L * 3 * h + h}


def total_params(spec: ModelSpec) -> int:
    return sum(param_breakdown(spec).values())
