"""QA round 5, area D: `playbook report` re-decisions and `playbook import`.

1. a peak neither configuration holds is not the draft's no-go, and "measure at N" survives another rule's no-go;
2. a temperature the imported files do not record stays unknown (never T=0) and the rules say so;
3. an imported run's provenance is the tool's, never the importing machine's;
5. files of the older benchmarks/benchmark_serving.py (no latencies) are imported;
6. GuideLLM 0.2/0.3 layouts, YAML and output folders are read;
7. genai-perf exports and CSV summaries are named and refused before the load-level check;
8. going back to run.json's parameters is a re-decision too, and the report says which parameters it used;
9. secrets in a tool's recorded command line are redacted in the run's own files;
plus a read-only run directory, `numbers.temperature` as a number and decision.json's `schema_version`.

Import inputs are variants of the real files in tests/unit/fixtures/import (see its SOURCE.md), written into
tmp_path by the helpers below: fields removed or moved as the older tool versions lay them out (GuideLLM 0.2/0.3:
vllm-project/guidellm src/guidellm/benchmark/benchmark.py, BenchmarkArgs and GenerativeTextResponseStats), or,
for genai-perf, the perf_analyzer `profile_export.json` layout (experiments[].experiment, requests[] with
timestamp, request_inputs, response_timestamps, response_outputs) as genai-perf documents it.
"""

from __future__ import annotations

import html
import json
import re
import socket
from pathlib import Path

import pytest

from playbook.cli import main
from playbook.helpers import decide, evidence, redecide, rules, sections
from playbook.helpers.artifacts import RunDir
from playbook.helpers.errors import ImportFileError
from playbook.helpers.importers import guidellm, import_results, vllm_bench
from playbook.helpers.importers.common import read_json
from playbook.helpers.redact import redact_command, redact_headers
from playbook.helpers.schemas.decision import Decision
from tests.support.decide_fixtures import load, make_run, sweep
from tests.support.report_fixtures import memory_and_quantization

FIX = Path(__file__).parent / "fixtures" / "import"
VB, GL, AP = FIX / "vllm_bench", FIX / "guidellm", FIX / "aiperf"
WINS = {1: (1.6, 1.4, 1.8), 4: (1.3, 1.15, 1.45), 16: (1.1, 1.02, 1.2)}  # wins at every measured level


def _decide(run: RunDir, peak: float, t: float = 0.2) -> Decision:
    return decide.decide(evidence.gather(run, t), production_temperature=t, expected_peak_concurrency=peak,
                         context_length=1024)


# --- 1. a peak neither configuration holds -------------------------------------------------------------------
@pytest.mark.parametrize("spec, peak, verdict, said", [
    (31, 32, "no-go", "that the node holds without the draft"),  # the draft is what breaks the peak
    (31, 64, "borderline", "neither configuration holds the expected peak of 64"),  # 20.5% lost, 2 vs 3 servers
    (38, 64, "unknown", "neither configuration holds the expected peak of 64"),  # 2.6% lost: the draft does not decide
    (31, 16, "borderline", "more than 10%"),
])
def test_the_concurrency_rule_blames_the_draft_only_when_it_breaks_the_peak(spec, peak, verdict, said):
    r = rules.rule_concurrency_loss(39, spec, expected_peak_concurrency=peak, context_length=1024)
    assert r.verdict == verdict and said in r.reason
    if "neither" in said:
        assert "needs more capacity" in r.reason and "1024 tokens/request" in r.reason
    if verdict == "unknown":
        assert "expected_peak_concurrency" in r.measure_next


def test_a_peak_above_both_capacities_is_measure_at_n_not_no_go(tmp_path):
    run = make_run(tmp_path / "run", sweep_result=sweep(), load_result=load(WINS), extra=memory_and_quantization())
    d = _decide(run, 64)
    assert d.verdict == "INCONCLUSIVE" and any("measure at 64" in m for m in d.measure_next)
    assert any("neither configuration holds the expected peak of 64" in r for r in d.reasons)


