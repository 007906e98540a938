"""Root conftest: nbval runs the notebooks (pytest --nbval-lax notebooks/) into one temporary run directory.

The notebooks' default run_dir (../runs/interactive) yields to $PLAYBOOK_RUN_DIR, so every notebook of
the test session writes to, and 90_report reads from, the same fresh directory, never the user's runs/.

Each notebook runs as `playbook lab --profile smoke` would open it: the shipped notebook with the smoke
profile's values in an injected cell after its parameters cell (environments/smoke.yaml: every step, few
requests). The full defaults are what `make run` measures; measuring them again here would cost the
suite ten minutes for no more coverage of the code. As under `playbook lab`, this process hosts the run's
server pool while the notebooks run, so a server configuration starts once for all of them.

The same pool (``session_pool()``) serves the integration tests' shared embedded servers (the speculative
and the baseline one, tests/integration/conftest.py): the notebooks ask for exactly those configurations, so
they reuse them instead of starting their own (each start costs 35 to 50 s on 2 cores). The pool is started
on first use and announced to kernels ($PLAYBOOK_POOL) only when the notebooks run, so no other test's
step finds it by accident.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

NBVAL_PROFILE = "smoke"
NOTEBOOKS = Path(__file__).parent / "notebooks"

# Made here unless the user gave one; a pytest-xdist worker inherits the controller's and makes its own, so two
# workers never host a pool over the same directory.
_MADE_HERE = "PLAYBOOK_TEST_RUN_DIR"
if not os.environ.get("PLAYBOOK_RUN_DIR") or (os.environ.get("PYTEST_XDIST_WORKER")
                                               and os.environ.get(_MADE_HERE) == os.environ["PLAYBOOK_RUN_DIR"]):
    os.environ["PLAYBOOK_RUN_DIR"] = os.environ[_MADE_HERE] = os.path.join(
        tempfile.mkdtemp(prefix="playbook-nbval-"), "run")

_workspace: Path | None = None
_session_pool = None
_announced = False


def session_pool():
    """The test session's server pool (a ServerPool over $PLAYBOOK_RUN_DIR), started on first use and
    closed, every server stopped, when the session ends."""
    global _session_pool
    if _session_pool is None:
        from playbook.helpers.servers import ServerPool

        _session_pool = ServerPool(os.environ["PLAYBOOK_RUN_DIR"]).start()
    return _session_pool


@pytest.fixture(scope="session")
def server_pool():
    """:func:`session_pool` for a fixture."""
    return session_pool()


def _profiled_copy(notebook: Path) -> Path:
    """The notebook's copy in a session workspace parameterised with the nbval profile (made once)."""
    global _workspace
    if _workspace is None:
        from playbook.commands.lab import prepare_workspace

        _workspace = prepare_workspace(tempfile.mkdtemp(prefix="playbook-nbval-ws-"), NBVAL_PROFILE)
    return _workspace / "notebooks" / notebook.name


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent):
    collected = yield
    if file_path.suffix != ".ipynb" or file_path.parent != NOTEBOOKS:
        return collected
    from nbval.plugin import IPyNbFile

    class ProfiledNotebook(IPyNbFile):
        """nbval reads (and starts the kernel beside) the profiled copy; test ids keep the shipped path."""

        @property
        def fspath(self):
            from _pytest.compat import legacy_path

            return legacy_path(_profiled_copy(self.path))

    return [ProfiledNotebook.from_parent(parent, path=file_path) if type(c) is IPyNbFile else c for c in collected]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under pytest-xdist (``make test``: two workers), every test under ``ENGINE_PATHS`` (tests/support/
    xdist_scopes.py) is one unit of work, run in order by one worker, so the session's shared servers start once
    and no more of them run at a time than in one process (up to six, ~2.5 GiB each; two such streams left a
    24 GiB machine 250 MB free). The tests under ``OWN_SERVER_PATHS`` are a second unit, given to the other
    worker first (xdist hands out the largest units first); the unit and fault tests then fill both workers.
    xdist's own ``xdist_group`` mark does not group on pytest 9.2 (xdist 3.8 renames ``item._nodeid``, which
    pytest 9 no longer reads), hence a scheduler that groups by path."""
    from xdist.scheduler import LoadScopeScheduling

    from tests.support.xdist_scopes import xdist_scope

    class EngineTestsInTwoUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope(nodeid)

    return EngineTestsInTwoUnits(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before the first notebook's kernel starts: the pool its kernel (and the next ones) will find."""
    global _announced
    if item.path.suffix == ".ipynb" and item.path.parent == NOTEBOOKS and not _announced:
        from playbook.helpers.servers import ENV

        _announced = True
        os.environ[ENV] = session_pool().address


def pytest_sessionfinish(session):
    if _session_pool is not None:
        _session_pool.close()  # every pooled server stops
