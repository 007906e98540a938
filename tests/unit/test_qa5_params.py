"""Profiles and parameters as a new user copies environments/*.yaml and edits them (QA round 5, report B): each
problem is refused before any work with a message naming the parameter and the fix, by the same validation in
`playbook run`, `playbook memory --profile` and the notebooks."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest

from playbook.cli import main
from playbook.helpers.errors import ParameterError, ProfileError
from playbook.helpers.params import (
    STEP_MODELS,
    LoadParams,
    MemoryParams,
    PreflightParams,
    ReportParams,
    StepParams,
    SweepParams,
    load_profile,
    resolve_parameters,
    validate_params,
)
from playbook.resources import profiles_dir
from tests.support import tiny_models

ENVIRONMENTS = Path(profiles_dir())
BASE = ENVIRONMENTS / "h100x2-llama70b-fp8.yaml"
TARGET_70B, DRAFT_8B = "RedHatAI/Meta-Llama-3.1-70B-Instruct-FP8", "RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8"


def _base_with(tmp_path: Path, **changes) -> Path:
    """BASE (the 70B FP8 example) with some lines changed, as the QA tester wrote them (YAML text per value)."""
    lines = [ln for ln in BASE.read_text().splitlines() if ln.split(":", 1)[0] not in changes]
    path = tmp_path / "p.yaml"
    path.write_text("\n".join(lines + [f"{k}: {v}" for k, v in changes.items()]) + "\n")
    return path


def _run_validation(path: Path, overrides: dict | None = None) -> dict:
    """What `playbook run` validates before it makes a run directory (runner.run_playbook up to check_workloads)."""
    from playbook.helpers.params import with_mode_defaults
    from playbook.runner import (
        _absolute_model_paths,
        _absolute_workload_paths,
        _resolve,
        check_workloads,
        profile_values,
    )

    values = with_mode_defaults({**profile_values(path), **(overrides or {})})
    every = _resolve(_absolute_model_paths(_absolute_workload_paths(values)), list(STEP_MODELS), f"profile {path}")
    check_workloads(every)
    return every


def _error(capsys) -> str:
    return capsys.readouterr().err


# -- every shipped profile still validates ----------------------------------------------------------------------
@pytest.mark.parametrize("profile", sorted(p.name for p in ENVIRONMENTS.glob("*.yaml")))
def test_every_shipped_profile_validates_as_run_and_memory_read_it(profile, capsys):
    every = _run_validation(ENVIRONMENTS / profile)
    assert set(every) == set(STEP_MODELS)
    if load_profile(ENVIRONMENTS / profile).get("mode") == "managed":
        assert main(["memory", "--profile", str(ENVIRONMENTS / profile), "--json"]) == 0
        assert "fits" in json.loads(capsys.readouterr().out)


# -- 1: playbook memory --profile validates the profile as run does --------------------------------------------------
@pytest.mark.parametrize("key, quoted, plain", [
    ("kv_cache_gib", '"0"', "0"), ("kv_cache_gib", '"16"', "16"), ("tensor_parallel_size", '"2"', "2"),
    ("gpu_memory_utilization", '"0.92"', "0.92"), ("max_model_len", '"8192"', "8192"),
])
def test_memory_profile_converts_quoted_numbers_as_run_does(tmp_path, capsys, key, quoted, plain):
    """kv_cache_gib: "0" used to build a 1 GiB string ("0" * GiB), and a quoted tp a TypeError."""
    budgets = []
    for text in (quoted, plain):
        path = _base_with(tmp_path, **{key: text})
        assert main(["memory", "--profile", str(path), "--json"]) == 0
        budgets.append(json.loads(capsys.readouterr().out))
        assert _run_validation(path)["20_memory"][key] == float(plain)  # run reads the same file the same way
    assert budgets[0] == budgets[1]


@pytest.mark.parametrize("key, text, said", [
    ("gpu_memory_gib", '"80GB"', "gpu_memory_gib is in GiB: give 80"),
    ("max_model_len", "8k", "max_model_len counts tokens: give 8192"),
    ("tensor_parallel_size", "two", "tensor_parallel_size"),
    ("kv_cache_gib", "-1", "kv_cache_gib"),
])
def test_memory_profile_refuses_a_bad_value_naming_the_parameter_not_a_flag(tmp_path, capsys, key, text, said):
    path = _base_with(tmp_path, **{key: text})
    assert main(["memory", "--profile", str(path)]) == 1
    err = _error(capsys)
    assert said in err and f"parameter '{key}'" in err and f"profile read: {path}" in err
    assert "unexpected" not in err and "--" + key.replace("_", "-") not in err.split("fix:")[0]


# -- 2: a method that cannot use the configured draft ---------------------------------------------------------------
@pytest.mark.parametrize("changes, said", [
    ({"draft_model": '""'}, "method draft_model needs draft_model (a smaller model with the target's tokenizer), but "
                            "draft_model is empty"),
    ({"method": "eagle3"}, "Llama-3.1-8B-FP8 is not an EAGLE head, and method eagle3 drafts with a head"),
    ({"draft_model": TARGET_70B}, "not smaller than the target"),
    ({"method": "mtp"}, "ships no MTP layers"),
    ({"method": "eagle3", "draft_model": '""'}, "method eagle3 needs draft_model (an EAGLE head trained for the target)"),
])
def test_a_method_that_cannot_use_the_draft_is_refused_before_any_step(tmp_path, changes, said):
    with pytest.raises(ParameterError) as exc:
        _run_validation(_base_with(tmp_path, **changes))
    assert said in exc.value.problem
    assert any(fix in exc.value.problem for fix in ("method ngram or suffix", "set method: draft_model"))


def test_each_refusal_names_its_fix():
    def problem(**values) -> str:
        with pytest.raises(ParameterError) as exc:
            validate_params(StepParams, {"mode": "managed", **values})
        return exc.value.problem

    assert "for no draft use method ngram or suffix" in problem(target_model=TARGET_70B, draft_model="")
    assert "set method: draft_model to use Llama-3.1-8B-FP8 as a draft model" in problem(
        target_model=TARGET_70B, draft_model=DRAFT_8B, method="eagle")
    assert "`playbook drafts --target Llama-3.1-70B-FP8` ranks" in problem(target_model=TARGET_70B,
                                                                            draft_model=TARGET_70B)
    assert "use method ngram or suffix (no draft)" in problem(target_model="Llama-3.1-70B", method="mtp")
    # an EAGLE-3 head given method eagle: the head's own method
    assert "set method: eagle3" in problem(target_model="Llama-3.1-8B", draft_model="EAGLE3-Llama-3.1-8B",
                                           method="eagle")
    # another vocabulary: vLLM's draft_model refuses it unless the speculative config says use_heterogeneous_vocab
    assert "vocab_size" in problem(target_model="Llama-3.1-8B", draft_model="Qwen3-0.6B")


def test_pairs_vllm_serves_still_validate():
    for values in ({"target_model": TARGET_70B, "draft_model": DRAFT_8B},
                   {"target_model": TARGET_70B, "draft_model": "", "method": "ngram"},
                   {"target_model": TARGET_70B, "draft_model": TARGET_70B, "method": "suffix"},  # no draft used
                   {"target_model": "Llama-3.1-8B", "draft_model": "EAGLE3-Llama-3.1-8B", "method": "eagle3"},
                   {"target_model": "Llama-3.1-8B", "draft_model": "Llama-3.2-1B"}):
        validate_params(StepParams, {"mode": "managed", **values})


def test_the_report_decides_on_a_recorded_pair_without_refusing_it():
    """A report starts no server: an imported run (mode managed, no draft named in the files) is still decided on,
    while `playbook run` refuses the same values with every other step's parameters."""
    values = {"mode": "managed", "target_model": TARGET_70B, "draft_model": ""}
    validate_params(ReportParams, values)
    with pytest.raises(ParameterError, match="method draft_model needs draft_model"):
        resolve_parameters(values, {}, ["90_report"])


