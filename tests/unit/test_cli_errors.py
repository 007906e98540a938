"""Every failure reaching the command line ends in one `error:` line, never a traceback (unless --debug)."""

from types import SimpleNamespace

import pytest

from playbook import cli
from playbook.helpers.errors import ParameterError


def _command(exc: BaseException):
    def run(args):
        raise exc
    return SimpleNamespace(NAME="boom", HELP="raise", add_arguments=lambda p: None, run=run)


@pytest.mark.parametrize("exc, needle", [
    (ParameterError("parameter 'x' = -1 is negative", "give x >= 0"), "fix: give x >= 0"),
    (IsADirectoryError(21, "Is a directory", "/tmp/profile.yaml"), "Is a directory (/tmp/profile.yaml)"),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "rerun with --debug"),
    (ParameterError("x" * 50_000), "more characters cut"),
])
def test_errors_end_in_one_error_line(monkeypatch, capsys, exc, needle):
    monkeypatch.setattr(cli, "load_commands", lambda: [_command(exc)])
    monkeypatch.delenv("PLAYBOOK_DEBUG", raising=False)
    assert cli.main(["boom"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err
    assert "Traceback" not in err and len(err) < cli.MAX_ERROR_CHARS + 200


def test_a_warning_is_one_line_without_python_source(monkeypatch, capsys):
    import warnings

    def run(args):
        warnings.warn("the mix's shares add up to 1.2", UserWarning, stacklevel=2)
    monkeypatch.setattr(cli, "load_commands", lambda: [SimpleNamespace(NAME="warn", HELP="warn",
                                                                       add_arguments=lambda p: None, run=run)])
    assert cli.main(["warn"]) == 0
    assert capsys.readouterr().err == "warning: the mix's shares add up to 1.2\n"


def test_debug_shows_the_traceback(monkeypatch, capsys):
    monkeypatch.setattr(cli, "load_commands", lambda: [_command(RuntimeError("kaput"))])
    assert cli.main(["--debug", "boom"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "error: unexpected RuntimeError: kaput" in err


@pytest.mark.parametrize("argv, fix", [
    (["predict", "--target", "Llama-3.1-8B", "--acceptance", "0.7", "--batch-sizes", "1", "8", "24"], "...,8,24 rather than ... 8 24"),
    (["predict", "--target", "Llama-3.1-8B", "--acceptance", "0.7", "--no-such-flag"], "see `playbook --help`"),
])
def test_a_list_given_with_spaces_gets_the_comma_form_as_its_fix(capsys, argv, fix):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "error: playbook: unrecognized arguments" in err and "fix: " in err and fix in err
