"""Small pieces the command modules share: JSON output, and which flag sets which step parameter."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pydantic import BaseModel


class _Printed:
    """Whether this command printed its JSON document (``--json``): an error after it adds none (one document)."""

    json = False


printed = _Printed()


def print_json(data: Any) -> None:
    printed.json = True
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    elif isinstance(data, list):
        data = [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in data]
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def read_only_reason(path) -> str | None:
    """Why nothing can be written in directory ``path`` ("Read-only file system", "Permission denied"), or None when
    a file can be created there. A full disk is not this (its fix is to free space)."""
    import errno
    import os
    import tempfile

    try:
        fd, name = tempfile.mkstemp(prefix=".write-probe-", dir=path)
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return exc.strerror or str(exc)
        return None  # another failure (ENOSPC, ...): the write itself will say what
    os.close(fd)
    os.unlink(name)
    return None


def _items(text: str, example: str) -> list[str]:
    """The items of a comma-separated list; an empty one between commas ('1,,4') is a typo, not nothing."""
    items = [x.strip() for x in text.strip().removesuffix(",").split(",")]
    if text.strip() and any(not x for x in items):
        raise argparse.ArgumentTypeError(f"{text[:80]!r} has an empty item between commas (e.g. {example})")
    return [x for x in items if x]


def csv_floats(text: str) -> list[float]:
    try:
        return [float(x) for x in _items(text, "0.8,0.6")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:80]!r} is not a comma-separated list of numbers (e.g. 0.8,0.6)") from None


def csv_ints(text: str) -> list[int]:
    try:
        return [int(x) for x in _items(text, "1,4,16")]
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


# Parameters a subcommand sets from a flag of another name (parameter -> the flag's argparse dest); a flag named
# as its parameter (--max-tokens -> max_tokens) needs no entry. A validation error then names the flag typed.
RENAMED_FLAGS: dict[str, dict[str, str]] = {
    "sweep": {"spec_url": "url", "workloads": "workload", "requests_per_point": "requests",
              "sweep_concurrency": "concurrency", "request_timeout_s": "timeout", "served_model_name": "model"},
    "load": {"concurrencies": "concurrency", "requests_per_level": "requests", "warmup_requests": "warmup",
             "duration_s": "duration", "request_timeout_s": "timeout", "target_ci_halfwidth": "target_ci",
             "level_time_budget_s": "level_budget", "min_round_pairs": "min_pairs", "served_model_name": "model",
             "level_decision_budget_s": "decision_budget",
             "baseline_served_model_name": "baseline_model"},
    "lossless": {"lossless_temperatures": "temperatures", "lossless_requests": "requests",
                 "lossless_alpha": "alpha", "served_model_name": "model"},
    "memory": {"target_model": "target", "draft_model": "draft", "tensor_parallel_size": "tp"},
    "predict": {"tensor_parallel_size": "tp"},
    "drafts": {"target_model": "target", "draft_candidates": "candidates"},
    "engine": {"server_start_timeout_s": "timeout"},
}


def _option_strings(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each flag's dest -> its longest option string, in ``parser`` and the subcommands below it."""
    out: dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out.update({k: v for k, v in _option_strings(sub).items() if k not in out})
        elif action.option_strings and action.dest not in ("help", "version"):
            out.setdefault(action.dest, max(action.option_strings, key=len))
    return out


def parameter_flags(command: str, parser: argparse.ArgumentParser) -> dict[str, str]:
    """Step parameter -> the flag of ``playbook <command>`` that sets it (``min_round_pairs`` -> ``--min-pairs``)."""
    from playbook.helpers.params import known_parameters

    options = _option_strings(parser)
    flags = {dest: flag for dest, flag in options.items() if dest in known_parameters()}
    flags.update({name: options[dest] for name, dest in RENAMED_FLAGS.get(command, {}).items() if dest in options})
    return flags
