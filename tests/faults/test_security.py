"""Issue 6, security, end to end: the API key is read only from the environment variable named by
api_key_env, reaches the server, and is written nowhere in the run directory (run.json, executed
notebooks, artifacts, logs, report); a managed server binds 127.0.0.1 unless told otherwise."""

from __future__ import annotations

from playbook.helpers.endpoints import server_config
from playbook.helpers.params import StepParams
from playbook.helpers.server import build_command
from tests.support import scenarios

SECRET = "sk-faults-5e3c7a1b9d2f4e60a8c1"


def test_api_key_from_env_works_and_is_in_no_file_of_the_run(tmp_path):
    ws = scenarios.Workspace("secret")
    try:
        spec, base = ws.server(FAKE_API_KEY=SECRET, FAKE_METRICS="live"), ws.server(FAKE_API_KEY=SECRET)
        prompts = ws.prompts(["ok"] * 4)
        args = scenarios.load_args(ws, spec, base, prompts, requests_per_level=4, concurrencies="1",
                                   api_key_env="PB_FAULTS_API_KEY")
        args[args.index("--only") + 1:args.index("--only") + 2] = ["00_preflight", "50_load"]
        res = ws.playbook(*args, env={"PB_FAULTS_API_KEY": SECRET})
        assert res.returncode == 0, res.stderr[-3000:]
        run = ws.run_dirs()[0]
        records = scenarios.measured(scenarios.jsonl(run / "artifacts" / scenarios.REQUESTS))
        phases = {r["phase"].split("@")[0] for r in records}
        assert phases == {"baseline", "spec"} and len(records) >= 8  # paired rounds: at least 4 per server
        assert all(r["status"] == "ok" for r in records)  # the key reached both servers
        preflight = scenarios.read(run / "artifacts" / "00_preflight.json")
        assert any(c["name"].startswith("spec server") and c["status"] == "ok" for c in preflight["checks"])
        files = [p for p in run.rglob("*") if p.is_file()]
        assert {"run.json", "report.html", "decision.json", "50_load.ipynb", "00_preflight.ipynb"} <= {p.name for p in files}
        leaks = [str(p.relative_to(run)) for p in files if SECRET.encode() in p.read_bytes()]
        assert leaks == []
        assert SECRET not in res.stdout + res.stderr
        assert scenarios.read(run / "run.json")["parameters"]["api_key_env"] == "PB_FAULTS_API_KEY"  # the name only

        without = ws.playbook(*args)  # the variable is not set: refused before any work, naming it
        assert without.returncode == 1 and "export PB_FAULTS_API_KEY=" in without.stderr
        assert ws.run_dirs() == [run]
    finally:
        assert ws.close() == 0


def test_managed_server_binds_loopback_unless_told_otherwise(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    p = StepParams(mode="managed", target_model=str(model), draft_model="", method="ngram")
    for role in ("baseline", "spec"):
        cmd = build_command(server_config(p, role))
        assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    told = p.model_copy(update={"extra_server_args": ["--host", "0.0.0.0"]})
    cmd = build_command(server_config(told, "baseline"))
    hosts = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--host"]
    assert hosts[-1] == "0.0.0.0"  # the user's choice comes last, so vLLM binds it
