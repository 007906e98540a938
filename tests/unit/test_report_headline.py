"""The report's first screen as data: which level is 'at the peak', how each number is judged, what
would change the decision, and the plain words every rule is explained with."""

import re

import pytest

from playbook.helpers import glossary, headline
from playbook.helpers.rules import evaluate_rules
from playbook.helpers.schemas.decision import Decision, Evidence, LoadLevel, RecommendedConfig, Thresholds


def _lv(c, s, lo, hi, status="ok"):
    return LoadLevel(concurrency=c, speedup=s if status == "ok" else None, speedup_ci_low=lo, speedup_ci_high=hi,
                     status=status, reason="" if status == "ok" else "bursts")


def _decision(verdict="GO", peak=4, **kw):
    return Decision(verdict=verdict, confidence="high", headline="h", reasons=[], rules=[],
                    recommended=RecommendedConfig(enable=verdict.startswith("GO"), launch_command="vllm serve t"),
                    inputs={"expected_peak_concurrency": peak, "slo_kind": "tpot", "thresholds": {}}, **kw)


def test_level_at_peak_exact_else_nearest():
    levels = [_lv(1, 1.5, 1.3, 1.7), _lv(4, 1.2, 1.1, 1.3), _lv(16, 0.8, 0.7, 0.9)]
    assert headline.level_at_peak(levels, 4).concurrency == 4
    assert headline.level_at_peak(levels, 12).concurrency == 16
    assert headline.level_at_peak([], 4) is None


@pytest.mark.parametrize(("level", "verdict", "value"), [
    (_lv(4, 1.3, 1.15, 1.45), "go", "1.30x"),
    (_lv(4, 1.05, 1.01, 1.09), "borderline", "1.05x"),  # a win, but under the 10% worth having
    (_lv(4, 0.8, 0.7, 0.9), "no-go", "0.80x"),
    (_lv(4, None, None, None, status="excluded"), "unknown", "withheld"),
])
def test_speedup_number_is_judged_by_its_interval(level, verdict, value):
    n = headline.speedup_number(Evidence(load_levels=[level]), 4, Thresholds())
    assert (n.verdict, n.value) == (verdict, value)
    if value != "withheld":
        assert f"{level.speedup_ci_low:.2f}x to {level.speedup_ci_high:.2f}x" in n.detail


@pytest.mark.parametrize("error_rate, verdict, note", [
    (0.0, "go", None), (0.02, "go", "2.0% of its requests failed"),
    (0.20, "borderline", "20.0% of its requests failed (over 5%: not trustworthy)")])
def test_the_speedup_number_repeats_its_levels_error_rate(error_rate, verdict, note):
    lv = LoadLevel(concurrency=4, speedup=1.5, speedup_ci_low=1.3, speedup_ci_high=1.7, error_rate=error_rate)
    n = headline.speedup_number(Evidence(load_levels=[lv]), 4, Thresholds())
    assert n.verdict == verdict and (("failed" not in n.detail) if note is None else (note in n.detail))


def test_acceptance_number_flags_a_low_p10_and_concurrency_cost():
    ev = Evidence(acceptance_production=0.8, acceptance_p10=0.3, acceptance_temperature=0.2,
                  max_concurrency_baseline=40, max_concurrency_spec=30, memory_context_length=4096, draft="d")
    a = headline.acceptance_number(ev, Thresholds())
    assert (a.value, a.verdict) == ("0.80", "borderline") and "P10 per request 0.30" in a.detail
    c = headline.concurrency_number(ev, Thresholds())
    assert (c.value, c.verdict) == ("25% fewer", "borderline") and "40 to 30 concurrent 4,096-token" in c.detail
    ngram = headline.concurrency_number(Evidence(method="ngram"), Thresholds())
    assert ngram.value == "0%"