def test_measure_at_n_survives_another_rules_no_go(tmp_path):
    run = make_run(tmp_path / "run", sweep_result=sweep(), load_result=load(WINS), extra=memory_and_quantization())
    d = _decide(run, 32)  # 31 with the draft < 32 <= 39 without: the draft's no-go; 32 was not measured either
    assert d.verdict == "NO-GO"
    assert any("measure at 32" in m for m in d.measure_next)
    assert any(r.startswith("[no-go] max concurrency") for r in d.reasons)
    assert any(r.startswith("[unknown]") and "measure at 32" in r for r in d.reasons)


def test_numbers_temperature_is_a_number_in_every_rule(tmp_path):
    run = make_run(tmp_path / "run", sweep_result=sweep(), load_result=load(WINS))
    d = _decide(run, 16)
    temps = {r.name: r.numbers["temperature"] for r in d.rules if "temperature" in r.numbers}
    assert temps["load_crossover_vs_peak"] == 0.2 and temps["acceptance_at_production_temperature"] == 0.2
    assert all(isinstance(v, float) for v in temps.values())


# --- 2. a temperature the files do not record --------------------------------------------------------------
def _records(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "artifacts" / "50_load_requests.jsonl").read_text().splitlines()]


def test_an_unrecorded_temperature_is_filed_as_unknown_never_zero(tmp_path):
    run = tmp_path / "run"
    res = import_results("guidellm", [GL / "baseline" / "benchmarks.json"], [GL / "spec" / "benchmarks.json"], run)
    data = json.loads((run / "artifacts" / "50_load.json").read_text())
    assert data["temperature"] is None and res.temperature is None
    assert {sp["temperature"] for sp in data["speedup"]} == {None} and {r["temperature"] for r in _records(run)} == {None}
    assert "production_temperature" not in json.loads((run / "run.json").read_text())["parameters"]
    assert any("filed as unknown, not as 0" in w and "GuideLLM sends none" in w for w in res.warnings)


def test_the_rules_say_temperature_not_recorded_and_decide_nothing_from_it(tmp_path):
    run = tmp_path / "run"  # vllm bench serve without --metadata temperature: its counters, at an unknown temperature
    res = import_results("vllm-bench", [VB / "baseline.json"], [VB / "spec.json"], run)
    assert not (run / "artifacts" / "40_sweep.json").exists()  # a sweep point needs its temperature
    assert any("not filed as a sweep point" in w for w in res.warnings)
    d = _decide(RunDir(run, create=False), 1)
    by = {r.name: r for r in d.rules}
    for name in ("acceptance_at_production_temperature", "load_crossover_vs_peak", "load_temperature"):
        assert by[name].verdict == "unknown" and by[name].reason.startswith("temperature not recorded"), name
        assert "--temperature T" in by[name].measure_next
    assert "draft acceptance 0." in by["acceptance_at_production_temperature"].reason  # what was measured, still said
    assert by["acceptance_monitoring"].verdict == "go"  # the counters were there
    assert d.verdict == "INCONCLUSIVE" and any("--temperature T" in m for m in d.measure_next)
    assert not re.search(r"T=0(?![.\d])", " ".join([*d.reasons, d.headline]))  # no guessed T=0 in the wording
    # with the temperature given, the same files are judged
    import_results("vllm-bench", [VB / "baseline.json"], [VB / "spec.json"], tmp_path / "known", temperature=0.0)
    known = {r.name: r for r in _decide(RunDir(tmp_path / "known", create=False), 1).rules}
    assert known["acceptance_at_production_temperature"].verdict != "unknown"
    assert known["load_crossover_vs_peak"].numbers["temperature"] == 0.0


# --- 3. provenance of an imported run ---------------------------------------------------------------------
def test_an_imported_runs_provenance_is_the_tools_not_this_machines(tmp_path):
    from playbook.helpers import provenance

    run = tmp_path / "run"
    import_results("aiperf", [AP / "baseline"], [AP / "spec"], run)
    rec = json.loads((run / "run.json").read_text())["provenance"]
    assert rec["host"] is None and rec["cpu"] is None and rec["accelerators"] is None and rec["software"] is None
    assert rec["imported"]["summary"] == "imported from aiperf 0.13.0; hardware not recorded by the tool"
    assert rec["imported"]["files"][0]["command"].startswith("aiperf profile")  # AIPerf 0.13: run_info.cli_command
    pv = provenance.for_run(run, None)
    assert pv.imported is not None and pv.host is None
    assert provenance.collect(run, None, previous=rec).model_dump() == pv.model_dump()  # a resume adds nothing local
    page = sections.provenance(RunDir(run, create=False), evidence.gather(run))
    assert "Not measured here: imported from aiperf 0.13.0; hardware not recorded by the tool" in page
    assert "CPU cores" not in page and socket.gethostname() not in page and "GPUs: none" not in page
    # an import written before run.json recorded it: rebuilt from artifacts/import.json
    state = json.loads((run / "run.json").read_text())
    del state["provenance"]
    (run / "run.json").write_text(json.dumps(state))
    assert provenance.for_run(run, None).imported.summary.startswith("imported from aiperf 0.13.0")


