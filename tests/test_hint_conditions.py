"""The prefix-hint conditions' training rows and the iterative loop's plumbing, with scripted students."""

import datasets
import pytest

from dart_hf import DartConfig
from dart_hf.example import parse_example
from dart_hf.iterative import iterative_dart
from dart_hf.study.conditions import dart_set, hint_fixed_set, hint_minimal_set
from dart_hf.verification import MathVerifier
from dart_hf.verifiers import RewardFunctionVerifier

from scripted import TEMPLATE, ScriptedBackend, expert

T, F, N = True, False, None
SOLUTION = expert(4) + " So \\boxed{42}."  # 4 steps, the last one states the answer


@pytest.fixture(scope="module")
def verifier():
    return MathVerifier()


def _config(**kw):
    return DartConfig(prompt_template=TEMPLATE, n_sim=4, n_explore=4, **kw)


def _example(cfg, i=0):
    return parse_example({"problem": f"problem {i}", "solution": SOLUTION, "answer": "42"}, cfg)


def _text(row):
    return row["completion"][0]["content"]


def test_hint_fixed_gives_the_first_half_of_the_steps_then_a_verified_continuation(verifier):
    cfg = _config(selection="shortest")
    backend = ScriptedBackend(sim={2: [F, T, T, F]})
    ts = hint_fixed_set([_example(cfg), None], backend, verifier, cfg, fraction=0.5)
    assert [(phase, t, n) for phase, t, n in backend.calls] == [("sim", 2, 4)]  # ceil(0.5 * 4) = 2 steps, no grid
    (row,) = ts.rows  # the unreadable row is in no condition
    prefix = "STEP 1 of the expert.\n\nSTEP 2 of the expert.\n\n"
    assert _text(row) == prefix + "student sim 2.1 x so \\boxed{42}"  # the shortest of the two correct ones
    assert row["dart_student_start"] == len(prefix)
    assert ts.tokens_generated == 5 + 6 + 7 + 5  # all four samples count (the scripted backend: words)
    assert ts.info["explored"] == 1 and ts.info["expert_kept"] == 0


def test_hint_fixed_keeps_the_expert_solution_when_no_continuation_verifies(verifier):
    cfg = _config()
    ts = hint_fixed_set([_example(cfg)], ScriptedBackend(sim={3: [F, N, F, F]}), verifier, cfg, fraction=0.75)
    assert _text(ts.rows[0]) == SOLUTION and ts.rows[0]["dart_student_start"] == -1
    assert ts.info["expert_kept"] == 1


def test_hint_minimal_stops_at_the_first_prefix_with_a_success(verifier):
    cfg = _config(selection="shortest")
    backend = ScriptedBackend(sim={0: [F] * 4, 1: [N, F, N, F], 2: [F, F, T, F], 3: [T] * 4})
    ts = hint_minimal_set([_example(cfg)], backend, verifier, cfg)
    assert [t for _, t, _ in backend.calls] == [0, 1, 2]  # t = 0 upward, never past the first success
    prefix = "STEP 1 of the expert.\n\nSTEP 2 of the expert.\n\n"
    assert _text(ts.rows[0]) == prefix + "student sim 2.2 x x so \\boxed{42}"
    assert ts.rows[0]["dart_student_start"] == len(prefix)
    assert ts.info["mean_hint_steps"] == 2 and ts.tokens_generated > 0


def test_hint_minimal_at_t0_is_the_students_own_solution_and_without_success_the_experts(verifier):
    cfg = _config()
    solved = hint_minimal_set([_example(cfg)], ScriptedBackend(sim={0: [F, T, F, F]}), verifier, cfg)
    assert _text(solved.rows[0]).startswith("student sim 0.1") and solved.rows[0]["dart_student_start"] == 0
    backend = ScriptedBackend(sim={})  # never a correct continuation: search every prefix before T, then give up
    unsolved = hint_minimal_set([_example(cfg)], backend, verifier, cfg)
    assert [t for _, t, _ in backend.calls] == [0, 1, 2, 3]  # after all T = 4 steps the expert has answered
    assert _text(unsolved.rows[0]) == SOLUTION and unsolved.info["expert_kept"] == 1


