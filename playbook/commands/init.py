"""playbook init: copy the notebooks and profiles into a workspace."""

from __future__ import annotations

from playbook.resources import init_workspace

NAME = "init"
HELP = "copy the playbook's notebooks and profiles into DIR, ready to open in JupyterLab"


def add_arguments(p) -> None:
    p.add_argument("dir", help="workspace directory (created if missing)")
    p.add_argument("--force", action="store_true", help="overwrite notebooks already there")


def run(args) -> int:
    ws = init_workspace(args.dir, force=args.force)
    print(f"workspace ready: {ws}\n  notebooks:    {ws / 'notebooks'}\n  profiles:     {ws / 'environments'}")
    print(f"open it with: jupyter lab {ws / 'notebooks'}   (or: playbook lab {ws})")
    return 0
