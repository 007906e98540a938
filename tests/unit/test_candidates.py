"""Candidates (helpers/candidates.py): parsing, the default set, pruning, the choice per level, the measured
k table, and the decision that follows it (constructed results: no server)."""

from __future__ import annotations

import pytest

from playbook.helpers import candidates as cd
from playbook.helpers import decide
from playbook.helpers.errors import ParameterError
from playbook.helpers.params import LoadParams, ReportParams
from playbook.helpers.schemas.candidates import (
    Candidate,
    CandidateLevel,
    CandidateResult,
    CandidatesResult,
    LaunchCheck,
)
from playbook.helpers.schemas.decision import Evidence, LoadLevel
from playbook.helpers.schemas.load import LevelStats, LoadResult, SpeedupPoint


def test_parse_method_k_and_window():
    assert cd.parse("draft_model:2") == Candidate(method="draft_model", k=2)
    c = cd.parse(" ngram : 4 : 1-3 ")
    assert (c.method, c.k, c.lookup_min, c.lookup_max) == ("ngram", 4, 1, 3)
    assert c.label == "ngram:4:1-3" and c.slug == "ngram-4-1-3"
    for bad in ("draft_model", "foo:2", "draft_model:0", "draft_model:x", "draft_model:2:1-3", "ngram:4:3-1", "ngram:17"):
        with pytest.raises(ParameterError):
            cd.parse(bad)


def test_params_accept_a_comma_list_and_reject_a_bad_candidate():
    assert LoadParams(candidates="draft_model:2, ngram:4:1-4").candidates == ["draft_model:2", "ngram:4:1-4"]
    assert not cd.enabled(LoadParams(candidates="off"))
    # YAML reads a bare off as False: `-p candidates=off` and a profile's `candidates: [off]` still mean off
    from playbook.helpers.params import parse_override

    assert not cd.enabled(LoadParams(candidates=parse_override("candidates=off")[1]))
    assert not cd.enabled(LoadParams(candidates=[False]))
    assert not cd.enabled(LoadParams(mode="external", spec_url="http://x", baseline_url="http://y"))
    with pytest.raises(ValueError, match="method:k"):
        LoadParams(candidates=["eagle3"])


def test_default_set_on_the_embedded_pair_is_own_k_another_k_and_ngram():
    p = LoadParams()  # draft_model k=4, embedded
    labels = [c.label for c in cd.candidate_list(p, best_k=None, methods=cd.offered_methods(p))]
    assert labels == ["draft_model:4", "draft_model:2", "ngram:4"]
    assert [c.label for c in cd.candidate_list(p, best_k=6, methods=["draft_model", "ngram"])][1] == "draft_model:6"
    assert [c.label for c in cd.candidate_list(p, best_k=4, methods=["draft_model", "ngram"])][1] == "draft_model:2"
    # suffix only where offered; an explicit list replaces the defaults, the step's own stays first, once
    assert "suffix:4" in [c.label for c in cd.defaults(p, None, ["draft_model", "ngram", "suffix"])]
    q = LoadParams(candidates=["ngram:3", "draft_model:4", "ngram:3"])
    assert [c.label for c in cd.candidate_list(q)] == ["draft_model:4", "ngram:3"]


def test_pruning_says_why():
    assert cd.prune_reason({1.0: 0.6, 4.0: 0.5}, best=1.1).startswith("predicted speedup at most 0.60x")
    assert "far below the best 1.60x" in cd.prune_reason({1.0: 1.0, 4.0: 0.9}, best=1.6)
    assert cd.prune_reason({1.0: 1.05, 4.0: 0.9}, best=1.1) == ""
    assert cd.prune_reason({}, best=2.0) == ""  # nothing predicted (another method): measured


def _row(level, speedup, low, high, k=4):
    return CandidateLevel(level=level, speedup=speedup, ci_low=low, ci_high=high, tpot_p50_ms=10 / speedup,
                          output_tok_s=100 * speedup, baseline_tpot_p50_ms=10, baseline_output_tok_s=100,
                          acceptance_per_position=[0.8, 0.6, 0.4, 0.3][:k])


