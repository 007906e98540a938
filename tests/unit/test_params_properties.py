"""Issue 17, point 6: properties of the parameter models and of `-p` parsing (hypothesis).

Whatever the values, validation either returns a model whose numbers are in range, or raises one
ParameterError (never another exception, never an unbounded message)."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playbook.helpers.errors import ParameterError, PlaybookError
from playbook.helpers.params import (
    DraftsParams,
    LoadParams,
    MemoryParams,
    SweepParams,
    parse_override,
    resolve_parameters,
    validate_params,
)

numbers = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.text(max_size=20), st.none())
lists = st.lists(st.one_of(st.integers(-5, 50), st.floats(allow_nan=True, allow_infinity=True)), max_size=5)
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _finite_numbers(model) -> None:
    for name, value in model.model_dump().items():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, float):
                assert math.isfinite(v), (name, v)


@FAST
@given(concurrencies=lists, rates=lists, seed=numbers, burstiness=numbers, timeout=numbers)
def test_load_params_are_in_range_or_refused(concurrencies, rates, seed, burstiness, timeout):
    values = {"concurrencies": concurrencies, "rates": rates, "seed": seed, "burstiness": burstiness,
              "request_timeout_s": timeout}
    try:
        p = validate_params(LoadParams, values)
    except ParameterError as exc:
        assert len(str(exc)) < 4000
        return
    assert all(c >= 1 for c in p.concurrencies) and all(r > 0 and math.isfinite(r) for r in p.rates)
    assert p.concurrencies or p.rates
    assert p.seed >= 0 and p.burstiness > 0 and p.request_timeout_s > 0
    _finite_numbers(p)


@FAST
@given(low=numbers, high=numbers)
def test_the_sweet_spot_is_a_band_or_refused(low, high):
    try:
        p = validate_params(DraftsParams, {"ratio_low": low, "ratio_high": high})
    except ParameterError:
        return
    assert 1 < p.ratio_low < p.ratio_high and math.isfinite(p.ratio_high)


@FAST
@given(num_gpus=numbers, gib=numbers, context=numbers, tp=st.integers(-2, 20))
def test_memory_params_are_in_range_or_refused(num_gpus, gib, context, tp):
    try:
        p = validate_params(MemoryParams, {"num_gpus": num_gpus, "gpu_memory_gib": gib, "context_length": context,
                                           "tensor_parallel_size": tp, "mode": "managed",
                                           "target_model": "Llama-3.1-70B"})
    except ParameterError:
        return
    assert p.num_gpus >= 1 and p.gpu_memory_gib >= 0 and math.isfinite(p.gpu_memory_gib) and p.context_length >= 1
    assert 64 % p.tensor_parallel_size == 0  # Llama-3.1-70B: 64 attention heads


@FAST
@given(temps=lists)
def test_temperatures_lie_in_0_2_or_are_refused(temps):
    try:
        p = validate_params(SweepParams, {"temperatures": temps})
    except ParameterError:
        return
    assert p.temperatures and all(0 <= t <= 2 for t in p.temperatures)


@FAST
@given(text=st.text(max_size=60))
def test_any_override_text_parses_or_is_a_playbook_error(text):
    try:
        name, value = parse_override(text)
    except PlaybookError:
        return
    assert "=" in text and name == text.split("=", 1)[0].strip()
    try:
        resolve_parameters({}, {name: value}, ["50_load"])
    except PlaybookError as exc:
        assert str(exc) and len(str(exc)) < 4000


@FAST
@given(argv=st.lists(st.sampled_from(["run", "memory", "-p", "seed=-1", "--tp", "0", "--num-gpus", "nan",
                                      "--gpu-memory-gib", "-1", "--target", "embedded", "x", "=", "--only", "99"]),
                     max_size=6))
def test_cli_parsing_never_raises_past_main(argv, capsys):
    """Any argv: main returns an exit code (argparse's own usage errors exit 2 via SystemExit)."""
    from unittest import mock

    from playbook.cli import main

    def refuse(*a, **k):
        raise RuntimeError("would start a run")

    capsys.readouterr()  # the fixture lives across examples: drop what earlier examples printed
    try:
        with mock.patch("playbook.runner.new_run_dir", refuse):
            rc = main(argv)
    except SystemExit as exc:
        assert exc.code in (0, 2)
        return
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert rc == 0 or err.count("\nerror: ") + err.startswith("error: ") <= 1
