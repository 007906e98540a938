"""Rewrite every notebook's parameters cell from its pydantic step model (the single source of truth).

Run after changing a model in helpers/params.py:  .venv/bin/python -m scripts.sync_params_cells
tests/unit/test_notebooks.py fails when a notebook's cell and its model disagree.
"""

from __future__ import annotations

import sys
import typing
from pathlib import Path

import nbformat

from playbook.helpers.params import STEP_MODELS, StepParams

ROOT = Path(__file__).resolve().parents[1]


def type_name(annotation) -> str:
    """A plain annotation papermill can parse: str, int, float, bool, list[float], ..."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return type(typing.get_args(annotation)[0]).__name__
    if origin is list:
        (inner,) = typing.get_args(annotation)
        return f"list[{type_name(inner)}]"
    return getattr(annotation, "__name__", "str")


def params_source(model: type[StepParams]) -> str:
    """Literal typed defaults, one per line, each with a `# help` comment (papermill reads both)."""
    lines = []
    for name, field in model.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, float) or (field.annotation is float and isinstance(default, int)):
            literal = repr(float(default))
        else:
            literal = repr(default)
        # papermill's parser takes `name: type = literal  # help`; a '=' in the help breaks it.
        help_text = (field.description or "").replace(" = ", ": ").replace("=", ":")
        lines.append(f"{name}: {type_name(field.annotation)} = {literal}  # {help_text}".rstrip())
    return "\n".join(lines)


FORM_SOURCE = (
    "# Optional form (interactive=True, as in the lab profile): edits go back into `p`, validated;\n"
    "# then run the cells below again. A no-op in headless runs.\n"
    "from playbook.helpers import ui\n\n"
    "ui.show_form(p)"
)


def ensure_form_cell(nb) -> bool:
    """Put the ipywidgets form cell right after the validation cell (the second code cell)."""
    codes = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    if len(codes) < 2:
        return False
    after = codes[1] + 1
    existing = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "ui.show_form(p)" in c.source]
    if existing == [after] and nb.cells[after].source == FORM_SOURCE:
        return False
    for i in reversed(existing):
        del nb.cells[i]
    nb.cells.insert(after, nbformat.v4.new_code_cell(FORM_SOURCE))
    return True


def sync(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    model = STEP_MODELS.get(path.stem)
    if model is None:
        return False
    cell = next(c for c in nb.cells if c.cell_type == "code")
    if "parameters" not in cell.metadata.get("tags", []):
        raise SystemExit(f"{path}: first code cell is not tagged 'parameters'")
    new = params_source(model)
    changed = cell.source != new
    cell.source = new
    changed = ensure_form_cell(nb) or changed
    if changed:
        for i, c in enumerate(nb.cells):  # stable ids, as scripts/nbwrite.py gives them
            c["id"] = f"{path.stem.replace('_', '-')}-{i:02d}"
        path.write_text(nbformat.writes(nb) + "\n")
    return changed


if __name__ == "__main__":
    changed = [p.name for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) if sync(p)]
    print("updated: " + (", ".join(changed) if changed else "nothing"), file=sys.stderr)
