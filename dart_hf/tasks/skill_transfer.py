"""A word-problem task where an early expert step *teaches* a skill and a later one takes a leap.

Skill problems name their starting amount by a word the planted-gap student was never taught
("Ann has a dozen apples. She buys 5 more. ..."). The expert solution first states the quantity
(the *teaching step*, "A dozen is 12."), then solves the +/- chain in the student's own style, and
at a later step rewrites the running total as a product and carries it (the planted-gap task's
*leap*, `12 = 3 × 4`, `3 × 4 + 5 = 17`)::

    A dozen is 12.            <- teach_step = 1: the student cannot say this, but continues after it

    12 + 5 = 17

    17 - 2 = 15

    15 = 3 × 5                <- leap_step: the student cannot continue after this
    ...

So a student that lacks the skill fails from the bare problem (f_0 low), succeeds once the teaching
step is shown (f_1 high) and fails again right after the leap (f_leap low): the regime in which
adapted data can teach something that pass-rate filtering and rejection sampling never see. Plain
problems (a number instead of a word, no teaching step; `teach_step == -1`) are planted-gap problems
and stay in the mix as controls. Everything is generated from a seed; nothing is downloaded.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Optional

import datasets

from .planted_gap import GAINS, LOSSES, NAMES, PlantedGapTask, _factor, _line, _running_values

#: word in the problem -> (the teaching step's wording, the quantity). The skill student never saw them.
#: ("a pair of" was one of them until the shipped student, shown "A pair is 2.", went on "2 + 4 = 8" in
#: 56 of 56 samples, a quirk of that one word, not of the value 2: docs/study.md section 7.)
QUANTITIES: dict[str, tuple[str, int]] = {
    "a trio of": ("A trio is 3.", 3),
    "half a dozen": ("Half a dozen is 6.", 6),
    "a dozen": ("A dozen is 12.", 12),
    "a score of": ("A score is 20.", 20),
}
#: Number words the skill student *was* trained on (`vocabulary="practice"`, "Ann has seven apples." solved as
#: "Seven is 7." then the chain): it learnt the format "state the quantity, then chain from it" over many
#: values, so once a teaching step states an unknown word's quantity it can continue from there.
_NUMBER_WORDS = (
    "two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen"
    " eighteen nineteen twenty"
).split()
PRACTICE_QUANTITIES: dict[str, tuple[str, int]] = {
    w: (f"{w.capitalize()} is {n}.", n) for n, w in enumerate(_NUMBER_WORDS, start=2)
}
VOCABULARIES = {"skill": QUANTITIES, "practice": PRACTICE_QUANTITIES}

FEATURES = datasets.Features(
    {
        "problem": datasets.Value("string"),
        "solution": datasets.Value("string"),
        "student_solution": datasets.Value("string"),
        "answer": datasets.Value("string"),
        "skill": datasets.Value("string"),
        "quantity": datasets.Value("int32"),
        "teach_step": datasets.Value("int32"),
        "teach_text": datasets.Value("string"),
        "leap_step": datasets.Value("int32"),
        "leap_text": datasets.Value("string"),
        "planted_gap": datasets.Value("int32"),
        "n_ops": datasets.Value("int32"),
    }
)

ITEMS = ("apples", "coins", "cards", "shells", "stamps", "marbles", "pens", "books", "eggs", "socks")


@dataclass(frozen=True)
class SkillTransferTask(PlantedGapTask):
    """Sizes of the generated problems: `PlantedGapTask`'s fields, which shape both kinds, and two more.

    Plain problems are `PlantedGapTask` problems (`gap_share` of them carry the leap); skill problems
    draw their +/- chain the same way from the word's quantity instead of `max_start`.

    Args:
        skill_share: fraction of problems that name their start by a quantity word (the rest are
            plain planted-gap problems, the controls).
        gap_share: fraction of plain problems whose expert solution carries the leap.
        vocabulary: "skill" (the words the student lacks) or "practice" (the words its training data
            has; for building the student only).
    """

    gap_share: float = 0.5
    skill_share: float = 0.6
    vocabulary: str = "skill"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vocabulary not in VOCABULARIES:
            raise ValueError(f"vocabulary must be one of {sorted(VOCABULARIES)}, got {self.vocabulary!r}")
        if not 0.0 <= self.skill_share <= 1.0:
            raise ValueError(f"skill_share must be in [0, 1], got {self.skill_share}")
        if self.min_ops < 2:
            raise ValueError(f"need 2 <= min_ops <= max_ops, got {self.min_ops}, {self.max_ops}")

    def generate(self, n: int, seed: int = 0) -> datasets.Dataset:
        """`n` problems; the same seed gives the same rows."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        rng = random.Random(seed)
        rows = [self._skill_row(rng) if rng.random() < self.skill_share else self._plain_row(rng) for _ in range(n)]
        return datasets.Dataset.from_list(rows, features=FEATURES)

    def _skill_row(self, rng: random.Random) -> dict:
        words = VOCABULARIES[self.vocabulary]
        word = rng.choice(sorted(words))
        teach, start = words[word]
        while True:
            ops = self._ops(start, rng)
            values = _running_values(start, ops)
            # the leap factors the total entering operation k (k >= 2: at least one chain line follows the teaching step)
            candidates = [k for k in range(2, len(ops) + 1) if _factor(values[k - 1], random.Random(0))]
            if candidates:
                break
        k = rng.choice(candidates)
        factors = _factor(values[k - 1], rng)
        name, item = rng.choice(sorted(NAMES)), rng.choice(ITEMS)
        sentences = [f"{name} has {word} {item}."]
        sentences += [f"{NAMES[name]} {rng.choice(GAINS if s == '+' else LOSSES).format(n=d)}." for s, d in ops]
        sentences.append(f"How many {item} does {name} have now?")
        chain = [_line(str(values[i]), s, d, values[i + 1]) for i, (s, d) in enumerate(ops)]
        a, b = factors
        leap = f"{values[k - 1]} = {a} × {b}"
        expert = [teach, *chain[: k - 1], leap, _line(f"{a} × {b}", *ops[k - 1], values[k]), *chain[k:]]
        answer = f"The answer is \\boxed{{{values[-1]}}}."
        return {
            "problem": " ".join(sentences),
            "solution": "\n\n".join([*expert, answer]),
            "student_solution": "\n\n".join([teach, *chain, answer]),
            "answer": str(values[-1]),
            "skill": word,
            "quantity": start,
            "teach_step": 1,
            "teach_text": teach,
            "leap_step": k + 1,  # the teaching step comes first
            "leap_text": leap,
            "planted_gap": k + 1,
            "n_ops": len(ops),
        }

    def _plain_row(self, rng: random.Random) -> dict:
        row = self._row(rng)
        steps = row["solution"].split("\n\n")
        leap = row["planted_gap"]
        return {
            **row,
            "skill": "",
            "quantity": -1,
            "teach_step": -1,
            "teach_text": "",
            "leap_step": leap,
            "leap_text": steps[leap - 1] if leap > 0 else "",
        }


def states_quantity(text: str, skill: str) -> Optional[bool]:
    """Does a solution state the taught quantity (a line that is the teaching step)? None for plain problems."""
    if not skill:
        return None
    teach = {**QUANTITIES, **PRACTICE_QUANTITIES}[skill][0]
    return any(line.strip() == teach for line in text.split("\n"))


def states_number(text: str, quantity: int) -> bool:
    """Does a solution open with a line that is not an operation and ends on the right quantity?

    Looser than `states_quantity`: a trained student may write the quantity in a line whose words it
    cannot spell (the words are rare byte-level tokens to it), e.g. "��en is 12." for a dozen.
    """
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if not lines or "=" in lines[0]:
        return False
    numbers = re.findall(r"\d+", lines[0])
    return bool(numbers) and numbers[-1] == str(quantity)