def test_would_change_names_thresholds_and_todays_values():
    ev = Evidence(acceptance_production=0.72, acceptance_temperature=0.2,
                  load_levels=[_lv(1, 1.5, 1.3, 1.7), _lv(4, 1.2, 1.12, 1.3), _lv(16, 0.8, 0.7, 0.9)])
    lines = headline.would_change(_decision("GO WITH LIMITS"), ev, Thresholds(), 4)
    assert any("below 0.50 (today 0.72)" in x for x in lines)
    assert any("concurrency 4" in x and "1.12x" in x for x in lines)
    assert any("rising past concurrency 16" in x for x in lines)
    assert 2 <= len(lines) <= 4


def test_build_off_has_no_command():
    hl = headline.build(_decision("NO-GO"), Evidence())
    assert hl.launch_command == "" and "none" in hl.launch_label
    assert [n.key for n in hl.numbers] == ["speedup", "acceptance", "concurrency"]
    assert all(n.value == "not measured" for n in hl.numbers[:2])


def test_every_rule_has_plain_words():
    rules = evaluate_rules(Evidence(), production_temperature=0.2)
    assert len(rules) >= 15
    for r in rules:
        assert r.name in glossary.RULES, r.name
        title, why = glossary.title(r.name), glossary.why(r.name, Thresholds().model_dump())
        assert title and why.endswith(".") and "{" not in why, (r.name, why)
        assert not re.search(r"SPEC|_", title + why), (r.name, title, why)
    assert "above 0.70" in glossary.why("acceptance_at_production_temperature", {"acceptance_go_above": 0.7})


def test_the_first_screen_and_summary_show_the_configuration_the_verdict_judged():
    """The compared winner (draft_model:3) is recommended and judged: the headline speedup, the deciding
    chart's levels and summary.md's table are its measurements, named, not the step's own draft_model:4's."""
    from playbook.helpers.summary import summary_markdown

    own = [_lv(1, 1.40, 1.11, 1.78), _lv(4, 1.33, 1.06, 1.68)]
    won = [_lv(1, 1.56, 1.24, 1.97), _lv(4, 1.36, 1.07, 1.83)]
    comp = {"primary": "draft_model:4", "winner": "draft_model:3", "winner_method": "draft_model", "winner_k": 3,
            "measured": ["draft_model:4", "draft_model:3"], "win_levels": [1, 4]}
    ev = Evidence(method="draft_model", num_speculative_tokens=4, load_levels=own, winner_load_levels=won,
                  candidates=comp)
    hl = headline.build(_decision("GO"), ev)
    speed = hl.numbers[0]
    assert speed.value == "1.36x" and speed.detail.startswith("draft_model:3 at concurrency 4")
    assert [x.speedup for x in hl.levels] == [1.56, 1.36] and hl.judged == "draft_model:3"
    from playbook.helpers.schemas.predict import PredictionCheck

    check = PredictionCheck(concurrency=[1, 4], measured_speedup=[1.40, 1.33], predicted_speedup=[1.40, 1.2],
                            relative_error=[0.0, 0.1], mean_abs_relative_error=0.05)
    md = summary_markdown(_decision("GO"), ev, check)
    assert "Predictor vs measured (draft_model:4, the step's own configuration): the speedup is off by 5%" in md
    assert "method `draft_model`, k=3;" in md  # the judged (and launched) configuration's k, not the step's own 4
    assert "draft_model:3 (the measured configuration the verdict judged" in md
    assert "| 1 | 1.56 | 1.24 to 1.97 |" in md and "| 1 | 1.40 |" not in md
    # without a comparison (or when the step's own configuration won) nothing changes
    plain = headline.build(_decision("GO"), Evidence(load_levels=own))
    assert plain.judged == "" and plain.numbers[0].value == "1.33x" and plain.numbers[0].detail.startswith("at ")


def test_the_configuration_line_states_the_limit_as_the_headline_does():
    """max_concurrency is the last level speculation won: 'up to', as in the headline, not 'below'."""
    d = _decision("GO WITH LIMITS")
    d.recommended.max_concurrency = 8
    line = headline.configuration(d, Evidence(method="draft_model", num_speculative_tokens=4))
    assert "(up to concurrency 8)" in line and "below" not in line
