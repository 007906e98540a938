"""Where the shipped notebooks and profiles are (importlib.resources), and `init` of a workspace."""

from __future__ import annotations

import filecmp
import json
import shutil
from datetime import datetime
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field

from playbook.helpers.artifacts import RUN_STATE
from playbook.helpers.errors import ArtifactError, ParameterError

DEFAULT_PROFILE = "embedded-cpu.yaml"


def notebooks_dir() -> Path:
    return Path(str(resources.files("playbook.notebooks")))


def profiles_dir() -> Path:
    return Path(str(resources.files("playbook.environments")))


def step_notebooks() -> list[Path]:
    """The ordered notebooks: 00_preflight, 10_drafts, ..., 90_report."""
    return sorted(p for p in notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def step_names() -> list[str]:
    return [p.stem for p in step_notebooks()]


def notebook_for(step: str) -> Path:
    """Resolve a step name or prefix ('40', '40_sweep', 'sweep', or its notebook 'notebooks/40_sweep.ipynb'),
    in any case ('40_SWEEP', 'Sweep'): the one parser of `run --only`, `params` and the runner."""
    step = Path(step.strip()).name
    step = step[: -len(".ipynb")] if step.lower().endswith(".ipynb") else step
    key = step.lower()
    matches = [p for p in step_notebooks() if key in (p.stem.lower(), *p.stem.lower().split("_", 1))]
    if len(matches) != 1:
        raise ParameterError(
            f"unknown step '{step}'",
            "choose one of: " + ", ".join(step_names()),
        )
    return matches[0]


WORKSPACE_PROFILES = "environments"  # a workspace's own profiles (playbook init copies the shipped ones there)


def profile_path(name: str | None) -> Path:
    """A profile by path, or by name: this directory's ``environments/<name>.yaml`` (a workspace made by
    ``playbook init``, whose copies the user edits) before the shipped one ('embedded-cpu', 'smoke', ...)."""
    if not name:
        return profiles_dir() / DEFAULT_PROFILE
    path = Path(name)
    if path.exists():
        return path
    for folder in (Path.cwd() / WORKSPACE_PROFILES, profiles_dir()):
        for candidate in (folder / name, folder / f"{name}.yaml"):
            if candidate.is_file():
                return candidate
    shipped = ", ".join(sorted(p.stem for p in profiles_dir().glob("*.yaml")))
    own = sorted({p.stem for p in (Path.cwd() / WORKSPACE_PROFILES).glob("*.yaml")} - set(shipped.split(", ")))
    raise ParameterError(f"profile '{name}' not found",
                         f"give a YAML path or one of the shipped profiles: {shipped}"
                         + (f" (or one of ./{WORKSPACE_PROFILES}/: {', '.join(own)})" if own else ""))


def profile_origin(path: Path) -> str:
    """Where a profile came from, for the line that says which file a run reads."""
    shipped = profiles_dir() / path.name
    if path.parent.resolve() == profiles_dir().resolve():
        return "shipped with the playbook"
    if path.parent.resolve() == (Path.cwd() / WORKSPACE_PROFILES).resolve() and shipped.is_file():
        return f"this workspace's copy, not the shipped {shipped}"
    return "given path"


INJECTED_TAG = "injected-parameters"  # the cell `playbook lab --profile` writes after a notebook's parameters cell


class WorkspaceCopy(BaseModel):
    """What ``init`` did: the workspace, and the profiles and notebooks the user had changed, kept as backups."""

    path: Path
    backups: list[Path] = Field(default_factory=list, description="edited profiles, copied aside before overwriting")
    notebook_backups: list[Path] = Field(default_factory=list,
                                         description="notebooks edited or executed, copied aside before overwriting")


def refuse_run_directory(target: str | Path, command: str = "init") -> None:
    """A run directory (it holds run.json) is not a workspace: copying the shipped notebooks over it would wipe
    the executed record of the run, and put environments/ and runs/ inside it."""
    target = Path(target).expanduser().resolve()
    if (target / RUN_STATE).exists():
        raise ArtifactError(
            f"{target} is a run directory, not a workspace: its notebooks are the executed record of that run "
            f"(it holds {RUN_STATE}), and `playbook {command}` would replace them",
            f"use `playbook report {target}` to (re)build its report, or give `playbook {command}` another directory "
            f"(e.g. {target.parent / 'workspace'})",
        )


def init_workspace(target: str | Path, force: bool = False) -> Path:
    """Copy the notebooks and profiles into a workspace a user can open in JupyterLab (see :func:`copy_workspace`)."""
    return copy_workspace(target, force).path


def copy_workspace(target: str | Path, force: bool = False, command: str = "init") -> WorkspaceCopy:
    """Copy the notebooks and profiles into a workspace. Over an existing one (``force``) the notebooks and
    profiles are replaced, and one the user changed (a notebook edited or executed, a profile edited) is first
    kept as ``<name>.bak-<time>``: never lost. A run directory is refused, with or without ``force``."""
    target = Path(target).expanduser().resolve()
    refuse_run_directory(target, command)
    nb_out, env_out = target / "notebooks", target / WORKSPACE_PROFILES
    if nb_out.exists() and any(nb_out.iterdir()) and not force:
        raise ArtifactError(
            f"{nb_out} already has notebooks",
            "use another directory, or --force to copy the shipped notebooks and profiles again (a notebook you "
            "edited or ran is kept beside it as <name>.ipynb.bak-<time>, a profile you changed in environments/ "
            "as <name>.yaml.bak-<time>; runs/ and your own files are never touched)",
        )
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    backups: list[Path] = []
    notebook_backups: list[Path] = []
    try:
        nb_out.mkdir(parents=True, exist_ok=True)
        env_out.mkdir(parents=True, exist_ok=True)
        (target / "runs").mkdir(exist_ok=True)
        for nb in step_notebooks():
            if (kept := _keep_if_changed(nb_out / nb.name, nb, stamp, same=_same_notebook)) is not None:
                notebook_backups.append(kept)
            shutil.copy2(nb, nb_out / nb.name)
        for prof in profiles_dir().glob("*.yaml"):
            if (kept := _keep_if_changed(env_out / prof.name, prof, stamp)) is not None:
                backups.append(kept)
            shutil.copy2(prof, env_out / prof.name)
    except OSError as exc:
        raise ArtifactError(f"cannot write the workspace {target}: {exc.strerror or exc}", "choose a writable directory") from exc
    return WorkspaceCopy(path=target, backups=backups, notebook_backups=notebook_backups)


def _notebook_content(path: Path) -> list | None:
    """What a user can change in a notebook: each cell's type, source, tags, outputs and execution count, without
    the injected-parameters cell `playbook lab --profile` writes. None when the file is no notebook JSON."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        return None
    content = []
    for cell in cells:
        if not isinstance(cell, dict):
            return None
        meta = cell.get("metadata")
        tags = meta.get("tags") if isinstance(meta, dict) else None
        tags = [str(t) for t in tags] if isinstance(tags, list) else []
        if INJECTED_TAG in tags:
            continue
        source = cell.get("source", "")
        content.append((cell.get("cell_type"), "".join(source) if isinstance(source, list) else source, sorted(tags),
                        json.dumps(cell.get("outputs", []), sort_keys=True), cell.get("execution_count")))
    return content


def _same_notebook(dest: Path, shipped: Path) -> bool:
    """The same notebook as the shipped one: byte for byte, or in its cells (lab's injected values left out)."""
    if filecmp.cmp(dest, shipped, shallow=False):
        return True
    mine = _notebook_content(dest)
    return mine is not None and mine == _notebook_content(shipped)


def _same_file(dest: Path, shipped: Path) -> bool:
    return filecmp.cmp(dest, shipped, shallow=False)


def _keep_if_changed(dest: Path, shipped: Path, stamp: str, same=_same_file) -> Path | None:
    """Copy ``dest`` aside as ``<name>.bak-<stamp>`` when it differs from the shipped file; returns the copy."""
    if not dest.is_file() or same(dest, shipped):
        return None
    backup = dest.with_name(f"{dest.name}.bak-{stamp}")
    n = 1
    while backup.exists():
        n += 1
        backup = dest.with_name(f"{dest.name}.bak-{stamp}-{n}")
    shutil.copy2(dest, backup)
    return backup
