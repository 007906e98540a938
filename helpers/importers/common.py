"""What every importer shares: one imported measurement (:class:`ImportedSide`, one configuration at
one load level), its provenance, and the run directory it becomes.

A pair of sides at the same level (baseline and speculative) becomes the load step's evidence exactly
as the playbook's own load test leaves it: per-request records in ``artifacts/50_load_requests.jsonl``
(our record fields), ``artifacts/50_load.json`` (a :class:`LoadResult` built by the same analysis
functions, speedup with an independent bootstrap interval: the tools do not pair rounds), and, when the
speculative side recorded the server's acceptance counters, ``artifacts/40_sweep.json`` with that one
point. The original files are copied to ``artifacts/imported/`` and described (tool, version, SHA-256,
command) in ``artifacts/import.json`` and ``LoadResult.source``; ``run.json`` records the parameters
the report step reads. A directory that already holds a run's files is refused; with ``force`` they are
all moved into ``artifacts/replaced-<UTC time>/`` first (the imported run replaces that run whole).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..artifacts import PriorResults, RunDir, write_json_atomic
from ..errors import ImportFileError
from ..load_analysis import find_crossover, finding, level_stats, speedup_point
from ..loadgen import NEAR_ZERO_GAP_MS, LoadShape, is_burst
from ..provenance import IMPORTED_PROFILE, imported
from ..redact import redact_command
from ..schemas.load import LoadResult
from ..schemas.sweep import SweepPoint, SweepResult
from ..workload_breakdown import BREAKDOWN_CSV, breakdown, write_csv

REQUESTS_JSONL = "50_load_requests.jsonl"  # the load test's own file name (helpers/loadtest.py)
IMPORT_JSON = "import.json"
# what build_run writes (40_sweep.json is written, or removed when the files record no acceptance)
WRITES = ("run.json", "artifacts/50_load.json", f"artifacts/{REQUESTS_JSONL}", f"artifacts/{BREAKDOWN_CSV}",
          "artifacts/40_sweep.json", f"artifacts/{IMPORT_JSON}", "artifacts/imported")


@dataclass
class ImportedSide:
    """One configuration at one load level, as read from another tool's result file."""

    tool: str
    path: Path
    level: float
    level_kind: str = "concurrency"  # or "rate"
    records: list[dict] = field(default_factory=list)
    duration_s: float = 0.0
    temperature: float | None = None
    model: str = ""
    tool_version: str | None = None
    command: str | None = None
    workload: str = "imported"
    acceptance: dict | None = None  # rate, mean_length, per_position, drafts, draft_tokens, accepted
    speculation: str | None = None  # what in the file shows the server speculated (None: nothing does)
    notes: list[str] = field(default_factory=list)
    extra_files: list[Path] = field(default_factory=list)  # read too (e.g. AIPerf's aggregate): copied and hashed
    dataset: str | None = None  # the dataset the file names (vllm bench serve --dataset-name), None: not recorded
    requested: int | None = None  # the number of prompts the run was told to send (None: not recorded / time-bound)
    profile: str | None = None  # how the tool chose its load levels when it says (GuideLLM: "sweep", "concurrent", ...)
    recorded: dict[str, str] = field(default_factory=dict)  # what else the file records of where/when it ran

    @property
    def label(self) -> str:
        """The file as messages name it: its name, with its directory when the tool always writes that name
        (GuideLLM's benchmarks.json, AIPerf's profile_export.jsonl: ``spec/benchmarks.json``)."""
        return f"{self.path.parent.name}/{self.path.name}" if self.path.name in FIXED_NAMES else self.path.name

    def where(self) -> str:
        """The file and its load level, as messages name a side: ``spec.json (concurrency 4)``."""
        return f"{self.label} ({describe_level(self.level_kind, self.level)})"


FIXED_NAMES = ("benchmarks.json", "profile_export.jsonl")  # file names a tool always writes


def describe_level(kind: str, level: float) -> str:
    return f"concurrency {level:g}" if kind == "concurrency" else f"{level:g} req/s"


def spec_decode_metrics(names) -> str:
    """The spec-decode metric names a file carries, as the evidence that its server speculated (two named)."""
    names = sorted(names)
    return f"{', '.join(names[:2])}{', ...' if len(names) > 2 else ''}"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_json(path: Path, tool: str) -> object:
    path = Path(path).expanduser()
    if path.is_dir():
        raise ImportFileError(f"{path} is a directory, not a {tool} result file",
                              "give the result file the tool wrote inside it")
    if not path.is_file():
        raise ImportFileError(f"{tool} result file {path} does not exist", "give the path of the file the tool wrote")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImportFileError(f"{path} is not a JSON file ({str(exc).splitlines()[0][:120]})",
                           f"give the JSON file {tool} wrote") from None


