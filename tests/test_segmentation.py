import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dart_hf.segmentation import join_given_steps, merge_steps, split_steps

texts = st.text(alphabet=st.sampled_from(list("ab \n\t{}\\x=1")), min_size=1, max_size=80).filter(str.strip)


@settings(max_examples=300, deadline=None)
@given(texts, st.one_of(st.none(), st.integers(1, 5)))
def test_paragraph_split_is_lossless(text, max_steps):
    steps = split_steps(text, max_steps=max_steps)
    assert "".join(steps) == text
    assert all(steps)
    if max_steps is not None:
        assert len(steps) <= max_steps


def test_paragraphs_keep_their_separator():
    text = "First step.\n\nSecond step.\n  \nThird.\n"
    assert split_steps(text) == ["First step.\n\n", "Second step.\n  \n", "Third.\n"]


def test_leading_and_trailing_blank_lines_do_not_make_empty_steps():
    text = "\n\nA\n\nB\n\n"
    steps = split_steps(text)
    assert steps == ["\n\nA\n\n", "B\n\n"]


def test_single_newlines_do_not_split():
    assert split_steps("a\nb\nc") == ["a\nb\nc"]


def test_max_steps_merges_adjacent_paragraphs_evenly():
    steps = [f"p{i}\n\n" for i in range(9)] + ["p9"]
    merged = merge_steps(steps, 3)
    assert len(merged) == 3
    assert "".join(merged) == "".join(steps)
    assert [m.count("p") for m in merged] == [4, 3, 3]  # cut where the running length passes 1/3, 2/3


def test_max_steps_one_gives_the_whole_solution():
    assert split_steps("a\n\nb\n\nc", max_steps=1) == ["a\n\nb\n\nc"]


def test_regex_splitter():
    text = "Step 1: x=1. Step 2: y=2. Step 3: done"
    steps = split_steps(text, splitter=r"(?<=\.) (?=Step)")
    assert steps == ["Step 1: x=1. ", "Step 2: y=2. ", "Step 3: done"]
    assert split_steps(text, splitter=re.compile(r"(?<=\.) ")) == steps


def test_callable_splitter_may_strip_separators():
    text = "One. Two.  Three."
    steps = split_steps(text, splitter=lambda t: [s.strip() for s in t.split(".") if s.strip()])
    assert "".join(steps) == text
    assert len(steps) == 3


def test_callable_splitter_inventing_text_is_an_error():
    with pytest.raises(ValueError, match="not in the solution"):
        split_steps("abc", splitter=lambda t: ["xyz"])


@pytest.mark.parametrize("bad", ["", "   \n\n  "])
def test_empty_solution_is_an_error(bad):
    with pytest.raises(ValueError, match="empty"):
        split_steps(bad)


def test_given_steps_are_joined_losslessly():
    steps = join_given_steps(["Let x = 1.", " So y = 2. ", "", "Answer 3."])
    assert steps == ["Let x = 1.\n\n", "So y = 2.\n\n", "Answer 3."]
    with pytest.raises(ValueError):
        join_given_steps(["", " "])
