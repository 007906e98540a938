"""Typical decode steps and their growth with the sequences in flight, from streamed records; and how the run's
prediction uses them (helpers/step_growth.py, calibration.calibrated_prediction)."""

from __future__ import annotations

import pytest

from playbook.helpers import calibration, predict, step_growth
from playbook.helpers.errors import ParameterError
from playbook.helpers.schemas.decision import Evidence, LoadLevel
from playbook.helpers.schemas.predict import InflightStep, StepGrowth
from tests.support.streams import stream_record as _stream


def test_chunk_gaps_are_rebuilt_from_per_token_itl():
    rec = _stream("p/a-0", "spec@c1", 0.0, 10.0, [(6.0, 3), (5.0, 1), (2.5, 2)])
    assert step_growth.chunk_gaps(rec) == pytest.approx([6.0, 5.0, 2.5], abs=1e-5)
    assert step_growth.chunk_gaps({"itl_ms": []}) == []


def test_typical_steps_are_per_level_medians_of_the_streams_that_decoded_as_they_streamed():
    recs = [_stream(f"baseline@c4/x/r-{i}", "baseline@c4/x", 0.0, 5.0, [(8.0, 1)] * 20 + [(40.0, 1)]) for i in range(2)]
    recs.append(_stream("baseline@c4/x/r-9", "baseline@c4/x", 0.0, 5.0, [(0.01, 1)] * 30, burst=True))
    recs.append(_stream("baseline@c8/x/r-0", "baseline@c8/x", 0.0, 5.0, [(9.0, 1)] * 5))  # too few gaps
    recs.append(_stream("spec@c4/x/r-0", "spec@c4/x", 0.0, 5.0, [(30.0, 3)] * 30))
    # the prefill outlier (40 ms) does not move the median; a burst-delivered stream is left out
    assert step_growth.typical_steps(recs, "baseline") == {4: pytest.approx(8.0, abs=1e-5)}
    assert step_growth.typical_steps(recs, "spec") == {4: pytest.approx(30.0, abs=1e-5)}


def test_steps_are_counted_against_the_sequences_decoding_at_the_time():
    # a decodes alone for 25 chunks of 10 ms, then b decodes beside it and each step takes 14 ms; b's prompt is
    # prefilled during a's 25th step, which is left out (it did a prefill's work beside a's decode)
    a = _stream("sweep:s@T0/r-0", "sweep:s@T0", 0.0, 0.0, [(10.0, 2)] * 25 + [(14.0, 2)] * 25)
    b = _stream("sweep:s@T0/r-1", "sweep:s@T0", 0.244, 5.0, [(14.0, 2)] * 25)
    levels = step_growth.steps_by_inflight([a, b])
    assert [(x.in_flight, x.step_ms, x.chunks) for x in levels] == [(1, pytest.approx(10.0, abs=1e-5), 24),
                                                                   (2, pytest.approx(14.0, abs=1e-5), 50)]
    g = step_growth.growth(levels, "test")
    assert g.in_flight == 2 and g.share == pytest.approx(0.4, abs=1e-5)
    # another run of the same phase has its own clock: it does not count as in flight beside the first
    c = _stream("sweep:s@T0/q-0", "sweep:s@T0", 0.0, 0.0, [(10.0, 1)] * 25)
    assert {x.in_flight for x in step_growth.steps_by_inflight([a, c])} == {1}


def test_no_growth_without_enough_steps_below_and_at_the_count_measured_most():
    few = [InflightStep(in_flight=1, step_ms=10.0, chunks=5), InflightStep(in_flight=4, step_ms=19.0, chunks=900)]
    assert step_growth.growth(few, "x") is None
    alone = [InflightStep(in_flight=1, step_ms=10.0, chunks=50)]
    assert step_growth.growth(alone, "x") is None
    thin = [InflightStep(in_flight=1, step_ms=10.0, chunks=50), InflightStep(in_flight=4, step_ms=19.0, chunks=19)]
    assert step_growth.growth(thin, "x") is None