def test_iterative_adapts_each_round_with_the_student_the_previous_round_trained():
    """Round r samples from the model round r - 1 returned, at seed + r, and trains on that round's usable rows."""
    data = datasets.Dataset.from_list([{"problem": f"problem {i}", "solution": SOLUTION} for i in range(3)])
    # student "m0" cannot follow step 2 (a gap: DART explores from step 1); the trained "m1" follows everything
    scripts = {
        "m0": ScriptedBackend(sim={0: [T, T, F, F], 1: [T, T, T, F], 2: [F] * 4, 3: [F] * 4, 4: [T] * 4}),
        "m1": ScriptedBackend(sim={t: [T] * 4 for t in range(5)}),
    }
    made, trained = [], []

    def make_backend(model, tokenizer):
        made.append(model)
        return scripts[model]

    def train(model, tokenizer, rows, index):
        trained.append((model, index, [r["completion"][0]["content"] for r in rows]))
        return f"m{index + 1}", tokenizer

    seen_seeds = []
    rounds = iterative_dart(
        "m0",
        data,
        _config(seed=7),
        train,
        rounds=2,
        make_backend=make_backend,
        on_round=lambda r: seen_seeds.append(r.adapted["dart_action"]),
    )
    assert made == ["m0", "m1"] and [m for m, _, _ in trained] == ["m0", "m1"]
    assert [r.model for r in rounds] == ["m1", "m2"] and len(seen_seeds) == 2
    first, second = rounds
    assert first.actions == {"explore": 3} and second.actions == {"imitate": 3}
    assert all(t.startswith("STEP 1 of the expert.\n\nstudent sim 1.") for t in trained[0][2])
    assert trained[1][2] == [SOLUTION] * 3  # the trained student follows the expert: its data is the expert's
    assert first.rows.column_names == ["prompt", "completion", "dart_student_start"]
    assert first.tokens_generated > 0 and second.tokens_generated > 0


def test_iterative_seeds_each_round_apart_and_refuses_zero_rounds():
    data = datasets.Dataset.from_list([{"problem": "p", "solution": SOLUTION}])
    backend = ScriptedBackend(sim={t: [T] * 4 for t in range(5)})
    seeds = []

    class Recording:
        def __init__(self, cfg):
            seeds.append(cfg.seed)

    import dart_hf.iterative as it

    real = it.DartAdapter
    it.DartAdapter = lambda b, cfg, **kw: (Recording(cfg), real(b, cfg, **kw))[1]
    try:
        iterative_dart(
            "m", data, _config(seed=5), lambda m, t, r, i: (m, t), rounds=3, make_backend=lambda m, t: backend
        )
    finally:
        it.DartAdapter = real
    assert seeds == [5, 6, 7]
    with pytest.raises(ValueError, match="rounds"):
        iterative_dart("m", data, _config(), lambda *a: a[:2], rounds=0, make_backend=lambda m, t: backend)


def _gap_at_step_2():
    """A student that cannot follow expert step 2: under math-verify, DART explores every row."""
    return ScriptedBackend(sim={0: [T, T, F, F], 1: [T, T, T, F], 2: [F] * 4, 3: [F] * 4, 4: [T] * 4})


def test_dart_and_iterative_judge_with_the_verifier_they_are_given(monkeypatch):
    """`dart-hf study --verifier X` must judge DART's and iterative DART's rollouts with X, not math-verify."""
    data = datasets.Dataset.from_list([{"problem": f"problem {i}", "solution": SOLUTION} for i in range(3)])
    accept_all = RewardFunctionVerifier(lambda prompts, completions, **kw: [1.0] * len(completions))
    assert dart_set(data, _gap_at_step_2(), _config()).info["actions"] == {"explore": 3}
    assert dart_set(data, _gap_at_step_2(), _config(), accept_all).info["actions"] == {"imitate": 3}

    def train(model, tokenizer, rows, index):
        return model, tokenizer

    made = []  # the default backend of each round: built with the verifier's stop rule

    def transformers_backend(model, tokenizer=None, **kwargs):
        made.append(kwargs)
        return _gap_at_step_2()

    import dart_hf.backends.transformers as tb

    monkeypatch.setattr(tb, "TransformersBackend", transformers_backend)
    accept_all.stop_rule = rule = lambda prompt: None  # any callable is a stop rule to `stop_rule_of`
    (judged,) = iterative_dart("m0", data, _config(), train, rounds=1, verifier=accept_all)
    assert judged.actions == {"imitate": 3} and made[-1]["stop_at_answer"] is rule
    (default,) = iterative_dart("m0", data, _config(), train, rounds=1)
    assert default.actions == {"explore": 3} and made[-1]["stop_at_answer"] is True
