"""The `dart_rollouts` and `dart_rollout_endings` columns: what a row's judged continuations were.

`dart_rollouts` is stored column-wise (one typed list per field of `ROLLOUT_FIELDS`) so that its
Arrow type never depends on which rows come first; `rollout_records` reads it back one dict per
rollout.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from .schema import ROLLOUT_ENDINGS, ROLLOUT_FIELDS, writable_text

if TYPE_CHECKING:
    from .simulation import Rollout

#: A judged continuation with where it came from: (rollout, phase, index in its (phase, t) stream).
Drawn = tuple["Rollout", str, int]


def count_endings(rollouts: Iterable[Rollout]) -> dict[str, int]:
    """Counts of `ROLLOUT_ENDINGS`; a finish reason a backend made up counts as "stop" (it ended on its own)."""
    counts = dict.fromkeys(ROLLOUT_ENDINGS, 0)
    for r in rollouts:
        reason = r.completion.finish_reason
        counts[reason if reason in counts else "stop"] += 1
    return counts


def _string_dtype() -> Any:
    # numpy >= 2 keeps strings exactly (the fixed-width "U" dtype drops trailing NUL characters)
    dtypes = getattr(np, "dtypes", None)
    return dtypes.StringDType() if hasattr(dtypes, "StringDType") else str


_ROLLOUT_DTYPES = {
    "prefix_index": np.int64,
    "phase": "string",
    "sample": np.int64,
    "text": "string",
    "answer": "string",
    "correct": np.bool_,
    "tokens": np.int64,
    "finish_reason": "string",
    "logprob": np.float64,
    "chosen": np.bool_,
}


def rollout_column(drawn: Sequence[Drawn], chosen: Optional[Rollout]) -> dict[str, Any]:
    """The `dart_rollouts` value: one typed numpy array per field in `ROLLOUT_FIELDS`, equal lengths.

    Column-wise on purpose: `datasets` infers a column's Arrow type from the first batch it writes,
    and an empty Python list has no element type (it becomes `list<null>`, which no later batch can
    widen). A typed numpy array keeps its type even when empty, so the column gets the same type
    with `keep_rollouts` off, on error rows, and in any batch order.
    """
    values: dict[str, list] = {
        "prefix_index": [r.prefix_index for r, _, _ in drawn],
        "phase": [writable_text(phase) for _, phase, _ in drawn],
        "sample": [j for _, _, j in drawn],
        "text": [writable_text(r.completion.text) for r, _, _ in drawn],
        "answer": [writable_text(r.answer or "") for r, _, _ in drawn],
        "correct": [bool(r.correct) for r, _, _ in drawn],
        "tokens": [r.completion.num_tokens for r, _, _ in drawn],
        "finish_reason": [writable_text(r.completion.finish_reason) for r, _, _ in drawn],
        "logprob": [float("nan") if r.completion.logprob is None else r.completion.logprob for r, _, _ in drawn],
        "chosen": [chosen is not None and r is chosen for r, _, _ in drawn],
    }
    string = _string_dtype()
    return {
        name: np.array(values[name], dtype=string if _ROLLOUT_DTYPES[name] == "string" else _ROLLOUT_DTYPES[name])
        for name in ROLLOUT_FIELDS
    }


def rollout_records(value: Optional[Mapping[str, Sequence[Any]]]) -> list[dict[str, Any]]:
    """A row's `dart_rollouts` (stored column-wise) as one dict per rollout, in the order they were drawn.

    Accepts the value as `DartAdapter` returns it (numpy arrays) or as `datasets` reads it back
    (lists); None or a missing column gives `[]`.
    """
    if value is None or len(value) == 0:
        return []
    columns = {name: [] if value.get(name) is None else list(value[name]) for name in ROLLOUT_FIELDS}
    n = len(columns["text"])
    if any(len(v) != n for v in columns.values()):
        raise ValueError(f"dart_rollouts fields have different lengths: { {k: len(v) for k, v in columns.items()} }")
    out = []
    for i in range(n):
        record = {name: columns[name][i] for name in ROLLOUT_FIELDS}
        for name in ("prefix_index", "sample", "tokens"):
            record[name] = int(record[name])
        for name in ("phase", "text", "answer", "finish_reason"):
            record[name] = str(record[name])
        for name in ("correct", "chosen"):
            record[name] = bool(record[name])
        record["logprob"] = float("nan") if record["logprob"] is None else float(record["logprob"])
        out.append(record)
    return out
