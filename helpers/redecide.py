"""Re-decide a run without re-measuring: other thresholds, SLOs, expected peak or production temperature.

``playbook report RUN_DIR -p name=value`` takes the report step's parameters from run.json, applies
the overrides (report parameters only: the measured numbers stay), decides again and records what
changed: a ``changes`` block in decision.json (this decision only) and a section appended to
``redecide.md`` beside it (the history of re-decisions). Each re-decision starts from run.json's
parameters: a later ``playbook report RUN_DIR`` without ``-p`` decides with those again.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from .artifacts import RunDir, write_json_atomic
from .errors import ParameterError
from .params import ReportParams, StepParams, known_parameters, unknown_parameter_error
from .schemas.decision import Decision

NOTE = "redecide.md"
# What a re-decision may change: the report step's own parameters (situation and thresholds), not
# what was measured or how (servers, models, k).
REDECIDE_PARAMETERS = frozenset(ReportParams.model_fields) - frozenset(StepParams.model_fields)


def check_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides, or a ParameterError naming an unknown name (with the closest known names, as ``run -p``
    suggests them) or those a re-decision cannot change."""
    unknown = sorted(set(overrides) - known_parameters())
    if unknown:
        raise unknown_parameter_error(unknown, fix="playbook report -p takes the report's parameters: "
                                                   + ", ".join(sorted(REDECIDE_PARAMETERS)))
    bad = sorted(set(overrides) - REDECIDE_PARAMETERS)
    if bad:
        raise ParameterError(
            f"playbook report -p can change only the report's parameters, not {', '.join(bad)} (that needs measuring again)",
            "re-decide with: " + ", ".join(sorted(REDECIDE_PARAMETERS)) + "; to measure again, use playbook run",
        )
    return overrides


def previous_decision(run: RunDir) -> dict | None:
    """decision.json as it was before re-deciding (None when there is none or it is unreadable)."""
    try:
        return json.loads((run.path / "decision.json").read_text())
    except (OSError, ValueError):
        return None


def _used(decision: dict | None, p: ReportParams, name: str) -> Any:
    """The value a decision used for ``name`` (its inputs), else the parameters' value."""
    inputs = (decision or {}).get("inputs") or {}
    if name in inputs:
        return inputs[name]
    if name in (inputs.get("thresholds") or {}):
        return inputs["thresholds"][name]
    return getattr(p, name)


def changes(before: dict | None, p_before: ReportParams, p_after: ReportParams, after: Decision,
            overrides: dict[str, Any]) -> dict:
    """Old verdict -> new verdict, and each parameter changed (from -> to): the ones given, and any other the
    previous decision used with another value (an earlier re-decision's override this one goes back from)."""
    changed = {}
    for name in sorted(REDECIDE_PARAMETERS | set(overrides)):
        old, new = _used(before, p_before, name), getattr(p_after, name)
        if name in overrides or old != new:
            changed[name] = {"from": old, "to": new}
    return {
        "previous_verdict": (before or {}).get("verdict"),
        "verdict": after.verdict,
        "parameters": changed,
        "measured_again": False,
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def note_markdown(ch: dict) -> str:
    rows = "\n".join(f"| `{k}` | {v['from']} | {v['to']} |" for k, v in ch["parameters"].items())
    return (f"## Re-decision ({ch['at']})\n\n"
            f"Verdict: **{ch['previous_verdict'] or 'none'}** -> **{ch['verdict']}**, from the same measurements "
            "(nothing was measured again).\n\n| parameter | was | now |\n|---|---|---|\n" + rows + "\n")


def record(run: RunDir, ch: dict, append: bool = True) -> None:
    """Add the ``changes`` block to decision.json and (``append``) this re-decision to redecide.md."""
    data = previous_decision(run)
    if data is not None:
        data["changes"] = ch
        write_json_atomic(run.path / "decision.json", Decision.model_validate(data))
    if append:
        note = run.path / NOTE
        head = "" if note.exists() else "# Re-decisions of this run (same measurements, other report parameters)\n\n"
        with open(note, "a") as fh:
            fh.write(head + note_markdown(ch) + "\n")
