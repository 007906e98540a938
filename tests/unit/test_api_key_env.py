"""The API key comes from an environment variable, cleaned of a key file's newline; a malformed one is refused
by the variable's name, never quoted (the HTTP library's header error would quote it into logs and the run)."""

import pytest

from playbook.helpers.errors import ParameterError
from playbook.helpers.http_policy import read_api_key
from playbook.helpers.params import LoadParams


@pytest.mark.parametrize("value, key", [("sekret\n", "sekret"), ("  sekret  ", "sekret"), ("", None), ("\n", None)])
def test_a_keys_surrounding_whitespace_is_dropped(monkeypatch, value, key):
    monkeypatch.setenv("QA_KEY", value)
    assert read_api_key("QA_KEY") == key
    assert LoadParams(api_key_env="QA_KEY").api_key() == key


@pytest.mark.parametrize("value, hint", [("sek ret", "bare key only"), ("Bearer sekret", "without 'Bearer '"),
                                         ("sek\x07ret", "bare key only")])
def test_a_key_with_a_space_or_control_character_inside_is_refused_without_quoting_it(monkeypatch, value, hint):
    monkeypatch.setenv("QA_KEY", value)
    with pytest.raises(ParameterError) as err:
        read_api_key("QA_KEY")
    assert "QA_KEY" in str(err.value) and hint in str(err.value) and "sekret" not in str(err.value)


def test_no_variable_named_means_no_key():
    assert read_api_key("") is None
