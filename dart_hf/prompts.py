"""The text the student continues: the problem in the student's own chat format, then an expert prefix."""

from __future__ import annotations

import re
from typing import Any

from .config import DartConfig
from .example import Example, ExampleError


def prefix_text(example: Example, t: int) -> str:
    """Expert steps 1..t, exactly as written (steps keep their separators)."""
    return "".join(example.steps[:t])


_PLACEHOLDER = re.compile(r"\{(problem|instruction|prefix)\}")


def render_prompt(example: Example, prefix: str, tokenizer: Any, config: DartConfig) -> str:
    """The text the student continues: its own chat template with the assistant turn already begun."""
    if config.prompt_template is not None:
        # One pass over the template: a problem or step that contains "{prefix}" is text, not a slot.
        values = {"problem": example.problem, "instruction": config.instruction, "prefix": prefix}
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], config.prompt_template)
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ExampleError("the student has no chat template: set DartConfig.prompt_template")
    head = tokenizer.apply_chat_template(example.context, tokenize=False, add_generation_prompt=True)
    return head + prefix