def _cand(label, rows, primary=False, status="measured"):
    c = cd.parse(label)
    return CandidateResult(candidate=c, label=label, primary=primary, status=status, levels=rows)


def _comparison():
    return CandidatesResult(levels=[1, 4, 16], candidates=[
        _cand("draft_model:4", [_row(1, 1.45, 1.32, 1.58), _row(4, 1.05, 0.97, 1.12), _row(16, 0.8, 0.7, 0.9)], True),
        _cand("draft_model:2", [_row(1, 1.20, 1.10, 1.30, 2), _row(4, 1.15, 1.06, 1.24, 2), _row(16, 0.95, 0.9, 1.0, 2)]),
        _cand("ngram:4", [_row(1, 1.25, 0.95, 1.5), _row(4, 0.9, 0.8, 1.0), _row(16, 0.7, 0.6, 0.8)]),
        _cand("draft_model:6", [], status="pruned")])


def test_choice_per_level_winner_and_measured_k_table():
    res = cd.choose(_comparison())
    assert [(c.level, c.winner) for c in res.per_level] == [(1, "draft_model:4"), (4, "draft_model:2"), (16, None)]
    # draft_model:2 wins 2 levels (1 and 4), draft_model:4 only 1: the winner; its method's best k per level
    assert res.winner == "draft_model:2" and res.winner_method == "draft_model"
    assert res.k_by_level == {1: 4, 4: 2, 16: 0} and res.win_levels == [1, 4] and res.winner_k == 4
    assert res.k_table == [[1, 3, 4], [4, 15, 2], [16, 256, 0]]
    assert "draft_model:6" in res.finding and "draft_model:2" in res.finding
    # the label that wins most levels and the per-level fastest are both named, and what to launch
    assert "widest winning range: draft_model:2 (concurrency 1, 4)" in res.finding
    assert "clearly faster): draft_model:4 at 1, draft_model:2 at 4;" in res.finding
    # the table was not measured as launched here: the winner is launched at its own k, static
    assert cd.launched_table(res) is None and cd.launch_k(res) == 2
    assert "launch draft_model with k=2; fastest" in res.finding
    assert "the k table [[1, 3, 4], [4, 15, 2], [16, 256, 0]] was not measured as launched" in res.finding
    # measured as launched and held: the table goes into the launch command, with its largest k
    res.launch_check = cd.judge_launch(LaunchCheck(table=res.k_table, label="draft_model:2",
                                                   levels=[_row(1, 1.08, 0.95, 1.2), _row(4, 0.98, 0.9, 1.05),
                                                           _row(16, 0.97, 0.85, 1.1)]))
    assert res.launch_check.status == "held" and cd.launched_table(cd.choose(res)) == res.k_table
    assert cd.launch_k(res) == 4
    assert "launch draft_model with k=4 and the measured k table [[1, 3, 4], [4, 15, 2], [16, 256, 0]];" in res.finding


def test_a_table_slower_as_launched_than_the_static_winner_is_not_launched():
    """Table vs static winner in paired rounds (static TPOT / table TPOT): slower where the whole interval is below 1.
    The embedded engine's numbers of 2026-12-04 ([[1, 15, 4], [16, 256, 0]] at 16 concurrent requests: 16.7-17.4 ms
    against 11.0-11.2 ms for static k=4) are a ratio of about 0.65."""
    lc = cd.judge_launch(LaunchCheck(table=[[1, 15, 4], [16, 256, 0]], label="draft_model:4", expected={8: 1.31},
                                     levels=[_row(8, 1.02, 0.9, 1.15), _row(16, 0.65, 0.55, 0.78)]))
    assert lc.status == "slower"
    assert ("slower than static draft_model:4 at 16: 0.65x [0.55, 0.78] (table vs static, paired): launching "
            "draft_model:4 (static)") in lc.finding and "8: 1.02x [0.90, 1.15]" in lc.finding
    # within the tolerance with an interval reaching 1 it holds; a wide interval does not excuse a point estimate
    # far below (the clean-clone run of 2026-12-04 21:04: 0.64x [0.44, 1.15]); a clear loss inside the tolerance
    # is still a loss; without an interval the tolerance decides; nothing measured fails
    def status(*row):
        return cd.judge_launch(lc.model_copy(update={"status": "held", "levels": [_row(16, *row)]})).status
    assert status(0.9, 0.8, 1.01) == "held" and status(0.64, 0.44, 1.15) == "slower"
    assert status(0.9, 0.86, 0.95) == "slower"
    bare = CandidateLevel(level=16, speedup=0.8)
    assert cd.judge_launch(lc.model_copy(update={"status": "held", "levels": [bare]})).status == "slower"
    none = cd.judge_launch(lc.model_copy(update={"status": "held",
                                                 "levels": [CandidateLevel(level=16, status="excluded")]}))
    assert none.status == "failed" and "launching draft_model:4 (static)" in none.finding


