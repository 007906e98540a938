"""QA round 5 (A): what external servers really run, overloaded and stalled servers, wrong roles, start-up reasons.

Fake servers (tests/support/fake_openai.py) in real processes: fault injection only, never measurements.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from playbook.helpers import decide, evidence, headline, preflight
from playbook.helpers.artifacts import RunDir, write_json_atomic
from playbook.helpers.loadgen import LoadShape, Target
from playbook.helpers.loadtest import LevelRun, Round, analyze, hard_limit_s, run_load_test
from playbook.helpers.metrics import k_mismatch, parse_metrics, server_k
from playbook.helpers.params import LoadParams, PreflightParams, ReportParams
from playbook.helpers.schemas.decision import Thresholds
from playbook.helpers.schemas.preflight import PreflightResult
from playbook.helpers.sweep import run_sweep
from tests.support import start_fake, stop_fake
from tests.support.decide_fixtures import executed_notebook, load, make_run, sweep

C1 = LoadShape("concurrency", concurrency=1)
ROOT = Path(__file__).resolve().parents[2]


def metrics_text(drafts: float = 3, draft_tokens: float = 12, accepted: float = 9,
                 per_pos: list[float] | None = None) -> str:
    """/metrics of a speculative vLLM server: the three counters and, when given, the per-position counter (one
    sample per position, as vLLM creates positions 0 to k-1 at start)."""
    lines = []
    for name, value in (("num_drafts", drafts), ("num_draft_tokens", draft_tokens), ("num_accepted_tokens", accepted)):
        lines += [f"# TYPE vllm:spec_decode_{name} counter",
                  f'vllm:spec_decode_{name}_total{{engine="0",model_name="fake"}} {float(value)}']
    if per_pos is not None:
        lines.append("# TYPE vllm:spec_decode_num_accepted_tokens_per_pos counter")
        lines += [f'vllm:spec_decode_num_accepted_tokens_per_pos_total{{engine="0",model_name="fake",position="{i}"}} '
                  f"{float(v)}" for i, v in enumerate(per_pos)]
    lines += ["# TYPE vllm:num_requests_running gauge", 'vllm:num_requests_running{engine="0",model_name="fake"} 0.0']
    return "\n".join(lines) + "\n"


def _file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture
def fakes():
    procs = []

    def start(**env):
        proc, url = start_fake(**env)
        procs.append(proc)
        return url
    yield start
    for proc in procs:
        stop_fake(proc)


def playbook(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "playbook", *args], capture_output=True, text=True, timeout=120)


def _prompts(tmp_path: Path, words: list[str]) -> str:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"{w} prompt {i}"}) + "\n" for i, w in enumerate(words)))
    return str(path)


# -- 2: the speculative server's k and method against the parameters ---------------------------------------
def test_k_is_read_from_the_position_labels_and_a_mismatch_names_both_and_the_fix():
    snap = parse_metrics(metrics_text(per_pos=[0, 0, 0, 0]))  # positions exist from start, before any draft
    assert server_k(snap) == 4 and server_k(parse_metrics(metrics_text())) is None
    problem, fix = k_mismatch("http://h:8301", 2, positions=4)
    assert "k=4" in problem and "num_speculative_tokens is 2" in problem and "never run" in problem
    assert "-p num_speculative_tokens=4" in fix and "spec_url" in fix
    problem, fix = k_mismatch("http://h:8301", 2, mean_acceptance_length=4.07)
    assert "4.07" in problem and "k+1 = 3" in problem and "spec_url" in fix
    assert k_mismatch("http://h:8301", 4, positions=4, mean_acceptance_length=4.07) is None


def test_preflight_fails_a_spec_server_running_another_k(tmp_path, fakes):
    url = fakes(FAKE_METRICS=_file(tmp_path, "k4.txt", metrics_text(per_pos=[3, 2, 1, 0])))
    p = PreflightParams(mode="external", spec_url=url, method="ngram", draft_model="", num_speculative_tokens=2)
    k_check = preflight.check_spec_config(p, url, None, "fake", probe=False)[0]
    assert k_check.status == "fail" and "k=4" in k_check.detail and "num_speculative_tokens is 2" in k_check.detail
    assert "-p num_speculative_tokens=4" in k_check.fix and "spec_url" in k_check.fix
    same = preflight.check_spec_config(p.model_copy(update={"num_speculative_tokens": 4}), url, None, "fake", probe=False)
    assert same[0].status == "ok" and "k=4" in same[0].detail
    assert same[1].status == "skip"  # no probe, no method check


def test_a_probe_tells_a_drafter_from_a_lookup():
    url = "http://h:8301"
    lookup = preflight.Probe(proposal_rate=0.35, steps=40)
    every = preflight.Probe(proposal_rate=1.0, steps=15)
    fail = preflight._method_check(url, "draft_model", lookup)
    assert fail.status == "fail" and "35%" in fail.detail and "n-gram" in fail.detail and "draft_model" in fail.detail
    assert "-p method=ngram" in fail.fix and "spec_url" in fail.fix
    assert preflight._method_check(url, "draft_model", every).status == "ok"
    assert preflight._method_check(url, "ngram", lookup).status == "ok"
    assert preflight._method_check(url, "ngram", every).status == "warn"  # n-gram on every step: unlikely, not proven
    assert preflight._method_check(url, "eagle3", preflight.Probe(proposal_rate=0.2, steps=4)).status == "skip"
    assert preflight._method_check(url, "draft_model", preflight.Probe(error="a probe failed")).status == "warn"


def test_the_probe_request_reads_the_counters_of_a_live_server(fakes):
    url = fakes(FAKE_METRICS="live")  # 9 tokens, 2 drafts, 4 accepted: mean acceptance length 3, 4 decode steps
    checks = {c.name: c for c in preflight.check_spec_config(PreflightParams(mode="external", spec_url=url), url, None,
                                                             "fake")}
    assert checks["spec server's k"].status == "ok" and "3.00" in checks["spec server's k"].detail
    assert checks["spec server's method"].status == "skip" and "4 decode step" in checks["spec server's method"].detail
    tight = preflight.check_spec_config(PreflightParams(mode="external", spec_url=url, num_speculative_tokens=1), url,
                                        None, "fake")
    assert tight[0].status == "fail" and "k+1 = 2" in tight[0].detail  # 3 tokens per step cannot be k=1


def test_the_sweep_refuses_acceptance_for_a_k_never_run(tmp_path, fakes):
    url = fakes(FAKE_METRICS=_file(tmp_path, "k4.txt", metrics_text(per_pos=[3, 2, 1, 0])))
    run = RunDir(tmp_path / "run")
    res = run_sweep(Target(url, "fake"), ["structured"], [0.0, 0.8], requests_per_point=2, max_tokens=9, run=run,
                    progress=False, method="draft_model", num_speculative_tokens=2)
    assert res.status == "failed" and res.points == [] and res.temperatures == [] and res.production_acceptance is None
    assert res.finding.startswith("configuration mismatch") and "k=4" in res.finding
    assert "-p num_speculative_tokens=4" in res.finding
    assert not run.artifact("40_sweep_requests.jsonl").exists()  # the labels said so before any request


def test_the_sweep_refuses_a_mean_acceptance_length_above_k_plus_1(tmp_path, fakes):
    before = _file(tmp_path, "a.txt", metrics_text(0, 0, 0))
    after = _file(tmp_path, "b.txt", metrics_text(2, 4, 8))  # 1 + 8/2 = 5 tokens per step: not k=2
    url = fakes(FAKE_METRICS=",".join([before, before, after]))
    res = run_sweep(Target(url, "fake"), ["structured"], [0.0], requests_per_point=2, max_tokens=9, progress=False,
                    num_speculative_tokens=2)
    assert res.status == "failed" and res.points == [] and "5.00" in res.finding and "k+1 = 3" in res.finding


# -- 3: a level whose requests mostly failed is no speedup ----------------------------------------------------
def rec(tpot: float, status: str = "ok") -> dict:
    if status != "ok":
        return {"status": status, "tpot_ms": None, "ttft_ms": None, "e2e_ms": 30000.0, "itl_ms": [], "output_tokens": 0,
                "dispatch_lag_ms": 0.1, "burst": False, "error": "no complete response within 30 s"}
    return {"status": "ok", "tpot_ms": tpot, "ttft_ms": 10.0, "e2e_ms": 10.0 + tpot * 32, "itl_ms": [tpot] * 32,
            "output_tokens": 33, "dispatch_lag_ms": 0.1, "burst": False}


def _level(base: list[dict], spec: list[dict]) -> LevelRun:
    from playbook.helpers.load_analysis import level_stats

    lr = LevelRun(C1, "structured", "paired")
    lr.rounds = {"baseline": [Round("b1", base[:6], 2.0), Round("b2", base[6:], 2.0)],
                 "spec": [Round("s1", spec[:6], 2.0), Round("s2", spec[6:], 2.0)]}
    lr.stats = {"baseline": level_stats("baseline", C1, base, 4.0), "spec": level_stats("spec", C1, spec, 4.0)}
    return lr


def test_a_level_where_most_spec_requests_timed_out_is_excluded_with_the_reason():
    base = [rec(5.0 + 0.01 * i) for i in range(12)]
    spec = [rec(3.0 + 0.01 * i) for i in range(5)] + [rec(0, "timeout") for _ in range(7)]
    res = analyze([_level(base, spec)])
    (sp,) = res.speedup
    assert sp.status == "excluded" and sp.speedup is None and not sp.significant
    assert "58% of spec requests timed out" in sp.reason and "overloaded or stalled" in sp.reason
    assert res.crossover is None and "significant win" not in res.finding.replace("no significant win", "")
    assert any(w.startswith("concurrency 1: excluded from the speedup") and "58%" in w for w in res.warnings)
    assert res.levels[1].status == "ok"  # the level stats stay: the pooled error rate still counts its requests
    assert analyze([_level(base, spec)], max_error_rate=0.6).speedup[0].status == "ok"


def test_the_report_excludes_a_level_above_its_own_max_error_rate(tmp_path):
    lr = load({1: (1.6, 1.4, 1.8), 4: (1.3, 1.15, 1.45)})
    for st in lr.levels:
        if st.level == 4 and st.config == "spec":
            st.errors, st.error_rate, st.errors_by_status = 5, 5 / 16, {"timeout": 5}
    run = make_run(tmp_path, sweep_result=sweep(), load_result=lr)
    p = ReportParams(expected_peak_concurrency=4)
    ev = evidence.gather(run, 0.2, params=p)
    lv4 = next(x for x in ev.load_levels if x.concurrency == 4)
    assert lv4.status == "excluded" and lv4.speedup is None and "31% of spec requests timed out" in lv4.reason
    d = decide.decide_for(ev, p)
    number = headline.speedup_number(ev, 4, Thresholds(), "")
    assert number.value == "withheld" and "timed out" in number.detail
    assert d.verdict != "GO"  # the level at the peak cannot count as a win
    assert next(x for x in evidence.gather(run, 0.2).load_levels if x.concurrency == 4).status == "ok"  # no threshold


def test_playbook_load_warns_about_a_level_with_timeouts_and_keeps_it_in_json(tmp_path, fakes):
    url = fakes()
    out = playbook("load", "--baseline-url", url, "--spec-url", url, "--concurrency", "2", "--requests", "4",
                   "--warmup", "0", "--timeout", "1", "--min-pairs", "2", "--level-budget", "1", "--no-lossless",
                   "--workload", _prompts(tmp_path, ["ok", "ok", "ok", "stall"]), "--run-dir", str(tmp_path / "r"),
                   "--json", "--no-progress")
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout)
    (sp,) = data["speedup"]
    assert sp["status"] == "excluded" and "25% of baseline requests timed out" in sp["reason"]
    warned = [w for w in data["warnings"] if "excluded from the speedup" in w]
    assert warned and "timed out" in warned[0]
    assert f"warning: {warned[0]}" in out.stderr


# -- 4: a stalled server is said at once and stops the level --------------------------------------------------
def _stalled_params(url: str, tmp_path: Path, **kw) -> LoadParams:
    values = dict(mode="external", baseline_url=url, spec_url=url, concurrencies=[1, 2], requests_per_level=4,
                  warmup_requests=0, find_saturation=False, lossless_check=False, max_tokens=9, request_timeout_s=1,
                  level_time_budget_s=0.2, level_decision_budget_s=0,
                  workload=_prompts(tmp_path, ["stall", "stall"]))
    return LoadParams(**{**values, **kw})


def test_a_round_whose_requests_all_time_out_stops_the_level_at_once(tmp_path, fakes, capfd):
    url = fakes()
    p = _stalled_params(url, tmp_path)
    assert hard_limit_s(p) == 1.0  # 3x the budget is shorter than one request timeout
    run = RunDir(tmp_path / "run")
    t0 = time.monotonic()
    res = run_load_test(p, run, progress=False)
    took = time.monotonic() - t0
    assert took < 8, took  # not 4 requests x 1 s x 2 servers x 3 pairs, nor the next level
    assert res.status == "failed" and res.speedup == []
    records = [r for r in run.read_jsonl("50_load_requests.jsonl") if not r["warmup"]]
    assert records and all(r["status"] == "timeout" for r in records) and len(records) < 4  # no request past the limit
    assert {r["phase"].split("@")[0] for r in records} == {"baseline"}  # no round started after it
    missing = " ".join(res.missing_levels)
    assert "baseline@1" in missing and f"to {url} timed out" in missing and "stalled or overloaded" in missing
    err = capfd.readouterr().err
    assert "timed out (no complete response within 1 s)" in err and url in err and "the level stops as failed" in err


def test_a_healthy_level_slower_than_its_budget_still_measures_every_round_whole(tmp_path, fakes):
    """The hard limit is for failing levels: a slow server whose requests all succeed (a long output on a big model)
    gets min_round_pairs whole rounds, every request of each, however far past 3x the level budget."""
    url = fakes()
    p = _stalled_params(url, tmp_path, concurrencies=[1], requests_per_level=4, min_round_pairs=2,
                        request_timeout_s=1, level_time_budget_s=0.01)
    (tmp_path / "ok").mkdir()
    p = p.model_copy(update={"workload": _prompts(tmp_path / "ok", ["slow"] * 4)})  # _stalled_params writes stalls
    assert hard_limit_s(p) == 1.0
    run = RunDir(tmp_path / "run")
    t0 = time.monotonic()
    res = run_load_test(p, run, progress=False)
    assert time.monotonic() - t0 > hard_limit_s(p)  # the level did run past the hard limit
    records = [r for r in run.read_jsonl("50_load_requests.jsonl") if not r["warmup"]]
    assert all(r["status"] == "ok" for r in records) and len(records) == 2 * 2 * 4  # 2 pairs x 2 servers x 4
    assert res.speedup and res.speedup[0].status == "ok"


def test_a_warmup_whose_requests_all_time_out_stops_the_level_before_its_rounds(tmp_path, fakes, capfd):
    url = fakes()
    run = RunDir(tmp_path / "run")
    res = run_load_test(_stalled_params(url, tmp_path, warmup_requests=1, concurrencies=[1]), run, progress=False)
    assert res.status == "failed" and any("its warmup" in m and "timed out" in m for m in res.missing_levels)
    assert all(r["warmup"] for r in run.read_jsonl("50_load_requests.jsonl"))
    assert "warmup" in capfd.readouterr().err


def test_the_sweep_stops_at_a_point_whose_requests_all_time_out(tmp_path, fakes, capfd):
    url = fakes(FAKE_METRICS="live")
    t0 = time.monotonic()
    res = run_sweep(Target(url, "fake"), [_prompts(tmp_path, ["stall", "stall"])], [0.0, 0.8], requests_per_point=2,
                    max_tokens=9, timeout_s=1, run=RunDir(tmp_path / "run"), progress=False)
    assert time.monotonic() - t0 < 6
    assert res.status == "failed" and res.points == [] and any("timed out" in w for w in res.warnings)
    assert len(RunDir(tmp_path / "run").read_jsonl("40_sweep_requests.jsonl")) == 2  # T=0.8 was not sent
    err = capfd.readouterr().err
    assert "timed out" in err and url in err and "the sweep stops here" in err


# -- 5: preflight checks the baseline's role, one server named twice, a URL a step needs -------------------------
def test_preflight_fails_one_server_named_as_both(fakes):
    url = fakes(FAKE_METRICS="live")
    spelled = url.replace("127.0.0.1", "localhost") + "/"
    res = preflight.check_servers(PreflightParams(mode="external", baseline_url=spelled, spec_url=url), None,
                                  PreflightResult(mode="external"))
    same = next(c for c in res.checks if c.name == "baseline and spec servers differ")
    assert same.status == "fail" and "compare the server with itself" in same.detail and "baseline_url" in same.fix
    assert not any(c.name == "baseline runs without speculation" for c in res.checks)  # said once, by the check above
    # one router serving both by name: two servers
    assert preflight.check_same_server({"baseline": (url, "base"), "spec": (url, "spec")}) is None


def test_preflight_fails_a_baseline_that_speculates(tmp_path, fakes):
    plain = fakes(FAKE_METRICS=_file(tmp_path, "plain.txt", "# TYPE vllm:num_requests_running gauge\n"
                                                            'vllm:num_requests_running{engine="0"} 0.0\n'))
    spec = fakes(FAKE_METRICS="live")
    p = PreflightParams(mode="external", baseline_url=spec, spec_url=plain)  # swapped
    base = preflight.check_baseline_role(p, spec, None)[0]
    assert base.status == "fail" and "speculation with speculation" in base.detail
    assert "swapped" in base.fix
    assert preflight.check_baseline_role(p, plain, None)[0].status == "ok"


def test_preflight_fails_an_empty_url_that_a_step_to_run_needs(tmp_path):
    run = RunDir(tmp_path / "run")
    write_json_atomic(run.path / "run.json", {"steps": [{"name": "00_preflight", "status": "running"},
                                                        {"name": "40_sweep", "status": "done"},
                                                        {"name": "50_load", "status": "pending"}]})
    assert preflight.steps_to_run(run) == {"00_preflight", "50_load"} and preflight.steps_to_run(None) == set()
    p = PreflightParams(mode="external", spec_url="http://h:8301", baseline_url="")
    (check,) = preflight.check_urls_needed(p, preflight.steps_to_run(run))
    assert check.status == "fail" and "50_load will run" in check.detail and "-p baseline_url=" in check.fix
    assert preflight.check_urls_needed(p, {"00_preflight", "40_sweep"}) == []


# -- 6: nothing measured is no success; lossless checks the roles first ----------------------------------------
def test_playbook_sweep_against_a_server_without_speculation_fails(tmp_path, fakes):
    url = fakes(FAKE_METRICS=_file(tmp_path, "plain.txt", "# TYPE vllm:num_requests_running gauge\n"
                                                          'vllm:num_requests_running{engine="0"} 0.0\n'))
    out = playbook("sweep", "--url", url, "--temperatures", "0", "--run-dir", str(tmp_path / "r"), "--json",
                   "--no-progress")
    assert out.returncode == 1, out.stderr[-2000:]
    data = json.loads(out.stdout)
    assert data["status"] == "failed" and data["speculation"] is False and "without speculation" in data["finding"]


def test_playbook_lossless_refuses_swapped_roles(tmp_path, fakes):
    plain = fakes(FAKE_METRICS=_file(tmp_path, "plain.txt", "# TYPE vllm:num_requests_running gauge\n"
                                                            'vllm:num_requests_running{engine="0"} 0.0\n'))
    spec = fakes(FAKE_METRICS="live")
    out = playbook("lossless", "--baseline-url", spec, "--spec-url", plain, "--run-dir", str(tmp_path / "r"), "--json")
    assert out.returncode == 1, out.stderr[-2000:]
    data = json.loads(out.stdout)
    assert data["status"] == "failed" and data["lossless"] is None and data["finding"].startswith("not checked")
    assert "exposes no vllm:spec_decode counters" in data["finding"] and "swapped" in data["finding"]
    from playbook.helpers.lossless import role_problems

    assert role_problems(Target(plain, "fake"), Target(spec, "fake")) == ([], [])


# -- 7: a start-up refused by pydantic names vLLM's own reason and the max_model_len fix --------------------------
VALIDATION_START = """\
(APIServer pid=7) ERROR 12-06 22:48:40 [api_server.py:1] Traceback (most recent call last):
  File "/x/pydantic/_internal/_dataclasses.py", line 121, in __init__
    s.__pydantic_validator__.validate_python(ArgsKwargs(args, kwargs), self_instance=s)
pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig
  Value error, User-specified max_model_len (200000) is greater than the derived max_model_len \
(max_position_embeddings=1024.0 or model_max_length=None in model's config.json). To allow overriding this maximum, \
set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1. [type=value_error, input_value=ArgsKwargs((), {'model': ...}), \
input_type=ArgsKwargs]
    For further information visit https://errors.pydantic.dev/2.14/v/value_error
"""


def test_a_pydantic_refusal_quotes_the_value_error_and_suggests_the_max_model_len():
    from playbook.helpers.server import _fix_for, _log_reason

    reason = _log_reason(VALIDATION_START, 1)
    assert reason.startswith("ModelConfig: User-specified max_model_len (200000) is greater than the derived")
    assert "ValidationError" not in reason and "[type=" not in reason
    assert _fix_for(reason).startswith("lower max_model_len to <= 1024 (the model's max_position_embeddings")
    kv = "ValueError: ... Based on the available memory, the estimated maximum model length is 16384. Try ..."
    assert _fix_for(kv).startswith("lower max_model_len to <= 16384")


# -- 8: the README's command-line example runs against the embedded engine -------------------------------------
def test_the_readme_example_asks_for_no_model_name_the_engine_does_not_serve():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Command line"):text.index("## Environment variables")]
    assert "--model tiny-target" not in section and "playbook sweep --url http://127.0.0.1:8101" in section


# -- 9: one model under two spellings; a partial result's advice is to resume -------------------------------------
EXTERNAL = dict(target_model="embedded", draft_model="embedded", method="draft_model", num_speculative_tokens=4,
                mode="external", max_model_len=1024)


def test_a_result_recording_embedded_is_the_notebooks_embedded_target(tmp_path):
    s = sweep()
    s.status = "failed"
    s.measured_for = {"target": "embedded", "draft": "embedded", "method": "draft_model", "num_speculative_tokens": 4,
                      "mode": "external"}
    run = make_run(tmp_path, sweep_result=s, preflight=False)
    executed_notebook(run, "40_sweep", **EXTERNAL)
    assert evidence.mixed_parameters(run) == []
    assert not any("parameters" in f for f in evidence.gather(run).steps_failed)


def test_a_partial_result_with_other_parameters_is_resumed_not_a_new_run_directory(tmp_path):
    s = sweep()
    s.status, s.num_speculative_tokens = "partial", 2
    s.measured_for = {"target": "embedded-target", "num_speculative_tokens": 2, "mode": "external"}
    run = make_run(tmp_path, sweep_result=s, load_result=load({1: (1.4, 1.3, 1.5)}), preflight=False)
    executed_notebook(run, "40_sweep", **EXTERNAL)
    executed_notebook(run, "50_load", **EXTERNAL)
    ev = evidence.gather(run)
    said = [f for f in ev.steps_failed if f.startswith("40_sweep")]
    assert said and "partial result records other parameters" in said[0] and "different parameters" not in said[0]
    advice = " ".join(decide.failed_steps(ev))
    assert "playbook run --resume" in advice and "new run directory" not in advice
