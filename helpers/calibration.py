"""Calibration on the node: fit the step model's constants to measured step times and TPOTs (GPU or the CPU
engine), and predict a run's speedup curve from its own single-request measurements before the load test."""

from __future__ import annotations

from collections.abc import Sequence

from .acceptance_math import expected_tokens, expected_tokens_from_positions, iid_acceptance, with_proposals
from .errors import ParameterError
from .predict import DEFAULT_BATCH_SIZES, LOOKUP_METHODS, draft_tokens_per_step, drafting_ms, predict
from .prediction_check import compare
from .schemas.predict import Prediction, PredictionCheck, StepTimeModel
from .stats import interpolate
from .step_model import fit_step_model, step_ms

# A fitted cost below zero by more than this share of the measured time it comes from is said, not only clamped.
CLAMP_TOLERANCE = 0.05


def _clamped(raw: float, measured_ms: float, what: str, why: str, notes: list[str]) -> float:
    """``raw`` floored at 0; when it was negative by more than :data:`CLAMP_TOLERANCE` of ``measured_ms`` the fit
    cannot explain the measurements, and ``notes`` gets a line naming the cost, the amount and the likely cause."""
    if raw < -CLAMP_TOLERANCE * measured_ms:
        notes.append(f"{what} fitted as 0 (the measurements give {raw:.2f} ms): {why}")
    return max(raw, 0.0)


SPEC_TOO_FAST = ("the speculative TPOT is lower than verifying these tokens at this acceptance allows, so the acceptance "
                 "given is too low for it (compare with the server's own mean acceptance length; for n-gram give "
                 "--proposal-rate) or the two TPOTs come from different loads or prompts")


def calibrate_from_measurements(
    *,
    tpot_baseline_ms: float,
    tpot_spec_ms: float | None,
    expected_tokens_per_step: float,
    num_speculative_tokens: int,
    prefill_points: Sequence[tuple[float, float]] = (),
    baseline_points: Sequence[tuple[float, float]] = (),
    draft_param_ratio: float | None = None,
    proposal_rate: float = 1.0,
    draft_seq_ms: float = 0.0,
) -> tuple[StepTimeModel, StepTimeModel | None]:
    """Fit target and draft step times from measured step times.

    - ``tpot_baseline_ms``: TPOT at concurrency 1 without speculation = one target step of 1 token.
    - ``baseline_points``: (batch size, baseline TPOT ms) at several loads, when measured: the cost
      of one more token in a decode pass, sampling and output handling included. Preferred, because
      it is what verifying k+1 tokens per sequence costs on a CPU (no speculative number is used).
    - ``prefill_points``: (prompt tokens, TTFT ms) of lone requests otherwise: the slope is the
      compute cost of one more token in a pass (a lower bound: it leaves out per-sequence work).
    - ``tpot_spec_ms``: TPOT at concurrency 1 with speculation; with E(k) it gives the draft step:
      ``tpot_spec * E = k * t_draft + t_target(k+1)``.
    - ``draft_param_ratio``: draft/target parameters, to split the draft step into overhead and
      per-token cost (the draft's per-token cost scales with its size); default: same split as target.
    - ``proposal_rate`` q: a step proposes on a fraction q of steps (:func:`predict`); E(k) is then per proposal,
      a step yields 1 + q (E - 1) tokens and verifies 1 + q k.
    - ``draft_seq_ms``: what a draft pass costs per sequence beyond its parameters' share of the target's
      per-token cost, when measured at several sequences in flight (added to the draft's per-token cost).
    """
    k = num_speculative_tokens
    slope = 0.0
    if len({n for n, _ in baseline_points}) >= 2:
        slope = fit_step_model("decode", baseline_points).compute_ms_per_token
    elif len({n for n, _ in prefill_points}) >= 2:
        slope = fit_step_model("prefill", prefill_points).compute_ms_per_token
    slope = min(slope, tpot_baseline_ms)
    target = StepTimeModel(
        name="target", source="fitted", overhead_ms=tpot_baseline_ms - slope, compute_ms_per_token=slope
    )
    if tpot_spec_ms is None:
        return target, None
    per_step = with_proposals(expected_tokens_per_step, proposal_rate)
    notes: list[str] = []
    drafting = _clamped(tpot_spec_ms * per_step - step_ms(target, with_proposals(k + 1, proposal_rate)),  # all k passes
                        tpot_spec_ms * per_step, "the draft's cost", SPEC_TOO_FAST, notes)
    ratio = draft_param_ratio if draft_param_ratio is not None else 1.0
    tokens = draft_tokens_per_step(1, k)
    per_token = min(slope * ratio + draft_seq_ms, drafting / tokens)
    draft = StepTimeModel(
        name="draft", source="fitted", overhead_ms=(drafting - per_token * tokens) / max(k, 1),
        compute_ms_per_token=per_token, fit_notes=notes,
    )
    return target, draft