def test_external_mode_is_not_refused_and_step_10_says_it(tmp_path):
    """External servers were configured by whoever started them; method/draft_model only describe them."""
    from playbook.helpers import steps
    from playbook.helpers.params import DraftsParams

    p = validate_params(DraftsParams, {"mode": "external", "spec_url": "http://127.0.0.1:1",
                                       "target_model": TARGET_70B, "draft_model": DRAFT_8B, "method": "eagle3"})
    _, _, result = steps.rank_drafts(p)
    (warning,) = result.warnings
    assert "not an EAGLE head" in warning and "set method and draft_model to describe it" in warning


def test_step_10_quotes_why_the_configured_draft_is_unusable_not_what_is_right_about_it():
    from playbook.helpers import drafts, models

    result = drafts.rank(models.resolve(TARGET_70B), [models.resolve(TARGET_70B)])
    assert result.finding.startswith("No usable draft for Llama-3.1-70B-FP8: not smaller than the target")


def test_memory_command_refuses_the_same_pairs_naming_its_flags(capsys):
    assert main(["memory", "--target", "Llama-3.1-70B", "--draft", "Llama-3.1-8B", "--method", "eagle3",
                 "--gpu", "H100-SXM", "--tp", "2"]) == 1
    err = _error(capsys)
    assert "Llama-3.1-8B is not an EAGLE head" in err and "method is --method" in err
    assert main(["memory", "--target", "Llama-3.1-8B", "--gpu", "H100-SXM", "--json"]) == 0  # no draft: budgeted alone


