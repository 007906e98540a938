"""playbook import: real `vllm bench serve --save-result --save-detailed` files (made by
scripts/make_import_fixtures.py against the embedded servers) become a run directory the report
decides on; AIPerf's documented export format is read; bad files say what to do."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from playbook.helpers import steps
from playbook.helpers.artifacts import RunDir
from playbook.helpers.errors import ImportFileError
from playbook.helpers.importers import aiperf, guidellm, import_results, vllm_bench
from playbook.helpers.importers.common import sha256
from playbook.helpers.loadgen import NEAR_ZERO_GAP_MS, is_burst
from playbook.helpers.params import ReportParams
from playbook.helpers.schemas.load import LoadResult

FIX = Path(__file__).parent / "fixtures" / "import"
VB = FIX / "vllm_bench"


def _paced_tpots(data: dict) -> tuple[list[float], int]:
    """Per-request TPOT (ms) as vllm bench serve computes it, without the burst-delivered streams
    (loadgen.is_burst on its chunk gaps), and how many were burst-delivered."""
    out, bursts = [], 0
    for ttft, lat, n, itl in zip(data["ttfts"], data["latencies"], data["output_lens"], data["itls"], strict=True):
        gaps = [g * 1000 for g in itl]
        if is_burst(len(gaps), sum(g < NEAR_ZERO_GAP_MS for g in gaps), sum(gaps), lat * 1000):
            bursts += 1
        else:
            out.append((lat - ttft) * 1000 / (n - 1))
    return out, bursts


def _report(run_dir: Path, **params):
    from playbook.commands.report import report_parameters

    run = RunDir(run_dir, create=False)
    p = ReportParams(**{**report_parameters(run), "run_dir": str(run_dir), **params})
    return steps.report(p, run)


def test_vllm_bench_pair_becomes_load_evidence_with_provenance(tmp_path):
    run_dir = tmp_path / "run"
    res = import_results("vllm-bench", [VB / "baseline.json"], [VB / "spec.json"], run_dir, temperature=0.0)
    base, spec = (json.loads((VB / n).read_text()) for n in ("baseline.json", "spec.json"))
    assert res.source["tool"] == "vllm bench serve"
    assert [f["sha256"] for f in res.source["files"]] == [sha256(VB / "baseline.json"), sha256(VB / "spec.json")]
    for f in res.source["files"]:  # the originals are kept, byte for byte
        assert sha256(run_dir / f["copied_to"]) == f["sha256"]
    saved = LoadResult.model_validate_json((run_dir / "artifacts" / "50_load.json").read_text())
    assert saved.source == res.source and saved.level_kind == "concurrency"
    b, s = (next(x for x in saved.levels if x.config == c) for c in ("baseline", "spec"))
    assert b.level == s.level == base["max_concurrency"] and b.requests == base["completed"] + base["failed"]
    # vllm bench serve's own TPOT, (latency - ttft) / (output tokens - 1), over the streams our checks keep
    (tb, nb), (ts, ns) = _paced_tpots(base), _paced_tpots(spec)
    assert (b.burst_requests, s.burst_requests) == (nb, ns)
    assert b.tpot_ms.p50 == pytest.approx(float(np.median(tb)), rel=1e-9)
    assert s.tpot_ms.p50 == pytest.approx(float(np.median(ts)), rel=1e-9)
    if nb == ns == 0:
        assert b.tpot_ms.p50 == pytest.approx(base["median_tpot_ms"], rel=1e-6)
    assert s.acceptance_rate == pytest.approx(spec["spec_decode_acceptance_rate"] / 100)
    sp = saved.speedup[0]
    assert sp.speedup == pytest.approx(float(np.median(tb) / np.median(ts)), rel=1e-9)
    assert sp.ci_low < sp.speedup < sp.ci_high and sp.design == "sequential"
    recs = [json.loads(x) for x in (run_dir / "artifacts" / "50_load_requests.jsonl").read_text().splitlines()]
    assert len(recs) == len(base["ttfts"]) + len(spec["ttfts"]) and {r["phase"] for r in recs} == {
        "baseline@c1/imported", "spec@c1/imported"}
    assert [r.group for r in saved.breakdown if r.by == "length"] == ["<64"]  # 48-token prompts
    assert (run_dir / "artifacts" / "50_load_breakdown.csv").is_file()
    assert json.loads((run_dir / "artifacts" / "import.json").read_text())["files"] == res.source["files"]


def test_report_decides_on_an_imported_pair(tmp_path):
    run_dir = tmp_path / "run"
    import_results("vllm-bench", [VB / "baseline.json"], [VB / "spec.json"], run_dir, temperature=0.0)
    spec = json.loads((VB / "spec.json").read_text())
    out = _report(run_dir, expected_peak_concurrency=1)
    ev = out.evidence
    assert not ev.steps_failed
    assert ev.acceptance_production == pytest.approx(spec["spec_decode_acceptance_rate"] / 100)
    assert ev.load_levels[0].speedup is not None and ev.load_temperature == 0.0
    assert out.decision.verdict in ("GO", "GO WITH LIMITS", "NO-GO")  # both required rules have evidence
    names = {r.name: r for r in out.decision.rules}
    assert names["acceptance_at_production_temperature"].verdict != "unknown"
    assert names["load_crossover_vs_peak"].verdict != "unknown"
    assert json.loads((run_dir / "decision.json").read_text())["verdict"] == out.decision.verdict


def test_cli_import_then_report(tmp_path, capsys):
    from playbook.cli import main

    run_dir = tmp_path / "cli-run"
    assert main(["import", "vllm-bench", str(VB / "baseline.json"), str(VB / "spec.json"), "--run-dir", str(run_dir),
                 "--temperature", "0", "--method", "draft_model", "--num-speculative-tokens", "4"]) == 0
    assert f"next: playbook report {run_dir}" in capsys.readouterr().out
    state = json.loads((run_dir / "run.json").read_text())
    assert state["parameters"]["num_speculative_tokens"] == 4 and state["parameters"]["production_temperature"] == 0.0
    assert main(["import", "vllm-bench", str(VB / "baseline.json"), str(VB / "spec.json"), "--run-dir", str(run_dir)]) == 1
    assert "already holds a load result" in capsys.readouterr().err


def test_a_summary_only_file_says_to_save_detailed(tmp_path):
    data = json.loads((VB / "baseline.json").read_text())
    for k in ("ttfts", "itls", "input_lens", "output_lens", "latencies", "errors", "generated_texts", "start_times"):
        data.pop(k, None)
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ImportFileError, match="--save-detailed"):
        vllm_bench.read(path)
    with pytest.raises(ImportFileError, match="not a `vllm bench serve"):
        vllm_bench.read(FIX / "aiperf_doc" / "profile_export_aiperf.json")


def test_levels_measured_on_one_side_only_are_refused(tmp_path):
    data = json.loads((VB / "spec.json").read_text())
    data["max_concurrency"] = 4
    other = tmp_path / "spec4.json"
    other.write_text(json.dumps(data))
    with pytest.raises(ImportFileError, match="one side only"):
        import_results("vllm-bench", [VB / "baseline.json"], [other], tmp_path / "run")


def test_aiperf_documented_export_is_read():
    side = aiperf.read(FIX / "aiperf_doc")[0]
    assert side.level == 100 and side.level_kind == "concurrency" and side.model == "openai/gpt-oss-20b"
    assert side.command.startswith("aiperf profile") and side.duration_s == pytest.approx(15.196591969)
    ok, bad = side.records
    assert ok["status"] == "ok" and ok["prompt_tokens"] == 550 and ok["output_tokens"] == 9
    assert ok["tpot_ms"] == pytest.approx((297.525228 - 255.886568) / 8)
    assert ok["itl_ms"][0] == pytest.approx(4.898437) and not ok["burst"]
    assert bad["status"] != "ok" and "RequestCancellationError" in bad["error"] and bad["sent_s"] > 0
    assert [p.name for p in side.extra_files] == ["profile_export_aiperf.json"]


def test_aiperf_pair_keeps_both_files_with_hashes(tmp_path):
    spec_dir = tmp_path / "spec"
    shutil.copytree(FIX / "aiperf_doc", spec_dir)
    records = spec_dir / "profile_export.jsonl"  # another run (an identical copy is refused: a run against itself)
    records.write_text(records.read_text().replace('"session_num": 45', '"session_num": 46', 1))
    res = import_results("aiperf", [FIX / "aiperf_doc"], [spec_dir], tmp_path / "run", temperature=0.7)
    assert len(res.source["files"]) == 4 and res.source["command"].startswith("aiperf profile")
    assert res.levels[0].errors == 1 and res.temperature == 0.7


def test_guidellm_pair_is_read_and_imported(tmp_path):
    """benchmarks.json files GuideLLM 0.8.1 wrote against the embedded servers."""
    g = FIX / "guidellm"
    data = json.loads((g / "baseline" / "benchmarks.json").read_text())
    (side,) = guidellm.read(g / "baseline" / "benchmarks.json")
    ok = data["benchmarks"][0]["requests"]["successful"]
    assert side.level == 1 and side.level_kind == "concurrency" and side.tool_version == "0.8.1"
    assert side.model.endswith("tiny-target") and len(side.records) == len(ok) == 24
    r, first = side.records[0], ok[0]
    assert r["tpot_ms"] == pytest.approx(first["inter_token_latency_ms"])  # excludes the first token, as ours
    assert r["ttft_ms"] == pytest.approx(first["time_to_first_token_ms"]) and r["prompt_tokens"] == first["prompt_tokens"]
    assert r["e2e_ms"] == pytest.approx(first["request_latency"] * 1000)
    res = import_results("guidellm", [g / "baseline" / "benchmarks.json"], [g / "spec" / "benchmarks.json"],
                         tmp_path / "run", temperature=1.0)
    assert res.speedup[0].speedup is not None and res.source["tool_version"] == "0.8.1"
    assert not (tmp_path / "run" / "artifacts" / "40_sweep.json").exists()  # GuideLLM records no acceptance
    with pytest.raises(ImportFileError, match="not a GuideLLM report"):
        guidellm.read(FIX / "aiperf_doc" / "profile_export_aiperf.json")


def test_aiperf_pair_is_read_and_imported(tmp_path):
    """profile_export.jsonl / profile_export_aiperf.json that AIPerf 0.13.0 wrote against the embedded servers."""
    a = FIX / "aiperf"
    side = aiperf.read(a / "baseline")[0]
    assert side.level == 1 and side.tool_version == "0.13.0" and side.temperature == 0.0
    lines = [json.loads(x)["metrics"] for x in (a / "baseline" / "profile_export.jsonl").read_text().splitlines()]
    assert len(side.records) == len(lines) == 24 and all(r["status"] == "ok" for r in side.records)
    for r, m in zip(side.records, lines, strict=True):
        n = m["output_sequence_length"]["value"]
        assert r["output_tokens"] == n and r["ttft_ms"] == pytest.approx(m["time_to_first_token"]["value"])
        assert r["tpot_ms"] == pytest.approx((m["request_latency"]["value"] - m["time_to_first_token"]["value"]) / (n - 1))
    res = import_results("aiperf", [a / "baseline"], [a / "spec"], tmp_path / "run")
    assert res.temperature == 0.0 and res.speedup[0].speedup is not None
    assert len(res.source["files"]) == 4  # both files of each side, hashed
