"""--speculative-config building, validation against the installed vLLM, legacy flags, lossy methods."""

from __future__ import annotations

import json
import shlex

import pytest

from playbook.helpers import specconfig
from playbook.helpers.errors import SpecConfigError
from playbook.helpers.schemas.server import ServerConfig
from playbook.helpers.specconfig import (
    build_speculative_config,
    is_lossy,
    launch_command,
    supports_speculative_config,
    translate_legacy_args,
    validate_speculative_config,
    vllm_facts,
    vllm_version,
)


def test_ngram_gets_prompt_lookup_defaults():
    cfg = build_speculative_config("ngram", num_speculative_tokens=3)
    assert cfg == {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_min": 2, "prompt_lookup_max": 4}


def test_ngram_defaults_can_be_overridden():
    cfg = build_speculative_config("ngram", prompt_lookup_max=6)
    assert cfg["prompt_lookup_max"] == 6 and cfg["prompt_lookup_min"] == 2


@pytest.mark.parametrize("method", ["draft_model", "eagle", "eagle3"])
def test_model_based_methods_need_a_model(method):
    with pytest.raises(SpecConfigError, match="needs a draft model"):
        build_speculative_config(method)
    assert build_speculative_config(method, "/m/draft")["model"] == "/m/draft"


def test_mtp_needs_no_model():
    assert build_speculative_config("mtp", num_speculative_tokens=1) == {"method": "mtp", "num_speculative_tokens": 1}


def test_installed_vllm_is_probed():
    facts = vllm_facts()
    assert facts.importable and facts.version == vllm_version()
    assert "num_speculative_tokens" in facts.spec_fields and "draft_model" in facts.methods
    assert supports_speculative_config()


def test_valid_configs_pass():
    assert validate_speculative_config(build_speculative_config("ngram")) == []
    assert validate_speculative_config({"method": "draft_model", "model": "/x", "num_speculative_tokens": 4,
                                        "num_speculative_tokens_per_batch_size": [[1, 8, 4], [9, 9, 0]]}) == []


def test_unknown_key_is_named_with_a_suggestion():
    with pytest.raises(SpecConfigError) as err:
        validate_speculative_config({"method": "ngram", "num_speculative_token": 4})
    assert "'num_speculative_token'" in str(err.value) and "num_speculative_tokens" in str(err.value)


def test_unknown_method_lists_allowed_ones():
    with pytest.raises(SpecConfigError, match="'lookahead' is not supported") as err:
        validate_speculative_config({"method": "lookahead", "num_speculative_tokens": 4})
    assert "draft_model" in err.value.fix


def test_internal_fields_are_rejected():
    with pytest.raises(SpecConfigError, match="target_model_config"):
        validate_speculative_config({"method": "ngram", "num_speculative_tokens": 2, "target_model_config": {}})


@pytest.mark.parametrize("cfg, match", [
    ({"method": "ngram", "num_speculative_tokens": 0}, "positive integer"),
    ({"method": "draft_model", "num_speculative_tokens": 4}, "needs 'model'"),
    ({"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_min": 5, "prompt_lookup_max": 2}, "larger than"),
    ({"method": "ngram", "rejection_sample_method": "magic", "num_speculative_tokens": 2}, "rejection_sample_method"),
    ({}, "non-empty"),
])
def test_bad_values(cfg, match):
    with pytest.raises(SpecConfigError, match=match):
        validate_speculative_config(cfg)


def test_a_vllm_too_old_for_speculative_config(monkeypatch):
    from playbook.helpers import specconfig

    old = specconfig.VllmFacts(python="x", version="0.6.3", importable=True, spec_fields=["num_speculative_tokens"],
                               has_speculative_config=False)
    monkeypatch.setattr(specconfig, "vllm_facts", lambda python=None: old)
    with pytest.raises(SpecConfigError, match="0.6.3 is too old for --speculative-config") as err:
        validate_speculative_config({"method": "ngram", "num_speculative_tokens": 2})
    assert "upgrade" in err.value.fix


def test_without_vllm_only_the_shape_is_checked(monkeypatch):
    from playbook.helpers import specconfig

    monkeypatch.setattr(specconfig, "vllm_facts",
                        lambda python=None: specconfig.VllmFacts(python="x", error="No module named 'vllm'"))
    notes = validate_speculative_config({"method": "anything", "num_speculative_tokens": 2})
    assert notes and "not importable" in notes[0]


def test_legacy_draft_flags_translate():
    rest, cfg, warns = translate_legacy_args(
        ["--seed", "1", "--speculative-model", "/m/draft", "--num-speculative-tokens=5",
         "--spec-decoding-acceptance-method", "rejection_sampler"])
    assert rest == ["--seed", "1"]
    assert cfg == {"method": "draft_model", "model": "/m/draft", "num_speculative_tokens": 5}
    assert len(warns) == 1 and "--speculative-config" in warns[0] and "--speculative-model /m/draft" in warns[0]
    validate_speculative_config(cfg)


def test_legacy_ngram_and_disable_by_batch_size_translate():
    _, cfg, warns = translate_legacy_args(["--speculative_model", "[ngram]", "--num_speculative_tokens", "3",
                                           "--ngram-prompt-lookup-max", "4",
                                           "--speculative-disable-by-batch-size", "8"])
    assert cfg["method"] == "ngram" and "model" not in cfg
    assert cfg["num_speculative_tokens_per_batch_size"] == [[1, 8, 3], [9, 9, 0]]
    assert any("batch size 8" in w for w in warns)
    validate_speculative_config(cfg)


def test_legacy_typical_acceptance_is_dropped_with_a_warning():
    _, cfg, warns = translate_legacy_args(["--speculative-model", "m/eagle-head", "--num-speculative-tokens", "2",
                                           "--spec-decoding-acceptance-method", "typical_acceptance_sampler"])
    assert cfg["method"] == "eagle" and "acceptance_method" not in cfg
    assert any("typical_acceptance_sampler" in w for w in warns)


def test_every_removed_flag_is_consumed_and_translated_or_explained():
    """vLLM 0.7.3's speculative flags (removed by vllm-project/vllm#15466): none reaches today's vLLM."""
    args = ["--tensor-parallel-size", "2", "--speculative-model", "/m/draft", "--num-speculative-tokens", "4",
            "--speculative-model-quantization", "fp8", "--speculative-draft-tensor-parallel-size", "1",
            "--speculative-max-model-len", "2048", "--speculative-disable-mqa-scorer",
            "--spec-decoding-acceptance-method", "typical_acceptance_sampler",
            "--typical-acceptance-sampler-posterior-threshold", "0.09",
            "--typical-acceptance-sampler-posterior-alpha=0.3", "--disable-logprobs-during-spec-decoding", "--seed", "1"]
    rest, cfg, warns = translate_legacy_args(args)
    assert rest == ["--tensor-parallel-size", "2", "--seed", "1"]
    assert cfg == {"method": "draft_model", "model": "/m/draft", "num_speculative_tokens": 4, "quantization": "fp8",
                   "draft_tensor_parallel_size": 2, "max_model_len": 2048}
    text = "\n".join(warns)
    for flag in ("--speculative-disable-mqa-scorer", "--typical-acceptance-sampler-posterior-threshold",
                 "--typical-acceptance-sampler-posterior-alpha", "--disable-logprobs-during-spec-decoding"):
        assert f"{flag} cannot be translated" in text
    assert "draft_tensor_parallel_size=1 became 2" in text
    validate_speculative_config(cfg)
    assert set(cfg) <= set(vllm_facts().spec_fields)
    covered = {k for k, _ in specconfig.LEGACY_FLAGS.values()}
    assert covered - specconfig.LEGACY_SAME_KEY - set(specconfig.UNTRANSLATABLE) == {
        "acceptance_method", "disable_by_batch_size"}  # the two translated by rule


def test_legacy_draft_tp_short_alias_and_bad_value():
    _, cfg, _ = translate_legacy_args(["-spec-draft-tp", "1", "--speculative-model", "h/eagle3-x"], target_tp=4)
    assert cfg["draft_tensor_parallel_size"] == 1 and cfg["method"] == "eagle3"  # a head may run at TP 1
    with pytest.raises(SpecConfigError, match="only 1 or the target's TP"):
        translate_legacy_args(["--speculative-model", "/d", "--speculative-draft-tensor-parallel-size", "2"], target_tp=4)


def test_only_untranslatable_flags_are_still_removed():
    rest, cfg, warns = translate_legacy_args(["--speculative-disable-mqa-scorer", "--seed", "2"])
    assert rest == ["--seed", "2"] and cfg == {} and "none has an equivalent" in warns[0]


def test_no_legacy_flags_means_no_change():
    assert translate_legacy_args(["--seed", "3"]) == (["--seed", "3"], None, [])


def test_legacy_flag_without_value():
    with pytest.raises(SpecConfigError, match="needs a value"):
        translate_legacy_args(["--num-speculative-tokens"])


def test_lossy_methods():
    assert not is_lossy(build_speculative_config("ngram"))
    assert not is_lossy({"method": "draft_model", "model": "d", "rejection_sample_method": "block"})
    assert is_lossy({"method": "draft_model", "model": "d", "rejection_sample_method": "synthetic",
                     "synthetic_acceptance_length": 2.0})
    assert not is_lossy(None)


def test_launch_command_is_todays_syntax():
    cfg = ServerConfig(model="/m/llama-70b", port=8000, tensor_parallel_size=2, max_model_len=8192,
                       speculative_config=build_speculative_config("draft_model", "/m/llama-8b", 4),
                       env={"HF_TOKEN": "secret-value", "VLLM_CPU_KVCACHE_SPACE": "1"}, api_key_env="MY_KEY")
    cmd = launch_command(cfg)
    assert cmd.startswith("VLLM_CPU_KVCACHE_SPACE=1 VLLM_API_KEY=\"$MY_KEY\" vllm serve /m/llama-70b ")
    assert "secret-value" not in cmd and "HF_TOKEN" not in cmd
    argv = shlex.split(cmd.split("vllm serve ", 1)[1])
    spec = json.loads(argv[argv.index("--speculative-config") + 1])
    assert spec == {"method": "draft_model", "num_speculative_tokens": 4, "model": "/m/llama-8b"}
    assert argv[argv.index("--tensor-parallel-size") + 1] == "2"


def test_launch_command_translates_legacy_extra_args():
    with pytest.warns(UserWarning, match="legacy speculative flags"):
        cmd = launch_command(ServerConfig(model="/m/t", extra_args=["--speculative-model", "/m/d",
                                                                     "--num-speculative-tokens", "3"]))
    assert "--speculative-model" not in cmd and '"method":"draft_model"' in cmd


def test_validation_refuses_a_draft_tp_draft_model_rejects():
    """vLLM 0.32's draft_model refuses draft TP 1 under target TP 2 (v1/spec_decode/draft_model.py)."""
    cfg = {"method": "draft_model", "model": "/d", "num_speculative_tokens": 3, "draft_tensor_parallel_size": 1}
    with pytest.raises(SpecConfigError, match="draft_tensor_parallel_size=1 is refused") as exc:
        validate_speculative_config(cfg, target_tp=2)
    assert "set draft_tensor_parallel_size to 2" in exc.value.fix
    validate_speculative_config(cfg, target_tp=1)
    validate_speculative_config({**cfg, "method": "eagle3"}, target_tp=2)  # heads may run at TP 1