# -- 3: requests that cannot fit max_model_len ------------------------------------------------------------------------
def test_max_tokens_that_leave_no_room_for_a_prompt_are_refused():
    for model in (SweepParams, LoadParams):
        with pytest.raises(ParameterError, match="max_tokens 2000 leaves no room for a prompt within max_model_len 1024"):
            validate_params(model, {"max_tokens": 2000})
        validate_params(model, {"max_tokens": 2000, "max_model_len": 4096})
    with pytest.raises(ParameterError, match="max_tokens 20000 leaves no room"):
        _run_validation(BASE, {"max_tokens": 20000})


def test_external_servers_are_checked_against_a_max_model_len_the_user_gave():
    ext = {"mode": "external", "baseline_url": "http://127.0.0.1:1", "spec_url": "http://127.0.0.1:2"}
    validate_params(LoadParams, {**ext, "max_tokens": 2048})  # max_model_len left at the default: theirs to refuse
    with pytest.raises(ParameterError, match="must be your servers' --max-model-len"):
        validate_params(LoadParams, {**ext, "max_tokens": 5000, "max_model_len": 4096})


@pytest.mark.parametrize("workload, max_model_len, said", [
    ("long_context[in=4096]", 1024, "asks for prompts of up to 4096 tokens (in=4096) and 64 output tokens: 4160 "
                                    "exceeds max_model_len 1024"),
    ("long_context", 768, "its default 768-token prompts"),
    ("structured:0.5@0.1,chat[in=900,out=200]:0.5@0.5", 1024, "in=900) and 200 output tokens"),
])
def test_workload_lengths_beyond_max_model_len_are_refused(workload, max_model_len, said):
    from playbook.helpers.errors import WorkloadError

    with pytest.raises(WorkloadError) as exc:
        resolve_and_check(workload=workload, max_model_len=max_model_len, context_length=max_model_len)
    assert said in exc.value.problem and "HTTP 400" in exc.value.problem
    resolve_and_check(workload=workload, max_model_len=8192)


def resolve_and_check(**values):
    from playbook.runner import check_workloads

    check_workloads(resolve_parameters({}, values, ["50_load"]))


def test_shipped_prompts_are_checked_too_when_max_tokens_leaves_little_room():
    from playbook.helpers.errors import WorkloadError

    with pytest.raises(WorkloadError, match="prompt\\(s\\) of summarization leave no room for 1000 output tokens"):
        resolve_and_check(workload="summarization", max_tokens=1000, max_model_len=1024)


def test_context_length_beyond_max_model_len_is_refused_by_run_as_by_memory(tmp_path, capsys):
    with pytest.raises(ParameterError) as exc:
        _run_validation(_base_with(tmp_path, context_length=16384))
    assert "context_length 16384 exceeds max_model_len 8192: a request cannot outgrow the server's context" \
        in exc.value.problem
    assert main(["memory", "--profile", str(tmp_path / "p.yaml")]) == 1
    assert "context_length 16384 exceeds max_model_len 8192" in _error(capsys)
    with pytest.raises(ParameterError, match="context_length 4096 exceeds max_model_len 1024"):
        validate_params(ReportParams, {"context_length": 4096})


# -- 4: keys indented under description --------------------------------------------------------------------------
def test_a_description_holding_keys_is_refused_naming_them(tmp_path):
    path = tmp_path / "nd2.yaml"
    path.write_text("mode: embedded\ndescription:\n  num_speculative_tokens: 2\n  slo_tpot_ms: 25\n")
    with pytest.raises(ProfileError) as exc:
        load_profile(path)
    assert "description holds a mapping: the keys under it (num_speculative_tokens, slo_tpot_ms)" in exc.value.problem
    assert "left margin" in exc.value.fix
    path.write_text("description:\n  - seed: 2\n")
    with pytest.raises(ProfileError, match="description holds a list with a mapping: the keys under it \\(seed\\)"):
        load_profile(path)
    for text in ("description: 'two words'\nseed: 1\n", "description: [1, 2]\nseed: 1\n", "description:\nseed: 1\n"):
        path.write_text(text)
        assert load_profile(path) == {"seed": 1}


