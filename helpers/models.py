"""Model facts: from a local directory (config.json + safetensors headers) or the shipped catalog.

``resolve("Llama-3.1-70B")``, ``resolve("/models/my-draft")`` and ``resolve("embedded", role="draft")``
all return a :class:`ModelSpec`. Nothing here loads weights or needs a network.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import struct
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
        merged = {**families.get(entry.get("base", ""), {}), **entry}
        merged.pop("base", None)
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
    fields["layer_types"] = layer_types(e["num_layers"], e.get("sliding_window", 0), e.get("sliding_window_pattern", 0))
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


def from_dir(model_dir: str | Path, name: str | None = None) -> ModelSpec:
    d = Path(model_dir).expanduser()
    cfg_path = d / "config.json"
    if not cfg_path.exists() and (snapshot := hf_cache_snapshot(d)) is not None:  # ~/.cache/huggingface/hub/models--*
        return from_dir(snapshot, name=name or d.name.removeprefix("models--").split("--")[-1])
    if not cfg_path.exists():
        raise ModelError(f"{d} has no config.json", "point to a Hugging Face model directory (config.json, tokenizer, *.safetensors)")
    try:
        top = json.loads(cfg_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ModelError(f"{cfg_path} is not UTF-8 text (byte {exc.start})", "fix or re-download config.json") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"{cfg_path} is not valid JSON: {exc}", "fix or re-download config.json") from None
    if not isinstance(top, dict):
        raise ModelError(f"{cfg_path} holds a JSON {type(top).__name__}, not an object of config fields",
                         "fix or re-download config.json")
    cfg = {**top, **top.get("text_config", {})} if isinstance(top.get("text_config"), dict) else top
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
        return _spec_from_config(d, name, top, cfg, cfg_path, v)
    except ModelError:
        raise
    except (TypeError, ValueError, ZeroDivisionError, AttributeError, KeyError) as exc:
        raise ModelError(f"{cfg_path} has a field of an unexpected type or value ({type(exc).__name__}: "
                         f"{str(exc)[:200]})", "fix or re-download config.json, or use a catalog name") from None


def _positive_int(value: Any, field: str, where: Path, allow_zero: bool = False) -> int:
    """A config field that must be a whole number (> 0, or >= 0 with allow_zero), below 2**31 (no layer,
    head or vocabulary count comes near it: a larger one is a corrupt file, and would give absurd budgets)."""
    if isinstance(value, bool) or not isinstance(value, int) or not (0 if allow_zero else 1) <= value < 2**31:
        raise ModelError(f"{where}: '{field}' is {str(json.dumps(value))[:60]}, not a whole number "
                         f"{'>= 0' if allow_zero else '>= 1'} below 2**31", f"fix '{field}' in {where.name} or re-download it")
    return value


def _spec_from_config(d: Path, name: str | None, top: dict, cfg: dict, cfg_path: Path, v: dict) -> ModelSpec:
    heads = v["num_attention_heads"]
    kv_heads = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or v["hidden_size"] // heads
    inter = cfg.get("intermediate_size") or cfg.get("ffn_dim") or 0
    is_mla = bool(cfg.get("kv_lora_rank"))
    model_type = cfg.get("model_type", "")
    archs = top.get("architectures") or []
    sw = cfg.get("sliding_window") or 0
    if cfg.get("layer_types"):
        kinds = ["sliding" if "sliding" in t else "full" for t in cfg["layer_types"]]
        sw = sw if "sliding" in kinds else 0
    elif sw and model_type.startswith("gemma2"):
        kinds = layer_types(v["num_layers"], sw, 2)
    elif sw and model_type.startswith("gemma3"):
        kinds = layer_types(v["num_layers"], sw, cfg.get("sliding_window_pattern", 6))
    elif sw and cfg.get("use_sliding_window", True) and model_type in ("mistral", "mixtral"):
        kinds = ["sliding"] * v["num_layers"]
    else:
        kinds, sw = [], 0
    inventory = tensor_inventory(d)
    exact = sum(n for _, n in inventory.values())
    on_disk = sum(n * DTYPE_BYTES.get(dt, 2) for dt, n in inventory.values()) or _index_total_size(d)
    dtypes = sorted({dt for dt, _ in inventory.values()})
    mtp = cfg.get("num_nextn_predict_layers") or cfg.get("mtp_num_hidden_layers") or 0
    return ModelSpec(
        name=name or d.name, source="dir", path=str(d.resolve()), reference=str(cfg_path.resolve()),
        family=_family(model_type, archs), architectures=archs, model_type=model_type,
        tokenizer=tokenizer_fingerprint(d),
        hidden_size=v["hidden_size"], num_layers=v["num_layers"], num_attention_heads=heads,
        num_kv_heads=kv_heads, head_dim=head_dim, intermediate_size=inter, vocab_size=v["vocab_size"],
        tie_word_embeddings=bool(top.get("tie_word_embeddings", cfg.get("tie_word_embeddings", False))),
        attention_bias=bool(cfg.get("attention_bias", model_type == "qwen2")),
        attention="mla" if is_mla else "gqa",
        kv_lora_rank=cfg.get("kv_lora_rank") or 0, qk_rope_head_dim=cfg.get("qk_rope_head_dim") or 0,
        qk_nope_head_dim=cfg.get("qk_nope_head_dim") or 0, v_head_dim=cfg.get("v_head_dim") or 0,
        q_lora_rank=cfg.get("q_lora_rank") or 0,
        num_experts=cfg.get("num_local_experts") or cfg.get("n_routed_experts") or cfg.get("num_experts") or 0,
        num_experts_per_tok=cfg.get("num_experts_per_tok") or 0,
        moe_intermediate_size=cfg.get("moe_intermediate_size") or (inter if cfg.get("num_local_experts") else 0),
        num_shared_experts=cfg.get("n_shared_experts") or 0, first_k_dense=cfg.get("first_k_dense_replace") or 0,
        sliding_window=sw, layer_types=kinds, mtp_layers=mtp, max_position_embeddings=derived_max_len(cfg),
        eagle_head=any("eagle" in a.lower() for a in archs) or "eagle" in d.name.lower(),
        draft_vocab_size=int(cfg.get("draft_vocab_size") or 0),
        param_count=exact / 1e9 if exact else 0.0, exact_params=exact, weight_bytes_on_disk=on_disk,
        dtype=str(top.get("torch_dtype") or cfg.get("dtype") or (dtypes[0] if dtypes else "bfloat16")),
        quantization=_checkpoint_precision(top.get("quantization_config") or _hf_quant_config(d)),
    )


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


def beyond_max_context(spec: ModelSpec, tokens: int) -> str | None:
    """'exceeds <model>'s maximum context of N tokens (...)' when ``tokens`` is longer than vLLM accepts, else None."""
    if spec.max_position_embeddings and tokens > spec.max_position_embeddings:
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
def tokenizer_vocab(model_dir: str | Path) -> dict[str, int] | None:
    """Token -> id from tokenizer.json (model vocab + added tokens) or vocab.json; None if absent."""
    d = Path(model_dir)
    tj, vj = d / "tokenizer.json", d / "vocab.json"
    try:
        if tj.exists():
            data = json.loads(tj.read_text(encoding="utf-8"))
            vocab = data.get("model", {}).get("vocab")
            if isinstance(vocab, list):  # unigram: [[piece, score], ...]
                vocab = {piece: i for i, (piece, _) in enumerate(vocab)}
            vocab = dict(vocab or {})
            for tok in data.get("added_tokens", []):
                vocab[tok["content"]] = tok["id"]
            return vocab
        if vj.exists():
            return dict(json.loads(vj.read_text(encoding="utf-8")))
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        bad = tj if tj.exists() else vj
        raise ModelError(f"{bad} is not a readable tokenizer file ({type(exc).__name__}: {str(exc)[:120]})",
                         f"re-download {bad.name} (or remove it: the budget does not need it)") from None
    return None


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
    """Parameters by role: 'embedding', 'lm_head', 'linear' (quantizable), 'other' (norms, biases,
    vision tower). Exact from safetensors headers for a directory; from the architecture otherwise."""
    if spec.source == "dir" and spec.path and not spec.quantization:  # packed tensors do not count params
        inv = tensor_inventory(Path(spec.path))
        if inv:
            out = {"embedding": 0, "lm_head": 0, "linear": 0, "other": 0}
            for name, (_, n) in inv.items():
                if "lm_head" in name:
                    out["lm_head"] += n
                elif _is_embedding(name):
                    out["embedding"] += n
                elif name.endswith("weight") and n >= spec.hidden_size * 2 and "norm" not in name:
                    out["linear"] += n
                else:
                    out["other"] += n
            return out
    return architecture_params(spec)


