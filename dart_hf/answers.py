"""Finding the final `\\boxed{...}` answer in a solution, nested braces included.

The reference code's non-greedy regex cuts `\\boxed{\\frac{1}{2}}` to `\\frac{1`; a brace counter does not.
"""

from __future__ import annotations

from typing import Optional

_BOXED = ("\\boxed{", "\\fbox{")


def _boxed_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the content of every complete top-level `\\boxed{...}`, in order."""
    spans = []
    i = 0
    while True:
        starts = [(text.find(tag, i), tag) for tag in _BOXED]
        starts = [(s, tag) for s, tag in starts if s != -1]
        if not starts:
            return spans
        start, tag = min(starts)
        depth, j = 1, start + len(tag)
        while j < len(text) and depth:
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
            j += 1
        if depth:  # unbalanced: the answer was cut off
            return spans
        spans.append((start + len(tag), j - 1))
        i = j


def extract_boxed(text: Optional[str]) -> Optional[str]:
    """Content of the last complete `\\boxed{...}` in `text`, or None.

    >>> extract_boxed(r"so $\\boxed{\\frac{5}{6}}$.")
    '\\\\frac{5}{6}'
    """
    if not text:
        return None
    spans = _boxed_spans(text)
    if not spans:
        return None
    start, end = spans[-1]
    return text[start:end].strip()


def has_complete_boxed(text: str) -> bool:
    """True once `text` contains a closed `\\boxed{...}`: the student has written its final answer."""
    return bool(_boxed_spans(text))


class AnswerStopper:
    """Incremental "has the final answer been written?" check for token-by-token decoding.

    Feeding pieces costs O(piece) amortised, unlike re-scanning the whole text at every step.
    """

    def __init__(self) -> None:
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
                        self.done = True
                        return True
            return False
        return self.done
