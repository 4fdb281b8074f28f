import time

from hypothesis import given, settings
from hypothesis import strategies as st

from dart_hf.answers import AnswerStopper, _boxed_spans, extract_answer, extract_boxed


def test_nested_braces_are_kept():
    # the paper's code uses a non-greedy regex and gets "\frac{5" here
    assert extract_boxed(r"thus $\boxed{\frac{5}{6}}$.") == r"\frac{5}{6}"
    assert extract_boxed(r"\boxed{\sqrt{\frac{1}{2}}}") == r"\sqrt{\frac{1}{2}}"


def test_last_non_empty_box_wins():
    assert extract_boxed(r"\boxed{1} then \boxed{2}") == "2"
    assert extract_boxed(r"\boxed{7} and put it in \boxed{}") == "7"
    assert extract_boxed(r"\fbox{3}") == "3"


def test_unclosed_or_missing_box():
    assert extract_boxed(r"\boxed{\frac{1}{2}") is None
    assert extract_boxed("no box") is None
    assert extract_boxed("") is None and extract_boxed(None) is None


def test_boxed_spans_nested_and_top_level_only():
    text = r"a \boxed{\frac{\boxed{1}}{2}} b \fbox{{x}{y}} c \boxed{} d \boxed{\sqrt{2}"
    spans = [text[a:b] for a, b in _boxed_spans(text)]
    # boxes inside a box are content; an unclosed box ends the scan; stray braces outside boxes are text
    assert spans == [r"\frac{\boxed{1}}{2}", "{x}{y}", ""]
    other = r"} { \boxed{a}} \boxed{b}"
    assert [other[a:b] for a, b in _boxed_spans(other)] == ["a", "b"]
    assert _boxed_spans(r"\boxed{") == [] and _boxed_spans("") == []


def test_boxed_extraction_is_linear():
    """400k characters of boxes (a long trace that re-boxes as it goes) take milliseconds, not seconds."""
    text = r"\boxed{1}" * 44_000 + r" so \boxed{\frac{2}{3}}"
    start = time.perf_counter()
    assert extract_boxed(text) == r"\frac{2}{3}"
    assert time.perf_counter() - start < 1.0  # quadratic rescans took ~20 s here


def test_answer_phrase_fallback():
    assert extract_answer("So n = 890.\n\nThe answer is 890.") == "890"
    assert extract_answer("The final answer is $\\frac{1}{2}$.") == "\\frac{1}{2}"
    assert extract_answer("answer: 3.5. Done") == "3.5"
    assert extract_answer("the answer is 1, but maybe 2") == "1"
    assert extract_answer("The answer is 4. Wait, \\boxed{5}") == "5"  # a box beats a phrase
    assert extract_answer("The answer is 890.", phrase_fallback=False) is None
    assert extract_answer("I do not know.") is None


def feed_all(pieces):
    stopper = AnswerStopper()
    for i, piece in enumerate(pieces):
        if stopper.feed(piece):
            return i
    return None


def test_stopper_stops_after_the_closing_brace_of_a_non_empty_box():
    assert feed_all(["The ", "answer is \\bo", "xed{\\frac{1", "}{2}", "}", " and more"]) == 4
    assert feed_all(["put it in \\boxed{}", " ok"]) is None
    assert feed_all(["\\boxed{}", " so \\boxed{", "3}"]) == 2


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "{", "}", " ", "\\", "\\boxed{", "\\fbox{"]), max_size=25).map("".join),
    st.lists(st.integers(0, 40), max_size=8),
)
def test_stopper_agrees_with_a_full_rescan(text, cuts):
    """Fed in arbitrary pieces, the stopper fires on the first piece whose prefix has a non-empty box."""
    bounds = sorted({c for c in cuts if c < len(text)} | {0, len(text)})
    pieces = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    expected = next((i for i in range(len(pieces)) if extract_boxed("".join(pieces[: i + 1])) is not None), None)
    # extract_boxed ignores boxes after an unclosed one; so does the stopper (it waits for the close)
    assert feed_all(pieces) == expected
