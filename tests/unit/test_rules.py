"""Each SPEC section 3 rule, as a table of cases at and around its thresholds."""

import pytest

from playbook.helpers import rules
from playbook.helpers.schemas.decision import LoadLevel


@pytest.mark.parametrize("acc, verdict", [
    (None, "unknown"), (0.0, "no-go"), (0.49, "no-go"), (0.4999, "no-go"), (0.50, "borderline"), (0.60, "borderline"),
    (0.65, "borderline"), (0.6501, "go"), (0.9, "go"),
])
def test_acceptance_bands(acc, verdict):
    r = rules.rule_acceptance(acc, 0.2)
    assert r.verdict == verdict
    if acc is not None:
        assert f"{acc:.2f}" in r.reason and "T=0.2" in r.reason
    else:
        assert r.measure_next


def test_acceptance_thresholds_are_parameters():
    assert rules.rule_acceptance(0.6, go_above=0.55).verdict == "go"
    assert rules.rule_acceptance(0.6, no_go_below=0.7, go_above=0.8).verdict == "no-go"


@pytest.mark.parametrize("p10, verdict", [(None, "unknown"), (0.2, "borderline"), (0.4999, "borderline"), (0.5, "go"), (0.8, "go")])
def test_acceptance_p10(p10, verdict):
    assert rules.rule_acceptance_p10(p10).verdict == verdict


@pytest.mark.parametrize("draft, usable, verdict", [
    (None, 10.0, "unknown"), (1.0, None, "unknown"), (1.5, 10.0, "go"), (1.51, 10.0, "no-go"), (0.1, 10.0, "go"), (3.0, 10.0, "no-go"),
])
def test_draft_vram_share(draft, usable, verdict):
    r = rules.rule_draft_vram_share(draft, usable)
    assert r.verdict == verdict
    if verdict != "unknown":
        assert r.numbers["share"] == pytest.approx(draft / usable, abs=1e-4)


@pytest.mark.parametrize("target, vram, verdict", [(None, 80, "unknown"), (56.0, 80.0, "go"), (56.1, 80.0, "borderline"), (70.0, 80.0, "borderline")])
def test_target_vram_share(target, vram, verdict):
    assert rules.rule_target_vram_share(target, vram).verdict == verdict


@pytest.mark.parametrize("base, spec, peak, verdict", [
    (None, 10, 4, "unknown"), (100, 90, 4, "go"), (100, 89.9, 4, "borderline"), (100, 50, 4, "borderline"),
    (100, 3.9, 4, "no-go"), (100, 4, 4, "borderline"), (10, 9.5, 4, "go"),
])
def test_concurrency_loss(base, spec, peak, verdict):
    r = rules.rule_concurrency_loss(base, spec, expected_peak_concurrency=peak, context_length=2048)
    assert r.verdict == verdict
    if verdict != "unknown":
        assert "2048" in r.reason


@pytest.mark.parametrize("drop, verdict", [(None, "unknown"), (0.0, "go"), (5.0, "go"), (5.01, "borderline"), (12, "borderline")])
def test_quantization_drop(drop, verdict):
    assert rules.rule_quantization_drop(drop, config="int4/bf16").verdict == verdict


@pytest.mark.parametrize("kind, slo, base, spec, verdict", [
    ("ttft", 0, None, None, "no-go"),
    ("tpot", 0, None, None, "go"),
    ("tpot", 200, 150, 210, "no-go"),  # speculation breaks a TTFT SLO the baseline meets
    ("tpot", 200, 150, 200, "go"),
    ("tpot", 200, 250, 260, "borderline"),
    ("throughput", 0, 100, 500, "go"),
])
def test_ttft_slo(kind, slo, base, spec, verdict):
    assert rules.rule_ttft_slo(kind, slo_ttft_ms=slo, ttft_p99_baseline_ms=base, ttft_p99_spec_ms=spec).verdict == verdict


@pytest.mark.parametrize("slo, base, spec, verdict", [
    (0, None, None, "go"), (50, None, 40, "unknown"), (50, 60, 50, "go"), (50, 40, 50.1, "no-go"), (50, 60, 70, "borderline"),
])
def test_tpot_slo(slo, base, spec, verdict):
    assert rules.rule_tpot_slo(slo, base, spec).verdict == verdict


@pytest.mark.parametrize("b50, b99, s50, s99, verdict", [
    (None, 10, 5, 10, "unknown"),
    (10, 20, 8, 23, "go"),  # gap 10 -> 15: exactly 1.5x
    (10, 20, 8, 23.1, "borderline"),
    (10, 20, 8, 12, "go"),
])
def test_tail_gap(b50, b99, s50, s99, verdict):
    assert rules.rule_tail_gap(b50, b99, s50, s99).verdict == verdict


