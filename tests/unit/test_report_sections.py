"""Report sections from a run directory: provenance (recorded or reconstructed), the servers' own view
per level (KV cache, waiting, preemptions from counter samples) and goodput at the SLO."""

import json

from playbook.helpers import sections
from playbook.helpers.artifacts import RunDir, append_jsonl
from playbook.helpers.schemas.decision import Evidence
from playbook.helpers.schemas.load import LevelStats
from playbook.helpers.schemas.provenance import CpuInfo, ModelRevision, Provenance, ServerProvenance, Software


def test_provenance_renders_the_recorded_model_revisions_and_commands(tmp_path):
    run = RunDir(tmp_path / "run")
    prov = Provenance(collected_at="2026-12-02T22:00:00+00:00", host="node-7", cpu=CpuInfo(model="EPYC", logical_cores=64,
                      memory_gib=512), software=Software(python="3.11.7", platform="linux", vllm="0.11.0"),
                      servers=[ServerProvenance(name="spec-1", role="spec", vllm_version="0.11.0", version_source="/version",
                                                command="vllm serve /m/t --speculative-config '{\"k\": 4}'")],
                      models=[ModelRevision(role="target", name="/m/t", revision="ab12cd34")])
    (run.path / "run.json").write_text(json.dumps({"provenance": prov.model_dump(), "steps": [{"seconds": 90}, {"seconds": 30}]}))
    page = sections.provenance(run, Evidence())
    assert "EPYC: 64 cores, 512 GiB RAM" in page and "revision ab12cd34" in page and "2.0 min over 2 steps" in page
    assert "vllm serve /m/t --speculative-config &#x27;{&quot;k&quot;: 4}&#x27;" in page


def test_provenance_without_record_reads_the_server_logs(tmp_path):
    run = RunDir(tmp_path / "run")
    (run.path / "server-logs").mkdir(exist_ok=True)
    (run.path / "server-logs" / "baseline-1.log").write_text("# playbook: baseline-1 started\n# command: vllm serve /m/t --port 1\nlog\n")
    (run.path / "run.json").write_text(json.dumps({"servers": {"per_config": [{"config": "t, no speculation", "logs": ["baseline-1"]}]}}))
    page = sections.provenance(run, Evidence(target="/m/t"))
    assert "vllm serve /m/t --port 1" in page and "not recorded by this run" in page


def test_server_view_counts_preemptions_per_level(tmp_path):
    run = RunDir(tmp_path / "run")
    for i, (kv, wait, pre) in enumerate([(0.2, 0, 3), (0.9, 5, 7), (0.5, 1, 9)]):
        append_jsonl(run.artifact("50_load_samples.jsonl"), {"config": "spec", "level": 16.0, "time": i,
                                                             "kv_cache_usage": kv, "waiting": wait, "preemptions": pre})
    append_jsonl(run.artifact("50_load_samples.jsonl"), {"config": "spec", "level": 16.0, "time": 9, "error": "timeout"})
    df = sections._server_metrics(run)
    row = df.iloc[0]
    assert (row["KV cache used, max"], row["waiting requests, max"], row["preemptions"]) == ("90.0%", "5", "6")


def test_goodput_share_meets_both_slos(tmp_path):
    run = RunDir(tmp_path / "run")
    level = LevelStats(config="spec", level=4, phase="spec@c4/structured", attempts=["a1"])
    for i, (ttft, tpot) in enumerate([(100, 10), (100, 30), (900, 10), (100, 12)]):
        append_jsonl(run.artifact("50_load_requests.jsonl"), {"id": f"spec@c4/structured/a1-{i}", "phase": "spec@c4/structured",
                                                              "status": "ok", "ttft_ms": ttft, "tpot_ms": tpot})
    append_jsonl(run.artifact("50_load_requests.jsonl"), {"id": "spec@c4/structured/a1-w", "phase": "spec@c4/structured",
                                                          "status": "ok", "warmup": True, "ttft_ms": 1, "tpot_ms": 1})
    assert sections._goodput(run, [level], 500, 20) == {("spec", 4): 0.5}
    assert sections._goodput(run, [level], 0, 0) == {("spec", 4): 1.0}


def test_load_section_says_what_stopped_each_level_and_why_its_interval_is_wider(tmp_path):
    """Issue 13.3: the report says which stopped a level (interval target or time budget), and that the shown
    interval carries the between-start spread that more pairs cannot narrow."""
    from playbook.helpers import decide, evidence
    from playbook.helpers.params import ReportParams
    from tests.support.decide_fixtures import load, make_run, sweep

    res = load({1: (1.12, 0.87, 1.41), 4: (1.09, 0.83, 1.42)})
    res.speedup[0] = res.speedup[0].model_copy(update={"rounds": 5, "between_start_sd": 0.11,
                                                       "stop_reason": "within-run interval +-10% reached the target"})
    res.speedup[1] = res.speedup[1].model_copy(update={"rounds": 18, "between_start_sd": 0.11,
                                                       "stop_reason": "time budget 45 s spent after 18 pairs"})
    run = make_run(tmp_path / "run", sweep_result=sweep(), load_result=res)
    params = ReportParams(run_dir=str(run.path))
    ev = evidence.gather(run, params.production_temperature, params=params)
    page = sections.load(run, ev, decide.decide_for(ev, params))
    assert "round pairs" in page and "measuring stopped" in page
    assert "within-run interval +-10% reached the target" in page and "time budget 45 s spent after 18 pairs" in page
    assert "SD 0.11 of the log speedup" in page
    res.speedup = [sp.model_copy(update={"between_start_sd": None}) for sp in res.speedup]
    run.write_json("50_load.json", res)
    ev = evidence.gather(run, params.production_temperature, params=params)
    assert "log speedup" not in sections.load(run, ev, decide.decide_for(ev, params))
