"""`playbook sweep|load|lossless --run-dir DIR` into a directory that already holds that command's results:
refused, naming every file and the fix (a new directory, or --force); with --force the earlier files move,
byte for byte, into artifacts/replaced-<UTC time>/ and no new record joins an earlier run's raw file.
The same URL for baseline and speculation is warned about before measuring. Fake server (fault injection
only), run in-process through `playbook.cli.main`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from playbook.cli import main
from playbook.commands._measure import same_server_warning
from playbook.helpers.artifacts import BACKUP_PREFIX, PHASES_JSONL, PriorResults
from playbook.helpers.errors import ArtifactError
from tests.support import start_fake, stop_fake


@pytest.fixture(scope="module")
def live_url():
    proc, url = start_fake(FAKE_METRICS="live")
    yield url
    stop_fake(proc)


@pytest.fixture(scope="module")
def plain_url():
    """A baseline: no spec-decode counters (one whose counters move fails its load level)."""
    proc, url = start_fake()
    yield url
    stop_fake(proc)


def _sums(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _backup(run: Path) -> Path:
    (backup,) = sorted((run / "artifacts").glob(f"{BACKUP_PREFIX}*"))
    return backup


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


SWEEP = ["--temperatures", "0", "--requests", "2", "--max-tokens", "8", "--concurrency", "2", "--no-progress"]


def test_a_second_sweep_into_the_same_run_is_refused_and_force_keeps_the_first(tmp_path, live_url, capsys):
    run = tmp_path / "run"
    assert main(["sweep", "--url", live_url, *SWEEP, "--run-dir", str(run)]) == 0, capsys.readouterr().err
    first_lines = _lines(run / "artifacts" / "40_sweep_requests.jsonl")
    before = _sums(run)
    capsys.readouterr()

    assert main(["sweep", "--url", live_url, *SWEEP, "--run-dir", str(run)]) == 1
    err = capsys.readouterr().err
    assert sum(line.startswith("error:") for line in err.splitlines()) == 1
    assert "artifacts/40_sweep.json" in err and "artifacts/40_sweep_requests.jsonl" in err
    assert "--force" in err and "new directory" in err
    assert _sums(run) == before  # nothing replaced, nothing appended

    assert main(["sweep", "--url", live_url, *SWEEP, "--run-dir", str(run), "--force"]) == 0
    err = capsys.readouterr().err
    backup = _backup(run)
    assert "moved the earlier results" in err and str(backup) in err
    moved = _sums(backup)
    for name in ("artifacts/40_sweep.json", "artifacts/40_sweep_requests.jsonl"):
        assert moved[name] == before[name]  # byte for byte
    assert _lines(run / "artifacts" / "40_sweep_requests.jsonl") == first_lines  # new records only, not appended
    assert json.loads((backup / "replaced.json").read_text())["by"] == "playbook sweep"


def _full_run(run: Path) -> None:
    """What `playbook run` leaves: results of several steps, candidates' sub-runs, the phase log."""
    a = run / "artifacts"
    a.mkdir(parents=True)
    (run / "run.json").write_text('{"run_id": "old"}')
    for name in ("00_preflight.json", "40_sweep.json", "50_load.json", "50_candidates.json", "lossless.json"):
        (a / name).write_text(json.dumps({"old": name}))
    (a / "50_load_requests.jsonl").write_text('{"id": "old-1"}\n{"id": "old-2"}\n')
    (a / PHASES_JSONL).write_text('{"step": "40_sweep", "key": "a", "fp": "f", "status": "ok"}\n'
                                  '{"step": "50_load", "key": "c1", "fp": "f", "status": "ok"}\n')
    (run / "candidates" / "ngram-4" / "artifacts").mkdir(parents=True)
    (run / "candidates" / "ngram-4" / "artifacts" / "50_load.json").write_text("{}")


LOAD = ["--concurrency", "1", "--requests", "2", "--warmup", "0", "--no-lossless", "--max-tokens", "8", "--no-progress"]


def test_load_into_a_run_is_refused_and_force_moves_its_load_results(tmp_path, live_url, plain_url, capsys):
    run = tmp_path / "run"
    _full_run(run)
    before = _sums(run)
    args = ["load", "--baseline-url", plain_url, "--spec-url", live_url, *LOAD, "--run-dir", str(run)]

    assert main(args) == 1
    err = capsys.readouterr().err
    for name in ("artifacts/50_load.json", "artifacts/50_load_requests.jsonl", "artifacts/50_candidates.json",
                 "candidates/ (1 file)", "the 50_load entries of artifacts/phases.jsonl"):
        assert name in err
    assert "40_sweep" not in err and "00_preflight" not in err and "lossless.json" not in err
    assert _sums(run) == before

    assert main([*args, "--force"]) == 0
    err = capsys.readouterr().err
    backup = _backup(run)
    moved = _sums(backup)
    for name in ("artifacts/50_load.json", "artifacts/50_load_requests.jsonl", "artifacts/50_candidates.json",
                 "candidates/ngram-4/artifacts/50_load.json", f"artifacts/{PHASES_JSONL}"):
        assert moved[name] == before[name], name
    assert not (run / "candidates").exists() and not (run / "artifacts" / "50_candidates.json").exists()
    for name in ("run.json", "artifacts/00_preflight.json", "artifacts/40_sweep.json", "artifacts/lossless.json"):
        assert _sums(run)[name] == before[name]  # other steps' results stay
    steps = [json.loads(x)["step"] for x in (run / "artifacts" / PHASES_JSONL).read_text().splitlines()]
    assert steps[0] == "40_sweep" and "old" not in (run / "artifacts" / "50_load_requests.jsonl").read_text()
    assert "same server" not in err  # two servers (the same one on both sides: test_lossless_... below)


