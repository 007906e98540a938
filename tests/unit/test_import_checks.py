"""`playbook import` refuses what the files show cannot be compared (swapped sides, one file on both sides,
two models) and, into a run directory that already holds a run, names every file it would replace or make
stale; with --force it moves them all into artifacts/replaced-<UTC time>/ (fixtures: tests/unit/fixtures/import)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from playbook.helpers.artifacts import BACKUP_PREFIX
from playbook.helpers.errors import ImportFileError
from playbook.helpers.importers import aiperf, guidellm, import_results, vllm_bench

FIX = Path(__file__).parent / "fixtures" / "import"
VB = FIX / "vllm_bench"
PAIRS = {  # tool: (baseline, spec) as the fixtures hold them
    "vllm-bench": (VB / "baseline.json", VB / "spec.json"),
    "guidellm": (FIX / "guidellm" / "baseline" / "benchmarks.json", FIX / "guidellm" / "spec" / "benchmarks.json"),
    "aiperf": (FIX / "aiperf" / "baseline", FIX / "aiperf" / "spec"),
}


def test_each_reader_sees_speculation_on_the_spec_side_only():
    for read, (base, spec) in ((vllm_bench.read, PAIRS["vllm-bench"]), (guidellm.read, PAIRS["guidellm"]),
                               (aiperf.read, PAIRS["aiperf"])):
        assert read(base)[0].speculation is None
        assert read(spec)[0].speculation


@pytest.mark.parametrize("tool", sorted(PAIRS))
def test_swapped_files_are_refused_naming_the_right_order(tool, tmp_path):
    base, spec = PAIRS[tool]
    with pytest.raises(ImportFileError, match="look swapped") as err:
        import_results(tool, [spec], [base], tmp_path / "run")
    assert "give the baseline" in err.value.fix and err.value.fix.index("baseline") < err.value.fix.index("spec")
    assert not (tmp_path / "run").exists()  # nothing written
    import_results(tool, [base], [spec], tmp_path / "ok")  # the right order imports


def test_the_same_file_or_a_copy_on_both_sides_is_refused(tmp_path):
    base = PAIRS["vllm-bench"][0]
    with pytest.raises(ImportFileError, match="are the same file"):
        import_results("vllm-bench", [base], [base], tmp_path / "run")
    copy = tmp_path / "copy.json"
    shutil.copyfile(base, copy)
    with pytest.raises(ImportFileError, match="byte-identical"):
        import_results("vllm-bench", [base], [copy], tmp_path / "run")
    with pytest.raises(ImportFileError, match="are the same file"):
        import_results("aiperf", [PAIRS["aiperf"][0]], [PAIRS["aiperf"][0] / "profile_export.jsonl"], tmp_path / "run")
    assert not (tmp_path / "run").exists()


def _with(path: Path, tmp_path: Path, **changes) -> Path:
    out = tmp_path / f"{path.stem}-changed.json"
    out.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return out


def test_different_models_are_refused_and_one_model_under_two_paths_is_not(tmp_path):
    base, spec = PAIRS["vllm-bench"]
    other = _with(spec, tmp_path, model_id="meta-llama/Llama-3.1-70B")
    with pytest.raises(ImportFileError, match="'meta-llama/Llama-3.1-70B'") as err:
        import_results("vllm-bench", [base], [other], tmp_path / "run")
    assert "same target model" in err.value.fix
    moved = _with(spec, tmp_path, model_id="/models/tiny-target/")  # the same model, served from another path
    import_results("vllm-bench", [base], [moved], tmp_path / "ok")
    nameless = _with(spec, tmp_path, model_id="")  # a file that names no model: nothing to compare
    import_results("vllm-bench", [base], [nameless], tmp_path / "ok2")


def test_a_baseline_that_speculates_too_is_warned_about(tmp_path):
    base, spec = PAIRS["vllm-bench"]
    data = json.loads(spec.read_text())
    counters = {k: v for k, v in data.items() if k.startswith("spec_decode_")}
    res = import_results("vllm-bench", [_with(base, tmp_path, **counters)], [spec], tmp_path / "run")
    assert any("seems to speculate" in w for w in res.warnings)


def _sums(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _measured_run(run: Path) -> None:
    """A run `playbook run` measured: a 4-temperature sweep, candidates, memory, notebooks, its report."""
    a = run / "artifacts"
    a.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"run_id": "measured", "parameters": {"target_model": "x"}}))
    for name in ("20_memory.json", "40_sweep.json", "50_load.json", "50_candidates.json"):
        (a / name).write_text(json.dumps({"measured": name}))
    (a / "40_sweep_requests.jsonl").write_text('{"id": "1"}\n')
    (run / "candidates" / "ngram-4" / "artifacts").mkdir(parents=True)
    (run / "candidates" / "ngram-4" / "artifacts" / "50_load.json").write_text("{}")
    (run / "notebooks").mkdir()
    (run / "notebooks" / "40_sweep.ipynb").write_text("{}")
    (run / "report.html").write_text("<html>GO</html>")


def test_import_into_a_run_names_everything_and_force_moves_it_all(tmp_path, capsys):
    from playbook.cli import main

    run = tmp_path / "run"
    _measured_run(run)
    before = _sums(run)
    base, spec = PAIRS["vllm-bench"]
    args = ["import", "vllm-bench", str(base), str(spec), "--run-dir", str(run), "--temperature", "0"]
    assert main(args) == 1
    err = capsys.readouterr().err
    for name in ("artifacts/50_load.json", "artifacts/40_sweep.json", "artifacts/40_sweep_requests.jsonl",
                 "artifacts/50_candidates.json", "artifacts/20_memory.json", "candidates/ (1 file)",
                 "notebooks/40_sweep.ipynb", "report.html", "run.json"):
        assert name in err, name
    assert "--force" in err and sum(line.startswith("error:") for line in err.splitlines()) == 1
    replaced, stale = err.split("leave stale")
    assert "artifacts/40_sweep.json" in replaced and "artifacts/50_candidates.json" in stale  # each named as what it is
    assert _sums(run) == before

    assert main([*args, "--force"]) == 0
    out = capsys.readouterr().out
    (backup,) = (run / "artifacts").glob(f"{BACKUP_PREFIX}*")
    assert "moved the earlier results" in out
    assert {f"{backup.relative_to(run).as_posix()}/{k}": v for k, v in before.items()}.items() <= _sums(run).items()
    left = {k for k in _sums(run) if not k.startswith(backup.relative_to(run).as_posix())}
    assert not left & {"artifacts/50_candidates.json", "artifacts/20_memory.json", "artifacts/40_sweep_requests.jsonl",
                       "report.html", "notebooks/40_sweep.ipynb"} and not (run / "candidates").exists()
    assert json.loads((run / "artifacts" / "40_sweep.json").read_text())["finding"].startswith("imported")
    assert json.loads((run / "run.json").read_text())["profile"].startswith("imported")
    source = json.loads((run / "artifacts" / "import.json").read_text())
    assert source["replaced"]["moved_to"] == backup.relative_to(run).as_posix()


def test_an_empty_run_directory_is_not_refused(tmp_path):
    run = tmp_path / "run"
    for sub in ("artifacts", "notebooks", "server-logs"):
        (run / sub).mkdir(parents=True)
    import_results("vllm-bench", *([p] for p in PAIRS["vllm-bench"]), run)


def test_an_import_does_not_describe_the_demo_pair_or_this_machines_vllm(tmp_path, capsys):
    """Without --draft-model the report said draft `embedded` (the playbook's demo pair) and 'vLLM 0.32.0' (the one
    installed here); k comes from the acceptance counters' positions, and what the files do not say is asked for."""
    from playbook.cli import main

    run = tmp_path / "run"
    res = import_results("vllm-bench", [VB / "baseline.json"], [VB / "spec.json"], run, temperature=0.0)
    params = json.loads((run / "run.json").read_text())["parameters"]
    positions = json.loads((run / "artifacts" / "40_sweep.json").read_text())["temperatures"][0]["per_position"]
    assert params["draft_model"] == "" and params["num_speculative_tokens"] == len(positions) > 0
    assert any("give --method, --draft-model" in w for w in res.warnings)
    assert main(["report", str(run)]) == 0
    summary = (run / "summary.md").read_text()
    assert "draft `-`" in summary and "embedded" not in summary.split("**Why**")[0]
    assert "vLLM version not recorded (installed here:" in summary
    capsys.readouterr()


def test_a_report_without_run_json_says_the_defaults_apply(tmp_path, capsys):
    from playbook.cli import main

    run = tmp_path / "run"
    import_results("vllm-bench", [VB / "baseline.json"], [VB / "spec.json"], run, temperature=0.0)
    (run / "run.json").unlink()
    assert main(["report", str(run)]) == 0
    assert "no run.json" in capsys.readouterr().err
