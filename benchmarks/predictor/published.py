"""Predicted vs published GPU measurements of speculative decoding (benchmarks/predictor/published.yaml).

Each row names its source, configuration, acceptance and measured speedup; the prediction comes
from catalog facts alone (``predict.catalog_prediction``), as a new user would get it from
``playbook predict``. Summary: median absolute relative error of the speedup and how many rows have
the direction (gain vs loss) right.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field

from playbook.helpers import gpus, models, predict

HERE = Path(__file__).resolve().parent
TABLE = HERE / "published.yaml"


class PublishedRow(BaseModel):
    source: str
    kind: Literal["speedup", "ratio"] = "speedup"
    gpu: str
    target: str
    draft: str = ""
    method: str = ""
    tp: int = 1
    k: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    acceptance_length: float = Field(ge=1)
    acceptance_assumed: bool = False
    context: int = 512
    verify_tokens: int | None = None
    measured: float = Field(gt=0)
    note: str = ""


class PublishedCheck(BaseModel):
    row: PublishedRow
    predicted: float
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


def predicted(row: PublishedRow) -> float:
    """The speedup (or the ratio to batch 1) the predictor gives for a row's configuration."""
    pred = predict.catalog_prediction(
        _spec(row.target, "target"), _spec(row.draft, "draft"), gpus.get_gpu(row.gpu),
        num_speculative_tokens=row.k, tp=row.tp, method=row.method, acceptance_length=row.acceptance_length,
        batch_sizes=sorted({1, row.batch_size}), context_tokens=row.context, verify_tokens_per_seq=row.verify_tokens,
    )
    by_batch = {p.batch_size: p.speedup for p in pred.points}
    return by_batch[row.batch_size] / by_batch[1] if row.kind == "ratio" else by_batch[row.batch_size]


def check(rows: list[PublishedRow]) -> list[PublishedCheck]:
    out = []
    for row in rows:
        p = predicted(row)
        direction = (p >= 1) == (row.measured >= 1) if row.kind == "speedup" else None
        out.append(PublishedCheck(row=row, predicted=p, relative_error=abs(p - row.measured) / row.measured,
                                  direction_right=direction))
    return out


def summary(checks: list[PublishedCheck]) -> dict:
    """Median absolute relative error over all rows, direction right over the speedup rows."""
    directed = [c for c in checks if c.direction_right is not None]
    return {
        "median_error": statistics.median(c.relative_error for c in checks) if checks else float("nan"),
        "direction_right": sum(bool(c.direction_right) for c in directed), "direction_rows": len(directed),
        "slowdowns": sum(c.row.measured < 1 for c in directed),
    }


def report(path: Path = TABLE) -> int:
    checks = check(load(path))
    print(f"published GPU measurements: {path}")
    print(f"{'source':<34} {'config':<44} {'bs':>4} {'AL':>5} {'meas':>6} {'pred':>6} {'err':>6}")
    for c in checks:
        r = c.row
        cfg = f"{r.target}+{Path(r.draft).name or r.method} k={r.k} {r.gpu} TP{r.tp}" + (" ratio" if r.kind == "ratio" else "")
        al = f"{r.acceptance_length:.2f}" + ("*" if r.acceptance_assumed else "")
        print(f"{r.source[:34]:<34} {cfg[:44]:<44} {r.batch_size:>4} {al:>5} {r.measured:>6.3f} {c.predicted:>6.3f} "
              f"{c.relative_error:>6.1%}")
    s = summary(checks)
    print("(* acceptance assumed: the source gives none for that row)")
    print(f"published_median_error={s['median_error']:.4f}")
    print(f"published_direction_right={s['direction_right']}/{s['direction_rows']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(report())
