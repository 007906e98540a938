"""QA round 6, area D (report) and B4 (launch limits with data parallelism).

D2. an unknown rule that was measured reads "inconclusive" in the rules table, "not measured" only when nothing was;
D3. step 50 run with candidates: [off] says only the step's own configuration was measured, not "did not run";
D4. the predictor's acceptance is the per-token rate of its geometric model, worded so nobody reads it as the
    sweep's share of drafted tokens accepted;
D5. an expected peak above the highest measured concurrency is "measure at N" even when no level wins or loses;
D6. summary.md and the verdict headline name the embedded pair as the first screen does;
B4. with data_parallel_size > 1 the launch command's --max-num-seqs is per rank (ceil(limit / dp)), and a k table
    (ignored by vLLM 0.32 under data parallelism) is not launched: the static k is, and the notes say why.
"""

from __future__ import annotations

import json
import shlex

import pytest

from playbook.helpers import (
    decide,
    evidence,
    glossary,
    predict,
    prediction_check,
    render,
    rules,
    sections,
    summary,
)
from playbook.helpers.artifacts import RunDir
from playbook.helpers.params import ReportParams
from playbook.helpers.schemas.decision import Evidence, LoadLevel, RecommendedConfig, RuleResult
from playbook.helpers.schemas.predict import StepTimeModel
from tests.support.decide_fixtures import executed_notebook, load, make_run, sweep

# the tester's smoke run (runs/20261207-022448): no level wins or loses, intervals too wide
WIDE = {1: (0.89, 0.62, 1.30), 2: (0.80, 0.06, 9.80)}
WIN_THEN_LOSS = {1: (1.6, 1.4, 1.8), 4: (1.3, 1.15, 1.45), 8: (0.8, 0.7, 0.9)}


def _levels(spec: dict) -> list[LoadLevel]:
    return [LoadLevel(concurrency=c, speedup=s, speedup_ci_low=lo, speedup_ci_high=hi, error_rate=0.0)
            for c, (s, lo, hi) in spec.items()]


def _decide(run: RunDir, peak: float, **kw):
    return decide.decide(evidence.gather(run, 0.2), production_temperature=0.2, expected_peak_concurrency=peak,
                         context_length=1024, **kw)


def _cells(table_html: str, title: str) -> str:
    """The rules-table row whose title is ``title``."""
    row = next(r for r in table_html.split("<tr>") if title in r)
    return row


# --- D2 -------------------------------------------------------------------------------------------------------
def test_a_measured_unknown_rule_reads_inconclusive_not_not_measured():
    measured = rules.rule_load_crossover(_levels(WIDE), expected_peak=2, temperature=0.2)
    assert measured.verdict == "unknown" and measured.numbers
    nothing = rules.rule_quantization_drop(None)
    assert glossary.verdict_word(measured) == "inconclusive"
    assert glossary.verdict_word(nothing) == "not measured"
    html = render.rules_table([measured, nothing])
    assert "inconclusive" in _cells(html, glossary.title("load_crossover_vs_peak"))
    assert "not measured" not in _cells(html, glossary.title("load_crossover_vs_peak")).split("</b>", 2)[-1].split(
        "no measured")[0]
    assert ">not measured<" in _cells(html, glossary.title("quantization_acceptance_drop"))


def test_other_verdict_words_are_unchanged():
    for verdict, word in (("go", "passes"), ("no-go", "fails"), ("borderline", "borderline")):
        assert glossary.verdict_word(RuleResult(name="error_rate", verdict=verdict, reason="x", numbers={"a": 1})) == word
    # unknown for want of a comparable number, not for want of a step: judged, but not settled
    damaged = rules.rule_error_rate(float("nan"))
    assert glossary.verdict_word(damaged) == "inconclusive"


def test_the_report_rules_table_of_a_wide_interval_run_says_inconclusive(tmp_path):
    run = make_run(tmp_path / "run", sweep_result=sweep(), load_result=load(WIDE))
    d = _decide(run, 2)
    row = _cells(render.rules_table(d.rules), glossary.title("load_crossover_vs_peak"))
    assert ">inconclusive<" in row and ">not measured<" not in row
    assert not any(r.startswith("[unknown] not measured: speedup") for r in d.reasons)  # summary.md's words


# --- D3 -------------------------------------------------------------------------------------------------------
def test_candidates_off_says_only_the_steps_own_configuration_was_measured(tmp_path):
    run = make_run(tmp_path / "run", sweep_result=sweep(), load_result=load(WIDE))
    executed_notebook(run, "50_load", candidates=["off"], method="draft_model", num_speculative_tokens=4)
    ev = evidence.gather(run, 0.2)
    html = sections.candidates(run, ev)
    assert "did not run" not in html and "Not measured" not in html
    assert "candidates: [off]" in html and "Only the step&#x27;s own configuration" in html
    assert "draft_model:2,ngram:4" in html  # how to compare others


