"""The ``playbook`` command: argument handling only; each subcommand lives in playbook.commands."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import signal
import sys
import traceback
import warnings
from collections.abc import Sequence

from playbook import __version__
from playbook.commands import load_commands
from playbook.helpers.errors import PlaybookError

# jsonschema (under nbformat, papermill, nbconvert) imports rfc3987_syntax when it is installed (jupyter-events pulls
# it in) for one optional check, the "iri" string format, and that import builds a Lark grammar: ~2.5 s of every
# command that reads or runs a notebook, measured on 2 cores. No notebook schema uses that format; with the entry
# None, jsonschema's guarded import fails and it leaves the check out (jsonschema/_format.py).
sys.modules.setdefault("rfc3987_syntax", None)


class Parser(argparse.ArgumentParser):
    """argparse's usage errors in the playbook's own form: one ``error:`` line naming the argument, and a
    ``fix:`` (exit status 2, a bad command line, as before). Subcommand parsers are of this class too."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {self.prog}: {message}\n  fix: {_fix_for(message, self.prog, self.commands())}\n")

    def commands(self) -> list[str]:
        """The names of this parser's subcommands (``run``, ``report``, ...; ``start``, ``stop`` for engine)."""
        return [name for a in self._actions if isinstance(a, argparse._SubParsersAction) for name in a.choices]


def _fix_for(message: str, prog: str, commands: Sequence[str] = ()) -> str:
    """The fix for an argparse error; for the usual slips, a list given with spaces (``--batch-sizes 1 8 24``),
    the list form, and for a mistyped or guessed name (``playbook redecide``), what to type instead."""
    extra = message.split("unrecognized arguments:", 1)[1].split() if "unrecognized arguments:" in message else []
    if extra and all(x.replace(".", "", 1).isdigit() for x in extra):
        return (f"join a list's values with commas, without spaces: ...,{','.join(extra)} rather than ... "
                f"{' '.join(extra)} (e.g. --batch-sizes 1,8,24, -p concurrencies=1,4,16)")
    if "--acceptance-length" in message and "is required" in message:  # playbook predict without an acceptance
        return ("give the acceptance of your draft on your traffic: vLLM logs it ('Mean acceptance length', "
                "1 + accepted / drafts) and `playbook sweep` (step 40) measures it; to start from a published one: "
                "--acceptance-length 2.3 -k 3 (an EAGLE head on Llama-3.1-8B-Instruct, MT-bench, "
                "vllm-project/vllm#20780); see `playbook predict --help`")
    if (choice := INVALID_CHOICE.search(message)) and (hint := _choice_hint(choice["value"], choice["choices"], prog,
                                                                            commands)):
        return hint
    return f"see `{prog} --help`"


# A name a user may guess -> (the command that does it, what to type). Used only by a parser that has that
# command, so `playbook restart` and `playbook engine restart` each get their own hint, or none.
ALIASES = {
    "redecide": ("report", "`playbook report RUN -p NAME=VALUE` re-decides a run from its measurements (a threshold, "
                           "an SLO, expected_peak_concurrency, production_temperature) without measuring again"),
    "decide": ("report", "`playbook report RUN` decides a run from its measurements (-p NAME=VALUE to change a "
                         "threshold)"),
    "rerender": ("report", "`playbook report RUN` rebuilds decision.json, summary.md and report.html"),
    "resume": ("run", "`playbook run --resume RUN` runs a run's unfinished steps"),
    "rerun": ("run", "`playbook run --resume RUN` runs a run's unfinished steps"),
    "bench": ("load", "`playbook load` load-tests a baseline and a speculative server side by side"),
    "benchmark": ("load", "`playbook load` load-tests a baseline and a speculative server side by side"),
    "acceptance": ("sweep", "`playbook sweep` measures acceptance at several temperatures"),
    "estimate": ("predict", "`playbook predict` predicts the speedup without a GPU"),
    "jupyter": ("lab", "`playbook lab` opens the interactive walkthrough in JupyterLab"),
    "restart": ("stop", "`playbook engine stop`, then `playbook engine start`"),
}
INVALID_CHOICE = re.compile(r"invalid choice: '(?P<value>[^']*)'.*?\(choose from (?P<choices>.*)\)$")


def _choice_hint(value: str, listed: str, prog: str, commands: Sequence[str]) -> str | None:
    """What was meant by an invalid choice: a known alias's command (``redecide``), or the nearest choice
    (``reprot``: report); None when nothing is near."""
    command, text = ALIASES.get(value.lower(), ("", ""))
    if command in commands:
        return f"{text} (see `{prog} {command} --help`)"
    choices = [a or b for a, b in re.findall(r"'([^']*)'|([^,\s]+)", listed)]  # 'a', 'b' or a, b (Python 3.12.8+)
    near = difflib.get_close_matches(value.lower(), choices, n=1, cutoff=0.6)
    if not near:
        return None
    meant = f"`{prog} {near[0]}`" if near[0] in commands else f"'{near[0]}'"
    return f"did you mean {meant}? (see `{prog} --help`)"


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
    from playbook.commands._common import parameter_flags, printed
    from playbook.helpers.params import command_line

    printed.json = False

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
        if getattr(args, "json", False) and not printed.json:  # a script parsing stdout gets the error as JSON
            print(json.dumps({"error": {"problem": getattr(exc, "problem", None) or error_line(exc, debug)[7:],
                                        "fix": getattr(exc, "fix", None)}}))
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
