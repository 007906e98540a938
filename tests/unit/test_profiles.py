"""The shipped example profiles: each validates, and step 20 (the memory step) says what its description says
(fits, or does not fit), with the profile's own values (issue 16.2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from playbook.helpers import steps
from playbook.helpers.artifacts import RunDir
from playbook.helpers.params import STEP_MODELS, MemoryParams, load_profile, resolve_parameters

PROFILES = sorted((Path(__file__).parents[2] / "environments").glob("*.yaml"))
GPU_PROFILES = [p for p in PROFILES if yaml.safe_load(p.read_text()).get("mode") == "managed"]


def description(path: Path) -> str:
    return yaml.safe_load(path.read_text())["description"]


def test_the_examples_issue_16_asks_for_are_shipped():
    names = {p.stem for p in GPU_PROFILES}
    assert {"h100x2-llama70b-fp8", "h200x2-llama70b-bf16", "h100x1-llama8b-eagle3",
            "h100x1-qwen3-30b-a3b-eagle3"} <= names
    assert [n for n in names if "does-not-fit" in n] == ["h100x2-llama70b-bf16-does-not-fit"]


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.stem)
def test_profile_validates_for_every_step(path):
    per_step = resolve_parameters(load_profile(path), {}, list(STEP_MODELS))
    assert set(per_step) == set(STEP_MODELS)


@pytest.mark.parametrize("path", GPU_PROFILES, ids=lambda p: p.stem)
def test_memory_step_matches_the_description(path, tmp_path):
    text = description(path)
    says_fits = text.startswith("fits:")
    assert says_fits != text.startswith("does not fit:"), f"{path.name}: description must start 'fits:' or 'does not fit:'"
    assert ("does-not-fit" in path.stem) == (not says_fits), "the file name says what the description says"
    values = {k: v for k, v in load_profile(path).items() if k in MemoryParams.model_fields}
    p = MemoryParams(**{**values, "run_dir": str(tmp_path)})
    result = steps.memory(p, RunDir(tmp_path))
    b = result.budget
    assert b.fits is says_fits, f"{path.name}: {b.reasons or 'fits'}"
    if says_fits:
        assert b.kv_cache_gib > 1 and b.max_concurrency >= 1
        if b.draft:  # the draft (or head) is budgeted, not dropped
            assert b.draft_weights_per_gpu_gib > 0 and b.kv_bytes_per_token_draft > 0
    else:
        assert "exceed the usable" in b.reasons[0]
    assert (tmp_path / "artifacts" / "20_memory.json").exists()


def test_quantized_profile_budgets_the_fp8_checkpoints(tmp_path):
    """The FP8 example resolves to the pre-quantized catalog entries and budgets them at FP8 (no mismatch warning)."""
    path = next(p for p in GPU_PROFILES if p.stem == "h100x2-llama70b-fp8")
    values = {k: v for k, v in load_profile(path).items() if k in MemoryParams.model_fields}
    p = MemoryParams(**{**values, "run_dir": str(tmp_path)})
    s = steps.budget_setup(p)
    assert (s.target.quantization, s.draft.quantization) == ("fp8", "fp8")
    b = steps.memory(p, RunDir(tmp_path)).budget
    assert 33 < b.target_weights_per_gpu_gib < 35 and not any("pre-quantized" in w for w in b.warnings)


@pytest.mark.parametrize("stem", ["h100x1-llama8b-eagle3", "h100x1-qwen3-30b-a3b-eagle3"])
def test_eagle3_profiles_use_a_head_of_the_target(stem):
    path = next(p for p in GPU_PROFILES if p.stem == stem)
    values = load_profile(path)
    p = MemoryParams(**{k: v for k, v in values.items() if k in MemoryParams.model_fields})
    s = steps.budget_setup(p)
    assert values["method"] == "eagle3" and s.draft is not None and s.draft.eagle_head
    assert s.draft.vocab_size == s.target.vocab_size and s.draft.num_layers == 1


@pytest.mark.parametrize("path", GPU_PROFILES, ids=lambda p: p.stem)
def test_memory_command_with_the_profile_says_what_its_description_says(path, capsys):
    """`playbook memory --profile X --json`, as a new user checks an example before copying it."""
    import json

    from playbook.cli import main

    assert main(["memory", "--profile", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fits"] is description(path).startswith("fits:"), out["finding"]
    assert main(["memory", "--profile", str(path), "--tp", "8", "--num-gpus", "8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tensor_parallel_size"] == 8, "a flag given wins over the profile"
