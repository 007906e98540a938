"""Accelerator facts: the shipped GPU catalog, nvidia-smi detection, and the CPU pseudo-entry."""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import yaml

from .errors import ParameterError
from .schemas.models import GPUSpec


@lru_cache(maxsize=1)
def _catalog() -> dict[str, dict]:
    text = resources.files("playbook.helpers.catalog").joinpath("gpus.yaml").read_text()
    return yaml.safe_load(text)["gpus"]


def gpu_names() -> list[str]:
    return list(_catalog())


def host_memory_gib() -> float:
    """Total memory of this machine (what the CPU backend's memory fraction applies to)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return 0.0


# A MIG instance's profile after the GPU's name, as nvidia-smi -L prints it ('NVIDIA A100-SXM4-80GB MIG 3g.40gb'):
# <compute slices>g.<memory GB>gb (NVIDIA MIG User Guide, "Supported MIG Profiles"; '+me' and '-me' variants too).
_MIG_PROFILE = re.compile(r"\s+MIG\s+(\d+)g\.(\d+)gb\S*\s*$", re.IGNORECASE)
_MIG_COMPUTE_SLICES = 7  # A100, H100, H200, B200: 7 GPU slices


def get_gpu(name: str, memory_param: str | None = None) -> GPUSpec:
    """A catalog entry by name (case- and dash-insensitive), by the product name nvidia-smi prints
    ('NVIDIA H100 80GB HBM3'), or by its family and what else the name says ('H100-SXM5-80GB': :func:`by_family`);
    unknown names list the family's entries first, then close matches. A MIG instance's name (:func:`mig_instance`)
    gets its profile's share of the GPU. ``memory_param``: how the caller's user gives the memory of a GPU the
    catalog lacks (``gpu_memory_gib`` in a profile; default: playbook memory's --gpu-memory-gib)."""
    if mig := _MIG_PROFILE.search(name):
        return mig_instance(get_gpu(name[:mig.start()], memory_param), int(mig.group(1)), int(mig.group(2)))

    cname = {_key(n): n for n in _catalog()}.get(_key(name)) or match_smi_name(name)
    if cname is None:
        typed = _key(name)
        # 'H100' names two form factors: say both, not the nearest spelling (H200)
        forms = [n for n in gpu_names() if typed and _key(n).startswith(typed)]
        family, narrowed = by_family(name)
        if len(forms) <= 1 and len(narrowed) == 1:
            cname = narrowed[0]
        elif len(forms) > 1 or len(narrowed) > 1:
            named = forms if len(forms) > 1 else narrowed
            raise ParameterError(f"'{name}' names more than one GPU in the catalog: {' or '.join(named)}",
                                 f"use {' or '.join(named)} (nvidia-smi -L prints which)")
        else:
            close = list(dict.fromkeys(forms + family + difflib.get_close_matches(name, gpu_names(), n=4, cutoff=0.3)))
            other = (f"for a GPU the catalog lacks, give {memory_param}, its memory in GiB, in place of its name"
                     if memory_param else "playbook memory also takes --gpu-memory-gib for another GPU")
            raise ParameterError(
                f"unknown GPU '{name}'" + (f"; closest: {', '.join(close[:4])}" if close else ""),
                f"use one of {', '.join(gpu_names())} ({other})",
            )
    entry = {k: v for k, v in _catalog()[cname].items() if k in GPUSpec.model_fields}
    spec = GPUSpec(name=cname, **entry)
    if spec.is_cpu:
        spec.memory_gib = round(host_memory_gib(), 2)
        spec.detected = True
    return spec


def _key(n: str) -> str:
    return n.lower().replace("-", "").replace(" ", "").replace("_", "")


_MEMORY_WORD = re.compile(r"(\d+)(?:gb|g|gib)")
_FORM_WORD = re.compile(r"(sxm|pcie|nvl)\d*")


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s_-]+", text.lower()) if w]


def _family(words: list[str]) -> str | None:
    """The model number among a name's words: the first with a digit that is not a memory size (H100, A100, 6000)."""
    return next((w for w in words if any(c.isdigit() for c in w) and not _MEMORY_WORD.fullmatch(w)), None)


