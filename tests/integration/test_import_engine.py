"""Import a real `vllm bench serve --save-result --save-detailed` pair (run here, in-process, against the
embedded baseline and speculative servers) and decide on it as on the playbook's own measurements."""

from __future__ import annotations

import json

import pytest

from playbook.helpers import steps
from playbook.helpers.artifacts import RunDir
from playbook.helpers.importers import import_results
from playbook.helpers.params import ReportParams
from playbook.helpers.placement import CLIENT_AUTOGROUP_NICE, _autogroup_nice, _set_autogroup_nice
from scripts.make_import_fixtures import argv_for, bench

pytestmark = pytest.mark.engine


@pytest.fixture
def favoured_session():
    """This session (pytest and the servers it started) favoured over other sessions while vllm bench
    serve runs, as the playbook's own load test does (helpers/placement.py): on a busy 2-core machine
    its streams otherwise reach the client in bursts."""
    before = _autogroup_nice()
    boosted = before is not None and _set_autogroup_nice(CLIENT_AUTOGROUP_NICE)
    yield
    if boosted:
        _set_autogroup_nice(before)


def test_vllm_bench_pair_imports_and_gets_a_verdict(tmp_path, baseline_server, spec_server, favoured_session):
    out = tmp_path / "bench"
    for server, name in ((baseline_server, "baseline.json"), (spec_server, "spec.json")):
        bench(argv_for(server.url, server.model_name, str(server.config.model), out, name, 1, 12))
    spec_file = json.loads((out / "spec.json").read_text())
    assert spec_file["spec_decode_draft_tokens"] > 0 and len(spec_file["ttfts"]) == 12
    res = import_results("vllm-bench", [out / "baseline.json"], [out / "spec.json"], tmp_path / "run", temperature=0.0)
    sp = res.speedup[0]
    assert (sp.status == "ok" and sp.speedup is not None and sp.ci_low is not None) or \
        (sp.status == "excluded" and "burst-delivered" in sp.reason)  # our stream checks apply to imports too
    run = RunDir(tmp_path / "run", create=False)
    report = steps.report(ReportParams(run_dir=str(run.path), production_temperature=0.0), run)
    assert report.decision.verdict in ("GO", "GO WITH LIMITS", "NO-GO", "INCONCLUSIVE")
    assert report.evidence.acceptance_production == pytest.approx(spec_file["spec_decode_acceptance_rate"] / 100)
    assert report.evidence.load_levels[0].status == sp.status
    if sp.status == "ok":
        assert report.evidence.load_levels[0].speedup == pytest.approx(sp.speedup)
