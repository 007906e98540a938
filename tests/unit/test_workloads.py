"""Workloads: shipped classes, user files, ShareGPT, mixes, and the errors a user meets."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from playbook.helpers.errors import WorkloadError
from playbook.helpers.workloads import build_requests, known_workloads, load_file, parse_mix, workloads_dir

SHIPPED = {"structured", "code", "summarization", "chat", "creative"}


def test_shipped_classes_load():
    assert SHIPPED <= set(known_workloads())
    for name in SHIPPED:
        items = build_requests(name, 5, max_tokens=16)
        assert len(items) == 5 and all(it.workload == name and it.max_tokens == 16 for it in items)
    assert any(it.is_chat for it in build_requests("chat", 3))


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(WorkloadError) as exc:
        build_requests("structurd", 3)
    for name in SHIPPED:
        assert name in str(exc.value)


def test_empty_and_malformed_files_name_the_line(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(WorkloadError, match="empty"):
        load_file(empty)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\n{"prompt": "b"\n')
    with pytest.raises(WorkloadError, match="line 2"):
        load_file(bad)
    nofield = tmp_path / "nofield.jsonl"
    nofield.write_text('{"prompt": "a"}\n{"text": "b"}\n')
    with pytest.raises(WorkloadError, match="line 2.*prompt"):
        load_file(nofield)


def test_user_jsonl_and_sharegpt(tmp_path):
    user = tmp_path / "mine.jsonl"
    user.write_text('{"prompt": "hello", "max_tokens": 7}\n{"messages": [{"role": "user", "content": "hi"}]}\n')
    items = build_requests(str(user), 4, seed=1)
    assert {it.workload for it in items} == {"mine"} and len(items) == 4
    share = tmp_path / "sg.json"
    share.write_text(json.dumps([{"id": "a", "conversations": [{"from": "human", "value": "Q1"},
                                                                 {"from": "gpt", "value": "A1"}]},
                                 {"conversations": [{"from": "human", "value": "Q2"}]}]))
    got = load_file(share)  # ShareGPT turns are chat messages (templated by the model's own chat template)
    assert [it.messages for it in got] == [[{"role": "user", "content": "Q1"}], [{"role": "user", "content": "Q2"}]]
    assert all(it.prompt is None and it.is_chat for it in got)


def test_mix_shares_and_temperatures_are_kept():
    items = build_requests("structured:0.6@0.1,creative:0.4@1.0", 20, seed=3)
    counts = Counter((it.workload, it.temperature) for it in items)
    assert counts == {("structured", 0.1): 12, ("creative", 1.0): 8}
    assert [it.id for it in items] == [it.id for it in build_requests("structured:0.6@0.1,creative:0.4@1.0", 20, seed=3)]
    assert parse_mix("a:3@0,b:1")[0][1] == pytest.approx(0.75)
    with pytest.raises(WorkloadError, match="outside"):
        parse_mix("a:1@3")
    with pytest.raises(WorkloadError, match="'x' in workload mix 'a:x@0.1' is not a finite, non-negative share"):
        parse_mix("a:x@0.1")
    with pytest.raises(WorkloadError, match="is not a number \\(temperature\\)"):
        parse_mix("a:1@hot")


def test_every_prompt_is_used_before_any_repeats():
    n = len(load_file(workloads_dir() / "code.jsonl"))
    items = build_requests("code", n, seed=0)
    assert len({it.id for it in items}) == n


@pytest.mark.parametrize("content, spec_name, needle", [
    ('{"prompt": "caf\xe9"}\n'.encode("latin-1"), "latin.jsonl", "not UTF-8"),
    (b"[1, 2]", "list.json", "entry 1 of the JSON list is not an object"),
    (b'{"a": 1}', "obj.json", "neither 'prompt' nor"),
    (b'[{"conversations": ["hi"]}]', "turns.json", "conversation turn 1 is not a JSON object"),
])
def test_malformed_prompt_files_get_a_workload_error(tmp_path, content, spec_name, needle):
    path = tmp_path / spec_name
    path.write_bytes(content)
    with pytest.raises(WorkloadError) as exc:
        build_requests(str(path), 2)
    assert needle in exc.value.problem and str(path) in exc.value.problem


@pytest.mark.parametrize("mix", ["structured:inf,code:1", "structured:nan@0.1,code:1", "structured:-1,code:2"])
def test_mix_shares_must_be_finite_and_non_negative(mix):
    with pytest.raises(WorkloadError, match="is not a finite, non-negative share"):
        build_requests(mix, 4)


def test_prompts_longer_than_max_model_len_are_refused_before_anything_runs(tmp_path):
    from types import SimpleNamespace

    from playbook.helpers.workloads import check_specs

    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"prompt": "Summarise: " + "word " * 4000}) + "\n" + json.dumps({"prompt": "Hi"}) + "\n")
    embedded = SimpleNamespace(mode="embedded", target_model="embedded", max_model_len=1024, max_tokens=64,
                               workload=str(path))
    with pytest.raises(WorkloadError, match=r"1 prompt\(s\) of .*mine.jsonl leave no room for 64 output tokens within "
                                            r"max_model_len 1024: mine-1 \(400\d tokens\)"):
        check_specs(embedded)  # counted in the embedded target's own tokens
    no_tokenizer = SimpleNamespace(mode="external", target_model="embedded", max_model_len=1000, max_tokens=64,
                                   workload=f"structured:0.5@0.1,{path}:0.5@0.2")
    with pytest.raises(WorkloadError, match="tokens at least"):
        check_specs(no_tokenizer)  # bounded from below by bytes
    # QA5: external servers' context is theirs; max_model_len left at the embedded engine's default says nothing of it
    check_specs(SimpleNamespace(**{**vars(no_tokenizer), "max_model_len": 1024}))
    check_specs(SimpleNamespace(**{**vars(embedded), "max_model_len": 8192}))  # room enough: accepted


def test_a_prompts_file_is_parsed_once_while_it_stays_the_same(tmp_path, monkeypatch):
    from playbook.helpers import workloads

    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "one"}\n')
    parses = []
    real = workloads._read_records
    monkeypatch.setattr(workloads, "_read_records", lambda p: parses.append(p) or real(p))
    first = build_requests(str(f), 4, temperature=0.0)
    assert build_requests(str(f), 4, temperature=0.0) == first and len(parses) == 1  # every round reads the same
    f.write_text('{"prompt": "one"}\n{"prompt": "two"}\n')  # edited: read again
    assert {it.prompt for it in load_file(f)} == {"one", "two"} and len(parses) == 2
    with pytest.raises(ValueError):  # shared items cannot be changed in place by one reader for the others
        first[0].prompt = "changed"


@pytest.mark.parametrize("spec, warned", [("structured:0.6,creative:0.6", "structured 50%, creative 50%"),
                                          ("structured:3,creative:1", "add up to 4, not 1"),
                                          ("structured:0.6,creative:0.4", None), ("structured", None)])
def test_mix_shares_that_do_not_add_up_to_one_are_named_with_the_shares_used(spec, warned):
    import warnings
    from types import SimpleNamespace

    from playbook.helpers.workloads import check_specs

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_specs(SimpleNamespace(workload=spec))
    notes = [str(w.message) for w in caught if "add up to" in str(w.message)]
    assert (notes == []) if warned is None else (len(notes) == 1 and warned in notes[0])
