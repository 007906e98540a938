"""benchmarks/stability.py: each run's line says how busy the machine was (other jobs move the numbers)."""

from __future__ import annotations

from benchmarks import stability


def test_a_run_line_carries_the_load_average_at_start_and_end():
    s = stability.RunSummary("r", "NO-GO", 0.97, (0.9, 1.05), "ok", 300.0, 0)
    assert " load=" not in s.line(1)
    s.load = (0.42, 1.87)
    line = s.line(2)
    assert line.startswith("run 2: verdict=NO-GO best=none c=1 speedup 0.970 [0.90, 1.05] wall=300s exit=0 load=0.4->1.9 ")


def test_run_once_records_the_load_average(tmp_path, monkeypatch):
    import subprocess

    loads = iter([(0.5, 0, 0), (2.5, 0, 0)])
    monkeypatch.setattr(stability.os, "getloadavg", lambda: next(loads))
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 1, stdout=f'{{"run_dir": "{run}"}}', stderr=""))
    s = stability.run_once(None, [], tmp_path / "runs")
    assert s.load == (0.5, 2.5) and s.exit_code == 1 and s.run_dir == str(run) and s.verdict is None


def test_each_run_names_its_recommendation_and_the_runs_agree_on_it(tmp_path):
    import json

    run = tmp_path / "r"
    (run / "artifacts").mkdir(parents=True)
    (run / "decision.json").write_text(json.dumps({"verdict": "GO WITH LIMITS"}))
    from playbook.helpers import candidates
    from playbook.helpers.schemas.candidates import CandidateLevel, CandidateResult, CandidatesResult

    def row(level, speedup, low, high):
        return CandidateLevel(level=level, speedup=speedup, ci_low=low, ci_high=high)

    stored = CandidatesResult(levels=[1, 4, 8], winner="ngram:4", candidates=[  # winner: as an older rule stored it
        CandidateResult(candidate=candidates.parse("draft_model:4"), label="draft_model:4", primary=True,
                        status="measured", levels=[row(1, 1.6, 1.2, 2.0), row(4, 1.3, 1.1, 1.5), row(8, 1.0, 0.8, 1.2)]),
        CandidateResult(candidate=candidates.parse("ngram:4"), label="ngram:4", status="measured",
                        levels=[row(1, 0.9, 0.7, 1.1), row(4, 0.8, 0.6, 1.0), row(8, 1.5, 1.2, 1.8)])])
    (run / "artifacts" / "50_candidates.json").write_text(stored.model_dump_json())
    s = stability.read_run(run, 600.0)
    assert (s.best, s.best_levels) == ("draft_model:4", (1.0, 4.0))
    assert "verdict=GO WITH LIMITS best=draft_model:4@1,4 " in s.line(1)
    other = stability.RunSummary("o", "GO WITH LIMITS", None, None, "n/a", 1.0, 0, best="draft_model:2")
    none = stability.RunSummary("n", "INCONCLUSIVE", None, None, "n/a", 1.0, 0)
    assert stability.headline([s, s, other])[1] == "recommendation_agreement=2/3"
    assert stability.recommendation_agreement([None, None, "ngram:4"]) == (2, 3)  # "none won" agrees with itself
    assert stability.headline([s, none])[:2] == ["verdict_agreement=1/2", "recommendation_agreement=1/2"]


