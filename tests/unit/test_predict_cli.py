"""`playbook predict ... --json`: the fields the issue names, and clear errors."""

import json
from pathlib import Path

import pytest

from playbook.cli import main

HEADS = Path(__file__).resolve().parents[2] / "benchmarks/predictor/heads"


def _run(capsys, *args):
    rc = main(["predict", *args])
    out = capsys.readouterr()
    return rc, out


def test_predict_json_fields(capsys):
    rc, out = _run(capsys, "--target", "Llama-3.1-70B", "--draft", "Llama-3.2-1B", "--gpu", "H100-SXM", "--num-gpus", "2",
                   "--tp", "2", "--acceptance", "0.7", "--num-speculative-tokens", "4", "--batch-sizes", "1,8,64,512", "--json")
    assert rc == 0
    data = json.loads(out.out)
    assert [p["batch_size"] for p in data["points"]] == [1, 8, 64, 512]
    for p in data["points"]:
        assert {"speedup", "tpot_baseline_ms", "tpot_spec_ms"} <= set(p)
        assert p["speedup"] == pytest.approx(p["tpot_baseline_ms"] / p["tpot_spec_ms"])
    assert "crossover_batch_size" in data
    assert data["points"][0]["speedup"] > 1 > data["points"][-1]["speedup"]  # a 70B on H100s: wins alone, loses at 512
    assert data["crossover_batch_size"] in (64, 512)


def test_predict_null_crossover_when_always_winning(capsys):
    rc, out = _run(capsys, "--target", "Llama-3.1-70B", "--draft", "Llama-3.2-1B", "--gpu", "H100-SXM", "--num-gpus", "2",
                   "--acceptance", "0.8", "--batch-sizes", "1,2,4", "--json")
    assert rc == 0 and json.loads(out.out)["crossover_batch_size"] is None


def test_predict_cpu_needs_measured_step_times(capsys):
    rc, out = _run(capsys, "--target", "Llama-3.1-8B", "--draft", "Llama-3.2-1B", "--gpu", "cpu", "--acceptance", "0.7", "--json")
    assert rc == 1 and "--target-step-ms" in out.err


def test_predict_with_measured_step_times(capsys):
    rc, out = _run(capsys, "--target", "Llama-3.1-8B", "--method", "ngram", "--acceptance", "0.5",
                   "--target-step-ms", "5", "--per-token-ms", "1", "--batch-sizes", "1,4", "--json")
    assert rc == 0
    data = json.loads(out.out)
    assert data["points"][0]["tpot_baseline_ms"] == pytest.approx(5.0)
    assert data["draft_step"] is None


def test_the_text_output_says_what_it_assumed_and_how_the_gpu_was_read(capsys):
    """A new user reads the table, not the JSON: the GPU as the catalog read it, the engine's constants, and
    the hint for the other engine under an EAGLE prediction are printed under it."""
    head = str(HEADS / "EAGLE-LLaMA3.1-Instruct-8B")
    rc, out = _run(capsys, "--target", "Llama-3.1-8B", "--draft", head, "--gpu", "NVIDIA H100 80GB HBM3", "-k", "3",
                   "--acceptance-length", "2.3", "--batch-sizes", "1,8")
    assert rc == 0
    text = out.out.split("assumptions:\n", 1)[1]
    assert "--gpu NVIDIA H100 80GB HBM3 read as H100-SXM" in text and "vLLM V1" in text
    assert "`--engine sglang` predicts that engine" in text
    rc, out = _run(capsys, "--target", "Llama-3.1-8B", "--draft", head, "--gpu", "h100-sxm", "-k", "3",
                   "--acceptance-length", "2.3", "--engine", "sglang", "--batch-sizes", "1,8")
    assert rc == 0 and "read as" not in out.out and "--engine sglang" not in out.out


