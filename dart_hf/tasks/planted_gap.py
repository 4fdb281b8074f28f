"""A word-problem task with *planted* imitation gaps: the ground truth DART's gap detection is scored against.

Problems are chains of additions and subtractions ("Ann has 7 apples. She buys 5 more. She eats 3. ...").
The *student style* solves them one operation per step::

    7 + 5 = 12

    12 - 3 = 9

    The answer is \\boxed{9}.

An *expert* solution with a planted gap follows that style up to step `g - 1`, then, at step `g`, switches
to a technique the student was never taught: it rewrites the running total as a product
(`12 = 3 × 4`) and carries the product into the next operation (`3 × 4 - 3 = 9`) before returning to
the plain style. A student that only knows the one-operation chain cannot continue right after the
product step (`f_g` falls), can again once the product has been evaluated away (`f_{g+1}` recovers), and
can always continue in its own words from before the gap: exactly the situation DART is built for.
Control problems (`planted_gap == -1`) are solved in student style throughout and have no gap.

Everything is generated from a seed; nothing is downloaded.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional

import datasets

NAMES = {
    "Ann": "She",
    "Ben": "He",
    "Cara": "She",
    "Dev": "He",
    "Eli": "He",
    "Fay": "She",
    "Gus": "He",
    "Hana": "She",
    "Ivo": "He",
    "Jade": "She",
    "Kai": "He",
    "Lea": "She",
}
ITEMS = ("apples", "coins", "cards", "shells", "stamps", "marbles", "pens", "books")
GAINS = ("buys {n} more", "finds {n} more", "gets {n} more", "is given {n} more")
LOSSES = ("gives away {n}", "loses {n}", "sells {n}", "uses {n}")


FEATURES = datasets.Features(
    {
        "problem": datasets.Value("string"),
        "solution": datasets.Value("string"),
        "student_solution": datasets.Value("string"),
        "answer": datasets.Value("string"),
        "planted_gap": datasets.Value("int32"),
        "n_ops": datasets.Value("int32"),
    }
)


@dataclass(frozen=True)
class PlantedGapTask:
    """Sizes of the generated problems.

    Args:
        min_ops: fewest operations per problem (the student-style solution has one step per
            operation plus the answer step).
        max_ops: most operations per problem.
        gap_share: fraction of problems whose expert solution carries a planted gap.
        max_start: largest starting amount.
        max_delta: largest single change.
        max_value: largest running total. Small numbers keep the student's arithmetic learnable in
            minutes on a CPU.
    """

    min_ops: int = 3
    max_ops: int = 4
    gap_share: float = 0.7
    max_start: int = 15
    max_delta: int = 5
    max_value: int = 30

    def __post_init__(self) -> None:
        if not 1 <= self.min_ops <= self.max_ops:
            raise ValueError(f"need 1 <= min_ops <= max_ops, got {self.min_ops}, {self.max_ops}")
        if not 0.0 <= self.gap_share <= 1.0:
            raise ValueError(f"gap_share must be in [0, 1], got {self.gap_share}")
        if not 2 <= self.max_start <= self.max_value or not 1 <= self.max_delta <= self.max_value:
            raise ValueError("need 2 <= max_start <= max_value and 1 <= max_delta <= max_value")

    def generate(self, n: int, seed: int = 0) -> datasets.Dataset:
        """`n` problems; the same seed gives the same rows."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        rng = random.Random(seed)
        rows = [self._row(rng) for _ in range(n)]
        return datasets.Dataset.from_list(rows, features=FEATURES)

    # ------------------------------------------------------------------ one problem
    def _row(self, rng: random.Random) -> dict:
        while True:
            start, ops = self._chain(rng)
            values = _running_values(start, ops)
            want_gap = rng.random() < self.gap_share
            gap_at = _pick_gap(values, ops, rng) if want_gap else None
            if want_gap and gap_at is None:  # no composite running total to factor: draw another chain
                continue
            break
        name, item = rng.choice(sorted(NAMES)), rng.choice(ITEMS)
        sentences = [f"{name} has {start} {item}."]
        for sign, delta in ops:
            verb = rng.choice(GAINS if sign == "+" else LOSSES).format(n=delta)
            sentences.append(f"{NAMES[name]} {verb}.")
        sentences.append(f"How many {item} does {name} have now?")
        student = student_solution(start, ops)
        expert = student if gap_at is None else expert_solution(start, ops, gap_at, _factor(values[gap_at - 1], rng))
        return {
            "problem": " ".join(sentences),
            "solution": expert,
            "student_solution": student,
            "answer": str(values[-1]),
            "planted_gap": -1 if gap_at is None else gap_at,
            "n_ops": len(ops),
        }

    def _chain(self, rng: random.Random) -> tuple[int, list[tuple[str, int]]]:
        start = rng.randint(2, self.max_start)
        return start, self._ops(start, rng)

    def _ops(self, start: int, rng: random.Random) -> list[tuple[str, int]]:
        """The +/- operations that follow `start`, every running total within 0..max_value."""
        ops, value = [], start
        for _ in range(rng.randint(self.min_ops, self.max_ops)):
            delta = rng.randint(1, self.max_delta)
            can_add, can_sub = value + delta <= self.max_value, value - delta >= 0
            sign = rng.choice([s for s, ok in (("+", can_add), ("-", can_sub)) if ok] or ["+"])
            ops.append((sign, delta))
            value = value + delta if sign == "+" else value - delta
        return ops


