"""The speedup predictor: E(k), the optimal k, a > c, the crossover under compute-bound batching."""

import math

import pytest

from playbook.helpers import (
    acceptance_math,
    calibration,
    catalog_predict,
    predict,
    prediction_check,
    step_model,
)
from playbook.helpers.errors import ParameterError
from playbook.helpers.schemas.predict import StepTimeModel


@pytest.mark.parametrize("a, k", [(0.0, 4), (0.5, 1), (0.7, 4), (0.9, 8), (0.3, 0)])
def test_expected_tokens_matches_series(a, k):
    # E(k) is the expected accepted prefix + 1: sum over i=0..k of a^i
    assert acceptance_math.expected_tokens(a, k) == pytest.approx(sum(a**i for i in range(k + 1)))


def test_expected_tokens_edges():
    assert acceptance_math.expected_tokens(1.0, 4) == 5
    assert acceptance_math.expected_tokens(0.0, 4) == 1
    with pytest.raises(ParameterError):
        acceptance_math.expected_tokens(1.2, 4)


def test_positions_give_same_e_as_iid():
    a, k = 0.6, 5
    positions = [a ** (i + 1) for i in range(k)]
    assert acceptance_math.expected_tokens_from_positions(positions) == pytest.approx(acceptance_math.expected_tokens(a, k))
    assert acceptance_math.iid_acceptance(acceptance_math.expected_tokens(a, k), k) == pytest.approx(a, abs=1e-6)


def test_positions_extend_geometrically_and_truncate():
    p = [0.8, 0.6]
    assert acceptance_math.positions_for_k(p, 1) == [0.8]
    ext = acceptance_math.positions_for_k(p, 4)
    assert ext[2] == pytest.approx(0.6 * 0.75) and ext[3] == pytest.approx(0.6 * 0.75**2)


def test_simple_speedup_formula():
    a, k, c = 0.8, 4, 0.1
    assert acceptance_math.simple_speedup(a, k, c) == pytest.approx(acceptance_math.expected_tokens(a, k) / (k * c + 1))


@pytest.mark.parametrize("a, c", [(0.8, 0.05), (0.6, 0.1), (0.9, 0.2), (0.5, 0.3)])
def test_optimal_k_maximises(a, c):
    k = acceptance_math.optimal_k(a, c, k_max=16)
    best = max(acceptance_math.simple_speedup(a, kk, c) for kk in range(1, 17))
    assert acceptance_math.simple_speedup(a, k, c) == pytest.approx(best)


@pytest.mark.parametrize("a, c", [(0.3, 0.3), (0.2, 0.5), (0.1, 0.4)])
def test_no_gain_unless_a_beats_c(a, c):
    assert not acceptance_math.gain_possible(a, c)
    assert acceptance_math.optimal_k(a, c) == 0
    assert all(acceptance_math.simple_speedup(a, k, c) <= 1 for k in range(1, 17))


def test_gain_when_a_beats_c():
    assert acceptance_math.gain_possible(0.6, 0.1)
    assert acceptance_math.optimal_k(0.6, 0.1) >= 1


def test_optimal_k_grows_with_acceptance():
    ks = [acceptance_math.optimal_k(a, 0.05) for a in (0.5, 0.7, 0.9)]
    assert ks == sorted(ks) and ks[0] < ks[-1]


def _gpu_like():
    # memory-bound at small batch: 20 ms of weights, 0.02 ms per token of compute, 0.5 ms overhead
    target = StepTimeModel(name="t", source="given", overhead_ms=0.5, weights_ms=20.0, compute_ms_per_token=0.02)
    draft = StepTimeModel(name="d", source="given", overhead_ms=0.3, weights_ms=0.5, compute_ms_per_token=0.0005)
    return target, draft


