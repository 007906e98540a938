"""Profiles and -p values: no anchors/aliases (alias bombs), no duplicate keys, bounded error text."""

import pytest

from playbook.helpers import safe_yaml
from playbook.helpers.errors import ParameterError, ProfileError
from playbook.helpers.params import load_profile, parse_override, resolve_parameters

BOMB = ('a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
        'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n')


def test_alias_bomb_profile_is_refused(tmp_path):
    prof = tmp_path / "bomb.yaml"
    prof.write_text(BOMB)
    with pytest.raises(ProfileError, match="anchors and aliases"):
        load_profile(prof)


def test_alias_in_override_is_refused():
    with pytest.raises(ProfileError, match="anchors and aliases"):
        parse_override("workloads=[&a x, *a]")


def test_duplicate_keys_name_both_lines(tmp_path):
    prof = tmp_path / "dup.yaml"
    prof.write_text("seed: 1\nmode: embedded\nseed: 2\n")
    with pytest.raises(ProfileError, match=r"'seed' appears twice \(lines 1 and 3\)"):
        load_profile(prof)


@pytest.mark.parametrize("content, needle", [(b"seed: \xff\n", "not UTF-8"), (None, "is a directory")])
def test_unreadable_profiles(tmp_path, content, needle):
    prof = tmp_path / "p.yaml"
    prof.mkdir() if content is None else prof.write_bytes(content)
    with pytest.raises(ProfileError, match=needle):
        load_profile(prof)


def test_error_quotes_a_bounded_value():
    with pytest.raises(ParameterError) as exc:
        resolve_parameters({}, {"seed": ["x" * 10_000] * 100}, ["00_preflight"])
    assert len(str(exc.value)) < 2000


def test_plain_profiles_still_load():
    assert safe_yaml.load("a: 1\nb: [0.1, 0.2]\nc: {d: e}\n") == {"a": 1, "b": [0.1, 0.2], "c": {"d": "e"}}
