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


def test_debug_shows_the_traceback(monkeypatch, capsys):
    monkeypatch.setattr(cli, "load_commands", lambda: [_command(RuntimeError("kaput"))])
    assert cli.main(["--debug", "boom"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "error: unexpected RuntimeError: kaput" in err
