"""Accuracy and pass@k of a student on a test split, with the same backends, prompts and verifier as DART."""

from __future__ import annotations

import math
import time
from typing import Any, Optional

import datasets
from tqdm.auto import tqdm

from .answers import extract_boxed
from .backends.base import GenerationBackend
from .config import DartConfig
from .example import Example, ExampleError, parse_example
from .simulation import sample_from_scratch
from .verification import Verifier, as_verifier


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al., 2021)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def _example(row: dict, config: DartConfig) -> Example:
    """Test rows may carry only a problem and an answer; the expert solution is optional here."""
    try:
        return parse_example(row, config)
    except ExampleError:
        gold = row.get(config.answer_column) or extract_boxed(row.get(config.solution_column))
        problem = row.get(config.problem_column)
        if not isinstance(problem, str) or not problem.strip() or gold is None:
            raise
        padded = dict(row, **{config.solution_column: f"\\boxed{{{gold}}}"})
        return parse_example(padded, config)


def evaluate_student(
    backend: GenerationBackend,
    dataset: datasets.Dataset,
    config: Optional[DartConfig] = None,
    *,
    n_samples: int = 1,
    ks: tuple[int, ...] = (1,),
    verifier: Optional[Verifier] = None,
    progress: bool = True,
    batch_problems: int = 64,
) -> dict[str, Any]:
    """Sample `n_samples` answers per problem from scratch (prefix t = 0) and score them with math-verify.

    `batch_problems` problems share one backend call (and the backend's batches). `verifier`: any
    [`Verifier`][dart_hf.verification.Verifier]; None: math-verify with `config.verify_timeout`.

    Returns `accuracy` (mean correct fraction over all samples), `pass@k` for each k, counts, cost and
    per-row results. Rows that cannot be read are counted in `errors`, not scored.
    """
    config = config or DartConfig()
    verifier = as_verifier(verifier, config.verify_timeout)
    per_row: list[dict[str, Any]] = []
    readable: list[tuple[int, Example]] = []
    for i, row in enumerate(dataset):
        try:
            readable.append((i, _example(row, config)))
            per_row.append({})
        except ExampleError as err:
            per_row.append({"correct": None, "error": str(err)})
    errors, tokens = len(per_row) - len(readable), 0
    start = time.perf_counter()
    bar = tqdm(total=len(readable), desc="evaluate", unit="problem", disable=not progress)
    # Problems go to the backend in groups, so its batches stay full; samples are seeded per problem,
    # so the grouping does not change them.
    for first in range(0, len(readable), batch_problems):
        group = readable[first : first + batch_problems]
        drawn = sample_from_scratch([e for _, e in group], n_samples, "eval", backend, verifier, config)
        for (i, _), rollouts in zip(group, drawn):
            if isinstance(rollouts, BaseException):  # a request that failed (HTTP backends): not scored
                errors += 1
                per_row[i] = {"correct": None, "error": f"{type(rollouts).__name__}: {rollouts}"}
                continue
            tokens += sum(r.completion.num_tokens for r in rollouts)
            per_row[i] = {
                "correct": sum(r.correct for r in rollouts),
                "answers": [r.answer for r in rollouts],
                "texts": [r.completion.text for r in rollouts],
                "error": "",
            }
        bar.update(len(group))
    bar.close()
    scored = [r["correct"] for r in per_row if r["correct"] is not None]
    result: dict[str, Any] = {
        "n_problems": len(per_row),
        "n_scored": len(scored),
        "errors": errors,
        "n_samples": n_samples,
        "accuracy": sum(scored) / (len(scored) * n_samples) if scored else float("nan"),
        "tokens_generated": tokens,
        "wall_seconds": time.perf_counter() - start,
        "rows": per_row,
    }
    for k in ks:
        result[f"pass@{k}"] = sum(pass_at_k(n_samples, c, k) for c in scored) / len(scored) if scored else float("nan")
    return result
