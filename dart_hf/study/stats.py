"""Study statistics: per-problem pass@k over seeds, and hierarchical bootstrap intervals (seeds, then problems)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import numpy as np

from ..evaluation import pass_at_k


def per_problem_pass(correct: Sequence[Optional[int]], n_samples: int, k: int) -> np.ndarray:
    """pass@k of each problem from its count of correct samples; NaN for problems that could not be scored."""
    return np.array([np.nan if c is None else pass_at_k(n_samples, c, k) for c in correct], dtype=float)


def bootstrap_mean(
    values: np.ndarray, n_boot: int, seed: int = 0, baseline: Optional[np.ndarray] = None
) -> dict[str, float]:
    """Mean of a (seeds x problems) matrix with a 95% interval; with `baseline`, of the paired difference.

    Resampling seeds and then problems (both with replacement) carries both sources of variance into
    the interval; the same resampled indices serve both matrices, so a difference is paired.
    """
    values = np.asarray(values, dtype=float)
    if baseline is not None:
        values = values - np.asarray(baseline, dtype=float)
    n_seeds, n_problems = values.shape
    rng = np.random.default_rng(seed)
    seed_idx = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    problem_idx = rng.integers(0, n_problems, size=(n_boot, n_problems))
    means = np.array([np.nanmean(values[s][:, p]) for s, p in zip(seed_idx, problem_idx)])
    low, high = np.nanpercentile(means, [2.5, 97.5])
    return {"mean": float(np.nanmean(values)), "low": float(low), "high": float(high)}


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a rate `successes / n` (sensible at small n and near 0 or 1)."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))  # no -0.00 from rounding
