"""Architecture facts of one model and of one accelerator: the inputs of the memory budget."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ModelSpec(BaseModel):
    """What the memory budget and the draft ranking need to know about a model."""

    name: str
    source: Literal["catalog", "dir"]
    path: str = Field("", description="local directory, when the model came from one")
    reference: str = Field("", description="where the facts come from (config URL or file)")
    family: str = ""
    architectures: list[str] = Field(default_factory=list)
    model_type: str = ""
    tokenizer: str = Field("", description="tokenizer family id (catalog) or vocabulary hash (dir)")
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    attention: Literal["gqa", "mla"] = "gqa"
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    q_lora_rank: int = 0
    num_experts: int = 0
    num_experts_per_tok: int = 0
    moe_intermediate_size: int = 0
    num_shared_experts: int = 0
    first_k_dense: int = 0
    sliding_window: int = 0
    attention_chunk_size: int = Field(0, description="tokens per chunk of chunked-local attention layers (Llama-4)")
    layer_types: list[Literal["full", "sliding", "chunked", "linear"]] = Field(
        default_factory=list, description="per layer: full, sliding (window), chunked (chunked-local attention) or "
        "linear (Gated DeltaNet / Mamba: a fixed-size state per request, no KV per token); [] = all full")
    attn_output_gate: bool = Field(False, description="q_proj also yields a sigmoid output gate (Qwen3-Next)")
    linear_num_key_heads: int = Field(0, description="Gated DeltaNet key heads (Qwen3-Next linear_num_key_heads)")
    linear_num_value_heads: int = 0
    linear_key_head_dim: int = 0
    linear_value_head_dim: int = 0
    linear_conv_kernel_dim: int = 0
    mtp_layers: int = 0
    max_position_embeddings: int = Field(0, description="the longest max_model_len vLLM accepts for it (its config's "
                                         "max_position_embeddings, RoPE-scaled as vLLM derives it; 0 = unknown)")
    eagle_head: bool = Field(False, description="the model is an EAGLE/EAGLE-3 draft head")
    draft_vocab_size: int = Field(0, description="an EAGLE-3 head's own LM-head vocabulary (0 = the full vocabulary)")
    param_count: float = Field(0.0, description="total parameters, billions (published or exact)")
    active_param_count: float = Field(0.0, description="parameters active per token (MoE), billions")
    extra_params: float = Field(0.0, description="parameters outside the language model (vision tower), billions")
    exact_params: int = Field(0, description="exact count from safetensors headers (0 = unknown)")
    weight_bytes_on_disk: int = Field(0, description="tensor bytes per safetensors headers (0 = unknown)")
    dtype: str = "bfloat16"
    quantization: str = Field("", description="quant_method of a pre-quantized checkpoint (awq, gptq, fp8, ...)")
    quant_method: str = Field("", description="a catalog entry's checkpoint format when its precision does not say "
                              "which layers it quantizes (mxfp4: the routed experts only); a local checkpoint's is "
                              "read from its config.json")
    not_converted: list[str] = Field(default_factory=list, description="a catalog entry's modules its checkpoint "
                                     "keeps at 16 bits (quantization_config.modules_to_not_convert); a local "
                                     "checkpoint's are read from its config.json")
    defaulted: dict[str, int] = Field(default_factory=dict, description="shape fields config.json leaves out, at "
                                      "the values transformers fills in (and vLLM loads)")

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    def kinds(self) -> list[str]:
        """Attention kind per layer ('full', 'sliding', 'chunked' or 'linear')."""
        return self.layer_types or ["full"] * self.num_layers


class GPUSpec(BaseModel):
    """One accelerator from the GPU catalog (or the CPU pseudo-entry of the embedded engine)."""

    name: str
    memory_gib: float | None = None
    bandwidth_gbs: float | None = None
    bf16_tflops: float | None = None
    fp8_tflops: float | None = None
    interconnect_gbs: float | None = Field(None, description="GPU-to-GPU bandwidth per direction (NVLink), GB/s")
    source: str = ""
    detected: bool = Field(False, description="found on this machine (nvidia-smi or /proc/meminfo)")

    @property
    def is_cpu(self) -> bool:
        return self.name == "cpu"
