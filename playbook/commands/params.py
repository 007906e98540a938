"""playbook params: list a notebook's parameters with type, default and help."""

from __future__ import annotations

from pathlib import Path

from playbook.commands._common import print_json
from playbook.helpers.errors import ParameterError
from playbook.helpers.params import STEP_MODELS
from playbook.resources import notebook_for

NAME = "params"
HELP = "list a notebook's parameters (type, default, help, allowed range)"


def add_arguments(p) -> None:
    p.add_argument("notebook", help="a notebook path or a step name (00_preflight, 40, sweep)")
    p.add_argument("--json", action="store_true", help="print as JSON")


def _constraints(model, name: str) -> str:
    field = model.model_fields[name]
    parts = []
    for m in field.metadata:
        for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(m, attr, None) is not None:
                parts.append(f"{sym} {getattr(m, attr)}")
    ann = field.annotation
    if getattr(ann, "__origin__", None) is not None and str(ann).startswith("typing.Literal"):
        parts.append("one of " + ", ".join(map(str, ann.__args__)))
    return " ".join(parts)


def _cells(path: Path) -> list[dict]:
    import nbformat

    return nbformat.read(path, as_version=4).cells


def run(args) -> int:
    import papermill

    if not args.notebook.strip():
        raise ParameterError("playbook params was given an empty notebook name",
                             "pass a step name (00_preflight, 40, sweep) or a .ipynb file")
    path = Path(args.notebook)
    if not path.exists():
        path = notebook_for(args.notebook)
    if path.suffix != ".ipynb" or not path.is_file():
        raise ParameterError(f"{path} is not a notebook", "pass a .ipynb file or a step name")
    try:
        info = papermill.inspect_notebook(str(path))
    except Exception as exc:  # noqa: BLE001 - nbformat and papermill raise many kinds for a file that is no notebook
        raise ParameterError(f"{path} is not a readable notebook ({type(exc).__name__}: {str(exc)[:160]})",
                             "pass a Jupyter notebook (.ipynb) or a step name (00_preflight, 40, sweep)") from None
    if not info and not any("parameters" in (c.get("metadata", {}).get("tags") or [])
                            for c in _cells(path)):
        raise ParameterError(f"{path} has no cell tagged 'parameters'",
                             "pass one of the playbook's notebooks (a step name: 00_preflight, 40, sweep), or tag "
                             "the notebook's parameters cell 'parameters'")
    model = STEP_MODELS.get(path.stem)
    rows = []
    for name, p in info.items():
        rows.append(
            {
                "name": name,
                "type": p["inferred_type_name"],
                "default": p["default"],
                # the model's own description: papermill's reading of the cell's comment turns '=' into ':'
                "help": (model.model_fields[name].description if model and name in model.model_fields else None)
                or p["help"],
                "allowed": _constraints(model, name) if model and name in model.model_fields else "",
            }
        )
    if args.json:
        print_json(rows)
        return 0
    print(f"Parameters of {path.name}:")
    w = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        allowed = f"  [{r['allowed']}]" if r["allowed"] else ""
        print(f"  {r['name']:<{w}}  {r['type']:<12} = {r['default']:<24} {r['help']}{allowed}")
    return 0