def _lv(c, s, lo=None, hi=None):
    return LoadLevel(concurrency=c, speedup=s, speedup_ci_low=lo, speedup_ci_high=hi)


@pytest.mark.parametrize("levels, peak, verdict", [
    ([], 4, "unknown"),
    ([_lv(1, 1.5, 1.3, 1.7), _lv(4, 1.2, 1.05, 1.3), _lv(16, 0.8, 0.7, 0.9)], 4, "go"),
    ([_lv(1, 1.5, 1.3, 1.7), _lv(4, 1.2, 1.05, 1.3), _lv(16, 0.8, 0.7, 0.9)], 16, "borderline"),
    ([_lv(1, 1.5, 1.3, 1.7), _lv(4, 1.1, 0.95, 1.3)], 4, "borderline"),  # CI crosses 1 at the peak: not a win there
    ([_lv(1, 0.9, 0.8, 0.99), _lv(4, 0.7, 0.6, 0.8)], 4, "no-go"),
    ([_lv(1, 1.1, 0.9, 1.3), _lv(4, 1.05, 0.9, 1.2)], 4, "unknown"),  # point above 1, intervals cross: not proven
    ([_lv(1, 0.77, 0.0, 0.99), _lv(4, 1.01, 0.87, 1.11), _lv(16, 0.66, 0.58, 0.72)], 4, "no-go"),  # a tie is no win
    ([_lv(1, 1.049, 0.9, 1.2)], 1, "unknown"),  # a point under the gain worth having, but the interval allows it
    ([_lv(1, 1.02, 0.95, 1.09)], 1, "no-go"),  # the interval excludes a 10% gain
    ([_lv(1, 1.12, 0.9, 1.3), _lv(4, 0.7, 0.6, 0.8)], 4, "no-go"),  # slower at the peak, a win nowhere
    ([_lv(1, 1.12, 0.9, 1.3), _lv(16, 0.6, 0.5, 0.7)], 4, "unknown"),  # a loss beyond the peak decides nothing
    ([_lv(1, 1.15, 0.9, 1.4)], 1, "unknown"),
    ([_lv(1, 1.3), _lv(4, 1.1)], 4, "go"),  # no intervals: the point estimates decide
    ([_lv(1, 1.5, 1.3, 1.7), _lv(4, 1.2, 1.05, 1.3)], 64, "unknown"),  # peak 64 never measured: measure at 64
    ([_lv(1, 1.5, 1.3, 1.7), _lv(4, 0.8, 0.7, 0.9)], 64, "borderline"),  # the measured limit stands
])
def test_load_crossover(levels, peak, verdict):
    r = rules.rule_load_crossover(levels, expected_peak=peak)
    assert r.verdict == verdict


def test_load_crossover_names_levels():
    r = rules.rule_load_crossover([_lv(1, 1.5, 1.3, 1.7), _lv(8, 0.8, 0.7, 0.9)], expected_peak=8)
    assert r.numbers["highest_win"] == 1 and r.numbers["first_non_win"] == 8
    assert "1" in r.reason and "8" in r.reason
    assert "gain its interval cannot" not in r.reason  # 0.8x is no gain
    # a limit set by an interval that crosses 1.0 says what was measured there: a gain not yet proven
    unproven = rules.rule_load_crossover([_lv(1, 1.5, 1.3, 1.7), _lv(4, 1.15, 0.91, 1.44)], expected_peak=4)
    assert unproven.verdict == "borderline"
    assert "1.15x there is a gain its interval cannot yet tell from none" in unproven.reason
    assert "4: 1.15 [0.91, 1.44]" in unproven.reason


@pytest.mark.parametrize("err, verdict", [(None, "unknown"), (0.0, "go"), (0.05, "go"), (0.0501, "unknown"), (0.5, "unknown")])
def test_error_rate(err, verdict):
    r = rules.rule_error_rate(err)
    assert r.verdict == verdict
    if err is not None and err > 0.05:
        assert "fix" in r.measure_next


@pytest.mark.parametrize("temps, verdict", [
    ([], "unknown"), ([0.0], "go"), ([0.5], "go"), ([0.6], "borderline"), ([0.7], "borderline"), ([0.71], "no-go"),
    ([0.0, 0.2, 0.4], "go"), ([0.0, 0.1, 1.0], "borderline"), ([0.8, 1.0, 1.2], "no-go"),
])
def test_temperature_mix(temps, verdict):
    assert rules.rule_temperature_mix(temps).verdict == verdict