def record(i: int, *, ok: bool, error: str | None, prompt_tokens: int | None, output_tokens: int | None,
           ttft_ms: float | None, e2e_ms: float | None, tpot_ms: float | None, chunk_gaps_ms: list[float],
           sent_s: float, workload: str, temperature: float | None, text: str = "", spec: dict | None = None) -> dict:
    """One request in our record fields (schemas/loadgen.RequestRecord); id and phase are set on writing.
    ``chunk_gaps_ms``: gaps between token-carrying chunks, tested for burst delivery as our own streams are."""
    gaps = [g for g in chunk_gaps_ms if g is not None]
    near = sum(1 for g in gaps if g < NEAR_ZERO_GAP_MS)
    decode = sum(gaps) if gaps else None
    return {
        "id": str(i), "prompt_id": str(i), "workload": workload, "temperature": temperature,  # None: not recorded
        "phase": "", "warmup": False, "scheduled_s": sent_s, "sent_s": sent_s, "dispatch_lag_ms": 0.0,
        "status": "ok" if ok else "http_error", "http_status": None, "error": None if ok else (error or "failed")[:300],
        "prompt_tokens": prompt_tokens, "output_tokens": output_tokens if ok else 0,
        "ttft_ms": ttft_ms if ok else None, "tpot_ms": tpot_ms if ok else None, "e2e_ms": e2e_ms,
        "itl_ms": gaps if ok else [], "chunks": len(gaps) + 1 if ok and ttft_ms is not None else 0, "malformed_lines": 0,
        "usage_from_server": False, "spec": spec, "text": text[:2000] if text else "",
        "burst": bool(ok and is_burst(len(gaps), near, decode, e2e_ms)), "gaps_near_zero": near,
    }


def tpot(ttft_ms: float | None, e2e_ms: float | None, out: int | None) -> float | None:
    """(E2E - TTFT) / (output tokens - 1): the load generator's TPOT, and vllm bench serve's."""
    if ttft_ms is None or e2e_ms is None or not out or out < 2:
        return None
    return (e2e_ms - ttft_ms) / (out - 1)


def _phase(config: str, side: ImportedSide) -> str:
    lvl = f"c{side.level:g}" if side.level_kind == "concurrency" else f"rate{side.level:g}rps"
    return f"{config}@{lvl}/imported"


def prior_results(run_dir: str | Path, force: bool) -> PriorResults:
    """Everything an earlier run left in ``run_dir``: the import rewrites run.json, 50_load.json and 40_sweep.json,
    and the rest (that run's candidates, memory, preflight, notebooks, report) would be reported beside
    the imported load as if measured with it. Refused without ``force``; with it, moved aside by
    :func:`build_run`."""
    prior = PriorResults.find(run_dir, ["*"])
    what = "a load result" if "artifacts/50_load.json" in prior.paths else "the results of a run"
    prior.refuse_unless(force, "import", what, ImportFileError, replaces=WRITES)
    return prior


def _inside(path: Path, run_dir: Path, rel: list[str]) -> bool:
    path = path.resolve()
    return any(path == (run_dir / r) or (run_dir / r) in path.parents for r in rel)


# What each tool sends when not told a temperature, and where its files would record one.
TEMPERATURE_SENT = {
    "guidellm": "GuideLLM sends none by default",
    "vllm bench serve": "vllm bench serve sends the one given with --temperature but records it only as --metadata "
                        "temperature=T, and vLLM 0.32's sends none without it",
    "aiperf": "AIPerf sends one only with --extra-inputs temperature:T (then recorded)",
}
UNRECORDED_TEMPERATURE = (
    "the files do not record the sampling temperature, so it is filed as unknown, not as 0 ({sent}; a request "
    "without one gets the server's default: the model's generation_config.json temperature, else 1.0). The report "
    "cannot judge acceptance or the speedups against the production temperature without it (INCONCLUSIVE where "
    "they decide): import again with --temperature T --force once you know it")


def _t(x: float) -> str:
    return f"T={x:g}"


