"""Optional JupyterLab widgets: a parameter form per step, and a live table of load levels.

``show_form(p)`` does nothing (returns None) unless ``p.interactive`` is True or the environment
variable ``PLAYBOOK_INTERACTIVE`` is 1/true/yes/on (``playbook lab`` sets it for its Jupyter server),
and ipywidgets imports. ipywidgets is imported lazily, only then: headless runs never need it.

The form is generic over the step's pydantic model: Literal -> Dropdown, bool -> Checkbox, bounded
numbers -> sliders, other numbers -> number boxes, lists -> comma-separated text, model names ->
Combobox with the catalog's names, ``gpu`` -> Dropdown of the GPU catalog. Every edit is validated
and written into the SAME params object; a rejected value shows its error beside the widget and the
old value stays. The parameters cell remains the source of every default.

``LiveLoadView().update(level)`` redraws a table (and a TPOT plot) each time a load level completes;
it needs only IPython and works in papermill runs too.
"""

from __future__ import annotations

import html
import io
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, ValidationError

ENV_VAR = "PLAYBOOK_INTERACTIVE"
INSTALL_HINT = "pip install 'specdecode-playbook[interactive]'"
HIDDEN = ("run_dir", "interactive")  # run_dir is fixed once the validation cell made `run`
MODEL_FIELDS = ("target_model", "draft_model")
_TRUE = {"1", "true", "yes", "on"}


def interactive_enabled(params: Any) -> bool:
    """True if the params ask for widgets, or the lab's environment variable turns them on."""
    return bool(getattr(params, "interactive", False)) or os.environ.get(ENV_VAR, "").strip().lower() in _TRUE


def _import_widgets():
    try:
        import ipywidgets
    except ImportError:
        return None
    return ipywidgets


# -- field introspection -----------------------------------------------------------------------
@dataclass
class FieldSpec:
    """What the form needs to know about one parameter."""

    name: str
    kind: Literal["choice", "bool", "int", "float", "list", "model", "gpu", "text"]
    help: str = ""
    choices: list[Any] = field(default_factory=list)
    low: float | None = None
    high: float | None = None


def _bounds(metadata: list[Any]) -> tuple[float | None, float | None, bool]:
    """(low, high, low_is_exclusive) from a field's annotated_types constraints."""
    low = high = None
    exclusive = False
    for m in metadata:
        if isinstance(m, at.Ge):
            low = m.ge
        elif isinstance(m, at.Gt):
            low, exclusive = m.gt, True
        elif isinstance(m, at.Le):
            high = m.le
        elif isinstance(m, at.Lt):
            high = m.lt
    return low, high, exclusive


def _catalog_models() -> list[str]:
    try:
        from .models import catalog_names
        return ["embedded", *catalog_names()]
    except Exception:  # the catalog is a convenience: a broken one must not break the form
        return ["embedded"]


def _catalog_gpus() -> list[str]:
    try:
        from .gpus import gpu_names
        return list(gpu_names())
    except Exception:
        return []


def field_specs(model: type[BaseModel]) -> list[FieldSpec]:
    """One FieldSpec per visible parameter, the step's own parameters first."""
    from .params import StepParams

    own = [n for n in model.model_fields if n not in StepParams.model_fields]
    common = [n for n in model.model_fields if n in StepParams.model_fields]
    specs = []
    for name in own + common:
        if name in HIDDEN:
            continue
        info = model.model_fields[name]
        ann, help_ = info.annotation, info.description or ""
        if type(None) in get_args(ann) and len(inner := [a for a in get_args(ann) if a is not type(None)]) == 1:
            ann = inner[0]  # float | None (a default chosen by mode): the form shows the value the model resolved
        low, high, exclusive = _bounds(info.metadata)
        if get_origin(ann) is Literal:
            specs.append(FieldSpec(name, "choice", help_, list(get_args(ann))))
        elif ann is bool:
            specs.append(FieldSpec(name, "bool", help_))
        elif ann in (int, float):
            if exclusive and low is not None:  # gt=0: the smallest value a slider or box offers
                low = low + (1 if ann is int else 0.01)
            specs.append(FieldSpec(name, ann.__name__, help_, low=low, high=high))
        elif get_origin(ann) is list:
            specs.append(FieldSpec(name, "list", help_))
        elif name in MODEL_FIELDS:
            specs.append(FieldSpec(name, "model", help_, _catalog_models()))
        elif name == "gpu":
            specs.append(FieldSpec(name, "gpu", help_, _catalog_gpus()))
        else:
            specs.append(FieldSpec(name, "text", help_))
    return specs


# -- values between widgets and params ---------------------------------------------------------
def to_widget_value(spec: FieldSpec, value: Any) -> Any:
    if spec.kind == "list":
        return ", ".join(str(v) for v in value)
    return value