# --- 5. the older benchmarks/benchmark_serving.py -----------------------------------------------------------
def _legacy(src: Path, out: Path) -> Path:
    data = json.loads(src.read_text())
    for key in ("latencies", "start_times", "queue_times", "label", "endpoint_type", "max_concurrent_requests"):
        data.pop(key, None)
    out.write_text(json.dumps(data))
    return out


def test_benchmark_serving_files_without_latencies_are_imported(tmp_path):
    b, s = _legacy(VB / "baseline.json", tmp_path / "b.json"), _legacy(VB / "spec.json", tmp_path / "s.json")
    (side,) = vllm_bench.read(b)
    raw = json.loads(b.read_text())
    i = next(i for i, e in enumerate(raw["errors"]) if not e)
    assert side.records[i]["e2e_ms"] == pytest.approx(1000 * (raw["ttfts"][i] + sum(raw["itls"][i])))
    assert any("benchmark_serving.py" in n and "TTFT + the sum of its ITLs" in n for n in side.notes)
    assert not any("--save-detailed" in n or "--metadata" in n for n in side.notes)  # flags that script may lack
    res = import_results("vllm-bench", [b], [s], tmp_path / "run", temperature=0.0)
    assert res.speedup[0].speedup is not None
    # without any per-request list it is still refused, naming vllm bench serve's flags
    bare = {k: v for k, v in raw.items() if k not in ("ttfts", "itls", "input_lens", "output_lens", "errors")}
    (tmp_path / "bare.json").write_text(json.dumps(bare))
    with pytest.raises(ImportFileError, match="no per-request data"):
        vllm_bench.read(tmp_path / "bare.json")


# --- 6. GuideLLM 0.2/0.3, YAML, folders --------------------------------------------------------------------
def _guidellm_02(src: Path, out: Path) -> Path:
    """The 0.8 report laid out as GuideLLM 0.2/0.3 wrote it: args.strategy, worker.backend_model, start_time."""
    d = json.loads(src.read_text())
    model = d["config"]["spec"]["backend"]["model"]
    old = {"benchmarks": []}
    for b in d["benchmarks"]:
        nb = {"type_": "generative_benchmark", "run_id": b["config"]["run_id"],
              "args": {"profile": {"type_": "concurrent", "streams": [1]}, "strategy_index": 0,
                       "strategy": {"type_": "concurrent", "streams": 1}, "max_number": 24, "max_duration": None},
              "worker": {"type_": "generative_requests_worker", "backend_model": model},
              "start_time": b["start_time"], "end_time": b["end_time"], "duration": b["duration"],
              "requests": {"successful": [], "errored": [], "incomplete": []}}
        for r in b["requests"]["successful"]:
            nr = {k: r[k] for k in ("request_id", "output", "prompt_tokens", "output_tokens", "request_latency",
                                    "time_to_first_token_ms", "inter_token_latency_ms")}
            nr.update(start_time=r["request_start_time"], end_time=r["request_end_time"])
            nb["requests"]["successful"].append(nr)
        old["benchmarks"].append(nb)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(old))
    return out


def test_guidellm_02_layout_yaml_and_folders_are_read(tmp_path):
    import yaml

    new = guidellm.read(GL / "baseline" / "benchmarks.json")[0]
    old = guidellm.read(_guidellm_02(GL / "baseline" / "benchmarks.json", tmp_path / "old" / "benchmarks.json"))[0]
    assert (old.level, old.level_kind, old.requested) == (1.0, "concurrency", 24) and old.model == new.model
    assert [r["ttft_ms"] for r in old.records] == [r["ttft_ms"] for r in new.records]
    assert old.records[1]["sent_s"] > 0  # start_time read
    y = tmp_path / "y" / "benchmarks.yaml"
    y.parent.mkdir()
    y.write_text(yaml.safe_dump(json.loads((GL / "baseline" / "benchmarks.json").read_text())))
    for given in (y, y.parent, GL / "baseline", tmp_path / "old"):  # a YAML report, and folders holding a report
        side = guidellm.read(given)[0]
        assert side.level == 1.0 and len(side.records) == len(new.records)


