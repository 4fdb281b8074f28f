"""Gap search strategies: which prefixes to simulate, and with how many rollouts, to find the first gap.

The gap rules ([`dart_hf.gap`][dart_hf.gap]) say where the gap is once f_0..f_T are known; a strategy
decides how much of the `(T + 1) x n_sim` grid to draw before it answers. `DartConfig.gap_search`:

- `"grid"`: every prefix, `n_sim` rollouts each (the paper's estimate).
- `"certified"`: early stop + adaptive sampling; exactly the grid's gap from fewer rollouts
  ([`certify_gap`][dart_hf.gap.certify_gap]). The older switches `early_stop` / `adaptive_sampling`
  select it with only the saving they name.
- `"sequential"`: prefixes in order, `gap_search_probe` rollouts each; a pair (t-1, t) whose probe at
  t succeeded every time is passed without more samples (approximate), any other pair is sampled up to
  the grid's counts until the rule's answer is certain (exact).
- `"bisect"`: OmegaPRM-style bisection for the first low prefix, assuming f is high before the gap
  and low after it: it probes the step before the answer (then the answer step, which restores f),
  and, if that is low, bisects between prefix 0 and it with `gap_search_probe` rollouts per probe
  (a split probe is drawn to `n_sim` and decided by majority). The candidate pair is then confirmed
  with the grid's counts; a failed confirmation falls back to `"certified"`. About
  k log2(T) + 2 (k + 1) rollouts and the confirmation, instead of (T + 1) n_sim.
- `"scan"`: `"sequential"`'s decisions from fewer rollouts. Prefixes 1..T in order, `gap_search_probe`
  rollouts each; a prefix whose probe succeeded every time passes its pair, as in `"sequential"`, and
  the prefix before is not drawn for it (prefix 0, the longest continuations, only when step 1 is a
  candidate). A failed probe makes (t-1, t) a candidate, confirmed exactly with one rollout per round,
  at t-1 until it has `n_sim` (exploration tops the pre-gap prefix up to `n_sim` anyway when the gap
  holds), then at t.

Every strategy draws the first samples of the grid's own seeded streams (sample j after prefix t is
the grid's sample j there), so its decisions compare with the grid's row by row. Both approximate
strategies report a gap only after certifying it from the grid's samples at its two prefixes: a gap
they report is a pair the full grid also calls a gap. They can only *miss* the grid's first gap:
`sequential` and `scan` when the first `gap_search_probe` samples after the gap prefix all succeeded (at
most [`miss_bound`][dart_hf.gap_search.miss_bound] of the grid's gaps on exchangeable outcomes), `bisect`
also when f is not high-then-low.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from math import comb
from typing import TYPE_CHECKING, Optional

from .config import GAP_SEARCHES
from .gap import certify_gap, find_gap
from .schema import PHASE_SIM
from .simulation import Rollout, SampleJob, success_rates

if TYPE_CHECKING:
    from .config import DartConfig

__all__ = ["GAP_SEARCHES", "APPROXIMATE_SEARCHES", "gap_search_name", "miss_bound", "search_gap"]

#: Strategies whose gap may differ from the full grid's.
APPROXIMATE_SEARCHES = ("sequential", "bisect", "scan")

Draws = dict[int, list[Rollout]]
SimulationPlan = Generator[list[SampleJob], list[list[Rollout]], tuple[Draws, Optional[int]]]


def gap_search_name(config: DartConfig) -> str:
    """The strategy a config runs: `gap_search`, or from the legacy switches when it is None."""
    if config.gap_search is not None:
        return config.gap_search
    return "certified" if config.early_stop or config.adaptive_sampling else "grid"


def search_gap(n_steps: int, config: DartConfig) -> SimulationPlan:
    """Plan the simulation of one example: yields rounds of jobs, receives their rollouts.

    Returns the rollouts per prefix (an empty list where a prefix was not simulated) and the first
    gap (1-based step index, or None). A user-callable gap rule cannot be settled from partial
    counts; it gets the full grid (`DartConfig` refuses it with an approximate strategy).
    """
    name = gap_search_name(config)
    sim: Draws = {t: [] for t in range(n_steps + 1)}
    if name == "grid" or not isinstance(config.gap_rule, str):
        gap = yield from _grid(sim, config)
    elif name == "certified":
        explicit = config.gap_search == "certified"
        gap = yield from _certified(
            sim, config, first_only=explicit or config.early_stop, adaptive=explicit or config.adaptive_sampling
        )
    elif name == "sequential":
        gap = yield from _sequential(sim, config)
    elif name == "bisect":
        gap = yield from _bisect(sim, config)
    elif name == "scan":
        gap = yield from _scan(sim, config)
    else:  # pragma: no cover - DartConfig refuses other names
        raise ValueError(f"unknown gap search {name!r}")
    return sim, gap


def miss_bound(config: DartConfig) -> float:
    """Most of the grid's gaps `sequential` or `scan` can miss, when each prefix's outcomes are exchangeable.

    A grid gap at t needs at least `d` failures among the `n` samples at t (d = 2 for `drop` with
    margin 0.5 and n = 4); both pass the pair only when the first `k` of them all succeeded,
    which for a random order happens with probability at most C(n - d, k) / C(n, k). It never reports a
    gap the grid does not have, so this bounds the share of rows with a grid gap where they disagree.
    """
    n, k = config.n_sim, min(config.gap_search_probe, config.n_sim)
    d = _min_failures_in_gap(config)
    return comb(n - d, k) / comb(n, k)


# ---------------------------------------------------------------------------------------------- strategies
def _grid(sim: Draws, config: DartConfig) -> Generator[list[SampleJob], list[list[Rollout]], Optional[int]]:
    yield from _top_up(sim, dict.fromkeys(sim, config.n_sim))
    return find_gap(success_rates(sim, len(sim)), config.gap_rule, config.gap_margin, config.gap_threshold)


def _certified(
    sim: Draws, config: DartConfig, first_only: bool, adaptive: bool
) -> Generator[list[SampleJob], list[list[Rollout]], Optional[int]]:
    n = config.n_sim
    round_size = config.sim_round_size if adaptive else n
    while True:
        counts = [_count(sim[t]) for t in range(len(sim))]
        decided, gap, open_pairs = certify_gap(
            counts, n, config.gap_rule, config.gap_margin, config.gap_threshold, first_only=first_only
        )
        if decided:
            return gap
        prefixes = sorted({p for t in open_pairs for p in (t - 1, t) if len(sim[p]) < n})
        if not prefixes:  # pragma: no cover - full counts always decide a pair
            raise RuntimeError(f"gap undecided with all samples drawn: {counts}")
        yield from _top_up(sim, {p: min(len(sim[p]) + round_size, n) for p in prefixes})


def _sequential(sim: Draws, config: DartConfig) -> Generator[list[SampleJob], list[list[Rollout]], Optional[int]]:
    for t in range(1, len(sim)):
        if (yield from _settle(sim, t, config, approximate=True)):
            return t
    return None


def _bisect(sim: Draws, config: DartConfig) -> Generator[list[SampleJob], list[list[Rollout]], Optional[int]]:
    last = len(sim) - 1
    if last == 0:
        return None
    k = _probe(config)
    hi = None
    # the right end first: the step before the answer, then the answer. The search ends there when it is
    # high, with no confirmation, so it draws one sample more; prefix 0 is taken as high (the candidate's
    # confirmation samples it when the bisection gets there)
    for t in (last - 1, last) if last >= 2 else (last,):
        if (yield from _is_low(sim, t, min(k + 1, config.n_sim), config.n_sim)):
            hi = t
            break
    if hi is None:  # high at the end: no collapse, if f is high-then-low
        return None
    lo = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if (yield from _is_low(sim, mid, k, config.n_sim)) else (mid, hi)
    if (yield from _settle(sim, hi, config, approximate=False)):
        return hi
    # not a gap: f is not high-then-low here, or a probe misled the search; its samples could mislead a
    # sequential scan the same way, so the certified search (exact) takes over, reusing them
    return (yield from _certified(sim, config, first_only=True, adaptive=True))


def _scan(sim: Draws, config: DartConfig) -> Generator[list[SampleJob], list[list[Rollout]], Optional[int]]:
    k = _probe(config)
    for t in range(1, len(sim)):
        yield from _top_up(sim, {t: k})
        if all(r.correct for r in sim[t][:k]):
            continue  # passed, as `sequential` does; prefix t - 1 is not drawn for it
        if (yield from _confirm(sim, t, config)):
            return t
    return None


# ---------------------------------------------------------------------------------------------- helpers
def _before_first(sim: Draws, t: int, n: int) -> dict[int, int]:
    """The next draw of `_confirm`: at t-1 until it has `n` (the exploration after a gap draws them
    anyway), then at t (later prefixes, shorter continuations)."""
    p = t - 1 if len(sim[t - 1]) < n else t
    return {p: len(sim[p]) + 1}


def _confirm(
    sim: Draws, t: int, config: DartConfig, next_draw: Callable[[Draws, int, int], dict[int, int]] = _before_first
) -> Generator[list[SampleJob], list[list[Rollout]], bool]:
    """Is pair (t-1, t) a gap? Exactly the grid's answer, drawing what `next_draw` asks for until it is decided."""
    n = config.n_sim
    while True:
        decided, gap, _ = certify_gap(
            [_count(sim[t - 1]), _count(sim[t])], n, config.gap_rule, config.gap_margin, config.gap_threshold
        )
        if decided:
            return gap is not None
        yield from _top_up(sim, next_draw(sim, t, n))


