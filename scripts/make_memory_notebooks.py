"""Write notebooks 10_drafts, 20_memory and 30_quantization (thin, no outputs).

Run: .venv/bin/python -m scripts.make_memory_notebooks
"""

from __future__ import annotations

from pathlib import Path

from playbook.helpers.params import DraftsParams, MemoryParams, QuantizationParams
from scripts.nbwrite import write_notebook
from scripts.sync_params_cells import params_source

ROOT = Path(__file__).resolve().parents[1] / "notebooks"

DRAFTS_GUIDE = """# 10 · Draft selection: which draft (or method) can this target use?

**What this step decides:** which draft model to speculate with, or whether only draft-free methods
(n-gram, suffix) or the target's own MTP layers / EAGLE heads are available. A draft must share the
target's tokenizer (vocabularies are compared token by token from the tokenizer files, not by name);
the best drafts are 8 to 12 times smaller than the target (1:70 is usually too weak, 1:5 too costly).

**What to look at:** the ranked table: `same_tokenizer` (False rules a draft out), `ratio` against
the 1:8 to 1:12 sweet spot, `methods`, and the reasons per row. With `acceptance_probe` on (managed or
embedded mode) each usable candidate is measured on a few prompts and the measurement weighs in.

**What number would change the decision:** a tokenizer mismatch; a ratio far outside the sweet
spot; a probed acceptance below 0.50 (SPEC: no-go)."""

MEMORY_GUIDE = """# 20 · Memory budget: what does the draft cost in KV cache and concurrency?

**What this step decides:** whether target + draft fit on your GPUs, and how many concurrent requests
of your context length the KV cache still holds once the draft's weights and KV layers take their
share. The arithmetic is vLLM's own (V1 KV cache groups, whole blocks, draft layers in the same pool);
`tests/integration/test_memory_vs_vllm.py` checks it against what vLLM logs at start-up, within 1%.

**What to look at:** the stacked bar (target weights, draft weights, reserve, KV cache, free per
GPU), `max concurrency` with and without the draft at your `context_length`, and the two rules.

**What number would change the decision:** draft weights above 15% of usable memory (the draft is
too big for this node); target weights above 70% of memory (the draft cuts concurrency: test under
load before enabling); `fits: false` for the precision you planned."""

QUANT_GUIDE = """# 30 · Quantization: which precision pair keeps acceptance?

**What this step decides:** the precision of target and draft. The matrix below shows every
(target x draft precision) pair: fits, KV tokens, concurrency, concurrency lost to the draft. In
embedded or managed mode each pair the installed vLLM can serve is started and measured (greedy
acceptance on a few prompts); pairs it cannot serve say why.

**What to look at:** the acceptance column against the unquantized pair; the recommendation order
(quantize the draft before the target; an INT8 target before INT4).

**What number would change the decision:** an acceptance drop of more than
`acceptance_drop_pp` (5) percentage points against the unquantized pair: move the target from INT4 to
INT8 or change method."""

SETUP = """from IPython.display import display
import pandas as pd

from playbook.helpers import {mods}
from playbook.helpers.artifacts import RunDir
from playbook.helpers.params import {cls}{extra}

p = {cls}.from_namespace(globals())
run = RunDir(p.run_dir)"""

RESOLVE = """target = models.resolve(p.target_model, "target")
draft = models.resolve(p.draft_model, "draft") if memory.uses_draft(p.method, p.draft_model) else None
gpu = gpus.resolve_gpu(p.gpu, p.gpu_memory_gib, embedded=p.mode == "embedded")
kw = memory.step_kwargs(p, gpu)
print(f"target {target.name} ({models.total_params(target) / 1e9:.3g}B), "
      f"draft {draft.name if draft else '-'}, {p.num_gpus}x {gpu.name} ({gpu.memory_gib} GiB)")"""