def _extras(model: StepTimeModel | None, tokens: float, kv_tokens: float, seqs: float) -> float:
    """The prior's terms a calibration keeps (KV read, attention, MoE experts), without fixed and per-token cost."""
    if model is None:
        return 0.0
    bare = model.model_copy(update={"overhead_ms": 0.0, "weights_ms": 0.0, "compute_ms_per_token": 0.0})
    return step_ms(bare, tokens, kv_tokens, seqs=seqs)


def calibrate_steps(
    *,
    num_speculative_tokens: int,
    expected_tokens_per_step: float,
    tpot_baseline_ms: float,
    tpot_spec_ms: float | None = None,
    concurrency: int | None = None,
    tpot_baseline_at_ms: float | None = None,
    tpot_spec_at_ms: float | None = None,
    context_tokens: float = 0.0,
    prior_target: StepTimeModel | None = None,
    prior_draft: StepTimeModel | None = None,
    proposal_rate: float = 1.0,
) -> tuple[StepTimeModel, StepTimeModel | None]:
    """Fit the additive model's constants to a node's own measured TPOTs (GPU or the CPU engine).

    Measured: TPOT at concurrency 1 without (``tpot_baseline_ms``) and with speculation
    (``tpot_spec_ms``), optionally both again at a higher ``concurrency`` (``*_at_ms``), and the
    sweep's E(k). Unknowns: the target's fixed cost F and per-token cost c, the draft pass's fixed
    cost d0 and per-token cost d1 (the per-speculative-step overhead is folded into d0):

        base(b) = F + c*b + x(b)                      x: the prior's KV/attention/MoE terms (0 without one)
        spec(b) * E = F + c*b*(k+1) + x_v(b) + k*d0 + d1*draft_tokens_per_step(b, k)    (k*b for a chain)

    With one level only, c comes from ``prior_target`` (a GPU catalog model) and d1 from
    ``prior_draft`` (0 without). The engine step is in F and the per-speculative-step overhead in d0:
    the returned models predict with ``engine_step_ms=spec_step_ms=0``. With ``proposal_rate`` q < 1 (an
    n-gram, :func:`predict`) E is per proposal: a step yields 1 + q (E - 1) and verifies 1 + q k per sequence.
    """
    k, e = num_speculative_tokens, expected_tokens_per_step
    if k < 1 or e < 1:
        raise ParameterError(f"k={k}, E={e}", "give k >= 1 and the sweep's E(k) >= 1")
    e = with_proposals(e, proposal_rate)
    v = with_proposals(k + 1, proposal_rate)  # tokens verified per sequence (k+1 for a draft model)
    n, ctx = concurrency, context_tokens
    two = n is not None and n > 1 and tpot_baseline_at_ms is not None
    x1, xv1 = _extras(prior_target, 1, ctx, 1), _extras(prior_target, v, ctx, 1)
    t_notes: list[str] = []
    if two:
        xn = _extras(prior_target, n, n * ctx, n)
        c = _clamped((tpot_baseline_at_ms - xn - (tpot_baseline_ms - x1)) / (n - 1), tpot_baseline_ms / n,
                     "the target's cost per batched token",
                     f"the baseline TPOT at concurrency {n:g} is lower than at 1 (measure both at steady load)", t_notes)
    else:
        c = prior_target.compute_ms_per_token if prior_target is not None else 0.0
    f = _clamped(tpot_baseline_ms - x1 - c, tpot_baseline_ms, "the target's fixed cost per step",
                 "the GPU model's KV, attention and MoE terms alone exceed the measured baseline TPOT (check --gpu, "
                 "--tp and --context-length)", t_notes)
    base = prior_target if prior_target is not None else StepTimeModel(name="target", source="fitted", overhead_ms=0,
                                                                      compute_ms_per_token=0)
    target = base.model_copy(update={"name": "target", "source": "fitted", "overhead_ms": f, "weights_ms": 0.0,
                                     "compute_ms_per_token": c, "fit_notes": t_notes})
    if tpot_spec_ms is None:
        return target, None
    d_notes: list[str] = []
    d1 = prior_draft.compute_ms_per_token if prior_draft is not None else 0.0
    if two and tpot_spec_at_ms is not None:
        xvn = _extras(prior_target, n * v, n * ctx, n)
        dn = (tpot_spec_at_ms * e - f - c * n * v - xvn) / k
        d_1 = (tpot_spec_ms * e - f - c * v - xv1) / k
        d1 = _clamped((dn - d_1) * k / (draft_tokens_per_step(n, k) - draft_tokens_per_step(1, k)),
                      tpot_spec_at_ms * e / draft_tokens_per_step(n, k), "the draft's cost per token",
                      f"at concurrency {n:g} speculation gained more over its own concurrency 1 than the baseline "
                      "did, which verifying more tokens cannot do (measure both at the same loads)", d_notes)
    d0 = _clamped((tpot_spec_ms * e - f - c * v - xv1 - d1 * draft_tokens_per_step(1, k)) / k, tpot_spec_ms * e / k,
                  "the draft pass's fixed cost", SPEC_TOO_FAST, d_notes)
    draft = StepTimeModel(name="draft", source="fitted", overhead_ms=d0, compute_ms_per_token=d1, fit_notes=d_notes)
    return target, draft


