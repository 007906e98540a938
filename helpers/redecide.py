"""Re-decide a run without re-measuring: other thresholds, SLOs, expected peak or production temperature.

``playbook report RUN_DIR -p name=value`` takes the report step's parameters from run.json, applies
the overrides (report parameters only: the measured numbers stay), decides again and records what
changed: a ``changes`` block in decision.json (this decision only) and a section appended to
``redecide.md`` beside it (the history of re-decisions). Each re-decision starts from run.json's
parameters: a later ``playbook report RUN_DIR`` without ``-p`` decides with those again, and that step back is
recorded as a re-decision too (the previous decision used other parameters). A report that changes no parameter
records nothing, and decision.json then has no ``changes`` block.
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


def _same(a: Any, b: Any) -> bool:
    """Two parameter values alike (16 and 16.0, lists element by element)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(a)), abs(float(b)))
    return a == b


def changes(before: dict | None, p_before: ReportParams, p_after: ReportParams, after: Decision,
            overrides: dict[str, Any]) -> dict:
    """Old verdict -> new verdict, and each parameter changed (from -> to): the ones given, and any other the
    previous decision used with another value (an earlier re-decision's override this one goes back from).
    ``parameters`` is empty when nothing changed (then nothing is recorded: :func:`worth_recording`);
    ``overrides`` says which -p values the new verdict used ({}: run.json's parameters only)."""
    changed = {}
    for name in sorted(REDECIDE_PARAMETERS | set(overrides)):
        old, new = _used(before, p_before, name), getattr(p_after, name)
        if name in overrides or not _same(old, new):
            changed[name] = {"from": old, "to": new}
    return {
        "previous_verdict": (before or {}).get("verdict"),
        "verdict": after.verdict,
        "parameters": changed,
        "overrides": dict(overrides),
        "measured_again": False,
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def worth_recording(ch: dict | None) -> bool:
    """A re-decision to record: a parameter changed from the previous decision's (given with -p, or going back to
    run.json's after an earlier -p)."""
    return bool(ch and ch.get("parameters"))


def note_markdown(ch: dict) -> str:
    rows = "\n".join(f"| `{k}` | {v['from']} | {v['to']} |" for k, v in ch["parameters"].items())
    given = ch.get("overrides")
    used = ("run.json's parameters with " + ", ".join(f"`{k}={v}`" for k, v in given.items()) if given
            else "run.json's parameters (back from the earlier -p values)")
    return (f"## Re-decision ({ch['at']})\n\n"
            f"Verdict: **{ch['previous_verdict'] or 'none'}** -> **{ch['verdict']}**, from the same measurements "
            f"(nothing was measured again), decided with {used}.\n\n"
            "| parameter | was | now |\n|---|---|---|\n" + rows + "\n")


def in_effect(decision: dict | None, recorded: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The report parameters a decision used that differ from run.json's (``recorded``; a missing one is the
    report step's default): name -> (used, run.json's). Empty when it used run.json's own."""
    inputs = (decision or {}).get("inputs") or {}
    out = {}
    for name in sorted(REDECIDE_PARAMETERS):
        if name in inputs:
            used = inputs[name]
        elif name in (inputs.get("thresholds") or {}):
            used = inputs["thresholds"][name]
        else:
            continue
        field = ReportParams.model_fields[name]
        rec = recorded.get(name, field.get_default(call_default_factory=True))
        if not _same(used, rec):
            out[name] = (used, rec)
    return out


def record(run: RunDir, ch: dict, append: bool = True) -> None:
    """Add the ``changes`` block to decision.json and (``append``) this re-decision to redecide.md; nothing when
    nothing changed (no empty ``changes`` block)."""
    if not worth_recording(ch):
        return
    data = previous_decision(run)
    if data is not None:
        data["changes"] = ch
        write_json_atomic(run.path / "decision.json", Decision.model_validate(data))
    if append:
        note = run.path / NOTE
        head = "" if note.exists() else "# Re-decisions of this run (same measurements, other report parameters)\n\n"
        with open(note, "a") as fh:
            fh.write(head + note_markdown(ch) + "\n")