def test_edge_levels_are_the_measured_levels_either_side_of_each_edge():
    assert cd.edge_levels([[1, 15, 4], [16, 256, 0]], [1, 4, 8, 16]) == [8, 16]
    assert cd.edge_levels([[1, 3, 4], [4, 15, 2], [16, 256, 0]], [1, 4, 16]) == [1, 4, 16]
    assert cd.edge_levels([[1, 7, 4], [8, 256, 0]], [1, 2, 4, 32]) == [4, 32]


def test_k_table_merges_equal_neighbours_and_drops_a_constant_table():
    assert cd.k_table({1: 4, 4: 4, 16: 0}, max_num_seqs=64) == [[1, 15, 4], [16, 64, 0]]
    assert cd.k_table({1: 3, 8: 3}) is None
    assert cd.k_table({}) is None


def test_no_winner_when_no_interval_clears_one():
    res = CandidatesResult(levels=[1], candidates=[_cand("draft_model:4", [_row(1, 1.1, 0.98, 1.2)], True)])
    res = cd.choose(res)
    assert res.winner is None and res.k_table is None and res.per_level[0].winner is None
    assert "none wins" in res.finding


def test_levels_of_a_load_result_carry_acceptance_per_position_and_withheld_levels():
    b = LevelStats(config="baseline", level=1, output_tok_s=50)
    s = LevelStats(config="spec", level=1, output_tok_s=60, acceptance_per_position=[0.7, 0.5], mean_acceptance_length=2.2)
    b.tpot_ms.p50, s.tpot_ms.p50 = 20.0, 16.0
    b4, s4 = LevelStats(config="baseline", level=4), LevelStats(config="spec", level=4, status="failed")
    load = LoadResult(levels=[b, s, b4, s4], speedup=[SpeedupPoint(level=1, speedup=1.25, ci_low=1.1, ci_high=1.4)],
                      missing_levels=["spec@4: server died"])
    rows = cd.levels_of(load)
    assert rows[0].acceptance_per_position == [0.7, 0.5] and rows[0].tpot_p50_ms == 16.0 and rows[0].speedup == 1.25
    assert rows[1].level == 4 and rows[1].status == "excluded" and "server died" in rows[1].reason


def test_sub_params_use_the_primarys_levels_and_share_the_budget():
    p = LoadParams(concurrencies=[1, 4], level_time_budget_s=40, mixed_workload="creative")
    q = cd.sub_params(p, cd.parse("ngram:3"), [1.0, 4.0, 8.0], "concurrency", 2)
    assert (q.method, q.num_speculative_tokens, q.concurrencies, q.level_time_budget_s) == ("ngram", 3, [1, 4, 8], 20)
    assert not q.find_saturation and not q.lossless_check and q.mixed_workload == ""
    assert cd.spec_config(q, cd.parse("ngram:3")) is None
    window = cd.spec_config(q, cd.parse("ngram:3:1-2"))
    assert window["method"] == "ngram" and (window["prompt_lookup_min"], window["prompt_lookup_max"]) == (1, 2)


def _ev(comp: dict, levels: list[LoadLevel], winner_levels: list[LoadLevel] = ()) -> Evidence:
    return Evidence(method="draft_model", num_speculative_tokens=4, draft="/models/draft", target="/models/target",
                    acceptance_production=0.8, acceptance_by_temperature={0.2: 0.8}, acceptance_temperature=0.2,
                    load_levels=levels, candidates=comp, winner_load_levels=list(winner_levels),
                    steps_present=["40_sweep", "50_load"])


