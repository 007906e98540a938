"""extra_server_args' speculative keys in every form vLLM's parser takes: the dotted form
(``--speculative-config.KEY VALUE``, vllm/utils/argparse_utils.py FlexibleArgumentParser) reaches the speculative
server only, merged into its one --speculative-config and checked like the JSON form; the TP keys vLLM refuses in
the speculative config (draft_tensor_parallel_size other than 1/the target's, 1 for draft_model under a target TP
> 1, tensor_parallel_size) are refused by the parameter validation, not at server start."""

import json
from types import SimpleNamespace

import pytest

from playbook.helpers import compat
from playbook.helpers.embedded import tiny_pair
from playbook.helpers.endpoints import server_config
from playbook.helpers.errors import ParameterError, SpecConfigError
from playbook.helpers.params import PreflightParams, validate_params
from playbook.helpers.specconfig import (
    merge_own_keys,
    server_args,
    split_speculative_args,
    validate_speculative_config,
)


def _params(extra, method="draft_model", tp=1):
    pair = tiny_pair()
    return validate_params(PreflightParams, dict(
        mode="managed", target_model=str(pair.target), draft_model=str(pair.draft) if method != "ngram" else "",
        method=method, num_speculative_tokens=4, tensor_parallel_size=tp, extra_server_args=extra))


def _args(p, role):
    return server_args(server_config(p, role))


def _spec_json(args):
    assert args.count("--speculative-config") == 1
    assert not [a for a in args if a.startswith(("--speculative-config.", "--speculative_config", "-sc"))]
    return json.loads(args[args.index("--speculative-config") + 1])


def _no_speculation(args):
    return not [a for a in args if "speculative" in a or a.startswith(("-sc", "--spec-"))]


@pytest.mark.parametrize("extra", [
    ["--speculative-config.prompt_lookup_max", "3", "--speculative-config.quantization", "fp8"],
    ["--speculative-config.prompt_lookup_max=3", "--speculative_config.quantization=fp8"],
    ["--speculative_config.prompt-lookup-max", "3", "-sc.quantization", "fp8"],
    ["--speculative-config", '{"prompt_lookup_max": 7}', "--speculative-config.prompt_lookup_max", "3",
     "-sc", '{"quantization": "fp8"}'],
])
def test_dotted_keys_reach_the_speculative_server_only_merged_into_one_json(extra):
    p = _params([*extra, "--seed", "3"])
    base, spec = _args(p, "baseline"), _args(p, "spec")
    assert _no_speculation(base) and base[-2:] == ["--seed", "3"]
    cfg = _spec_json(spec)
    assert cfg["method"] == "draft_model" and cfg["num_speculative_tokens"] == 4 and cfg["model"] == str(tiny_pair().draft)
    assert cfg["prompt_lookup_max"] == 3 and cfg["quantization"] == "fp8"
    assert spec[-2:] == ["--seed", "3"]


def test_the_repro_dotted_method_is_refused_naming_the_parameter_and_the_fix():
    with pytest.raises(ParameterError) as err:
        _params(["--speculative-config.method", "ngram", "--speculative-config.prompt_lookup_max", "3"])
    text = str(err.value)
    assert "extra_server_args sets the speculative method to 'ngram'" in text
    assert "the parameter method is 'draft_model'" in text and "set method instead" in text


@pytest.mark.parametrize("extra", [
    ["--speculative-config.num_speculative_tokens", "2"],
    ["--speculative-config.num-speculative-tokens=2"],
    ["-sc.num_speculative_tokens", "2"],
    ["--speculative-config", '{"num-speculative-tokens": 2}'],  # vLLM reads '-' in a key as '_'
])
def test_a_dotted_k_contradicting_the_parameter_is_refused(extra):
    with pytest.raises(ParameterError) as err:
        _params(extra)
    assert "the parameter num_speculative_tokens is 4" in str(err.value)


def test_dotted_keys_agreeing_with_the_parameters_are_accepted():
    p = _params(["--speculative-config.num_speculative_tokens", "4", "--speculative-config.method=draft_model"])
    assert _spec_json(_args(p, "spec"))["num_speculative_tokens"] == 4 and _no_speculation(_args(p, "baseline"))


def test_dotted_ngram_keys_override_the_defaults():
    p = _params(["--speculative-config.prompt_lookup_max", "6", "--speculative-config.prompt_lookup_min=3"],
                method="ngram")
    cfg = _spec_json(_args(p, "spec"))
    assert cfg["method"] == "ngram" and (cfg["prompt_lookup_min"], cfg["prompt_lookup_max"]) == (3, 6)