@pytest.mark.parametrize("cfg, guard, verdict", [
    ({"method": "draft_model"}, None, "go"),
    ({"method": "draft_model"}, True, "go"),
    ({"method": "draft_model"}, False, "no-go"),
    ({"method": "draft_model", "rejection_sample_method": "synthetic"}, True, "no-go"),
    ({"method": "draft_model", "rejection_sample_method": "block"}, None, "go"),
    ({"method": "ngram", "acceptance_method": "typical_acceptance_sampler"}, None, "no-go"),
])
def test_lossless(cfg, guard, verdict):
    r = rules.rule_lossless(cfg["method"], cfg, guard_passed=guard, guard_detail="T=0: 3 of 8 outputs differ")
    assert r.verdict == verdict
    if guard is False:
        assert "3 of 8" in r.reason


@pytest.mark.parametrize("counters, verdict", [(None, "unknown"), (False, "no-go"), (True, "go")])
def test_acceptance_monitoring(counters, verdict):
    assert rules.rule_acceptance_monitoring(counters, ["vllm:spec_decode_num_drafts_total"] if counters else []).verdict == verdict


def test_load_crossover_noisy_non_monotonic_is_unknown():
    r = rules.rule_load_crossover([_lv(1, 0.5, 0.0, 2.0), _lv(2, 2.5, 1.5, 6.2), _lv(4, 1.4, 0.7, 2.5)], expected_peak=4)
    assert r.verdict == "unknown" and "noisy" in r.reason and r.measure_next


def test_load_crossover_never_claims_an_unmeasured_peak():
    r = rules.rule_load_crossover([_lv(1, 1.5, 1.3, 1.7), _lv(4, 1.2, 1.05, 1.3)], expected_peak=64)
    assert r.verdict == "unknown" and "measure at 64" in r.reason and "measure at 64" in r.measure_next
    assert r.numbers["highest_measured"] == 4


def test_withheld_levels_are_neither_wins_nor_losses():
    bad = _lv(4, 0.004, 0.0, 1.35).model_copy(update={"status": "excluded", "reason": "bursts"})
    r = rules.rule_load_crossover([_lv(1, 1.5, 1.3, 1.7), bad], expected_peak=1)
    assert r.verdict == "go" and "4: excluded (bursts)" in r.reason
    only = rules.rule_load_crossover([bad], expected_peak=4)
    assert only.verdict == "unknown" and "bursts" in only.reason


@pytest.mark.parametrize("ratio, verdict", [(None, "unknown"), (0.8, "no-go"), (1.0, "borderline"), (1.2, "go")])
def test_throughput_slo(ratio, verdict):
    assert rules.rule_throughput_slo(ratio, level=8).verdict == verdict


@pytest.mark.parametrize("load_t, prod_t, verdict", [(None, 0.2, "unknown"), (0.0, 0.2, "borderline"), (0.2, 0.2, "go"),
                                                      (0.18, 0.2, "go"), (1.0, 0.2, "go")])
def test_load_temperature(load_t, prod_t, verdict):
    r = rules.rule_load_temperature(load_t, prod_t)
    assert r.verdict == verdict
    if verdict == "borderline":
        assert "T=0" in r.reason and "T=0.2" in r.reason


@pytest.mark.parametrize("base, spec, verdict", [(None, 20, "unknown"), (20, 24, "go"), (20, 26, "borderline"), (20, 15, "go")])
def test_ttft_rise(base, spec, verdict):
    assert rules.rule_ttft_rise(base, spec).verdict == verdict


def test_an_inconclusive_crossover_does_not_deny_a_loss_above_the_expected_peak():
    """A stability run of 2026-12-07 (AVX2-only CPU): 1: 0.84 [0.63, 1.11]; 4: 0.80 [0.54, 1.17]; 8: 0.64 [0.50, 0.82]
    with the expected peak at 4. The loss at 8 does not decide (above the peak), but the reason must not say that no
    level shows a loss while the numbers beside it show one."""
    levels = [_lv(1, 0.84, 0.63, 1.11), _lv(4, 0.80, 0.54, 1.17), _lv(8, 0.64, 0.50, 0.82)]
    r = rules.rule_load_crossover(levels, expected_peak=4, temperature=0.2)
    assert r.verdict == "unknown"
    assert r.reason.startswith("no measured concurrency shows a win at T=0.2, none up to the expected peak 4 a loss "
                               "(slower only at 8, above it): the intervals still allow up to 1.17x at 4")
    assert "raise level_decision_budget_s, e.g. -p level_decision_budget_s=300" in r.measure_next  # the knob
    r = rules.rule_load_crossover(levels[:2], expected_peak=4, temperature=0.2)
    assert r.reason.startswith("no measured concurrency shows a win or a loss at T=0.2: ")