def _lv(c, s, low, high):
    return LoadLevel(concurrency=c, speedup=s, speedup_ci_low=low, speedup_ci_high=high, error_rate=0.0)


def test_the_decision_recommends_the_measured_winner_and_its_table():
    comp = {"primary": "draft_model:4", "winner": "ngram:3", "winner_method": "ngram", "winner_k": 3,
            "measured": ["draft_model:4", "draft_model:2", "ngram:3"], "win_levels": [1, 4],
            "k_table": [[1, 7, 3], [8, 256, 0]], "winner_window": [1, 3], "k_zero_note": cd.K_ZERO_NOTE}
    own = [_lv(1, 0.9, 0.8, 0.95), _lv(4, 0.8, 0.7, 0.9), _lv(8, 0.7, 0.6, 0.8)]
    won = [_lv(1, 1.4, 1.2, 1.6), _lv(4, 1.2, 1.1, 1.3), _lv(8, 0.9, 0.8, 0.95)]
    p = ReportParams(expected_peak_concurrency=4)
    d = decide.decide_for(_ev(comp, own, won), p)
    assert d.verdict in ("GO", "GO WITH LIMITS"), d.reasons
    rec = d.recommended
    assert rec.method == "ngram" and rec.num_speculative_tokens == 3
    assert rec.num_speculative_tokens_per_batch_size == [[1, 7, 3], [8, 256, 0]] and rec.max_concurrency == 7
    assert "ngram" in d.headline and "best of 3 measured configurations: ngram:3" in d.headline
    assert "(k=3 at 1-7 running requests, k=0 at 8-256)" in d.headline  # the launched table, in words
    assert any("not the same as off" in n for n in rec.notes)
    assert any("the static alternative is num_speculative_tokens=3 without the table" in n for n in rec.notes)
    cmd = decide.launch_command_for(p, rec)
    assert '"method": "ngram"' in cmd or '"method":"ngram"' in cmd.replace(" ", "")
    assert "prompt_lookup_max" in cmd and "num_speculative_tokens_per_batch_size" in cmd
    # the same evidence without the comparison: the step's own configuration, which loses
    assert decide.decide_for(_ev({}, own), p).verdict == "NO-GO"


def test_a_table_not_held_as_launched_leaves_the_launch_command_static():
    finding = "the k table [[1, 7, 3], [8, 256, 0]] measured as launched was slower than static ngram:3 at 8"
    comp = {"primary": "draft_model:4", "winner": "ngram:3", "winner_method": "ngram", "winner_k": 3,
            "measured": ["draft_model:4", "ngram:3"], "win_levels": [1, 4], "k_table": None,
            "k_table_measured": [[1, 7, 3], [8, 256, 0]], "launch_check": finding, "winner_window": [1, 3]}
    won = [_lv(1, 1.4, 1.2, 1.6), _lv(4, 1.2, 1.1, 1.3), _lv(8, 0.9, 0.8, 0.95)]
    p = ReportParams(expected_peak_concurrency=4)
    d = decide.decide_for(_ev(comp, [_lv(1, 0.9, 0.8, 0.95)], won), p)
    rec = d.recommended
    assert rec.enable and rec.num_speculative_tokens == 3 and rec.num_speculative_tokens_per_batch_size is None
    assert finding in rec.notes and not any("PIECEWISE" in n for n in rec.notes)
    assert "num_speculative_tokens_per_batch_size" not in decide.launch_command_for(p, rec)


def test_no_go_names_every_measured_configuration():
    comp = {"primary": "draft_model:4", "winner": None, "measured": ["draft_model:4", "ngram:4"]}
    d = decide.decide_for(_ev(comp, [_lv(1, 0.8, 0.7, 0.9), _lv(4, 0.7, 0.6, 0.8)]), ReportParams())
    assert d.verdict == "NO-GO" and "draft_model:4, ngram:4" in d.headline


