"""Root conftest: nbval runs the notebooks (pytest --nbval-lax notebooks/) into one temporary run directory.

The notebooks' default run_dir (../runs/interactive) yields to $PLAYBOOK_RUN_DIR, so every notebook of
the test session writes to, and 90_report reads from, the same fresh directory, never the user's runs/.
"""

from __future__ import annotations

import os
import tempfile

if not os.environ.get("PLAYBOOK_RUN_DIR"):
    os.environ["PLAYBOOK_RUN_DIR"] = os.path.join(tempfile.mkdtemp(prefix="playbook-nbval-"), "run")