def _settle(
    sim: Draws, t: int, config: DartConfig, approximate: bool
) -> Generator[list[SampleJob], list[list[Rollout]], bool]:
    """Is pair (t-1, t) a gap? Exact (the grid's answer) unless `approximate` passes it on a clean probe at t."""
    n, k = config.n_sim, _probe(config)
    yield from _top_up(sim, {t - 1: k, t: k})
    while True:
        decided, gap, _ = certify_gap(
            [_count(sim[t - 1]), _count(sim[t])], n, config.gap_rule, config.gap_margin, config.gap_threshold
        )
        if decided:
            return gap is not None
        if approximate and all(r.correct for r in sim[t][:k]):
            return False
        yield from _top_up(sim, {p: min(len(sim[p]) + 1, n) for p in (t - 1, t)})


def _is_low(sim: Draws, t: int, k: int, n: int) -> Generator[list[SampleJob], list[list[Rollout]], bool]:
    """Bisection's probe: low when the first `k` samples all failed, high when all succeeded; if they
    disagree, the grid's `n` samples decide (low at one half or less)."""
    yield from _top_up(sim, {t: k})
    successes = sum(r.correct for r in sim[t][:k])
    if 0 < successes < k:
        yield from _top_up(sim, {t: n})
        return sum(r.correct for r in sim[t]) * 2 <= len(sim[t])
    return successes == 0


def _top_up(sim: Draws, wants: dict[int, int]) -> Generator[list[SampleJob], list[list[Rollout]], None]:
    """Draw each prefix's stream up to `wants[t]` samples, in one round (nothing when all are there)."""
    jobs = [SampleJob(t, want - len(sim[t]), PHASE_SIM, len(sim[t])) for t, want in sorted(wants.items())]
    jobs = [job for job in jobs if job.n > 0]
    if not jobs:
        return
    got = yield jobs
    for job, rollouts in zip(jobs, got):
        sim[job.t].extend(rollouts)


def _count(rollouts: list[Rollout]) -> tuple[int, int]:
    return sum(r.correct for r in rollouts), len(rollouts)


def _probe(config: DartConfig) -> int:
    return min(config.gap_search_probe, config.n_sim)


def _min_failures_in_gap(config: DartConfig) -> int:
    """Fewest failures among the n samples after prefix t in any full-grid gap at t."""
    n = config.n_sim
    gaps = [
        n - after
        for before in range(n + 1)
        for after in range(n + 1)
        if certify_gap([(before, n), (after, n)], n, config.gap_rule, config.gap_margin, config.gap_threshold)[1]
    ]
    return min(gaps, default=n)