def test_report_section_shows_the_comparison_and_says_when_there_is_none(tmp_path):
    from playbook.helpers import sections
    from playbook.helpers.artifacts import RunDir

    run = RunDir(tmp_path / "run")
    assert "No configurations were compared" in sections.candidates(run, Evidence())
    run.write_json(cd.RESULT, cd.choose(_comparison()))
    html = sections.candidates(run, Evidence())
    assert html.count("<img") == 3 and "[[1, 3, 4], [4, 15, 2], [16, 256, 0]]" in html
    assert "pruned" in html and "not the same as off" in html and "draft_model:2" in html
    assert "The table was not measured as launched" in html
    res = cd.choose(_comparison())
    res.launch_check = cd.judge_launch(LaunchCheck(table=res.k_table, label="draft_model:2", expected={16: 0.95},
                                                   levels=[_row(16, 0.70, 0.6, 0.8)]))
    run.write_json(cd.RESULT, res)
    html = sections.candidates(run, Evidence())
    assert "The table measured as launched</b> (slower)" in html and "static draft_model:2 vs no speculation" in html
    assert "at 16: 0.70x [0.60, 0.80]" in html


def test_the_predictor_predicts_other_ks_of_the_same_method_scaled_by_the_measured_speedup():
    ev = Evidence(method="draft_model", num_speculative_tokens=4, tpot_c1_baseline_ms=20.0, tpot_c1_spec_ms=14.0,
                  acceptance_per_position=[0.8, 0.6, 0.45, 0.3], load_kind="concurrency",
                  load_levels=[LoadLevel(concurrency=1, tpot_p50_baseline_ms=20.0),
                               LoadLevel(concurrency=4, tpot_p50_baseline_ms=26.0)])
    load = LoadResult(speedup=[SpeedupPoint(level=1, speedup=1.3, ci_low=1.2, ci_high=1.4),
                               SpeedupPoint(level=4, speedup=0.9, ci_low=0.8, ci_high=1.0)])
    own = cd.parse("draft_model:4")
    pred, best_k = cd.predicted(ev, own, [own, cd.parse("draft_model:2"), cd.parse("ngram:4")], load)
    assert set(pred) == {"draft_model:2"}  # n-gram has no measured acceptance to predict from; own is measured
    assert set(pred["draft_model:2"]) == {1.0, 4.0} and all(0 < v < 5 for v in pred["draft_model:2"].values())
    assert best_k is not None and 0 <= best_k <= 8
    # the same k as the primary would be predicted at exactly the primary's measured speedup
    same, _ = cd.predicted(ev, cd.parse("draft_model:3"), [own], load)
    ratio = {lvl: v for lvl, v in same["draft_model:4"].items()}
    assert ratio[1.0] == pytest.approx(1.3) and ratio[4.0] == pytest.approx(0.9)
    # also when the run's fit charges other requests' prefills to both TPOTs and measured the baseline there
    stepped = ev.model_copy(update={"load_levels": [x.model_copy(update={"step_p50_baseline_ms": t})
                                                    for x, t in zip(ev.load_levels, (18.0, 21.0), strict=True)]})
    same, _ = cd.predicted(stepped, cd.parse("draft_model:3"), [own], load)
    assert same["draft_model:4"][1.0] == pytest.approx(1.3) and same["draft_model:4"][4.0] == pytest.approx(0.9)


def test_each_configuration_keeps_its_colour_in_every_comparison_figure():
    from matplotlib.colors import to_hex

    from playbook.helpers import plots

    res = cd.choose(_comparison())
    labels = ["draft_model:4", "draft_model:2", "ngram:4"]

    def colours(fig) -> dict[str, str]:
        out = {}
        for ax in fig.axes:
            handles, names = ax.get_legend_handles_labels()
            for h, name in zip(handles, names, strict=True):
                h = h.lines[0] if hasattr(h, "lines") else h  # an errorbar container
                c = h.get_color() if hasattr(h, "get_color") else h.get_facecolor()[0]
                out.setdefault(name.replace(" (step's own)", ""), to_hex(c))
        return out

    figs = [colours(plots.candidates_speedup(res)), colours(plots.candidates_pareto(res)),
            colours(plots.candidates_acceptance(res))]
    for label in labels:
        assert len({f[label] for f in figs}) == 1, (label, figs)
    assert len({figs[0][label] for label in labels}) == 3
    assert figs[1]["baseline (beside each)"] not in {figs[0][label] for label in labels}