def test_candidates_off_from_run_json_when_no_notebook(tmp_path):
    run = make_run(tmp_path / "run", sweep_result=sweep(), load_result=load(WIDE))
    (run.path / "run.json").write_text(json.dumps({"parameters": {"candidates": ["off"]}}))
    html = sections.candidates(run, evidence.gather(run, 0.2))
    assert "candidates: [off]" in html and "did not run" not in html


def test_no_load_test_still_says_step_50_did_not_run(tmp_path):
    run = make_run(tmp_path / "run", sweep_result=sweep())
    html = sections.candidates(run, evidence.gather(run, 0.2))
    assert "did not run" in html and "No configurations were compared" in html


# --- D4 -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pred():
    target = StepTimeModel(name="t", source="given", overhead_ms=0.5, weights_ms=20.0, compute_ms_per_token=0.02)
    draft = StepTimeModel(name="d", source="given", overhead_ms=0.3, weights_ms=0.5, compute_ms_per_token=0.0005)
    return predict.predict(target_step=target, draft_step=draft, num_speculative_tokens=4,
                           acceptance_per_position=[0.82, 0.67, 0.55, 0.45], batch_sizes=[1, 2, 4])


def test_the_predictors_acceptance_is_worded_as_the_per_token_rate(pred):
    a, e = f"{pred.acceptance:.2f}", f"{pred.expected_tokens_per_step:.2f}"
    words = pred.finding  # playbook predict prints it too
    assert f"per-token acceptance a={a} (fitted: E={e} tokens per step)" in words
    assert f"(a={a}," not in words and words.startswith("predicted speedup")
    assert prediction_check.prediction_summary(pred, None)["finding"] == words  # decision.json


def test_the_report_says_per_token_acceptance_in_the_prediction_and_why_k(tmp_path, pred):
    run = make_run(tmp_path / "run", sweep_result=sweep(), load_result=load(WIDE))
    ev = evidence.gather(run, 0.2)
    html = sections.predicted_vs_measured(pred, None, ev, run)
    a = f"{pred.acceptance:.2f}"
    assert f"with acceptance {a}" not in html and f"(a={a}," not in html
    assert f"per-token acceptance a={a} (fitted: E=" in html.split("Why k=")[0]  # the predictor's finding
    assert f"per-token acceptance a={a} (fitted: E=" in html.split("Why k=")[1]  # and why this k


# --- D5 -------------------------------------------------------------------------------------------------------
def test_a_peak_above_the_levels_is_measure_at_n_when_no_level_wins_or_loses():
    r = rules.rule_load_crossover(_levels(WIDE), expected_peak=8, temperature=0.2)
    assert r.verdict == "unknown"
    assert r.measure_next.startswith("measure at 8") and "more requests per load level" in r.measure_next
    assert "measure at 8" in r.reason
    at_top = rules.rule_load_crossover(_levels(WIDE), expected_peak=2, temperature=0.2)
    assert "measure at" not in at_top.measure_next  # the peak was measured: only the intervals are too wide


def test_a_noisy_run_below_the_peak_is_measure_at_n_too():
    noisy = {1: (0.95, 0.8, 1.1), 2: (1.4, 1.2, 1.6)}  # no win at 1, a win at 2
    r = rules.rule_load_crossover(_levels(noisy), expected_peak=8)
    assert r.verdict == "unknown" and r.measure_next.startswith("measure at 8")


def test_re_deciding_with_a_higher_peak_names_measure_at_n(tmp_path):
    run = make_run(tmp_path / "run", sweep_result=sweep(), load_result=load(WIDE))
    d = _decide(run, 8)
    assert d.verdict == "INCONCLUSIVE" and any("measure at 8" in m for m in d.measure_next)


# --- D6 -------------------------------------------------------------------------------------------------------
def test_summary_and_headline_name_the_embedded_pair_as_the_first_screen(tmp_path):
    run = make_run(tmp_path / "run", sweep_result=sweep(), load_result=load({1: (1.6, 1.4, 1.8), 2: (1.5, 1.3, 1.7)}))
    ev = evidence.gather(run, 0.2).model_copy(update={"target": "embedded", "draft": "embedded",
                                                       "method": "draft_model", "num_speculative_tokens": 4})
    d = decide.decide(ev, production_temperature=0.2, expected_peak_concurrency=2, context_length=1024)
    assert d.verdict in ("GO", "GO WITH LIMITS"), d.reasons
    assert "draft tiny-draft (embedded demo)" in d.headline and "draft embedded " not in d.headline
    md = summary.summary_markdown(d, ev)
    assert "Target `tiny-target (embedded demo)`, draft `tiny-draft (embedded demo)`" in md
    assert "`embedded`" not in md


