"""How `make test` splits the suite over its two pytest-xdist workers (root conftest.py's scheduler)."""

from __future__ import annotations

# Where the tests that start vLLM servers or a browser live (markers `engine`, `browser`), and the notebooks.
ENGINE_PATHS = ("tests/integration/", "tests/browser/", "notebooks/")
# Engine tests that share no server with the others (each starts, and stops, its own): they run on the other worker,
# first, beside the stream's first tests (the browser's, with one server), so the two workers take about as long.
OWN_SERVER_PATHS = ("tests/integration/test_end_to_end.py", "tests/integration/test_engine_cli.py")


def xdist_scope(nodeid: str) -> str:
    """The unit of work a test belongs to: one worker runs a unit's tests in order."""
    if nodeid.startswith(OWN_SERVER_PATHS):
        return "engine-own-servers"
    return "engine" if nodeid.startswith(ENGINE_PATHS) else nodeid
