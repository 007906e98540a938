"""Step results the report tests add to a decide_fixtures run: a memory budget and a precision matrix
where five of six pairs have the same fit, KV cache and concurrency (the report merges them)."""

from __future__ import annotations

BUDGET = {"target": "t", "draft": "d", "gpu": "H100", "num_gpus": 1, "max_model_len": 4096, "context_length": 4096,
           "block_size": 16, "gpu_memory_gib": 80, "gpu_memory_utilization": 0.9, "target_weights_gib": 40,
           "target_weights_per_gpu_gib": 40, "draft_weights_gib": 5, "draft_weights_per_gpu_gib": 5,
           "kv_bytes_per_token": 160000, "kv_bytes_per_token_target": 128000, "kv_bytes_per_token_draft": 32000,
           "kv_cache_gib": 20, "num_blocks": 8000, "kv_cache_tokens": 128000, "max_concurrency": 31.25,
           "kv_cache_tokens_without_draft": 160000, "max_concurrency_without_draft": 39.0,
           "concurrency_at_context": 31.0, "concurrency_at_context_without_draft": 39.0, "concurrency_lost_to_draft": 8,
           "concurrency_lost_pct": 20.5, "draft_share_of_usable": 0.07, "target_share_of_vram": 0.5, "fits": True}


def matrix() -> list[dict]:
    rows = []
    for t in ("bf16", "int8", "int4"):
        for d in ("bf16", "int8"):
            rows.append({"target_quant": t, "draft_quant": d, "target_weights_gib": {"bf16": 40, "int8": 20, "int4": 10}[t],
                         "draft_weights_gib": 5 if d == "bf16" else 2.5, "fits": t != "bf16" or d != "bf16",
                         "kv_cache_tokens": 128000, "max_concurrency": 31.25, "concurrency_at_context": 31.0,
                         "concurrency_at_context_without_draft": 39.0, "concurrency_lost_to_draft": 8,
                         "concurrency_lost_pct": 20.5, "reason": ""})
    return rows


def memory_and_quantization() -> dict:
    """``extra`` for :func:`tests.support.decide_fixtures.make_run`: 20_memory.json and 30_quantization.json."""
    return {"20_memory.json": {"step": "20_memory", "status": "ok", "finding": "memory", "budget": BUDGET, "matrix": matrix()},
            "30_quantization.json": {"step": "30_quantization", "status": "ok", "finding": "6/6 pairs", "matrix": matrix(),
                                     "acceptance": [{"target_quant": "bf16", "draft_quant": "bf16", "measured": True,
                                                     "servable": True, "acceptance_rate": 0.8, "drop_pp": 0.0}]}}
