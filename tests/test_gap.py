import math

import pytest

from dart_hf.gap import drop_gap, find_gap, threshold_gap

NAN = math.nan


@pytest.mark.parametrize(
    "scores, margin, expected",
    [
        ([1.0, 1.0, 0.5, 0.0], 0.5, 2),  # 1.0 -> 0.5 is the first drop of two successes
        ([0.75, 0.25, 0.0], 0.5, 1),  # 3/4 -> 1/4 (float rounding must not hide it)
        ([0.5, 0.25, 0.0], 0.5, None),  # gradual decline, never two successes at once
        ([0.0, 0.0, 1.0], 0.5, None),  # improvements are not gaps
        ([1.0, 0.75, 0.0], 0.75, 2),
        ([1.0, NAN, 0.0], 0.5, None),  # unsimulated prefixes are skipped, not bridged
        ([1.0], 0.5, None),
    ],
)
def test_drop_rule(scores, margin, expected):
    assert drop_gap(scores, margin) == expected
    assert find_gap(scores, "drop", margin=margin) == expected


@pytest.mark.parametrize(
    "scores, tau, expected",
    [
        ([1.0, 0.5, 0.25], 0.5, 2),
        ([0.25, 0.0, 1.0, 0.0], 0.5, 3),  # infeasible from the start: first feasible -> infeasible
        ([0.25, 0.0, 0.0], 0.5, None),
        ([1.0, 0.75, 0.5], 0.5, None),
    ],
)
def test_threshold_rule(scores, tau, expected):
    assert threshold_gap(scores, tau) == expected
    assert find_gap(scores, "threshold", threshold=tau) == expected


def test_callable_rule_and_validation():
    assert find_gap([1.0, 0.0, 0.0], lambda s: 2) == 2
    assert find_gap([1.0, 0.0], lambda s: None) is None
    for bad in (0, 3, 1.5, True, "1"):
        with pytest.raises(ValueError, match="gap rule returned"):
            find_gap([1.0, 0.0, 0.0], lambda s, bad=bad: bad)


def test_unknown_rule():
    with pytest.raises(ValueError, match="unknown gap rule"):
        find_gap([1.0, 0.0], "nope")