def test_no_draft_says_it_predicted_an_ngram_and_that_every_step_proposing_is_an_upper_bound(capsys):
    base = ["predict", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM", "-k", "3", "--acceptance", "0.7", "--json"]
    assert main(base) == 0
    out = capsys.readouterr()
    data = json.loads(out.out)
    assert data["method"] == "ngram" and "with ngram k=3" in data["finding"]
    assert data["assumptions"][0].startswith("no --draft or --method given") and "note: no --draft" in out.err
    assert any("an upper bound" in a for a in data["assumptions"])
    assert not any("draft passes" in a for a in data["assumptions"])  # a lookup has none
    assert main([*base, "--method", "ngram", "--proposal-rate", "0.3"]) == 0
    out = capsys.readouterr()
    data = json.loads(out.out)
    assert not any("no --draft" in a or "an upper bound" in a for a in data["assumptions"]) and "note:" not in out.err


@pytest.mark.parametrize("target, draft, said", [
    ("Llama-3.1-8B", "Qwen3-0.6B", "heterogeneous-vocab"),  # another tokenizer: vLLM's draft_model refuses it
    ("Llama-3.1-8B", "Llama-3.1-70B", "not smaller than the target"),
    ("Llama-3.1-8B", str(HEADS / "EAGLE-LLaMA3-Instruct-70B"), "hidden size 8192"),  # a 70B's head
    ("Llama-3.1-70B", str(HEADS / "EAGLE3-LLaMA3.1-Instruct-8B"), "hidden size 4096"),
    ("Llama-3.1-8B", "HEAD_NAMING_QWEN", "names Qwen/Qwen3-8B"),  # same width, trained on another target
])
def test_a_pair_vllm_would_not_serve_is_predicted_as_a_what_if_and_said(capsys, tmp_path, target, draft, said):
    if draft == "HEAD_NAMING_QWEN":
        cfg = json.loads((HEADS / "EAGLE3-LLaMA3.1-Instruct-8B" / "config.json").read_text())
        draft = tmp_path / "my-eagle3-head"
        draft.mkdir()
        (draft / "config.json").write_text(json.dumps({**cfg, "target_model": "Qwen/Qwen3-8B"}))
    assert main(["predict", "--target", target, "--draft", str(draft), "--gpu", "H100-SXM", "-k", "3", "--acceptance",
                 "0.7", "--batch-sizes", "1", "--json"]) == 0
    out = capsys.readouterr()
    first = json.loads(out.out)["assumptions"][0]
    assert said in first and "what-if" in first and f"warning: {first}" in out.err


@pytest.mark.parametrize("draft", ["Llama-3.2-1B", str(HEADS / "EAGLE3-LLaMA3.1-Instruct-8B"),
                                   str(HEADS / "EAGLE-LLaMA3.1-Instruct-8B")])
def test_a_pair_vllm_serves_gets_no_warning(capsys, draft):
    assert main(["predict", "--target", "Llama-3.1-8B", "--draft", draft, "--gpu", "H100-SXM", "-k", "3",
                 "--acceptance", "0.7", "--batch-sizes", "1", "--json"]) == 0
    out = capsys.readouterr()
    assert "warning" not in out.err and not any("what-if" in a for a in json.loads(out.out)["assumptions"])


@pytest.mark.parametrize("positions,said", [
    ("80,60,40", "if these are percentages, give 0.8,0.6,0.4"),
    ("1.2,0.6,0.4", "outside [0, 1]"),
    ("0.8,-0.6,0.4", "outside [0, 1]"),
    ("nan,0.5", "not a number"),
    ("0.8,0.9,0.95", "running product: 0.8,0.72,0.684"),  # conditional rates, not vLLM's per-position ones
])
def test_per_position_rates_vllm_cannot_report_are_refused(capsys, positions, said):
    rc, out = _run(capsys, "--target", "Llama-3.1-8B", "--draft", "Llama-3.2-1B", "--gpu", "H100-SXM",
                   "--acceptance-per-position", positions, "--json")
    assert rc == 1 and said in out.err and said in json.loads(out.out)["error"]["problem"] + json.loads(out.out)["error"]["fix"]


def test_per_position_rates_set_k_unless_k_is_given_and_say_when_extended(capsys):
    args = ["--target", "Llama-3.1-8B", "--draft", "Llama-3.2-1B", "--gpu", "H100-SXM",
            "--acceptance-per-position", "0.8,0.6,0.4", "--batch-sizes", "1", "--json"]
    rc, out = _run(capsys, *args)
    data = json.loads(out.out)
    assert rc == 0 and data["num_speculative_tokens"] == 3
    assert data["expected_tokens_per_step"] == pytest.approx(2.8)
    assert not any("extend" in a for a in data["assumptions"])
    rc, out = _run(capsys, *args, "-k", "5")
    data = json.loads(out.out)
    assert rc == 0 and data["num_speculative_tokens"] == 5
    assert any("positions 4-5 extend it" in a for a in data["assumptions"])


def test_tpot_at_without_tpot_ms_is_named_not_ignored(capsys):
    rc, out = _run(capsys, "--target", "Llama-3.1-8B", "--draft", "Llama-3.2-1B", "--gpu", "H100-SXM",
                   "--acceptance", "0.7", "--tpot-at", "32,9,6")
    assert rc == 1 and "--tpot-at without --tpot-ms" in out.err


def test_an_empty_item_in_a_list_is_a_typo_not_nothing(capsys):
    from playbook.helpers.errors import ParameterError
    from playbook.helpers.params import LoadParams, validate_params

    with pytest.raises(SystemExit):  # an argument the parser refuses
        _run(capsys, "--target", "Llama-3.1-8B", "--gpu", "H100-SXM", "--acceptance", "0.7", "--batch-sizes", "1,,4")
    assert "empty item between commas" in capsys.readouterr().err
    with pytest.raises(ParameterError, match="empty item between commas"):
        validate_params(LoadParams, {"concurrencies": "1,,4"})
    assert validate_params(LoadParams, {"concurrencies": "1,4,"}).concurrencies == [1, 4]  # a trailing comma is fine


def test_gpus_that_are_not_whole_tp_groups_are_refused_as_the_memory_step_refuses_them(capsys):
    rc, out = _run(capsys, "--target", "Llama-3.1-8B", "--gpu", "H100-SXM", "--acceptance", "0.7",
                   "--num-gpus", "3", "--tp", "2")
    assert rc == 1 and "--num-gpus 3 is not a multiple of --tp 2" in out.err and "--num-gpus 2 or 4" in out.err


def test_tp_alone_means_one_group_of_that_many_gpus_as_in_playbook_memory(capsys):
    base = ["--target", "Llama-3.1-70B", "--draft", "Llama-3.2-1B", "--gpu", "H100-SXM", "--acceptance", "0.7",
            "--batch-sizes", "1,8", "--json"]
    rc, out = _run(capsys, *base, "--tp", "4")
    assert rc == 0, out.err
    alone = json.loads(out.out)
    rc, out = _run(capsys, *base, "--tp", "4", "--num-gpus", "4")
    assert rc == 0 and json.loads(out.out)["points"] == alone["points"]
    assert not any("replicas" in a for a in alone["assumptions"])  # one replica, not "1 GPU for TP 4"
    rc, out = _run(capsys, *base, "--num-gpus", "0")
    assert rc == 1 and "--num-gpus 0 (must be >= 1)" in out.err


def test_a_context_beyond_the_models_maximum_is_refused_by_predict_and_memory(capsys):
    rc, out = _run(capsys, "--target", "Llama-3.1-8B", "--gpu", "H100-SXM", "--acceptance", "0.7",
                   "--context-length", "1000000")
    assert rc == 1 and "maximum context of 131072 tokens" in out.err and "--context-length 131072" in out.err
    assert main(["memory", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM", "--tp", "8", "--max-model-len", "500000"]) == 1
    err = capsys.readouterr().err  # refused with the parameters, as a managed run refuses it before starting vLLM
    assert "--max-model-len 500000 exceeds Llama-3.1-8B's maximum context of 131072" in err
    assert "give --max-model-len 131072 or less" in err


def test_the_maximum_context_is_derived_as_vllm_derives_it():
    from playbook.helpers.models import derived_max_len

    assert derived_max_len({"max_position_embeddings": 131072, "rope_scaling": {"rope_type": "llama3", "factor": 8}}) == 131072
    assert derived_max_len({"max_position_embeddings": 32768, "rope_scaling": {"type": "yarn", "factor": 4}}) == 32768
    assert derived_max_len({"max_position_embeddings": 4096, "rope_scaling": {"type": "linear", "factor": 2}}) == 8192
    assert derived_max_len({"max_position_embeddings": 8192, "model_type": "gemma3_text",
                            "rope_scaling": {"rope_type": "linear", "factor": 8}}) == 8192
    assert derived_max_len({"n_positions": 2048}) == 2048 and derived_max_len({}) == 0


def test_a_tp_that_does_not_divide_the_heads_is_refused_as_memory_and_run_refuse_it(capsys):
    rc, out = _run(capsys, "--target", "Llama-3.1-8B", "--gpu", "H100-SXM", "--acceptance", "0.7", "--tp", "3")
    assert rc == 1 and "--tp 3 does not divide the 32 attention heads" in out.err and "--tp 1, 2, 4, 8 or 16" in out.err


def test_no_acceptance_says_where_to_get_one(capsys):
    """A new user without a measured acceptance: where vLLM and the playbook give it, and a published one to start."""
    with pytest.raises(SystemExit) as exc:
        main(["predict", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM", "--method", "ngram"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "is required" in err
    assert "Mean acceptance length" in err and "--acceptance-length 2.3 -k 3" in err and "vllm#20780" in err


def test_mtp_past_the_checkpoints_layers_says_later_positions_are_accepted_less(capsys):
    """DeepSeek-V3 has one MTP layer: a k above 1, given or suggested as the best k, reuses it (vllm#41044)."""
    args = ["--target", "DeepSeek-V3", "--gpu", "H200", "--num-gpus", "8", "--tp", "8", "--method", "mtp",
            "--batch-sizes", "1,16", "--json"]
    rc, out = _run(capsys, *args, "-k", "1", "--acceptance-length", "1.8")
    data = json.loads(out.out)
    assert rc == 0 and data["optimal_k"] > 1  # one per-token rate extrapolated: more k looks better
    assert any("1 MTP layer(s)" in n and "vllm-project/vllm#41044" in n for n in data["assumptions"])
    rc, out = _run(capsys, *args, "-k", "2", "--acceptance-per-position", "0.77,0.38")
    assert rc == 0 and not any("MTP layer(s)" in n for n in json.loads(out.out)["assumptions"])  # measured per position