def test_dotted_values_are_read_as_vllm_reads_them():
    rest, keys, _ = split_speculative_args([
        "--speculative-config.prompt_lookup_max", "3", "--speculative-config.use_heterogeneous_vocab=true",
        "--speculative-config.quantization", "fp8", "--speculative-config.max_model_len", "2k",
        "--speculative-config.model", "/m/d.v1", "--speculative-config.a.b", "1", "--speculative-config.a.c=x",
        "--speculative-config.l+", "x,y", "--speculative-config.l+=z", "--max-num-seqs", "8"])
    assert rest == ["--max-num-seqs", "8"]
    assert keys == {"prompt_lookup_max": 3, "use_heterogeneous_vocab": True, "quantization": "fp8",
                    "max_model_len": 2000, "model": "/m/d.v1", "a": {"b": 1, "c": "x"}, "l": ["x", "y", "z"]}


def test_a_dot_only_in_a_value_is_not_the_dotted_form():
    rest, keys, _ = split_speculative_args(["--speculative-config={\"model\": \"/m/d.v1\"}", "--x=1.5"])
    assert rest == ["--x=1.5"] and keys == {"model": "/m/d.v1"}


@pytest.mark.parametrize("extra, needle", [
    (["--speculative-config.prompt_lookup_max"], "needs a value"),
    (["--speculative-config.", "3"], "does not name a speculative-config key"),
])
def test_a_malformed_dotted_flag_is_refused(extra, needle):
    with pytest.raises(SpecConfigError, match=needle):
        split_speculative_args(extra)


@pytest.mark.parametrize("extra, tp, needle, fix", [
    (["--speculative-config", '{"draft_tensor_parallel_size": 3}'], 1, "draft_tensor_parallel_size=3",
     "set draft_tensor_parallel_size to 1, or leave it unset"),
    (["--speculative-config.draft_tensor_parallel_size", "3"], 2, "draft_tensor_parallel_size=3",
     "set draft_tensor_parallel_size to 2, or leave it unset"),
    (["--speculative-config", '{"draft_tensor_parallel_size": 1}'], 2, "draft_tensor_parallel_size=1 is refused",
     "set draft_tensor_parallel_size to 2 or leave it unset"),
    (["-sc.draft_tensor_parallel_size=1"], 2, "_raise_if_draft_tp_mismatch",
     "set draft_tensor_parallel_size to 2 or leave it unset"),
])
def test_a_draft_tp_vllm_refuses_is_refused_by_the_validation(extra, tp, needle, fix):
    with pytest.raises(ParameterError) as err:
        _params(extra, tp=tp)
    text = str(err.value)
    assert "extra_server_args" in text and needle in text and fix in text


@pytest.mark.parametrize("extra", [
    ["--speculative-config", '{"tensor_parallel_size": 1}'],
    ["--speculative-config.tensor-parallel-size", "2"],
])
def test_tensor_parallel_size_in_the_speculative_config_is_refused(extra):
    with pytest.raises(ParameterError) as err:
        _params(extra, tp=2)
    text = str(err.value)
    assert "tensor_parallel_size=" in text and "in the speculative config is refused" in text
    assert "rename it to draft_tensor_parallel_size" in text


def test_an_accepted_draft_tp_reaches_the_speculative_server():
    p = _params(["--speculative-config.draft_tensor_parallel_size=2"], tp=2)
    assert _spec_json(_args(p, "spec"))["draft_tensor_parallel_size"] == 2
    assert _no_speculation(_args(p, "baseline"))


def test_the_draft_tp_rule_follows_the_method():
    spec = {"method": "eagle3", "model": "/h", "num_speculative_tokens": 4}
    assert merge_own_keys(spec, {"draft_tensor_parallel_size": 1}, SimpleNamespace(tensor_parallel_size=2)
                          )["draft_tensor_parallel_size"] == 1  # a head may run at TP 1
    ngram = {"method": "ngram", "num_speculative_tokens": 4}  # no draft model: vLLM never reads it
    merge_own_keys(ngram, {"draft_tensor_parallel_size": 3}, SimpleNamespace(tensor_parallel_size=2))
    with pytest.raises(SpecConfigError, match="tensor_parallel_size=2 in the speculative config"):
        merge_own_keys(ngram, {"tensor_parallel_size": 2}, SimpleNamespace(tensor_parallel_size=2))


def test_the_launch_time_validation_refuses_tensor_parallel_size_too():
    with pytest.raises(SpecConfigError, match="draft_tensor_parallel_size"):
        validate_speculative_config({"method": "ngram", "num_speculative_tokens": 4, "tensor_parallel_size": 2})


def test_the_draft_tp_fix_names_only_what_vllm_takes():
    with pytest.raises(SpecConfigError) as exc:
        compat.draft_tp_rule("draft_model", 1, 3)
    assert exc.value.fix == "set draft_tensor_parallel_size to 1, or leave it unset"
    with pytest.raises(SpecConfigError) as exc:
        compat.draft_tp_rule("eagle3", 4, 2)
    assert "(or 1 for EAGLE/MTP heads)" in exc.value.fix
