"""extra_server_args: written like a command line, split as a shell would; speculative flags reach the
speculative server only (the baseline never speculates); a flag a parameter sets is refused."""

import pytest

from playbook.helpers.endpoints import server_config
from playbook.helpers.errors import ParameterError
from playbook.helpers.params import LoadParams, validate_params


def _params(extra, **kw):
    return validate_params(LoadParams, dict(mode="managed", target_model="/tmp/target", draft_model="org/draft",
                                            method="draft_model", num_speculative_tokens=4, allow_hub_models=True,
                                            extra_server_args=extra, **kw))


@pytest.mark.parametrize("extra, args", [
    ("--max-num-seqs 64", ["--max-num-seqs", "64"]),
    (["--distributed-executor-backend ray", "--enforce-eager"], ["--distributed-executor-backend", "ray", "--enforce-eager"]),
    ("--max-num-seqs,64", ["--max-num-seqs", "64"]),
])
def test_an_item_written_like_a_command_line_is_split_into_arguments(extra, args):
    assert _params(extra).extra_server_args == args


@pytest.mark.parametrize("extra", [
    ["--speculative-config", '{"prompt_lookup_max": 7, "num_speculative_tokens": 4}'],
    ["--spec-tokens", "4", "--speculative-disable-by-batch-size", "8"],
])
def test_speculative_flags_go_to_the_speculative_server_only(extra):
    p = _params([*extra, "--seed", "3"])
    base, spec = server_config(p, "baseline"), server_config(p, "spec")
    assert base.speculative_config is None and base.extra_args == ["--seed", "3"]
    assert spec.speculative_config["method"] == "draft_model" and spec.speculative_config["num_speculative_tokens"] == 4
    assert spec.extra_args == ["--seed", "3"]


@pytest.mark.parametrize("extra, needle", [
    (["--speculative-model", "org/draft", "--num-speculative-tokens", "5"], "num_speculative_tokens is 4"),
    (["--spec-method", "ngram"], "the parameter method is 'draft_model'"),
    (["--speculative-config", '{"method": "ngram"}'], "the parameter method is 'draft_model'"),
    (["--tensor-parallel-size=2"], "the parameter tensor_parallel_size sets"),
    (["--max_model_len", "4096"], "the parameter max_model_len sets"),
])
def test_a_flag_that_contradicts_or_repeats_a_parameter_is_refused(extra, needle):
    with pytest.raises(ParameterError) as err:
        _params(extra)
    assert needle in str(err.value)


def test_the_kv_cache_dtype_reaches_both_servers_and_their_command_line():
    from playbook.helpers.specconfig import server_args

    p = _params([], kv_cache_dtype="fp8")
    for role in ("baseline", "spec"):
        args = server_args(server_config(p, role))
        assert args[args.index("--kv-cache-dtype") + 1] == "fp8"


@pytest.mark.parametrize("extra, quant, noted", [([], "fp8", True), (["--quantization", "fp8"], "fp8", False),
                                                  ([], "bf16", False), ([], "int4", True)])
def test_a_budgeted_precision_the_servers_will_not_load_is_said(extra, quant, noted):
    from playbook.helpers.memory import unserved_precision_notes
    from playbook.helpers.models import from_catalog

    notes = unserved_precision_notes(from_catalog("Llama-3.1-8B"), from_catalog("Llama-3.2-1B"), quant, "bf16", extra)
    assert bool(notes) == noted and all("load the checkpoint as stored (bf16)" in n for n in notes)


def test_a_quantization_the_budget_cannot_read_is_kept_in_step_20s_warnings():
    from playbook.helpers.memory import unserved_precision_notes
    from playbook.helpers.models import from_catalog

    odd = from_catalog("Llama-3.1-8B").model_copy(update={"quantization": "hqq"})
    (note,) = unserved_precision_notes(odd, None, "bf16", "bf16", [])
    assert "'hqq'" in note and "unknown to the budget: counted as bf16" in note
