"""Reading one dataset row into a DART example: the conversation so far, the expert steps, the gold."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping, Optional

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


def _content(turn: Any) -> str:
    if not isinstance(turn, Mapping) or "role" not in turn or "content" not in turn:
        raise ExampleError("messages must be a list of {'role', 'content'} dicts")
    content = turn["content"]
    if isinstance(content, list):  # multimodal-style content parts: keep the text parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    if not isinstance(content, str):
        raise ExampleError(f"message content must be a string, got {type(content).__name__}")
    return content


def _with_instruction(problem: str, instruction: str) -> str:
    if not instruction or "\\boxed" in problem:
        return problem
    return f"{problem.rstrip()}\n\n{instruction}"


def parse_example(row: Mapping[str, Any], config: DartConfig) -> Example:
    """Build an `Example` from a row, or raise `ExampleError` with a reason a user can act on."""
    solution: Optional[str] = None
    if config.problem_column in row and row[config.problem_column] is not None:
        problem = row[config.problem_column]
        if not isinstance(problem, str) or not problem.strip():
            raise ExampleError(f"empty or non-string '{config.problem_column}'")
        context = [{"role": "user", "content": _with_instruction(problem, config.instruction)}]
        solution = row.get(config.solution_column)
        raw_problem = problem
    elif config.messages_column in row and row[config.messages_column] is not None:
        messages = list(row[config.messages_column])
        turns = [{"role": str(m.get("role")), "content": _content(m)} for m in messages if m is not None]
        last_assistant = max((i for i, m in enumerate(turns) if m["role"] == "assistant"), default=None)
        if last_assistant is None:
            raise ExampleError("messages have no assistant turn to adapt")
        context = turns[:last_assistant]
        if not context or context[-1]["role"] != "user":
            raise ExampleError("the assistant turn to adapt must follow a user turn")
        raw_problem = context[-1]["content"]
        context[-1] = {"role": "user", "content": _with_instruction(context[-1]["content"], config.instruction)}
        solution = turns[last_assistant]["content"]
    else:
        raise ExampleError(
            f"row has neither a '{config.problem_column}' nor a '{config.messages_column}' column "
            f"(columns: {sorted(row)}); set DartConfig.problem_column / messages_column"
        )

    given_steps = row.get(config.steps_column) if config.steps_column else None
    if given_steps is not None:
        try:
            steps = join_given_steps(given_steps)
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

    gold = row.get(config.answer_column)
    if gold is not None and not isinstance(gold, str):
        gold = str(gold)
    if gold is None or not gold.strip():
        gold = extract_boxed(solution)
        if gold is None:
            raise ExampleError(
                f"no gold answer: '{config.answer_column}' is missing or empty and the expert solution "
                "has no \\boxed{...}"
            )
    gold = gold.strip()
    key = hashlib.sha256("\x1f".join([m["content"] for m in context] + [solution]).encode()).hexdigest()[:16]
    return Example(context=context, solution=solution, steps=steps, gold=gold, key=key, problem=raw_problem)


def render_prompt(example: Example, prefix: str, tokenizer: Any, config: DartConfig) -> str:
    """The text the student continues: its own chat template with the assistant turn already begun."""
    if config.prompt_template is not None:
        return (
            config.prompt_template.replace("{problem}", example.problem)
            .replace("{instruction}", config.instruction)
            .replace("{prefix}", prefix)
        )
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ExampleError("the student has no chat template: set DartConfig.prompt_template")
    head = tokenizer.apply_chat_template(example.context, tokenize=False, add_generation_prompt=True)
    return head + prefix