def _running_values(start: int, ops: list[tuple[str, int]]) -> list[int]:
    """values[k] = the total after k operations (values[0] = start)."""
    values = [start]
    for sign, delta in ops:
        values.append(values[-1] + delta if sign == "+" else values[-1] - delta)
    return values


def _factor(value: int, rng: random.Random) -> Optional[tuple[int, int]]:
    pairs = [(a, value // a) for a in range(2, int(value**0.5) + 1) if value % a == 0]
    return rng.choice(pairs) if pairs else None


def _pick_gap(values: list[int], ops: list[tuple[str, int]], rng: random.Random) -> Optional[int]:
    """A 1-based step g whose incoming total values[g-1] is composite (it gets factored at step g)."""
    candidates = [g for g in range(1, len(ops) + 1) if _factor(values[g - 1], random.Random(0)) is not None]
    return rng.choice(candidates) if candidates else None


def _line(left: str, sign: str, delta: int, result: int) -> str:
    return f"{left} {sign} {delta} = {result}"


def student_solution(start: int, ops: list[tuple[str, int]]) -> str:
    """One operation per step, then the boxed answer."""
    values = _running_values(start, ops)
    lines = [_line(str(values[k]), sign, delta, values[k + 1]) for k, (sign, delta) in enumerate(ops)]
    return "\n\n".join(lines + [f"The answer is \\boxed{{{values[-1]}}}."])


def expert_solution(start: int, ops: list[tuple[str, int]], gap_at: int, factors: tuple[int, int]) -> str:
    """Student style, except that step `gap_at` factors the running total and the next step carries the product."""
    values = _running_values(start, ops)
    a, b = factors
    if a * b != values[gap_at - 1]:
        raise ValueError(f"{a} × {b} is not {values[gap_at - 1]}")
    lines = []
    for k, (sign, delta) in enumerate(ops):
        if k == gap_at - 1:
            lines.append(f"{values[k]} = {a} × {b}")
            lines.append(_line(f"{a} × {b}", sign, delta, values[k + 1]))
        else:
            lines.append(_line(str(values[k]), sign, delta, values[k + 1]))
    return "\n\n".join(lines + [f"The answer is \\boxed{{{values[-1]}}}."])


def score_detection(planted: list[int], detected: list[int]) -> dict[str, float]:
    """Gap detection against the planted truth (both lists 1-based, -1 = no gap).

    precision: share of detected gaps at exactly the planted step; recall: share of planted gaps found
    at exactly their step; position error: mean |detected - planted| over planted rows with a detection;
    false-positive rate: share of control rows (no planted gap) where a gap was detected.
    """
    if len(planted) != len(detected):
        raise ValueError(f"{len(planted)} planted vs {len(detected)} detected")
    hits = sum(p > 0 and d == p for p, d in zip(planted, detected))
    n_detected = sum(d > 0 for d in detected)
    n_planted = sum(p > 0 for p in planted)
    errors = [abs(d - p) for p, d in zip(planted, detected) if p > 0 and d > 0]
    controls = [d for p, d in zip(planted, detected) if p <= 0]
    nan = float("nan")
    return {
        "precision": hits / n_detected if n_detected else nan,
        "recall": hits / n_planted if n_planted else nan,
        "position_error": sum(errors) / len(errors) if errors else nan,
        "false_positive_rate": sum(d > 0 for d in controls) / len(controls) if controls else nan,
        "n_planted": n_planted,
        "n_detected": n_detected,
        "hits": hits,
        "n_controls": len(controls),
        "false_positives": sum(d > 0 for d in controls),
    }
