"""`playbook import` on the mistakes of QA round 4 (items 8, 9, 13, 15, 18): temperatures that disagree, two
workloads, a router's two model names, files in the wrong order, a GuideLLM sweep, AIPerf's summary instead of
its per-request export, and a side whose requests all failed. The files are variants of the real fixtures in
tests/unit/fixtures/import, written into tmp_path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from playbook.cli import main
from playbook.helpers.errors import ImportFileError
from playbook.helpers.importers import import_results

FIX = Path(__file__).parent / "fixtures" / "import"
VB = FIX / "vllm_bench"
BASE, SPEC = VB / "baseline.json", VB / "spec.json"
DETAILED = ("input_lens", "output_lens", "ttfts", "itls", "latencies", "start_times", "generated_texts", "errors")


def _variant(src: Path, out: Path, **changes) -> Path:
    out.write_text(json.dumps({**json.loads(src.read_text()), **changes}))
    return out


def _import(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["import", *map(str, args)])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _records(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "artifacts" / "50_load_requests.jsonl").read_text().splitlines()]


def _load(run: Path) -> dict:
    return json.loads((run / "artifacts" / "50_load.json").read_text())


# --- item 8: the temperature -------------------------------------------------------------------------------


def test_temperature_flag_different_from_the_recorded_one_is_refused(tmp_path, capsys):
    b = _variant(BASE, tmp_path / "b_t0.json", temperature=0.0)
    s = _variant(SPEC, tmp_path / "s_t0.json", temperature=0.0)
    run = tmp_path / "run"
    rc, out, err = _import(capsys, "vllm-bench", b, s, "--run-dir", run, "--temperature", "0.7")
    assert rc == 1 and not run.exists()  # refused before anything is written
    assert "--temperature 0.7" in err and "b_t0.json: T=0" in err and "s_t0.json: T=0" in err
    assert "drop --temperature" in err and "re-run" in err
    # the same value as recorded is accepted, and every filed temperature is that one
    rc, out, err = _import(capsys, "vllm-bench", b, s, "--run-dir", run, "--temperature", "0")
    assert rc == 0, err
    assert _load(run)["temperature"] == 0.0 and {r["temperature"] for r in _records(run)} == {0.0}


def test_sides_recording_different_temperatures_are_refused_naming_each(tmp_path, capsys):
    b = _variant(BASE, tmp_path / "b_t0.json", temperature=0.0)
    s = _variant(SPEC, tmp_path / "s_t1.json", temperature=1.0)
    run = tmp_path / "run"
    rc, out, err = _import(capsys, "vllm-bench", b, s, "--run-dir", run)
    assert rc == 1 and not run.exists()
    assert "baseline and the speculative files record different sampling temperatures" in err
    assert "b_t0.json: T=0" in err and "s_t1.json: T=1" in err and "cannot be compared" in err
    with pytest.raises(ImportFileError, match="different sampling temperatures"):  # --temperature does not mend it
        import_results("vllm-bench", [b], [s], run, temperature=1.0)


def test_the_recorded_temperature_is_filed_everywhere_including_the_records(tmp_path):
    b = _variant(BASE, tmp_path / "b.json", temperature=0.5)
    s = _variant(SPEC, tmp_path / "s.json")  # records none: takes the baseline's, with a warning
    run = tmp_path / "run"
    res = import_results("vllm-bench", [b], [s], run)
    assert res.temperature == 0.5 and {sp.temperature for sp in res.speedup} == {0.5}
    assert {r["temperature"] for r in _records(run)} == {0.5}
    sweep = json.loads((run / "artifacts" / "40_sweep.json").read_text())
    assert sweep["temperatures"][0]["temperature"] == 0.5 and sweep["production_temperature"] == 0.5
    assert json.loads((run / "run.json").read_text())["parameters"]["production_temperature"] == 0.5
    assert any("s.json record(s) no sampling temperature: taken as T=0.5" in w for w in res.warnings)


def test_aiperf_sides_at_different_temperatures_are_refused(tmp_path):
    base = tmp_path / "base"
    shutil.copytree(FIX / "aiperf" / "baseline", base)
    agg = base / "profile_export_aiperf.json"
    data = json.loads(agg.read_text())
    data["input_config"]["endpoint"]["extra"]["temperature"] = 0.8
    agg.write_text(json.dumps(data))
    with pytest.raises(ImportFileError, match=r"base/profile_export.jsonl: T=0.8, spec/profile_export.jsonl: T=0\b"):
        import_results("aiperf", [base], [FIX / "aiperf" / "spec"], tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --- item 9: two workloads ---------------------------------------------------------------------------------


def test_input_lengths_twice_apart_are_refused(tmp_path, capsys):
    data = json.loads(SPEC.read_text())
    s = _variant(SPEC, tmp_path / "s_diffdata.json", input_lens=[n * 10 for n in data["input_lens"]])
    run = tmp_path / "run"
    rc, out, err = _import(capsys, "vllm-bench", BASE, s, "--run-dir", run, "--temperature", "0")
    assert rc == 1 and not run.exists()
    assert "different workloads" in err and "median input length 48 tokens in baseline.json, 480" in err
    assert "fix: re-run one side with the other's prompts" in err


def test_smaller_workload_differences_are_warned_and_kept(tmp_path, capsys):
    data = json.loads(SPEC.read_text())
    s = _variant(SPEC, tmp_path / "s_longer.json", input_lens=[int(n * 1.3) for n in data["input_lens"]],
                 dataset_name="sharegpt")
    b = _variant(BASE, tmp_path / "b.json", dataset_name="random")
    run = tmp_path / "run"
    rc, out, err = _import(capsys, "vllm-bench", b, s, "--run-dir", run, "--temperature", "0")
    assert rc == 0, err
    lines = [x for x in out.splitlines() if x.startswith("warning: different workloads at concurrency 1?")]
    assert any("median input length 48 vs 62 tokens" in x for x in lines), out
    assert any("dataset 'random' vs 'sharegpt'" in x for x in lines), out
    saved = _load(run)["warnings"]
    assert sum("different workloads" in w for w in saved) == 2  # recorded in the imported result too


def test_fewer_prompts_and_other_output_lengths_are_warned(tmp_path):
    data = json.loads(SPEC.read_text())
    few = {k: data[k][:6] for k in DETAILED}
    s = _variant(SPEC, tmp_path / "s_few.json", num_prompts=6, completed=6, **few)
    res = import_results("vllm-bench", [BASE], [s], tmp_path / "run", temperature=0.0)
    assert any("24 vs 6 prompts" in w for w in res.warnings)
    short = _variant(SPEC, tmp_path / "s_short.json", output_lens=[n // 2 for n in data["output_lens"]])
    res = import_results("vllm-bench", [BASE], [short], tmp_path / "run2", temperature=0.0)
    assert any("median output length 48 vs 24 tokens" in w for w in res.warnings)


def test_the_same_workload_gets_no_workload_warning(tmp_path):
    res = import_results("vllm-bench", [BASE], [SPEC], tmp_path / "run", temperature=0.0)
    assert not any("different workloads" in w for w in res.warnings)
    for tool, base, spec in (("guidellm", FIX / "guidellm" / "baseline" / "benchmarks.json",
                              FIX / "guidellm" / "spec" / "benchmarks.json"),
                             ("aiperf", FIX / "aiperf" / "baseline", FIX / "aiperf" / "spec")):
        res = import_results(tool, [base], [spec], tmp_path / tool, temperature=0.0)
        assert not any("different workloads" in w for w in res.warnings), (tool, res.warnings)


# --- item 13: a router's two model names --------------------------------------------------------------------


def test_two_served_names_of_one_model_need_same_model(tmp_path, capsys):
    b = _variant(BASE, tmp_path / "b_name2.json", model_id="llama-8b")
    s = _variant(SPEC, tmp_path / "s_name2.json", model_id="llama-8b-spec")
    run = tmp_path / "run"
    rc, out, err = _import(capsys, "vllm-bench", b, s, "--run-dir", run, "--temperature", "0")
    assert rc == 1 and not run.exists()
    assert "'llama-8b'" in err and "'llama-8b-spec'" in err and "--same-model" in err.split("fix:")[1]
    rc, out, err = _import(capsys, "vllm-bench", b, s, "--run-dir", run, "--temperature", "0", "--same-model")
    assert rc == 0, err
    assert "warning: compared as one target model (--same-model)" in out
    params = json.loads((run / "run.json").read_text())["parameters"]
    assert params["served_model_name"] == "llama-8b-spec" and params["baseline_served_model_name"] == "llama-8b"


def test_same_model_still_refuses_levels_of_two_models(tmp_path):
    b1 = _variant(BASE, tmp_path / "b1.json", model_id="llama-8b")
    s1 = _variant(SPEC, tmp_path / "s1.json", model_id="llama-8b-spec")
    b4 = _variant(BASE, tmp_path / "b4.json", model_id="llama-70b", max_concurrency=4)
    s4 = _variant(SPEC, tmp_path / "s4.json", model_id="llama-8b-spec", max_concurrency=4)
    with pytest.raises(ImportFileError, match="the baseline files name different models"):
        import_results("vllm-bench", [b1, b4], [s1, s4], tmp_path / "run", temperature=0.0, same_model=True)


# --- item 15: the order of the files ------------------------------------------------------------------------


def test_all_baselines_first_is_explained_with_the_right_order(tmp_path, capsys):
    b4 = _variant(BASE, tmp_path / "b4.json", max_concurrency=4)
    s4 = _variant(SPEC, tmp_path / "s4.json", max_concurrency=4)
    run = tmp_path / "run"
    rc, out, err = _import(capsys, "vllm-bench", BASE, b4, SPEC, s4, "--run-dir", run, "--temperature", "0")
    assert rc == 1 and not run.exists()
    assert "go in pairs" in err and "all the baselines came first" in err
    assert "read as baseline: baseline.json (concurrency 1), spec.json (concurrency 1)" in err
    fix = err.split("fix:")[1]
    assert fix.split("playbook import vllm-bench ")[1].split() == [str(BASE), str(SPEC), str(b4), str(s4)]
    rc, out, err = _import(capsys, "vllm-bench", BASE, SPEC, b4, s4, "--run-dir", run, "--temperature", "0")
    assert rc == 0, err  # the order the fix names imports


def _guidellm_sweep(src: Path, out: Path, rate: float) -> Path:
    """A GuideLLM sweep's report: a synchronous benchmark and one at the rate the sweep derived."""
    data = json.loads(src.read_text())
    sync = json.loads(json.dumps(data["benchmarks"][0]))
    sync["config"]["strategy"] = {"type_": "synchronous"}
    fixed = json.loads(json.dumps(data["benchmarks"][0]))
    fixed["config"]["strategy"] = {"type_": "constant", "rate": rate}
    data["benchmarks"] = [sync, fixed]
    data["config"]["spec"]["profile"] = {"kind": "sweep"}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data))
    return out