def by_family(name: str) -> tuple[list[str], list[str]]:
    """(the catalog entries of the name's family, those its other words agree with): 'H100 80GB' is the family H100
    (H100-SXM, H100-PCIe, H100-NVL), of which the 80 GB ones are H100-SXM and H100-PCIe; 'H100-SXM5-80GB' leaves
    H100-SXM. The words read are a memory size (within 12% of the entry's GiB) and a form factor (SXM, PCIe, NVL);
    others (HBM3, NVIDIA) are ignored. ([], []) when no entry has the name's model number."""
    words = _words(name)
    fam = _family(words)
    if fam is None:
        return [], []
    family = [n for n in gpu_names() if _family(_words(n)) == fam]
    narrowed = list(family)
    for w in words:
        if m := _MEMORY_WORD.fullmatch(w):
            size = int(m.group(1))
            narrowed = [n for n in narrowed if _catalog()[n].get("memory_gib")
                        and abs(_catalog()[n]["memory_gib"] - size) <= 0.12 * size]
        elif m := _FORM_WORD.fullmatch(w):
            form = m.group(1)
            narrowed = [n for n in narrowed if any(x.startswith(form) for pat in [n, *_catalog()[n].get("nvidia_smi", [])]
                                                   for x in _words(pat))]
    return family, narrowed


def mig_instance(gpu: GPUSpec, compute_slices: int, memory_gb: int) -> GPUSpec:
    """The share of ``gpu`` a MIG instance <compute_slices>g.<memory_gb>gb has: its profile's memory (GB as the
    profile names it), compute in proportion to its slices of 7, bandwidth in proportion to its memory (each
    memory slice has its own share of the memory controllers), and no NVLink (a MIG instance has no peer-to-peer:
    tensor parallelism across instances is not possible)."""
    share = memory_gb * 1e9 / 2**30 / gpu.memory_gib if gpu.memory_gib else 1.0
    compute = min(compute_slices / _MIG_COMPUTE_SLICES, 1.0)
    return gpu.model_copy(update={
        "name": f"{gpu.name} MIG {compute_slices}g.{memory_gb}gb", "memory_gib": round(memory_gb * 1e9 / 2**30, 2),
        "bandwidth_gbs": gpu.bandwidth_gbs * min(share, 1.0) if gpu.bandwidth_gbs else gpu.bandwidth_gbs,
        "bf16_tflops": gpu.bf16_tflops * compute if gpu.bf16_tflops else gpu.bf16_tflops,
        "fp8_tflops": gpu.fp8_tflops * compute if gpu.fp8_tflops else gpu.fp8_tflops,
        "interconnect_gbs": None})


# Characters that continue a model number: a letter, digit, '_' or '-' ('A10G', 'L40S', 'A100-SXM4-80GB', 'H200-NVL').
_JOINED = r"[\w-]"


def _names(pattern: str, smi_name: str) -> bool:
    """Whether ``pattern`` occurs in the product name as whole words, not inside a longer model number on
    either side ('B300' is not in 'GB300'; 'L4' is not in 'L40S' or 'L4X', 'H200' not in 'H200-NVL')."""
    whole = rf"(?<!{_JOINED}){re.escape(pattern.lower())}(?!{_JOINED})"
    return re.search(whole, smi_name.lower()) is not None


def match_smi_name(smi_name: str) -> str | None:
    """The catalog name for an nvidia-smi product name, e.g. 'NVIDIA H100 80GB HBM3' -> 'H100-SXM'
    (the longest pattern that names it wins: 'NVIDIA H800 PCIe' is H800-PCIe, not H800)."""
    best = None
    for name, entry in _catalog().items():
        for pat in entry.get("nvidia_smi", []):
            if _names(pat, smi_name) and (best is None or len(pat) > best[1]):
                best = (name, len(pat))
    return best[0] if best else None


class SmiGpu(NamedTuple):
    index: int
    name: str
    memory_mib: float


