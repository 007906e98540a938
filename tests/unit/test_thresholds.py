"""Every threshold reaches the verdict: one Thresholds model, carried by the report step's parameters."""

import pytest

from playbook.helpers import decide, evidence
from playbook.helpers.params import STEP_MODELS, ReportParams, resolve_parameters
from playbook.helpers.schemas.decision import Thresholds
from tests.support.decide_fixtures import load, make_run, sweep

WIN = {1: (1.6, 1.4, 1.8), 4: (1.3, 1.15, 1.45)}
UNPROVEN = {1: (1.08, 0.95, 1.16), 4: (1.06, 0.95, 1.15)}


def _memory(ev):
    """Memory and quantization evidence comfortably inside the default thresholds."""
    ev.draft_weights_gib, ev.usable_memory_gib = 1.0, 10.0  # 10% of usable memory
    ev.target_weights_gib, ev.gpu_memory_gib = 5.0, 10.0  # 50% of VRAM
    ev.max_concurrency_baseline, ev.max_concurrency_spec = 100.0, 95.0  # 5% lost
    ev.quant_acceptance_drop_pp, ev.quant_config = 3.0, "target int8 / draft bf16"
    return ev


# threshold -> (base situation, new value, rule that changes, its verdict before -> after, overall before -> after)
CASES = {
    "acceptance_no_go_below": ({}, 0.8, "acceptance_at_production_temperature", ("go", "no-go"), ("GO", "NO-GO")),
    "acceptance_go_above": ({}, 0.8, "acceptance_at_production_temperature", ("go", "borderline"), ("GO", "GO WITH LIMITS")),
    "acceptance_p10_min": ({}, 0.7, "acceptance_p10", ("go", "borderline"), ("GO", "GO WITH LIMITS")),
    "max_draft_share": ({}, 0.05, "draft_vram_share", ("go", "no-go"), ("GO", "NO-GO")),
    "max_target_share": ({}, 0.4, "target_vram_share", ("go", "borderline"), ("GO", "GO WITH LIMITS")),
    "max_concurrency_loss": ({}, 0.01, "concurrency_lost_to_draft", ("go", "borderline"), ("GO", "GO WITH LIMITS")),
    "acceptance_drop_pp": ({}, 2.0, "quantization_acceptance_drop", ("go", "borderline"), ("GO", "GO WITH LIMITS")),
    "max_error_rate": ({"error_rate": 0.02}, 0.01, "error_rate", ("go", "unknown"), ("GO", "INCONCLUSIVE")),
    "max_gap_widening": ({}, 0.5, "p50_p99_gap_change", ("go", "borderline"), ("GO", "GO WITH LIMITS")),
    "min_gain": ({"levels": UNPROVEN}, 0.2, "load_crossover_vs_peak", ("unknown", "no-go"), ("INCONCLUSIVE", "NO-GO")),
    "max_temperature_median": ({"traffic_temperatures": [0.6]}, 0.55, "temperature_mix", ("borderline", "no-go"),
                               ("GO WITH LIMITS", "NO-GO")),
    "homogeneous_temperature_max": ({}, 0.1, "temperature_mix", ("go", "borderline"), ("GO", "GO WITH LIMITS")),
    "max_temperature_spread": ({"traffic_temperatures": [0.1, 0.4]}, 0.2, "temperature_mix", ("go", "borderline"),
                               ("GO", "GO WITH LIMITS")),
    "max_ttft_rise": ({}, 0.05, "ttft_rise", ("go", "borderline"), ("GO", "GO WITH LIMITS")),
    "max_load_temperature_gap": ({"load_temperature": 0.0}, 0.3, "load_temperature", ("borderline", "go"),
                                 ("GO WITH LIMITS", "GO")),
}


def test_every_threshold_has_a_case_and_a_report_parameter():
    assert set(CASES) == set(Thresholds.model_fields)
    for name, field in Thresholds.model_fields.items():
        assert ReportParams.model_fields[name].default == field.default, name
    for model in STEP_MODELS.values():  # one name means one thing in every step that declares it
        for name in set(model.model_fields) & set(Thresholds.model_fields):
            assert model.model_fields[name].default == Thresholds.model_fields[name].default, (model.step, name)
            assert model.model_fields[name].description == Thresholds.model_fields[name].description, (model.step, name)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_threshold_changes_the_decision(tmp_path, name):
    base, value, rule, (r0, r1), (v0, v1) = CASES[name]
    res = load(base.get("levels", WIN), error_rate=base.get("error_rate", 0.0), temperature=base.get("load_temperature", 0.2))
    run = make_run(tmp_path, sweep_result=sweep(), load_result=res)
    situation = {"run_dir": str(run.path), "expected_peak_concurrency": 4,
                 "traffic_temperatures": base.get("traffic_temperatures", [])}

    def verdicts(**over):
        p = ReportParams(**situation, **over)
        d = decide.decide_for(_memory(evidence.gather(run, p.production_temperature, params=p)), p)
        return d, {r.name: r for r in d.rules}

    d0, rules0 = verdicts()
    d1, rules1 = verdicts(**{name: value})
    assert (rules0[rule].verdict, rules1[rule].verdict) == (r0, r1)
    assert (d0.verdict, d1.verdict) == (v0, v1)
    assert d1.inputs["thresholds"][name] == value and d0.inputs["thresholds"][name] == getattr(Thresholds(), name)


def test_thresholds_in_a_profile_reach_the_report_step():
    profile = {name: CASES[name][1] for name in CASES}
    per_step = resolve_parameters(profile, {}, ["40_sweep", "20_memory", "90_report"])
    p = ReportParams(**per_step["90_report"])
    assert p.thresholds().model_dump() == profile
    assert per_step["40_sweep"]["acceptance_no_go_below"] == 0.8  # the step's own finding uses the same value
    assert per_step["20_memory"]["max_draft_share"] == 0.05


def test_decide_rejects_an_unknown_threshold(tmp_path):
    ev = evidence.gather(make_run(tmp_path))
    with pytest.raises(ValueError, match="no_such_threshold"):
        decide.decide(ev, production_temperature=0.2, no_such_threshold=1.0)
