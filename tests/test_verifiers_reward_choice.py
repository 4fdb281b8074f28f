"""RewardFunctionVerifier with TRL's own accuracy_reward and a user function; ChoiceVerifier; `--verifier` specs."""

from __future__ import annotations

import pickle

import datasets
import pytest

from dart_hf import DartAdapter, DartConfig
from dart_hf.answers import extract_answer
from dart_hf.errors import UsageError
from dart_hf.verifiers import (
    Attempt,
    ChoiceVerifier,
    CodeVerifier,
    MathVerifier,
    RewardFunctionVerifier,
    make_verifier,
)
from dart_hf.verifiers.base import judge_attempts
from tests.scripted import TEMPLATE, ScriptedBackend, expert

SOLUTION = "We add the parts: $\\frac{1}{2} + \\frac{1}{4} = \\frac{3}{4}$, so the answer is \\boxed{\\frac{3}{4}}."
COMPLETIONS = [
    "Adding, I get \\boxed{\\frac{3}{4}}.",
    "It is \\boxed{0.75}.",
    "So \\boxed{\\frac{6}{8}}",
    "Hence \\boxed{\\frac{1}{2}}.",
    "I think it is \\boxed{3/5}",
    "No idea.",
    "\\boxed{\\dfrac{3}{4}}",
]


def test_trl_accuracy_reward_agrees_with_math_verifier():
    from trl.rewards import accuracy_reward

    row = {"problem": "What is 1/2 + 1/4?", "solution": SOLUTION}
    gold = extract_answer(SOLUTION)
    attempts = [Attempt(gold, extract_answer(c), c, row) for c in COMPLETIONS]
    reward = RewardFunctionVerifier(accuracy_reward)
    with MathVerifier() as math:
        by_math = [v[0] for v in judge_attempts(math, attempts)]
    by_trl = [v[0] for v in judge_attempts(reward, attempts)]
    assert by_trl == by_math
    assert True in by_trl and False in by_trl  # the set tells right from wrong, not one verdict for all


def test_unparsable_solution_is_no_verdict():
    from trl.rewards import accuracy_reward

    verdicts = RewardFunctionVerifier(accuracy_reward).judge_attempts(
        [Attempt("?", "1", "\\boxed{1}", {"solution": "no math here at all"})]
    )
    assert [tuple(v) for v in verdicts] == [(False, True)]


def keyword_reward(prompts, completions, keyword, **kwargs):
    """A user reward: 1.0 when the completion mentions the row's keyword, None when the row has none."""
    return [None if k is None else float(k in c) for c, k in zip(completions, keyword)]


def test_user_reward_gets_columns_as_keyword_lists_like_grpo():
    seen = {}

    def spy(prompts, completions, **kwargs):
        seen.update(prompts=prompts, completions=completions, kwargs=kwargs)
        return [0.2, 0.9]

    rows = [{"problem": "p1", "solution": "s1", "level": 1}, {"problem": "p2", "solution": "s2", "level": 5}]
    verdicts = RewardFunctionVerifier(spy, threshold=0.5).judge_attempts(
        [Attempt("g", None, "text one", rows[0]), Attempt("g", None, "text two", rows[1])]
    )
    assert [v.correct for v in verdicts] == [False, True]
    assert seen["completions"] == [
        [{"role": "assistant", "content": "text one"}],
        [{"role": "assistant", "content": "text two"}],
    ]
    assert seen["prompts"] == [[{"role": "user", "content": "p1"}], [{"role": "user", "content": "p2"}]]
    assert seen["kwargs"]["level"] == [1, 5] and seen["kwargs"]["solution"] == ["s1", "s2"]
    assert "trainer_state" in seen["kwargs"]


def test_user_reward_drives_the_adapter_and_its_fingerprint():
    rows = [{"problem": "Name it.", "solution": expert(2), "answer": "x", "keyword": "42"}]
    verifier = RewardFunctionVerifier(keyword_reward, threshold=1.0, conversational=False)
    backend = ScriptedBackend(sim={0: [False] * 4, 1: [True] * 4, 2: [True] * 4})
    adapter = DartAdapter(backend, DartConfig(prompt_template=TEMPLATE), verifier=verifier, progress=False)
    out = datasets.Dataset.from_list(rows).map(adapter, batched=True, load_from_cache_file=False)
    assert out["dart_step_success"] == [[0.0, 1.0, 1.0]]
    other = DartAdapter(backend, DartConfig(prompt_template=TEMPLATE), progress=False)
    assert adapter.fingerprint != other.fingerprint
    tighter = RewardFunctionVerifier(keyword_reward, threshold=0.5, conversational=False)
    assert (
        DartAdapter(backend, DartConfig(prompt_template=TEMPLATE), verifier=tighter).fingerprint != adapter.fingerprint
    )
    assert pickle.loads(pickle.dumps(verifier)).fingerprint == verifier.fingerprint


@pytest.mark.parametrize(
    "gold, answer, options, expected",
    [
        ("B", "B", [], True),
        ("B", "(b)", [], True),
        ("B", "B) 12", [], True),
        ("B", "C", [], False),
        ("B", "12", ["10", "12", "14"], True),
        ("12", "B", ["10", "12", "14"], True),
        ("12", "c", ["10", "12", "14"], False),
        ("Paris", "\\text{paris}", [], True),
        ("B", None, [], False),
    ],
)
def test_choice_letters_and_option_texts(gold, answer, options, expected):
    verdict = ChoiceVerifier().judge_attempts([Attempt(gold, answer, "", {"choices": options})])[0]
    assert verdict.correct is expected and not verdict.timed_out


def test_choice_reads_the_answer_phrase():
    v = ChoiceVerifier()
    assert v.extract_answer("Looking at the options, the answer is (C).") == "(C)"
    assert v.judge_many([("C", v.extract_answer("so \\boxed{C}"))])[0].correct


def test_make_verifier_names_and_module_function():
    assert isinstance(make_verifier("math", timeout=3.0), MathVerifier)
    assert make_verifier("math", timeout=3.0).timeout == 3.0
    assert isinstance(make_verifier("code"), CodeVerifier)
    assert isinstance(make_verifier("choice"), ChoiceVerifier)
    wrapped = make_verifier("trl.rewards:accuracy_reward")
    assert isinstance(wrapped, RewardFunctionVerifier) and wrapped.reward_func.__name__ == "accuracy_reward"
    assert isinstance(make_verifier("dart_hf.verifiers:ChoiceVerifier"), ChoiceVerifier)
    for bad, message in [
        ("maths", "must be one of math, code, choice"),
        ("no_such_module_x:f", "cannot import"),
        ("trl.rewards:nope", "has no attribute"),
        ("dart_hf.verifiers:VERIFIER_NAMES", "neither a verifier nor a reward function"),
    ]:
        with pytest.raises(UsageError, match=message):
            make_verifier(bad)


def test_the_default_verifier_keeps_the_adapters_fingerprint():
    config = DartConfig(prompt_template=TEMPLATE)
    backend = ScriptedBackend(sim={})
    default = DartAdapter(backend, config).fingerprint
    assert DartAdapter(backend, config, verifier=make_verifier("math", config.verify_timeout)).fingerprint == default
    assert DartAdapter(backend, config, verifier=make_verifier("math", 9.0)).fingerprint != default
    assert DartAdapter(backend, config, verifier=make_verifier("code")).fingerprint != default
    assert DartAdapter(backend, config, verifier=make_verifier("choice")).fingerprint != default
