"""Where the shipped notebooks and profiles are (importlib.resources), and `init` of a workspace."""

from __future__ import annotations

import filecmp
import shutil
from datetime import datetime
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field

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
    """Resolve a step name or prefix ('40', '40_sweep', 'sweep', or its notebook 'notebooks/40_sweep.ipynb')."""
    step = Path(step).name.removesuffix(".ipynb")
    matches = [p for p in step_notebooks() if p.stem == step or p.stem.split("_", 1)[0] == step or p.stem.split("_", 1)[-1] == step]
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


class WorkspaceCopy(BaseModel):
    """What ``init`` did: the workspace, and the profiles the user had changed, kept as backups."""

    path: Path
    backups: list[Path] = Field(default_factory=list, description="edited profiles, copied aside before overwriting")


def init_workspace(target: str | Path, force: bool = False) -> Path:
    """Copy the notebooks and profiles into a workspace a user can open in JupyterLab (see :func:`copy_workspace`)."""
    return copy_workspace(target, force).path


def copy_workspace(target: str | Path, force: bool = False) -> WorkspaceCopy:
    """Copy the notebooks and profiles into a workspace. Over an existing one (``force``) the notebooks are
    replaced, and a profile the user changed is first kept as ``<name>.yaml.bak-<time>``: never lost."""
    target = Path(target).expanduser().resolve()
    nb_out, env_out = target / "notebooks", target / WORKSPACE_PROFILES
    if nb_out.exists() and any(nb_out.iterdir()) and not force:
        raise ArtifactError(
            f"{nb_out} already has notebooks",
            "use another directory, or --force to copy the shipped notebooks and profiles again (a profile you "
            "changed in environments/ is kept beside it as <name>.yaml.bak-<time>; runs/ and your own files are "
            "never touched)",
        )
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    backups: list[Path] = []
    try:
        nb_out.mkdir(parents=True, exist_ok=True)
        env_out.mkdir(parents=True, exist_ok=True)
        (target / "runs").mkdir(exist_ok=True)
        for nb in step_notebooks():
            shutil.copy2(nb, nb_out / nb.name)
        for prof in profiles_dir().glob("*.yaml"):
            if (kept := _keep_if_changed(env_out / prof.name, prof, stamp)) is not None:
                backups.append(kept)
            shutil.copy2(prof, env_out / prof.name)
    except OSError as exc:
        raise ArtifactError(f"cannot write the workspace {target}: {exc.strerror or exc}", "choose a writable directory") from exc
    return WorkspaceCopy(path=target, backups=backups)


def _keep_if_changed(dest: Path, shipped: Path, stamp: str) -> Path | None:
    """Copy ``dest`` aside as ``<name>.bak-<stamp>`` when it differs from the shipped file; returns the copy."""
    if not dest.is_file() or filecmp.cmp(dest, shipped, shallow=False):
        return None
    backup = dest.with_name(f"{dest.name}.bak-{stamp}")
    n = 1
    while backup.exists():
        n += 1
        backup = dest.with_name(f"{dest.name}.bak-{stamp}-{n}")
    shutil.copy2(dest, backup)
    return backup