def test_crossover_exists_when_compute_bound():
    # additive steps (not a roofline max): verification's extra batch*k tokens cost from batch 1 on,
    # so the speedup falls all along and crosses 1 where they outweigh the accepted tokens
    target, draft = _gpu_like()
    pred = predict.predict(target_step=target, draft_step=draft, num_speculative_tokens=4, acceptance=0.8,
                           batch_sizes=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096], context_tokens=0)
    assert pred.points[0].speedup > 1.5
    assert pred.crossover_batch_size is not None
    speedups = [p.speedup for p in pred.points]
    assert all(a > b for a, b in zip(speedups, speedups[1:], strict=False))  # falls from batch 1 on, no flat part
    cross = pred.crossover_batch_size
    assert all(p.speedup >= 1 for p in pred.points if p.batch_size < cross)
    assert all(p.speedup < 1 for p in pred.points if p.batch_size >= cross)
    assert pred.optimal_k_by_batch_size[1] > pred.optimal_k_by_batch_size[4096]


def test_no_crossover_when_memory_bound_in_range():
    target, draft = _gpu_like()
    pred = predict.predict(target_step=target, draft_step=draft, num_speculative_tokens=4, acceptance=0.8, batch_sizes=[1, 2, 4])
    assert pred.crossover_batch_size is None
    assert all(p.speedup > 1 for p in pred.points)


def test_cpu_like_speculation_never_wins():
    # on a CPU a pass costs per token: verifying k+1 tokens costs about k+1 steps
    target = StepTimeModel(name="t", source="fitted", overhead_ms=1.0, compute_ms_per_token=4.0)
    draft = StepTimeModel(name="d", source="fitted", overhead_ms=0.5, compute_ms_per_token=0.5)
    pred = predict.predict(target_step=target, draft_step=draft, num_speculative_tokens=4, acceptance=0.6, batch_sizes=[1, 4, 16])
    assert pred.points[0].speedup < 1 and pred.crossover_batch_size == 1


def test_tpot_consistency():
    target, draft = _gpu_like()
    pred = predict.predict(target_step=target, draft_step=draft, num_speculative_tokens=3, acceptance=0.7, batch_sizes=[1, 8])
    for p in pred.points:
        assert p.speedup == pytest.approx(p.tpot_baseline_ms / p.tpot_spec_ms)
        drafting = predict.drafting_ms(draft, p.batch_size, 3, 512)
        assert p.tpot_spec_ms == pytest.approx((drafting + p.target_step_ms) / acceptance_math.expected_tokens(0.7, 3))
        assert drafting == pytest.approx(3 * p.draft_step_ms)  # a chain: k passes of one token per sequence


def test_fit_step_model_recovers_line():
    pts = [(n, 3.0 + 0.5 * n) for n in (10, 20, 40, 80)]
    m = step_model.fit_step_model("x", pts)
    assert m.overhead_ms == pytest.approx(3.0) and m.compute_ms_per_token == pytest.approx(0.5)


def test_calibration_reproduces_single_request_measurements():
    e, k = 2.5, 4
    target, draft = calibration.calibrate_from_measurements(
        tpot_baseline_ms=5.0, tpot_spec_ms=6.0, expected_tokens_per_step=e, num_speculative_tokens=k,
        prefill_points=[(10, 12.0), (50, 32.0), (90, 52.0)], draft_param_ratio=0.1)
    assert step_model.step_ms(target, 1) == pytest.approx(5.0)
    assert target.compute_ms_per_token == pytest.approx(0.5)
    spec_c1 = (predict.drafting_ms(draft, 1, k, 0) + step_model.step_ms(target, k + 1)) / e
    assert spec_c1 == pytest.approx(6.0)


