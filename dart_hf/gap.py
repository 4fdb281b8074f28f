"""Imitation-gap rules: where does adopting one more expert step make the student's success collapse?

`scores[t]` is f_t, the student's success rate after adopting expert steps 1..t (t = 0..T). A rule
returns the 1-based index of the gap step, or None. NaN scores (prefixes not simulated) are skipped.
"""

from __future__ import annotations

import math
import numbers
from typing import Callable, Optional, Sequence, Union

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
            raise ValueError(
                f"gap rule returned {gap!r}; expected None or a step index in 1..{len(scores) - 1}"
            )
        return int(gap)
    raise ValueError(f"unknown gap rule {rule!r}")
