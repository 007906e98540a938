"""Small pieces the command modules share: JSON output."""

from __future__ import annotations

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
    return [float(x) for x in text.split(",") if x.strip()]


def csv_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]