def test_the_growth_is_a_line_through_every_count_weighted_by_its_steps():
    # too few steps with one sequence alone for a median of their own (a sweep's phase tails), but with the steps
    # at 2 and 3 the line still gives the growth: 3 ms per further sequence on a 10 ms step
    sweep = [InflightStep(in_flight=1, step_ms=10.0, chunks=19), InflightStep(in_flight=2, step_ms=13.0, chunks=66),
             InflightStep(in_flight=3, step_ms=16.0, chunks=104), InflightStep(in_flight=4, step_ms=19.0, chunks=692)]
    g = step_growth.growth(sweep, "x")
    assert g.in_flight == 4 and g.share == pytest.approx(0.3)
    # a count with a few steps only (a noisy median) barely moves it; one under MIN_LEVEL_CHUNKS not at all
    noisy = sweep + [InflightStep(in_flight=5, step_ms=40.0, chunks=step_growth.MIN_LEVEL_CHUNKS)]
    assert step_growth.growth(noisy, "x").share == pytest.approx(0.3, abs=0.05)
    ignored = sweep + [InflightStep(in_flight=5, step_ms=40.0, chunks=step_growth.MIN_LEVEL_CHUNKS - 1)]
    assert step_growth.growth(ignored, "x").share == pytest.approx(0.3)


def test_what_both_tpots_pay_beyond_their_steps_is_added_to_both_and_interpolated():
    target = predict.StepTimeModel(name="t", source="given", overhead_ms=10.0, compute_ms_per_token=0.1)
    draft = predict.StepTimeModel(name="d", source="given", overhead_ms=1.0, compute_ms_per_token=0.01)
    kw = dict(target_step=target, draft_step=draft, num_speculative_tokens=3, acceptance=0.7, batch_sizes=[1, 2, 4, 8],
              context_tokens=0)
    bare = predict.predict(**kw)
    shared = predict.predict(**kw, shared_tpot_ms={1: 0.0, 4: 3.0})
    extra = {1: 0.0, 2: 1.0, 4: 3.0, 8: 3.0}  # linear between 1 and 4, held beyond
    for p, q in zip(bare.points, shared.points, strict=True):
        assert q.tpot_baseline_ms == pytest.approx(p.tpot_baseline_ms + extra[p.batch_size])
        assert q.tpot_spec_ms == pytest.approx(p.tpot_spec_ms + extra[p.batch_size])
    assert shared.points[2].speedup < bare.points[2].speedup  # the same time on a smaller TPOT weighs more
    assert any("other requests' prefills" in a for a in shared.assumptions)


def _run_evidence(**update) -> Evidence:
    levels = [LoadLevel(concurrency=c, speedup=s, tpot_p50_baseline_ms=b, tpot_p50_spec_ms=sp, step_p50_baseline_ms=t)
              for c, s, b, sp, t in [(1, 1.72, 8.0, 4.66, 7.6), (4, 1.18, 8.55, 7.23, 7.8), (8, 1.07, 9.4, 8.75, 8.8),
                                     (16, 0.97, 13.75, 14.2, 13.0)]]
    ev = Evidence(method="draft_model", num_speculative_tokens=4, tpot_c1_baseline_ms=8.0, tpot_c1_spec_ms=4.66,
                  acceptance_per_position=[0.9, 0.8, 0.7, 0.6], load_kind="concurrency", load_levels=levels,
                  draft_param_ratio=0.016)
    return ev.model_copy(update=update)


