"""The on-policy check: the student's text in a row is scored in the training format against what was recorded when
it was sampled; a continuation cut inside a token is flagged, one made of whole sampled tokens is not."""

from __future__ import annotations

import math

import datasets
import pytest

from dart_hf.backends.base import GenerationRequest
from dart_hf.backends.transformers import TransformersBackend
from dart_hf.cards import dataset_card
from dart_hf.onpolicy import check_rows, on_policy_check
from dart_hf.report.html import render_report, report_context
from dart_hf.rows import student_sample
from dart_hf.schema import OUTPUT_FEATURES
from dart_hf.simulation import Rollout

PROBLEM = (
    "Ivo has 3 books. He gives away 1. He buys 3 more. He gets 3 more. He is given 2 more. How many books does Ivo "
    "have now?\n\nPlease reason step by step, and put your final answer within \\boxed{}."
)
PREFIXES = ["3 - 1 = 2\n\n", "3 - 1 = 2\n\n2 + 3 = 5\n\n"]  # expert steps of a planted-gap problem before its gap


def _row(prompt, prefix, completion, *, text=None) -> dict:
    """An adapted row as `DartAdapter` assembles it: expert prefix + the student's text (`text`, default as sampled)."""
    student = completion.text if text is None else text
    return {
        "prompt": prompt,
        "completion": [{"role": "assistant", "content": prefix + student}],
        "dart_student_start": len(prefix),
        "dart_student_sample": student_sample(Rollout(0, completion, None, True)),
    }


@pytest.fixture(scope="module")
def planted():
    from dart_hf.tasks.student import planted_student

    return TransformersBackend(planted_student(), device="cpu")


def test_planted_student_own_words_are_on_policy_and_the_old_cut_is_flagged(planted):
    """The defect of issue 17, on the shipped student: `}.` is one token; cutting after `}` costs ~15 nats."""
    prompt = [{"role": "user", "content": PROBLEM}]
    head = planted.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    requests = [GenerationRequest(head + p, n=3, seed=3, temperature=0.7, max_new_tokens=64) for p in PREFIXES]
    sampled = [(p, c) for p, cs in zip(PREFIXES, planted.generate(requests)) for c in cs]
    assert all(c.finish_reason == "answer" and c.text.endswith("}.") for _, c in sampled)  # closing token kept whole
    good = [_row(prompt, p, c) for p, c in sampled]
    checks = check_rows(good, planted)
    assert (
        [c.tokens_trained for c in checks] == [c.tokens_sampled for c in checks] == [c.num_tokens for _, c in sampled]
    )
    assert all(abs(c.gap) < 1e-3 and not c.disagrees for c in checks)
    assert all(c.end_nll < 0.1 for c in checks)  # the student does end its turn after "}."
    assert all(c.suffix_nll >= c.end_nll for c in checks)  # the template's tokens from its end-of-turn on

    # what the brace cut used to train on: "\boxed{10}" + end-of-turn, with the log-prob recorded for "}."
    cut = [_row(prompt, p, c, text=c.text[:-1]) for p, c in sampled]
    checks = check_rows(cut, planted)
    assert all(c.disagrees and c.gap > 5 and c.worst_token == "}" and c.worst_token_nll > 5 for c in checks)

    summary = on_policy_check([*good, cut[0]], planted)
    assert (summary["rows"], summary["disagreeing"]) == (len(good) + 1, 1)
    assert summary["worst"][0]["row"] == len(good) and summary["worst"][0]["disagrees"]
    assert f"1 of {len(good) + 1} rows" in summary["warning"] and "'}'" in summary["warning"]
    clean = on_policy_check(good, planted)
    assert clean["disagreeing"] == 0 and clean["warning"] is None
    assert clean["nll_per_token_trained"] == pytest.approx(clean["nll_per_token_sampled"], abs=1e-4)


