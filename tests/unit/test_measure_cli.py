"""`playbook load|sweep|lossless`: stable JSON field names and clear errors (fake servers, real processes)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import start_fake, stop_fake


@pytest.fixture
def fake_url():
    proc, url = start_fake()
    yield url
    stop_fake(proc)


def playbook(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "playbook", *args], capture_output=True, text=True, timeout=120)


def test_load_json_contract(fake_url, tmp_path):
    out = playbook("load", "--baseline-url", fake_url, "--spec-url", fake_url, "--concurrency", "1,2",
                   "--requests", "3", "--warmup", "0", "--no-lossless", "--run-dir", str(tmp_path), "--json",
                   "--no-progress")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert {"levels", "speedup", "crossover"} <= set(data)
    lv = data["levels"][0]
    for metric in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        assert set(lv[metric]) == {"p50", "p95", "p99"}
    assert {"output_tok_s", "req_s", "errors", "config", "level"} <= set(lv)
    assert {"speedup", "ci_low", "ci_high", "level"} <= set(data["speedup"][0])
    assert (tmp_path / "artifacts" / "50_load_requests.jsonl").exists()


def test_bad_input_is_named(fake_url, tmp_path):
    out = playbook("load", "--baseline-url", "localhost:8000", "--spec-url", fake_url, "--json")
    assert out.returncode == 1 and "has no scheme" in out.stderr and "Traceback" not in out.stderr
    out = playbook("sweep", "--url", fake_url, "--temperatures", "0,2.5", "--json")
    assert out.returncode == 1 and "[0, 2]" in out.stderr
    out = playbook("sweep", "--url", fake_url, "--workload", "nosuchclass", "--run-dir", str(tmp_path), "--json")
    assert out.returncode == 1 and "unknown workload 'nosuchclass'" in out.stderr  # before the server is asked
    out = playbook("sweep", "--url", fake_url, "--run-dir", str(tmp_path), "--json")
    assert out.returncode == 1 and "/metrics" in out.stderr  # the fake has no /metrics: said before any request
    out = playbook("load", "--baseline-url", fake_url, "--spec-url", fake_url, "--workload", "nosuchclass",
                   "--run-dir", str(tmp_path), "--json")
    assert out.returncode == 1 and "unknown workload 'nosuchclass'" in out.stderr and "structured" in out.stderr


def test_a_model_the_server_does_not_serve_is_named_before_anything_is_measured(tmp_path):
    proc, url = start_fake(FAKE_LISTED="fake", FAKE_SERVED="fake,routed")
    try:
        args = ["--baseline-url", url, "--spec-url", url, "--concurrency", "1", "--requests", "2", "--warmup", "0",
                "--no-lossless", "--json", "--no-progress"]
        out = playbook("load", *args, "--model", "wrong-name", "--run-dir", str(tmp_path / "a"))
        assert out.returncode == 1 and "model 'wrong-name' is not served at" in out.stderr and "(it serves: fake)" in out.stderr
        assert "give --model fake" in out.stderr and not (tmp_path / "a" / "artifacts").exists()  # nothing measured
        # a router may serve a name its /v1/models does not list: the server's own answer decides
        out = playbook("load", *args, "--model", "routed", "--run-dir", str(tmp_path / "b"))
        assert out.returncode == 0, out.stderr
        assert all(lv["errors"] == 0 for lv in json.loads(out.stdout)["levels"])
    finally:
        stop_fake(proc)


def test_external_mode_names_a_served_model_name_the_server_does_not_serve(tmp_path):
    from playbook.helpers import endpoints
    from playbook.helpers.errors import ParameterError
    from playbook.helpers.params import LoadParams

    proc, url = start_fake(FAKE_LISTED="fake", FAKE_SERVED="fake")
    try:
        p = LoadParams(mode="external", baseline_url=url, spec_url=url, served_model_name="my-model",
                       run_dir=str(tmp_path))
        with pytest.raises(ParameterError) as err, endpoints.endpoint(p, tmp_path, "spec"):
            pass
        assert "model 'my-model' is not served at" in err.value.problem and "served_model_name" in err.value.fix
        with endpoints.endpoint(p.model_copy(update={"served_model_name": "fake"}), tmp_path, "spec") as ep:
            assert ep.model == "fake"
    finally:
        stop_fake(proc)


def test_a_load_test_whose_every_request_failed_fails_and_says_why(tmp_path):
    proc, url = start_fake(FAKE_NO_STREAM="1")  # a server that ignores "stream": true
    try:
        out = playbook("load", "--baseline-url", url, "--spec-url", url, "--concurrency", "1,2", "--requests", "3",
                       "--warmup", "0", "--no-lossless", "--run-dir", str(tmp_path), "--no-progress")
    finally:
        stop_fake(proc)
    assert out.returncode == 1, out.stdout  # not "excluded (no speedup)" with exit 0
    # the level stops at its first round of which no request completed (3 requests), not after min_round_pairs rounds
    assert f"every one of its 3 requests to {url} failed (3 stream_error)" in out.stdout
    assert "does not stream" in out.stdout
    data = json.loads((tmp_path / "artifacts" / "50_load.json").read_text())
    assert data["status"] == "failed" and data["speedup"] == []
    assert (tmp_path / "artifacts" / "50_load_requests.jsonl").stat().st_size > 0  # the raw records are kept


def test_one_router_serving_both_roles_by_name(tmp_path):
    """A router at one URL routing by model name: --baseline-model names the baseline's; without a name, a URL
    listing several models is measured with its first and the command says so."""
    proc, url = start_fake(FAKE_LISTED="llama,llama-spec", FAKE_SERVED="llama,llama-spec")
    try:
        common = ("--concurrency", "1", "--requests", "3", "--warmup", "0", "--min-pairs", "2", "--no-lossless",
                  "--json", "--no-progress")
        out = playbook("load", "--baseline-url", url, "--spec-url", url, "--model", "llama-spec",
                       "--baseline-model", "llama", "--run-dir", str(tmp_path / "named"), *common)
        assert out.returncode == 0 and "same server" not in out.stderr, out.stderr  # one URL, two models
        assert any("answers as model 'llama', the speculative server as 'llama-spec'" in w
                   for w in json.loads(out.stdout)["warnings"])
        out = playbook("load", "--baseline-url", url, "--spec-url", url, "--run-dir", str(tmp_path / "unnamed"), *common)
        assert out.returncode == 0 and "lists 2 models (llama, llama-spec): measuring the first, llama" in out.stderr
        assert "same server" in out.stderr  # the same URL and model on both sides compares a server with itself
        out = playbook("load", "--baseline-url", url, "--spec-url", url, "--baseline-model", "nope",
                       "--run-dir", str(tmp_path / "wrong"), *common)
        assert out.returncode == 1 and "nope" in out.stderr and "--baseline-model" in out.stderr
    finally:
        stop_fake(proc)
