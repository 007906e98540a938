"""The report's "exact launch command" is the configuration it recommends: the verdict's concurrency limit as
``--max-num-seqs``, the crossover alert at that same limit, no CPU-engine settings or loopback bind on a
managed (GPU) server."""

from __future__ import annotations

import shlex

import pytest

from playbook.helpers import decide, monitoring, steps
from playbook.helpers.params import ReportParams
from playbook.helpers.schemas.decision import Evidence, RecommendedConfig
from playbook.helpers.schemas.server import ServerConfig
from playbook.helpers.specconfig import launch_command, with_max_num_seqs
from tests.support.decide_fixtures import load, make_run, sweep

WIN_THEN_LOSS = {1: (1.6, 1.4, 1.8), 4: (1.3, 1.15, 1.45), 16: (0.8, 0.7, 0.9)}  # wins up to 4, none at 16
MANAGED = {"mode": "managed", "target_model": "/models/target", "draft_model": "/models/draft"}


def _argv(cmd: str) -> list[str]:
    return shlex.split(cmd.split("vllm serve ", 1)[1])


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("run"), sweep_result=sweep(), load_result=load(WIN_THEN_LOSS))
    p = ReportParams(run_dir=str(run.path), expected_peak_concurrency=16, kv_cache_gib=0.5, **MANAGED)
    return steps.report(p, run).decision


def test_go_with_limits_launch_command_carries_the_verdicts_limit(limited):
    rec = limited.recommended
    assert limited.verdict == "GO WITH LIMITS" and "up to 4 concurrent requests" in limited.headline
    assert _value(_argv(rec.launch_command), "--max-num-seqs") == "4"  # one source: rec.max_concurrency
    assert decide.seq_limit(rec) == 4


def test_past_crossover_alert_fires_at_the_verdicts_limit_not_the_next_measured_level(limited):
    alert = next(a for a in limited.monitoring["alerts"] if a["name"] == "SpecDecodePastCrossover")
    assert alert["threshold"] == 5 and alert["expr"].endswith(">= 5")  # "up to 4": 5 is ruled out, not 16
    assert "num_requests_waiting" in alert["expr"]  # a server capped at 4 never *runs* 5: it queues them
    assert limited.monitoring["crossover_concurrency"] == 5


def test_managed_launch_command_has_no_cpu_engine_settings_and_no_loopback_bind(limited):
    cmd = limited.recommended.launch_command
    assert "VLLM_CPU_KVCACHE_SPACE" not in cmd and "--kv-cache-memory-bytes" not in cmd  # kv_cache_gib=0.5
    assert "--host" not in cmd and "127.0.0.1" not in cmd
    default = ReportParams(**MANAGED)  # kv_cache_gib keeps the embedded default of 1.0
    rec = RecommendedConfig(enable=True, method="draft_model", num_speculative_tokens=4,
                            speculative_config={"method": "draft_model", "num_speculative_tokens": 4})
    assert "VLLM_CPU_KVCACHE_SPACE" not in decide.launch_command_for(default, rec)


def test_embedded_launch_command_keeps_the_cpu_engines_kv_cache():
    rec = RecommendedConfig(enable=True, method="draft_model", num_speculative_tokens=4,
                            speculative_config={"method": "draft_model", "num_speculative_tokens": 4})
    cmd = decide.launch_command_for(ReportParams(), rec)
    assert cmd.startswith("VLLM_CPU_KVCACHE_SPACE=1 ") and "--host" not in cmd
    assert "--max-num-seqs" not in cmd  # no limit stated, none launched
    # vllm-cpu's `vllm` command fails (no distribution named vllm): the module the playbook measured it with
    argv = shlex.split(cmd.split(" ", 2)[2])
    assert argv[:5] == ["python", "-m", "vllm.entrypoints.openai.api_server", "--model", argv[4]]
    assert argv[4].endswith("tiny-target") and "vllm serve" not in cmd


def test_a_launched_k_table_is_the_limit_itself_no_max_num_seqs():
    table = [[1, 7, 3], [8, 256, 0]]
    rec = RecommendedConfig(enable=True, method="ngram", num_speculative_tokens=3, max_concurrency=7,
                            num_speculative_tokens_per_batch_size=table,
                            speculative_config={"method": "ngram", "num_speculative_tokens": 3,
                                                "num_speculative_tokens_per_batch_size": table})
    assert decide.seq_limit(rec) is None
    cmd = decide.launch_command_for(ReportParams(**{**MANAGED, "method": "ngram", "draft_model": ""}), rec)
    assert "num_speculative_tokens_per_batch_size" in cmd and "--max-num-seqs" not in cmd


@pytest.mark.parametrize(("args", "expected"), [
    ([], ["--max-num-seqs", "4"]),
    (["--max-num-seqs", "64", "--enforce-eager"], ["--enforce-eager", "--max-num-seqs", "4"]),
    (["--max_num_seqs=2"], ["--max-num-seqs", "2"]),  # a tighter cap of the user's stays
])
def test_launch_max_num_seqs_replaces_a_looser_one(args, expected):
    assert with_max_num_seqs(args, 4) == expected


def test_launch_command_takes_the_limit_and_leaves_the_host_to_vllm():
    cfg = ServerConfig(model="/m/t", extra_args=["--max-num-seqs", "256"],
                       speculative_config={"method": "ngram", "num_speculative_tokens": 3})
    argv = _argv(launch_command(cfg, max_num_seqs=4))
    assert argv.count("--max-num-seqs") == 1 and _value(argv, "--max-num-seqs") == "4"
    assert "--host" not in argv
    user_host = launch_command(cfg.model_copy(update={"extra_args": ["--host", "10.0.0.5"]}))
    assert _value(_argv(user_host), "--host") == "10.0.0.5"  # a host the user asked for stays


def test_alert_threshold_follows_the_recommended_limit(limited):
    capped = limited.model_copy(deep=True)
    capped.recommended.max_concurrency = 2
    assert monitoring.crossover_of(capped, Evidence(load_kind="concurrency")) == 3
    capped.recommended.enable = False  # nothing launched: the load test's own crossover, as before
    assert monitoring.crossover_of(capped, Evidence(load_kind="concurrency")) == 16


def test_an_external_runs_launch_command_says_it_is_built_from_the_parameters():
    rec = RecommendedConfig(enable=True, method="ngram", num_speculative_tokens=4,
                            speculative_config={"method": "ngram", "num_speculative_tokens": 4})
    p = ReportParams(mode="external", target_model="Llama-3.1-8B", baseline_url="http://b:8000",
                     spec_url="http://s:8000", method="ngram", draft_model="")
    decide.launch_command_for(p, rec)
    assert any(n.startswith("external mode: this command is built from the run's parameters") for n in rec.notes)
