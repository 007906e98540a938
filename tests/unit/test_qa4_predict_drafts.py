"""QA round 4, items 10, 11, 12, 14 and 18: predict's headline when nothing fits, an EAGLE head of another target,
catalog drafts for a local target, Git LFS pointers and Hugging Face cache entries, --context-length 0."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from playbook.cli import main
from playbook.helpers import drafts, gpus, memory, models
from playbook.helpers.errors import ModelError

HEADS = Path(__file__).resolve().parents[2] / "benchmarks/predictor/heads"
LLAMA_8B_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
    "max_position_embeddings": 131072, "torch_dtype": "bfloat16", "tie_word_embeddings": False,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0},
}


def _model_dir(path: Path, cfg: dict) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(cfg))
    return path


# -- item 10: the headline says first that the configuration does not fit -------------------------------------
def test_predict_says_first_that_a_configuration_that_does_not_fit_is_a_what_if(capsys):
    args = ["predict", "--target", "Llama-3.1-70B", "--draft", "Llama-3.2-1B", "--gpu", "L4", "--acceptance", "0.7",
            "--batch-sizes", "1,8"]
    assert main(args) == 0
    out = capsys.readouterr()
    first = out.out.splitlines()[0]
    assert first.startswith("does not fit on L4") and "what-if" in first and "133.72 GiB" in first
    assert f"warning: {first}" in out.err
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)  # still one JSON document on stdout
    assert data["fits"] is False and data["does_not_fit"].startswith("does not fit on L4")


def test_predict_of_a_configuration_that_fits_has_no_such_headline(capsys):
    args = ["predict", "--target", "Llama-3.1-8B", "--draft", "Llama-3.2-1B", "--gpu", "H100-SXM", "--acceptance",
            "0.7", "--batch-sizes", "1,8"]
    assert main(args) == 0
    out = capsys.readouterr()
    assert out.out.startswith("predicted speedup") and "does not fit" not in out.out + out.err
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fits"] is True and data["does_not_fit"] == ""


# -- item 11: an EAGLE head of another target: one check, said by predict, memory, drafts and for validation ----
def test_head_mismatch_names_both_hidden_sizes_and_the_vocabulary():
    t8, head70 = models.resolve("Llama-3.1-8B"), models.resolve("EAGLE-Llama-3-70B")
    why = drafts.head_mismatch(t8, head70)
    assert "EAGLE-Llama-3-70B" in why and "hidden size 8192" in why and "has 4096" in why and "cannot load" in why
    assert drafts.head_mismatch(t8, models.resolve("EAGLE3-Llama-3.1-8B")) == ""
    assert drafts.head_mismatch(t8, models.resolve("Llama-3.2-1B")) == ""  # not a head
    assert drafts.head_mismatch(t8, None) == ""
    other_vocab = models.resolve("EAGLE3-Llama-3.1-8B").model_copy(update={"vocab_size": 151936})
    assert "vocabulary of 151936 tokens" in drafts.head_mismatch(t8, other_vocab)
    assert why in drafts.unusable_reason(t8, head70, "eagle")  # predict's warning is the same check


def test_memory_budget_and_cli_refuse_a_head_of_another_width(capsys):
    b = memory.budget(models.resolve("Llama-3.1-8B"), models.resolve("EAGLE-Llama-3-70B"), gpus.get_gpu("H100-SXM"),
                      method="eagle")
    assert not b.fits and "hidden size 8192" in b.reasons[0]
    assert memory.finding(b).startswith("Does not fit: EAGLE-Llama-3-70B drafts from hidden size 8192")
    ok = memory.budget(models.resolve("Llama-3.1-8B"), models.resolve("EAGLE3-Llama-3.1-8B"),
                       gpus.get_gpu("H100-SXM"), method="eagle3")
    assert ok.fits
    assert main(["memory", "--target", "Llama-3.1-8B", "--draft", "EAGLE-Llama-3-70B", "--method", "eagle", "--gpu",
                 "H100-SXM", "--json"]) == 1  # refused with the parameters (StepParams._head_fits_target)
    out = capsys.readouterr()
    assert "hidden size 8192" in json.loads(out.out)["error"]["problem"] and "hidden size 8192" in out.err


def test_drafts_names_why_a_head_of_another_target_is_unusable(capsys):
    assert main(["drafts", "--target", "Llama-3.1-8B", "--candidates", "EAGLE-Llama-3-70B"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("No usable draft for Llama-3.1-8B: EAGLE-Llama-3-70B drafts from hidden size 8192")


def test_check_pair_refuses_a_head_of_another_target_for_parameter_validation():
    with pytest.raises(ValueError, match="hidden size 8192.*; give draft_model a head trained for Llama-3.1-8B"):
        drafts.check_pair("Llama-3.1-8B", "EAGLE-Llama-3-70B", "eagle")
    drafts.check_pair("Llama-3.1-8B", "EAGLE3-Llama-3.1-8B", "eagle3")
    drafts.check_pair("Llama-3.1-8B", "no-such-model", "eagle")  # left to the model checks
    drafts.check_pair("Llama-3.1-8B", "EAGLE-Llama-3-70B", "eagle", mode="external")  # not ours to start


def test_predict_with_a_head_of_another_target_labels_rows_not_servable(capsys):
    assert main(["predict", "--target", "Llama-3.1-8B", "--draft", str(HEADS / "EAGLE-LLaMA3-Instruct-70B"),
                 "--gpu", "H100-SXM", "--acceptance", "0.7", "--batch-sizes", "1"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("vLLM would not start this configuration on H100-SXM") and "(not servable)" in out.out
    assert out.err.count("hidden size 8192") == 1  # warned once, not twice


# -- item 12: a local target gets catalog drafts, or is told to list its own -------------------------------------
def test_a_local_copy_of_a_catalog_model_gets_its_catalog_drafts(tmp_path, capsys):
    local = _model_dir(tmp_path / "Meta-Llama-3.1-8B-Instruct", LLAMA_8B_CONFIG)
    target = models.resolve(str(local))
    assert drafts.catalog_twin(target).name == "Llama-3.1-8B"
    names = [c.name for c in drafts.candidates_for(target, [], "")]
    assert {"EAGLE3-Llama-3.1-8B", "EAGLE-Llama-3.1-8B", "Llama-3.2-1B"} <= set(names)
    assert main(["drafts", "--target", str(local), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["best"] == "EAGLE3-Llama-3.1-8B" and "eagle3" in data["target_methods"]
    assert any("matches catalog Llama-3.1-8B" in r for r in data["candidates"][0]["reasons"])


def test_a_local_target_of_the_catalogs_family_gets_same_vocab_drafts(tmp_path):
    cfg = {**LLAMA_8B_CONFIG, "num_hidden_layers": 40, "hidden_size": 5120, "num_attention_heads": 40}
    target = models.resolve(str(_model_dir(tmp_path / "my-llama-13b", cfg)))
    assert drafts.catalog_twin(target) is None
    names = [c.name for c in drafts.candidates_for(target, [], "")]
    assert "Llama-3.2-1B" in names and not any(models.from_catalog(n).eagle_head for n in names)


def test_a_local_target_the_catalog_does_not_know_is_told_to_list_drafts(tmp_path, capsys):
    cfg = {**LLAMA_8B_CONFIG, "model_type": "olmo2", "architectures": ["Olmo2ForCausalLM"], "vocab_size": 100352}
    local = _model_dir(tmp_path / "OLMo-2-7B", cfg)
    assert main(["drafts", "--target", str(local)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "a local target" in first and "--candidates" in first and "draft_candidates" in first


# -- item 14: Git LFS pointers and Hugging Face cache entries ----------------------------------------------------
def test_a_git_lfs_pointer_in_place_of_the_weights_is_named(tmp_path):
    d = _model_dir(tmp_path / "l8lfs", LLAMA_8B_CONFIG)
    (d / "model-00001-of-00002.safetensors").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "a" * 64 + "\nsize 4976698672\n")
    with pytest.raises(ModelError) as exc:
        models.resolve(str(d))
    assert "Git LFS pointer, not the weights" in exc.value.problem
    assert "git lfs pull" in exc.value.fix and "huggingface-cli download" in exc.value.fix


def test_a_real_safetensors_header_still_reads(tmp_path):
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]}}).encode()
    f = tmp_path / "model.safetensors"
    f.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 12)
    assert models.read_safetensors_header(f)["w"]["shape"] == [2, 3]


def test_a_hugging_face_cache_entry_resolves_to_the_snapshot_refs_main_names(tmp_path):
    entry = tmp_path / "hub" / "models--meta-llama--Llama-3.1-8B-Instruct"
    _model_dir(entry / "snapshots" / "0e9e39f2", LLAMA_8B_CONFIG)
    _model_dir(entry / "snapshots" / "11111111", {**LLAMA_8B_CONFIG, "num_hidden_layers": 2})
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text("0e9e39f2\n")
    spec = models.resolve(str(entry))
    assert spec.name == "Llama-3.1-8B-Instruct" and spec.num_layers == 32 and spec.path.endswith("0e9e39f2")
    (entry / "refs" / "main").unlink()
    with pytest.raises(ModelError) as exc:
        models.resolve(str(entry))
    assert "2 snapshots" in exc.value.problem and "snapshots" in exc.value.fix


# -- item 18: --context-length 0 refused by both commands; no stray stderr line -------------------------------
@pytest.mark.parametrize("command", [
    ["predict", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM", "--acceptance", "0.7"],
    ["memory", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM"],
])
def test_context_length_0_is_refused_by_predict_and_memory(capsys, command):
    assert main([*command, "--context-length", "0"]) != 0
    err = capsys.readouterr().err
    assert "--context-length 0" in err and "no request" in err


def test_memory_without_context_length_still_takes_max_model_len(capsys):
    assert main(["memory", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM", "--max-model-len", "2048", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["context_length"] == 2048


def test_predict_text_output_has_no_stray_crossover_line_on_stderr(capsys):
    assert main(["predict", "--target", "Llama-3.1-8B", "--draft", "Llama-3.2-1B", "--gpu", "H100-SXM",
                 "--acceptance", "0.7", "--batch-sizes", "1,256"]) == 0
    out = capsys.readouterr()
    assert "crossover_batch_size" not in out.err
    assert "wins up to batch" in out.out or "stops winning at batch" in out.out  # the crossover, in the finding
