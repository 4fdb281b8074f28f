"""Early stop and adaptive sampling: fewer rollouts, and always the full grid's gap and adapted row."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dart_hf import DartAdapter, DartConfig
from dart_hf.backends.base import Completion
from dart_hf.gap import certify_gap, find_gap
from dart_hf.simulation import Rollout, simulate, success_rates

from scripted import TEMPLATE, ScriptedBackend, expert

T, F, N = True, False, None
SWITCHES = [
    dict(early_stop=True),
    dict(adaptive_sampling=True),
    dict(adaptive_sampling=True, sim_round_size=2),
    dict(early_stop=True, adaptive_sampling=True),
    dict(early_stop=True, adaptive_sampling=True, sim_round_size=3),
]


def drive(plan, grid):
    """Run a simulation plan against a fixed outcome grid; samples come out of each prefix's stream in order."""
    asked = []
    try:
        jobs = next(plan)
        while True:
            asked.append(jobs)
            got = []
            for job in jobs:
                assert job.phase == "sim" and job.n >= 1
                outcomes = grid[job.t][job.first : job.first + job.n]
                assert len(outcomes) == job.n, "asked past the end of the stream"
                got.append(
                    [Rollout(job.t, Completion(f"{job.t}.{job.first + j}", 1), None, o) for j, o in enumerate(outcomes)]
                )
            jobs = plan.send(got)
    except StopIteration as stop:
        sim, gap = stop.value
    return sim, gap, asked


grids = st.integers(1, 4).flatmap(
    lambda n: st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=2, max_size=8)
)


@settings(max_examples=300, deadline=None)
@given(
    grid=grids,
    rule=st.sampled_from(
        [("drop", 0.5), ("drop", 0.25), ("drop", 0.75), ("drop", 1.0), ("threshold", 0.5), ("threshold", 0.3)]
    ),
    switches=st.sampled_from(SWITCHES),
)
def test_switches_certify_the_full_grid_gap(grid, rule, switches):
    n = len(grid[0])
    name, value = rule
    config = DartConfig(n_sim=n, gap_rule=name, gap_margin=value, gap_threshold=value, **switches)
    full_scores = [sum(row) / n for row in grid]
    expected = find_gap(full_scores, name, value, value)

    sim, gap, asked = drive(simulate(len(grid) - 1, config), grid)

    assert gap == expected
    drawn = [len(sim[t]) for t in range(len(grid))]
    assert all(d <= n for d in drawn)
    # what was drawn is the start of each prefix's stream: fully drawn prefixes have the full grid's f
    for t, rollouts in sim.items():
        assert [r.completion.text for r in rollouts] == [f"{t}.{j}" for j in range(len(rollouts))]
        if len(rollouts) == n:
            assert success_rates(sim, len(grid))[t] == full_scores[t]
    if switches.get("early_stop") and expected is not None:
        assert all(d == 0 for d in drawn[expected + 1 :]), "nothing simulated after the first gap"
    if not switches.get("adaptive_sampling"):
        assert set(drawn) <= {0, n}, "early stop alone samples whole prefixes"


def test_certify_gap_bounds():
    # 2 of 4 drawn at both prefixes: f[0] in [0.5, 1], f[1] in [0, 0.5] -> a drop of 0.5 is possible, not certain
    assert certify_gap([(2, 2), (0, 2)], 4) == (False, None, [1])
    # one more failure at prefix 1 and one success at 0: f[0] >= 0.75, f[1] <= 0.25 -> certain gap
    assert certify_gap([(3, 3), (0, 3)], 4) == (True, 1, [])
    # three failures at prefix 0: f[0] <= 0.25 -> no drop of 0.5 can follow, whatever prefix 1 does
    assert certify_gap([(0, 3), (0, 0)], 4) == (True, None, [])
    # the first certain gap hides later pairs; earlier open pairs are reported
    assert certify_gap([(2, 2), (2, 2), (0, 4)], 4) == (False, None, [1])
    assert certify_gap([(2, 2), (1, 2), (0, 2), (0, 2)], 4, first_only=True) == (False, None, [1])
    assert certify_gap([(1, 4), (1, 1)], 4, rule="threshold") == (True, None, [])
    with pytest.raises(ValueError, match="bad counts"):
        certify_gap([(3, 2)], 4)


def run(sim, switches, **cfg):
    cfg.setdefault("prompt_template", TEMPLATE)
    cfg.setdefault("n_explore", 3)
    backend = ScriptedBackend(sim=sim, explore={1: [F, T, T], 0: [F, F, T]})
    row = {"problem": "What is 6*7?", "solution": expert(5), "answer": "42"}
    out = DartAdapter(backend, DartConfig(**cfg, **switches), progress=False)(row)
    return out, backend