def test_run_calibration_says_when_the_speculative_tpot_is_too_fast_for_the_acceptance():
    """The run's own fit (calibrated_prediction's): a speculative TPOT below what verifying k+1 tokens costs at E
    leaves no time for the draft; the note travels with the prediction (the report shows fit_notes)."""
    target, draft = calibration.calibrate_from_measurements(
        tpot_baseline_ms=5.0, tpot_spec_ms=1.0, expected_tokens_per_step=1.5, num_speculative_tokens=4,
        prefill_points=[(10, 12.0), (50, 32.0), (90, 52.0)])
    assert draft.overhead_ms == 0 and draft.compute_ms_per_token == 0
    assert len(draft.fit_notes) == 1 and "the draft's cost fitted as 0" in draft.fit_notes[0]
    pred = predict.predict(target_step=target, draft_step=draft, num_speculative_tokens=4, acceptance_length=1.5,
                           batch_sizes=[1])
    assert predict.fit_notes(pred) == draft.fit_notes and draft.fit_notes[0] in pred.assumptions
    _, ok = calibration.calibrate_from_measurements(tpot_baseline_ms=5.0, tpot_spec_ms=6.0, expected_tokens_per_step=2.5,
                                                num_speculative_tokens=4, prefill_points=[(10, 12.0), (50, 32.0)])
    assert ok.fit_notes == []


def test_report_shows_what_the_fit_could_not_explain(tmp_path):
    from playbook.helpers import sections
    from playbook.helpers.artifacts import RunDir
    from playbook.helpers.schemas.decision import Evidence

    target, draft = calibration.calibrate_from_measurements(
        tpot_baseline_ms=5.0, tpot_spec_ms=1.0, expected_tokens_per_step=1.5, num_speculative_tokens=4,
        prefill_points=[(10, 12.0), (50, 32.0)])
    pred = predict.predict(target_step=target, draft_step=draft, num_speculative_tokens=4, acceptance_length=1.5,
                           batch_sizes=[1, 2])
    html = sections.predicted_vs_measured(pred, None, Evidence(), RunDir(tmp_path))
    assert "could not explain the measurements" in html and "the draft&#x27;s cost fitted as 0" in html
    pred.draft_step = pred.draft_step.model_copy(update={"fit_notes": []})
    assert "could not explain" not in sections.predicted_vs_measured(pred, None, Evidence(), RunDir(tmp_path))


