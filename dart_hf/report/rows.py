"""The adapted dataset as rows of plain Python values, read once for every summary.

Stats, the stepwise export, the plots and the HTML page all read the same `dart_*` columns; this
module reads them in one place and holds the small helpers they share, so the four agree on what
a row, a score and a problem text are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: Columns every adapted dataset has (see `dart_hf.schema.OUTPUT_COLUMNS`); without them there is nothing to summarize.
REQUIRED = (
    "dart_steps",
    "dart_step_success",
    "dart_gap_step",
    "dart_action",
    "dart_solution",
    "dart_tokens_generated",
)

#: Optional columns the summaries read when present.
OPTIONAL = (
    "dart_student_start",
    "dart_answer",
    "dart_seconds",
    "dart_selection",
    "dart_error",
    "dart_verify_timeouts",
    "prompt",
    "problem",
)


def json_safe(value: Any) -> Any:
    """Plain JSON types only: NaN/inf become None, tuples lists, unknown objects their `str`.

    `stats.json` is written with `allow_nan=False`, and configs can hold callables or numpy values.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    try:  # numpy scalars and arrays
        import numpy as np

        if isinstance(value, np.generic):
            return json_safe(value.item())
        if isinstance(value, np.ndarray):
            return json_safe(value.tolist())
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def _columns(dataset: Any, names: Iterable[str]) -> dict[str, list]:
    """The named columns as Python lists (missing optional columns are absent)."""
    present = [n for n in names if n in dataset.column_names]
    if not present:
        return {}
    return dataset.select_columns(present).to_dict()


def check_adapted(dataset: Any) -> None:
    """Raise a `ValueError` that says what to run when `dataset` has not been through `DartAdapter`."""
    missing = [c for c in REQUIRED if c not in getattr(dataset, "column_names", [])]
    if missing:
        raise ValueError(
            f"dataset has no DART columns {missing}: run dataset.map(DartAdapter(student), batched=True) first"
        )


def read_rows(dataset: Any, extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Rows as dicts of the DART columns the summaries read (plus `extra` columns when present).

    Only these columns are read, so large columns (`dart_rollouts`) stay on disk unless asked for.
    """
    check_adapted(dataset)
    cols = _columns(dataset, list(REQUIRED) + list(extra) + list(OPTIONAL))
    return [{k: v[i] for k, v in cols.items()} for i in range(len(dataset))]


def problem_text(row: Mapping[str, Any]) -> str:
    """The problem as the student saw it: the last user turn of `prompt` (else `problem`)."""
    prompt = row.get("prompt")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, (list, tuple)):
        users = [m for m in prompt if isinstance(m, Mapping) and m.get("role") == "user"]
        if users and isinstance(users[-1].get("content"), str):
            return users[-1]["content"]
    problem = row.get("problem")
    return problem if isinstance(problem, str) else ""


def step_scores(row: Mapping[str, Any]) -> list[float]:
    """f_0..f_T as floats, a missing score (None) as NaN, so `math.isfinite` tells simulated ones."""
    return [float("nan") if s is None else float(s) for s in (row.get("dart_step_success") or [])]
