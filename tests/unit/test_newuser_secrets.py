"""New-user QA, problem 6: a key typed where the variable name goes, or a password inside a URL, is refused
without ever being printed (terminals and CI logs keep what they show)."""

from __future__ import annotations

import pytest

from playbook.cli import main
from playbook.helpers.errors import ParameterError
from playbook.helpers.params import LoadParams, QuantizationParams, StepParams, SweepParams, validate_params

KEYS = ["sk-SECRET-123", "sk-live-ABCDEF123456", "hf_abcdefghijklmnopqrstuvwxyz0123", "Zm9vYmFyYmF6cXV4cXV1eDEyMw"]


@pytest.mark.parametrize("key", KEYS)
def test_a_key_given_as_api_key_env_is_refused_and_never_echoed(key):
    with pytest.raises(ParameterError) as err:
        validate_params(SweepParams, {"api_key_env": key})
    text = str(err.value)
    assert key not in text and key[3:] not in text
    assert "looks like an API key" in text and "export MY_API_KEY=" in text and "api_key_env: MY_API_KEY" in text


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "VLLM_KEY_2", "HF_TOKEN", "MY_VERY_LONG_VARIABLE_NAME_2026"])
def test_variable_names_still_pass(name):
    from playbook.helpers.redact import looks_like_secret

    assert not looks_like_secret(name)
    assert validate_params(StepParams, {"api_key_env": name}).api_key_env == name


@pytest.mark.parametrize("flag", ["--api-key-env", "--api-key"])  # argparse takes --api-key for --api-key-env
def test_sweep_with_a_key_as_the_variable_name_names_the_flag_not_the_key(capsys, tmp_path, flag):
    code = main(["sweep", "--url", "http://127.0.0.1:9", flag, "sk-SECRET-123", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 1 and "SECRET" not in err
    assert "--api-key-env" in err and "looks like an API key" in err
    assert not (tmp_path / "r").exists()


def test_a_profile_with_a_key_as_api_key_env_fails_without_printing_it(capsys, tmp_path):
    profile = tmp_path / "external_key.yaml"
    profile.write_text("mode: external\nspec_url: http://127.0.0.1:9\napi_key_env: sk-live-ABCDEF123456\n")
    assert main(["run", "--profile", str(profile), "--runs-dir", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err
    assert "ABCDEF123456" not in err and "looks like an API key" in err and "api_key_env" in err
    assert not [p for p in (tmp_path / "runs").glob("*") if p.is_dir()]


@pytest.mark.parametrize("model, values", [
    (StepParams, {"mode": "external", "baseline_url": "http://admin:SECRETPW@127.0.0.1:9"}),
    (StepParams, {"mode": "external", "spec_url": "https://user:SECRETPW@gpu.example:8000/"}),
    (StepParams, {"prometheus_url": "http://:SECRETPW@prom:9090"}),
    (LoadParams, {"metrics_urls": "http://127.0.0.1:8001,http://ops:SECRETPW@127.0.0.1:8002"}),
    (QuantizationParams, {"pair_urls": {"int8/bf16": "http://ops:SECRETPW@host:8001"}}),
])
def test_a_url_with_credentials_is_refused_at_validation_without_the_password(model, values):
    with pytest.raises(ParameterError) as err:
        validate_params(model, values)
    text = str(err.value)
    assert "SECRETPW" not in text and "<redacted>@" in text
    assert "user name or password" in text and "api_key_env" in text


def test_run_refuses_a_credentialed_url_before_any_run_directory(capsys, tmp_path):
    code = main(["run", "-p", "mode=external", "-p", "baseline_url=http://admin:SECRETPW@127.0.0.1:9",
                 "-p", "spec_url=http://127.0.0.1:9", "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 1 and "SECRETPW" not in err and "Name or service not known" not in err
    assert "baseline_url" in err and "api_key_env" in err
    assert not [p for p in (tmp_path / "runs").glob("*") if p.is_dir()]


def test_sweep_url_with_credentials_names_the_flag(capsys, tmp_path):
    assert main(["sweep", "--url", "http://admin:SECRETPW@127.0.0.1:9", "--run-dir", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "SECRETPW" not in err and "--url 'http://<redacted>@127.0.0.1:9'" in err


def test_redact_url_hides_a_password_holding_an_at_sign():
    from playbook.helpers.redact import redact_url

    assert redact_url("see http://u:p@ss@h:1/x@y") == "see http://<redacted>@h:1/x@y"
