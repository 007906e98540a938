"""Small pieces the command modules share: JSON output."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pydantic import BaseModel


def print_json(data: Any) -> None:
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    elif isinstance(data, list):
        data = [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in data]
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def csv_floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:80]!r} is not a comma-separated list of numbers (e.g. 0.8,0.6)") from None


def csv_ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:80]!r} is not a comma-separated list of whole numbers (e.g. 1,4,16)") from None


def shown(value: Any) -> str:
    """A flag's value as the user typed it, near enough: floats and lists of numbers with ``g``."""
    if isinstance(value, list):
        return ",".join(f"{x:g}" for x in value) or "''"
    return f"{value:g}" if isinstance(value, float) else str(value)


def flag_problems(checks: list[tuple[str, Any, bool, str]]) -> list[str]:
    """``"--flag value (rule)"`` for every ``(flag, value, ok, rule)`` that is not ok: one error names each."""
    return [f"{flag} {shown(value)} ({rule})" for flag, value, ok, rule in checks if not ok]
