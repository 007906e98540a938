"""Issue 17: every mistaken or hostile input of the table (tests/support/bad_inputs.py), one row each,
through the CLI: exit code non-zero, exactly one `error:` line naming the input and a `fix:`, no traceback, and every
file already there unchanged (checksums); nothing created either. A run or an engine start that would
begin despite the bad input fails the row (tests/support/bad_inputs.py: run_in_process).
benchmarks/faults/run.py runs the same table through the real program as subprocesses."""

from __future__ import annotations

import pytest

from tests.support.bad_inputs import CASES, local_urls, run_in_process


@pytest.fixture(scope="module")
def urls():
    with local_urls() as u:
        yield u


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input_ends_in_one_error_line_and_changes_nothing(case, tmp_path, urls, monkeypatch):
    monkeypatch.delenv("PLAYBOOK_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    out = run_in_process(case, tmp_path / "d", urls)
    assert out.returncode != 0, out.stderr
    assert out.error_lines == 1, out.stderr
    assert out.has_fix, f"no 'fix:' line: {out.stderr!r}"
    assert not out.traceback and "unexpected" not in out.stderr, out.stderr
    assert not out.files_changed, f"files changed: {out.files_changed}"
    assert not out.missing, f"{out.missing} not in {out.stderr!r}"
    assert out.ok


def test_the_table_covers_every_kind_of_mistake_of_the_issue():
    names = {c.name for c in CASES}
    for needle in ("report-", "concurrency-", "rates-", "seed-", "ratio-", "memory-", "profile-", "prompts-",
                   "api-key-env", "401", "closed-port", "url-", "served-name", "resume-with-profile", "engine-"):
        assert any(needle in n for n in names), needle
    assert len(CASES) >= 240
    assert len({c.name for c in CASES}) == len(CASES), "case names are unique"