def test_the_run_s_prediction_charges_the_sweep_s_per_sequence_growth_and_the_baseline_s_shared_time():
    growth = StepGrowth(source="sweep", levels=[], in_flight=4, share=0.144)
    ev = _run_evidence(spec_step_growth=growth)
    pred = calibration.calibrated_prediction(ev, batch_sizes=[1, 4, 8, 16])
    plain = calibration.calibrated_prediction(_run_evidence(), batch_sizes=[1, 4, 8, 16])
    # concurrency 1 is reproduced either way; the growth the sweep measured makes batches costlier
    assert pred.points[0].speedup == pytest.approx(8.0 / 4.66) and plain.points[0].speedup == pytest.approx(8.0 / 4.66)
    # a draft model's unexplained growth is charged per drafted token (so it grows with k)
    assert pred.draft_step.compute_ms_per_token > plain.draft_step.compute_ms_per_token + 0.05
    assert pred.spec_seq_ms == 0 and plain.spec_seq_ms == 0
    assert all(p.speedup < q.speedup for p, q in zip(pred.points[1:], plain.points[1:], strict=True))
    # where the baseline was measured, its TPOT is the measurement: only the speculative TPOT is predicted there
    assert [p.tpot_baseline_ms for p in pred.points] == [8.0, 8.55, 9.4, 13.75]
    # the baseline's TPOT beyond its typical step is charged to both TPOTs, level by level
    assert pred.shared_tpot_ms == {1: pytest.approx(0.4), 4: pytest.approx(0.75), 8: pytest.approx(0.6),
                                   16: pytest.approx(0.75)}
    assert any("grew by 14.4% of a single sequence's" in a and "ms per drafted token" in a for a in pred.assumptions)
    assert not any("no growth of the speculative step" in a for a in pred.assumptions)
    assert any("no growth of the speculative step" in a for a in plain.assumptions)  # what it leaves out, said
    # a lookup has no draft passes: the same growth is charged per sequence and step
    lookup = calibration.calibrated_prediction(_run_evidence(spec_step_growth=growth, method="ngram", proposal_rate=0.5),
                                           batch_sizes=[1, 4])
    assert lookup.spec_seq_ms > 0 and lookup.points[0].tpot_spec_ms == pytest.approx(4.66)
    assert any("charged to every step" in a for a in lookup.assumptions)
    # a growth that verifying and drafting explain adds nothing, and says so
    flat = calibration.calibrated_prediction(_run_evidence(spec_step_growth=growth.model_copy(update={"share": 0.01})),
                                         batch_sizes=[1, 4])
    assert flat.spec_seq_ms == 0 and any("explain it all" in a for a in flat.assumptions)
    # a level the load test excluded (burst-delivered streams) lends neither its TPOT nor its step
    burst = [x.model_copy(update={"status": "excluded", "tpot_p50_baseline_ms": 0.5}) if x.concurrency == 8 else x
             for x in ev.load_levels]
    excluded = calibration.calibrated_prediction(_run_evidence(spec_step_growth=growth, load_levels=burst),
                                             batch_sizes=[1, 4, 8, 16])
    assert 8 not in excluded.shared_tpot_ms and excluded.points[2].tpot_baseline_ms > 5
    # without streamed steps (old runs, unstreamed endpoints) the fit is the TPOT one, nothing shared
    old = _run_evidence(load_levels=[x.model_copy(update={"step_p50_baseline_ms": None}) for x in ev.load_levels])
    assert calibration.calibrated_prediction(old, batch_sizes=[1, 4]).shared_tpot_ms == {}


def test_another_k_is_predicted_with_every_cost_the_run_s_fit_found():
    growth = StepGrowth(source="sweep", levels=[], in_flight=4, share=0.144)
    pred = calibration.calibrated_prediction(_run_evidence(spec_step_growth=growth, method="ngram", proposal_rate=0.5),
                                         batch_sizes=[1, 4, 8, 16])
    assert pred.spec_seq_ms > 0 and pred.shared_tpot_ms and pred.baseline_tpot_ms
    # at its own k it is the same prediction
    same = predict.at_k(pred, pred.num_speculative_tokens)
    assert [p.tpot_spec_ms for p in same.points] == pytest.approx([p.tpot_spec_ms for p in pred.points])
    assert [p.tpot_baseline_ms for p in same.points] == [8.0, 8.55, 9.4, 13.75]  # the measured baseline, kept
    # at another k only k differs: the per-sequence, shared and proposal costs stay
    other = predict.at_k(pred, 2, [1, 4])
    full = predict.predict(target_step=pred.target_step, draft_step=pred.draft_step, num_speculative_tokens=2,
                           acceptance_per_position=pred.acceptance_per_position, batch_sizes=[1, 4], method="ngram",
                           spec_seq_ms=pred.spec_seq_ms, proposal_rate=0.5, shared_tpot_ms=pred.shared_tpot_ms,
                           baseline_tpot_ms=pred.baseline_tpot_ms, context_tokens=pred.context_tokens)
    assert [p.speedup for p in other.points] == pytest.approx([p.speedup for p in full.points])
    bare = predict.predict(target_step=pred.target_step, draft_step=pred.draft_step, num_speculative_tokens=2,
                           acceptance_per_position=pred.acceptance_per_position, batch_sizes=[1, 4], method="ngram")
    assert other.points[1].speedup != pytest.approx(bare.points[1].speedup, rel=0.01)
    # a tree's k goes with its verified tokens: it is not re-predicted at another k
    tree = pred.model_copy(update={"verify_tokens_per_seq": 8, "tree_width": 4})
    with pytest.raises(ParameterError, match="tree"):
        predict.at_k(tree, 3)
