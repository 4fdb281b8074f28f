"""Gap search strategies (`DartConfig.gap_search`) on scripted outcome grids: what they find and what they draw."""

from __future__ import annotations

import functools
import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cheaper_simulation import SCRIPTS, drive

from dart_hf import DartAdapter, DartConfig
from dart_hf.adapter import _config_fingerprint
from dart_hf.gap import find_gap
from dart_hf.gap_search import GAP_SEARCHES, gap_search_name, miss_bound, search_gap

from scripted import TEMPLATE, ScriptedBackend, expert

T, F = True, False
STRATEGIES = [
    dict(gap_search="grid"),
    dict(gap_search="certified"),
    dict(gap_search="sequential"),
    dict(gap_search="sequential", gap_search_probe=2),
    dict(gap_search="bisect"),
    dict(gap_search="bisect", gap_search_probe=2),
    dict(gap_search="scan"),
    dict(gap_search="scan", gap_search_probe=2),
]
#: scripts on which f is high before the gap and low after it, up to the answer step (the others recover at step 4)
HIGH_THEN_LOW = {
    "no gap, weak student": SCRIPTS["no gap, weak student"],
    "gap at step 3, no recovery": {0: [T] * 4, 1: [T, T, F, T], 2: [T] * 4, 3: [F] * 4, 4: [F, F, F, T], 5: [T] * 4},
}
ALL_SCRIPTS = {**SCRIPTS, **HIGH_THEN_LOW}


def grid_gap(grid, config):
    n = len(grid[0])
    return find_gap([sum(row) / n for row in grid], config.gap_rule, config.gap_margin, config.gap_threshold)


def is_grid_drop(grid, t, config):
    """The full grid's rule says pair (t-1, t) is a gap (whatever comes before)."""
    return grid_gap([grid[t - 1], grid[t]], config) == 1


def adapt(script, **cfg):
    backend = ScriptedBackend(sim=script, explore={1: [F, T, T], 0: [F, F, T]})
    row = {"problem": "What is 6*7?", "solution": expert(5), "answer": "42"}
    config = DartConfig(prompt_template=TEMPLATE, n_explore=3, **cfg)
    return DartAdapter(backend, config, progress=False)(row), backend


@functools.cache
def full_grid(name):
    return adapt(ALL_SCRIPTS[name], gap_search="grid")[0]


@pytest.mark.parametrize("strategy", STRATEGIES[1:], ids=lambda s: "-".join(map(str, s.values())))
@pytest.mark.parametrize("name", list(ALL_SCRIPTS))
def test_each_strategy_on_scripted_grids(name, strategy):
    script = ALL_SCRIPTS[name]
    full = full_grid(name)
    out, backend = adapt(script, **strategy)
    search = strategy["gap_search"]
    # sequential and scan pass only pairs whose probe at t succeeded, and none of these scripts' gaps has that;
    # bisect assumes high-then-low f, which the other scripts break (f recovers at step 4)
    if search != "bisect" or name in HIGH_THEN_LOW:
        for column in ("dart_gap_step", "dart_action", "dart_solution", "dart_student_start", "dart_selection"):
            assert out[column] == full[column], column
    elif out["dart_gap_step"] != -1:  # a gap it reports is one the full grid's rule gives for that pair
        t = out["dart_gap_step"]
        assert is_grid_drop([script[t - 1], script[t]], 1, DartConfig())
    assert out["dart_tokens_generated"] <= full["dart_tokens_generated"]
    # honest scores: the grid's f where a prefix was fully drawn, NaN where it was never drawn
    assert len(out["dart_step_samples"]) == len(out["dart_step_success"]) == 6
    for f_full, f, drawn in zip(full["dart_step_success"], out["dart_step_success"], out["dart_step_samples"]):
        assert 0 <= drawn <= 4
        if drawn == 4:
            assert f == f_full
        elif drawn == 0:
            assert math.isnan(f)
        else:
            assert f * drawn == round(f * drawn)
    # every draw continues a prefix's simulation stream from where it stopped: the grid's own samples
    sim_calls = [(t, n) for phase, t, n in backend.calls if phase == "sim"]
    assert sum(n for _, n in sim_calls) == sum(out["dart_step_samples"])


