"""Acceptance -> tokens per step: E(k), the acceptance a mean acceptance length implies, the single-request speedup.

SPEC.md section 1: with per-token acceptance ``a`` a target step yields ``E(k) = (1 - a^(k+1)) / (1 - a)`` tokens
(or ``1 + sum(p_i)`` from per-position rates, which is also the mean acceptance length vLLM logs), and with
``c = draft step / target step`` the single-request speedup is ``E(k) / (k*c + 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .errors import ParameterError


def expected_tokens(a: float, k: int) -> float:
    """E(k) = (1 - a^(k+1)) / (1 - a): expected tokens per target step with i.i.d. acceptance a."""
    if not 0 <= a <= 1:
        raise ParameterError(f"acceptance {a} is outside [0, 1]", _rate_fix(a, k))
    if k < 0:
        raise ParameterError(f"num_speculative_tokens {k} is negative", "give k >= 0")
    if a == 1:
        return float(k + 1)
    return (1 - a ** (k + 1)) / (1 - a)


def _rate_fix(a: float, k: int) -> str:
    """How to give a rate, naming the two usual mix-ups: a mean acceptance length, a percentage."""
    fix = "give a per-token acceptance rate, e.g. 0.7"
    if 1 < a <= k + 1:
        fix += f"; {a:g} looks like a mean acceptance length: pass it as --acceptance-length {a:g}"
    elif 1 < a <= 100:
        fix += f"; if {a:g} is a percentage, give {a / 100:g}"
    return fix


def check_positions(positions: Sequence[float]) -> None:
    """Refuse per-position rates vLLM cannot report: each p_i is the share of drafts whose first i tokens were all
    accepted (``num_accepted_tokens_per_pos[i] / num_drafts``), so it lies in [0, 1] and never rises with i."""
    p = [float(x) for x in positions]
    shown = ",".join(f"{x:g}" for x in p)
    if not p:
        raise ParameterError("no per-position acceptance given", "give p_1,...,p_k, e.g. 0.8,0.6,0.4")
    if not all(math.isfinite(x) for x in p):
        raise ParameterError(f"per-position acceptance {shown} holds a value that is not a number",
                             "give rates in [0, 1], e.g. 0.8,0.6,0.4")
    if any(not 0 <= x <= 1 for x in p):
        hint = f"; if these are percentages, give {','.join(f'{x / 100:g}' for x in p)}" \
            if all(0 <= x <= 100 for x in p) and max(p) > 1.5 else ""
        raise ParameterError(f"per-position acceptance {shown} is outside [0, 1]",
                             "give the share of drafts accepted up to each position, e.g. 0.8,0.6,0.4" + hint)
    rise = next((i for i in range(1, len(p)) if p[i] > p[i - 1] + 1e-9), None)
    if rise is not None:
        cumulative = [p[0]]
        for x in p[1:]:
            cumulative.append(cumulative[-1] * x)
        raise ParameterError(
            f"per-position acceptance {shown} rises at position {rise + 1}: p_i is the share of drafts whose first i "
            "tokens were all accepted (vLLM's per-position rate), which cannot rise",
            "give vLLM's per-position rates (falling); if yours are conditional rates (position i accepted given "
            f"i-1 accepted), give their running product: {','.join(f'{x:.3g}' for x in cumulative)}")


def positions_for_k(positions: Sequence[float], k: int) -> list[float]:
    """Per-position acceptance p_1..p_k, extending a measured list past its end geometrically.

    p_i is the share of drafts whose first i tokens were all accepted, so truncating is exact and
    extending uses the last measured conditional rate p_n / p_(n-1).
    """
    p = [min(max(float(x), 0.0), 1.0) for x in positions]
    if not p:
        raise ParameterError("no per-position acceptance given", "pass the sweep's acceptance_per_position")
    if k <= len(p):
        return p[:k]
    ratio = p[-1] / p[-2] if len(p) >= 2 and p[-2] > 0 else p[-1]
    while len(p) < k:
        p.append(p[-1] * min(ratio, 1.0))
    return p


def expected_tokens_from_positions(positions: Sequence[float], k: int | None = None) -> float:
    """E(k) = 1 + sum(p_i) from vLLM's per-position acceptance counters."""
    k = len(positions) if k is None else k
    return 1.0 + sum(positions_for_k(positions, k)) if k > 0 else 1.0


def iid_acceptance(expected: float, k: int) -> float:
    """The i.i.d. per-token acceptance a that gives E(k) = expected (bisection)."""
    if k <= 0 or expected <= 1:
        return 0.0
    if expected >= k + 1:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if expected_tokens(mid, k) < expected else (lo, mid)
    return (lo + hi) / 2


def acceptance_from_length(length: float, k: int) -> float:
    """Per-token acceptance a from a mean acceptance length (vLLM's ``1 + accepted / drafts``, what
    papers report): the i.i.d. a with E(k) = length."""
    if k < 1:
        raise ParameterError(f"num_speculative_tokens={k}", "give k >= 1")
    if not 1 <= length <= k + 1:
        raise ParameterError(
            f"mean acceptance length {length} is outside [1, k+1] = [1, {k + 1}]",
            "give the acceptance length measured at this k (1 + accepted / drafts), or change -k"
            + (f"; {length:g} looks like a per-token rate: pass it as --acceptance {length:g}" if 0 < length < 1 else ""),
        )
    return iid_acceptance(length, k)


def acceptance_length_from_positions(positions: Sequence[float]) -> float:
    """Mean acceptance length 1 + sum(p_i) from vLLM's per-position rates."""
    return expected_tokens_from_positions(positions)


def simple_speedup(a: float, k: int, c: float) -> float:
    """S = E(k) / (k*c + 1): the single-request speedup (Leviathan et al. 2023)."""
    return expected_tokens(a, k) / (k * c + 1)


def gain_possible(a: float, c: float) -> bool:
    """Speculation can pay only if the acceptance beats the cost ratio (a > c)."""
    return a > c


def optimal_k(a: float, c: float, k_max: int = 16) -> int:
    """The k in 1..k_max maximising E(k)/(k*c+1); 0 when no k beats running without speculation."""
    best_k, best = 0, 1.0
    for k in range(1, k_max + 1):
        s = simple_speedup(a, k, c)
        if s > best + 1e-12:
            best_k, best = k, s
    return best_k


def with_proposals(per_proposal: float, proposal_rate: float) -> float:
    """Tokens per sequence per step when only a share q of steps propose (an n-gram finds no match on the others,
    which verify and yield one token): 1 + q (x - 1), for the tokens verified (x = k+1) or yielded (x = E)."""
    return 1 + proposal_rate * (per_proposal - 1)


def expected_tokens_by_k(k: int, acceptance: float | None, acceptance_length: float | None,
                         acceptance_per_position: Sequence[float]):
    """(E(k') as a function of k', the per-token a, the per-position rates at k) from any acceptance input."""
    if acceptance_per_position:
        def e_of(kk: int) -> float:
            return expected_tokens_from_positions(acceptance_per_position, kk)

        return e_of, iid_acceptance(e_of(k), k), positions_for_k(acceptance_per_position, k)
    if acceptance_length is not None:
        acceptance = acceptance_from_length(acceptance_length, k)
    if acceptance is None:
        raise ParameterError("no acceptance given to the predictor",
                             "pass --acceptance A, --acceptance-length L or --acceptance-per-position p1,p2,...")
    a = acceptance

    def e_of(kk: int) -> float:
        return expected_tokens(a, kk)

    return e_of, a, [a ** (i + 1) for i in range(k)]