def nvidia_smi_gpus() -> list[SmiGpu]:
    """The NVIDIA GPUs this process may use: those nvidia-smi lists (index, product name, total memory) that
    ``CUDA_VISIBLE_DEVICES`` leaves visible, as vLLM will see them; [] without nvidia-smi."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,name,memory.total,uuid", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=15, check=True,
        ).stdout
        rows = [[x.strip() for x in line.split(",")] for line in out.strip().splitlines() if line.strip()]
        gpus = {uuid: SmiGpu(int(idx), name, float(mib)) for idx, name, mib, uuid in rows}
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask and "MIG-" in mask:
        return visible_mig(gpus, _nvidia_smi_list(), mask)
    return visible(gpus, mask)


def _nvidia_smi_list() -> str:
    """``nvidia-smi -L``: the GPUs and their MIG instances with UUIDs ('' when it fails)."""
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=15, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def visible(gpus: dict[str, SmiGpu], mask: str | None) -> list[SmiGpu]:
    """The GPUs (by UUID) a ``CUDA_VISIBLE_DEVICES`` value leaves, in its order: indices or UUID prefixes, read up to
    the first entry that names no GPU, as the CUDA runtime reads it (CUDA C Programming Guide, "CUDA Environment
    Variables"); all of them when it is unset. A mask naming MIG instances: :func:`visible_mig`."""
    if mask is None:
        return list(gpus.values())
    out: list[SmiGpu] = []
    for entry in (e.strip() for e in mask.split(",")):
        match = [g for uuid, g in gpus.items() if (entry.isdigit() and g.index == int(entry))
                 or (entry.startswith("GPU-") and uuid.startswith(entry))]
        if len(match) != 1 or match[0] in out:
            break
        out.append(match[0])
    return out


# `nvidia-smi -L`: "GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-...)" then, per MIG instance, "  MIG 3g.40gb Device 0:
# (UUID: MIG-...)" (driver R470+; older drivers name an instance MIG-GPU-<gpu uuid>/<gi>/<ci>).
_SMI_GPU = re.compile(r"^GPU (\d+): .*\(UUID: (GPU-[^)\s]+)\)")
_SMI_MIG = re.compile(r"^\s+MIG (\d+g\.(\d+)gb)\s+Device\s+(\d+): \(UUID: (MIG-[^)\s]+)\)")


def visible_mig(gpus: dict[str, SmiGpu], smi_list: str, mask: str) -> list[SmiGpu]:
    """The one MIG instance a CUDA process sees when ``CUDA_VISIBLE_DEVICES`` names MIG instances: the first one
    named (CUDA enumerates a single MIG device per process: NVIDIA MIG User Guide, "CUDA Device Enumeration"), as
    its GPU's product name plus the profile ('NVIDIA A100-SXM4-80GB MIG 3g.40gb') and the profile's memory (40 GB,
    read from its name: nvidia-smi's memory.total is the whole GPU's). A MIG instance nvidia-smi -L does not list
    leaves no GPU."""
    instances: dict[str, SmiGpu] = {}
    parent: SmiGpu | None = None
    for line in smi_list.splitlines():
        if m := _SMI_GPU.match(line):
            parent = gpus.get(m.group(2))
        elif (m := _SMI_MIG.match(line)) and parent is not None:
            profile, gb, uuid = m.group(1), int(m.group(2)), m.group(4)
            instances[uuid] = SmiGpu(parent.index, f"{parent.name} MIG {profile}", gb * 1e9 / 2**20)
    first = mask.split(",", 1)[0].strip()
    named = [g for uuid, g in instances.items() if first.startswith("MIG-") and uuid.startswith(first)]
    return named if len(named) == 1 else []


def detect() -> tuple[GPUSpec, int] | None:
    """(GPU, count) from nvidia-smi when present; None when there is no NVIDIA GPU."""
    gpus = nvidia_smi_gpus()
    if not gpus:
        return None
    first = gpus[0]
    try:
        spec = get_gpu(first.name)  # a catalog GPU, or a MIG instance of one
    except ParameterError:
        spec = GPUSpec(name=first.name, source="nvidia-smi")
    spec.memory_gib = round(first.memory_mib / 1024, 2)
    spec.detected = True
    return spec, len(gpus)


def resolve_gpu(name: str, memory_gib: float = 0.0, embedded: bool = False) -> GPUSpec:
    """The GPU to budget for: a catalog name, or detected, or 'cpu' on the embedded engine."""
    if name:
        spec = get_gpu(name)
    elif embedded:
        spec = get_gpu("cpu")
    else:
        found = detect()
        if found is None and not memory_gib:
            raise ParameterError(
                "no GPU given and none detected (nvidia-smi absent)",
                f"pass --gpu NAME ({', '.join(gpu_names())}) or --gpu-memory-gib X",
            )
        spec = found[0] if found else GPUSpec(name="custom")
    if memory_gib:
        spec.memory_gib = memory_gib
    return spec
