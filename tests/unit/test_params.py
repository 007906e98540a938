from pathlib import Path

import pytest

from playbook.helpers.errors import ParameterError, ProfileError
from playbook.helpers.params import (
    STEP_MODELS,
    LoadParams,
    ReportParams,
    StepParams,
    SweepParams,
    load_profile,
    parse_override,
    resolve_parameters,
    validate_params,
)
from playbook.resources import profiles_dir


def test_unknown_parameter_is_named_with_a_close_match():
    with pytest.raises(ParameterError) as exc:
        resolve_parameters({}, {"temperatres": [0.1]}, ["40_sweep"])
    msg = str(exc.value)
    assert "'temperatres'" in msg and "temperatures" in msg


@pytest.mark.parametrize(
    "name,value,needle",
    [
        ("temperatures", [0.0, 2.5], "[0, 2]"),
        ("num_speculative_tokens", 0, "num_speculative_tokens"),
        ("mode", "cloud", "embedded"),
        ("concurrencies", "1,x", "concurrencies"),
        ("baseline_url", "localhost:8000", "http://localhost:8000"),
        ("gpu_memory_utilization", 1.5, "gpu_memory_utilization"),
        ("gpu", "H100", "H100-SXM or H100-PCIe"),  # checked with the parameters, not when step 20 runs
        ("gpu", "A1000", "unknown GPU 'A1000'"),
    ],
)
def test_invalid_values_name_the_parameter_and_what_is_allowed(name, value, needle):
    with pytest.raises(ParameterError) as exc:
        resolve_parameters({}, {name: value}, list(STEP_MODELS))
    assert name in str(exc.value) and needle in str(exc.value)


def test_a_bad_list_item_is_named_and_a_list_given_with_spaces_is_told_to_use_commas():
    with pytest.raises(ParameterError) as exc:
        validate_params(SweepParams, {"temperatures": "0.0,abc"})
    assert "parameter 'temperatures' item 2 = 'abc' (in '0.0,abc')" in str(exc.value)
    with pytest.raises(ParameterError) as exc:
        validate_params(LoadParams, {"concurrencies": "1 2 4"})
    assert "item 1 = '1 2 4'" in str(exc.value) and "separate a list's values with commas" in str(exc.value)


def test_bad_value_fails_even_when_its_step_is_not_selected():
    with pytest.raises(ParameterError):
        resolve_parameters({}, {"temperatures": [9]}, ["00_preflight"])


def test_comma_lists_from_the_cli_are_parsed():
    assert validate_params(SweepParams, {"temperatures": "0,0.4, 1.0"}).temperatures == [0.0, 0.4, 1.0]
    assert validate_params(LoadParams, {"concurrencies": "1,2,8"}).concurrencies == [1, 2, 8]


def test_override_values_are_read_as_yaml():
    assert parse_override("temperatures=[0, 0.5]") == ("temperatures", [0, 0.5])
    assert parse_override("interactive=true") == ("interactive", True)
    assert parse_override("spec_url=http://h:1") == ("spec_url", "http://h:1")
    with pytest.raises(ParameterError):
        parse_override("no-equals-sign")


def test_external_mode_needs_a_url():
    with pytest.raises(ParameterError) as exc:
        validate_params(StepParams, {"mode": "external"})
    assert "baseline_url" in str(exc.value)


def test_per_step_values_only_carry_declared_names():
    per = resolve_parameters({}, {"temperatures": [0.0], "concurrencies": [2]}, ["40_sweep", "50_load"])
    assert per["40_sweep"] == {"temperatures": [0.0]}
    assert per["50_load"] == {"concurrencies": [2]}


def test_malformed_profile_names_line_and_column(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("mode: embedded\ntemperatures: [0.0, 0.4\nseed: 1\n")
    with pytest.raises(ProfileError) as exc:
        load_profile(bad)
    assert "line 3" in str(exc.value) and "column" in str(exc.value)


def test_profile_loader_is_safe(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("mode: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ProfileError):
        load_profile(evil)


@pytest.mark.parametrize("profile", sorted(p.name for p in Path(profiles_dir()).glob("*.yaml")))
def test_shipped_profiles_validate(profile):
    values = load_profile(Path(profiles_dir()) / profile)
    per = resolve_parameters(values, {}, list(STEP_MODELS))
    assert set(per) == set(STEP_MODELS)


def test_api_key_is_read_from_the_environment_not_stored(monkeypatch):
    monkeypatch.setenv("MY_TEST_KEY", "sk-secret-123")
    p = validate_params(StepParams, {"api_key_env": "MY_TEST_KEY"})
    assert p.api_key() == "sk-secret-123"
    assert "sk-secret-123" not in p.model_dump_json()


def test_load_temperature_defaults_to_the_production_temperature():
    assert LoadParams().temperature == LoadParams().production_temperature == 0.2
    per_step = resolve_parameters({"production_temperature": 0.7}, {}, ["50_load"])
    assert LoadParams(**per_step["50_load"]).temperature == 0.7  # the profile's production temperature reaches 50
    assert validate_params(LoadParams, {"temperature": -1, "production_temperature": 0.5}).temperature == 0.5
    assert validate_params(LoadParams, {"temperature": 0, "production_temperature": 0.5}).temperature == 0.0  # explicit T=0 stays
    with pytest.raises(ParameterError, match="temperature"):
        validate_params(LoadParams, {"temperature": -0.5})


def test_report_params_carry_every_threshold():
    from playbook.helpers.schemas.decision import Thresholds

    p = validate_params(ReportParams, {"max_ttft_rise": 0.1, "acceptance_no_go_below": 0.4})
    assert p.thresholds() == Thresholds(max_ttft_rise=0.1, acceptance_no_go_below=0.4)
    with pytest.raises(ParameterError, match="max_draft_share"):
        validate_params(ReportParams, {"max_draft_share": 1.5})


def test_a_model_of_ones_own_in_embedded_mode_is_refused_with_the_mode_to_use():
    # embedded mode serves the shipped tiny pair: steps 10-30 would judge one model, 40-50 measure another
    with pytest.raises(ParameterError) as exc:
        resolve_parameters({}, {"target_model": "/models/llama-3.1-8b"}, list(STEP_MODELS))
    assert "mode 'embedded' serves the shipped tiny pair" in exc.value.problem and "mode=managed" in exc.value.fix
    per = resolve_parameters({}, {"mode": "managed", "target_model": "/models/llama-3.1-8b"}, ["20_memory"])
    assert per["20_memory"]["target_model"] == "/models/llama-3.1-8b"
    assert resolve_parameters({}, {"target_model": "embedded"}, ["20_memory"])  # the demo as shipped


def test_playbook_params_shows_each_parameters_own_description(capsys):
    """papermill's reading of a parameters cell's comment turns '=' into ':'; the listing takes the model's words."""
    from playbook.cli import main

    assert main(["params", "00"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("prometheus_selector"))
    assert 'e.g. job="spec"' in line