# -- 5: SLOs given in seconds -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, value, said", [
    ("slo_tpot_ms", 0.04, "did you give seconds? 0.04 s is slo_tpot_ms: 40"),
    ("slo_tpot_ms", 0.5, "0.5 s is slo_tpot_ms: 500"),
    ("slo_ttft_ms", 2, "did you give seconds? 2 s is slo_ttft_ms: 2000"),
    ("slo_ttft_ms", 0.25, "0.25 s is slo_ttft_ms: 250"),
])
def test_an_slo_no_server_meets_is_refused_as_seconds(name, value, said):
    with pytest.raises(ParameterError, match=re.escape(said)):
        validate_params(ReportParams, {name: value})


def test_real_slos_and_none_are_accepted():
    for values in ({"slo_tpot_ms": 0, "slo_ttft_ms": 0}, {"slo_tpot_ms": 1}, {"slo_tpot_ms": 40, "slo_ttft_ms": 5},
                   {"slo_ttft_ms": 200}):
        validate_params(ReportParams, values)


# -- 6: hints that point the right way ------------------------------------------------------------------------
def test_no_for_a_draft_suggests_the_empty_string_not_a_model_named_false():
    with pytest.raises(ParameterError) as exc:
        validate_params(PreflightParams, {"draft_model": False})
    assert 'draft_model: "" for no draft' in exc.value.problem and '"False"' not in exc.value.problem
    with pytest.raises(ParameterError, match='quote the word you typed'):
        validate_params(PreflightParams, {"served_model_name": True})


@pytest.mark.parametrize("model, name, value", [
    (SweepParams, "production_temperature", 2.5), (SweepParams, "production_temperature", 70),
    (LoadParams, "target_ci_halfwidth", 10), (LoadParams, "temperature", 50),
])
def test_no_percentage_guess_for_what_is_not_a_fraction(model, name, value):
    with pytest.raises(ParameterError) as exc:
        validate_params(model, {name: value})
    assert "percentage" not in exc.value.problem


@pytest.mark.parametrize("model, name, value, said", [
    (PreflightParams, "gpu_memory_utilization", 90, "give 0.9"), (MemoryParams, "max_draft_share", 15, "give 0.15"),
    (ReportParams, "max_ttft_rise", 25, "give 0.25"), (LoadParams, "lossless_alpha", 5, "give 0.05"),
])
def test_a_fraction_given_as_a_percentage_gets_the_fraction(model, name, value, said):
    with pytest.raises(ParameterError, match=f"if {value} is a percentage, {said}"):
        validate_params(model, {name: value})


@pytest.mark.parametrize("name, meant", [
    ("model", "target_model"), ("tp", "tensor_parallel_size"), ("pp", "pipeline_parallel_size"),
    ("dp", "data_parallel_size"), ("max-model-len", "max_model_len"), ("--tensor-parallel-size", "tensor_parallel_size"),
])
def test_an_unknown_name_suggests_the_parameter_it_means(name, meant):
    with pytest.raises(ParameterError) as exc:
        resolve_parameters({name: 1}, {}, [])
    assert f"'{name}' (did you mean {meant}?)" in exc.value.problem
    assert len(exc.value.fix) < 200 and "playbook params" in exc.value.fix


@pytest.mark.parametrize("name, flag", [("max_num_seqs", "--max-num-seqs"), ("dtype", "--dtype"),
                                        ("quantization", "--quantization"), ("enforce-eager", "--enforce-eager")])
def test_a_vllm_engine_flag_goes_to_extra_server_args(name, flag):
    with pytest.raises(ParameterError) as exc:
        resolve_parameters({name: 1}, {}, [])
    assert f"a vLLM flag: put it in extra_server_args, e.g. extra_server_args: [{flag}, VALUE]" in exc.value.problem


