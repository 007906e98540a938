"""Import other benchmark tools' results as the load step's evidence (``playbook import``).

``import_results("vllm-bench", [BASELINE, SPEC], run_dir)``: read each file with its tool's reader
(:mod:`.vllm_bench`, :mod:`.guidellm`, :mod:`.aiperf`), pair baseline and speculative measurements
at the same load level, and write the run directory (:func:`.common.build_run`) that ``playbook
report RUN_DIR`` decides on as on the playbook's own measurements.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import ImportFileError
from ..schemas.load import LoadResult
from . import aiperf, guidellm, vllm_bench
from .common import ImportedSide, build_run

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


def import_results(tool: str, baseline: list[str | Path], spec: list[str | Path], run_dir: str | Path, *,
                   temperature: float | None = None, params: dict | None = None, force: bool = False) -> LoadResult:
    """Read the baseline and speculative files of ``tool`` and write them into ``run_dir``."""
    if tool not in READERS:
        raise ImportFileError(f"unknown tool '{tool}'", f"use one of {', '.join(READERS)}")
    reader = READERS[tool]

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
    return build_run(pair_sides(base, sp), run_dir, temperature=temperature, params=params, force=force)
