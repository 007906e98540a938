"""The report's server accounting: configurations, start-up time, which steps shared each server."""

from playbook.helpers.render import servers_table


def test_servers_table_names_each_configuration_and_its_steps():
    summary = {"started": 2, "configurations": 2, "startup_s": 61.0, "reuses": 3, "restarts": 0, "per_config": [
        {"config": "tiny-target bfloat16, draft_model k=4 (<tiny-draft>)", "role": "spec", "starts": 1,
         "startup_s": 31.5, "steps": ["00_preflight", "40_sweep", "50_load"], "logs": ["spec-1"]},
        {"config": "tiny-target bfloat16, no speculation", "role": "baseline", "starts": 1, "startup_s": 29.5,
         "steps": ["50_load"], "logs": ["baseline-1"]}]}
    html = servers_table(summary)
    assert "2 server start(s) for 2 configuration(s), 61 s of start-up" in html
    assert "00_preflight, 40_sweep, 50_load" in html and "baseline-1" in html
    assert "&lt;tiny-draft&gt;" in html and "<tiny-draft>" not in html  # escaped


def test_servers_table_without_servers_says_so():
    assert "No server was started" in servers_table(None)
    assert "No server was started" in servers_table({"per_config": []})


def test_run_servers_reads_run_json(tmp_path):
    from playbook.helpers.render import run_servers

    assert "No server was started" in run_servers(tmp_path)  # no run.json (an interactive run)
    (tmp_path / "run.json").write_text('{"servers": {"started": 1, "configurations": 1, "startup_s": 30, '
                                       '"per_config": [{"config": "c", "steps": ["40_sweep"], "logs": ["spec-1"]}]}}')
    assert "1 server start(s)" in run_servers(tmp_path) and "40_sweep" in run_servers(tmp_path)
