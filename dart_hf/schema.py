"""The output contract of `DartAdapter`: actions, columns, their types and meanings, and the paper.

Everything that names or describes what DART writes into a dataset lives here once; the adapter,
the report, the Hub cards and the trainer read it from this module instead of re-describing it.

* `Action`, `ACTIONS`, `ACTION_MEANINGS`, `USABLE_ACTIONS`, `is_usable`, `USABLE_RULE` - what happened to a row;
* `OUTPUT_COLUMNS`, `OUTPUT_FEATURES`, `COLUMN_TYPES`, `COLUMN_DESCRIPTIONS` - the columns added;
* `ROLLOUT_FIELDS`, `ROLLOUT_PHASES`, `ROLLOUT_ENDINGS` - the parts of `dart_rollouts` and
  `dart_rollout_endings`;
* `writable_text` - any text as Arrow can store it (every string column written goes through it);
* `PAPER_*` - the method's reference (title, arXiv id, URL, BibTeX).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from datasets import Features, List, Value


class Action(str, enum.Enum):
    """What DART did with a row (the `dart_action` column holds the value, a plain string)."""

    IMITATE = "imitate"
    EXPLORE = "explore"
    FALLBACK = "fallback"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


#: All action names, in the order the report and cards list them.
ACTIONS: tuple[str, ...] = tuple(a.value for a in Action)

#: What each action means, for a reader of a report or card (plain text, no markup).
ACTION_MEANINGS: dict[str, str] = {
    Action.IMITATE.value: "no gap found: the expert solution is kept as is",
    Action.EXPLORE.value: "gap found: expert steps before the gap + a correct continuation written by the student",
    Action.FALLBACK.value: "gap found but no correct student continuation: the fallback policy was applied",
    Action.ERROR.value: "the row could not be adapted (see dart_error); keep it out of training",
}

#: Actions whose `dart_solution` is fit for training.
USABLE_ACTIONS: tuple[str, ...] = (Action.IMITATE.value, Action.EXPLORE.value, Action.FALLBACK.value)


def is_usable(row: Mapping[str, Any]) -> bool:
    """True for rows to train on: adapted without error and not dropped by `fallback="drop"`."""
    return row["dart_action"] in USABLE_ACTIONS and bool(row["dart_solution"])


#: `is_usable` in words, for reports and cards (markdown inline code).
USABLE_RULE = (
    "`dart_action` is " + ", ".join(f"`{a}`" for a in USABLE_ACTIONS[:-1]) + f" or `{USABLE_ACTIONS[-1]}`"
    " and `dart_solution` is not empty"
)


#: Phases of a rollout (`dart_rollouts.phase`, and the seed stream it was sampled from): the
#: simulation grid that measures f_t, or extra samples drawn for exploration.
PHASE_SIM = "sim"
PHASE_EXPLORE = "explore"
ROLLOUT_PHASES = (PHASE_SIM, PHASE_EXPLORE)

#: How a rollout ended (`Completion.finish_reason`), keys of `dart_rollout_endings`, with the words
#: reports and cards use for them: after its final `\boxed{}` answer, at the student's end-of-sequence
#: token, or at the `max_new_tokens` cap.
ROLLOUT_ENDING_MEANINGS: dict[str, str] = {
    "answer": "stopped after the answer (a \\boxed{} or a closed code block)",
    "stop": "ended at end-of-sequence",
    "length": "hit the max_new_tokens cap",
}
ROLLOUT_ENDINGS = tuple(ROLLOUT_ENDING_MEANINGS)

_MESSAGES = List({"role": Value("string"), "content": Value("string")})

#: Types of the fields of `dart_rollouts` (one equal-length list each, one entry per judged continuation).
ROLLOUT_FEATURES = Features(
    {
        "prefix_index": List(Value("int64")),
        "phase": List(Value("string")),
        "sample": List(Value("int64")),
        "text": List(Value("string")),
        "answer": List(Value("string")),
        "correct": List(Value("bool")),
        "tokens": List(Value("int64")),
        "finish_reason": List(Value("string")),
        "logprob": List(Value("float64")),
        "chosen": List(Value("bool")),
    }
)
ROLLOUT_FIELDS = tuple(ROLLOUT_FEATURES)

#: The columns `DartAdapter` adds to every row, in order, with the Arrow types `datasets` gives them
#: (`prompt` / `completion` as for plain `role` + `content` messages).
#:
#: `dart_error` is `""` on good rows, not None, and stays so: `dataset.map(adapter, batched=True)`
#: is called without `features=` (by users, `resumable.adapt_in_chunks`, the recipes, the study),
#: so `datasets` (5.2) types each new column from the first batch it writes, and a first batch of
#: good rows would make `dart_error` a `null` column; the first error row after it then stops the
#: whole map ("Couldn't write column 'dart_error': its type in this file is null"). The same holds
#: for an unbatched map once more than `writer_batch_size` good rows come first, and for
#: `Dataset.from_generator` over `IterableDataset.map`; a map function cannot return Arrow arrays to
#: type the column itself. An all-good chunk of a resumable run would also differ in type from the
#: others (concatenation happens to align null with string, but the chunks' types would not match).
#: Only a map that passes `features=` with these types writes None safely; the adapter cannot count
#: on that, so `""` means "no error" (tested: tests/test_rows_and_inputs.py).
OUTPUT_FEATURES = Features(
    {
        "dart_steps": List(Value("string")),
        "dart_step_success": List(Value("float64")),
        "dart_step_samples": List(Value("int64")),
        "dart_gap_step": Value("int64"),
        "dart_action": Value("string"),
        "dart_solution": Value("string"),
        "dart_student_start": Value("int64"),
        "dart_student_sample": {
            "tokens": Value("int64"),
            "logprob": Value("float64"),
            "finish_reason": Value("string"),
        },
        "dart_answer": Value("string"),
        "dart_tokens_generated": Value("int64"),
        "dart_seconds": Value("float64"),
        "dart_verify_timeouts": Value("int64"),
        "dart_selection": Value("string"),
        "dart_error": Value("string"),
        "dart_rollout_endings": {k: Value("int64") for k in ROLLOUT_ENDINGS},
        "dart_rollouts": dict(ROLLOUT_FEATURES),
        "prompt": _MESSAGES,
        "completion": _MESSAGES,
    }
)
OUTPUT_COLUMNS = tuple(OUTPUT_FEATURES)

#: Column types in words, for tables a person reads (cards).
COLUMN_TYPES: dict[str, str] = {
    "dart_steps": "list[str]",
    "dart_step_success": "list[float]",
    "dart_step_samples": "list[int]",
    "dart_gap_step": "int",
    "dart_action": "str",
    "dart_solution": "str",
    "dart_student_start": "int",
    "dart_student_sample": "struct {tokens: int, logprob: float, finish_reason: str}",
    "dart_answer": "str",
    "dart_tokens_generated": "int",
    "dart_seconds": "float",
    "dart_verify_timeouts": "int",
    "dart_selection": "str",
    "dart_error": "str",
    "dart_rollout_endings": "struct {" + ", ".join(ROLLOUT_ENDINGS) + ": int}",
    "dart_rollouts": "struct of lists",
    "prompt": "list[message]",
    "completion": "list[message]",
}

#: One description per output column, in `OUTPUT_COLUMNS` order (markdown inline code allowed).
COLUMN_DESCRIPTIONS: dict[str, str] = {
    "dart_steps": "the expert solution cut into steps; `''.join(dart_steps)` is the original text",
    "dart_step_success": (
        "f_0..f_T: fraction of the student's rollouts that reach the gold answer after adopting the first t "
        "expert steps, from the rollouts drawn there (NaN = prefix not simulated: the gap search skipped it)"
    ),
    "dart_step_samples": (
        "rollouts drawn after each prefix: n_sim everywhere with `gap_search='grid'`, fewer with the other "
        "strategies (`certified` still gives the grid's gap, `sequential` / `scan` / `bisect` approximate it), 0 where "
        "a prefix was not simulated"
    ),
    "dart_gap_step": "1-based index of the imitation gap (the first step the student cannot follow); -1 = none",
    "dart_action": "what DART did with the row: `" + "`, `".join(ACTIONS[:-1]) + f"` or `{ACTIONS[-1]}`",
    "dart_solution": (
        "the adapted solution: expert prefix + student text for `explore`, the expert's for `imitate` and a kept "
        "`fallback`, empty when the fallback dropped the row"
    ),
    "dart_student_start": "character offset in `dart_solution` where the student's own text starts; -1 = all expert text",
    "dart_student_sample": (
        "how the student's text in `dart_solution` was sampled: its tokens, their mean log-prob under the student "
        "(NaN when the backend gave none) and how it ended; the on-policy check compares them with the training "
        "format (0, 0.0, `''` when the row has no student text)"
    ),
    "dart_answer": "the gold answer the rollouts were verified against",
    "dart_tokens_generated": "tokens the student generated for this row (simulation + exploration)",
    "dart_seconds": (
        "seconds: the row's own time plus its share, by generated tokens, of each batched round it took part in "
        "(the only column that differs between identical runs)"
    ),
    "dart_verify_timeouts": (
        "answer comparisons math-verify did not finish in time (counted as not correct; a row whose every "
        "comparison, or its gold's own check, timed out is an error)"
    ),
    "dart_selection": "policy that chose the student continuation; empty when none was chosen",
    "dart_error": "why the row could not be adapted; empty on adapted rows",
    "dart_rollout_endings": (
        "how the row's rollouts ended: `answer` (after the final `\\boxed{}`), `stop` (end-of-sequence), "
        "`length` (hit `max_new_tokens`); zeros on error rows"
    ),
    "dart_rollouts": (
        "every judged student continuation (" + ", ".join(ROLLOUT_FIELDS) + "), one entry per rollout; "
        "empty unless adapted with `keep_rollouts=True`"
    ),
    "prompt": "chat prompt: the problem with the instruction the student saw",
    "completion": "assistant turn holding `dart_solution`: what SFT trains on",
}


def writable_text(text: str) -> str:
    """`text` as Arrow can store it: lone surrogates become U+FFFD, the replacement character.

    A server's JSON may spell a lone surrogate (`"\\ud800"`, valid JSON, never valid UTF-8); Python
    keeps it in the string and Arrow then refuses the whole batch. A pair spelled as two code points
    is joined into the one character it encodes.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def columns_markdown() -> str:
    """The output-column table as Markdown: docs/transform.md holds exactly this (a test keeps them equal)."""
    lines = ["| column | type | meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | {COLUMN_TYPES[name]} | {COLUMN_DESCRIPTIONS[name]} |" for name in OUTPUT_COLUMNS]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- the paper
PAPER_TITLE = "Beyond Templates: Dynamic Adaptation of Reasoning Demonstrations via Feasibility-Aware Exploration"
PAPER_AUTHORS = "Wu, Pan et al."
PAPER_YEAR = 2025
PAPER_ARXIV_ID = "2505.20700"
PAPER_URL = f"https://arxiv.org/abs/{PAPER_ARXIV_ID}"
PAPER_CITATION = (
    "@article{dart2025,\n"
    f"    title   = {{{{{PAPER_TITLE}}}}},\n"
    f"    journal = {{arXiv preprint arXiv:{PAPER_ARXIV_ID}}},\n"
    f"    year    = {PAPER_YEAR},\n"
    "}"
)
#: The reference as one markdown line (cards).
PAPER_REF = f"{PAPER_AUTHORS}, *{PAPER_TITLE}*, [arXiv:{PAPER_ARXIV_ID}]({PAPER_URL}) ({PAPER_YEAR})"