def test_a_win_above_a_measured_non_win_is_not_counted():
    # measured 2026-12-03 on the embedded pair: k=2 "won" at 1 (interval from 1.004) and at 8 but not at 4;
    # counting levels made it outrank k=4, which won clearly at 1 only
    res = cd.choose(CandidatesResult(levels=[1, 4, 8], candidates=[
        _cand("draft_model:4", [_row(1, 1.70, 1.27, 2.22), _row(4, 1.17, 0.90, 1.52), _row(8, 1.03, 0.81, 1.30)], True),
        _cand("draft_model:2", [_row(1, 1.48, 0.98, 2.19, 2), _row(4, 1.09, 0.82, 1.64, 2), _row(8, 1.40, 1.06, 1.85, 2)]),
        _cand("ngram:4", [_row(1, 0.86, 0.60, 1.21), _row(4, 0.78, 0.57, 1.06), _row(8, 0.66, 0.52, 0.91)])]))
    assert res.winner == "draft_model:4" and res.win_levels == [1]
    assert [(c.level, c.winner) for c in res.per_level] == [(1, "draft_model:4"), (4, None), (8, None)]
    # at 4 and 8 neither k wins nor clearly loses (intervals reach both sides of 1): k=4 runs on, no table
    assert res.k_by_level == {1: 4, 4: 4, 8: 4} and res.k_table is None
    assert any("draft_model:2 at concurrency 8" in w for w in res.warnings)
    assert cd.win_prefix(res.candidates[1]) == ([], [8])
    again = cd.choose(res)  # choosing twice (read() re-chooses) keeps one warning
    assert sum("draft_model:2" in w for w in again.warnings) == 1


def test_reading_a_run_applies_todays_choice(tmp_path):
    from playbook.helpers.artifacts import RunDir

    run = RunDir(tmp_path / "run")
    stale = _comparison().model_copy(update={"winner": "ngram:4"})  # as an older rule might have stored it
    run.write_json(cd.RESULT, stale)
    assert cd.read(run).winner == "draft_model:2"  # wins at 1 and 4


def _measured(label, rows, primary=False):
    k = cd.parse(label).k
    return _cand(label, [_row(lvl, s, lo, hi, k) for lvl, s, lo, hi in rows], primary)


def test_the_step_s_own_configuration_holds_a_level_unless_another_is_clearly_faster():
    """Two stability runs of 2026-12-04 (benchmarks/stability.py): k=5 and k=2 'beat' the primary k=4 by
    1-7% with intervals of +-25%; the recommended k flipped with them. Now k=4 holds where it wins."""
    run1 = cd.choose(CandidatesResult(levels=[1, 4, 8, 16], candidates=[
        _measured("draft_model:4", [(1, 1.92, 1.52, 2.41), (4, 1.54, 1.22, 1.95), (8, 1.44, 1.14, 1.81),
                                    (16, 1.17, 0.93, 1.48)], primary=True),
        _measured("draft_model:5", [(1, 1.95, 1.43, 2.66), (4, 1.65, 1.22, 2.25), (8, 1.51, 1.04, 2.2),
                                    (16, 1.19, 0.89, 1.6)])]))
    assert [p.winner for p in run1.per_level] == ["draft_model:4"] * 3 + [None]
    # at 16 k=4 neither wins nor loses (1.17x [0.93, 1.48]): it runs on there, no k=0 table to check as launched
    assert run1.winner == "draft_model:4" and run1.winner_k == 4 and run1.k_table is None
    assert run1.k_by_level == {1: 4, 4: 4, 8: 4, 16: 4} and run1.win_levels == [1, 4, 8]
    run2 = cd.choose(CandidatesResult(levels=[1, 4, 8, 16], candidates=[
        _measured("draft_model:4", [(1, 1.81, 1.50, 2.29), (4, 1.44, 1.14, 1.82), (8, 1.33, 0.98, 1.8),
                                    (16, 1.11, 0.87, 1.41)], primary=True),
        _measured("draft_model:2", [(1, 1.43, 1.13, 1.82), (4, 1.46, 1.1, 1.94), (8, 1.35, 1.07, 1.71),
                                    (16, 1.23, 0.98, 1.55)])]))
    # k=2 wins one level more (8, where k=4's interval touches 1.0), but is nowhere clearly faster than k=4 nor
    # does k=4 lose anywhere: k=4 stays the winner and runs on at 8 (measured, not lost); no table
    assert [p.winner for p in run2.per_level] == ["draft_model:4", "draft_model:4", "draft_model:2", None]
    assert run2.winner == "draft_model:4" and run2.k_by_level == {1: 4, 4: 4, 8: 4, 16: 4} and run2.winner_k == 4
    assert run2.k_table is None and run2.win_levels == [1, 4]
    # a candidate whose whole interval lies above the primary's speedup takes the level
    clear = cd.choose(CandidatesResult(levels=[1], candidates=[
        _measured("draft_model:4", [(1, 1.30, 1.10, 1.50)], primary=True),
        _measured("draft_model:2", [(1, 1.60, 1.35, 1.85)])]))
    assert clear.per_level[0].winner == "draft_model:2" and clear.k_by_level == {1: 2}
    # on equal levels won, the primary is the winner, not the higher geometric mean
    tie = cd.choose(CandidatesResult(levels=[1], candidates=[
        _measured("draft_model:4", [(1, 1.30, 1.10, 1.50)], primary=True),
        _measured("draft_model:6", [(1, 1.40, 1.12, 1.70)])]))
    assert tie.winner == "draft_model:4"