def test_lossless_into_a_dir_with_its_result_is_refused_and_force_keeps_it(tmp_path, live_url, capsys, monkeypatch):
    from playbook.helpers import lossless
    from playbook.helpers.schemas.lossless import LosslessResult

    # the fake streams only; the comparison itself is not what this test is about
    monkeypatch.setattr(lossless, "check", lambda *a, **k: LosslessResult(lossless=True, finding="identical"))
    run = tmp_path / "run"
    (run / "artifacts").mkdir(parents=True)
    (run / "artifacts" / "lossless.json").write_text('{"old": true}')
    args = ["lossless", "--baseline-url", live_url, "--spec-url", f"{live_url}/", "--temperatures", "0",
            "--requests", "2", "--max-tokens", "8", "--run-dir", str(run)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "artifacts/lossless.json" in err and "--force" in err
    assert (run / "artifacts" / "lossless.json").read_text() == '{"old": true}'

    assert main([*args, "--force"]) == 0
    err = capsys.readouterr().err
    assert (_backup(run) / "artifacts" / "lossless.json").read_text() == '{"old": true}'
    new = json.loads((run / "artifacts" / "lossless.json").read_text())
    assert "old" not in new and any("same server" in w for w in new["warnings"])
    assert "warning: --baseline-url" in err


@pytest.mark.parametrize("a, b, same", [
    ("http://127.0.0.1:8000", "http://localhost:8000/", True),
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1", True),
    ("http://host:80", "http://HOST", True),
    ("http://127.0.0.1:8000", "http://127.0.0.1:8001", False),
    ("http://a:8000", "http://b:8000", False),
])
def test_same_server_is_recognized_in_its_spellings(a, b, same):
    assert (same_server_warning(a, b) is not None) is same


def test_prior_results_skip_backups_hidden_files_and_empty_dirs(tmp_path):
    run = tmp_path / "run"
    (run / "artifacts" / f"{BACKUP_PREFIX}20260101T000000Z").mkdir(parents=True)
    (run / "artifacts" / f"{BACKUP_PREFIX}20260101T000000Z" / "50_load.json").write_text("{}")
    (run / "artifacts" / ".write-probe").write_text("")
    (run / "notebooks").mkdir()
    (run / "candidates").mkdir()
    assert not PriorResults.find(run, ["*"]) and not PriorResults.find(tmp_path / "nowhere", ["*"])
    (run / "notebooks" / "50_load.ipynb").write_text("{}")
    (run / "artifacts" / "50_load.json").write_text("{}")
    prior = PriorResults.find(run, ["*"])
    assert prior.paths == ["artifacts/50_load.json", "notebooks/50_load.ipynb"]
    with pytest.raises(ArtifactError, match="artifacts/50_load.json, notebooks/50_load.ipynb") as err:
        prior.refuse_unless(False, "import", "a load result")
    assert "--force" in err.value.fix
    prior.refuse_unless(True, "import", "a load result")
    backup = prior.back_up("import")
    assert backup.name != f"{BACKUP_PREFIX}20260101T000000Z" and (backup / "notebooks" / "50_load.ipynb").is_file()
    assert not PriorResults.find(run, ["*"])  # the earlier backup and the new one are never moved again


def test_a_sweep_at_one_temperature_takes_it_as_the_production_temperature(tmp_path, live_url, capsys):
    """`sweep --temperatures 0` reported its acceptance 'at the production temperature 0.2', a temperature it never
    measured; a given --production-temperature still wins."""
    run = tmp_path / "one"
    assert main(["sweep", "--url", live_url, *SWEEP, "--temperatures", "0", "--run-dir", str(run)]) == 0
    assert json.loads((run / "artifacts" / "40_sweep.json").read_text())["production_temperature"] == 0
    run = tmp_path / "given"
    assert main(["sweep", "--url", live_url, *SWEEP, "--temperatures", "0", "--production-temperature", "0.7",
                 "--run-dir", str(run)]) == 0
    assert json.loads((run / "artifacts" / "40_sweep.json").read_text())["production_temperature"] == 0.7
    capsys.readouterr()