def test_guidellm_csv_and_empty_folders_are_named_not_missing(tmp_path):
    (tmp_path / "b.csv").write_text("Benchmark,Rate\nconcurrent@1,1\n")
    with pytest.raises(ImportFileError, match="CSV summary: it has no per-request data"):
        guidellm.read(tmp_path / "b.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportFileError, match="is a folder without GuideLLM's benchmarks.json") as exc:
        guidellm.read(tmp_path / "empty")
    assert "does not exist" not in exc.value.problem
    with pytest.raises(ImportFileError, match="is a directory"):
        read_json(tmp_path / "empty", "guidellm")


# --- 7. genai-perf and CSV given to the AIPerf importer ----------------------------------------------------
def _genai_perf(out: Path) -> Path:
    out.mkdir(parents=True)
    req = {"timestamp": 1700000000000000000, "request_inputs": {"payload": '{"model":"m","prompt":"hi","stream":true}'},
           "response_timestamps": [1700000000010000000, 1700000000012000000],
           "response_outputs": [{"response": 'data: {"choices":[{"text":"a"}]}\n\n'}, {"response": "data: [DONE]\n\n"}]}
    (out / "profile_export.json").write_text(json.dumps(
        {"experiments": [{"experiment": {"mode": "concurrency", "value": 1}, "requests": [req]}],
         "version": "", "service_kind": "openai", "endpoint": "v1/completions"}))
    (out / "profile_export_genai_perf.json").write_text(json.dumps({"time_to_first_token": {"unit": "ms", "avg": 10}}))
    (out / "profile_export_genai_perf.csv").write_text("Metric,avg,min,max\n")
    return out


@pytest.mark.parametrize("given, said", [
    ("", "is a genai-perf export"), ("profile_export.json", "is a genai-perf export"),
    ("profile_export_genai_perf.json", "is genai-perf's summary"), ("profile_export_genai_perf.csv", "genai-perf's summary"),
])
def test_genai_perf_artifacts_are_named_before_the_load_level(tmp_path, capsys, given, said):
    b, s = _genai_perf(tmp_path / "b"), _genai_perf(tmp_path / "s")
    rc = main(["import", "aiperf", str(b / given), str(s / given), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 1 and said in err and "re-run the benchmark with AIPerf" in err and not (tmp_path / "run").exists()
    assert "loadgen" not in err and "does not exist" not in err


def test_an_aiperf_csv_summary_is_refused_as_a_csv(tmp_path):
    from playbook.helpers.importers import aiperf

    (tmp_path / "profile_export_aiperf.csv").write_text("Metric,avg\n")
    with pytest.raises(ImportFileError, match="is a CSV summary") as exc:
        aiperf.read(tmp_path / "profile_export_aiperf.csv")
    assert "profile_export.jsonl" in exc.value.fix


# --- 8. going back to run.json's parameters -------------------------------------------------------------------
def test_going_back_to_run_json_is_recorded_and_the_report_says_what_is_in_effect(tmp_path, capsys):
    run = make_run(tmp_path / "run", sweep_result=sweep(), load_result=load(WINS), extra=memory_and_quantization())
    (run.path / "run.json").write_text(json.dumps({"run_id": "run", "created_at": "2026-12-06T10:00:00Z", "steps": [],
                                                   "profile": "smoke", "parameters": {"expected_peak_concurrency": 16}}))
    assert main(["report", str(run.path)]) == 0
    first = json.loads((run.path / "decision.json").read_text())
    assert first["schema_version"] == 1 and "changes" not in first  # nothing re-decided: no empty block
    assert main(["report", str(run.path), "-p", "expected_peak_concurrency=32"]) == 0
    assert json.loads((run.path / "decision.json").read_text())["verdict"] == "NO-GO"
    assert "expected_peak_concurrency = 32 (run.json: 16)" in sections.redecisions(run)
    capsys.readouterr()
    assert main(["report", str(run.path)]) == 0  # back to run.json's peak 16
    assert "back to run.json's parameters: expected_peak_concurrency=16" in capsys.readouterr().out
    back = json.loads((run.path / "decision.json").read_text())
    assert back["changes"]["previous_verdict"] == "NO-GO" and back["changes"]["overrides"] == {}
    assert back["changes"]["parameters"] == {"expected_peak_concurrency": {"from": 32, "to": 16}}
    note = (run.path / redecide.NOTE).read_text()
    assert note.count("## Re-decision") == 2 and "back from the earlier -p values" in note
    shown = f"The verdict shown ({back['verdict']}) was decided with run.json's parameters"
    assert shown in html.unescape(sections.redecisions(run))
    assert shown in html.unescape((run.path / "report.html").read_text())


# --- 9. secrets in a tool's command line ---------------------------------------------------------------------
def test_redact_command_covers_flags_headers_bearer_tokens_and_urls():
    cmd = ("aiperf profile --api-key sk-SECRET-4242 --header 'Authorization: Bearer sk-BEARER-4343' "
           "--url https://user:pw-4444@host:8000 -H 'x-api-key: k-5555' --base-url http://h/?api_key=q-6666 "
           "--extra-inputs max_tokens:256")
    out = redact_command(cmd)
    assert not any(x in out for x in ("4242", "4343", "4444", "5555", "6666")) and "max_tokens:256" in out
    assert "Authorization: Bearer <redacted>" in out and redact_command(out) == out
    assert redact_command("guidellm benchmark --target http://h:8000 --rate 1") == \
        "guidellm benchmark --target http://h:8000 --rate 1"  # nothing secret: the text as recorded
    assert redact_headers("Bearer abc.def-1") == "Bearer <redacted>"


def test_an_imported_command_line_keeps_its_secrets_out_of_the_runs_files(tmp_path):
    src = tmp_path / "in"
    for side in ("baseline", "spec"):
        (src / side).mkdir(parents=True)
        (src / side / "profile_export.jsonl").write_text((AP / side / "profile_export.jsonl").read_text())
        agg = json.loads((AP / side / "profile_export_aiperf.json").read_text())
        agg["run_info"]["cli_command"] = ("aiperf profile --api-key sk-SECRET-4242 --header 'Authorization: Bearer "
                                          "sk-BEARER-4343' --url https://user:pw-4444@host:8000")
        (src / side / "profile_export_aiperf.json").write_text(json.dumps(agg))
    run = tmp_path / "run"
    import_results("aiperf", [src / "baseline"], [src / "spec"], run)
    holding = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()
                     and any(x in p.read_text(errors="replace") for x in ("SECRET-4242", "BEARER-4343", "pw-4444")))
    assert holding and all(p.startswith("artifacts/imported/") for p in holding)  # only the user's own copies
    assert "--api-key '<redacted>'" in json.loads((run / "artifacts" / "50_load.json").read_text())["source"]["command"]


# --- other observations ------------------------------------------------------------------------------------
def test_a_read_only_run_directory_says_so_after_printing_the_verdict(tmp_path, capsys, monkeypatch):
    from playbook.commands import _common

    run = make_run(tmp_path / "run", sweep_result=sweep(), load_result=load(WINS))
    monkeypatch.setattr(_common, "read_only_reason", lambda path: "Read-only file system")
    assert main(["report", str(run.path)]) == 1
    cap = capsys.readouterr()
    assert "verdict: GO" in cap.out and "computed, not written" in cap.out
    assert "is read-only (Read-only file system)" in cap.err and "cp -a" in cap.err
    assert "free some disk space" not in cap.err and not (run.path / "decision.json").exists()


def test_read_only_reason_is_none_where_files_can_be_written(tmp_path):
    from playbook.commands._common import read_only_reason

    assert read_only_reason(tmp_path) is None and not list(tmp_path.iterdir())


def test_decision_json_has_a_schema_version_and_no_empty_changes():
    d = Decision(verdict="GO", confidence="high", headline="h", reasons=[], rules=[],
                 recommended={"enable": True})
    data = d.model_dump(mode="json")
    assert data["schema_version"] == 1 and "changes" not in data
    assert Decision.model_validate({**data, "changes": {"verdict": "GO"}}).model_dump(mode="json")["changes"]
