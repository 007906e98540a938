"""The ``playbook`` command: argument handling only; each subcommand lives in playbook.commands."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
import warnings

from playbook import __version__
from playbook.commands import load_commands
from playbook.helpers.errors import PlaybookError


class Parser(argparse.ArgumentParser):
    """argparse's usage errors in the playbook's own form: one ``error:`` line naming the argument, and a
    ``fix:`` (exit status 2, a bad command line, as before). Subcommand parsers are of this class too."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {self.prog}: {message}\n  fix: {_fix_for(message, self.prog)}\n")


def _fix_for(message: str, prog: str) -> str:
    """The fix for an argparse error; for the usual slip, a list given with spaces (``--batch-sizes 1 8 24``),
    the list form."""
    extra = message.split("unrecognized arguments:", 1)[1].split() if "unrecognized arguments:" in message else []
    if extra and all(x.replace(".", "", 1).isdigit() for x in extra):
        return (f"join a list's values with commas, without spaces: ...,{','.join(extra)} rather than ... "
                f"{' '.join(extra)} (e.g. --batch-sizes 1,8,24, -p concurrencies=1,4,16)")
    return f"see `{prog} --help`"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="playbook",
        description="Measure, then decide whether to turn on speculative decoding in vLLM.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also PLAYBOOK_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in load_commands():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns the exit code. Safe to call in-process (tests, notebooks)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("PLAYBOOK_DEBUG") == "1"
    from playbook.commands._common import parameter_flags
    from playbook.helpers.params import command_line

    try:
        with command_line(args.command, parameter_flags(args.command, args._parser)), warnings.catch_warnings():
            warnings.showwarning = _warning_line  # errors name the flags typed; warnings are one line each
            return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted: everything measured so far is on disk", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure ends in one `error:` line, never a traceback
        if debug:
            traceback.print_exc()
        print(error_line(exc, debug), file=sys.stderr)
        return 1


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning on the command line: ``warning: <message>``, without the source line Python adds."""
    print(f"warning: {message}", file=file or sys.stderr)


MAX_ERROR_CHARS = 4000  # a value quoted in an error (a huge YAML value, a log) never floods the terminal


def error_line(exc: BaseException, debug: bool = False) -> str:
    """One ``error:`` line (plus its ``fix:``) for any exception reaching the command line."""
    if isinstance(exc, PlaybookError):
        text = str(exc)
    elif isinstance(exc, OSError):
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        text = f"{exc.strerror or exc}{where}\n  fix: check the path and its permissions"
    elif type(exc).__name__ == "PapermillExecutionError":  # a notebook cell failed: its own error, not papermill's
        text = (f"a notebook cell failed: {getattr(exc, 'ename', '')}: {getattr(exc, 'evalue', exc)}"
                f"\n  fix: see the executed notebook in the run directory's notebooks/")
    else:
        text = (f"unexpected {type(exc).__name__}: {exc}\n  fix: this is a bug in the playbook; "
                + ("the traceback is above" if debug else "rerun with --debug to see the traceback and report it"))
    if len(text) > MAX_ERROR_CHARS:
        text = text[:MAX_ERROR_CHARS] + f" ... ({len(text) - MAX_ERROR_CHARS} more characters cut)"
    return f"error: {text}"


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