def _error_text(exc: ValidationError) -> str:
    return "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())


def assign(params: BaseModel, name: str, value: Any) -> str | None:
    """Validate ``value`` for ``name`` and write it into ``params``; return the error, or None.

    Checked on a copy first, so a rejected value (even one only the model-level checks reject)
    leaves ``params`` exactly as it was.
    """
    trial = params.model_copy()
    try:
        setattr(trial, name, value)
    except ValidationError as exc:
        return _error_text(exc)
    setattr(params, name, getattr(trial, name))
    return None


# -- the form ----------------------------------------------------------------------------------
def _make_widget(w, spec: FieldSpec, value: Any):
    style, wide = {"description_width": "190px"}, w.Layout(width="440px")
    common = {"description": spec.name, "style": style, "layout": wide}
    if spec.kind == "choice":
        return w.Dropdown(options=spec.choices, value=value, **common)
    if spec.kind == "gpu":
        options = [("detect / CPU", "")] + [(g, g) for g in spec.choices]
        if value not in {v for _, v in options}:
            options.append((value, value))
        return w.Dropdown(options=options, value=value, **common)
    if spec.kind == "bool":
        return w.Checkbox(value=value, indent=False, description=spec.name, layout=wide)
    if spec.kind in ("int", "float"):
        is_int = spec.kind == "int"
        if spec.low is not None and spec.high is not None and spec.high - spec.low <= (64 if is_int else 4):
            cls = w.IntSlider if is_int else w.FloatSlider
            step = 1 if is_int else (0.05 if spec.high - spec.low > 1 else 0.01)
            return cls(value=value, min=spec.low, max=spec.high, step=step, continuous_update=False, **common)
        if spec.low is not None:
            cls = w.BoundedIntText if is_int else w.BoundedFloatText
            high = spec.high if spec.high is not None else (2**31 - 1 if is_int else 1e12)
            return cls(value=value, min=spec.low, max=high, **common)
        return (w.IntText if is_int else w.FloatText)(value=value, **common)
    if spec.kind == "model":
        return w.Combobox(value=value, options=spec.choices, ensure_option=False, continuous_update=False,
                          placeholder="catalog name or local dir", **common)
    return w.Text(value=to_widget_value(spec, value), continuous_update=False, **common)


class Form:
    """Widgets for one params object. ``set(name, value)`` acts as a user's edit (used by tests)."""

    def __init__(self, params: BaseModel, widgets_module=None):
        w = widgets_module or _import_widgets()
        if w is None:
            raise ImportError(f"ipywidgets is not installed: {INSTALL_HINT}")
        self.params = params
        self.specs = {s.name: s for s in field_specs(type(params))}
        self.widgets: dict[str, Any] = {}
        self.notes: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.edited: dict[str, Any] = {}
        self._reverting = False
        rows_own, rows_common = [], []
        from .params import StepParams
        for name, spec in self.specs.items():
            widget = _make_widget(w, spec, getattr(params, name))
            note = w.HTML(self._help_html(spec))
            widget.observe(lambda change, n=name: self._on_change(n, change), names="value")
            self.widgets[name], self.notes[name] = widget, note
            row = w.HBox([widget, note])
            row.add_class(f"playbook-field-{name}")
            (rows_common if name in StepParams.model_fields else rows_own).append(row)
        self.status = w.HTML(self._status_html())
        step = getattr(type(params), "step", "") or type(params).__name__
        title = w.HTML(f"<b>Parameters of {html.escape(step)}</b>: each edit is validated and goes into "
                       "<code>p</code> (and the notebook variable of that name); re-run the cells below "
                       "this one to use them. Re-running the parameters cell resets them.")
        # Collapsed when the step has parameters of its own; open when these are all it has.
        engine = w.Accordion(children=[w.VBox(rows_common)], selected_index=None if rows_own else 0)
        engine.set_title(0, "server and engine parameters (shared by every step)")
        self.box = w.VBox([title, *rows_own, engine, self.status])
        self.box.add_class("playbook-form")

    @staticmethod
    def _help_html(spec: FieldSpec) -> str:
        return f"<span style='color:#666'>{html.escape(spec.help)}</span>"

    def _status_html(self) -> str:
        if not self.edited:
            return "<span class='playbook-form-status'>no edits: the parameters cell's values apply</span>"
        items = ", ".join(f"{html.escape(k)}={html.escape(repr(v))}" for k, v in self.edited.items())
        return f"<span class='playbook-form-status'>edited: {items}</span>"

    def _on_change(self, name: str, change: dict) -> None:
        if self._reverting:
            return
        self.set(name, change["new"])

    def set(self, name: str, value: Any) -> str | None:
        """Validate and apply one value; on error show it and put the widget back. Returns the error."""
        spec = self.specs[name]
        error = assign(self.params, name, value)
        widget, note = self.widgets[name], self.notes[name]
        if error is None:
            self.errors.pop(name, None)
            self.edited[name] = getattr(self.params, name)
            _sync_namespace(name, self.edited[name])
            note.value = self._help_html(spec)
        else:
            self.errors[name] = error
            note.value = (f"<span class='playbook-form-error' style='color:#b00020'>rejected "
                          f"{html.escape(repr(value))}: {html.escape(error)} (kept the old value)</span>")
        current = to_widget_value(spec, getattr(self.params, name))
        if widget.value != current:
            self._reverting = True
            try:
                widget.value = current
            finally:
                self._reverting = False
        self.status.value = self._status_html()
        return error


