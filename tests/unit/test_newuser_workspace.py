"""New-user QA, problems 8 and 9: inside a workspace a profile's short name means the workspace's own (edited)
environments/<name>.yaml, and the run says which file it read; `init --force` never loses an edited profile."""

from __future__ import annotations

from playbook.cli import main
from playbook.resources import profile_path, profiles_dir


def _workspace(tmp_path, capsys):
    assert main(["init", str(tmp_path / "ws")]) == 0
    capsys.readouterr()
    return tmp_path / "ws"


def test_a_short_name_inside_a_workspace_is_its_own_edited_profile(tmp_path, capsys, monkeypatch):
    ws = _workspace(tmp_path, capsys)
    smoke = ws / "environments/smoke.yaml"
    smoke.write_text(smoke.read_text().replace("num_speculative_tokens: 4", "num_speculative_tokens: 0"))
    assert "num_speculative_tokens: 0" in smoke.read_text()
    monkeypatch.chdir(ws)
    assert profile_path("smoke") == ws / "environments/smoke.yaml"
    assert profile_path("smoke.yaml") == ws / "environments/smoke.yaml"
    assert main(["run", "--profile", "smoke", "--runs-dir", str(ws / "runs")]) == 1  # the edit (k=0) is what is read
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'num_speculative_tokens' = 0" in err
    assert f"(profile read: {ws / 'environments/smoke.yaml'}, this workspace's copy, not the shipped" in err
    assert not [p for p in (ws / "runs").iterdir() if p.is_dir()]


def test_outside_a_workspace_the_name_is_the_shipped_profile(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert profile_path("smoke") == profiles_dir() / "smoke.yaml"
    mine = tmp_path / "mine.yaml"
    mine.write_text("seed: 1\n")
    assert profile_path("mine.yaml") == mine.relative_to(tmp_path)  # a path as given still wins


def test_init_force_keeps_an_edited_profile_as_a_backup_and_says_so(tmp_path, capsys):
    ws = _workspace(tmp_path, capsys)
    edited = ws / "environments/h100x2-llama70b-fp8.yaml"
    edited.write_text(edited.read_text() + "# MY EDIT\n")
    (ws / "environments/mine.yaml").write_text("seed: 1\n")
    assert main(["init", str(ws)]) == 1
    assert "profile you changed" in capsys.readouterr().err
    assert main(["init", str(ws), "--force"]) == 0
    out = capsys.readouterr().out
    (backup,) = (ws / "environments").glob("h100x2-llama70b-fp8.yaml.bak-*")
    assert backup.read_text().endswith("# MY EDIT\n") and str(backup) in out
    assert edited.read_text() == (profiles_dir() / edited.name).read_text()  # the shipped one again
    assert (ws / "environments/mine.yaml").read_text() == "seed: 1\n"  # the user's own file untouched
    assert len(list((ws / "environments").glob("*.bak-*"))) == 1  # unchanged profiles are not backed up
    assert main(["init", str(ws), "--force"]) == 0  # nothing edited since: no new backup
    assert "no profile had been edited" in capsys.readouterr().out
    assert len(list((ws / "environments").glob("*.bak-*"))) == 1


def test_a_run_says_which_profile_file_it_reads(tmp_path, capsys, monkeypatch):
    from playbook import runner

    ws = _workspace(tmp_path, capsys)
    monkeypatch.chdir(ws)
    monkeypatch.setattr(runner, "_execute", lambda *a, **k: ([], []))  # no step runs: only what is said before
    seen: list[str] = []
    runner.run_playbook(profile="smoke", only=["90"], runs_dir=str(ws / "runs"), progress=seen.append)
    assert f"profile: {ws / 'environments/smoke.yaml'} (this workspace's copy, not the shipped" in seen[0]
    monkeypatch.chdir(tmp_path)
    seen.clear()
    runner.run_playbook(profile="smoke", only=["90"], runs_dir=str(tmp_path / "runs"), progress=seen.append)
    assert f"profile: {(profiles_dir() / 'smoke.yaml').resolve()} (shipped with the playbook)" in seen[0]
