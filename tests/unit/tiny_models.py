"""Tiny random Llama directories for memory/draft tests (head_dim 32: vLLM's CPU attention needs it)."""

from __future__ import annotations

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
    """The NOTES shape: target 4 layers x 2 KV heads x head_dim 32, draft 1 layer x 1 KV head x 32."""
    target = build_llama(Path(root) / "target", layers=4, hidden=128, heads=4, kv_heads=2)
    draft = build_llama(Path(root) / "draft", layers=1, hidden=64, heads=2, kv_heads=1)
    return target, draft
