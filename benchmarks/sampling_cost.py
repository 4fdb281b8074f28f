"""Rollouts each gap search strategy draws, by student regime, without a model.

    python benchmarks/sampling_cost.py

The real planner (`dart_hf.simulation.simulate`) runs against outcome grids drawn from success-rate
profiles f_0..f_T (each rollout correct with probability f_t), so the table shows how the savings
depend on where, and whether, a student has a gap. Generated tokens scale with rollouts when
rollouts have similar lengths. The exact strategies always find the full grid's gap (asserted); the
approximate ones (`gap_search="sequential"` / `"bisect"` / `"scan"`) show the share of grids where they agree.
"""

from __future__ import annotations

import argparse
import os
import random
import sys

try:
    import dart_hf  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dart_hf import DartConfig
from dart_hf.backends.base import Completion
from dart_hf.gap import find_gap
from dart_hf.gap_search import APPROXIMATE_SEARCHES
from dart_hf.simulation import Rollout, simulate

PROFILES = {
    "weak: f = 0 until the last step (SmolLM2 on CHAMP)": [0.0] * 7 + [0.6],
    "strong: f = 0.9 everywhere": [0.9] * 8,
    "gap early (step 2 of 7)": [0.9, 0.9, 0.1, 0.1, 0.2, 0.3, 0.6, 0.9],
    "gap late (step 6 of 7)": [0.6, 0.7, 0.8, 0.8, 0.9, 0.9, 0.1, 0.9],
    "rising: 0.1 -> 0.9": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 0.9],
    "planted-gap task, gap rows (step 3 of 6)": [0.9, 0.9, 0.9, 0.04, 0.13, 0.13, 1.0],
    "planted-gap task, controls": [0.96] * 7,
    "long (24 steps), gap at step 9, f recovers at 11": [0.9] * 9 + [0.04, 0.13] + [0.9] * 13 + [1.0],
    "long (24 steps), gap at step 9, no recovery": [0.9] * 9 + [0.04] * 15 + [1.0],
    "long (24 steps), no gap: f = 0.95": [0.95] * 25,
}
SWITCHES = {
    "(a) early stop": dict(early_stop=True),
    "(b) adaptive": dict(adaptive_sampling=True),
    "(a)+(b) = certified": dict(early_stop=True, adaptive_sampling=True),
    "(a)+(b), rounds of 2": dict(early_stop=True, adaptive_sampling=True, sim_round_size=2),
}
APPROXIMATE = {
    "sequential": dict(gap_search="sequential"),
    "sequential, probe 2": dict(gap_search="sequential", gap_search_probe=2),
    "bisect": dict(gap_search="bisect"),
    "bisect, probe 2": dict(gap_search="bisect", gap_search_probe=2),
    "scan": dict(gap_search="scan"),
    "scan, probe 2": dict(gap_search="scan", gap_search_probe=2),
}


def drawn(
    grid: list[list[bool]], config: DartConfig, cost: str = "rollouts", top_up: bool = False, plan=simulate
) -> tuple[float, object]:
    """What the planner draws on one outcome grid, and its gap.

    cost "rollouts" counts rollouts; "tokens" weighs a rollout after prefix t by T + 1 - t, the expert
    steps it still has to write (continuations shorten about linearly with t on the planted-gap task:
    29, 22, 15, 8, 1 tokens after prefixes 0..4 of 4-step solutions). `top_up` adds what the adapter
    draws after the search: the prefix before a gap is topped up to n_sim before exploring. `plan`:
    `simulate`, or another planner with its signature (the unshipped ideas of `benchmarks/gap_search.py`).
    """
    plan = plan(len(grid) - 1, config)
    jobs = next(plan)
    try:
        while True:
            jobs = plan.send(
                [[Rollout(j.t, Completion("", 1), None, o) for o in grid[j.t][j.first : j.first + j.n]] for j in jobs]
            )
    except StopIteration as stop:
        sim, gap = stop.value
    counts = {t: len(r) for t, r in sim.items()}
    if top_up and gap is not None:
        counts[gap - 1] = max(counts[gap - 1], config.n_sim)
    return sum(n * _weight(t, len(grid), cost) for t, n in counts.items()), gap


def _weight(t: int, n_prefixes: int, cost: str) -> int:
    return 1 if cost == "rollouts" else n_prefixes - t


def profile_table(
    n_sim: int = 4,
    trials: int = 2000,
    seed: int = 0,
    columns: dict = None,
    cost: str = "rollouts",
    top_up: bool = False,
) -> list[str]:
    """Markdown rows: cost drawn / full grid's per strategy (`drawn`); approximate cells add their agreement with the grid."""
    columns = {**SWITCHES, **APPROXIMATE} if columns is None else columns
    rng = random.Random(seed)
    lines = [
        "| student regime (f_0..f_T) | rows with a gap | " + " | ".join(columns) + " |",
        "|---|---:|" + "---:|" * len(columns),
    ]
    for name, profile in PROFILES.items():
        grids = [[[rng.random() < f for _ in range(n_sim)] for f in profile] for _ in range(trials)]
        full = n_sim * trials * sum(_weight(t, len(profile), cost) for t in range(len(profile)))
        gaps = [find_gap([sum(row) / n_sim for row in g], "drop", 0.5) for g in grids]
        cells = []
        for switches in columns.values():
            # a column is DartConfig overrides, or a planner (an unshipped idea: approximate)
            plan = switches if callable(switches) else simulate
            config = DartConfig(n_sim=n_sim, **({} if callable(switches) else switches))
            exact = plan is simulate and config.gap_search not in APPROXIMATE_SEARCHES
            total = agree = 0
            for grid, gap in zip(grids, gaps):
                count, found = drawn(grid, config, cost, top_up, plan)
                if exact:
                    assert found == gap, (grid, found, gap)
                agree += found == gap
                total += count
            cells.append(f"{total / full:.2f}" + ("" if exact else f" ({agree / trials:.0%})"))
        lines.append(f"| {name} | {sum(g is not None for g in gaps) / trials:.0%} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n_sim", type=int, default=4)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cost",
        choices=("rollouts", "tokens"),
        default="rollouts",
        help="tokens: a rollout after prefix t weighs T + 1 - t",
    )
    parser.add_argument(
        "--explore_top_up", action="store_true", help="count the adapter's top-up of the pre-gap prefix to n_sim"
    )
    parser.add_argument("--columns", nargs="*", default=None, help="strategies to show (default: all)")
    args = parser.parse_args()
    columns = {**SWITCHES, **APPROXIMATE}
    if args.columns:
        unknown = sorted(set(args.columns) - set(columns))
        if unknown:
            parser.error(f"unknown columns {unknown}; choose from {sorted(columns)}")
        columns = {name: columns[name] for name in args.columns}
    print(f"n_sim={args.n_sim}, gap rule drop with margin 0.5, {args.trials} outcome grids per profile\n")
    print("\n".join(profile_table(args.n_sim, args.trials, args.seed, columns, args.cost, args.explore_top_up)))
    what = "rollouts" if args.cost == "rollouts" else "token-weighted rollouts (T + 1 - t each)"
    top_up = ", with the pre-gap top-up" if args.explore_top_up else ""
    print(f"\ncells: {what} drawn{top_up} / full grid's (approximate strategies: share of grids whose gap agrees)")


if __name__ == "__main__":
    main()
