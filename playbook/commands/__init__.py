"""One module per CLI subcommand. Each defines NAME, HELP, add_arguments(parser) and run(args) -> int.

Commands print JSON on stdout when asked (--json); progress and warnings go to stderr.
"""

import importlib

# Order here is the order in `playbook --help`.
COMMAND_MODULES = [
    "init", "run", "report", "params", "engine", "lab",
    "memory", "drafts", "sweep", "load", "lossless", "predict", "import_",
]


def load_commands():
    """The command modules, in COMMAND_MODULES order."""
    return [importlib.import_module(f"playbook.commands.{name}") for name in COMMAND_MODULES]