def test_text_that_does_not_retokenize_to_the_sampled_tokens_is_flagged(tiny_student):
    """A random tiny model samples lone UTF-8 bytes; decoded, they become other tokens: not what it sampled."""
    backend = TransformersBackend(tiny_student, device="cpu", stop_at_answer=False)
    tok = backend.tokenizer
    prompt = [{"role": "user", "content": "What is 6 * 7?"}]
    head = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    completions = backend.generate([GenerationRequest(head, n=4, seed=0, temperature=0.7, max_new_tokens=12)])[0]
    retokenized = [len(tok(c.text, add_special_tokens=False)["input_ids"]) for c in completions]
    assert all(n != c.num_tokens for n, c in zip(retokenized, completions))  # the premise, measured
    checks = check_rows([_row(prompt, "", c) for c in completions], backend)
    assert [c.tokens_trained for c in checks] == retokenized and all(c.disagrees for c in checks)


def test_rows_without_student_text_or_log_probs_and_server_students(planted):
    prompt = [{"role": "user", "content": PROBLEM}]
    head = planted.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    (c,) = planted.generate([GenerationRequest(head, n=1, seed=0, temperature=0.7, max_new_tokens=64)])[0]
    expert = {**_row(prompt, "", c), "dart_student_start": -1, "dart_student_sample": student_sample(None)}
    unrecorded = _row(prompt, "", c)
    unrecorded["dart_student_sample"] = {**unrecorded["dart_student_sample"], "logprob": math.nan}
    summary = on_policy_check([expert, unrecorded], planted)
    assert (summary["rows"], summary["rows_with_student_text"], summary["unrecorded"]) == (1, 1, 1)
    assert summary["disagreeing"] == 0 and summary["nll_per_token_sampled"] is None
    assert summary["nll_per_token_trained"] > 0

    class ServerLike:
        fingerprint, tokenizer, context_length = "openai:m", None, None

        def generate(self, requests):  # pragma: no cover - never called
            raise AssertionError

    skipped = on_policy_check([unrecorded], ServerLike())
    assert skipped["checked"] is False and "ServerLike" in skipped["reason"]
    assert on_policy_check([expert], ServerLike())["rows"] == 0  # nothing to score: no weights needed


def test_report_and_card_show_the_check_and_its_warning():
    stats = {"n_examples": 0, "usable": 0, "actions": {}, "config": None}
    stats["on_policy"] = {
        "checked": True,
        "rows": 3,
        "rows_with_student_text": 3,
        "unrecorded": 0,
        "tokens": 90,
        "nll_per_token_trained": 0.52,
        "nll_per_token_sampled": 0.02,
        "mean_abs_gap": 15.6,
        "end_nll_mean": 11.2,
        "disagreeing": 3,
        "tolerance": "|gap| > 1 nat + 0.01 nat/token, or another token count",
        "worst": [
            {
                "row": 7,
                "tokens_sampled": 30,
                "tokens_trained": 30,
                "nll_sampled": 0.6,
                "nll_trained": 16.2,
                "gap": 15.6,
                "worst_token": "}",
                "worst_token_nll": 15.6,
                "end_nll": 11.2,
                "disagrees": True,
            }
        ],
        "warning": "3 of 3 rows train the student on text it did not sample as written",
    }
    empty = datasets.Dataset.from_dict({name: [] for name in OUTPUT_FEATURES}, features=OUTPUT_FEATURES)
    html = render_report(report_context(empty, stats))
    assert "On-policy check: 3 of 3 rows train the student" in html
    assert "0.520 nats/token in the training format vs 0.020 when sampled; 3 disagree" in html
    assert "<td>16.200 / 0.600</td>" in html
    card = str(dataset_card(stats))
    assert "- **warning**: 3 of 3 rows train the student" in card
    assert "| 7 | 30 / 30 | 16.200 / 0.600 | 15.600 |" in card

    stats["on_policy"] = {"checked": False, "reason": "the student runs in OpenAIServerBackend, not in this process"}
    assert "not checked: the student runs in OpenAIServerBackend" in str(dataset_card(stats))