def test_the_launch_check_directory_names_the_table_and_the_static_configuration():
    """A resumed run resumes per directory: a re-decided table or winner must not find another table's levels."""
    a = cd.launch_slug(cd.parse("draft_model:4"), [[1, 15, 4], [16, 256, 0]])
    assert a == "launch-draft_model-4-table-1-15-4_16-256-0"
    assert a != cd.launch_slug(cd.parse("draft_model:4"), [[1, 7, 4], [8, 256, 3]])
    assert a != cd.launch_slug(cd.parse("draft_model:3"), [[1, 15, 4], [16, 256, 0]])
    assert "/" not in cd.launch_slug(cd.parse("ngram:4:2-5"), [[1, 3, 4], [4, 256, 2]])


def test_k_zero_only_where_the_method_clearly_loses():
    """k=0 is not 'off' for a draft model (K_ZERO_NOTE): the table proposes it only where every candidate of the
    winner's method measured no faster than the baseline; an inconclusive level keeps the k of the level below,
    and once the method has lost, a later inconclusive level stays at 0."""
    assert cd.loses(_row(16, 0.95, 0.9, 1.0)) and not cd.loses(_row(16, 1.17, 0.93, 1.48))
    assert cd.loses(CandidateLevel(level=16, speedup=0.9)) and not cd.loses(CandidateLevel(level=16, status="excluded"))
    res = cd.choose(CandidatesResult(levels=[1, 4, 8, 16], candidates=[
        _measured("draft_model:4", [(1, 1.6, 1.3, 1.9), (4, 1.1, 0.9, 1.3), (8, 0.8, 0.7, 0.95), (16, 0.95, 0.8, 1.1)],
                  primary=True),
        _measured("draft_model:2", [(1, 1.4, 1.2, 1.6), (4, 1.05, 0.95, 1.2), (8, 0.9, 0.8, 0.99), (16, 1.0, 0.9, 1.1)])]))
    assert res.k_by_level == {1: 4, 4: 4, 8: 0, 16: 0} and res.win_levels == [1]
    assert res.k_table == [[1, 7, 4], [8, 256, 0]]


