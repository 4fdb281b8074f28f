"""Reading one dataset row into a DART example: the conversation so far, the expert steps, the gold."""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from .answers import extract_boxed
from .config import DartConfig
from .segmentation import join_given_steps, merge_steps, split_steps


class ExampleError(ValueError):
    """A row that cannot be adapted; its message becomes the row's `dart_error`."""


@dataclass
class Example:
    context: list[dict[str, str]]  # chat turns before the expert's answer (the SFT prompt)
    solution: str  # the expert solution, exactly as given
    steps: list[str]  # lossless segments of `solution`
    gold: str
    key: str  # content hash: seeds derive from it, so results do not depend on order or sharding
    problem: str  # the user's problem text, without the instruction
    row: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)  # for verifiers that read columns


def _content(turn: Any) -> str:
    if not isinstance(turn, Mapping) or "role" not in turn or "content" not in turn:
        raise ExampleError("messages must be a list of {'role', 'content'} dicts")
    content = turn["content"]
    if isinstance(content, list):  # multimodal-style content parts: keep the text parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    if not isinstance(content, str):
        raise ExampleError(f"message content must be a string, got {type(content).__name__}")
    return content


def _turn(message: Any) -> dict[str, str]:
    content = _content(message)  # checks the shape first
    return {"role": str(message["role"]), "content": content}


def _with_instruction(problem: str, instruction: str) -> str:
    if not instruction or "\\boxed" in problem:
        return problem
    return f"{problem.rstrip()}\n\n{instruction}"


def _gold_text(value: Any, column: str) -> Optional[str]:
    """The gold answer as text: a string, or a finite number (as Python writes it: 42, 0.5, 42.0).

    Anything else (a dict, a list, a bool, NaN, infinity) is refused: `str()` of it is no answer, and
    math-verify would silently judge every student wrong against it.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
        return str(value)
    shown = type(value).__name__ if not isinstance(value, numbers.Real) or isinstance(value, bool) else repr(value)
    raise ExampleError(f"gold answer ('{column}') must be a string or a finite number, got {shown}")


def parse_example(row: Mapping[str, Any], config: DartConfig) -> Example:
    """Build an `Example` from a row, or raise `ExampleError` with a reason a user can act on."""
    solution: Optional[str] = None
    problem_value, messages_value = row.get(config.problem_column), row.get(config.messages_column)
    if problem_value is not None or (config.problem_column in row and messages_value is None):
        problem = problem_value
        if problem is not None and not isinstance(problem, str):
            raise ExampleError(f"'{config.problem_column}' must be a string, got {type(problem).__name__}")
        if problem is None or not problem.strip():
            raise ExampleError(f"'{config.problem_column}' is None or empty")
        context = [{"role": "user", "content": _with_instruction(problem, config.instruction)}]
        solution = row.get(config.solution_column)
        raw_problem = problem
    elif messages_value is not None:
        if not isinstance(messages_value, (list, tuple)):
            kind = type(messages_value).__name__
            raise ExampleError(f"'{config.messages_column}' must be a list of messages, got {kind}")
        turns = [_turn(m) for m in messages_value if m is not None]
        last_assistant = max((i for i, m in enumerate(turns) if m["role"] == "assistant"), default=None)
        if last_assistant is None:
            raise ExampleError("messages have no assistant turn to adapt")
        context = turns[:last_assistant]
        if not context or context[-1]["role"] != "user":
            raise ExampleError("the assistant turn to adapt must follow a user turn")
        raw_problem = context[-1]["content"]
        context[-1] = {"role": "user", "content": _with_instruction(context[-1]["content"], config.instruction)}
        solution = turns[last_assistant]["content"]
    elif config.messages_column in row:
        raise ExampleError(f"'{config.messages_column}' is None")
    else:
        raise ExampleError(
            f"row has neither a '{config.problem_column}' nor a '{config.messages_column}' column "
            f"(columns: {sorted(row)}); set DartConfig.problem_column / messages_column"
        )

    given_steps = row.get(config.steps_column) if config.steps_column else None
    if given_steps is not None:
        try:
            steps = join_given_steps(given_steps)
        except TypeError as err:
            raise ExampleError(f"'{config.steps_column}' {err}") from None
        except ValueError as err:
            raise ExampleError(f"'{config.steps_column}': {err}") from None
        solution = "".join(steps)
        if config.max_steps is not None:
            steps = merge_steps(steps, config.max_steps)
    else:
        if solution is None or (isinstance(solution, str) and not solution.strip()):
            raise ExampleError("empty expert solution")
        if not isinstance(solution, str):
            raise ExampleError(f"expert solution must be a string, got {type(solution).__name__}")
        steps = split_steps(solution, config.splitter, config.max_steps)

    gold = _gold_text(row.get(config.answer_column), config.answer_column)
    if gold is None or not gold.strip():
        gold = extract_boxed(solution)
        if gold is None:
            raise ExampleError(
                f"no gold answer: '{config.answer_column}' is missing or empty and the expert solution "
                "has no \\boxed{...}"
            )
    gold = gold.strip()
    key = hashlib.sha256("\x1f".join([m["content"] for m in context] + [solution]).encode()).hexdigest()[:16]
    return Example(
        context=context, solution=solution, steps=steps, gold=gold, key=key, problem=raw_problem, row=dict(row)
    )
