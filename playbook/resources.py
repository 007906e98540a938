"""Where the shipped notebooks and profiles are (importlib.resources), and `init` of a workspace."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

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
    """Resolve a step name or prefix ('40', '40_sweep', 'sweep') to its notebook."""
    matches = [p for p in step_notebooks() if p.stem == step or p.stem.split("_", 1)[0] == step or p.stem.split("_", 1)[-1] == step]
    if len(matches) != 1:
        raise ParameterError(
            f"unknown step '{step}'",
            "choose one of: " + ", ".join(step_names()),
        )
    return matches[0]


def profile_path(name: str | None) -> Path:
    """A profile by path, or by name of a shipped one ('embedded-cpu', 'h100x2-llama70b-fp8')."""
    if not name:
        return profiles_dir() / DEFAULT_PROFILE
    path = Path(name)
    if path.exists():
        return path
    for candidate in (profiles_dir() / name, profiles_dir() / f"{name}.yaml"):
        if candidate.exists():
            return candidate
    shipped = ", ".join(sorted(p.stem for p in profiles_dir().glob("*.yaml")))
    raise ParameterError(f"profile '{name}' not found", f"give a YAML path or one of the shipped profiles: {shipped}")


def init_workspace(target: str | Path, force: bool = False) -> Path:
    """Copy the notebooks and profiles into a workspace a user can open in JupyterLab."""
    target = Path(target).expanduser().resolve()
    nb_out, env_out = target / "notebooks", target / "environments"
    if nb_out.exists() and any(nb_out.iterdir()) and not force:
        raise ArtifactError(
            f"{nb_out} already has notebooks",
            "use another directory, or --force to overwrite the shipped notebooks (runs/ is never touched)",
        )
    try:
        nb_out.mkdir(parents=True, exist_ok=True)
        env_out.mkdir(parents=True, exist_ok=True)
        (target / "runs").mkdir(exist_ok=True)
        for nb in step_notebooks():
            shutil.copy2(nb, nb_out / nb.name)
        for prof in profiles_dir().glob("*.yaml"):
            shutil.copy2(prof, env_out / prof.name)
    except OSError as exc:
        raise ArtifactError(f"cannot write the workspace {target}: {exc.strerror or exc}", "choose a writable directory") from exc
    return target
