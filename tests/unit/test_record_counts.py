"""Raw records lost from a JSONL file are counted: dropped lines in one warning with the right plural, and a
50_load_requests.jsonl holding fewer records than 50_load.json counts is said plainly in the report (qa3 P13)."""

import warnings

import pytest

from playbook.helpers import decide, evidence, sections
from playbook.helpers.artifacts import TruncatedRecordWarning, append_jsonl, read_jsonl
from playbook.helpers.params import ReportParams
from playbook.helpers.schemas.load import LevelStats, LoadResult
from tests.support.decide_fixtures import load, make_run, sweep


def _dropped(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = read_jsonl(path)
    return records, [str(w.message) for w in caught if w.category is TruncatedRecordWarning]


def test_several_corrupt_lines_are_counted_in_one_warning(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"i": 0}\n{"i": 1, "tt\n{"i": 2}\nnot json\n{"i": 4}\n{"i": 5, "x\n')
    records, said = _dropped(path)
    assert [r["i"] for r in records] == [0, 2, 4]
    assert said == ["r.jsonl: dropped 3 truncated or corrupt records (lines 2, 4, 6; the file was cut or edited: "
                    "what those lines held is lost)"]


def test_one_truncated_last_line_is_singular(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"i": 0}\n{"i": 1, "tt')
    _, said = _dropped(path)
    assert said == ["r.jsonl: dropped 1 truncated or corrupt record (line 2; the writer was probably killed mid-write)"]


def test_many_corrupt_lines_list_the_first_few(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text("x\n" * 8 + '{"i": 0}\n')
    _, said = _dropped(path)
    assert "dropped 8 truncated or corrupt records (lines 1, 2, 3, 4, 5 and 3 more;" in said[0]


def _level(config, level, attempts, requests):
    return LevelStats(config=config, level=level, phase=f"{config}@c{level:g}/structured", attempts=attempts,
                      requests=requests)


def _records(run, config, level, attempt, n, warmup=0):
    for i in range(warmup):
        append_jsonl(run.artifact("50_load_requests.jsonl"), {"id": f"{config}@c{level:g}/structured/{attempt}-w{i}",
                                                              "warmup": True, "status": "ok"})
    for i in range(n):
        append_jsonl(run.artifact("50_load_requests.jsonl"), {"id": f"{config}@c{level:g}/structured/{attempt}-{i}",
                                                              "status": "ok", "ttft_ms": 10, "tpot_ms": 5})


def _load_run(tmp_path, kept: dict):
    """A run whose 50_load.json counts 8 requests per (config, level) over two rounds; ``kept``: how many of
    each the raw file still holds."""
    res = load({1: (1.5, 1.2, 1.8), 4: (1.1, 0.9, 1.3)})
    res.levels = [_level(c, lv, [f"{c[0]}{lv:g}a", f"{c[0]}{lv:g}b"], 8) for lv in (1, 4) for c in ("baseline", "spec")]
    run = make_run(tmp_path / "run", sweep_result=sweep(), load_result=res)
    for (c, lv), n in kept.items():
        _records(run, c, lv, f"{c[0]}{lv:g}a", min(n, 4), warmup=1)
        _records(run, c, lv, f"{c[0]}{lv:g}b", max(n - 4, 0))
    _records(run, "spec", 1, "old1", 5)  # an earlier attempt's records (a resume): not counted for the levels
    return run, res


FULL = {("baseline", 1): 8, ("spec", 1): 8, ("baseline", 4): 8, ("spec", 4): 8}


def test_no_warning_when_the_file_holds_what_the_summary_counts(tmp_path):
    run, res = _load_run(tmp_path, FULL)
    assert sections.records_shortfall(run, res) is None


def test_a_cut_file_is_named_with_both_counts(tmp_path):
    run, res = _load_run(tmp_path, {**FULL, ("baseline", 4): 3, ("spec", 4): 0})
    said = sections.records_shortfall(run, res)
    assert said.startswith("artifacts/50_load_requests.jsonl holds 19 measured request records, but 50_load.json "
                           "counts 32 (baseline at concurrency 4: 3 of 8; spec at concurrency 4: 0 of 8)")
    assert "verdict come from 50_load.json" in said


def test_a_missing_file_counts_zero(tmp_path):
    run, res = _load_run(tmp_path, {})
    run.artifact("50_load_requests.jsonl").unlink()
    assert "holds 0 measured request records, but 50_load.json counts 32" in sections.records_shortfall(run, res)


def test_levels_without_attempt_ids_are_not_counted(tmp_path):
    run, _ = _load_run(tmp_path, {})
    res = LoadResult(levels=[LevelStats(config="spec", level=1, requests=8)])
    assert sections.records_shortfall(run, res) is None


@pytest.mark.parametrize("kept, warned", [(FULL, False), ({**FULL, ("spec", 1): 2}, True)])
def test_the_load_section_warns_and_the_verdict_does_not_move(tmp_path, kept, warned):
    run, _ = _load_run(tmp_path, kept)
    params = ReportParams(run_dir=str(run.path))
    ev = evidence.gather(run, params.production_temperature, params=params)
    decision = decide.decide_for(ev, params)
    page = sections.load(run, ev, decision)
    assert ("Warning: raw records missing" in page) is warned
    assert ("spec at concurrency 1: 2 of 8" in page) is warned
    full_run, _ = _load_run(tmp_path / "full", FULL)
    full_ev = evidence.gather(full_run, params.production_temperature, params=params)
    assert decide.decide_for(full_ev, params).verdict == decision.verdict


@pytest.mark.parametrize("kept, warned", [(FULL, False), ({**FULL, ("spec", 1): 2}, True)])
def test_the_report_step_says_it_on_the_command_line_too(tmp_path, kept, warned):
    import warnings

    from playbook.helpers import steps

    run, _ = _load_run(tmp_path, kept)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        steps.report(ReportParams(run_dir=str(run.path)), run)
    said = [str(w.message) for w in caught if "measured request records" in str(w.message)]
    assert (len(said) == 1 and "spec at concurrency 1: 2 of 8" in said[0]) if warned else said == []
