"""Predicted vs published GPU measurements of speculative decoding (benchmarks/predictor/published.yaml).

Each row names its source, configuration, acceptance and measured speedup; the prediction comes
from catalog facts alone (``catalog_predict.catalog_prediction``), as a new user would get it from
``playbook predict``. Rows marked ``fit: true`` were used to set a constant of the step-time model
(helpers/step_model.py names them); the others are held out. A source without an acceptance length
for its rows either has one assumed (marked ``acceptance_assumed``) or anchors it (``anchor_batch``:
the length at which the prediction matches the source's own speedup at its lowest batch, as the
playbook calibrates on a node; that row is then fit). Summary, over the vLLM rows (the engine the
playbook drives), the SGLang rows, the held-out rows and all rows (last): median absolute relative
error of the speedup (speedup and ratio rows), how many rows have the direction (gain vs loss)
right (speedup and crossover rows), how many of the published slowdowns (a speedup below 1, or a crossover batch)
are predicted as losses, and the worst factor between predicted and published crossover
batch sizes (crossover rows).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, model_validator

from playbook.helpers import acceptance_math, catalog_predict, gpus, models

HERE = Path(__file__).resolve().parent
TABLE = HERE / "published.yaml"


class PublishedRow(BaseModel):
    source: str
    kind: Literal["speedup", "ratio", "crossover"] = "speedup"
    fit: bool = Field(False, description="used to set a constant of the model (in-sample); else held out")
    engine: Literal["vllm", "sglang"] = "vllm"
    gpu: str
    target: str
    draft: str = ""
    method: str = ""
    tp: int = 1
    precision: str = Field("bf16", description="the target's weight precision (an MTP draft shares it)")
    k: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    acceptance_length: float = Field(ge=1)
    acceptance_assumed: bool = False
    context: int = 512
    verify_tokens: int | None = None
    tree_width: int = 1
    measured: float = Field(gt=0)
    anchor_batch: int | None = Field(None, ge=1, description="the source gives no acceptance: the acceptance length is "
                                     "the one at which the predicted speedup at this batch equals anchor_speedup")
    anchor_speedup: float | None = Field(None, gt=0, description="the source's own speedup at anchor_batch")
    ngram_match: float | None = Field(None, gt=0, le=1, description="n-gram rows: the probability that the lookup "
                                      "finds a match on a step whose first proposed token would be rejected (the "
                                      "source's own simulator constant); sets the proposal rate (proposal_rate)")
    note: str = ""

    @model_validator(mode="after")
    def _anchor_pair(self):
        if (self.anchor_batch is None) != (self.anchor_speedup is None):
            raise ValueError("give anchor_batch and anchor_speedup together")
        return self


class PublishedCheck(BaseModel):
    row: PublishedRow
    predicted: float
    acceptance_length: float = Field(description="the row's, or solved at its anchor batch")
    relative_error: float
    direction_right: bool | None = Field(None, description="gain vs loss agrees (speedup rows only)")


def load(path: Path = TABLE) -> list[PublishedRow]:
    """The table's rows, validated."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    return [PublishedRow(**r) for r in data.get("rows", [])]


def _spec(name: str, role: str):
    if not name:
        return None
    local = HERE / name
    return models.resolve(str(local) if local.is_dir() else name, role)


CROSSOVER_GRID = [1, 2, 3, 4, 6, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 256]


def proposal_rate(row: PublishedRow, acceptance_length: float) -> float:
    """The fraction of steps on which an n-gram proposes, as SpecDecode-Bench's simulator models it
    (simulator.py, ``_not_matched_ngram``): every step whose first token would be accepted has a match, a step
    whose first token would be rejected has one with probability m (``ngram_match``). With a the per-proposal
    first-token acceptance, q = P(first accepted) + m P(first rejected) and a = P(first accepted) / q, so
    q = m / (1 - a (1 - m)). 1 without ``ngram_match``."""
    if row.ngram_match is None:
        return 1.0
    a = acceptance_math.acceptance_from_length(acceptance_length, row.k)
    return row.ngram_match / (1 - a * (1 - row.ngram_match))


def _prediction(row: PublishedRow, sizes: list[int], acceptance_length: float):
    return catalog_predict.catalog_prediction(
        _spec(row.target, "target"), _spec(row.draft, "draft"), gpus.get_gpu(row.gpu),
        num_speculative_tokens=row.k, tp=row.tp, precision=row.precision, method=row.method,
        acceptance_length=acceptance_length,
        batch_sizes=sizes, context_tokens=row.context, verify_tokens_per_seq=row.verify_tokens,
        tree_width=row.tree_width, engine=row.engine, proposal_rate=proposal_rate(row, acceptance_length),
    )


