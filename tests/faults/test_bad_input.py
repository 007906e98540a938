"""Issue 6, bad input, at the command line: each mistake is refused before any run directory, kernel
or server exists, with a message naming what is wrong and where (helpers are tested one layer down
in tests/unit/test_params.py and test_workloads.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from playbook.cli import main

BAD_YAML = "mode: external\nconcurrencies: [1, 2\nspec_url: http://127.0.0.1:8000\n"


@pytest.fixture
def files(tmp_path):
    (tmp_path / "bad.yaml").write_text(BAD_YAML)
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "broken.jsonl").write_text('{"prompt": "fine"}\n\n{"prompt": oops}\n')
    (tmp_path / "noprompt.jsonl").write_text('{"prompt": "fine"}\n{"text": "no prompt field"}\n')
    return tmp_path


CASES = {  # id: (arguments, what the message must say)
    "malformed-yaml": (["--profile", "{d}/bad.yaml"], ["bad.yaml is not valid YAML at line 3, column",
                                                       "flow sequence that starts at line 2", "fix:"]),
    "wrong-type": (["-p", "requests_per_level=many"], ["'requests_per_level' = 'many'", "valid integer"]),
    "out-of-range": (["-p", "gpu_memory_utilization=1.5"], ["'gpu_memory_utilization' = 1.5", "less than or equal to 1"]),
    "below-range": (["-p", "num_speculative_tokens=0"], ["'num_speculative_tokens' = 0", "greater than or equal to 1"]),
    "unknown-name": (["-p", "concurrency=4"], ["unknown parameter 'concurrency'", "did you mean", "concurrencies"]),
    "unknown-workload": (["--only", "50", "-p", "workload=legal"],
                         ["unknown workload 'legal'", "chat, code, creative", "structured"]),
    "empty-prompts": (["--only", "50", "-p", "workload={d}/empty.jsonl"], ["empty.jsonl is empty"]),
    "malformed-prompts": (["--only", "50", "-p", "workload={d}/broken.jsonl"], ["broken.jsonl line 3 is not valid JSON"]),
    "prompt-missing": (["--only", "40", "-p", "workloads=structured,{d}/noprompt.jsonl"],
                       ["noprompt.jsonl line 2 has neither 'prompt' nor 'messages'"]),
    "url-without-scheme": (["-p", "mode=external", "-p", "spec_url=gpu-node:8000"],
                           ["'spec_url' = 'gpu-node:8000'", "no scheme", "http://gpu-node:8000"]),
    "temperatures-above-2": (["-p", "temperatures=0,0.8,2.5"], ["'temperatures'", "[0, 2]", "2.5"]),
    "temperature-negative": (["-p", "temperature=-0.1"], ["'temperature' = -0.1", "give a temperature in [0, 2], or -1"]),
    "mix-temperature": (["--only", "50", "-p", "workload=structured:0.5@3,code:0.5@0.1"],
                        ["temperature 3.0 in 'structured:0.5@3,code:0.5@0.1' is outside [0, 2]"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_before_any_work_with_a_clear_message(case, files, capsys):
    args, needles = CASES[case]
    runs = files / "runs"
    rc = main(["run", "--runs-dir", str(runs), *[a.format(d=files) for a in args]])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    assert not runs.exists() or not [p for p in runs.iterdir() if p.is_dir()]  # nothing was started


def test_a_single_level_needs_no_list_syntax(files, capsys):
    """`-p concurrencies=8` means [8] (it used to fail with 'Input should be a valid list')."""
    rc = main(["run", "--runs-dir", str(files / "runs"), "--only", "50", "-p", "concurrencies=8",
               "-p", f"workload={files}/empty.jsonl"])
    err = capsys.readouterr().err
    assert rc == 1 and "valid list" not in err and "empty.jsonl is empty" in err


def test_the_installed_command_prints_the_error_without_traceback(files):
    res = subprocess.run([sys.executable, "-m", "playbook", "run", "--runs-dir", str(files / "runs"),
                          "-p", "baseline_url=localhost:8000", "-p", "mode=external"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "'baseline_url' = 'localhost:8000'" in res.stderr and "http://localhost:8000" in res.stderr
