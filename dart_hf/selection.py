"""Choosing one correct student continuation to replace the expert's steps after the gap."""

from __future__ import annotations

import random
from collections.abc import Sequence

from .backends.base import Completion


def select_continuation(candidates: Sequence[Completion], policy: str, seed: int) -> tuple[int, str]:
    """Index of the chosen candidate and the policy actually applied.

    `logprob` picks the highest mean token log-prob (the student's most "native" phrasing); when the
    backend gave no log-probs (some servers do not) it falls back to `shortest` and says so.
    Ties go to the earliest candidate, so the choice is deterministic.
    """
    if not candidates:
        raise ValueError("no candidates to select from")
    if policy == "logprob":
        if all(c.logprob is not None for c in candidates):
            return max(range(len(candidates)), key=lambda i: (candidates[i].logprob, -i)), "logprob"
        policy = "shortest"
    if policy == "shortest":
        return min(range(len(candidates)), key=lambda i: (candidates[i].num_tokens, len(candidates[i].text), i)), policy
    if policy == "random":
        return random.Random(seed).randrange(len(candidates)), policy
    raise ValueError(f"unknown selection policy {policy!r}")