@pytest.mark.parametrize("name, text, said", [
    ("gpu_memory_gib", "80GB", "gpu_memory_gib is in GiB: give 80, without the unit"),
    ("max_model_len", "8k", "max_model_len counts tokens: give 8192"),
    ("slo_tpot_ms", "500ms", "slo_tpot_ms is in milliseconds: give 500"),
    ("slo_ttft_ms", "2s", "slo_ttft_ms is in milliseconds: give 2000"),
    ("server_start_timeout_s", "30m", "server_start_timeout_s is in seconds: give 1800"),
    ("gpu_memory_utilization", "90%", "gpu_memory_utilization is a fraction of 1, 0.9 for 90%: give 0.9"),
    ("max_tokens", "1.5k", "max_tokens counts tokens: give 1536"),
    ("requests_per_level", "8x", "requests_per_level is a plain number: give the number alone, without 'x'"),
])
def test_a_value_with_a_unit_gets_the_unit_the_name_implies_and_the_number(name, text, said):
    with pytest.raises(ParameterError) as exc:
        resolve_parameters({name: text}, {}, [])
    assert said in exc.value.problem


# -- 7: extra_server_args as a YAML list with numbers -----------------------------------------------------------
def test_numbers_in_an_extra_server_args_list_are_text(tmp_path):
    assert StepParams(extra_server_args=["--max-num-seqs", 64]).extra_server_args == ["--max-num-seqs", "64"]
    assert StepParams(extra_server_args=["--x", 0.5]).extra_server_args == ["--x", "0.5"]
    path = tmp_path / "x.yaml"
    path.write_text("extra_server_args:\n  - --max-num-seqs\n  - 64\n")
    assert _run_validation(path)["00_preflight"]["extra_server_args"] == ["--max-num-seqs", "64"]
    with pytest.raises(ParameterError, match="Input should be a valid string"):
        validate_params(PreflightParams, {"extra_server_args": ["--enforce-eager", True]})  # a boolean is no value


# -- 8: model paths in a profile ----------------------------------------------------------------------------------
@pytest.fixture
def local_models(tmp_path):
    root = tmp_path / "ws"
    (root / "models").mkdir(parents=True)
    for name, kw in (("tiny-target", dict(layers=4, hidden=128, heads=4, kv=2)), ("tiny-draft", dict(layers=1))):
        tiny_models.llama_dir(root / "models", name, **kw)
    (root / "prof").mkdir()
    return root


def test_a_relative_model_path_is_read_from_the_profiles_directory(local_models, monkeypatch):
    from playbook.runner import profile_values

    prof = local_models / "prof" / "local.yaml"
    prof.write_text("mode: managed\ntarget_model: ../models/tiny-target\ndraft_model: ../models/tiny-draft\n")
    for cwd in (local_models, local_models.parent, Path("/")):
        monkeypatch.chdir(cwd)
        values = profile_values(prof)
        assert values["target_model"] == str(local_models / "models" / "tiny-target")
        assert values["draft_model"] == str(local_models / "models" / "tiny-draft")


def test_a_path_found_only_under_the_current_directory_is_taken_with_a_warning(local_models, monkeypatch):
    from playbook.runner import profile_values

    prof = local_models / "prof" / "local2.yaml"
    prof.write_text("mode: managed\ntarget_model: models/tiny-target\n")
    monkeypatch.chdir(local_models)
    with pytest.warns(UserWarning, match="taken relative to the current directory"):
        assert profile_values(prof)["target_model"] == str(local_models / "models" / "tiny-target")


def test_environment_variables_are_expanded_or_the_unset_one_named(local_models, monkeypatch):
    from playbook.runner import profile_values

    prof = local_models / "prof" / "local3.yaml"
    prof.write_text("mode: managed\ntarget_model: $QA5_MODELS/tiny-target\ndraft_model: ${QA5_MODELS}/tiny-draft\n")
    monkeypatch.setenv("QA5_MODELS", str(local_models / "models"))
    assert profile_values(prof)["draft_model"] == str(local_models / "models" / "tiny-draft")
    monkeypatch.delenv("QA5_MODELS")
    with pytest.raises(ParameterError) as exc:
        profile_values(prof)
    assert "uses the environment variable $QA5_MODELS, which is not set" in exc.value.problem
    assert "export QA5_MODELS=" in exc.value.fix


