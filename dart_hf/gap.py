"""Imitation-gap rules: where does adopting one more expert step make the student's success collapse?

`scores[t]` is f_t, the student's success rate after adopting expert steps 1..t (t = 0..T). A rule
returns the 1-based index of the gap step, or None. NaN scores (prefixes not simulated) are skipped.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Optional, Union

GapRuleLike = Union[str, Callable[[Sequence[float]], Optional[int]]]


def _pairs(scores: Sequence[float]):
    for t in range(1, len(scores)):
        before, after = scores[t - 1], scores[t]
        if math.isnan(before) or math.isnan(after):
            continue
        yield t, before, after


def drop_gap(scores: Sequence[float], margin: float = 0.5) -> Optional[int]:
    """First t >= 1 with f[t-1] - f[t] >= margin (a float tolerance absorbs 3/4 - 1/4 rounding)."""
    for t, before, after in _pairs(scores):
        if before - after >= margin - 1e-9:
            return t
    return None


def threshold_gap(scores: Sequence[float], threshold: float = 0.5) -> Optional[int]:
    """First t >= 1 where a feasible prefix (f >= tau) becomes infeasible (f < tau)."""
    for t, before, after in _pairs(scores):
        if before >= threshold and after < threshold:
            return t
    return None


def find_gap(
    scores: Sequence[float], rule: GapRuleLike = "drop", margin: float = 0.5, threshold: float = 0.5
) -> Optional[int]:
    """Apply a named rule or a user callable, and validate what a callable returns."""
    if rule == "drop":
        return drop_gap(scores, margin)
    if rule == "threshold":
        return threshold_gap(scores, threshold)
    if callable(rule):
        gap = rule(list(scores))
        if gap is None:
            return None
        if isinstance(gap, bool) or not isinstance(gap, numbers.Integral) or not 1 <= gap <= len(scores) - 1:
            raise ValueError(f"gap rule returned {gap!r}; expected None or a step index in 1..{len(scores) - 1}")
        return int(gap)
    raise ValueError(f"unknown gap rule {rule!r}")


def _pair_status(
    rule: str, margin: float, threshold: float, before: tuple[float, float], after: tuple[float, float]
) -> Optional[bool]:
    """Is pair (t-1, t) a gap, given [low, high] bounds on f[t-1] and f[t]? None while both are possible."""
    (lo_b, hi_b), (lo_a, hi_a) = before, after
    if rule == "drop":
        if lo_b - hi_a >= margin - 1e-9:
            return True
        if hi_b - lo_a < margin - 1e-9:
            return False
        return None
    if rule == "threshold":
        if lo_b >= threshold and hi_a < threshold:
            return True
        if hi_b < threshold or lo_a >= threshold:
            return False
        return None
    raise ValueError(f"rule {rule!r} cannot be certified from partial counts")


def certify_gap(
    counts: Sequence[tuple[int, int]],
    n: int,
    rule: str = "drop",
    margin: float = 0.5,
    threshold: float = 0.5,
    first_only: bool = False,
) -> tuple[bool, Optional[int], list[int]]:
    """The full grid's gap, if partial counts already settle it.

    `counts[t]` = (successes, samples drawn) at prefix t, out of `n` planned. Whatever the missing
    samples turn out to be, f[t] lies in [s/n, (s + n - d)/n]; a pair whose rule outcome is the same
    over those bounds is settled. Returns `(decided, gap, open_pairs)`: when decided, `gap` is what
    `find_gap` would return on the full grid; otherwise `open_pairs` lists the unsettled pairs t
    (1-based) before the first certain gap (only the first one with `first_only`), i.e. where more
    samples are needed.
    """
    bounds = []
    for successes, drawn in counts:
        if not 0 <= successes <= drawn <= n:
            raise ValueError(f"bad counts {(successes, drawn)} for n={n}")
        bounds.append((successes / n, (successes + n - drawn) / n))
    open_pairs: list[int] = []
    for t in range(1, len(bounds)):
        status = _pair_status(rule, margin, threshold, bounds[t - 1], bounds[t])
        if status is True:
            return (True, t, []) if not open_pairs else (False, None, open_pairs)
        if status is None:
            open_pairs.append(t)
            if first_only:
                return False, None, open_pairs
    return (not open_pairs), None, open_pairs
