"""Multiple choice: is the chosen letter (or option text) the gold one?

The answer of an attempt is its final `\\boxed{}` or "the answer is X", read as a letter
("B", "(B)", "B.", "B) 42") or as an option's text. The gold may be a letter or the text of an option;
with the row's options (`choices_column`, a list of strings, lettered A, B, ...) a letter and its
option's text are the same answer. Pure string work: no process, no deadline, never a timeout.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Any, Optional

from ..answers import extract_answer
from .base import Attempt, GoldCheck, Verdict

_LETTER = re.compile(r"^\(?([A-Za-z])\)?(?:[.:)]|\s|$)")
_WRAPPERS = re.compile(r"\\(?:text|mathrm|textbf|mathbf)\{([^{}]*)\}")


def _clean(answer: str) -> str:
    s = _WRAPPERS.sub(r"\1", answer.strip().strip("$").strip())
    return " ".join(s.split()).rstrip(".").strip()


class ChoiceVerifier:
    """Judges multiple-choice answers by letter or option text (case and spacing do not matter).

    Args:
        choices_column: the row column with the options (lettered A, B, ... in order), if any.
        letters: how many letters count as choices when the row has no options (A..E by default).
    """

    instruction = "Please reason step by step, and put the letter of your choice within \\boxed{}."

    def __init__(self, choices_column: str = "choices", letters: int = 5) -> None:
        if not 1 <= letters <= 26:
            raise ValueError(f"letters must be between 1 and 26, got {letters}")
        self.choices_column = choices_column
        self.letters = letters

    @property
    def fingerprint(self) -> str:
        return f"choices_column={self.choices_column},letters={self.letters}"

    def extract_answer(self, text: str) -> Optional[str]:
        return extract_answer(text, True)

    def _letter(self, answer: Optional[str], options: Sequence[str]) -> Optional[str]:
        """The answer as a letter: its leading letter, or the letter of the option it spells out."""
        if answer is None:
            return None
        s = _clean(answer)
        n = len(options) or self.letters
        m = _LETTER.match(s)
        if m and m.group(1).upper() in string.ascii_uppercase[:n]:
            return m.group(1).upper()
        folded = s.casefold()
        for i, option in enumerate(options):
            if isinstance(option, str) and _clean(option).casefold() == folded:
                return string.ascii_uppercase[i]
        return None

    def _judge(self, gold: str, answer: Optional[str], options: Sequence[str]) -> Verdict:
        if answer is None or not answer.strip():
            return Verdict(False)
        g, p = self._letter(gold, options), self._letter(answer, options)
        if g is not None:
            return Verdict(p == g)
        return Verdict(_clean(gold).casefold() == _clean(answer).casefold())

    def judge_many(self, pairs: Sequence[tuple[str, Optional[str]]]) -> list[Verdict]:
        return [self._judge(gold, pred, ()) for gold, pred in pairs]

    def judge_attempts(self, attempts: Sequence[Attempt]) -> list[Verdict]:
        return [self._judge(a.gold, a.answer, _options(a.row.get(self.choices_column))) for a in attempts]

    def inspect_gold(self, gold: str) -> GoldCheck:
        if not gold or not _clean(gold):
            return GoldCheck("gold answer is empty")
        return GoldCheck(None)

    def __repr__(self) -> str:
        return f"ChoiceVerifier(choices_column={self.choices_column!r})"


def _options(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else []
