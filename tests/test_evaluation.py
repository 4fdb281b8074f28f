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

    ds = datasets.Dataset.from_dict({
        "problem": ["p1", "p2", ""],
        "solution": [None, "x \\boxed{42}", None],  # test rows may come without a solution
        "answer": ["42", None, "1"],
    })
    backend = ScriptedBackend(sim={0: [True, False, True, None]})
    result = evaluate_student(backend, ds, DartConfig(prompt_template=TEMPLATE), n_samples=4, ks=(1, 2), progress=False)
    assert result["n_scored"] == 2 and result["errors"] == 1
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["pass@2"] == pytest.approx(1 - (2 / 4) * (1 / 3))