def drafts_cells():
    return [
        ("md", DRAFTS_GUIDE),
        ("params", params_source(DraftsParams)),
        ("code", SETUP.format(cls="DraftsParams", mods="drafts, models", extra="")),
        ("code", """target = models.resolve(p.target_model, "target")
candidates = drafts.candidates_for(target, p.draft_candidates, p.draft_model)
result = drafts.rank(target, candidates, p.ratio_low, p.ratio_high)
run.write_json("10_drafts.json", result)  # the static ranking is on disk before any probe"""),
        ("code", """if p.acceptance_probe and p.mode != "external" and candidates:
    result = drafts.probe(p, run, target, candidates, p.ratio_low, p.ratio_high)
    run.write_json("10_drafts.json", result)"""),
        ("md", "### Ranked candidates"),
        ("code", """display(pd.DataFrame([c.model_dump(include={"rank", "name", "ratio", "same_tokenizer", "same_family",
                                                "methods", "score", "acceptance_rate"}) for c in result.candidates]))
for c in result.candidates:
    print(f"{c.rank}. {c.name}: " + "; ".join(c.reasons))
print("methods the target supports:", ", ".join(result.target_methods))"""),
        ("code", "print(result.finding)"),
    ]


def memory_cells():
    return [
        ("md", MEMORY_GUIDE),
        ("params", params_source(MemoryParams)),
        ("code", SETUP.format(cls="MemoryParams", mods="gpus, memory, models",
                               extra="\nfrom playbook.helpers.schemas.memory import MemoryResult")),
        ("code", RESOLVE),
        ("code", """budget = memory.budget(target, draft, gpu, target_quant=p.target_quant, draft_quant=p.draft_quant, **kw)
budgets = memory.matrix_budgets(target, draft, gpu, **kw)
result = MemoryResult(budget=budget, matrix=[memory.precision_row(b) for b in budgets], rules=budget.rules,
                      warnings=budget.warnings, finding=memory.finding(budget), plot="20_memory_budget.png")
run.write_json("20_memory.json", result)"""),
        ("md", "### Budget per GPU, for each precision pair"),
        ("code", """fig = memory.plot_budget(budgets, run.artifact("20_memory_budget.png"))"""),
        ("code", """display(pd.DataFrame([r.model_dump() for r in result.matrix]))
for r in result.rules:
    print(("ok   " if r.passed else "WARN ") + r.message)"""),
        ("code", "print(result.finding)"),
    ]


def quant_cells():
    return [
        ("md", QUANT_GUIDE),
        ("params", params_source(QuantizationParams)),
        ("code", SETUP.format(cls="QuantizationParams", mods="gpus, memory, models, quantization",
                               extra="\nfrom playbook.helpers.schemas.quantization import QuantizationResult")),
        ("code", RESOLVE),
        ("code", """budgets = memory.matrix_budgets(target, draft, gpu, **kw)
result = QuantizationResult(matrix=[memory.precision_row(b) for b in budgets], acceptance_drop_pp_threshold=p.acceptance_drop_pp)
run.write_json("30_quantization.json", result)  # the matrix is on disk before any server starts"""),
        ("code", """if p.measure_acceptance and p.mode != "external" and p.method in ("draft_model", "ngram"):
    pairs = quantization.embedded_pairs() if p.mode == "embedded" else quantization.managed_pairs(result.matrix)
    result.acceptance = quantization.measure_pairs(p, run, pairs, p.probe_requests, embedded=p.mode == "embedded")
    result.baseline_acceptance = quantization.acceptance_drop(result.acceptance, p.acceptance_drop_pp)
    run.write_json("30_quantization.json", result)"""),
        ("md", "### Precision matrix and measured acceptance"),
        ("code", """display(pd.DataFrame([r.model_dump() for r in result.matrix]))
if result.acceptance:
    display(pd.DataFrame([a.model_dump() for a in result.acceptance]))"""),
        ("code", """result.recommendation, result.recommended, result.finding = quantization.recommend(result, p.acceptance_drop_pp)
run.write_json("30_quantization.json", result)
print(result.finding)"""),
    ]


def main() -> None:
    write_notebook(ROOT / "10_drafts.ipynb", drafts_cells())
    write_notebook(ROOT / "20_memory.ipynb", memory_cells())
    write_notebook(ROOT / "30_quantization.ipynb", quant_cells())


if __name__ == "__main__":
    main()
