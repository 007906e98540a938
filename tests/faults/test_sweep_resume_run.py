"""`playbook run` of 40_sweep: the speculative server is SIGKILLed mid-sweep; the step is marked failed,
the finished points are kept, and `--resume` measures only the missing points (fake server: fault
injection only)."""

from __future__ import annotations

from tests.support.scenarios import Workspace, jsonl, read, step_status, wait_for

POINTS, REQUESTS = "phases.jsonl", "40_sweep_requests.jsonl"


def test_a_sweep_killed_mid_way_resumes_only_the_missing_points():
    ws = Workspace("sweep-resume")
    try:
        spec = ws.server(FAKE_METRICS="live")
        prompts = ws.prompts(["slow"] * 4)
        args = ["run", "--runs-dir", str(ws.runs), "--only", "40_sweep"]
        for k, v in dict(mode="external", spec_url=spec.url, workloads=str(prompts), temperatures="0,0.5,1",
                         requests_per_point=4, sweep_concurrency=1, max_tokens=9, request_timeout_s=20).items():
            args += ["-p", f"{k}={v}"]
        runner = ws.start_playbook(*args)
        assert wait_for(lambda: len(ws.run_dirs()) == 1, 60)
        run = ws.run_dirs()[0]
        points, recs = run / "artifacts" / POINTS, run / "artifacts" / REQUESTS
        assert wait_for(lambda: len(jsonl(points)) >= 1 and sum("@T0.5" in r["phase"] for r in jsonl(recs)) >= 1, 90)
        spec.kill()
        _, err = runner.communicate(timeout=120)
        assert runner.returncode == 1, err
        st = step_status(run, "40_sweep")
        assert st["status"] == "failed" and "refused" in st["error"], st
        assert f"--resume {run}" in err
        before = jsonl(recs)
        done_before = {p["result"]["point"]["temperature"] for p in jsonl(points)
                       if p["step"] == "40_sweep" and p["status"] == "ok"}
        assert 0.0 in done_before and 1.0 not in done_before

        spec.start()
        again = ws.playbook("run", "--resume", str(run))
        assert again.returncode == 0, again.stderr
        after = jsonl(recs)
        assert all(r["id"] in {x["id"] for x in after} for r in before)  # nothing lost
        new = [r for r in after if r["id"] not in {x["id"] for x in before}]
        assert {r["phase"].split("@")[1] for r in new} <= {"T0.5", "T1"} and any("@T1" in r["phase"] for r in new)
        assert not any("@T0/" in r["id"] for r in new)  # the finished point was not measured again
        res = read(run / "artifacts" / "40_sweep.json")
        assert res["status"] == "ok" and res["resumed_points"] == len(done_before)
        assert [t["temperature"] for t in res["temperatures"]] == [0.0, 0.5, 1.0]
        assert step_status(run, "40_sweep")["status"] == "done"
    finally:
        assert ws.close() == 0  # no orphan processes
