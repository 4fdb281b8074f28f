"""Step-wise adaptability estimation: the student continues from expert prefixes and is judged by outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from .answers import extract_answer
from .backends.base import Completion, GenerationBackend, GenerationRequest, derive_seed
from .config import DartConfig
from .examples import Example, ExampleError, render_prompt


@dataclass
class Rollout:
    prefix_index: int  # t: the student continued after expert steps 1..t
    completion: Completion
    answer: Optional[str]  # final answer of prefix + continuation
    correct: bool


def prefix_text(example: Example, t: int) -> str:
    """Expert steps 1..t, exactly as written (steps keep their separators)."""
    return "".join(example.steps[:t])


def check_prompt_length(example: Example, backend: GenerationBackend, config: DartConfig) -> None:
    """Fail the row early, with a reason, when even the shortest continuation would not fit."""
    tokenizer, limit = backend.tokenizer, backend.context_length
    if tokenizer is None or limit is None:
        return
    longest = render_prompt(example, prefix_text(example, len(example.steps)), tokenizer, config)
    n_tokens = len(tokenizer(longest, add_special_tokens=False)["input_ids"])
    if n_tokens >= limit:
        raise ExampleError(f"prompt is longer than the student's context ({n_tokens} >= {limit} tokens)")


def rollout(
    example: Example,
    prefix_indices: Sequence[int],
    n: int,
    phase: str,
    backend: GenerationBackend,
    verifier: Any,
    config: DartConfig,
) -> dict[int, list[Rollout]]:
    """Sample `n` continuations after each prefix in one backend call, and judge their final answers.

    Seeds derive from (config seed, example content, phase, prefix), never from batch position.
    """
    prefixes = {t: prefix_text(example, t) for t in prefix_indices}
    requests = [
        GenerationRequest(
            prompt=render_prompt(example, prefixes[t], backend.tokenizer, config),
            n=n,
            seed=derive_seed(config.seed, example.key, phase, t),
            temperature=config.temperature,
            top_p=config.top_p,
            max_new_tokens=config.max_new_tokens,
        )
        for t in prefix_indices
    ]
    outputs = backend.generate(requests)
    if len(outputs) != len(requests) or any(len(o) != n for o in outputs):
        raise RuntimeError("backend returned the wrong number of completions")
    answers = {
        t: [extract_answer(prefixes[t] + c.text, config.answer_phrase_fallback) for c in completions]
        for t, completions in zip(prefix_indices, outputs)
    }
    pairs = [(example.gold, a) for t in prefix_indices for a in answers[t]]
    verdicts = iter(verifier.verify_many(pairs))
    return {
        t: [Rollout(t, c, a, next(verdicts)) for c, a in zip(completions, answers[t])]
        for t, completions in zip(prefix_indices, outputs)
    }


def success_rates(rollouts: dict[int, list[Rollout]], n_prefixes: int) -> list[float]:
    """f_0..f_T; NaN where a prefix was not simulated."""
    return [
        sum(r.correct for r in rollouts[t]) / len(rollouts[t]) if rollouts.get(t) else float("nan")
        for t in range(n_prefixes)
    ]