def test_the_recommendation_is_what_the_launch_command_runs(tmp_path):
    """k=2 wins the widest range (clearly faster than k=4 at 8), k=4 the low loads; with no launch check on record
    the table is not launched, so the launch command (and the benchmark's recommendation) is the winner at its own k, static."""
    import json

    from playbook.helpers import candidates
    from playbook.helpers.schemas.candidates import CandidateLevel, CandidateResult, CandidatesResult

    def cand(label, rows, primary=False):
        return CandidateResult(candidate=candidates.parse(label), label=label, primary=primary, status="measured",
                               levels=[CandidateLevel(level=lv, speedup=s, ci_low=lo, ci_high=hi) for lv, s, lo, hi in rows])

    run = tmp_path / "r"
    (run / "artifacts").mkdir(parents=True)
    (run / "decision.json").write_text(json.dumps({"verdict": "GO WITH LIMITS"}))
    stored = CandidatesResult(levels=[1, 4, 8], candidates=[
        cand("draft_model:4", [(1, 1.81, 1.50, 2.29), (4, 1.44, 1.14, 1.82), (8, 1.33, 0.98, 1.8)], primary=True),
        cand("draft_model:2", [(1, 1.43, 1.13, 1.82), (4, 1.46, 1.1, 1.94), (8, 1.60, 1.35, 1.90)])])
    (run / "artifacts" / "50_candidates.json").write_text(stored.model_dump_json())
    s = stability.read_run(run)
    assert candidates.read(run).winner == "draft_model:2"
    assert candidates.read(run).k_table and not candidates.launched_table(candidates.read(run))
    assert (s.best, s.best_levels) == ("draft_model:2", (1.0, 4.0, 8.0))


def test_a_table_that_held_as_launched_is_part_of_the_recommendation(tmp_path):
    """When the launch check held, the launch command runs the table's largest k with the table: so does the
    benchmark's recommendation; when it was slower, the winner at its own k, static."""
    import json

    from playbook.helpers import candidates
    from playbook.helpers.schemas.candidates import (
        CandidateLevel,
        CandidateResult,
        CandidatesResult,
        LaunchCheck,
    )

    def cand(label, rows, primary=False):
        return CandidateResult(candidate=candidates.parse(label), label=label, primary=primary, status="measured",
                               levels=[CandidateLevel(level=lv, speedup=s, ci_low=lo, ci_high=hi) for lv, s, lo, hi in rows])

    def stored(check_speedup):
        res = CandidatesResult(levels=[1, 4, 8], candidates=[
            cand("draft_model:4", [(1, 1.81, 1.50, 2.29), (4, 1.44, 1.14, 1.82), (8, 1.33, 0.98, 1.8)], primary=True),
            cand("draft_model:2", [(1, 1.43, 1.13, 1.82), (4, 1.46, 1.1, 1.94), (8, 1.60, 1.35, 1.90)])])
        run = tmp_path / f"r{check_speedup}"
        (run / "artifacts").mkdir(parents=True)
        (run / "decision.json").write_text(json.dumps({"verdict": "GO WITH LIMITS"}))
        (run / "artifacts" / "50_candidates.json").write_text(res.model_dump_json())
        table = candidates.read(run).k_table
        assert table, "the fixture must give a k table"
        res.launch_check = LaunchCheck(table=table, label="draft_model:2", levels=[
            CandidateLevel(level=lv, status="ok", speedup=check_speedup, ci_low=check_speedup - 0.1,
                           ci_high=check_speedup + 0.1) for lv in candidates.edge_levels(table, [1, 4, 8])])
        (run / "artifacts" / "50_candidates.json").write_text(res.model_dump_json())
        return run

    held, slower = stability.read_run(stored(1.0)), stability.read_run(stored(0.7))
    assert held.best == "draft_model:4+table"
    assert slower.best == "draft_model:2"


def test_runs_on_different_cpus_are_said_to_be_no_repeat(tmp_path):
    """The verdict on the CPU engine depends on the CPU's matrix units (2026-12-07: the same code gave GO WITH LIMITS on
    one host and NO-GO on an AVX2-only one): each run names its CPU, and the closing lines say when they differ."""
    import json

    def run(name, isa):
        d = tmp_path / name
        d.mkdir()
        (d / "decision.json").write_text(json.dumps({"verdict": "NO-GO", "provenance": {"cpu": {
            "model": "AMD EPYC", "matrix_isa": isa}}}))
        return stability.read_run(d)

    a, b = run("a", ["avx2", "fma"]), run("b", ["avx2", "fma", "avx512f", "avx512_bf16"])
    assert a.cpu == "AMD EPYC [avx2 fma]" and " cpu=AMD EPYC [avx2 fma] " in a.line(1)
    assert stability.headline([a, a])[0] == "verdict_agreement=2/2"
    note = stability.headline([a, b])[0]
    assert note.startswith("note: the runs ran on 2 different CPUs") and "avx512_bf16" in note
