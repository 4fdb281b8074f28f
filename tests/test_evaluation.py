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
    from dart_hf.verifiers import GoldCheck, Verdict

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


def test_evaluation_and_the_study_baselines_sample_from_scratch_through_one_helper():
    """Same jobs (prefix 0, the phase's own seed stream), and a failed request is the caller's to count."""
    from dart_hf import DartConfig
    from dart_hf.backends.base import RequestsFailed, derive_seed
    from dart_hf.example import parse_example
    from dart_hf.simulation import sample_from_scratch
    from dart_hf.study import conditions
    from dart_hf.verifiers import Verdict

    class Judge:
        def judge_many(self, pairs):
            return [Verdict(pred == gold) for gold, pred in pairs]

        def inspect_gold(self, gold):
            return None, False

    class Refuses40(ScriptedBackend):
        def generate(self, requests):
            self.requests = list(requests)
            out = super().generate(requests)
            bad = {i: RuntimeError("HTTP 400") for i, r in enumerate(requests) if r.prompt.startswith("What is 40")}
            if bad:
                raise RequestsFailed([None if i in bad else o for i, o in enumerate(out)], bad)
            return out

    config = DartConfig(prompt_template=TEMPLATE, seed=7)
    rows = [{"problem": p, "solution": "x \\boxed{42}", "answer": "42"} for p in ("What is 6*7?", "What is 40+2?")]
    examples = [parse_example(rows[0], config), None, parse_example(rows[1], config)]
    backend = Refuses40(sim={0: [True, False, True, True]})
    got = sample_from_scratch(examples, 2, "eval", backend, Judge(), config)
    assert [r.correct for r in got[0]] == [True, False] and got[1] is None and isinstance(got[2], RuntimeError)
    expected = [derive_seed(7, e.key, "eval", 0) for e in (examples[0], examples[2])]
    assert [(r.seed, r.first_sample, r.tag) for r in backend.requests] == [(s, 0, "eval") for s in expected]

    more = conditions.sample_from_scratch(examples, 2, backend, Judge(), config, first=2)
    assert [[r.correct for r in drawn] for drawn in more] == [[True, True], [], []]
    expected = [derive_seed(7, e.key, conditions.SCRATCH_PHASE, 0) for e in (examples[0], examples[2])]
    assert [(r.seed, r.first_sample, r.tag) for r in backend.requests] == [(s, 2, "scratch") for s in expected]
