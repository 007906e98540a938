"""playbook init: copy the notebooks and profiles into a workspace."""

from __future__ import annotations

from playbook.resources import WorkspaceCopy, copy_workspace

NAME = "init"
HELP = "copy the playbook's notebooks and profiles into DIR, ready to open in JupyterLab"


def add_arguments(p) -> None:
    p.add_argument("dir", help="workspace directory (created if missing)")
    p.add_argument("--force", action="store_true",
                   help="copy the shipped notebooks and profiles again over an existing workspace (a notebook you "
                        "edited or ran is kept as <name>.ipynb.bak-<time>, a profile you changed as "
                        "<name>.yaml.bak-<time>; runs/ and your own files are never touched; a run directory is "
                        "refused)")


def run(args) -> int:
    done = copy_workspace(args.dir, force=args.force)
    ws = done.path
    print(f"workspace ready: {ws}\n  notebooks:    {ws / 'notebooks'}\n  profiles:     {ws / 'environments'}")
    for line in forced_lines(done) if args.force else kept_lines(done):
        print(f"  {line}")
    print(f"open it with: jupyter lab {ws / 'notebooks'}   (or: playbook lab {ws})")
    return 0


def forced_lines(done: WorkspaceCopy) -> list[str]:
    """What ``--force`` did (``init`` and ``lab`` say it alike): the shipped files are back, and what was kept."""
    return ["--force: the notebooks and profiles are the shipped ones again" + kept_summary(done), *kept_lines(done)]


def kept_lines(done: WorkspaceCopy) -> list[str]:
    """One line per notebook or profile kept aside: 'kept your edited or executed 20_memory.ipynb as ...'."""
    return [f"kept your {'edited or executed' if b in done.notebook_backups else 'edited'} "
            f"{b.name.split('.bak-', 1)[0]} as {b}" for b in [*done.notebook_backups, *done.backups]]


def kept_summary(done: WorkspaceCopy) -> str:
    """How many notebooks and profiles the user had changed, kept beside the shipped ones (and where)."""
    nbs, profs = len(done.notebook_backups), len(done.backups)
    if not nbs and not profs:
        return " (nothing to keep: no notebook had been edited or run, no profile had been edited)"
    kept = []
    if nbs:
        kept.append(f"{nbs} notebook{'s' if nbs != 1 else ''} you had edited or run kept beside "
                    f"{'them' if nbs != 1 else 'it'} in {done.path / 'notebooks'} as <name>.ipynb.bak-<time>")
    if profs:
        kept.append(f"{profs} profile{'s' if profs != 1 else ''} you had edited kept in "
                    f"{done.path / 'environments'} as <name>.yaml.bak-<time>")
    return "; " + "; ".join(kept) + ":"