def acceptance_length(row: PublishedRow) -> float:
    """The row's acceptance length: as given, or (``anchor_batch``) the one at which the predicted speedup
    at the anchor batch equals the source's own there (bisection over (1, k+1]; the speedup grows with it).
    The way the playbook calibrates on a node: from the lowest load, the rest of the curve is predicted."""
    if row.anchor_batch is None:
        return row.acceptance_length
    lo, hi = 1.0 + 1e-6, float(row.k + 1)
    for _ in range(60):
        mid = (lo + hi) / 2
        s = _prediction(row, [row.anchor_batch], mid).points[0].speedup
        lo, hi = (mid, hi) if s < row.anchor_speedup else (lo, mid)
    return (lo + hi) / 2


def predicted(row: PublishedRow, al: float | None = None) -> float:
    """The speedup, the ratio to batch 1, or the crossover batch size (crossover rows; 0 when the
    prediction wins over the whole grid) the predictor gives for a row's configuration (``al``: its
    :func:`acceptance_length`, when already solved)."""
    sizes = CROSSOVER_GRID if row.kind == "crossover" else sorted({1, row.batch_size})
    pred = _prediction(row, sizes, acceptance_length(row) if al is None else al)
    if row.kind == "crossover":
        return float(pred.crossover_batch_size or 0)
    by_batch = {p.batch_size: p.speedup for p in pred.points}
    return by_batch[row.batch_size] / by_batch[1] if row.kind == "ratio" else by_batch[row.batch_size]


def crossover_factor(p: float, measured: float) -> float:
    """max(p/m, m/p): 1 is exact; inf when the prediction never crosses."""
    return max(p / measured, measured / p) if p > 0 else float("inf")


def check(rows: list[PublishedRow]) -> list[PublishedCheck]:
    out = []
    for row in rows:
        al = acceptance_length(row)
        p = predicted(row, al)
        if row.kind == "crossover":  # a published slowdown from that batch on: right if predicted within 1.5x
            factor = crossover_factor(p, row.measured)
            out.append(PublishedCheck(row=row, predicted=p, acceptance_length=al, relative_error=factor - 1,
                                      direction_right=factor <= 1.5))
            continue
        direction = (p >= 1) == (row.measured >= 1) if row.kind == "speedup" else None
        out.append(PublishedCheck(row=row, predicted=p, acceptance_length=al,
                                  relative_error=abs(p - row.measured) / row.measured, direction_right=direction))
    return out


def summary(checks: list[PublishedCheck]) -> dict:
    """Median absolute relative error over the speedup and ratio rows, direction right over the
    speedup and crossover rows, the worst crossover factor."""
    errors = [c.relative_error for c in checks if c.row.kind != "crossover"]
    directed = [c for c in checks if c.direction_right is not None]
    crossovers = [c.relative_error + 1 for c in checks if c.row.kind == "crossover"]
    slowdowns = [c for c in directed if c.row.kind == "crossover" or c.row.measured < 1]
    return {
        "median_error": statistics.median(errors) if errors else float("nan"),
        "direction_right": sum(bool(c.direction_right) for c in directed), "direction_rows": len(directed),
        "slowdowns": len(slowdowns), "slowdowns_right": sum(bool(c.direction_right) for c in slowdowns),
        "crossover_factor": max(crossovers) if crossovers else None, "rows": len(checks),
    }


def report(path: Path = TABLE) -> int:
    checks = check(load(path))
    print(f"published GPU measurements: {path}")
    print(f"{'source':<34} {'use':<4} {'config':<52} {'bs':>4} {'AL':>5} {'meas':>6} {'pred':>6} {'err':>6}")
    for c in checks:
        r = c.row
        kind = {"ratio": " ratio", "crossover": " crossover"}.get(r.kind, "")
        cfg = f"{r.target}+{Path(r.draft).name or r.method} k={r.k} {r.gpu} TP{r.tp}{kind}"
        al = (f"~{c.acceptance_length:.2f}" if r.anchor_batch is not None
              else f"{r.acceptance_length:.2f}" + ("*" if r.acceptance_assumed else ""))
        print(f"{r.source[:34]:<34} {'fit' if r.fit else 'held':<4} {cfg[:52]:<52} {r.batch_size:>4} {al:>5} "
              f"{r.measured:>6.3f} {c.predicted:>6.3f} {c.relative_error:>6.1%}")
    print("(* acceptance assumed: the source gives none for that row; ~ acceptance set so the prediction matches the "
          "source at its lowest batch (that row is fit); crossover rows give batch sizes, error = factor - 1)")
    subsets = (("_vllm", [c for c in checks if c.row.engine == "vllm"]),
               ("_sglang", [c for c in checks if c.row.engine == "sglang"]),
               ("_heldout", [c for c in checks if not c.row.fit]), ("", checks))
    for label, subset in subsets:
        if not subset:
            continue
        s = summary(subset)
        print(f"published_median_error{label}={s['median_error']:.4f}")
        print(f"published_direction_right{label}={s['direction_right']}/{s['direction_rows']}")
        print(f"published_slowdowns_right{label}={s['slowdowns_right']}/{s['slowdowns']}")
        if s["crossover_factor"] is not None:
            print(f"published_crossover_factor{label}={s['crossover_factor']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(report())