SCRIPTS = {
    "no gap, weak student": {t: [F, F, F, T] if t == 5 else [F, F, N, F] for t in range(6)},
    "gap at step 2, reuse": {0: [T] * 4, 1: [T, F, T, T], 2: [F, F, F, T], 3: [F] * 4, 4: [T] * 4, 5: [T] * 4},
    "gap at step 2, explore": {0: [T] * 4, 1: [F, F, F, F], 2: [F] * 4, 3: [F] * 4, 4: [T] * 4, 5: [T] * 4},
    "late gap": {0: [F, T, F, F], 1: [T, T, F, F], 2: [T, T, T, F], 3: [T, T, T, T], 4: [F, F, F, T], 5: [T] * 4},
}


@pytest.mark.parametrize("switches", SWITCHES[1:], ids=lambda s: ",".join(s))
@pytest.mark.parametrize("name", list(SCRIPTS))
@pytest.mark.parametrize("cfg", [dict(), dict(fallback="backoff", selection="shortest")], ids=["default", "backoff"])
def test_adapted_rows_equal_the_full_grid(name, switches, cfg):
    full, _ = run(SCRIPTS[name], {}, **cfg)
    cheap, backend = run(SCRIPTS[name], switches, **cfg)
    for column in ("dart_gap_step", "dart_action", "dart_solution", "dart_student_start", "dart_selection"):
        assert cheap[column] == full[column], column
    assert cheap["dart_tokens_generated"] <= full["dart_tokens_generated"]
    # scores: the full grid's where a prefix was fully drawn, a partial estimate elsewhere, NaN if never sampled
    for f_full, f, drawn in zip(full["dart_step_success"], cheap["dart_step_success"], cheap["dart_step_samples"]):
        if drawn == 4:
            assert f == f_full
        elif drawn == 0:
            assert math.isnan(f)
    assert full["dart_step_samples"] == [4] * 6


def test_savings_on_an_early_gap():
    full, _ = run(SCRIPTS["gap at step 2, reuse"], {})
    cheap, backend = run(SCRIPTS["gap at step 2, reuse"], dict(early_stop=True))
    assert cheap["dart_step_samples"] == [4, 4, 4, 0, 0, 0]
    assert all(t <= 2 for _, t, _ in backend.calls)
    assert cheap["dart_tokens_generated"] < full["dart_tokens_generated"] / 1.5


def test_callable_rule_gets_the_full_grid(caplog):
    def rule(scores):
        return 3 if scores[-1] == 1.0 else None

    out, backend = run(SCRIPTS["gap at step 2, reuse"], dict(early_stop=True, adaptive_sampling=True), gap_rule=rule)
    assert out["dart_step_samples"] == [4] * 6 and out["dart_gap_step"] == 3
    assert "full grid" in caplog.text


class CountingBackend(ScriptedBackend):
    """Counts backend calls, and fails every call that carries the poisoned problem."""

    def __init__(self, *args, poison=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.generate_calls, self.poison = 0, poison

    def generate(self, requests):
        self.generate_calls += 1
        if self.poison and any(self.poison in r.prompt for r in requests):
            raise RuntimeError("server exploded")
        return super().generate(requests)


def rows(k):
    return {"problem": [f"What is 6*7? ({i})" for i in range(k)], "solution": [expert(5)] * k, "answer": ["42"] * k}


def test_rows_of_a_batch_share_backend_calls():
    sim = SCRIPTS["no gap, weak student"]
    backend = CountingBackend(sim=sim)
    out = DartAdapter(backend, DartConfig(prompt_template=TEMPLATE), progress=False)(rows(5))
    assert backend.generate_calls == 1 and out["dart_action"] == ["imitate"] * 5
    adaptive = CountingBackend(sim=sim)
    out2 = DartAdapter(adaptive, DartConfig(prompt_template=TEMPLATE, adaptive_sampling=True), progress=False)(rows(5))
    assert out2["dart_action"] == out["dart_action"]
    assert adaptive.generate_calls <= 4, "one call per round for all rows, not per row"
    assert sum(out2["dart_tokens_generated"]) < sum(out["dart_tokens_generated"])
    assert all(s > 0 for s in out2["dart_seconds"])


def test_a_failing_row_is_isolated_when_its_round_fails():
    backend = CountingBackend(sim=SCRIPTS["no gap, weak student"], poison="(3)")
    out = DartAdapter(backend, DartConfig(prompt_template=TEMPLATE), progress=False)(rows(5))
    assert out["dart_action"] == ["imitate", "imitate", "imitate", "error", "imitate"]
    assert "server exploded" in out["dart_error"][3]


def test_sim_round_size_is_validated():
    with pytest.raises(ValueError, match="sim_round_size"):
        DartConfig(sim_round_size=0)