def test_approximate_strategies_draw_less_than_certified_on_an_early_gap():
    script = HIGH_THEN_LOW["gap at step 3, no recovery"]
    runs = {s: adapt(script, gap_search=s)[0] for s in GAP_SEARCHES}
    assert {s: out["dart_gap_step"] for s, out in runs.items()} == dict.fromkeys(GAP_SEARCHES, 3)
    drawn = {s: sum(out["dart_step_samples"]) for s, out in runs.items()}
    assert drawn["grid"] == 24
    assert drawn["sequential"] < drawn["certified"] < drawn["grid"]
    assert drawn["bisect"] < drawn["certified"]
    assert drawn["scan"] < drawn["sequential"]
    assert runs["scan"]["dart_step_samples"] == [0, 1, 4, 2, 0, 0]  # prefix 0 never drawn; 2 fully (exploration)


def step_grids(n, rng, t_max=8):
    """f high (no drop among these rows) before the gap, all failures from it to T-1, anything at the answer step."""
    d = math.ceil(0.5 * n)
    last = rng.randint(1, t_max)
    gap = rng.choice([None, *range(1, last + 1)])
    grid = []
    for t in range(last + 1):
        if gap is not None and gap <= t and (t < last or gap == last):
            row = [F] * n
        else:
            successes = rng.randint(n - d + 1, n)
            row = [T] * successes + [F] * (n - successes)
            rng.shuffle(row)
        grid.append(row)
    return grid, gap


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.sampled_from([2, 3, 4, 6, 8]), probe=st.integers(1, 3))
def test_bisect_finds_the_first_drop_on_high_then_low_profiles(seed, n, probe):
    grid, gap = step_grids(n, random.Random(seed))
    config = DartConfig(n_sim=n, gap_search="bisect", gap_search_probe=min(probe, n))
    assert grid_gap(grid, config) == gap  # the profile's planted drop is the grid's first gap
    sim, found, _ = drive(search_gap(len(grid) - 1, config), grid)
    assert found == gap


@pytest.mark.parametrize("last", [1, 2, 5, 9, 16])
def test_bisect_on_clean_steps_draws_about_k_log_t(last):
    """All successes before the gap, all failures after: 2 rollouts at T-1 (and T), the bisection, the confirmation."""
    for gap in [None, *range(1, last + 1)]:
        grid = [[T] * 4 if gap is None or t < gap or (t == last and gap < last) else [F] * 4 for t in range(last + 1)]
        config = DartConfig(gap_search="bisect")
        sim, found, asked = drive(search_gap(last, config), grid)
        assert found == gap
        probes = 2 * 2 + math.ceil(math.log2(max(last, 1)))
        assert sum(len(r) for r in sim.values()) <= probes + (6 if gap else 0)  # confirming 1.0 -> 0.0 takes 4 + 2
        assert sum(len(r) for r in sim.values()) < 4 * (last + 1) or last == 1


@pytest.mark.parametrize("search", ["sequential", "bisect", "scan"])
@pytest.mark.parametrize("probe", [1, 2, 4])
def test_approximate_disagreement_with_the_grid_is_bounded_on_random_grids(search, probe):
    """A reported gap is always one of the grid's gap pairs; `sequential` and `scan` miss at most `miss_bound` of the
    grid's gaps."""
    rng = random.Random(probe)
    config = DartConfig(gap_search=search, gap_search_probe=probe)
    with_gap = missed = 0
    for _ in range(3000):
        f = [rng.random() for _ in range(rng.randint(2, 8))]
        grid = [[rng.random() < p for _ in range(4)] for p in f]
        expected = grid_gap(grid, config)
        sim, found, _ = drive(search_gap(len(grid) - 1, config), grid)
        assert sum(len(r) for r in sim.values()) <= 4 * len(grid)
        if found is not None:  # certified from the grid's own samples at the pair
            assert expected is not None and found >= expected and is_grid_drop(grid, found, config)
        if expected is not None:
            with_gap += 1
            missed += found != expected
    assert with_gap > 500
    if search in ("sequential", "scan"):
        bound = miss_bound(config)
        assert bound == {1: 0.5, 2: 1 / 6, 4: 0.0}[probe]
        assert missed / with_gap <= bound + 3 * math.sqrt(max(bound, 1e-3) / with_gap)
        if probe == 4:
            assert missed == 0  # probing every sample is the exact early stop


