"""The two-worker split of `make test` (root conftest.py): which tests share a worker, and why that is safe."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import xdist_scopes as root

ROOT = Path(__file__).parents[2]
SHARED_FIXTURES = {"server_pool", "spec_server", "baseline_server", "spec_server_without_fix", "ngram_server"}


@pytest.mark.parametrize(("nodeid", "scope"), [
    ("tests/integration/test_measure_engine.py::test_x", "engine"),
    ("tests/browser/test_lab.py::test_walkthrough_in_chromium", "engine"),
    ("notebooks/50_load.ipynb::Cell 4", "engine"),
    ("tests/integration/test_end_to_end.py::test_ends_with_a_report_and_a_verdict", "engine-own-servers"),
    ("tests/integration/test_engine_cli.py::test_engine_cli_round_trip", "engine-own-servers"),
    ("tests/unit/test_stats.py::test_x", "tests/unit/test_stats.py::test_x"),
])
def test_scopes(nodeid, scope):
    assert root.xdist_scope(nodeid) == scope


def _argument_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {a.arg for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) for a in node.args.args}


@pytest.mark.parametrize("path", root.OWN_SERVER_PATHS)
def test_own_server_tests_use_no_shared_server(path):
    """A test that ran beside the engine stream while using its shared servers would start a second copy of
    them in the other worker's session (two streams of servers do not fit in 23 GiB): it must not be listed."""
    assert (ROOT / path).is_file(), path
    used = _argument_names(ROOT / path) & SHARED_FIXTURES
    assert not used, f"{path} uses the engine stream's shared servers {sorted(used)}: take it out of OWN_SERVER_PATHS"


def test_the_shared_fixtures_listed_here_are_the_integration_conftests():
    conf = ast.parse((ROOT / "tests/integration/conftest.py").read_text())
    fixtures = {n.name for n in ast.walk(conf) if isinstance(n, ast.FunctionDef)
                and any("fixture" in ast.unparse(d) for d in n.decorator_list)}
    assert fixtures - {"pair"} <= SHARED_FIXTURES, sorted(fixtures - SHARED_FIXTURES)