def test_the_table_holds_the_winner_s_k_unless_another_is_clearly_faster():
    """`make run` of 2026-12-05 01:39 (clean clone): k=3 won every level and was at least as fast as the step's own
    k=4 at each, yet the table put k=4 at 1-15 because the per-level choice keeps the primary; it was then launched
    at 0.94x and 0.91x of static k=3. The table now keeps the winner unless another k is clearly faster."""
    res = cd.choose(CandidatesResult(levels=[1, 4, 8, 16], candidates=[
        _measured("draft_model:4", [(1, 1.46, 1.16, 1.85), (4, 1.49, 1.18, 1.89), (8, 1.31, 1.04, 1.65),
                                    (16, 1.18, 0.94, 1.51)], primary=True),
        _measured("draft_model:3", [(1, 1.53, 1.22, 1.92), (4, 1.50, 1.15, 1.95), (8, 1.37, 1.07, 1.78),
                                    (16, 1.44, 1.14, 1.82)]),
        _measured("ngram:4", [(1, 0.86, 0.67, 1.1), (4, 0.77, 0.6, 0.98), (8, 0.69, 0.54, 0.86), (16, 0.69, 0.53, 0.92)])]))
    assert [p.winner for p in res.per_level] == ["draft_model:4"] * 3 + ["draft_model:3"]  # the primary holds its levels
    # k=3 is nowhere clearly faster than k=4, but wins one level more and is at least as fast at every level: it
    # displaces the step's own configuration (candidates.displaces)
    assert res.winner == "draft_model:3" and res.k_by_level == {1: 3, 4: 3, 8: 3, 16: 3} and res.k_table is None
    assert cd.launch_k(res) == 3 and "launch draft_model with k=3;" in res.finding


def test_one_more_level_won_where_the_own_configuration_touches_one_does_not_change_the_recommendation():
    """Clean-clone `make run` of eb2ba84 (2026-12-05): k=4 (the step's own) 1.67x / 1.50x / 1.28x at 1 / 4 / 8 with
    its interval at 8 from exactly 1.00; k=2 1.39x / 1.39x / 1.28x, from 1.02 at 8. Counting levels launched k=2,
    where the three stability runs before had launched k=4. k=2 is nowhere clearly faster: k=4 holds."""
    res = cd.choose(CandidatesResult(levels=[1, 4, 8], candidates=[
        _measured("draft_model:4", [(1, 1.67, 1.33, 2.09), (4, 1.50, 1.17, 1.92), (8, 1.28, 1.00, 1.64)], primary=True),
        _measured("draft_model:2", [(1, 1.39, 1.12, 1.73), (4, 1.39, 1.10, 1.76), (8, 1.28, 1.02, 1.61)]),
        _measured("ngram:4", [(1, 0.86, 0.67, 1.1), (4, 0.77, 0.6, 0.98), (8, 0.69, 0.54, 0.86)])]))
    assert res.winner == "draft_model:4" and cd.launch_k(res) == 4 and res.k_table is None
    assert res.k_by_level == {1: 4, 4: 4, 8: 4} and res.win_levels == [1, 4]
    assert "launch draft_model with k=4;" in res.finding
    # the same k=2 with its whole interval at 8 above k=4's speedup there is evidence: it takes over
    clear = res.model_copy(deep=True)
    clear.candidates[1].levels[2] = _row(8, 1.60, 1.35, 1.90, 2)
    assert cd.choose(clear).winner == "draft_model:2"
    # and so is k=4 measured losing at 8 (interval below 1) while k=2 wins there
    lost = res.model_copy(deep=True)
    lost.candidates[0].levels[2] = _row(8, 0.90, 0.80, 0.99)
    assert cd.choose(lost).winner == "draft_model:2"
    # when the step's own configuration wins nowhere, the candidate that wins most is the winner, as before
    none = res.model_copy(deep=True)
    none.candidates[0].levels = [_row(lvl, 1.05, 0.95, 1.15) for lvl in (1, 4, 8)]
    assert cd.choose(none).winner == "draft_model:2"


def test_a_held_level_is_not_counted_as_won():
    """Where the winner runs on without winning (its interval reaches below 1) the level is not in its win range,
    nor is a win of its above that level (noise, win_prefix), even where another k of its method wins."""
    res = cd.choose(CandidatesResult(levels=[1, 4, 8], candidates=[
        _measured("draft_model:4", [(1, 1.70, 1.30, 2.10), (4, 1.30, 0.98, 1.70), (8, 1.30, 1.02, 1.65)], primary=True),
        _measured("draft_model:2", [(1, 1.40, 1.10, 1.75), (4, 1.32, 1.05, 1.66), (8, 1.31, 1.03, 1.64)])]))
    assert res.winner == "draft_model:4" and res.k_by_level == {1: 4, 4: 4, 8: 4} and res.k_table is None
    assert res.win_levels == [1] and "draft_model:4 (concurrency 1)" in res.finding