@settings(max_examples=400, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.sampled_from([2, 3, 4, 6]),
    probe=st.integers(1, 6),
    rule=st.sampled_from(["drop", "threshold"]),
)
def test_scan_finds_sequentials_gap_and_draws_prefix_0_only_for_a_candidate_at_step_1(seed, n, probe, rule):
    """`scan` passes and confirms the same pairs as `sequential` (so it reports the same gap on every grid); it
    only draws less: prefix t-1 is not drawn for a pair that passed."""
    rng = random.Random(seed)
    f = [rng.random() for _ in range(rng.randint(1, 9))]
    grid = [[rng.random() < p for _ in range(n)] for p in f]
    config = dict(n_sim=n, gap_search_probe=min(probe, n), gap_rule=rule)
    sim, found, asked = drive(search_gap(len(grid) - 1, DartConfig(gap_search="scan", **config)), grid)
    _, expected, _ = drive(search_gap(len(grid) - 1, DartConfig(gap_search="sequential", **config)), grid)
    assert found == expected
    k = min(probe, n)
    candidate_at_1 = len(grid) > 1 and not all(grid[1][:k])
    assert not sim[0] or candidate_at_1
    last = len(grid) - 1 if found is None else found
    assert all(len(sim[t]) >= k for t in range(1, last + 1))  # every prefix up to the gap probed
    assert all(not r for t in range(last + 1, len(grid)) for r in sim[t])  # nothing after it
    assert all(len(jobs) == 1 for jobs in asked)  # one prefix per round


def test_legacy_switches_are_aliases_of_certified():
    assert gap_search_name(DartConfig()) == "grid"
    assert gap_search_name(DartConfig(early_stop=True)) == "certified"
    assert gap_search_name(DartConfig(adaptive_sampling=True)) == "certified"
    script = SCRIPTS["late gap"]
    both, _ = adapt(script, early_stop=True, adaptive_sampling=True)
    named, _ = adapt(script, gap_search="certified")
    assert named["dart_step_samples"] == both["dart_step_samples"]
    assert named["dart_gap_step"] == both["dart_gap_step"] == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            dict(gap_search="binary"),
            "DartConfig.gap_search must be one of 'grid', 'certified', 'sequential', 'bisect', 'scan'",
        ),
        (dict(gap_search=""), "DartConfig.gap_search must be one of"),
        (dict(gap_search_probe=0), "DartConfig.gap_search_probe must be an integer in 1..n_sim"),
        (dict(gap_search_probe=5), r"DartConfig.gap_search_probe must be an integer in 1..n_sim \(4\), got 5"),
        (dict(gap_search="bisect", early_stop=True), "cannot be combined with gap_search='bisect'"),
        (dict(gap_search="grid", adaptive_sampling=True), "cannot be combined with gap_search='grid'"),
        (dict(gap_search="sequential", gap_rule=lambda s: None), "needs a named gap_rule"),
        (dict(gap_search="scan", gap_rule=lambda s: None), "needs a named gap_rule"),
        (dict(gap_search="scan", adaptive_sampling=True), "cannot be combined with gap_search='scan'"),
    ],
)
def test_config_refuses_unknown_strategies_in_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        DartConfig(**kwargs)
    assert "\n" not in str(err.value)


def test_fingerprint_keeps_legacy_configs_and_tells_strategies_apart():
    legacy = json.loads(_config_fingerprint(DartConfig(early_stop=True)))
    assert "gap_search" not in legacy and "gap_search_probe" not in legacy
    prints = {
        _config_fingerprint(DartConfig(**s))
        for s in [dict(), dict(gap_search="grid"), dict(gap_search="certified"), *STRATEGIES[2:]]
    }
    assert len(prints) == 9
    # the probe size is no part of what an exact strategy does
    assert _config_fingerprint(DartConfig(gap_search="grid", n_sim=4, gap_search_probe=3)) == _config_fingerprint(
        DartConfig(gap_search="grid", n_sim=4)
    )


