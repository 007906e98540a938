"""playbook init: copy the notebooks and profiles into a workspace."""

from __future__ import annotations

from playbook.resources import copy_workspace

NAME = "init"
HELP = "copy the playbook's notebooks and profiles into DIR, ready to open in JupyterLab"


def add_arguments(p) -> None:
    p.add_argument("dir", help="workspace directory (created if missing)")
    p.add_argument("--force", action="store_true",
                   help="copy the shipped notebooks and profiles again over an existing workspace (a profile you "
                        "changed is kept as <name>.yaml.bak-<time>; runs/ and your own files are never touched)")


def run(args) -> int:
    done = copy_workspace(args.dir, force=args.force)
    ws = done.path
    print(f"workspace ready: {ws}\n  notebooks:    {ws / 'notebooks'}\n  profiles:     {ws / 'environments'}")
    if args.force:
        print("  --force: the notebooks and profiles are the shipped ones again"
              + ("; your edited profiles are kept beside them:" if done.backups else " (no profile had been edited)"))
    for backup in done.backups:
        shipped = backup.name.split(".bak-", 1)[0]
        print(f"  kept your edited {shipped} as {backup}")
    print(f"open it with: jupyter lab {ws / 'notebooks'}   (or: playbook lab {ws})")
    return 0
