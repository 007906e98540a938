"""Import other benchmark tools' results as the load step's evidence (``playbook import``).

``import_results("vllm-bench", [BASELINE, SPEC], run_dir)``: read each file with its tool's reader
(:mod:`.vllm_bench`, :mod:`.guidellm`, :mod:`.aiperf`), pair baseline and speculative measurements
at the same load level, refuse what the files show cannot be compared (one file on both sides, swapped
sides, two models), and write the run directory (:func:`.common.build_run`) that ``playbook
report RUN_DIR`` decides on as on the playbook's own measurements.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from shlex import quote

from ..errors import ImportFileError
from ..schemas.load import LoadResult
from . import aiperf, guidellm, vllm_bench
from .common import ImportedSide, build_run, describe_level, prior_results, sha256

READERS: dict[str, Callable[[str | Path], list[ImportedSide]]] = {
    "vllm-bench": vllm_bench.read,
    "guidellm": guidellm.read,
    "aiperf": aiperf.read,
}


def _levels(sides: list[ImportedSide]) -> str:
    return ", ".join(f"{x:g}" for x in sorted({s.level for s in sides})) or "none"


def _read_as(baseline: list[ImportedSide], spec: list[ImportedSide]) -> str:
    """How the files were read, side by side: ``baseline: b1.json (concurrency 1), ...; speculative: ...``."""
    def files(sides):
        return ", ".join(s.where() for s in sides) or "none"
    return f"baseline: {files(baseline)}; speculative: {files(spec)}"


def pair_sides(baseline: list[ImportedSide], spec: list[ImportedSide], *, tool: str = "TOOL",
               given: list[str | Path] | None = None) -> list[tuple[ImportedSide, ImportedSide]]:
    """Baseline and speculative sides at the same level (concurrency and request rate are told apart); a level
    only one side measured is an error that says how the files were read (they go in pairs BASELINE SPEC, one
    pair per level), and, from ``given`` (the files in the order typed), names the order that would pair them
    when all the baselines came first. GuideLLM sweeps pick their rates from each server's throughput, so their
    rates never match: the error says to use fixed rates."""
    b = {(x.level_kind, x.level): x for x in baseline}
    s = {(x.level_kind, x.level): x for x in spec}
    only = sorted(set(b) ^ set(s))
    twice = [(role, k) for role, sides, d in (("baseline", baseline, b), ("speculative", spec, s))
             for k in d if sum((x.level_kind, x.level) == k for x in sides) > 1]
    if not only and not twice:
        return [(b[k], s[k]) for k in sorted(b)]
    if only:
        problem = (f"levels {', '.join(f'{lvl:g}' for _, lvl in only)} were measured on one side only "
                   f"(baseline: {_levels(baseline)}; speculative: {_levels(spec)})")
    else:
        role, (kind, lvl) = twice[0]
        problem = f"{describe_level(kind, lvl)} is given twice as a {role} result"
    problem += (". The files go in pairs, the run without speculation then the run with it, one pair per level "
                f"(B1 S1 B4 S4 ...): they were read as {_read_as(baseline, spec)}")
    fix = ("give a baseline and a speculative result for every concurrency or request rate, in pairs: "
           f"playbook import {tool} BASELINE1 SPEC1 BASELINE2 SPEC2 ...")
    sides = {}
    for x in (*baseline, *spec):
        sides.setdefault(Path(x.path), set()).add((x.level_kind, x.level))
    if given and len(given) >= 4:  # all the baselines first (B1 B4 S1 S4)? then halves pair up
        files = [Path(f).expanduser() for f in given]
        half = len(files) // 2
        levels = [sides.get(f if f in sides else f / "profile_export.jsonl", set()) for f in files]
        first, second = levels[:half], levels[half:]
        if all(first) and sorted(map(sorted, first)) == sorted(map(sorted, second)):
            order = [files[half:][second.index(lv)] for lv in first]
            interleaved = [str(x) for pair in zip(files[:half], order, strict=True) for x in pair]
            problem += "; it looks as if all the baselines came first"
            fix = f"give each level's baseline then its speculative file: playbook import {tool} {' '.join(interleaved)}"
    multi = [p for p, lv in sides.items() if len(lv) > 1]
    sweep = any(x.profile == "sweep" for x in (*baseline, *spec))
    if any(k == "rate" for k, _ in only) and (sweep or (multi and any(x.tool == "guidellm" for x in baseline))):
        problem += ("; GuideLLM's sweep picks its request rates from each server's own measured throughput, so a "
                    "baseline sweep and a speculative sweep never run the same rates")
        fix = ("run both benchmarks at the same fixed rates (guidellm --rate-type constant --rate 1,2,4, or "
               "--profile constant) or concurrencies (--rate-type concurrent / --profile concurrent), then import "
               "those files")
    raise ImportFileError(problem, fix)


def _same_content(a: Path, b: Path) -> bool:
    a, b = Path(a).resolve(), Path(b).resolve()
    return a == b or (a.stat().st_size == b.stat().st_size and sha256(a) == sha256(b))


def check_not_the_same(tool: str, baseline: list[ImportedSide], spec: list[ImportedSide]) -> None:
    """A file (or a byte-identical copy) given as both a baseline and a speculative result compares a run
    with itself: refused."""
    for b in dict.fromkeys(x.path for x in baseline):
        for s in dict.fromkeys(x.path for x in spec):
            if _same_content(b, s):
                how = "the same file" if b.resolve() == s.resolve() else "byte-identical files"
                raise ImportFileError(
                    f"baseline {b} and speculative {s} are {how}: the import would compare one run with itself",
                    f"give the result of the run without speculation first and that of the run with it second: "
                    f"playbook import {tool} BASELINE SPEC")


def _model_name(model: str) -> str:
    """A model's last path component, lower case: a served name, a hub id and a local directory of one model
    compare equal (``/models/Llama-3.1-8B`` and ``meta-llama/Llama-3.1-8B``)."""
    return model.strip().rstrip("/").rsplit("/", 1)[-1].lower()


def check_pairs(tool: str, pairs: list[tuple[ImportedSide, ImportedSide]], same_model: bool = False) -> list[str]:
    """Refuse pairs the files show are swapped (the baseline speculated, the speculative side did not) or of
    different models (when both name one); the warnings of what is only doubtful. ``same_model``: the user
    confirmed that two different names are one target model (a router serving both roles by model name,
    ``playbook import --same-model``): they are compared, with a warning naming both."""
    warnings = []
    for b, s in pairs:
        if b.speculation and not s.speculation:
            raise ImportFileError(
                f"the files look swapped: the baseline {b.path} carries {b.speculation}, so its server speculated, "
                f"and the speculative {s.path} carries none; imported so, a loss would read as a win",
                f"give the baseline (the run without speculation) first: playbook import {tool} {quote(str(s.path))} "
                f"{quote(str(b.path))}")
        if b.speculation and s.speculation:
            warnings.append(f"the baseline {b.path.name} carries {b.speculation} too: its server seems to speculate, "
                            "so the speedup compares two speculative configurations, not speculation with its absence")
        if b.model and s.model and _model_name(b.model) != _model_name(s.model) and not same_model:
            raise ImportFileError(
                f"the baseline {b.path} ran model '{b.model}' and the speculative {s.path} ran '{s.model}': "
                "their speed cannot be compared",
                "give a baseline and a speculative result of the same target model; if these are two names of one "
                "target (a router serving the baseline and the speculative configuration by model name), confirm "
                "it with --same-model")
    unverified = [s.label for b, s in pairs if not b.speculation and not s.speculation]
    if unverified:
        warnings.append(f"neither side of {', '.join(dict.fromkeys(unverified))} records spec-decode counters or a "
                        "speculative config, so the order cannot be checked: make sure each baseline (the run without "
                        "speculation) comes before its speculative file, or a loss reads as a win")
    roles = (("", [x for pair in pairs for x in pair]),) if not same_model else \
        (("baseline ", [b for b, _ in pairs]), ("speculative ", [s for _, s in pairs]))
    for role, sides in roles:
        models = {_model_name(x.model): x.model for x in sides if x.model}
        if len(models) > 1:
            raise ImportFileError(f"the {role}files name different models ({', '.join(sorted(models.values()))}): "
                                  "the load levels would mix them",
                                  "import the results of one target model at a time")
    names = {(b.model, s.model) for b, s in pairs if b.model and s.model and _model_name(b.model) != _model_name(s.model)}
    if names:
        base, spec = sorted(names)[0]
        warnings.append(f"compared as one target model (--same-model): the baseline answered as '{base}' and the "
                        f"speculative configuration as '{spec}'")
    return warnings


# Workload checks (check_workloads). Within a pair, the baseline and the speculative run must have served the
# same prompts: latency depends on the input length (prefill, KV reads) and acceptance on the text, so a speedup
# over two workloads measures the workloads as much as speculation.
WORKLOAD_WARN = 0.10  # medians more than 10% apart: warned
WORKLOAD_REFUSE = 2.0  # input-length medians 2x apart or more: refused


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _apart(a: float, b: float) -> float:
    """How far apart two sizes are, as the larger over the smaller (inf when one is 0 and the other not)."""
    lo, hi = sorted((a, b))
    return 1.0 if hi == lo else (hi / lo if lo > 0 else float("inf"))


def check_workloads(tool: str, pairs: list[tuple[ImportedSide, ImportedSide]]) -> list[str]:
    """Compare what each pair's files record of their workload; the warnings, or an error when clearly different.

    What a serious comparison needs is the same prompts on both sides. The files do not carry the prompts, only
    their traces, so:

    - **refused**: input-length medians ``WORKLOAD_REFUSE`` (2x) or more apart. No plausible re-run of one
      workload gives that; prompt length alone moves TTFT and TPOT by as much as speculation does, so the
      "speedup" would mostly measure the workload change. Nothing is written; the fix is to re-run one side.
    - **warned** (the import goes on, the warning is printed and kept in 50_load.json's warnings, which the
      report shows): input-length medians more than 10% apart; output-length medians more than 10% apart (the
      server decides where a reply stops, so at T > 0 without ``--ignore-eos`` two runs of one workload can
      differ, and speculation need not be lossless there: a hint, not proof); a different number of prompts
      when the tools record the requested count (vllm bench serve ``num_prompts``, AIPerf's request count;
      fewer prompts widen the interval but a subset is still the same kind of workload); different dataset
      names (two spellings of one dataset are possible, e.g. a name and a path)."""
    warnings = []
    for b, s in pairs:
        at = f"different workloads at {describe_level(b.level_kind, b.level)}?"
        names = f"baseline {b.label}, speculative {s.label}"
        ins = [_median([r["prompt_tokens"] for r in x.records if r.get("prompt_tokens") is not None]) for x in (b, s)]
        outs = [_median([r["output_tokens"] for r in x.records if r.get("status") == "ok" and r.get("output_tokens")])
                for x in (b, s)]
        if None not in ins:
            apart = _apart(*ins)
            if apart >= WORKLOAD_REFUSE:
                raise ImportFileError(
                    f"the baseline and the speculative run served different workloads: median input length "
                    f"{ins[0]:g} tokens in {b.label}, {ins[1]:g} in {s.label} ({apart:.1f}x apart at "
                    f"{describe_level(b.level_kind, b.level)}); the speedup would measure the prompts, not speculation",
                    f"re-run one side with the other's prompts (same --dataset-name / --dataset-path, input and "
                    f"output lengths, --num-prompts and --seed), then: playbook import {tool} BASELINE SPEC")
            if apart - 1 > WORKLOAD_WARN:
                warnings.append(f"{at} median input length {ins[0]:g} vs {ins[1]:g} tokens ({names}; "
                                f"{(apart - 1) * 100:.0f}% apart): the speedup compares different prompts")
        if None not in outs and _apart(*outs) - 1 > WORKLOAD_WARN:
            warnings.append(f"{at} median output length {outs[0]:g} vs {outs[1]:g} tokens ({names}; "
                            f"{(_apart(*outs) - 1) * 100:.0f}% apart): check that both ran the same output length "
                            "(--random-output-len, --ignore-eos, max_tokens)")
        if b.requested is not None and s.requested is not None and b.requested != s.requested:
            warnings.append(f"{at} {b.requested} vs {s.requested} prompts ({names}): the speedup compares "
                            "different prompt sets; give both runs the same number of prompts")
        if b.dataset and s.dataset and b.dataset.strip().lower() != s.dataset.strip().lower():
            warnings.append(f"{at} dataset '{b.dataset}' vs '{s.dataset}' ({names}): the speedup and the "
                            "acceptance are of different prompts unless these name one dataset")
    return warnings


def import_results(tool: str, baseline: list[str | Path], spec: list[str | Path], run_dir: str | Path, *,
                   temperature: float | None = None, params: dict | None = None, force: bool = False,
                   same_model: bool = False, given: list[str | Path] | None = None) -> LoadResult:
    """Read the baseline and speculative files of ``tool`` and write them into ``run_dir``. ``same_model``: two
    different model names are one target (see :func:`check_pairs`); ``given``: the files in the order the user
    typed them (B1 S1 B2 S2 ...), for the error when they do not pair."""
    if tool not in READERS:
        raise ImportFileError(f"unknown tool '{tool}'", f"use one of {', '.join(READERS)}")
    reader = READERS[tool]
    prior = prior_results(run_dir, force)  # an earlier run there is refused before any file is read

    def read(f: str | Path) -> list[ImportedSide]:
        """The file's sides; a field of a type the reader did not expect (an edited file, another tool's)
        is an ImportFileError naming the file, raised before anything is written."""
        try:
            return reader(f)
        except ImportFileError:
            raise
        except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError) as exc:
            raise ImportFileError(f"{f} does not have the shape of a {tool} result: a field has an unexpected type "
                                  f"or value ({type(exc).__name__}: {str(exc)[:160]})",
                                  f"give the file {tool} wrote, unedited") from None

    base = [side for f in baseline for side in read(f)]
    sp = [side for f in spec for side in read(f)]
    check_not_the_same(tool, base, sp)
    pairs = pair_sides(base, sp, tool=tool, given=given)
    warnings = check_pairs(tool, pairs, same_model=same_model)
    warnings += check_workloads(tool, pairs)
    return build_run(pairs, run_dir, temperature=temperature, params=params, force=force, warnings=warnings,
                     prior=prior)
