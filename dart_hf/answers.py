"""Finding the final `\\boxed{...}` answer in a solution, nested braces included.

The reference code's non-greedy regex cuts `\\boxed{\\frac{1}{2}}` to `\\frac{1`; a brace counter does not.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Optional, Protocol, Union

_BOXED = ("\\boxed{", "\\fbox{")


# One left-to-right pass over tags and braces: searching for each tag again after every box rescans
# the rest of the text (quadratic: seconds for a long trace that re-boxes as it goes).
_TOKENS = re.compile(r"\\boxed\{|\\fbox\{|[{}]")


def _boxed_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the content of every complete top-level `\\boxed{...}`, in order (linear time).

    Braces outside a box are plain text; a box inside a box is content; an unclosed box ends the scan
    (the answer was cut off).
    """
    spans: list[tuple[int, int]] = []
    depth, start = 0, 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if depth == 0:
            if token[0] == "\\":
                depth, start = 1, match.end()
        elif token == "}":
            depth -= 1
            if depth == 0:
                spans.append((start, match.start()))
        else:  # "{" or a nested tag, which ends in "{"
            depth += 1
    return spans


def extract_boxed(text: Optional[str]) -> Optional[str]:
    """Content of the last complete, non-empty `\\boxed{...}` in `text`, or None.

    Empty boxes are skipped: weak students echo the instruction ("put it in \\boxed{}").

    >>> extract_boxed(r"so $\\boxed{\\frac{5}{6}}$.")
    '\\\\frac{5}{6}'
    """
    if not text:
        return None
    contents = [text[a:b].strip() for a, b in _boxed_spans(text)]
    contents = [c for c in contents if c]
    return contents[-1] if contents else None


# "The answer is 890." / "Final answer: \frac{1}{2}" -- what small students write instead of \boxed{}.
_ANSWER_PHRASE = re.compile(
    r"answer\s*(?:is|:|=)\s*(?:\$\s*)?(?P<answer>[^\n]{1,60}?)\s*\$?\s*(?=\.(?:\s|$)|[,;\n]|$)",
    re.IGNORECASE,
)


def extract_answer(text: Optional[str], phrase_fallback: bool = True) -> Optional[str]:
    """The final answer of a solution: its last non-empty `\\boxed{}`, else (optionally) its last
    "the answer is X" statement, else None."""
    boxed = extract_boxed(text)
    if boxed is not None or not phrase_fallback or not text:
        return boxed
    matches = [m.group("answer").strip() for m in _ANSWER_PHRASE.finditer(text)]
    matches = [m for m in matches if m]
    return matches[-1] if matches else None


class AnswerStopper:
    """Incremental "has the final answer been written?" check for token-by-token decoding.

    Feeding pieces costs O(piece) amortised, unlike re-scanning the whole text at every step.
    """

    name = "boxed"

    def __init__(self, prompt: str = "") -> None:  # the prompt is not needed: a box opens in the continuation
        self._text = ""
        self._scan_from = 0  # where to look for the next opening tag
        self._open: Optional[int] = None  # index just past an opening tag still being closed
        self._depth = 0
        self.done = False

    def feed(self, piece: str) -> bool:
        """Append generated text; return True when a `\\boxed{...}` has just been closed."""
        if self.done or not piece:
            return self.done
        self._text += piece
        while not self.done:
            if self._open is None:
                hits = [(self._text.find(t, self._scan_from), t) for t in _BOXED]
                hits = [(h, t) for h, t in hits if h != -1]
                if not hits:
                    # keep the tail that could be the start of a tag split across pieces
                    self._scan_from = max(self._scan_from, len(self._text) - max(map(len, _BOXED)) + 1)
                    return False
                h, t = min(hits)
                self._open = h + len(t)
                self._depth = 1
                self._scan_from = self._open
            while self._scan_from < len(self._text):
                c = self._text[self._scan_from]
                self._scan_from += 1
                if c == "{":
                    self._depth += 1
                elif c == "}":
                    self._depth -= 1
                    if self._depth == 0:
                        if self._text[self._open : self._scan_from - 1].strip():
                            self.done = True
                            return True
                        self._open = None  # an empty \boxed{} is no answer: keep looking
                        break
            else:
                return False
        return self.done

    @property
    def end(self) -> int:
        """Offset in the fed text just past the answer's closing brace (meaningful once `done`)."""
        return self._scan_from


class Stopper(Protocol):
    """An incremental "has the answer been written?" check, fed a continuation piece by piece."""

    done: bool

    def feed(self, piece: str) -> bool:
        """Append generated text; return True once the answer is complete."""
        ...

    @property
    def end(self) -> int:
        """Offset in the fed text just past the answer (once `done`); a cut keeps the whole token holding it."""
        ...


StopRule = Callable[[str], Stopper]
"""Makes a fresh `Stopper` for one sample, given the full prompt it continues (`AnswerStopper`,
`dart_hf.verifiers.code.CodeBlockStopper`). A verifier names its rule in a `stop_rule` attribute."""


def make_stopper(rule: Union[bool, StopRule, None], prompt: str) -> Optional[Stopper]:
    """The stopper of one sample: None (no rule), the `\\boxed{}` rule (`True`), or `rule(prompt)`."""
    if not rule:
        return None
    return AnswerStopper() if rule is True else rule(prompt)


def stop_rule_label(rule: Union[bool, StopRule, None]) -> Optional[str]:
    """How a backend's fingerprint names a stop rule that changes results: None for the default (`True`)."""
    if rule is True:
        return None
    if not rule:
        return "stop_at_answer=False"
    return f"stop_rule={getattr(rule, 'name', None) or getattr(rule, '__qualname__', type(rule).__name__)}"
