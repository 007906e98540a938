"""The ``playbook`` command: argument handling only; each subcommand lives in playbook.commands."""

from __future__ import annotations

import argparse
import signal
import sys

from playbook import __version__
from playbook.commands import load_commands
from playbook.helpers.errors import PlaybookError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="playbook",
        description="Measure, then decide whether to turn on speculative decoding in vLLM.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in load_commands():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns the exit code. Safe to call in-process (tests, notebooks)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except PlaybookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: everything measured so far is on disk", file=sys.stderr)
        return 130


def entry() -> None:
    """The `playbook` program: like main(), and `playbook ... | head` ends quietly.

    Only the program's own process takes the default SIGPIPE action; an in-process main() must not,
    or a later write to a closed pipe would kill its host (pytest, a Jupyter kernel).
    """
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())


if __name__ == "__main__":
    entry()
