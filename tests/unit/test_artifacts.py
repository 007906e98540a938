import json

import pytest

from playbook.helpers.artifacts import RunDir, TruncatedRecordWarning, append_jsonl, read_jsonl
from playbook.helpers.errors import ArtifactError


def test_jsonl_round_trip_and_truncated_last_line_dropped_with_warning(tmp_path):
    path = tmp_path / "records.jsonl"
    for i in range(3):
        append_jsonl(path, {"i": i})
    with open(path, "a") as fh:  # what a kill -9 mid-write leaves
        fh.write('{"i": 3, "ttft')
    with pytest.warns(TruncatedRecordWarning, match="line 4"):
        records = read_jsonl(path)
    assert [r["i"] for r in records] == [0, 1, 2]


def test_write_json_is_atomic_and_readable(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_json("x.json", {"a": 1})
    assert json.loads(run.artifact("x.json").read_text()) == {"a": 1}
    assert not list(run.artifacts.glob("*.tmp"))
    assert run.read_json("missing.json") is None


def test_run_dir_on_a_full_disk_fails_clearly(tmp_path):
    run = RunDir(tmp_path / "run")
    with pytest.raises(ArtifactError, match="MB free"):
        run.check_writable(min_free_mb=10**12)


def test_unwritable_path_fails_clearly_even_as_root(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ArtifactError, match="cannot create the run directory"):
        RunDir(blocker / "run")


def test_a_record_appended_after_a_truncated_line_is_not_lost(tmp_path):
    path = tmp_path / "records.jsonl"
    append_jsonl(path, {"i": 0})
    with open(path, "a") as fh:
        fh.write('{"i": 1, "tt')  # killed mid-write
    append_jsonl(path, {"i": 2})
    with pytest.warns(TruncatedRecordWarning, match="line 2"):
        assert [r["i"] for r in read_jsonl(path)] == [0, 2]


def test_repair_cuts_the_truncated_tail_and_keeps_it_aside(tmp_path):
    from playbook.helpers.artifacts import repair_jsonl

    path = tmp_path / "records.jsonl"
    append_jsonl(path, {"i": 0})
    assert repair_jsonl(path) is None
    with open(path, "a") as fh:
        fh.write('{"i": 1, "tt')
    msg = repair_jsonl(path)
    assert msg and "line 2" in msg and "dropped a truncated record" in msg
    assert path.read_text() == '{"i":0}\n'
    assert (tmp_path / "records.jsonl.truncated").read_text() == '{"i": 1, "tt\n'
    with open(path, "a") as fh:
        fh.write('{"i": 3}')  # a whole record missing only its newline is kept
    assert repair_jsonl(path) is None and [r["i"] for r in read_jsonl(path)] == [0, 3]


@pytest.mark.parametrize(("content", "state", "unreadable"), [
    (None, {}, False),                                   # an interactive run: no run.json
    ('{"steps": [{"name": "00_preflight"}]}', {"steps": [{"name": "00_preflight"}]}, False),
    ("{ }", {}, False),                                  # empty but valid
    ('{"steps": [', {}, True),                           # truncated
    ("[1, 2]", {}, True),                                # not an object
    ("\xff\xfe", {}, True),                              # not UTF-8 text
])
def test_run_state_reads_run_json_leniently_and_says_when_it_is_unreadable(tmp_path, content, state, unreadable):
    from playbook.helpers.artifacts import run_state, run_state_unreadable

    if content is not None:
        (tmp_path / "run.json").write_bytes(content.encode("latin-1"))
    assert run_state(tmp_path) == state
    assert run_state(RunDir(tmp_path)) == state
    assert run_state_unreadable(tmp_path) is unreadable


def test_run_state_of_no_run_directory_is_empty():
    """preflight.check_servers runs without a run directory (a step called on its own, `playbook load`)."""
    from playbook.helpers.artifacts import run_state, run_state_unreadable
    from playbook.helpers.preflight import recorded_parameters

    assert run_state(None) == {} and not run_state_unreadable(None) and recorded_parameters(None) == {}
