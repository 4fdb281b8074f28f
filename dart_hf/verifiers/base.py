"""What every judge of a student's attempt is: the `Verifier` protocol, its verdicts, and how DART calls it.

DART needs only an outcome check. A verifier answers "is this attempt correct?" for many attempts at
once, and "can this gold be judged against at all?" for a row's gold. Two methods are required
(`judge_many` over `(gold, predicted answer)` pairs, `inspect_gold`); two are optional, for judges
that need more than the extracted answer string:

- `extract_answer(text)`: the verifier's own idea of an attempt's answer (the last code block for
  code); without it, the final `\\boxed{}` (or "the answer is X") is the answer.
- `stop_rule`: a `dart_hf.answers.StopRule` (prompt -> stopper) that ends generation once the answer is
  written (code: once its fenced block is closed); without it, generation stops after the first `\\boxed{}`.
- `judge_attempts(attempts)`: judge whole `Attempt`s (gold, answer, the full response text and the
  dataset row), as GRPO reward functions and test runners need; without it, `judge_many` is called
  on `(gold, answer)` pairs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Optional, Protocol, runtime_checkable

logger = logging.getLogger(__name__)


class Verdict(NamedTuple):
    """One comparison's outcome. A timeout is no verdict: `correct` is False, but it is not a wrong answer."""

    correct: bool
    timed_out: bool = False  # no verdict in time (deadline overrun, a dead worker, a reward of None)


class GoldCheck(NamedTuple):
    """Whether a gold answer can be judged against: `reason` is None when it can."""

    reason: Optional[str]
    timed_out: bool = False


class Attempt(NamedTuple):
    """One student attempt as a verifier sees it."""

    gold: str  # the row's gold (an answer for math; the tests for code)
    answer: Optional[str]  # the extracted final answer (the verifier's `extract_answer`, else `\boxed{}`)
    text: str  # the whole response: the expert prefix the student was given plus its continuation
    row: Mapping[str, Any]  # the dataset row, for judges that read other columns (tests, entry points, choices)


@runtime_checkable
class Verifier(Protocol):
    """The judge of attempts: what `DartAdapter(..., verifier=...)` and `evaluate_student` call.

    [`MathVerifier`][dart_hf.verifiers.MathVerifier] (math-verify) is the default; `dart_hf.verifiers`
    also ships `CodeVerifier`, `ChoiceVerifier` and `RewardFunctionVerifier` (any TRL reward
    function). Another judge needs only these two methods; it must pickle for `map(num_proc=...)`.
    An optional `fingerprint` string attribute names its settings for `datasets` caching; without it
    the verifier is hashed by pickling, as `datasets` hashes transforms (see
    [`verifier_fingerprint`][dart_hf.verifiers.verifier_fingerprint]).
    """

    def judge_many(self, pairs: Sequence[tuple[str, Optional[str]]]) -> Sequence[tuple[bool, bool]]:
        """One `(correct, timed_out)` pair (e.g. a `Verdict`) per `(gold, predicted)` pair, in order.

        `predicted` is None when no final answer was found. `timed_out` means "no verdict"
        (counted as not correct, reported in `dart_verify_timeouts`).
        """
        ...

    def inspect_gold(self, gold: str) -> tuple[Optional[str], bool]:
        """`(reason, timed_out)` (e.g. a `GoldCheck`): reason is None when `gold` can be judged against.

        A row whose gold cannot be judged becomes an error row with `reason`, instead of an
        adaptation to f = 0 everywhere.
        """
        ...


_VERIFIER_METHODS = ("judge_many", "inspect_gold")


def as_verifier(verifier: Any, timeout: float) -> Verifier:
    """`verifier`, checked; None gives the default `MathVerifier(timeout)`.

    Checked up front so that a wrong object fails at construction with a clear message, not as
    every row's error once sampling has started.
    """
    if verifier is None:
        from .math import MathVerifier

        return MathVerifier(timeout=timeout)
    missing = [name for name in _VERIFIER_METHODS if not callable(getattr(verifier, name, None))]
    if missing:
        raise TypeError(
            f"verifier must implement dart_hf.verifiers.Verifier (methods {', '.join(_VERIFIER_METHODS)}); "
            f"{type(verifier).__name__} has no {' or '.join(missing)}"
        )
    return verifier


def verifier_fingerprint(verifier: Verifier, timeout: float) -> Optional[str]:
    """The verifier's part of a cache key; None for the default (`MathVerifier` with `timeout`).

    None keeps the fingerprints of adapters built before verifiers were pluggable. Others: their
    `fingerprint` attribute when it is a string, else a hash of their pickled state (class and
    settings), which `datasets` computes the same way for map functions.
    """
    from .math import MathVerifier

    if type(verifier) is MathVerifier:
        return None if verifier.timeout == float(timeout) else f"math-verify:timeout={verifier.timeout!r}"
    name = f"{type(verifier).__module__}.{type(verifier).__qualname__}"
    own = getattr(verifier, "fingerprint", None)
    if isinstance(own, str):
        return f"{name}:{own}"
    from datasets.fingerprint import Hasher

    try:
        return f"{name}:{Hasher.hash(verifier)}"
    except Exception as err:  # noqa: BLE001 - unpicklable: the class name is the best identity left
        logger.warning(
            "cannot hash verifier %s (%s: %s); caches will not tell its settings apart: give it a `fingerprint` string",
            name,
            type(err).__name__,
            err,
        )
        return name


def stop_rule_of(verifier: Any) -> Any:
    """What a backend's `stop_at_answer` should be for `verifier`: its `stop_rule` (a `dart_hf.answers.StopRule`,
    e.g. code's `CodeBlockStopper`), else True (stop after the first `\\boxed{}`)."""
    rule = getattr(verifier, "stop_rule", None)
    return rule if callable(rule) else True


def answer_of(verifier: Verifier, text: str, phrase_fallback: bool = True) -> Optional[str]:
    """The final answer of a response as `verifier` reads it: its `extract_answer`, else the last `\\boxed{}`."""
    own = getattr(verifier, "extract_answer", None)
    if callable(own):
        return own(text)
    from ..answers import extract_answer

    return extract_answer(text, phrase_fallback)


def judge_attempts(verifier: Verifier, attempts: Sequence[Attempt]) -> list[tuple[bool, bool]]:
    """`(correct, timed_out)` per attempt: `verifier.judge_attempts` when it has one, else `judge_many` on pairs."""
    own = getattr(verifier, "judge_attempts", None)
    if callable(own):
        return list(own(attempts))
    return list(verifier.judge_many([(a.gold, a.answer) for a in attempts]))
