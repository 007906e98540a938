"""Write every notebook's parameters cell from its pydantic step model (the single source of truth).

The notebooks are the source of everything else (edit them directly); only the parameters cell is
generated, grouped: the step's own parameters first, then the ones every step shares (usually set in
the profile). Run after changing a model in helpers/params.py:

    .venv/bin/python -m scripts.sync_params_cells

tests/unit/test_notebooks.py fails when a notebook's cell and its model disagree.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path

import nbformat

from playbook.helpers.params import STEP_MODELS, StepParams

ROOT = Path(__file__).resolve().parents[1]
OWN_HEADER = "# -- this step --"
SHARED_HEADER = "# -- shared by every step (usually set in the profile) --"


def type_name(annotation) -> str:
    """A plain annotation papermill can parse: str, int, float, bool, list[float], ...; ``float | None`` is ``float``
    (None, its default, means "the mode's default", which the field's help says)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(inner) == 1:
            return type_name(inner[0])
    if origin is typing.Literal:
        return type(typing.get_args(annotation)[0]).__name__
    if origin is list:
        (inner,) = typing.get_args(annotation)
        return f"list[{type_name(inner)}]"
    return getattr(annotation, "__name__", "str")


def param_line(name: str, field) -> str:
    """``name: type = literal  # help`` (papermill reads all three; a '=' in the help would break it)."""
    default = field.get_default(call_default_factory=True)
    if isinstance(default, float) or (field.annotation is float and isinstance(default, int)):
        literal = repr(float(default))
    else:
        literal = repr(default)
    help_text = (field.description or "").replace(" = ", ": ").replace("=", ":")
    return f"{name}: {type_name(field.annotation)} = {literal}  # {help_text}".rstrip()


def params_source(model: type[StepParams]) -> str:
    """The parameters cell: this step's own parameters, then the shared block (StepParams' fields)."""
    shared = set(StepParams.model_fields)
    own = [param_line(n, f) for n, f in model.model_fields.items() if n not in shared]
    common = [param_line(n, f) for n, f in model.model_fields.items() if n in shared]
    return "\n".join(([OWN_HEADER, *own, ""] if own else []) + [SHARED_HEADER, *common])


def sync(path: Path) -> bool:
    """Rewrite one notebook's parameters cell; True when it changed."""
    model = STEP_MODELS.get(path.stem)
    if model is None:
        return False
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code")
    if "parameters" not in cell.metadata.get("tags", []):
        raise SystemExit(f"{path}: first code cell is not tagged 'parameters'")
    new = params_source(model)
    if cell.source == new:
        return False
    cell.source = new
    path.write_text(nbformat.writes(nb) + "\n")
    return True


if __name__ == "__main__":
    changed = [p.name for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) if sync(p)]
    print("updated: " + (", ".join(changed) if changed else "nothing"), file=sys.stderr)
