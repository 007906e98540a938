"""Real workloads: the model's own chat template, input/output lengths, long context, structured output
and tool-call classes, Spec-Bench / MT-Bench question files, and the per-class / per-length breakdown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from playbook.helpers import prompt_shaping as shaping
from playbook.helpers.embedded import tiny_pair
from playbook.helpers.errors import WorkloadError
from playbook.helpers.loadgen import request_body
from playbook.helpers.schemas.load import LevelStats, LoadResult
from playbook.helpers.workload_breakdown import breakdown, length_bucket, table_markdown, write_csv
from playbook.helpers.workloads import build_requests, load_file, parse_mix, split_options, tool_call_schema

FIX = Path(__file__).parent / "fixtures" / "workloads"
TOK = str(tiny_pair().target)


@pytest.fixture(scope="module")
def tok():
    return shaping.load_tokenizer(TOK)


def test_chat_messages_are_rendered_with_the_tokenizers_own_template(tok):
    items = build_requests("chat", 4, seed=2, tokenizer=TOK)
    raw = {it.id: it for it in build_requests("chat", 40, seed=2)}  # the same lines, not rendered
    for it in items:
        assert it.templated and not it.is_chat and it.messages is None
        expected = tok.apply_chat_template(raw[it.id].messages, tokenize=False, add_generation_prompt=True)
        assert it.prompt == expected
        assert it.prompt.startswith("<|user|>\n") and it.prompt.endswith("<|assistant|>\n")  # the tiny pair's template
    path, body = request_body(items[0], "m")
    assert path == "/v1/completions" and body["add_special_tokens"] is False and body["prompt"] == items[0].prompt


def test_without_a_tokenizer_chat_goes_to_the_chat_endpoint():
    it = build_requests("chat", 1)[0]
    path, body = request_body(it, "m")
    assert path == "/v1/chat/completions" and body["messages"] == it.messages and "add_special_tokens" not in body
    assert build_requests("chat[template=none]", 1, tokenizer=TOK)[0].is_chat


@pytest.mark.parametrize("spec, expected", [("structured[in=200]", [200] * 6), ("chat[in=48]", [48] * 6),
                                            ("long_context", [768] * 6), ("long_context[in=300]", [300] * 6)])
def test_input_lengths_are_exact_in_model_tokens(tok, spec, expected):
    items = build_requests(spec, 6, seed=4, tokenizer=TOK)
    got = [shaping.count_tokens(tok, it.prompt, special=not it.templated) for it in items]
    assert got == expected and [it.input_tokens for it in items] == expected


def test_long_context_keeps_its_question_at_the_end():
    it = build_requests("long_context[in=200]", 1, tokenizer=TOK)[0]
    assert it.workload == "long_context" and it.prompt.rstrip().endswith("Answer:")
    assert "Question: summarize the first paragraph" in it.prompt


def test_output_lengths_fixed_uniform_and_from_a_file(tmp_path):
    assert {it.max_tokens for it in build_requests("code[out=24]", 10, max_tokens=64)} == {24}  # out= beats max_tokens
    uni = [it.max_tokens for it in build_requests("code[out=8-12]", 200, seed=1)]
    assert min(uni) == 8 and max(uni) == 12 and len(set(uni)) == 5
    lens = tmp_path / "lens.jsonl"
    lens.write_text('{"output_tokens": 5}\n{"output_tokens": 40}\n')
    got = {it.max_tokens for it in build_requests(f"code[out=file:{lens}]", 50, seed=1)}
    assert got == {5, 40}
    assert [it.max_tokens for it in build_requests("code[out=8-12]", 20, seed=7)] == \
        [it.max_tokens for it in build_requests("code[out=8-12]", 20, seed=7)]  # seeded
    # the sampled prompts do not change when lengths are added
    assert [it.id for it in build_requests("code[out=9]", 12, seed=3)] == [it.id for it in build_requests("code", 12, seed=3)]


@pytest.mark.parametrize("spec, needle", [("code[out=0]", "not a out"), ("code[out=9-3]", "not a out"),
                                          ("code[foo=1]", "not one of"), ("code[out=3", "unbalanced"),
                                          ("code[in=file:/nonexistent]", "cannot read")])
def test_bad_options_say_what_to_write(spec, needle):
    with pytest.raises(WorkloadError, match=needle):
        build_requests(spec, 2)


def test_options_inside_a_mix():
    parts = parse_mix("chat[in=64,out=8-16]:0.5@0.2,long_context[in=300]:0.5")
    assert parts == [("chat[in=64,out=8-16]", 0.5, 0.2), ("long_context[in=300]", 0.5, None)]
    assert split_options("x.jsonl[category=qa;out=16]") == ("x.jsonl", {"category": "qa", "out": "16"})
    items = build_requests("chat[in=64,out=8]:0.5@0.2,long_context[in=300]:0.5", 10, seed=1, tokenizer=TOK)
    assert {(it.workload, it.input_tokens, it.temperature) for it in items} == {("chat", 64, 0.2), ("long_context", 300, 0.0)}


def test_spec_bench_and_mt_bench_question_files(tok):
    sb = load_file(FIX / "spec_bench_question.jsonl")
    assert {it.workload for it in sb} == {f"spec_bench_question/{c}" for c in
                                          ("writing", "coding", "translation", "summarization", "qa", "math_reasoning", "rag")}
    first = json.loads((FIX / "spec_bench_question.jsonl").read_text().splitlines()[0])
    assert sb[0].messages == [{"role": "user", "content": first["turns"][0]}]  # first turn only
    assert sb[0].id == f"spec_bench_question-{first['question_id']}"
    tr = build_requests(f"{FIX / 'spec_bench_question.jsonl'}[category=translation,out=32]", 3, tokenizer=TOK)
    assert {it.workload for it in tr} == {"spec_bench_question/translation"} and {it.max_tokens for it in tr} == {32}
    assert all(it.templated and it.prompt.startswith("<|user|>\nTranslate German to English") for it in tr)
    mt = load_file(FIX / "mt_bench_question.jsonl")
    assert [it.workload for it in mt] == ["mt_bench_question/writing", "mt_bench_question/reasoning", "mt_bench_question/math"]
    with pytest.raises(WorkloadError, match="no question of category 'poetry'"):
        build_requests(f"{FIX / 'mt_bench_question.jsonl'}[category=poetry]", 2)


def test_structured_output_and_tool_call_requests():
    js = build_requests("json_schema", 3, seed=1)
    path, body = request_body(js[0], "m")
    assert path == "/v1/completions" and body["structured_outputs"] == {"json": js[0].json_schema}
    tools = build_requests("tool_calls", 2, seed=1)
    path, body = request_body(tools[0], "m")  # no tokenizer: the chat endpoint with tools, a call required
    assert path == "/v1/chat/completions" and body["tool_choice"] == "required" and body["tools"] == tools[0].tools
    templ = build_requests("tool_calls", 2, seed=1, tokenizer=TOK)[0]
    path, body = request_body(templ, "m")  # templated: guided to the schema vLLM builds for tool_choice=required
    assert path == "/v1/completions" and body["structured_outputs"]["json"] == tool_call_schema(templ.tools)
    schema = tool_call_schema(templ.tools)
    assert schema["type"] == "array" and schema["minItems"] == 1
    assert [s["properties"]["name"]["enum"] for s in schema["items"]["anyOf"]] == [["get_weather"], ["track_order"],
                                                                                   ["convert_currency"]]
    chat_js = build_requests("json_schema", 1)[0].model_copy(update={"messages": [{"role": "user", "content": "x"}]})
    assert request_body(chat_js, "m")[1]["response_format"]["type"] == "json_schema"


def _rec(i, config, attempt, workload, prompt_tokens, tpot, accepted=None, drafted=None):
    spec = {"num_draft_tokens": drafted, "num_accepted_draft_tokens": accepted, "num_spec_steps": drafted // 4} \
        if drafted else None
    return {"id": f"{config}@c1/{attempt}-{i}", "workload": workload, "prompt_tokens": prompt_tokens, "status": "ok",
            "tpot_ms": tpot, "burst": False, "warmup": False, "spec": spec}


def test_breakdown_by_class_and_length_bucket(tmp_path):
    recs = []
    for i in range(20):
        recs.append(_rec(i, "baseline", "aaaa", "code", 100, 10.0 + i % 3))
        recs.append(_rec(i, "spec", "bbbb", "code", 100, 5.0 + i % 3 * 0.5, accepted=12, drafted=16))
        recs.append(_rec(100 + i, "baseline", "aaaa", "creative", 700, 10.0 + i % 2))
        recs.append(_rec(100 + i, "spec", "bbbb", "creative", 700, 12.5 + i % 2, accepted=4, drafted=16))
    recs.append(_rec(999, "spec", "zzzz", "code", 100, 1.0))  # an attempt the result did not pool: left out
    res = LoadResult(levels=[LevelStats(config="baseline", level=1, attempts=["aaaa"]),
                             LevelStats(config="spec", level=1, attempts=["bbbb"])])
    rows = {(r.by, r.group): r for r in breakdown(recs, res)}
    assert set(rows) == {("class", "code"), ("class", "creative"), ("length", "64-127"), ("length", "512-1023")}
    code, creative = rows[("class", "code")], rows[("class", "creative")]
    assert code.requests_spec == 20 and code.speedup > 1.5 and code.ci_low > 1
    assert creative.speedup < 1 and creative.ci_high < 1
    assert code.acceptance_rate == pytest.approx(0.75) and creative.acceptance_rate == pytest.approx(0.25)
    assert code.mean_acceptance_length == pytest.approx(1 + 12 / 4)
    assert rows[("length", "64-127")].speedup == pytest.approx(code.speedup)
    assert [length_bucket(x) for x in (None, 10, 64, 127, 128, 5000)] == ["unknown", "<64", "64-127", "64-127",
                                                                           "128-255", "4096-8191"]
    out = write_csv(list(rows.values()), tmp_path / "b.csv")
    assert out.read_text().splitlines()[0].startswith("by,group,level")
    assert "| class | code | 1 |" in table_markdown(list(rows.values()))


def test_the_load_test_uses_the_served_models_tokenizer_only(tmp_path):
    from playbook.helpers.params import LoadParams

    assert shaping.tokenizer_for(LoadParams()) == tiny_pair().target  # embedded: the tiny target's own
    ext = LoadParams(mode="external", baseline_url="http://b", spec_url="http://s")
    assert shaping.tokenizer_for(ext) is None  # 'embedded' names nothing about an external server's model
    assert shaping.tokenizer_for(ext.model_copy(update={"target_model": TOK})) == Path(TOK)
    assert shaping.tokenizer_for(ext.model_copy(update={"target_model": "meta-llama/Llama-3.1-8B"})) is None
