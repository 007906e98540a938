"""Import other benchmark tools' results as the load step's evidence (``playbook import``).

``import_results("vllm-bench", [BASELINE, SPEC], run_dir)``: read each file with its tool's reader
(:mod:`.vllm_bench`, :mod:`.guidellm`, :mod:`.aiperf`), pair baseline and speculative measurements
at the same load level, refuse what the files show cannot be compared (one file on both sides, swapped
sides, two models), and write the run directory (:func:`.common.build_run`) that ``playbook
report RUN_DIR`` decides on as on the playbook's own measurements.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from shlex import quote

from ..errors import ImportFileError
from ..schemas.load import LoadResult
from . import aiperf, guidellm, vllm_bench
from .common import ImportedSide, build_run, prior_results, sha256

READERS: dict[str, Callable[[str | Path], list[ImportedSide]]] = {
    "vllm-bench": vllm_bench.read,
    "guidellm": guidellm.read,
    "aiperf": aiperf.read,
}


def pair_sides(baseline: list[ImportedSide], spec: list[ImportedSide]) -> list[tuple[ImportedSide, ImportedSide]]:
    """Baseline and speculative sides at the same level; a level only one side measured is an error."""
    b = {s.level: s for s in baseline}
    s = {x.level: x for x in spec}
    only = sorted(set(b) ^ set(s))
    if only:
        raise ImportFileError(
            f"levels {', '.join(f'{x:g}' for x in only)} were measured on one side only "
            f"(baseline: {', '.join(f'{x:g}' for x in sorted(b)) or 'none'}; speculative: "
            f"{', '.join(f'{x:g}' for x in sorted(s)) or 'none'})",
            "give a baseline and a speculative result for every concurrency or request rate")
    return [(b[lvl], s[lvl]) for lvl in sorted(b)]


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


def check_pairs(tool: str, pairs: list[tuple[ImportedSide, ImportedSide]]) -> list[str]:
    """Refuse pairs the files show are swapped (the baseline speculated, the speculative side did not) or of
    different models (when both name one); the warnings of what is only doubtful."""
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
        if b.model and s.model and _model_name(b.model) != _model_name(s.model):
            raise ImportFileError(
                f"the baseline {b.path} ran model '{b.model}' and the speculative {s.path} ran '{s.model}': "
                "their speed cannot be compared",
                "give a baseline and a speculative result of the same target model")
    models = {_model_name(x.model): x.model for pair in pairs for x in pair if x.model}
    if len(models) > 1:
        raise ImportFileError(f"the files name different models ({', '.join(sorted(models.values()))}): "
                              "the load levels would mix them",
                              "import the results of one target model at a time")
    return warnings


def import_results(tool: str, baseline: list[str | Path], spec: list[str | Path], run_dir: str | Path, *,
                   temperature: float | None = None, params: dict | None = None, force: bool = False) -> LoadResult:
    """Read the baseline and speculative files of ``tool`` and write them into ``run_dir``."""
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
    pairs = pair_sides(base, sp)
    warnings = check_pairs(tool, pairs)
    return build_run(pairs, run_dir, temperature=temperature, params=params, force=force, warnings=warnings,
                     prior=prior)