def test_guidellm_sweeps_whose_rates_differ_point_at_fixed_rates(tmp_path):
    g = FIX / "guidellm"
    b = _guidellm_sweep(g / "baseline" / "benchmarks.json", tmp_path / "b" / "benchmarks.json", 4.37)
    s = _guidellm_sweep(g / "spec" / "benchmarks.json", tmp_path / "s" / "benchmarks.json", 5.12)
    with pytest.raises(ImportFileError, match="4.37, 5.12 were measured on one side only") as err:
        import_results("guidellm", [b], [s], tmp_path / "run")
    assert "sweep" in err.value.problem and "never run the same rates" in err.value.problem
    assert "fixed rates" in err.value.fix and "--rate" in err.value.fix
    assert not (tmp_path / "run").exists()


def test_aiperf_summary_json_is_refused_naming_the_per_request_export(tmp_path, capsys):
    spec = FIX / "aiperf" / "spec"
    rc, out, err = _import(capsys, "aiperf", FIX / "aiperf" / "baseline" / "profile_export_aiperf.json", spec,
                           "--run-dir", tmp_path / "run")
    assert rc == 1 and "is AIPerf's summary" in err and "line 1 is not JSON" not in err
    assert str(FIX / "aiperf" / "baseline" / "profile_export.jsonl") in err.split("fix:")[1]
    # the summary copied under another name (pretty-printed JSON) is recognised too
    odd = tmp_path / "summary.jsonl"
    odd.write_text(json.dumps(json.loads((spec / "profile_export_aiperf.json").read_text()), indent=2))
    with pytest.raises(ImportFileError, match="looks like AIPerf's summary"):
        import_results("aiperf", [odd], [spec], tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --- item 18: a side whose requests all failed --------------------------------------------------------------


def _failed(out: Path, n_failed: int, error: str = "Server error 503: Service Unavailable") -> Path:
    data = json.loads(SPEC.read_text())
    n = len(data["errors"])
    for i in range(n_failed):
        data["errors"][i], data["output_lens"][i], data["itls"][i], data["ttfts"][i] = error, 0, [], 0.0
    if n_failed == n:
        for k in [k for k in data if k.startswith("spec_decode_")]:
            del data[k]
    data["completed"], data["failed"] = n - n_failed, n_failed
    out.write_text(json.dumps(data))
    return out


def test_a_side_with_every_request_failed_is_said_plainly(tmp_path, capsys):
    s = _failed(tmp_path / "s_fail.json", 24)
    run = tmp_path / "run"
    rc, out, err = _import(capsys, "vllm-bench", BASE, s, "--run-dir", run, "--temperature", "0")
    assert rc == 0, err  # what was measured is filed; the report says INCONCLUSIVE
    line = next(x for x in out.splitlines() if "has no completed request" in x)
    assert line.startswith("warning: the speculative run s_fail.json (concurrency 1)")
    assert "all 24 failed" in line and "first error: 'Server error 503: Service Unavailable'" in line
    assert "no server log" in line
    assert any("all 24 failed" in w for w in _load(run)["warnings"])


def test_failures_without_error_text_and_partial_failures_are_counted(tmp_path):
    res = import_results("vllm-bench", [BASE], [_failed(tmp_path / "s.json", 24, error="")], tmp_path / "run",
                         temperature=0.0)
    assert any("all 24 failed (first error: 'no output tokens (the file records no error text)')" in w
               for w in res.warnings)
    res = import_results("vllm-bench", [BASE], [_failed(tmp_path / "s3.json", 3)], tmp_path / "run3", temperature=0.0)
    assert any("3 of 24 requests failed (first error: 'Server error 503" in w for w in res.warnings)