def test_a_model_path_that_does_not_exist_is_refused_before_the_run_directory(local_models, monkeypatch):
    from playbook.runner import run_playbook

    monkeypatch.chdir(local_models.parent)
    prof = local_models / "prof" / "typo.yaml"
    prof.write_text("mode: managed\ntarget_model: ../models/tiny-targte\ndraft_model: ''\nmethod: ngram\ngpu: cpu\n")
    runs = local_models / "runs"
    with pytest.raises(ParameterError) as exc:
        run_playbook(profile=str(prof), only=["20"], runs_dir=str(runs))
    assert (f"target_model '../models/tiny-targte' does not exist: no file or directory at "
            f"{local_models / 'models' / 'tiny-targte'} (read relative to the directory of profile {prof})"
            ) in exc.value.problem
    assert not runs.exists()
    prof.write_text("mode: managed\ntarget_model: ~/no-such-dir-qa5/t\n")
    with pytest.raises(ParameterError, match="~ expanded"):
        run_playbook(profile=str(prof), only=["20"], runs_dir=str(runs))
    assert not runs.exists()


def test_hub_ids_and_catalog_names_stay_as_given(local_models, monkeypatch):
    from playbook.runner import profile_values

    monkeypatch.chdir(local_models)
    prof = local_models / "prof" / "hub.yaml"
    prof.write_text(f"mode: managed\ntarget_model: {TARGET_70B}\ndraft_model: Llama-3.1-8B\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = profile_values(prof)
    assert (values["target_model"], values["draft_model"]) == (TARGET_70B, "Llama-3.1-8B")


def test_memory_profile_reads_relative_model_paths_from_the_profiles_directory(local_models, monkeypatch, capsys):
    monkeypatch.chdir(local_models.parent)
    prof = local_models / "prof" / "m.yaml"
    prof.write_text("mode: managed\ntarget_model: ../models/tiny-target\ndraft_model: ../models/tiny-draft\n"
                    "gpu: H100-SXM\nmax_model_len: 1024\ncontext_length: 1024\n")
    assert main(["memory", "--profile", str(prof), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["target"] == "tiny-target" and out["draft"] == "tiny-draft"


# -- 9: float | None is float in playbook params and the notebooks' cells ----------------------------------------
def test_an_optional_float_is_shown_as_float(capsys):
    from scripts.sync_params_cells import params_source, type_name

    assert type_name(float | None) == "float" and type_name(int | None) == "int" and type_name(list[float]) == "list[float]"
    for step, model in STEP_MODELS.items():
        nb = json.loads((Path(__file__).resolve().parents[2] / "notebooks" / f"{step}.ipynb").read_text())
        cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
        assert "".join(cell["source"]) == params_source(model)
        assert "gpu_memory_utilization: float = None  # vLLM --gpu-memory-utilization (None takes the mode's default" \
            in "".join(cell["source"])
        assert all(not c.get("outputs") and not c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code")
    assert main(["params", "20_memory", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["gpu_memory_utilization"]["type"] == "float"


# -- 10: GPU names ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, expected", [("H100-SXM5-80GB", "H100-SXM"), ("h100 sxm 80gb", "H100-SXM"),
                                            ("H100 94GB", "H100-NVL"), ("A100 40GB", "A100-40GB"),
                                            ("GH200 96GB", "GH200")])
def test_a_gpu_named_by_family_form_and_memory_resolves(name, expected):
    from playbook.helpers.gpus import get_gpu

    assert get_gpu(name).name == expected


def test_a_family_with_several_entries_names_them():
    from playbook.helpers.gpus import get_gpu

    with pytest.raises(ParameterError, match="'H100 80GB' names more than one GPU in the catalog: H100-SXM or H100-PCIe"):
        get_gpu("H100 80GB")
    with pytest.raises(ParameterError, match="closest: H100-SXM, H100-PCIe, H100-NVL"):
        get_gpu("H100 40GB")  # the family first, not the nearest spellings


def test_the_unknown_gpu_hint_names_the_profiles_parameter_or_the_flag(tmp_path, capsys):
    path = _base_with(tmp_path, gpu="H1000")
    with pytest.raises(ParameterError) as exc:
        _run_validation(path)
    assert "give gpu_memory_gib, its memory in GiB" in exc.value.problem and "--gpu-memory-gib" not in exc.value.problem
    assert main(["memory", "--profile", str(path)]) == 1
    err = _error(capsys)
    assert "give gpu_memory_gib" in err and "--gpu-memory-gib" not in err
    assert main(["memory", "--target", "Llama-3.1-8B", "--gpu", "H1000"]) == 1
    assert "give --gpu-memory-gib, its memory in GiB" in _error(capsys)
