"""helpers/steps.py on the steps that start no server: drafts, memory, quantization (matrix only), report.

Each step writes its result where the report reads it and returns the same model; the CLI commands
give the same numbers as the steps (one code path)."""

from __future__ import annotations

import json

import pytest

from playbook.cli import main
from playbook.helpers import steps
from playbook.helpers.artifacts import RunDir
from playbook.helpers.params import DraftsParams, MemoryParams, QuantizationParams, ReportParams
from playbook.helpers.schemas.drafts import DraftsResult
from playbook.helpers.schemas.memory import MemoryResult
from playbook.helpers.schemas.quantization import QuantizationResult
from tests.support.decide_fixtures import load, make_run, sweep


def test_drafts_on_the_embedded_pair_writes_the_ranking(fake_pair, tmp_path):
    run = RunDir(tmp_path / "run")
    result = steps.drafts(DraftsParams(run_dir=str(run.path)), run)
    assert result.best == "embedded-draft" and result.candidates[0].same_tokenizer
    assert run.read_json("10_drafts.json", DraftsResult) == result


def test_drafts_of_a_catalog_target_are_its_smaller_siblings_as_the_cli_ranks_them(tmp_path, capsys):
    # no draft configured (method ngram: QA5 refuses draft_model without one): step 10 ranks the catalog siblings
    p = DraftsParams(run_dir=str(tmp_path / "run"), mode="managed", target_model="Llama-3.3-70B", draft_model="",
                     method="ngram")
    result = steps.drafts(p, RunDir(p.run_dir))
    names = [c.name for c in result.candidates]
    assert "Llama-3.2-1B" in names and "Llama-3.3-70B" not in names and "Qwen2.5-0.5B" not in names
    assert main(["drafts", "--target", "Llama-3.3-70B", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in cli["candidates"]] == [c.name for c in result.candidates]
    assert cli["best"] == result.best


def test_memory_on_the_embedded_pair(fake_pair, tmp_path):
    run = RunDir(tmp_path / "run")
    result = steps.memory(MemoryParams(run_dir=str(run.path)), run)
    assert result.budget.kv_cache_tokens == 931_968 and result.budget.fits and result.budget.gpu == "cpu"
    assert result.budget.draft == "embedded-draft" and result.matrix
    assert run.read_json("20_memory.json", MemoryResult) == result
    assert run.artifact(result.plot).stat().st_size > 1000


def test_memory_of_a_catalog_pair_matches_the_cli(tmp_path, capsys):
    p = MemoryParams(run_dir=str(tmp_path / "run"), mode="managed", target_model="Llama-3.1-70B",
                     draft_model="Llama-3.2-1B", gpu="H100-SXM", num_gpus=2, tensor_parallel_size=2,
                     max_model_len=4096, context_length=4096, gpu_memory_utilization=0.9)
    result = steps.memory(p, RunDir(p.run_dir))
    b = result.budget
    assert b.fits and not b.kv_space_fixed and b.max_concurrency_without_draft > b.max_concurrency
    assert main(["memory", "--target", "Llama-3.1-70B", "--draft", "Llama-3.2-1B", "--gpu", "H100-SXM", "--tp", "2",
                 "--max-model-len", "4096", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    for key in ("kv_cache_tokens", "max_concurrency", "max_concurrency_without_draft", "target_weights_gib",
                "draft_weights_gib", "concurrency_at_context"):
        assert cli[key] == getattr(b, key), key


def test_budget_setup_loads_no_draft_for_draft_free_methods():
    s = steps.budget_setup(MemoryParams(mode="managed", target_model="Llama-3.1-8B", draft_model="Llama-3.2-1B",
                                        method="ngram", gpu="L4"))
    assert s.draft is None and s.kwargs["method"] == "ngram" and s.kwargs["kv_cache_gib"] == 0.0  # not the CPU backend


def test_quantization_matrix_without_measuring(fake_pair, tmp_path):
    run = RunDir(tmp_path / "run")
    result = steps.quantization(QuantizationParams(run_dir=str(run.path), measure_acceptance=False), run)
    assert result.recommended == "bf16/bf16" and not result.acceptance and result.finding
    assert run.read_json("30_quantization.json", QuantizationResult) == result


def test_report_decides_from_the_run_directory(tmp_path):
    run = make_run(tmp_path / "run", sweep_result=sweep(),
                   load_result=load({1: (1.6, 1.4, 1.8), 4: (1.3, 1.15, 1.45), 16: (0.8, 0.7, 0.9)}))
    p = ReportParams(run_dir=str(run.path), expected_peak_concurrency=16, mode="managed",
                     target_model="/models/target", draft_model="/models/draft")
    result = steps.report(p, run)
    d = result.decision
    assert d.verdict == "GO WITH LIMITS" and "vllm serve /models/target" in d.recommended.launch_command
    assert json.loads((run.path / "decision.json").read_text()) == d.model_dump(mode="json")
    assert (run.path / "summary.md").read_text().startswith(f"## Speculative decoding: **{d.verdict}**")
    assert result.evidence.acceptance_production == pytest.approx(0.75)
    assert result.prediction is not None and result.check is not None and d.prediction
    assert d.monitoring.get("alerts")


def test_report_with_only_preflight_is_inconclusive(tmp_path):
    run = make_run(tmp_path / "run")
    result = steps.report(ReportParams(run_dir=str(run.path)), run)
    assert result.decision.verdict == "INCONCLUSIVE" and result.decision.measure_next
    assert result.prediction is None and result.check is None


def test_playbook_report_gives_a_verdict_even_when_the_kernel_cannot_render(tmp_path, monkeypatch, capsys):
    run = make_run(tmp_path / "run", sweep_result=sweep(), load_result=load({1: (1.6, 1.4, 1.8)}))

    def no_kernel(*a, **k):
        raise RuntimeError("No such kernel named python3")

    monkeypatch.setattr("playbook.commands.report.execute_step", no_kernel)
    assert main(["report", str(run.path), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == json.loads((run.path / "decision.json").read_text())["verdict"] and out["report"] is None
    assert (run.path / "summary.md").exists() and not (run.path / "report.html").exists()
