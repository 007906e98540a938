"""New-user QA, problem 10: messages name the problem and the fix as the user typed it: an unknown name given
to `report -p` is unknown (with the closest names), a fix names the real step, and a flag's error names the flag."""

from __future__ import annotations

import pytest

from playbook.cli import main
from playbook.helpers import redecide
from playbook.helpers.errors import ParameterError
from playbook.helpers.params import SweepParams, validate_params
from tests.support.decide_fixtures import make_run


def test_report_p_with_a_misspelt_name_says_unknown_and_suggests(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    assert main(["report", str(run.path), "-p", "acceptance_no_go_bellow=0.6"]) == 1
    err = capsys.readouterr().err
    assert "unknown parameter 'acceptance_no_go_bellow' (did you mean acceptance_no_go_below" in err
    assert "needs measuring again" not in err
    assert not (run.path / "decision.json").exists()  # refused before deciding


def test_report_p_with_a_measuring_parameter_still_says_it_needs_measuring():
    with pytest.raises(ParameterError, match="needs measuring again"):
        redecide.check_overrides({"concurrencies": [1, 64]})


def test_a_validation_fix_names_the_step_not_a_placeholder():
    with pytest.raises(ParameterError) as err:
        validate_params(SweepParams, {"requests_per_point": 0})
    assert "playbook params 40_sweep" in err.value.fix and "NOTEBOOK" not in str(err.value)


LOAD = ["load", "--baseline-url", "http://127.0.0.1:9", "--spec-url", "http://127.0.0.1:10"]


@pytest.mark.parametrize("argv, flag, parameter", [
    (LOAD + ["--min-pairs", "1"], "--min-pairs 1", "min_round_pairs"),
    (LOAD + ["--requests", "0"], "--requests 0", "requests_per_level"),
    (["sweep", "--url", "http://127.0.0.1:9", "--concurrency", "0"], "--concurrency 0", "sweep_concurrency"),
    (["sweep", "--url", "http://127.0.0.1:9", "--requests", "0"], "--requests 0", "requests_per_point"),
    (["lossless", "--baseline-url", "http://127.0.0.1:9", "--spec-url", "http://127.0.0.1:10", "--alpha", "2"],
     "--alpha 2", "lossless_alpha"),
])
def test_a_flags_error_names_the_flag_typed(tmp_path, capsys, argv, flag, parameter):
    assert main([*argv, "--run-dir", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert flag in err and f"(parameter '{parameter}')" in err
    assert f"playbook {argv[0]} --help" in err and "NOTEBOOK" not in err
    assert not (tmp_path / "r").exists()


def test_import_with_a_misspelt_method_names_the_flag(tmp_path, capsys):
    assert main(["import", "vllm-bench", str(tmp_path / "b.json"), str(tmp_path / "s.json"), "--method", "eagel",
                 "--run-dir", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "playbook import: invalid arguments" in err and "--method 'eagel'" in err


def test_a_constraint_between_parameters_names_their_flags(capsys):
    assert main(["memory", "--target", "Llama-3.1-70B", "--gpu", "H100-SXM", "--tp", "3", "--num-gpus", "3"]) == 1
    err = capsys.readouterr().err
    assert "--tp 3 does not divide" in err and "use --tp 1, 2, 4, 8 or 16" in err  # the flag the user typed


def test_run_p_errors_keep_the_parameter_names(capsys, runs_dir):
    assert main(["run", "-p", "min_round_pairs=1", "--runs-dir", str(runs_dir)]) == 1
    err = capsys.readouterr().err
    assert "parameter 'min_round_pairs' = 1" in err and "--min-pairs" not in err and "playbook params 50_load" in err


def test_every_renamed_flag_is_a_flag_of_its_command():
    import argparse

    from playbook.cli import build_parser
    from playbook.commands._common import RENAMED_FLAGS, parameter_flags
    from playbook.helpers.params import known_parameters

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    for command, table in RENAMED_FLAGS.items():
        flags = parameter_flags(command, sub.choices[command])
        assert set(table) <= set(flags) and set(table) <= known_parameters(), command


@pytest.mark.parametrize("name,value,fix", [("max_ttft_rise", "25", "give 0.25"), ("min_gain", "10", "give 0.1"),
                                             ("acceptance_no_go_below", "60", "give 0.6")])
def test_a_fraction_given_as_a_percentage_is_refused_with_the_fraction(name, value, fix):
    """max_ttft_rise=25 (meaning 25%) had no upper bound and silently switched the TTFT flag off."""
    from playbook.helpers.params import ReportParams, validate_params

    with pytest.raises(ParameterError, match=rf"if {value} is a percentage, {fix}"):
        validate_params(ReportParams, {name: float(value)})


def test_a_load_precision_beyond_its_bound_is_refused_without_a_percentage_guess():
    """QA5: target_ci_halfwidth is a relative width, not a share: 10 is refused by its bound, with no "if 10 is a
    percentage" guess (only fraction parameters get one: tests/unit/test_qa5_params.py)."""
    from playbook.helpers.params import LoadParams

    with pytest.raises(ParameterError, match="target_ci_halfwidth' = 10: Input should be less than or equal to 5") as exc:
        validate_params(LoadParams, {"target_ci_halfwidth": 10})
    assert "percentage" not in exc.value.problem


def test_load_levels_are_measured_from_the_lowest_up_once_each_and_a_step_may_be_named_by_its_notebook():
    from playbook.helpers.params import LoadParams, validate_params
    from playbook.resources import notebook_for

    p = validate_params(LoadParams, {"concurrencies": "8,1,4,4"})
    assert p.concurrencies == [1, 4, 8]
    assert validate_params(LoadParams, {"concurrencies": "", "rates": "2,0.5"}).rates == [0.5, 2.0]
    assert notebook_for("notebooks/40_sweep.ipynb").stem == notebook_for("40_sweep.ipynb").stem == "40_sweep"
