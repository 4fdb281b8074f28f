"""Splitting an expert solution into steps, losslessly.

Every step keeps the separator that follows it, so `"".join(steps) == solution` always holds and the
expert prefix s_1..s_t is simply `"".join(steps[:t])`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Optional, Union

PARAGRAPH_SEPARATOR = re.compile(r"\n[ \t\r\f\v]*\n\s*")
STEP_JOINER = "\n\n"

SplitterLike = Union[None, str, "re.Pattern[str]", Callable[[str], Sequence[str]]]


def _split_on(text: str, separator: re.Pattern[str]) -> list[str]:
    steps, start = [], 0
    for match in separator.finditer(text):
        if match.start() == 0:  # leading blank lines belong to the first step
            continue
        if match.end() >= len(text):  # trailing blank lines belong to the last step
            break
        steps.append(text[start : match.end()])
        start = match.end()
    steps.append(text[start:])
    return steps


def _locate(text: str, pieces: Sequence[str]) -> list[str]:
    """Map a callable's steps (possibly stripped of separators) back onto `text`, losslessly."""
    bounds, pos = [], 0
    for piece in pieces:
        if not isinstance(piece, str):
            raise TypeError(f"splitter must return strings, got {type(piece).__name__}")
        if not piece.strip():
            continue
        found = text.find(piece, pos)
        if found == -1:
            raise ValueError(f"splitter returned a step that is not in the solution (in order): {piece[:60]!r}")
        bounds.append(found)
        pos = found + len(piece)
    if not bounds:
        return [text]
    bounds[0] = 0
    return [text[a:b] for a, b in zip(bounds, bounds[1:] + [len(text)])]


def merge_steps(steps: Sequence[str], max_steps: int) -> list[str]:
    """Merge adjacent steps into at most `max_steps` groups of roughly equal length (in characters)."""
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    if len(steps) <= max_steps:
        return list(steps)
    total = sum(len(s) for s in steps)
    groups: list[str] = []
    current, consumed = "", 0
    for i, step in enumerate(steps):
        current += step
        consumed += len(step)
        remaining_steps = len(steps) - i - 1
        remaining_groups = max_steps - len(groups) - 1
        target = total * (len(groups) + 1) / max_steps
        if remaining_groups > 0 and (consumed >= target or remaining_steps == remaining_groups):
            groups.append(current)
            current = ""
    groups.append(current)
    return groups


def split_steps(text: str, splitter: SplitterLike = None, max_steps: Optional[int] = None) -> list[str]:
    """Split `text` into steps such that `"".join(steps) == text`.

    Args:
        splitter: None for paragraphs (blank lines), a regex (string or compiled) matching the
            separators, or a callable returning the steps (with or without their separators; they
            are located in `text` in order, so nothing is lost).
        max_steps: merge adjacent steps into at most this many.
    """
    if not isinstance(text, str):
        raise TypeError(f"solution must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ValueError("solution is empty")
    if splitter is None:
        steps = _split_on(text, PARAGRAPH_SEPARATOR)
    elif isinstance(splitter, (str, re.Pattern)):
        steps = _split_on(text, re.compile(splitter) if isinstance(splitter, str) else splitter)
    elif callable(splitter):
        steps = _locate(text, list(splitter(text)))
    else:
        raise TypeError(f"splitter must be None, a regex or a callable, got {type(splitter).__name__}")
    steps = [s for s in steps if s] or [text]
    if max_steps is not None:
        steps = merge_steps(steps, max_steps)
    assert "".join(steps) == text, "segmentation must be lossless"
    return steps


def join_given_steps(steps: Sequence[str], joiner: str = STEP_JOINER) -> list[str]:
    """Pre-split steps (e.g. CHAMP's) as lossless segments: each but the last carries `joiner`.

    Blank steps are skipped; anything but a list of strings is refused (a string would be split
    into characters, and a dropped non-string step would silently shorten the expert solution).
    """
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence):
        raise TypeError(f"must be a list of strings, got {type(steps).__name__}")
    for i, step in enumerate(steps):
        if not isinstance(step, str):
            raise TypeError(f"must be a list of strings, got {type(step).__name__} at index {i}")
    clean = [s.strip() for s in steps if s.strip()]
    if not clean:
        raise ValueError("no non-empty steps given")
    return [s + joiner for s in clean[:-1]] + [clean[-1]]