def _sync_namespace(name: str, value: Any) -> None:
    """Mirror an accepted edit into the notebook's variable of that name, when it has one.

    Re-running from the validation cell then keeps the edit; re-running the parameters cell resets it.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and name in shell.user_ns:
        shell.user_ns[name] = value


def build_form(params: BaseModel) -> Form | None:
    """The form for ``params``, or None when interactive use is off or ipywidgets is missing."""
    if not interactive_enabled(params):
        return None
    w = _import_widgets()
    if w is None:
        warnings.warn(f"interactive is on but ipywidgets is not installed ({INSTALL_HINT}); "
                      "the parameters cell's values apply", stacklevel=2)
        return None
    return Form(params, w)


def show_form(params: BaseModel) -> None:
    """Display the parameter form under the validation cell (a no-op in headless runs)."""
    form = build_form(params)
    if form is not None:
        from IPython.display import display
        display(form.box)


# -- live view of a load test ------------------------------------------------------------------
LIVE_COLUMNS = {
    "config": "config", "level": "level", "requests": "requests", "errors": "errors",
    "ttft_ms.p50": "TTFT P50 ms", "tpot_ms.p50": "TPOT P50 ms", "tpot_ms.p99": "TPOT P99 ms",
    "output_tok_s": "output tok/s", "acceptance_rate": "acceptance",
}


def _get(row: dict, dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


class LiveLoadView:
    """A table (and TPOT plot) that redraws as load levels complete: ``view.update(level)``.

    ``level`` is a LevelStats or its dict. Pass ``view.update`` as a per-level callback. Outside
    IPython it only collects rows (``view.rows``); it never needs ipywidgets.
    """

    def __init__(self, title: str = "load levels so far", plot: bool = True):
        self.title, self.plot = title, plot
        self.rows: list[dict] = []
        self._table = self._figure = None

    def update(self, level: Any) -> None:
        row = level.model_dump(mode="json") if isinstance(level, BaseModel) else dict(level)
        key = (row.get("config"), row.get("level"), row.get("workload"))
        self.rows = [r for r in self.rows if (r.get("config"), r.get("level"), r.get("workload")) != key]
        self.rows.append(row)
        self._redraw()

    def frame(self):
        import pandas as pd

        data = [{label: _get(r, key) for key, label in LIVE_COLUMNS.items()} for r in self.rows]
        df = pd.DataFrame(data, columns=list(LIVE_COLUMNS.values()))
        return df.sort_values(["config", "level"], kind="stable").reset_index(drop=True)

    def table_html(self) -> str:
        body = self.frame().to_html(index=False, escape=True, na_rep="-", float_format=lambda x: f"{x:.2f}",
                                    classes="playbook-live-load")
        return f"<b>{html.escape(self.title)}</b> ({len(self.rows)} level(s))" + body

    def figure_png(self) -> bytes | None:
        """TPOT P50 (solid) and P99 (dashed) against the level, one line per config."""
        df = self.frame()
        if df["TPOT P50 ms"].isna().all():
            return None
        from matplotlib.figure import Figure  # no pyplot: nothing is shown twice

        fig = Figure(figsize=(5.5, 3.0))
        ax = fig.add_subplot()
        for config, part in df.groupby("config"):
            line = ax.plot(part["level"], part["TPOT P50 ms"], marker="o", label=f"{config} P50")[0]
            ax.plot(part["level"], part["TPOT P99 ms"], marker="x", linestyle="--", color=line.get_color(),
                    label=f"{config} P99")
        ax.set_xlabel("load level")
        ax.set_ylabel("TPOT (ms)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        return buf.getvalue()

    def _redraw(self) -> None:
        try:
            from IPython import get_ipython
            from IPython.display import HTML, Image, display
        except ImportError:
            return
        if get_ipython() is None:
            return
        table = HTML(self.table_html())
        if self._table is None:
            self._table = display(table, display_id=True)
        else:
            self._table.update(table)
        png = self.figure_png() if self.plot else None
        if png is not None:
            if self._figure is None:
                self._figure = display(Image(png), display_id=True)
            else:
                self._figure.update(Image(png))
