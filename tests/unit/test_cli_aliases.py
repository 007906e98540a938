"""argparse's "invalid choice" for a near-miss or a guessed command name points at the command that does it
(`playbook redecide RUN`: `playbook report RUN -p ...` re-decides), in the command-line layer (qa3 P13)."""

import argparse

import pytest

from playbook import cli


def _fix(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err
    return err.split("  fix: ", 1)[1].strip()


@pytest.mark.parametrize("argv, fix", [
    (["redecide", "runs/x"], "`playbook report RUN -p NAME=VALUE` re-decides a run from its measurements"),
    (["decide", "runs/x"], "`playbook report RUN`"),
    (["resume", "runs/x"], "`playbook run --resume RUN`"),
    (["benchmark"], "`playbook load`"),
    (["engine", "restart"], "`playbook engine stop`, then `playbook engine start`"),
])
def test_a_guessed_name_points_at_the_command_that_does_it(capsys, argv, fix):
    got = _fix(capsys, argv)
    assert got.startswith(fix) and "--help`" in got


@pytest.mark.parametrize("argv, meant", [
    (["reprot", "runs/x"], "did you mean `playbook report`?"),
    (["Predict"], "did you mean `playbook predict`?"),
    (["engine", "strat"], "did you mean `playbook engine start`?"),
])
def test_a_near_miss_gets_did_you_mean(capsys, argv, meant):
    assert _fix(capsys, argv).startswith(meant)


def test_an_alias_only_where_its_command_exists(capsys):
    assert _fix(capsys, ["engine", "redecide"]) == "see `playbook engine --help`"
    assert _fix(capsys, ["zzz"]) == "see `playbook --help`"


@pytest.mark.parametrize("message", [
    "argument COMMAND: invalid choice: 'reprot' (choose from 'init', 'run', 'report')",
    "argument COMMAND: invalid choice: 'reprot' (choose from init, run, report)",  # Python 3.12.8+ drops the quotes
])
def test_both_argparse_spellings_of_the_choices_are_read(message):
    assert cli._fix_for(message, "playbook", ["init", "run", "report"]).startswith("did you mean `playbook report`?")


def test_a_near_miss_of_an_option_value_is_quoted_not_a_command():
    message = "argument --precision: invalid choice: 'fp7' (choose from 'fp8', 'bf16')"
    assert cli._fix_for(message, "playbook memory", []).startswith("did you mean 'fp8'?")


def test_aliases_name_real_commands():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands = [*parser.commands(), *sub.choices["engine"].commands()]
    assert all(command in commands for command, _ in cli.ALIASES.values())
    assert not set(cli.ALIASES) & set(commands)  # an alias never hides a real command
