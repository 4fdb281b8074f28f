import pytest

from dart_hf.evaluation import evaluate_student, pass_at_k

from scripted import TEMPLATE, ScriptedBackend


def test_pass_at_k_matches_the_definition():
    assert pass_at_k(4, 0, 1) == 0.0
    assert pass_at_k(4, 4, 2) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - (3 / 4) * (2 / 3))  # 1 - C(3,2)/C(4,2)
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_evaluate_student_scores_answers_with_math_verify():
    import datasets

    from dart_hf import DartConfig

    ds = datasets.Dataset.from_dict(
        {
            "problem": ["p1", "p2", ""],
            "solution": [None, "x \\boxed{42}", None],  # test rows may come without a solution
            "answer": ["42", None, "1"],
        }
    )
    backend = ScriptedBackend(sim={0: [True, False, True, None]})
    result = evaluate_student(backend, ds, DartConfig(prompt_template=TEMPLATE), n_samples=4, ks=(1, 2), progress=False)
    assert result["n_scored"] == 2 and result["errors"] == 1
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["pass@2"] == pytest.approx(1 - (2 / 4) * (1 / 3))


def test_grouping_problems_into_backend_calls_does_not_change_the_scores():
    """Problems share backend calls for speed; samples are seeded per problem, so the counts are the same."""
    from dart_hf import DartConfig
    from dart_hf.tasks.planted_gap import PlantedGapTask
    from dart_hf.tasks.student import planted_student

    ds = PlantedGapTask().generate(6, seed=3)
    backend_calls = []

    from dart_hf.backends.transformers import TransformersBackend

    backend = TransformersBackend(planted_student(), device="cpu")
    generate = backend.generate
    backend.generate = lambda requests: backend_calls.append(len(requests)) or generate(requests)
    cfg = DartConfig(max_new_tokens=48, seed=1)
    one = evaluate_student(backend, ds, cfg, n_samples=2, progress=False, batch_problems=1)
    assert backend_calls == [1] * 6
    backend_calls.clear()
    grouped = evaluate_student(backend, ds, cfg, n_samples=2, progress=False, batch_problems=4)
    assert backend_calls == [4, 2]
    assert [r["correct"] for r in one["rows"]] == [r["correct"] for r in grouped["rows"]]
    assert one["accuracy"] > 0.5  # the planted-gap student solves most plain problems


def test_evaluate_student_takes_another_verifier():
    import datasets

    from dart_hf import DartConfig
    from dart_hf.verification import GoldCheck, Verdict

    class ExactMatch:
        def judge_many(self, pairs):
            return [Verdict(pred == gold) for gold, pred in pairs]

        def inspect_gold(self, gold):
            return GoldCheck(None)

    ds = datasets.Dataset.from_dict({"problem": ["p1", "p2"], "solution": [None, None], "answer": ["42", "42.0"]})
    config = DartConfig(prompt_template=TEMPLATE)
    backend = ScriptedBackend(sim={0: [True, True]}, n_sim=2)
    by_math = evaluate_student(backend, ds, config, n_samples=2, progress=False)
    by_string = evaluate_student(backend, ds, config, n_samples=2, progress=False, verifier=ExactMatch())
    assert [r["correct"] for r in by_math["rows"]] == [2, 2]
    assert [r["correct"] for r in by_string["rows"]] == [2, 0]  # "42" is not the string "42.0"