def test_per_batch_size_schedule_is_valid_for_vllm():
    # vLLM's own validator, loaded from its file (importing the vllm package takes seconds)
    import importlib.util

    origin = importlib.util.find_spec("vllm").submodule_search_locations[0]
    spec = importlib.util.spec_from_file_location("_sd_utils", f"{origin}/v1/spec_decode/dynamic/utils.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    build_dynamic_sd_schedule_lookup = mod.build_dynamic_sd_schedule_lookup

    sched = predict.per_batch_size_schedule({1: 4, 2: 4, 4: 3, 8: 0, 16: 0}, max_batch_size=64)
    assert sched == [[1, 3, 4], [4, 7, 3], [8, 64, 0]]
    lookup = build_dynamic_sd_schedule_lookup(sched, 64, 4)
    assert lookup[1] == 4 and lookup[5] == 3 and lookup[64] == 0


def test_compare_errors():
    target, draft = _gpu_like()
    pred = predict.predict(target_step=target, draft_step=draft, num_speculative_tokens=4, acceptance=0.8, batch_sizes=[1, 4, 16])
    measured = {1: pred.points[0].speedup * 1.1, 4: pred.points[1].speedup}
    chk = prediction_check.compare(pred, measured)
    assert chk.relative_error[1] == pytest.approx(0.0, abs=1e-9)
    assert chk.mean_abs_relative_error == pytest.approx((abs(1 / 1.1 - 1)) / 2)
    assert not math.isnan(chk.mean_abs_relative_error)
    # concurrency 1 is the run's calibration point: the held-out error leaves it out, and the sentence says it first
    assert chk.held_out_levels == [4] and chk.held_out_error == pytest.approx(0.0, abs=1e-9)
    assert prediction_check.error_sentence(chk).startswith("0% on average at the loads it was not calibrated on (4); 5% counting")
    only_c1 = prediction_check.compare(pred, {1: pred.points[0].speedup})
    assert only_c1.held_out_error is None and "where it is calibrated (no other level measured)" in \
        prediction_check.error_sentence(only_c1)
    assert prediction_check.prediction_summary(pred, chk)["held_out_error"] == 0.0


def test_the_held_out_error_says_whether_it_is_inside_the_measured_intervals_and_which_way_it_errs():
    target, draft = _gpu_like()
    pred = predict.predict(target_step=target, draft_step=draft, num_speculative_tokens=4, acceptance=0.8,
                           batch_sizes=[1, 4, 8, 16])
    s = {p.batch_size: p.speedup for p in pred.points}
    # a load test that measured less than predicted at every held-out level, two of three inside its interval
    measured = {1: s[1], 4: s[4] / 1.2, 8: s[8] / 1.2, 16: s[16] / 1.5}
    intervals = {1: (s[1] * 0.8, s[1] * 1.2), 4: (s[4] / 1.5, s[4] * 1.01), 8: (s[8] / 1.4, s[8]),
                 16: (s[16] / 2, s[16] / 1.2)}
    chk = prediction_check.compare(pred, measured, intervals=intervals)
    assert prediction_check.held_out_agreement(chk) == ("inside the load test's 95% interval at 2 of 3; above the measured "
                                               "speedup at every one (too optimistic)")
    assert "; there, inside the load test's 95% interval at 2 of 3" in prediction_check.error_sentence(chk)
    assert prediction_check.prediction_summary(pred, chk)["held_out_agreement"].startswith("inside")
    # one level measured above the prediction: no bias is claimed; no intervals given: none is counted
    mixed = prediction_check.compare(pred, {**measured, 8: s[8] * 1.1})
    assert prediction_check.held_out_agreement(mixed) == ""
    low = prediction_check.compare(pred, {1: s[1], 4: s[4] * 1.1, 8: s[8] * 1.1})
    assert prediction_check.held_out_agreement(low) == "below the measured speedup at every one (too pessimistic)"


def test_roofline_from_catalog():
    from playbook.helpers import gpus, models

    gpu = gpus.get_gpu("H100-SXM")
    t = catalog_predict.roofline_from_specs(models.resolve("Llama-3.1-70B"), gpu, name="t", tp=2)
    d = catalog_predict.roofline_from_specs(models.resolve("Llama-3.2-1B"), gpu, name="d", tp=2)
    assert t.weights_ms > 10 * d.weights_ms  # 70B vs 1B weights
    assert step_model.step_ms(t, 1) < step_model.step_ms(t, 4096)  # compute-bound eventually


def test_fit_step_model_resists_stalled_points():
    pts = [(n, 3.0 + 0.5 * n) for n in (10, 20, 30, 40, 60, 80, 100)] + [(50, 400.0)]  # one request stalled
    m = step_model.fit_step_model("x", pts)
    assert m.compute_ms_per_token == pytest.approx(0.5, rel=0.05)


def test_calibration_prefers_baseline_decode_slope():
    target, _ = calibration.calibrate_from_measurements(
        tpot_baseline_ms=5.0, tpot_spec_ms=None, expected_tokens_per_step=2.0, num_speculative_tokens=4,
        prefill_points=[(10, 12.0), (90, 14.0)], baseline_points=[(1, 5.0), (2, 5.5), (4, 6.5), (8, 8.5)])
    assert target.compute_ms_per_token == pytest.approx(0.5)  # from decode, not the flatter prefill slope
    assert step_model.step_ms(target, 5) == pytest.approx(4.5 + 2.5)  # verifying k+1=5 tokens


def test_draft_tokens_per_step_chain_and_tree():
    # k passes of one token per sequence (a chain), of topk per sequence for a tree
    assert predict.draft_tokens_per_step(1, 3) == 3
    assert predict.draft_tokens_per_step(32, 3) == 96
    assert predict.draft_tokens_per_step(8, 5, verify=8, width=4) == 8 * 5 * 4


def test_a_tree_costs_more_at_batch_than_a_chain():
    target, draft = _gpu_like()
    kw = dict(target_step=target, draft_step=draft, num_speculative_tokens=5, acceptance_length=3.0,
              batch_sizes=[1, 64], engine_step_ms=1.2, spec_step_ms=0.6)
    chain = predict.predict(**kw)
    tree = predict.predict(**kw, verify_tokens_per_seq=8, tree_width=4)
    assert tree.points[1].speedup < chain.points[1].speedup
    drop = lambda p: p.points[1].speedup / p.points[0].speedup  # noqa: E731
    assert drop(tree) < drop(chain)


def test_per_position_acceptance_between_swept_temperatures_is_interpolated():
    swept = {0.0: [0.9, 0.8, 0.6], 0.4: [0.7, 0.5, 0.4, 0.3], 1.0: [0.5, 0.3, 0.2]}
    assert calibration.positions_at_temperature(swept, 0.2) == pytest.approx([0.8, 0.65, 0.5])  # not T=0's (nearest)
    assert calibration.positions_at_temperature(swept, 0.0) == pytest.approx([0.9, 0.8, 0.6])
    assert calibration.positions_at_temperature(swept, 1.5) == pytest.approx([0.5, 0.3, 0.2])  # clamped
    assert calibration.positions_at_temperature({}, 0.2) == []


def test_calibration_with_a_proposal_rate_reproduces_the_measurement_and_the_flatter_curve():
    """An n-gram proposing on 40% of steps, measured at concurrency 1 (TPOT 5.0 ms without, 4.2 ms with): the fit
    charges the verification of 1 + 0.4 k tokens over 1 + 0.4 (E - 1) tokens per step, and so reproduces the
    measured TPOT; fitted as if it proposed every step it would read a cheaper lookup and the wrong slope."""
    e, k, q = 2.5, 4, 0.4
    pts = [(1, 5.0), (4, 5.6), (16, 8.0)]
    target, lookup = calibration.calibrate_from_measurements(
        tpot_baseline_ms=5.0, tpot_spec_ms=4.2, expected_tokens_per_step=e, num_speculative_tokens=k,
        baseline_points=pts, proposal_rate=q)
    assert (predict.drafting_ms(lookup, 1, k, 0) + step_model.step_ms(target, 1 + q * k)) / (1 + q * (e - 1)) \
        == pytest.approx(4.2)
    pred = predict.predict(target_step=target, draft_step=lookup, num_speculative_tokens=k, acceptance_length=e,
                           batch_sizes=[1, 16], method="ngram", proposal_rate=q)
    assert pred.points[0].tpot_spec_ms == pytest.approx(4.2)


def test_the_sweep_measures_the_share_of_steps_with_a_proposal():
    from playbook.helpers.metrics import SpecDelta
    from playbook.helpers.sweep import make_point, proposal_rate

    records = [{"status": "ok", "output_tokens": 101}, {"status": "ok", "output_tokens": 61},
               {"status": "error", "output_tokens": None}]
    delta = SpecDelta(available=True, drafts=40, draft_tokens=160, accepted=60)
    # 160 tokens after the first ones, 60 of them accepted drafts: 100 steps, 40 with a proposal
    assert proposal_rate(delta, records) == pytest.approx(0.4)
    assert make_point(0.0, "all", delta, records).proposal_rate == pytest.approx(0.4)
    assert proposal_rate(SpecDelta(available=True, drafts=500, accepted=60), records) == 1.0  # capped
    assert proposal_rate(SpecDelta(available=False), records) is None
    assert proposal_rate(SpecDelta(available=True, source="legacy_gauge", legacy_rate=0.5), records) is None


def test_a_run_s_ngram_prediction_uses_its_measured_proposal_rate():
    from playbook.helpers.schemas.decision import Evidence

    ev = Evidence(method="ngram", num_speculative_tokens=4, tpot_c1_baseline_ms=5.0, tpot_c1_spec_ms=4.2,
                  acceptance_per_position=[0.8, 0.6, 0.4, 0.2], prefill_points=[(10, 12.0), (50, 32.0)],
                  proposal_rate=0.4)
    pred = calibration.calibrated_prediction(ev, batch_sizes=[1, 16])
    assert pred.proposal_rate == pytest.approx(0.4) and pred.points[0].tpot_spec_ms == pytest.approx(4.2)
    # without a measured rate (q = 1) the lookup's fitted time still reproduces the measured TPOT at concurrency 1
    # (it was cut to its overhead before, 3.53 ms here), and the curve is steeper than with q = 0.4
    every = calibration.calibrated_prediction(ev.model_copy(update={"proposal_rate": None}), batch_sizes=[1, 16])
    assert every.points[0].tpot_spec_ms == pytest.approx(4.2) and every.points[1].speedup < pred.points[1].speedup
    # a draft model proposes every step: a measured rate is not applied to it
    assert calibration.calibrated_prediction(ev.model_copy(update={"method": "draft_model"}), batch_sizes=[1]).proposal_rate == 1


def test_the_report_shows_how_often_an_ngram_proposed(tmp_path):
    from playbook.helpers import sections
    from playbook.helpers.artifacts import RunDir
    from playbook.helpers.schemas.decision import Evidence
    from playbook.helpers.schemas.sweep import SweepPoint, SweepResult

    run = RunDir(tmp_path / "run")
    pts = [SweepPoint(temperature=t, acceptance_rate=0.6, mean_acceptance_length=2.4, proposal_rate=q, requests=8,
                      per_position=[0.7, 0.5, 0.4, 0.3])
           for t, q in ((0.0, 0.42), (0.7, 0.35))]
    run.write_json("40_sweep.json", SweepResult(method="ngram", num_speculative_tokens=4, temperatures=pts))
    ev = Evidence(acceptance_production=0.6, acceptance_temperature=0.0, acceptance_by_temperature={0.0: 0.6, 0.7: 0.6})
    html = sections.sweep(run, ev)
    assert "steps with a proposal" in html and "tokens per step with a proposal" in html and "0.42" in html
    for p in pts:
        p.proposal_rate = 1.0  # a draft model: no such column
    run.write_json("40_sweep.json", SweepResult(method="draft_model", num_speculative_tokens=4, temperatures=pts))
    assert "steps with a proposal" not in sections.sweep(run, ev)


def test_the_finding_says_what_a_speculative_step_must_yield_to_break_even():
    """Why speculation wins or loses, in step costs: break-even tokens per step = E / speedup, and the verification
    pass over k+1 tokens against the baseline's pass. Memory-bound (a GPU at batch 1: the pass costs about the same
    over 5 tokens as over 1) breaks even on little; compute-bound (this AVX2 CPU on 2026-12-07: 3.2 ms fixed + 11.8 ms
    per token, fitted from a run) needs more tokens per step than k=4 drafts can give at acceptance 0.61."""
    draft = StepTimeModel(name="d", source="given", overhead_ms=1.1, compute_ms_per_token=0.0)
    for target, cheap in ((StepTimeModel(name="t", source="given", overhead_ms=12.0, compute_ms_per_token=0.05), True),
                          (StepTimeModel(name="t", source="given", overhead_ms=3.2, compute_ms_per_token=11.8), False)):
        pred = predict.predict(target_step=target, draft_step=draft, num_speculative_tokens=4, acceptance_length=3.43,
                       batch_sizes=[1, 8])
        p1 = pred.points[0]
        need = pred.expected_tokens_per_step / p1.speedup
        assert (need < pred.expected_tokens_per_step) is cheap and (p1.speedup > 1) is cheap
        ratio = p1.target_step_ms / p1.tpot_baseline_ms
        words = predict.break_even_words(pred)
        assert words == (f"at batch 1 a speculative step must yield {need:.2f} tokens to break even (its verification pass "
                         f"over 5 tokens per sequence costs {ratio:.2f}x the baseline's pass) and yields 3.43")
        assert words in pred.finding
        assert (ratio < 1.1) is cheap