def calibrated_curve(target_step: StepTimeModel, draft_step: StepTimeModel | None, *, num_speculative_tokens: int,
                     batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, context_tokens: float = 0.0,
                     measured: dict[int, float] | None = None, **acceptance) -> tuple[Prediction, PredictionCheck | None]:
    """The curve and crossover from calibrated steps (before the load test), and predicted vs
    measured speedups with their error when the load test's ``measured`` {concurrency: speedup} exist."""
    sizes = sorted(set(batch_sizes) | set(measured or {}))
    pred = predict(target_step=target_step, draft_step=draft_step, num_speculative_tokens=num_speculative_tokens,
                   batch_sizes=sizes, context_tokens=context_tokens, **acceptance)
    return pred, (compare(pred, measured) if measured else None)


def positions_at_temperature(by_temperature: dict[float, Sequence[float]], temp: float) -> list[float]:
    """Per-position acceptance at ``temp``, linear between the sweep's temperatures around it (as the
    headline's acceptance is; clamped outside the swept range)."""
    temps = sorted(t for t, v in by_temperature.items() if v)
    if not temps:
        return []
    n = min(len(by_temperature[t]) for t in temps)
    return [interpolate(temp, temps, [by_temperature[t][i] for t in temps]) for i in range(n)]


def calibrated_prediction(ev, *, batch_sizes: Sequence[int] | None = None, draft_param_ratio: float | None = None,
                          context_tokens: float = 512) -> Prediction | None:
    """Predict from a run's own single-request measurements (``Evidence``), or None if they are missing.

    Uses the sweep's per-position acceptance at the load test's temperature (what the prediction
    is checked against), TPOT at concurrency 1 with and without speculation, and the target's step
    time vs batch from the baseline at each load: its typical step (median chunk gap) where the streams give
    it, else its TPOT (else the prefill slope of lone requests). With typical steps, what the baseline's TPOT
    carries beyond them (other requests' prefills) is charged to both TPOTs at each load. The speculative
    step's own cost per sequence, beyond verifying and drafting, comes from the sweep's streams at several
    sequences in flight (step 40, before the load test; :mod:`step_growth`). Where the load test measured the
    baseline, its TPOT is taken as measured. No speculative measurement of the load test above concurrency 1 is
    used: the speculative TPOT there is what is predicted.
    """
    k = ev.num_speculative_tokens
    if not k or ev.tpot_c1_baseline_ms is None:
        return None
    temp = ev.load_temperature if ev.load_temperature is not None else ev.acceptance_temperature
    positions: list[float] = []
    if ev.per_position_by_temperature and temp is not None:
        positions = positions_at_temperature(ev.per_position_by_temperature, temp)
    positions = positions or ev.acceptance_per_position
    acceptance = None
    if not positions:
        acc = ev.load_levels[0].acceptance_rate if ev.load_levels else None
        if acc is None:
            return None
        acceptance = iid_acceptance(1 + acc * k, k)
    e = expected_tokens_from_positions(positions, k) if positions else expected_tokens(acceptance, k)
    draft_free = ev.method in LOOKUP_METHODS
    # a lookup proposes only where it finds a match: the measured share of steps with a proposal (sweep)
    q = ev.proposal_rate if draft_free and ev.proposal_rate else 1.0
    # levels the load test excluded (burst-delivered streams, client and server apart) have no TPOT to trust
    concurrency = [x for x in ev.load_levels
                   if ev.load_kind == "concurrency" and x.tpot_p50_baseline_ms and x.status == "ok"]
    base_1, spec_1 = ev.tpot_c1_baseline_ms, ev.tpot_c1_spec_ms
    base_points = [(x.concurrency, x.tpot_p50_baseline_ms) for x in concurrency]
    typical = {int(x.concurrency): x.step_p50_baseline_ms for x in concurrency if x.step_p50_baseline_ms}
    shared: dict[int, float] = {}
    if 1 in typical and (spec_1 is None or spec_1 > base_1 - typical[1]):
        shared = {int(x.concurrency): max(0.0, x.tpot_p50_baseline_ms - typical[int(x.concurrency)])
                  for x in concurrency if int(x.concurrency) in typical}
        base_1, base_points = typical[1], sorted(typical.items())
        spec_1 = spec_1 - shared[1] if spec_1 is not None else None
    ratio = draft_param_ratio if draft_param_ratio is not None else ev.draft_param_ratio

    def fit(spec_tpot: float | None, draft_seq_ms: float = 0.0) -> tuple[StepTimeModel, StepTimeModel | None]:
        return calibrate_from_measurements(
            tpot_baseline_ms=base_1, tpot_spec_ms=spec_tpot, expected_tokens_per_step=e, num_speculative_tokens=k,
            prefill_points=ev.prefill_points, baseline_points=base_points, draft_param_ratio=ratio, proposal_rate=q,
            draft_seq_ms=draft_seq_ms)

    target_step, draft_step = fit(spec_1)
    seq_ms, unexplained, growth = 0.0, 0.0, ev.spec_step_growth
    if growth is not None and draft_step is not None and spec_1:
        # the sweep's growth per sequence beyond verifying k+1 tokens and drafting k: charged per drafted token
        # (it then grows with k, as a draft pass's or the rejection sampler's per-sequence work would), or per
        # sequence and step for a lookup, which has no draft passes
        step_1 = spec_1 * with_proposals(e, q)
        explained = target_step.compute_ms_per_token * with_proposals(k + 1, q) + (
            0.0 if draft_free else draft_step.compute_ms_per_token * draft_tokens_per_step(1, k))
        unexplained = min(max(0.0, growth.share * step_1 - explained), 0.5 * step_1)
        if unexplained and draft_free:
            seq_ms = unexplained
            target_step, draft_step = fit((step_1 - seq_ms) / with_proposals(e, q))
        elif unexplained:
            target_step, draft_step = fit(spec_1, draft_seq_ms=unexplained / k)
    if draft_free and draft_step is not None:
        # n-gram lookup costs CPU time per step, not per token: all of the fitted drafting time as a fixed
        # overhead (k passes of it), so the single-request TPOT is reproduced.
        total = drafting_ms(draft_step, 1, k, 0.0)
        draft_step = StepTimeModel(name="ngram lookup", source="fitted", overhead_ms=total / k, compute_ms_per_token=0.0,
                                   fit_notes=draft_step.fit_notes)
    sizes = batch_sizes or sorted({int(x.concurrency) for x in ev.load_levels} | {1, 2, 4, 8, 16, 32})
    pred = predict(
        target_step=target_step, draft_step=draft_step, num_speculative_tokens=k, acceptance=acceptance,
        acceptance_per_position=positions, batch_sizes=sizes, context_tokens=context_tokens,
        target=ev.target or "target", draft=ev.draft or "draft", method=ev.method or "draft_model",
        proposal_rate=q, spec_seq_ms=seq_ms, shared_tpot_ms=shared,
        baseline_tpot_ms={int(x.concurrency): x.tpot_p50_baseline_ms for x in concurrency},
    )
    if growth is None and spec_1:
        pred.assumptions.append(
            "no growth of the speculative step with the sequences in flight was measured (the sweep streamed too few "
            "steps, or none): only verifying and drafting grow with the batch, which left the prediction too "
            "optimistic above concurrency 1 on the embedded engine (held-out error 0.19-0.39 on runs of 2026-12-03 to 06)")
    if growth is not None and draft_step is not None:
        pred.assumptions.append(
            f"the speculative step's typical time grew by {growth.share:.1%} of a single sequence's per further "
            f"sequence decoding (1 to {growth.in_flight} in flight, {growth.source}); verifying and drafting "
            + ("explain it all" if not unexplained else f"leave {unexplained:.2f} ms per sequence, charged "
               + ("to every step" if draft_free else f"to the draft's passes ({unexplained / k:.3f} ms per drafted token)")))
    return pred
