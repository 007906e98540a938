"""New-user QA, problem 7: step 20's "does not fit" reaches the verdict, summary.md and the report; num_gpus must
be a multiple of tensor_parallel_size; a GPU-mode profile gets vLLM's gpu_memory_utilization, not the embedded 0.3."""

from __future__ import annotations

import pytest

from playbook.cli import main
from playbook.helpers import evidence, sections, steps
from playbook.helpers.errors import ParameterError
from playbook.helpers.params import (
    STEP_MODELS,
    MemoryParams,
    ReportParams,
    resolve_parameters,
    validate_params,
)
from tests.support.decide_fixtures import load, make_run, sweep

M3 = dict(mode="managed", target_model="Llama-3.1-70B", draft_model="Llama-3.2-1B", gpu="H100-SXM",
          num_gpus=2, tensor_parallel_size=2, max_model_len=4096, context_length=4096)


def _run_where_the_target_does_not_fit(tmp_path, **kw):
    run = make_run(tmp_path / "run", **kw)
    p = MemoryParams(run_dir=str(run.path), gpu_memory_utilization=0.3, **M3)  # 66.9 GiB/GPU of weights in 23.9
    assert not steps.memory(p, run).budget.fits
    return run


def test_a_target_that_does_not_fit_is_a_blocking_reason_in_the_verdict_and_summary(tmp_path):
    run = _run_where_the_target_does_not_fit(tmp_path)
    result = steps.report(ReportParams(run_dir=str(run.path), **{k: v for k, v in M3.items()
                                                                   if k in ReportParams.model_fields}), run)
    d = result.decision
    rule = next(r for r in d.rules if r.name == "concurrency_lost_to_draft")
    assert rule.verdict == "no-go" and "does not fit" in rule.reason and "23.88 GiB" in rule.reason
    assert d.verdict == "NO-GO"
    summary = (run.path / "summary.md").read_text()
    assert "does not fit" in summary and "even the target alone" in summary
    assert "run the memory budget (step 20)" not in summary  # step 20 ran: its headline says what it found
    assert "| Concurrency the draft costs | does not fit" in summary or "Concurrency the draft costs: does not fit" in summary


def test_the_memory_section_shows_the_finding_not_a_zero_percent_cost(tmp_path):
    run = _run_where_the_target_does_not_fit(tmp_path)
    html = sections.memory(run, evidence.gather(run, 0.2))
    assert "Does not fit" in html and "costs 0% of concurrency" not in html


def test_a_fitting_budget_keeps_the_concurrency_rule(tmp_path):
    run = make_run(tmp_path / "run", sweep_result=sweep(), load_result=load({1: (1.6, 1.4, 1.8)}))
    steps.memory(MemoryParams(run_dir=str(run.path), gpu_memory_utilization=0.9, **M3), run)
    d = steps.report(ReportParams(run_dir=str(run.path)), run).decision
    rule = next(r for r in d.rules if r.name == "concurrency_lost_to_draft")
    assert "does not fit" not in rule.reason and rule.numbers.get("loss") is not None


@pytest.mark.parametrize("num_gpus, tp, said", [(3, 2, "num_gpus 3 is not a multiple of tensor_parallel_size 2"),
                                                (1, 2, "tensor_parallel_size 2 needs 2 GPUs")])
def test_num_gpus_must_be_a_multiple_of_tp(num_gpus, tp, said):
    with pytest.raises(ParameterError) as err:
        validate_params(MemoryParams, {**M3, "num_gpus": num_gpus, "tensor_parallel_size": tp})
    assert said in str(err.value) and "e.g. num_gpus 2" in str(err.value)
    assert validate_params(MemoryParams, {**M3, "num_gpus": 4, "tensor_parallel_size": 2}).num_gpus == 4


def test_run_refuses_num_gpus_3_with_tp_2_before_any_run_directory(capsys, runs_dir):
    args = [x for k, v in M3.items() for x in ("-p", f"{k}={v}")]
    assert main(["run", *args, "-p", "num_gpus=3", "--only", "20", "--runs-dir", str(runs_dir)]) == 1
    assert "not a multiple of tensor_parallel_size 2" in capsys.readouterr().err
    assert not [p for p in runs_dir.iterdir() if p.is_dir()]


