"""The code stop rule: generation ends once the fenced block holding the answer is closed.

Why: after its function, SmolLM2 goes on with prose and a "usage example" block, which the
last-code-block rule then judges (and the tokens are spent for nothing). Backend plumbing is tested
in test_transformers_backend.py and test_openai_backend.py; the verifier's side here.
"""

from __future__ import annotations

import pytest

from dart_hf.answers import AnswerStopper, make_stopper, stop_rule_label
from dart_hf.backends.openai.wire import parse_completions
from dart_hf.verifiers import ChoiceVerifier, CodeVerifier, MathVerifier
from dart_hf.verifiers.base import stop_rule_of
from dart_hf.verifiers.code import CodeBlockStopper, extract_code

USER = "<|im_start|>user\nComplete:\n```python\ndef f():\n```\nWrite it in one ```python code block.<|im_end|>\n"
HEAD = USER + "<|im_start|>assistant\n"
FUNCTION = "```python\ndef f():\n    return 1\n```"
USAGE = "\n\nUsage:\n```python\nprint(f())\n```\n"


def feed_pieces(stopper, pieces: list[str]) -> str:
    """What a decoder keeps: pieces up to and including the one on which the stopper fires."""
    kept = ""
    for piece in pieces:
        kept += piece
        if stopper.feed(piece):
            break
    return kept


def test_stops_after_the_first_block_the_continuation_opens_not_at_the_users_block():
    text = "Sure:\n" + FUNCTION + USAGE
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]  # cuts fall anywhere, fences included
    kept = feed_pieces(CodeBlockStopper(HEAD), pieces)
    assert kept.startswith("Sure:\n" + FUNCTION) and len(kept) < len("Sure:\n" + FUNCTION) + 3
    assert extract_code(kept) == "def f():\n    return 1\n"  # the judged code is the function, not the usage line
    assert extract_code(text) == "print(f())\n"  # what the last-block rule judged without the stop


def test_a_block_opened_by_the_prompt_stops_at_its_own_close():
    # t >= 1: the expert prefix opened the block; the continuation writes the body and closes it
    prompt = HEAD + "```python\ndef f():"
    stopper = CodeBlockStopper(prompt)
    assert feed_pieces(stopper, ["\n   ", " return", " 1", "\n", "```", "\n\n", "More"]) == "\n    return 1\n```"
    whole = CodeBlockStopper(prompt)  # one feed (a server's whole text): `end` is just past the backticks
    text = "\n    return 1\n```\n\nMore ```python\nx\n```"
    assert whole.feed(text) and text[: whole.end] == "\n    return 1\n```"


def test_only_backticks_that_begin_a_line_close_the_block_and_the_pieces_do_not_matter():
    prompt = HEAD + "```python\ndef f():"
    stopper = CodeBlockStopper(prompt)
    assert not stopper.feed('\n    s = "```"\n    # ```python\n  ``')  # mid-line fences; two backticks
    assert stopper.feed("`")
    text = '\n    s = "```"\n    return s\n```python\nmore'
    ends = set()
    for size in (1, 2, 3, 5, len(text)):
        s = CodeBlockStopper(prompt)
        kept = feed_pieces(s, [text[i : i + size] for i in range(0, len(text), size)])
        ends.add(s.end)
        assert kept.startswith(text[: s.end]) and len(kept) - s.end < size
    assert ends == {text.index("```python") + 3}


def test_a_prompt_that_ends_with_the_closed_answer_block_stops_at_once():
    # t = T: the expert wrote the whole block; the student adds nothing to judge
    stopper = CodeBlockStopper(HEAD + FUNCTION + "\n")
    assert stopper.feed("Here") and stopper.end == 0
    # but a prompt whose last closed block is the user's (t = 0) does not
    assert not CodeBlockStopper(HEAD).feed("Here is the code")


def test_verifiers_name_their_stop_rule_and_the_backends_fingerprint_it():
    assert stop_rule_of(CodeVerifier()) is CodeBlockStopper
    assert stop_rule_of(MathVerifier()) is True and stop_rule_of(ChoiceVerifier()) is True
    assert stop_rule_of(None) is True
    assert isinstance(make_stopper(True, "p"), AnswerStopper) and make_stopper(False, "p") is None
    assert isinstance(make_stopper(CodeBlockStopper, HEAD), CodeBlockStopper)
    assert stop_rule_label(True) is None  # the default leaves old fingerprints alone
    assert stop_rule_label(False) == "stop_at_answer=False"
    assert stop_rule_label(CodeBlockStopper) == "stop_rule=code_block"


@pytest.mark.parametrize(
    "tokens, kept",
    [
        (["\n   ", " return", " 1", "\n", "```\n", "\nMore"], "\n    return 1\n```\n"),  # the whole closing token
        (["\n   ", " return", " 1", "\n``", "`", " more"], "\n    return 1\n```"),
        (["\n   ", " return", " 1", "\n", "```python", "\n"], "\n    return 1\n```python"),
    ],
)
def test_server_texts_are_cut_after_the_whole_token_that_closes_the_block(tokens, kept):
    text = "".join(tokens)
    choice = {
        "index": 0,
        "text": text,
        "finish_reason": "length",
        "logprobs": {"tokens": tokens, "token_logprobs": [-0.5] * len(tokens)},
    }
    (c,) = parse_completions({"choices": [choice]}, CodeBlockStopper, len, None, HEAD + "```python\ndef f():")
    assert (c.text, c.finish_reason) == (kept, "answer")
    n_kept = next(k for k in range(1, len(tokens) + 1) if "".join(tokens[:k]) == kept)
    assert c.num_tokens == n_kept and c.logprob == -0.5


def test_adapt_gives_a_server_student_the_verifier_and_its_stop_rule():
    # `dart-hf adapt --server_urls ... --verifier code` used to build its adapter without the verifier (math judged code)
    from dart_hf import DartConfig
    from dart_hf.scripts.adapt import AdaptScriptArguments, build_adapter

    args = AdaptScriptArguments(dataset_name="humaneval", student="m", server_urls=["http://127.0.0.1:9"])
    verifier = CodeVerifier()
    adapter = build_adapter(args, DartConfig(), verifier)
    assert adapter.verifier is verifier and adapter.backend.stop_at_answer is CodeBlockStopper
    args.stop_at_answer = False
    assert build_adapter(args, DartConfig(), verifier).backend.stop_at_answer is False