def resolve_temperature(pairs: list[tuple[ImportedSide, ImportedSide]],
                        temperature: float | None) -> tuple[float | None, list[str]]:
    """The one sampling temperature of the import, and the warnings about it. Acceptance and speed depend on the
    temperature, so every side must have run at one, and the value filed (50_load.json, 40_sweep.json, run.json,
    every per-request record) is the one the files record:

    - files recording different temperatures are refused, each file's value named (a baseline at T=0 and a
      speculative run at T=1, or levels at different temperatures, cannot be compared);
    - ``--temperature`` (``temperature``) different from a recorded value is refused: it would file an acceptance
      measured at one temperature as another's. The same value, or files recording none, take it;
    - a side recording none while others record T takes T, with a warning."""
    sides = [s for pair in pairs for s in pair]
    recorded = {}
    for s in sides:
        if s.temperature is not None:
            recorded.setdefault(s.label, s.temperature)
    values = sorted(set(recorded.values()))
    each = ", ".join(f"{name}: {_t(v)}" for name, v in recorded.items())
    if len(values) > 1 and max(values) - min(values) > 1e-9:
        pairs_apart = [(b, s) for b, s in pairs if b.temperature is not None and s.temperature is not None
                       and abs(b.temperature - s.temperature) > 1e-9]
        what = ("the baseline and the speculative files record different sampling temperatures"
                if pairs_apart else "the files record different sampling temperatures")
        raise ImportFileError(
            f"{what} ({each}): acceptance and speed measured at different temperatures cannot be compared",
            "import runs made at one temperature: re-run the baseline and the speculative benchmark with the same "
            "temperature (vllm bench serve --temperature T --metadata temperature=T; aiperf --extra-inputs "
            "temperature:T)")
    warnings: list[str] = []
    if temperature is not None:
        if values and abs(values[0] - temperature) > 1e-9:
            raise ImportFileError(
                f"--temperature {temperature:g} differs from the temperature the files record ({each}): the "
                f"acceptance measured at {_t(values[0])} would be filed as {_t(temperature)}'s",
                f"drop --temperature (the recorded {_t(values[0])} is used), or re-run the benchmarks at "
                f"{_t(temperature)} if that is the temperature to measure")
        return temperature, warnings
    if not values:
        return None, warnings
    t = values[0]
    silent = list(dict.fromkeys(x.label for x in sides if x.temperature is None))
    if silent:
        warnings.append(f"{', '.join(silent)} record(s) no sampling temperature: taken as {_t(t)}, "
                        f"the value {', '.join(recorded)} record(s); pass --temperature {t:g} to "
                        "confirm it, or re-run at one recorded temperature")
    return t, warnings


def failure_warnings(pairs: list[tuple[ImportedSide, ImportedSide]]) -> list[str]:
    """A side whose requests failed, said plainly: how many of how many, and the first error text the file
    records. A side with none completed has no speed, so its level has no speedup (the report is INCONCLUSIVE);
    an import has no server log, so the error text is the only clue the files carry."""
    out = []
    for base, spec in pairs:
        for role, side in (("baseline", base), ("speculative", spec)):
            failed = [r for r in side.records if r.get("status") != "ok"]
            if not failed:
                continue
            n = len(side.records)
            first = next((r["error"] for r in failed if r.get("error") and r["error"] != "failed"), None)
            err = f"first error: {first!r}" if first else "the file records no error text"
            if len(failed) == n:
                out.append(f"the {role} run {side.where()} has no completed request: all {n} failed ({err}); "
                           f"this level has no speedup. An import has no server log: look at the log of the "
                           f"{role} server it measured, fix the cause and re-run the benchmark")
            else:
                out.append(f"the {role} run {side.where()}: {len(failed)} of {n} requests failed ({err})")
    return out


