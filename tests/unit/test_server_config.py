"""Command building, start-up log parsing, the embedded config and the engine registry (no server)."""

from __future__ import annotations

import json

import pytest

from playbook.helpers.errors import ModelError, ServerError
from playbook.helpers.schemas.server import EngineRecord, ServerConfig
from playbook.helpers.server import MODULE, build_command, parse_startup_log, prepare
from playbook.helpers.specconfig import build_speculative_config


def argv_value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


@pytest.fixture
def model_dir(tmp_path):
    for name in ("target", "draft"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    return tmp_path


def test_gpu_node_command_has_every_setting(model_dir):
    cfg = ServerConfig(
        model=str(model_dir / "target"), port=8000, host="0.0.0.0", served_model_name="llama", dtype="bfloat16",
        max_model_len=8192, gpu_memory_utilization=0.9, tensor_parallel_size=2, pipeline_parallel_size=2,
        data_parallel_size=2, distributed_executor_backend="ray", quantization="awq", kv_cache_dtype="fp8",
        speculative_config=build_speculative_config("draft_model", str(model_dir / "draft"), 4),
        extra_args=["--seed", "1"], python="/opt/vllm/bin/python",
    )
    argv = build_command(cfg, per_request_metrics=True)
    assert argv[:3] == ["/opt/vllm/bin/python", "-m", MODULE]
    expected = {"--model": str(model_dir / "target"), "--port": "8000", "--host": "0.0.0.0",
                "--served-model-name": "llama", "--dtype": "bfloat16", "--max-model-len": "8192",
                "--gpu-memory-utilization": "0.9", "--tensor-parallel-size": "2", "--pipeline-parallel-size": "2",
                "--data-parallel-size": "2", "--distributed-executor-backend": "ray", "--quantization": "awq",
                "--kv-cache-dtype": "fp8", "--per-request-spec-decode-metrics": "summary", "--seed": "1"}
    assert {flag: argv_value(argv, flag) for flag in expected} == expected
    assert json.loads(argv_value(argv, "--speculative-config")) == {
        "method": "draft_model", "num_speculative_tokens": 4, "model": str(model_dir / "draft")}


def test_defaults_stay_off_the_command(model_dir):
    argv = build_command(ServerConfig(model=str(model_dir / "target"), port=9000))
    for flag in ("--tensor-parallel-size", "--quantization", "--kv-cache-dtype", "--speculative-config",
                 "--dtype", "--enforce-eager", "--per-request-spec-decode-metrics"):
        assert flag not in argv
    assert argv_value(argv, "--host") == "127.0.0.1"


def test_prepare_adds_per_request_metrics_only_with_speculation(model_dir):
    spec = build_speculative_config("ngram")
    _, argv, _ = prepare(ServerConfig(model=str(model_dir / "target"), speculative_config=spec))
    assert argv_value(argv, "--per-request-spec-decode-metrics") == "summary"
    cfg, argv, _ = prepare(ServerConfig(model=str(model_dir / "target")))
    assert "--per-request-spec-decode-metrics" not in argv
    assert cfg.port and argv_value(argv, "--port") == str(cfg.port)  # a free port was chosen
    _, argv, _ = prepare(ServerConfig(model=str(model_dir / "target"), speculative_config=spec,
                                      extra_args=["--per-request-spec-decode-metrics", "detailed"]))
    assert argv.count("--per-request-spec-decode-metrics") == 1 and "detailed" in argv
    _, argv, _ = prepare(ServerConfig(model=str(model_dir / "target"), speculative_config=spec,
                                      per_request_spec_metrics=False))
    assert "--per-request-spec-decode-metrics" not in argv


def test_prepare_translates_legacy_flags(model_dir):
    with pytest.warns(UserWarning, match="legacy speculative flags"):
        cfg, argv, notes = prepare(ServerConfig(model=str(model_dir / "target"), extra_args=[
            "--speculative-model", str(model_dir / "draft"), "--num-speculative-tokens", "3"]))
    assert "--speculative-model" not in argv and notes
    assert cfg.speculative_config == {"method": "draft_model", "model": str(model_dir / "draft"),
                                      "num_speculative_tokens": 3}


def test_prepare_validates_the_speculative_config(model_dir):
    from playbook.helpers.errors import SpecConfigError

    with pytest.raises(SpecConfigError, match="num_speculative_token'"):
        prepare(ServerConfig(model=str(model_dir / "target"),
                             speculative_config={"method": "ngram", "num_speculative_token": 3}))


def test_hub_names_only_when_allowed(tmp_path):
    with pytest.raises(ModelError, match="allow_hub_model"):
        prepare(ServerConfig(model="meta-llama/Llama-3.1-8B-Instruct"))
    cfg, argv, _ = prepare(ServerConfig(model="meta-llama/Llama-3.1-8B-Instruct", allow_hub_model=True))
    assert argv_value(argv, "--model") == "meta-llama/Llama-3.1-8B-Instruct"


# -- start-up log -----------------------------------------------------------------------------

NOTES_LINE = ("(EngineCore pid=11886) INFO 11-23 19:24:14 [kv_cache_utils.py:2327] CPU KV cache size: 931,968 "
              "tokens, Maximum concurrency for 1,024 tokens per request: 910.12x")
# vllm/v1/core/kv_cache_utils.py: "%s KV cache size: %s tokens, Maximum concurrency for %s tokens per request: %.2fx"
GPU_LINE = ("(EngineCore_DP0 pid=2210) INFO 08-14 10:02:31 [kv_cache_utils.py:2327] GPU KV cache size: 1,423,456 "
            "tokens, Maximum concurrency for 131,072 tokens per request: 10.86x")
# vLLM 0.8/0.9 logged the two numbers on separate lines.
OLD_LINES = ("INFO 05-01 12:00:00 [kv_cache_utils.py:634] GPU KV cache size: 45,920 tokens\n"
             "INFO 05-01 12:00:00 [kv_cache_utils.py:637] Maximum concurrency for 8,192 tokens per request: 5.61x\n"
             "INFO 05-01 12:00:03 [api_server.py:1090] vLLM API server version 0.9.2\n")


@pytest.mark.parametrize("text, tokens, conc, ctx, device", [
    (NOTES_LINE, 931_968, 910.12, 1024, "CPU"),
    (GPU_LINE, 1_423_456, 10.86, 131_072, "GPU"),
    (OLD_LINES, 45_920, 5.61, 8192, "GPU"),
])
def test_parse_startup_log(text, tokens, conc, ctx, device):
    facts = parse_startup_log("INFO something else\n" + text)
    assert (facts.kv_cache_tokens, facts.max_concurrency, facts.max_concurrency_context, facts.kv_cache_device) == \
        (tokens, conc, ctx, device)


def test_parse_version_lines():
    assert parse_startup_log(OLD_LINES).vllm_version == "0.9.2"
    line = "(APIServer pid=1) INFO 11-23 [api_utils.py:327] vLLM server version 0.32.0, serving model /m"
    assert parse_startup_log(line).vllm_version == "0.32.0"


def test_parse_log_without_kv_line_warns():
    facts = parse_startup_log("INFO starting\nINFO loading weights\n")
    assert facts.kv_cache_tokens is None and facts.warnings


# -- embedded engine --------------------------------------------------------------------------

@pytest.fixture
def pair_dir(tmp_path, monkeypatch):
    for name in ("tiny-target", "tiny-draft"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    monkeypatch.setenv("PLAYBOOK_TINY_PAIR_DIR", str(tmp_path))
    monkeypatch.setenv("PLAYBOOK_HOME", str(tmp_path / "home"))
    return tmp_path


def test_embedded_config_uses_the_cpu_settings(pair_dir):
    from playbook.helpers.embedded import STRUCTURED_OUTPUTS_ARGS, embedded_server_config, omp_bind, tiny_pair

    cfg = embedded_server_config("draft_model", num_speculative_tokens=3)
    assert cfg.model == str(pair_dir / "tiny-target") and cfg.host == "127.0.0.1"
    assert (cfg.dtype, cfg.gpu_memory_utilization, cfg.enforce_eager, cfg.max_model_len) == ("bfloat16", 0.3, True, 1024)
    assert cfg.env == {"VLLM_CPU_KVCACHE_SPACE": "1", **omp_bind()}  # compute bound off the client's core
    assert cfg.speculative_config == {"method": "draft_model", "num_speculative_tokens": 3,
                                      "model": str(tiny_pair().draft)}
    assert embedded_server_config("ngram").speculative_config["method"] == "ngram"
    assert embedded_server_config("none").speculative_config is None
    half = embedded_server_config(kv_cache_gib=0.5)
    assert half.env == omp_bind() and half.extra_args == ["--kv-cache-memory-bytes", str(2**29), *STRUCTURED_OUTPUTS_ARGS]
    assert cfg.extra_args == STRUCTURED_OUTPUTS_ARGS  # guided JSON without whitespace, a server setting in vLLM 0.32


def test_missing_pair_is_a_clear_error(tmp_path, monkeypatch):
    from playbook.helpers.embedded import tiny_pair

    monkeypatch.setenv("PLAYBOOK_TINY_PAIR_DIR", str(tmp_path))
    with pytest.raises(ModelError, match="tiny model pair is missing") as err:
        tiny_pair()
    assert "build_tiny_pair.py" in err.value.fix


def test_registry_drops_dead_engines(pair_dir):
    from playbook import engine

    engine.registry_dir().mkdir(parents=True)
    dead = EngineRecord(url="http://127.0.0.1:1", pid=2**22 - 7, pgid=2**22 - 7, port=1, host="127.0.0.1",
                        log="x", model="m", served_model_name="m", proc_start_ticks=1)
    (engine.registry_dir() / "1.json").write_text(dead.model_dump_json())
    assert engine.running_engines() == []
    assert not (engine.registry_dir() / "1.json").exists()
    assert engine.stop_engines(all_=True) == []
    with pytest.raises(ServerError, match="no engine .* port 1"):
        engine.stop_engines(port=1)


# Lines from a real vllm-cpu 0.32.0 start that failed (gpu_memory_utilization 0.95 on this machine).
FAILED_START = """\
(APIServer pid=24064) WARNING 11-23 19:44:51 [system_utils.py:255] Found ulimit of 20000 and failed to automatically increase with error current limit exceeds maximum limit. This can cause fd limit errors like `OSError: [Errno 24] Too many open files`. Consider increasing with ulimit -n
(VllmWorker-0 pid=24576) ERROR 11-23 19:45:44 [multiproc_executor.py:953] WorkerProc failed to start.
(VllmWorker-0 pid=24576) ERROR 11-23 19:45:44 [multiproc_executor.py:953] Traceback (most recent call last):
(VllmWorker-0 pid=24576) ERROR 11-23 19:45:44 [multiproc_executor.py:953]     raise ValueError(
(VllmWorker-0 pid=24576) ERROR 11-23 19:45:44 [multiproc_executor.py:953] ValueError: Available memory on node 0 (15.19/18.84 GiB) on startup is less than desired CPU memory utilization (0.95, 17.9 GiB).
    raise RuntimeError(
RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}
"""


def test_start_failure_reason_is_the_root_cause():
    from playbook.helpers.server import _fix_for, _log_reason

    reason = _log_reason(FAILED_START, 1)
    assert reason.startswith("ValueError: Available memory on node 0")
    assert "gpu_memory_utilization" in _fix_for(reason)
    assert _log_reason(FAILED_START.splitlines()[-1], 1).startswith("RuntimeError: Engine core")
    assert _log_reason("", -9).startswith("killed by signal 9 (out of memory")


def test_kv_cache_size_reaches_vllm_the_same_way_in_every_mode(tmp_path):
    """One rule (helpers.embedded.kv_cache_settings): whole GiB by env, a fraction by --kv-cache-memory-bytes."""
    from playbook.helpers.embedded import kv_cache_settings
    from playbook.helpers.endpoints import server_config
    from playbook.helpers.params import StepParams

    assert kv_cache_settings(2) == ({"VLLM_CPU_KVCACHE_SPACE": "2"}, [])
    assert kv_cache_settings(0.25) == ({}, ["--kv-cache-memory-bytes", str(2**28)])
    assert kv_cache_settings(0) == ({}, [])
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    p = StepParams(mode="managed", target_model=str(model), draft_model="", method="ngram", kv_cache_gib=0.5)
    cfg = server_config(p, "baseline")
    assert cfg.env == {} and cfg.extra_args[-2:] == ["--kv-cache-memory-bytes", str(2**29)]
    whole = server_config(p.model_copy(update={"kv_cache_gib": 3.0}), "spec")
    assert whole.env == {"VLLM_CPU_KVCACHE_SPACE": "3"} and "--kv-cache-memory-bytes" not in whole.extra_args


# The tail of a real vllm-cpu 0.32.0 start on this machine (no network) with a hub id as the model
# (`playbook run --profile h100x1-llama8b-eagle3`, 2026-12-06): the first exception is a bare connection error.
HUB_OFFLINE_START = """\
(APIServer pid=1) ERROR 12-06 07:10:40 [api_server.py:1] httpcore2.ConnectError: [Errno -2] Name or service not known
  File "/work/main/.venv/lib/python3.11/site-packages/transformers/utils/hub.py", line 620, in cached_files
    raise OSError(
OSError: We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in the cached files.
"""
GATED_START = """\
OSError: You are trying to access a gated repo.
Make sure to have access to it at https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct.
401 Client Error. (Request ID: Root=1-abc)
"""


@pytest.mark.parametrize("log, said, fix", [
    (HUB_OFFLINE_START, "not in this machine's Hugging Face cache", "huggingface-cli download"),
    (GATED_START, "gated repository", "HF_TOKEN"),
])
def test_a_hub_model_that_cannot_be_fetched_is_said_as_such_with_the_fix(log, said, fix):
    from playbook.helpers.server import _fix_for, _log_reason

    reason = _log_reason(log, 1)
    assert said in reason and fix in _fix_for(reason)
    assert "ConnectError" not in reason  # the bare connection error is not the cause a user can act on


def test_a_start_that_could_not_fetch_its_hub_models_names_them(tmp_path):
    import subprocess

    from playbook.helpers.errors import ServerStartError
    from playbook.helpers.server import ManagedServer, _wait_healthy

    log = tmp_path / "spec-1.log"
    log.write_text(HUB_OFFLINE_START)
    proc = subprocess.Popen(["python3", "-c", "raise SystemExit(1)"])
    proc.wait()
    cfg = ServerConfig(model="meta-llama/Llama-3.1-8B-Instruct", port=1,
                       speculative_config={"model": "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B", "method": "eagle3"})
    server = ManagedServer(cfg, "spec-1", log, proc, proc.pid, ["vllm"])
    with pytest.raises(ServerStartError) as err:
        _wait_healthy(server, timeout_s=5)
    assert "cannot be reached (meta-llama/Llama-3.1-8B-Instruct, yuhuili/EAGLE3-LLaMA3.1-Instruct-8B)" in err.value.problem
    assert "huggingface-cli download" in err.value.fix


def test_a_start_that_fails_on_the_tokenizer_says_what_the_directory_lacks():
    from playbook.helpers.server import _fix_for, _log_reason

    log = ("(APIServer pid=1) ValueError: Couldn't instantiate the backend tokenizer from one of:\n"
           "(1) a `tokenizers` library serialization file,\n")
    assert "no tokenizer vLLM can load" in _fix_for(_log_reason(log, 1))
    assert "full log named above" in _fix_for("SomethingError: odd")
