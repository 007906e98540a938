"""A level the load test excluded for failed requests alone is counted again when a re-decision raises
max_error_rate (`playbook report RUN -p max_error_rate=...`); one whose streams failed the integrity checks is not."""

from __future__ import annotations

import json

from playbook.cli import main
from playbook.helpers import evidence
from playbook.helpers.load_analysis import exclude, restore, widen_for_restarts
from playbook.helpers.params import ReportParams
from playbook.helpers.schemas.load import SpeedupPoint
from tests.support.decide_fixtures import load, make_run, sweep

ERRORS = "10% of spec requests failed (2 http_500 of 20; above max_error_rate 5%)"


def _with_failed_requests(integrity: bool = False):
    """Levels 1 and 4 win; at 4 a tenth of the requests failed, so the load test (max_error_rate 0.05) excluded it."""
    res = load({1: (1.4, 1.25, 1.55), 4: (1.3, 1.15, 1.45)})
    for st in res.levels:
        if st.level == 4:
            st.requests, st.errors, st.error_rate, st.errors_by_status = 20, 2, 0.1, {"http_500": 2}
    sp = next(s for s in res.speedup if s.level == 4)
    exclude(sp, ERRORS + ("; 9 of 18 spec streams arrived burst-delivered" if integrity else ""), for_errors=True,
            for_integrity=integrity)
    return res


def test_exclusion_keeps_an_errors_only_levels_numbers_and_restore_counts_them():
    sp = SpeedupPoint(level=4, speedup=1.3, ci_low=1.15, ci_high=1.45)
    exclude(sp, ERRORS, for_errors=True, for_integrity=False)
    assert (sp.status, sp.speedup, sp.excluded_for) == ("excluded", None, ["errors"])
    widen_for_restarts(sp, 0.04)  # the interval it would have had: widened as a counted level's is
    assert sp.withheld["ci_low"] < 1.15 and sp.withheld["between_start_sd"] == 0.04
    assert restore(sp) and (sp.status, sp.speedup, sp.between_start_sd) == ("ok", 1.3, 0.04) and sp.significant
    both = SpeedupPoint(level=4, speedup=1.3, ci_low=1.15, ci_high=1.45)
    exclude(both, "bursts", for_errors=True, for_integrity=True)
    assert both.withheld is None and not restore(both)  # its streams cannot be trusted at any error rate


def test_a_higher_max_error_rate_counts_the_level_again(tmp_path):
    run = make_run(tmp_path / "run", sweep_result=sweep(), load_result=_with_failed_requests())
    strict = evidence.gather(run, 0.2, params=ReportParams())
    assert [lv.status for lv in strict.load_levels] == ["ok", "excluded"]
    lenient = evidence.gather(run, 0.2, params=ReportParams(max_error_rate=0.2))
    level4 = lenient.load_levels[1]
    assert (level4.status, level4.speedup, level4.speedup_ci_low) == ("ok", 1.3, 1.15)
    assert "counted: its failed requests are within max_error_rate 20%" in lenient.findings["50_load"]
    assert ERRORS in level4.reason
    mixed = make_run(tmp_path / "mixed", sweep_result=sweep(), load_result=_with_failed_requests(integrity=True))
    assert evidence.gather(mixed, 0.2, params=ReportParams(max_error_rate=0.2)).load_levels[1].status == "excluded"


def test_playbook_report_re_decides_with_the_level_counted(tmp_path, capsys):
    run = make_run(tmp_path / "run", sweep_result=sweep(), load_result=_with_failed_requests())
    assert main(["report", str(run.path), "-p", "expected_peak_concurrency=4"]) == 0
    before = json.loads((run.path / "decision.json").read_text())
    assert main(["report", str(run.path), "-p", "expected_peak_concurrency=4", "-p", "max_error_rate=0.2"]) == 0
    after = json.loads((run.path / "decision.json").read_text())
    capsys.readouterr()
    assert (before["verdict"], after["verdict"]) == ("INCONCLUSIVE", "GO")  # 4, the peak, measured: now counted
    assert json.loads(run.artifact("50_load.json").read_text())["speedup"][1]["status"] == "excluded"  # as measured