# --- B4 -------------------------------------------------------------------------------------------------------
MANAGED = {"mode": "managed", "target_model": "/models/target", "draft_model": "/models/draft"}


def _argv(cmd: str) -> list[str]:
    return shlex.split(cmd.split("vllm serve ", 1)[1])


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


@pytest.mark.parametrize("dp, limit, per_rank", [(1, 7, 7), (2, 7, 4), (4, 8, 2), (8, 3, 1)])
def test_per_rank_limit(dp, limit, per_rank):
    assert decide.per_rank_limit(limit, dp) == per_rank


def test_launch_command_with_data_parallelism_gives_max_num_seqs_per_rank():
    def rec():
        return RecommendedConfig(enable=True, method="draft_model", num_speculative_tokens=4, max_concurrency=7,
                                 speculative_config={"method": "draft_model", "num_speculative_tokens": 4})

    one = decide.launch_command_for(ReportParams(**MANAGED), rec())
    assert _value(_argv(one), "--max-num-seqs") == "7"
    r = rec()
    cmd = decide.launch_command_for(ReportParams(**MANAGED, data_parallel_size=2), r)
    argv = _argv(cmd)
    assert _value(argv, "--max-num-seqs") == "4" and _value(argv, "--data-parallel-size") == "2"
    note = next(n for n in r.notes if n.startswith("--max-num-seqs 4"))
    assert "per data-parallel rank" in note and "2 x 4 = 8" in note and "7" in note


def _table_ev() -> Evidence:
    comp = {"primary": "draft_model:4", "winner": "ngram:3", "winner_method": "ngram", "winner_k": 3,
            "measured": ["draft_model:4", "draft_model:2", "ngram:3", "ngram:2"], "win_levels": [1, 4],
            "k_table": [[1, 3, 3], [4, 7, 2], [8, 256, 0]], "winner_window": [1, 3], "k_zero_note": "k=0 note"}
    own = _levels({1: (0.9, 0.8, 0.95), 4: (0.8, 0.7, 0.9), 8: (0.7, 0.6, 0.8)})
    won = _levels({1: (1.4, 1.2, 1.6), 4: (1.2, 1.1, 1.3), 8: (0.9, 0.8, 0.95)})
    return Evidence(method="draft_model", num_speculative_tokens=4, draft="/models/draft", target="/models/target",
                    acceptance_production=0.8, acceptance_by_temperature={0.2: 0.8}, acceptance_temperature=0.2,
                    load_levels=own, candidates=comp, winner_load_levels=won, steps_present=["40_sweep", "50_load"])


def test_a_k_table_is_launched_without_data_parallelism():
    p = ReportParams(expected_peak_concurrency=4)
    rec = decide.decide_for(_table_ev(), p).recommended
    assert rec.num_speculative_tokens_per_batch_size == [[1, 3, 3], [4, 7, 2], [8, 256, 0]]


def test_with_data_parallelism_the_static_k_is_launched_instead_of_the_table():
    p = ReportParams(expected_peak_concurrency=4, data_parallel_size=2, **{**MANAGED, "method": "ngram",
                                                                          "draft_model": ""})
    d = decide.decide_for(_table_ev(), p)
    rec = d.recommended
    assert d.verdict in ("GO", "GO WITH LIMITS"), d.reasons
    assert rec.num_speculative_tokens_per_batch_size is None and rec.num_speculative_tokens == 3
    assert "num_speculative_tokens_per_batch_size" not in rec.speculative_config
    assert rec.max_concurrency == 7  # the winner loses at 8, where the table turned speculation off
    why = next(n for n in rec.notes if "is not launched" in n)
    assert "data_parallel_size > 1" in why and "_maybe_disable_dynamic_sd_for_data_parallel" in why
    assert "k=3 of ngram:3" in why
    assert not any("PIECEWISE" in n for n in rec.notes)  # no table launched: its CUDA-graph caveat does not apply
    assert "k=0 at" not in d.headline
    cmd = decide.launch_command_for(p, rec)
    argv = _argv(cmd)
    assert "num_speculative_tokens_per_batch_size" not in cmd
    spec = json.loads(_value(argv, "--speculative-config"))
    assert spec["num_speculative_tokens"] == 3 and spec["method"] == "ngram"
    assert _value(argv, "--max-num-seqs") == "4"  # ceil(7 / 2) per rank
    assert any(n.startswith("--max-num-seqs 4 is per data-parallel rank") for n in rec.notes)
