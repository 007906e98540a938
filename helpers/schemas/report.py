"""The report step's result: the decision plus what notebook 90 renders beside it."""

from __future__ import annotations

from pydantic import BaseModel

from .decision import Decision, Evidence
from .predict import Prediction, PredictionCheck


class ReportResult(BaseModel):
    """What ``steps.report`` returns (decision.json holds only ``decision``)."""

    decision: Decision
    evidence: Evidence
    prediction: Prediction | None = None
    check: PredictionCheck | None = None
