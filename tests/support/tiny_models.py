"""Tiny Llama directories: random-weight checkpoints vLLM can serve (head_dim 32: vLLM's CPU attention needs it),
and weightless ones (config.json + safetensors headers over zeros) for memory and draft arithmetic."""

from __future__ import annotations

import json
import struct
from pathlib import Path

TEXT = ["def add(a, b):\n    return a + b\n", '{"name": "x", "value": 1}', "The quick brown fox jumps over the lazy dog."] * 20


def build_tokenizer(out: Path, vocab_size: int = 320, extra: str = "") -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TEXT + ([extra] * 30 if extra else []), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(out)


def build_llama(out: Path, layers: int, hidden: int, heads: int, kv_heads: int, vocab_size: int = 320,
                intermediate: int | None = None, tokenizer_extra: str = "", tie: bool = False) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    build_tokenizer(out, vocab_size, tokenizer_extra)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=hidden // heads,
                      intermediate_size=intermediate or hidden * 2, max_position_embeddings=2048,
                      tie_word_embeddings=tie, bos_token_id=0, eos_token_id=1, torch_dtype="bfloat16")
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    return out


def build_pair(root: Path) -> tuple[Path, Path]:
    """The shipped pair's shape: target 4 layers x 2 KV heads x head_dim 32, draft 1 layer x 1 KV head x 32."""
    target = build_llama(Path(root) / "target", layers=4, hidden=128, heads=4, kv_heads=2)
    draft = build_llama(Path(root) / "draft", layers=1, hidden=64, heads=2, kv_heads=1)
    return target, draft


def servable_pair_dir(root: Path) -> str | None:
    """None when the shipped tiny pair is installed; else a random pair of its shape built under ``root``,
    as a directory for $PLAYBOOK_TINY_PAIR_DIR (random weights serve fine; their acceptance means nothing)."""
    from playbook.helpers.embedded import tiny_pair
    from playbook.helpers.errors import ModelError

    try:
        tiny_pair()
        return None
    except ModelError:
        pass
    root = Path(root)
    target, draft = build_pair(root)
    target.rename(root / "tiny-target")
    draft.rename(root / "tiny-draft")
    return str(root)


def write_safetensors(path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    """A real safetensors file (zeros) with the documented layout: u64 header length, JSON, data."""
    size = {"BF16": 2, "F16": 2, "F32": 4, "I8": 1}
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, (dtype, shape) in tensors.items():
        n = size[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header).encode()
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(blob)) + blob + b"\0" * offset)


def config_dir(root, name: str, cfg: dict, index: dict | None = None, tokenizer: dict | None = None) -> Path:
    """A weightless model directory: ``config.json`` (and, if given, a safetensors index and a tokenizer.json)."""
    d = Path(root) / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    if index is not None:
        (d / "model.safetensors.index.json").write_text(json.dumps(index))
    if tokenizer is not None:
        (d / "tokenizer.json").write_text(json.dumps(tokenizer))
    return d


def llama_dir(tmp_path, name="m", layers=2, hidden=64, heads=2, kv=1, vocab=100, tie=False, extra_cfg=None, drop=()):
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
           "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
           "intermediate_size": hidden * 2, "vocab_size": vocab, "tie_word_embeddings": tie,
           "torch_dtype": "bfloat16", **(extra_cfg or {})}
    for k in drop:
        cfg.pop(k)
    d = config_dir(tmp_path, name, cfg)
    hd = hidden // heads
    t = {"model.embed_tokens.weight": ("BF16", [vocab, hidden]), "model.norm.weight": ("BF16", [hidden])}
    if not tie:
        t["lm_head.weight"] = ("BF16", [vocab, hidden])
    for i in range(layers):
        p = f"model.layers.{i}."
        t.update({p + "self_attn.q_proj.weight": ("BF16", [heads * hd, hidden]),
                  p + "self_attn.k_proj.weight": ("BF16", [kv * hd, hidden]),
                  p + "self_attn.v_proj.weight": ("BF16", [kv * hd, hidden]),
                  p + "self_attn.o_proj.weight": ("BF16", [hidden, heads * hd]),
                  p + "mlp.gate_proj.weight": ("BF16", [hidden * 2, hidden]),
                  p + "mlp.up_proj.weight": ("BF16", [hidden * 2, hidden]),
                  p + "mlp.down_proj.weight": ("BF16", [hidden, hidden * 2]),
                  p + "input_layernorm.weight": ("BF16", [hidden]),
                  p + "post_attention_layernorm.weight": ("BF16", [hidden])})
    write_safetensors(d / "model.safetensors", t)
    return d
