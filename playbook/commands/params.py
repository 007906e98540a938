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


def run(args) -> int:
    import papermill

    path = Path(args.notebook)
    if not path.exists():
        path = notebook_for(args.notebook)
    if path.suffix != ".ipynb":
        raise ParameterError(f"{path} is not a notebook", "pass a .ipynb file or a step name")
    info = papermill.inspect_notebook(str(path))
    model = STEP_MODELS.get(path.stem)
    rows = []
    for name, p in info.items():
        rows.append(
            {
                "name": name,
                "type": p["inferred_type_name"],
                "default": p["default"],
                "help": p["help"],
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