def test_a_gpu_mode_takes_vllms_gpu_memory_utilization_unless_the_profile_sets_it():
    managed = resolve_parameters({k: v for k, v in M3.items()}, {}, list(STEP_MODELS))
    assert {v.get("gpu_memory_utilization") for v in managed.values()} == {0.9}
    external = resolve_parameters({"mode": "external", "spec_url": "http://127.0.0.1:9"}, {}, ["20_memory"])
    assert external["20_memory"]["gpu_memory_utilization"] == 0.9
    own = resolve_parameters({**M3, "gpu_memory_utilization": 0.5}, {}, ["20_memory"])
    assert own["20_memory"]["gpu_memory_utilization"] == 0.5
    embedded = resolve_parameters({}, {}, ["20_memory"])  # the notebook keeps its embedded default (0.3)
    assert "gpu_memory_utilization" not in embedded["20_memory"]
    assert MemoryParams().gpu_memory_utilization == 0.3


def test_resuming_a_run_recorded_without_it_keeps_what_it_ran_with():
    from playbook.helpers.params import as_recorded

    assert as_recorded({"mode": "managed"})["gpu_memory_utilization"] == 0.3
    assert as_recorded({"mode": "managed", "gpu_memory_utilization": 0.9})["gpu_memory_utilization"] == 0.9
    assert "gpu_memory_utilization" not in as_recorded({"mode": "embedded"})


def test_does_not_fit_names_the_nearest_layout_and_precision_that_do(capsys):
    """A 70B in BF16 on one A100-80GB: 131 GiB of weights. The finding says what fits (TP 2, or FP8 weights on one
    GPU); the 405B at TP 8 fits at TP 16 over two nodes of 8; a context beyond the model's is not a memory problem."""
    assert main(["memory", "--target", "Llama-3.1-70B", "--gpu", "A100-80GB", "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert not out["fits"] and len(out["fits_with"]) == 2
    assert out["fits_with"][0].startswith("fits with tensor_parallel_size 2 (2 GPUs): 65.7 GiB of weights per GPU")
    assert out["fits_with"][1].startswith("fits at tensor_parallel_size 1 with the target at fp8")
    assert out["finding"].endswith(out["fits_with"][0])
    assert main(["memory", "--target", "Llama-3.1-405B", "--gpu", "H100-SXM", "--num-gpus", "8", "--tp", "8"]) == 0
    text = capsys.readouterr().out
    assert "  + fits with tensor_parallel_size 16 (16 GPUs, 2 nodes of 8)" in text
    assert main(["memory", "--target", "Llama-3.1-70B-FP8", "--gpu", "H100-SXM", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)  # a pre-quantized FP8 checkpoint: no other precision offered
    assert out["fits"] or not any("target at" in o for o in out["fits_with"])
    from playbook.helpers import gpus, memory, models

    target, gpu = models.resolve("Llama-3.1-70B"), gpus.get_gpu("H100-SXM")
    fits = memory.budget(target, None, gpu, method="ngram", num_gpus=4, tensor_parallel_size=4)
    assert fits.fits and memory.fit_options(fits, target, None, gpu, method="ngram", num_gpus=4,
                                            tensor_parallel_size=4) == []
    too_long = dict(method="ngram", num_gpus=1, tensor_parallel_size=1, max_model_len=200_000)
    refused = memory.budget(target, None, gpu, **too_long)  # beyond the model's context: no layout fixes that
    assert not refused.fits and memory.fit_options(refused, target, None, gpu, **too_long) == []


def test_step_20_records_what_would_fit(tmp_path):
    run = _run_where_the_target_does_not_fit(tmp_path)
    res = steps.memory(MemoryParams(run_dir=str(run.path), gpu_memory_utilization=0.3, **M3), run)
    assert res.budget.fits_with and res.budget.fits_with[0].startswith("fits with tensor_parallel_size 8 (8 GPUs, 4 nodes of 2)")
    assert res.finding.endswith(res.budget.fits_with[0])
