"""Rows in and rows out of `DartAdapter`: reading a `map` call's input, and building the output row.

Every output row, adapted or not, is built by `output_row`, so good and error rows always have the
same columns with the same types (`datasets` fixes a column's type from the first batch it writes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

from .config import DartConfig
from .example import Example
from .rollouts import Drawn, count_endings, rollout_column
from .schema import Action, writable_text

if TYPE_CHECKING:
    from .simulation import Rollout


def output_row(
    context: list[dict[str, str]],
    steps: Sequence[str],
    solution: str,
    gold: str,
    *,
    action: str,
    error: str = "",
    gap_step: int = -1,
    student_start: int = -1,
    selection: str = "",
    step_success: Optional[list[float]] = None,
    step_samples: Optional[list[int]] = None,
    judged: Sequence[Drawn] = (),
    keep_rollouts: bool = False,
    chosen: Optional[Rollout] = None,
) -> dict[str, Any]:
    """One output row, exactly `OUTPUT_COLUMNS` in order; the defaults describe a row that drew nothing.

    `judged` is every continuation judged for the row (they give its token count and endings);
    they are stored in `dart_rollouts` only with `keep_rollouts`. `dart_seconds` and
    `dart_verify_timeouts` start at zero: the adapter fills them in once the row is done. Every
    string goes through `writable_text`, so no text (a server's lone surrogate) can make the
    dataset writer raise after the row is built.
    """
    n_prefixes = len(steps) + 1
    row = {  # the order of OUTPUT_COLUMNS
        "dart_steps": list(steps),
        "dart_step_success": [float("nan")] * n_prefixes if step_success is None else step_success,
        "dart_step_samples": [0] * n_prefixes if step_samples is None else step_samples,
        "dart_gap_step": gap_step,
        "dart_action": str(action),
        "dart_solution": solution,
        "dart_student_start": student_start,
        "dart_student_sample": student_sample(chosen),
        "dart_answer": gold,
        "dart_tokens_generated": sum(r.completion.num_tokens for r, _, _ in judged),
        "dart_seconds": 0.0,
        "dart_verify_timeouts": 0,
        "dart_selection": selection,
        "dart_error": error,  # "" on good rows, never None: see the note on OUTPUT_FEATURES in schema.py
        "dart_rollout_endings": count_endings(r for r, _, _ in judged),
        "dart_rollouts": rollout_column(judged if keep_rollouts else [], chosen),
        "prompt": context,
        "completion": [{"role": "assistant", "content": solution}],
    }
    return {name: value if name == "dart_rollouts" else _writable(value) for name, value in row.items()}


def _writable(value: Any) -> Any:
    """`value` with every string in it passed through `writable_text` (strings, lists and dicts of them)."""
    if isinstance(value, str):
        return writable_text(value)
    if isinstance(value, list):
        return [_writable(v) for v in value]
    if isinstance(value, dict):
        return {k: _writable(v) for k, v in value.items()}
    return value


def student_sample(chosen: Optional[Rollout]) -> dict[str, Any]:
    """The `dart_student_sample` value: what the backend recorded for the continuation in the solution.

    No continuation: 0 tokens, log-prob 0.0 (not NaN, so that rows compare equal with `==`); a backend
    without log-probs: NaN.
    """
    if chosen is None:
        return {"tokens": 0, "logprob": 0.0, "finish_reason": ""}
    c = chosen.completion
    logprob = float("nan") if c.logprob is None else float(c.logprob)
    return {"tokens": int(c.num_tokens), "logprob": logprob, "finish_reason": str(c.finish_reason)}


def error_row(example: Optional[Example], row: Mapping[str, Any], config: DartConfig, reason: str) -> dict[str, Any]:
    """The row for input that could not be adapted: the expert's text as read (or as far as it could be read)."""
    if example is not None:
        return output_row(
            example.context, example.steps, example.solution, example.gold, action=Action.ERROR, error=reason
        )
    problem = row.get(config.problem_column)
    solution = row.get(config.solution_column)
    context = [{"role": "user", "content": problem if isinstance(problem, str) else ""}]
    solution = solution if isinstance(solution, str) else ""
    return output_row(context, [solution], solution, "", action=Action.ERROR, error=reason)


def batch_rows(
    batch: Mapping[str, Any], config: DartConfig, declared: Optional[bool]
) -> tuple[list[dict[str, Any]], bool]:
    """Rows of a batch, or the single row of an unbatched call, and which of the two it was."""
    known = (config.problem_column, config.solution_column, config.messages_column)
    if not any(column in batch for column in known):
        raise KeyError(
            f"batch has none of the columns '{config.problem_column}', '{config.solution_column}', "
            f"'{config.messages_column}' (got {sorted(batch)}); set them in DartConfig"
        )
    if not is_batch(batch, config, declared):
        return [dict(batch)], False
    keys = list(batch.keys())
    n = len(batch[keys[0]])
    return [{k: batch[k][i] for k in keys} for i in range(n)], True


def is_batch(batch: Mapping[str, Any], config: DartConfig, declared: Optional[bool]) -> bool:
    """Is `batch` many rows (column -> list of values) or one row (column -> value)?

    Values cannot tell: a row's `messages` is a list, a list-typed `problem` looks like a batch of
    problems, and a batch of one looks like a row. So we ask the caller, never the data:
    `Dataset.map` formats its input as a `LazyBatch` when called with `batched=True` and as a
    `LazyRow` without; that container type *is* the map call's `batched` flag, for every batch size,
    `num_proc` and column type. A plain dict (a `Dataset[a:b]` slice, `IterableDataset.map`, a
    non-Python format, a direct call) carries no flag: `DartAdapter(batched=...)` says which, and only
    when it is left None is the shape read: a batch is a dict whose every value is a list of one common
    length >= 1 and whose conversations (if any) are lists, not chat turns. That last reading is a
    guess for a row whose every column is a list of one length; such data must set `batched`.
    """
    from datasets.formatting.formatting import LazyBatch, LazyRow

    if isinstance(batch, (LazyBatch, LazyRow)):
        is_lazy_batch = isinstance(batch, LazyBatch)
        if declared is not None and declared != is_lazy_batch:
            given = "a batch (map(..., batched=True))" if is_lazy_batch else "a single row (map without batched=True)"
            raise ValueError(
                f"DartAdapter(batched={declared}) was given {given}: call dataset.map(adapter, batched={declared}) "
                "or leave DartAdapter's batched=None"
            )
        return is_lazy_batch
    values = list(batch.values())
    columns_of_one_length = all(isinstance(v, (list, tuple)) for v in values) and len({len(v) for v in values}) == 1
    if declared is not None:
        if declared and not columns_of_one_length:
            raise ValueError("DartAdapter(batched=True) was given a dict that is not columns of one length (a row?)")
        return declared
    if not columns_of_one_length or not values[0]:
        return False
    messages = batch.get(config.messages_column)
    first_turn = next((m for m in messages if m is not None), None) if messages is not None else None
    return not isinstance(first_turn, Mapping)