@pytest.fixture(scope="module")
def benchmarks():
    """`benchmarks/gap_search.py` and `benchmarks/sampling_cost.py`, imported as the scripts import each other."""
    import importlib
    import sys
    from pathlib import Path

    folder = str(Path(__file__).resolve().parent.parent / "benchmarks")
    sys.path.insert(0, folder)
    try:
        yield importlib.import_module("gap_search"), importlib.import_module("sampling_cost")
    finally:
        sys.path.remove(folder)


def test_replayed_variants_only_report_grid_gap_pairs(benchmarks):
    """The unshipped ideas the benchmark publishes confirm a candidate exactly: a gap they report is a grid gap pair."""
    bench, _ = benchmarks
    rng = random.Random(0)
    config = DartConfig()
    for _ in range(1500):
        f = [rng.random() for _ in range(rng.randint(2, 9))]
        grid = [[rng.random() < p for _ in range(4)] for p in f]
        expected = grid_gap(grid, config)
        outcomes = {t: [(ok, 10 * (len(grid) - t)) for ok in row] for t, row in enumerate(grid)}
        for label, plan in bench.VARIANTS.items():
            drawn, found = bench._replay_row(plan(len(grid) - 1, config), outcomes)
            assert sum(drawn.values()) <= 4 * len(grid), label
            if found is not None:
                assert expected is not None and found >= expected and is_grid_drop(grid, found, config), label


def test_scan_floor_and_token_weighted_profiles(benchmarks):
    bench, sampling_cost = benchmarks
    # prefix t's rollouts cost 10 * (4 - t) tokens; the grid's gap is at step 2
    grid = {t: [(ok, 10 * (4 - t)) for ok in row] for t, row in enumerate([[T] * 4, [T] * 4, [F] * 4, [T] * 4])}
    floor = bench.scan_floor([grid, grid], [2, -1])
    full = 2 * 4 * (40 + 30 + 20 + 10)
    # gap row: probes at 1, 2; the top-up at 1; a second rollout at 2. Gap-free row: probes at 1..3
    assert floor["probes"] == pytest.approx((30 + 20 + 30 + 20 + 10) / full)
    assert floor["top_up"] == pytest.approx(4 * 30 / full)
    assert floor["confirm"] == pytest.approx(20 / full)
    assert floor["total"] == pytest.approx(sum(floor[k] for k in ("probes", "top_up", "confirm")))
    # sampling_cost: a rollout after prefix t weighs T + 1 - t (4, 3, 2, 1 here); the top-up is the adapter's
    outcomes = [[T] * 4, [T] * 4, [F] * 4, [T] * 4]
    # sequential: 1 rollout at 0, 3 at 1 and 3 at 2 (alternating until 0.75 - 0.25 >= 0.5); the top-up adds 1 at 1
    sequential = DartConfig(gap_search="sequential")
    assert sampling_cost.drawn(outcomes, sequential) == (7, 2)
    assert sampling_cost.drawn(outcomes, sequential, "rollouts", top_up=True) == (8, 2)
    assert sampling_cost.drawn(outcomes, sequential, "tokens") == (1 * 4 + 3 * 3 + 3 * 2, 2)
    assert sampling_cost.drawn(outcomes, sequential, "tokens", top_up=True) == (1 * 4 + 4 * 3 + 3 * 2, 2)
    # scan: nothing at 0; prefix 1 drawn to 4 first (what the top-up draws anyway), then 2 at prefix 2
    scan = DartConfig(gap_search="scan")
    assert sampling_cost.drawn(outcomes, scan) == sampling_cost.drawn(outcomes, scan, top_up=True) == (6, 2)
    assert sampling_cost.drawn(outcomes, scan, "tokens", top_up=True) == (4 * 3 + 2 * 2, 2)
