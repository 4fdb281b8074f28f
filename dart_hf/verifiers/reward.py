"""Any TRL-style reward function as a verifier: `reward_func(prompts, completions, **columns) -> list[float | None]`.

TRL users already hold their correctness checks as GRPO reward functions (e.g.
`trl.rewards.accuracy_reward`). They are called here as `GRPOTrainer` calls them: conversational
prompts and completions, and every other dataset column as a keyword argument holding one value per
completion. A reward at or above `threshold` is correct; `None` is "no verdict" (counted like a
math-verify timeout). The function runs in this process: it is the user's own code, and must bound
its own time.
"""

from __future__ import annotations

import hashlib
import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any, Optional

from .base import Attempt, GoldCheck, Verdict

_NOT_COLUMNS = ("prompt", "completion", "completion_ids")  # GRPOTrainer does not pass these as columns


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


class RewardFunctionVerifier:
    """Judges attempts with a TRL reward function (`reward >= threshold` is correct, `None` is no verdict).

    Args:
        reward_func: `reward_func(prompts=..., completions=..., **columns) -> list[float | None]`.
        threshold: the smallest reward that counts as correct.
        conversational: completions as `[{"role": "assistant", "content": text}]` (what
            `accuracy_reward` reads) or as plain strings.
    """

    def __init__(
        self, reward_func: Callable[..., Sequence[Optional[float]]], threshold: float = 1.0, conversational: bool = True
    ) -> None:
        if not callable(reward_func):
            raise TypeError(f"reward_func must be callable, got {type(reward_func).__name__}")
        if not (isinstance(threshold, (int, float)) and math.isfinite(threshold)):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}")
        self.reward_func = reward_func
        self.threshold = float(threshold)
        self.conversational = bool(conversational)

    @property
    def fingerprint(self) -> str:
        func = self.reward_func
        name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', type(func).__qualname__)}"
        try:
            source = hashlib.sha256(inspect.getsource(func).encode()).hexdigest()[:12]
        except (OSError, TypeError):
            source = "?"
        return f"{name}:src={source}:threshold={self.threshold!r}:conversational={self.conversational}"

    def judge_attempts(self, attempts: Sequence[Attempt]) -> list[Verdict]:
        """Call the reward function once for all attempts, with the rows' columns as keyword lists."""
        if not attempts:
            return []
        keys: list[str] = []
        for a in attempts:
            keys.extend(k for k in a.row if k not in _NOT_COLUMNS and k not in keys)
        columns = {k: [a.row.get(k) for a in attempts] for k in keys}
        prompts = [_prompt(a.row) for a in attempts]
        if self.conversational:
            completions: list[Any] = [[{"role": "assistant", "content": a.text}] for a in attempts]
        else:
            completions = [a.text for a in attempts]
        columns.update(trainer_state=None, log_extra=_noop, log_metric=_noop)
        rewards = list(self.reward_func(prompts=prompts, completions=completions, **columns))
        if len(rewards) != len(attempts):
            raise ValueError(f"reward function returned {len(rewards)} rewards for {len(attempts)} completions")
        return [_verdict(r, self.threshold) for r in rewards]

    def judge_many(self, pairs: Sequence[tuple[str, Optional[str]]]) -> list[Verdict]:
        """`(gold, answer)` pairs, as `\\boxed{answer}` completions against a `solution` column holding the gold."""
        attempts = [
            Attempt(gold, pred, "" if pred is None else f"\\boxed{{{pred}}}", {"solution": gold})
            for gold, pred in pairs
        ]
        return self.judge_attempts(attempts)

    def inspect_gold(self, gold: str) -> GoldCheck:
        """A reward function cannot be asked about a gold alone: every gold is accepted (None rewards say the rest)."""
        return GoldCheck(None)

    def __repr__(self) -> str:
        return f"RewardFunctionVerifier({getattr(self.reward_func, '__qualname__', self.reward_func)!r}, threshold={self.threshold:g})"


def _prompt(row: Any) -> Any:
    messages = row.get("messages") if hasattr(row, "get") else None
    if isinstance(messages, list):
        return [m for m in messages if isinstance(m, dict) and m.get("role") != "assistant"]
    problem = row.get("prompt", row.get("problem")) if hasattr(row, "get") else None
    return [{"role": "user", "content": problem if isinstance(problem, str) else ""}]


def _verdict(reward: Any, threshold: float) -> Verdict:
    if reward is None:
        return Verdict(False, True)
    try:
        value = float(reward)
    except (TypeError, ValueError):
        return Verdict(False, True)
    if math.isnan(value):
        return Verdict(False, True)
    return Verdict(value >= threshold)