def architecture_params(spec: ModelSpec) -> dict[str, int]:
    """Parameter counts computed from the architecture fields (no weights needed)."""
    if spec.eagle_head:
        return _eagle_head_params(spec)
    h, L = spec.hidden_size, spec.num_layers
    emb = spec.vocab_size * h
    head = 0 if spec.tie_word_embeddings else emb
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
        attn = 2 * h * spec.num_attention_heads * hd + 2 * h * spec.num_kv_heads * hd
        attn_other = (spec.num_attention_heads + 2 * spec.num_kv_heads) * hd if spec.attention_bias else 0
    dense_mlp = 3 * h * spec.intermediate_size
    if spec.is_moe:
        moe_mlp = (spec.num_experts + spec.num_shared_experts) * 3 * h * spec.moe_intermediate_size
        router = h * spec.num_experts
        n_dense = spec.first_k_dense
        mlp = n_dense * dense_mlp + (L - n_dense) * moe_mlp
        router_total = (L - n_dense) * router
    else:
        mlp, router_total = L * dense_mlp, 0
    norms_per_layer = (4 if spec.family == "gemma" else 2) * h
    return {
        "embedding": emb,
        "lm_head": head,
        "linear": L * attn + mlp,
        "other": L * (attn_other + norms_per_layer) + h + router_total + int(spec.extra_params * 1e9),
    }


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