def build_run(pairs: list[tuple[ImportedSide, ImportedSide]], run_dir: str | Path, *, temperature: float | None = None,
              params: dict | None = None, seed: int = 0, force: bool = False,
              warnings: list[str] | None = None, prior: PriorResults | None = None) -> LoadResult:
    """Write the pairs (baseline, spec), one per level, into ``run_dir`` as the load step's evidence. An earlier
    run's files there are refused, or with ``force`` moved into ``artifacts/replaced-<UTC time>/`` first
    (``LoadResult.source["replaced"]`` says where; ``prior``: :func:`prior_results` when already asked).
    ``warnings`` join the result's."""
    prior = prior if prior is not None else prior_results(run_dir, force)
    if not pairs:
        raise ImportFileError("nothing to import", "give a baseline file and a speculative file")
    t, t_warnings = resolve_temperature(pairs, temperature)  # refused before anything is written
    kinds = {s.level_kind for pair in pairs for s in pair}
    if len(kinds) > 1:
        raise ImportFileError("the files mix concurrency levels and request rates", "import one kind of load at a time")
    inside = [f for pair in pairs for s in pair for f in (s.path, *s.extra_files) if _inside(f, prior.run_dir, prior.paths)]
    if inside:
        raise ImportFileError(f"{inside[0]} is among the earlier results of {prior.run_dir} that --force would move away",
                              "copy the file out of the run directory first, or import into a new directory")
    for side in (s for pair in pairs for s in pair):  # a key, a bearer token or a URL password never lands in 50_load
        side.command = redact_command(side.command)
    backup = prior.back_up("import")
    run = RunDir(run_dir)
    imported = run.artifacts / "imported"
    imported.mkdir(parents=True, exist_ok=True)
    (run.artifact(REQUESTS_JSONL)).unlink(missing_ok=True)
    files, levels, speedups, all_records = [], [], [], []
    warnings = [*failure_warnings(pairs), *(warnings or []), *t_warnings]
    for n, (base, spec) in enumerate(sorted(pairs, key=lambda p: p[0].level), start=1):
        if base.level != spec.level:
            raise ImportFileError(f"baseline {base.path} ran at {base.level:g} and speculative {spec.path} at {spec.level:g}",
                               "pair files measured at the same concurrency or request rate")
        per_config = {}
        for config, side in (("baseline", base), ("spec", spec)):
            sha = sha256(side.path)
            attempt = f"imp{sha[:8]}{n}"
            for j, src in enumerate([side.path, *side.extra_files]):
                copy = imported / f"{config}-{n}{f'-{j}' if j else ''}-{src.name}"
                shutil.copyfile(src, copy)
                files.append({"role": config, "level": side.level, "path": str(src.resolve()),
                              "copied_to": str(copy.relative_to(run.path)), "sha256": sha if not j else sha256(src),
                              "tool_version": side.tool_version, "command": side.command, "model": side.model,
                              "notes": side.notes if not j else [], "recorded": side.recorded if not j else {}})
            recs = []
            for i, r in enumerate(side.records):
                r = dict(r, id=f"{_phase(config, side)}/{attempt}-{i}", phase=_phase(config, side), workload=r["workload"])
                if t is not None:  # the one temperature filed (resolve_temperature): records say the same
                    r["temperature"] = t
                recs.append(r)
            all_records.extend(recs)
            shape = LoadShape("concurrency", concurrency=int(side.level)) if side.level_kind == "concurrency" \
                else LoadShape("constant", rate=side.level)
            st = level_stats(config, shape, recs, side.duration_s, workload=side.workload)
            st.phase, st.attempt, st.attempts, st.rounds = _phase(config, side), attempt, [attempt], 1
            if config == "spec" and side.acceptance:
                st.acceptance_rate = side.acceptance.get("rate")
                st.mean_acceptance_length = side.acceptance.get("mean_length")
            per_config[config] = (st, recs)
            levels.append(st)
        (b, brecs), (s, srecs) = per_config["baseline"], per_config["spec"]
        sp = speedup_point(base.level, brecs, srecs, b, s, seed=seed)
        sp.temperature = t
        speedups.append(sp)
        warnings.extend(f"{side.path.name}: {note}" for side in (base, spec) for note in side.notes)
    with open(run.artifact(REQUESTS_JSONL), "w") as f:
        for r in all_records:
            f.write(json.dumps(r) + "\n")
    first = pairs[0][1]
    load_t = t
    if load_t is None:
        warnings.append(UNRECORDED_TEMPERATURE.format(sent=TEMPERATURE_SENT.get(first.tool, f"{first.tool} "
                                                                                   "records none")))
        if any(s.acceptance for _, s in pairs):
            warnings.append("the speculative run's acceptance counters are kept in 50_load.json's levels but not filed "
                            "as a sweep point (40_sweep.json): a point is an acceptance at a known temperature")
    source = {"tool": first.tool, "tool_version": first.tool_version, "files": files,
              "command": first.command, "imported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "importer": "playbook import"}
    if backup is not None:
        source["replaced"] = {"moved_to": str(backup.relative_to(run.path)), "paths": prior.paths}
    res = LoadResult(level_kind=first.level_kind, workload=first.workload, temperature=load_t,
                     levels=levels, speedup=sorted(speedups, key=lambda x: x.level), design="sequential",
                     pinning=f"imported from {first.tool}: not measured by the playbook", source=source,
                     warnings=warnings)
    res.crossover = find_crossover(res.speedup)
    res.error_rate = (sum(x.errors for x in levels) / total) if (total := sum(x.requests for x in levels)) else 0.0
    res.finding = f"imported from {first.tool}: " + finding(res)
    params = _configured(pairs, params or {}, res.warnings)
    res.breakdown = breakdown(all_records, res, seed)
    write_csv(res.breakdown, run.artifact(BREAKDOWN_CSV))
    run.write_json("50_load.json", res)
    swept = _write_sweep(run, pairs, load_t, source)
    write_json_atomic(run.artifact(IMPORT_JSON), source)
    _write_run_json(run, pairs, load_t, params, source, has_sweep=swept)
    return res


def _configured(pairs, params: dict, warnings: list[str]) -> dict:
    """What the speculative server ran, for the report and its launch command: the flags given, k from the
    acceptance counters' positions when not given, and no draft rather than the embedded one when none is named
    (the report would otherwise describe the playbook's own demo pair). Says what is still unknown."""
    out = dict(params)
    per_pos = next((s.acceptance.get("per_position") for _, s in pairs if s.acceptance and
                    s.acceptance.get("per_position")), None)
    if "num_speculative_tokens" not in out and per_pos:
        out["num_speculative_tokens"] = len(per_pos)
    out.setdefault("draft_model", "")
    missing = [flag for flag, key in (("--method", "method"), ("--draft-model", "draft_model"),
                                      ("--num-speculative-tokens", "num_speculative_tokens"))
               if not out.get(key) and not (key == "draft_model" and out.get("method") not in (None, "draft_model"))]
    if missing:
        warnings.append(f"the files do not say what the speculative server ran: give {', '.join(missing)} so the "
                        "report describes it and its launch command is right")
    return out


def _write_sweep(run: RunDir, pairs, temperature: float | None, source: dict) -> bool:
    """The speculative side's acceptance (the tool's counter deltas) as a one-point sweep at the load's temperature;
    none (False) when the files record no acceptance, or no temperature (a sweep point is an acceptance *at* a
    temperature: filed at a guessed one, the report would judge it as measured there)."""
    acc = [s.acceptance for _, s in pairs if s.acceptance and s.acceptance.get("draft_tokens")]
    if not acc or temperature is None:
        run.artifact("40_sweep.json").unlink(missing_ok=True)
        return False
    drafts = sum(a.get("drafts") or 0 for a in acc)
    draft_tokens = sum(a["draft_tokens"] for a in acc)
    accepted = sum(a.get("accepted") or 0 for a in acc)
    per_pos = acc[0].get("per_position") or []
    t = temperature
    point = SweepPoint(temperature=t, acceptance_rate=accepted / draft_tokens,
                       mean_acceptance_length=1 + accepted / drafts if drafts else None, per_position=per_pos,
                       drafts=drafts, draft_tokens=draft_tokens, accepted=accepted,
                       requests=sum(len(s.records) for _, s in pairs), source="counters")
    k = len(per_pos) or None
    sweep = SweepResult(production_temperature=t, production_acceptance=point.acceptance_rate, temperatures=[point],
                        num_speculative_tokens=k,
                        finding=f"imported from {source['tool']}: acceptance {point.acceptance_rate:.2f} at T={t:g} "
                                "(the server's counters over the speculative run)")
    run.write_json("40_sweep.json", sweep)
    return True


def _write_run_json(run: RunDir, pairs, temperature: float | None, params: dict, source: dict, has_sweep: bool) -> None:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    model = pairs[0][1].model
    base_model = pairs[0][0].model  # another name only when confirmed one model (playbook import --same-model)
    parameters = {"mode": "managed", **({"target_model": model, "served_model_name": model} if model else {}),
                  **({"baseline_served_model_name": base_model} if model and base_model and base_model != model else {}),
                  **({"production_temperature": temperature} if temperature is not None else {}), **params}
    steps = [{"name": "50_load", "status": "done", "finished_at": now}]
    if has_sweep:
        steps.insert(0, {"name": "40_sweep", "status": "done", "finished_at": now})
    state = {"run_id": run.path.name, "created_at": now, "profile": f"{IMPORTED_PROFILE} ({source['tool']})",
             "parameters": parameters, "steps": steps,
             "versions": {k: v for k, v in {source["tool"]: source.get("tool_version")}.items() if v},
             # the tool measured, on hardware its files do not record: this machine's facts are not the run's
             "provenance": imported(source).model_dump(mode="json")}
    write_json_atomic(run.path / "run.json", state)
