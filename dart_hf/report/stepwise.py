"""TRL's stepwise-supervision export: DART's per-step success rates as process-reward labels.

Simulating every expert prefix already measures, step by step, whether the student can still
follow; `to_stepwise` hands that signal to TRL's PRM trainer instead of leaving it in a column.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..rollouts import rollout_records
from ..schema import PHASE_SIM, Action
from .rows import problem_text, read_rows, step_scores

if TYPE_CHECKING:
    import datasets


def to_stepwise(dataset: Any, threshold: float = 0.5, *, include_rollouts: bool = False) -> datasets.Dataset:
    """Export the per-step success rates as TRL's stepwise-supervision dataset (for a PRM).

    Columns (as TRL's PRM trainer reads them: `prompt` str, `completions` list[str], `labels`
    list[bool] of the same length):

    * `prompt`: the problem text, i.e. the content of the last user turn of `prompt` (with the
      instruction the student saw);
    * `completions`: the expert steps with trailing whitespace stripped (TRL's PRM trainer appends
      its own `step_separator`, "\\n" by default, after every step); steps that are only whitespace
      are dropped together with their label;
    * `labels`: step k (1-based) is True when the student can still follow: f_k >= threshold.

    With `include_rollouts=True` these columns are added (TRL ignores extra columns), one entry per
    step of `completions`, about the simulation rollouts drawn after that step:

    * `step_correct` / `step_total` (list[int]): how many of them reached the gold answer, out of how
      many (so a PRM can weight labels by their evidence); from `dart_rollouts` when the row kept its
      rollouts, else from `dart_step_success` x `dart_step_samples`;
    * `step_rollouts` (list[list[str]]) and `step_rollout_correct` (list[list[bool]]): the student's
      continuations after the step and their verdicts (empty lists when the row kept no rollouts,
      see `DartConfig.keep_rollouts`).

    Skipped rows (they carry no trustworthy per-step signal): `dart_action == "error"`, rows with
    any NaN among f_1..f_T (a prefix not simulated), and rows with no steps. The output therefore
    can have fewer rows than the input; it is an export, not the adapted dataset.
    """
    import datasets

    extra = ("dart_step_samples", "dart_rollouts") if include_rollouts else ()
    cols: dict[str, list] = {"prompt": [], "completions": [], "labels": []}
    if include_rollouts:
        cols.update(step_correct=[], step_total=[], step_rollouts=[], step_rollout_correct=[])
    for r in read_rows(dataset, extra=extra):
        if r["dart_action"] == Action.ERROR:
            continue
        steps = list(r["dart_steps"] or [])
        scores = step_scores(r)
        if not steps or len(scores) != len(steps) + 1 or not all(math.isfinite(f) for f in scores[1:]):
            continue
        kept = [k for k, s in enumerate(steps, start=1) if s.strip()]
        if not kept:
            continue
        cols["prompt"].append(problem_text(r))
        cols["completions"].append([steps[k - 1].rstrip() for k in kept])
        cols["labels"].append([bool(scores[k] >= threshold) for k in kept])
        if include_rollouts:
            sim = [x for x in rollout_records(r.get("dart_rollouts")) if x["phase"] == PHASE_SIM]
            by_t: dict[int, list[dict]] = {}
            for x in sim:
                by_t.setdefault(x["prefix_index"], []).append(x)
            samples = list(r.get("dart_step_samples") or [])
            if sim:
                correct = [sum(x["correct"] for x in by_t.get(k, [])) for k in kept]
                total = [len(by_t.get(k, [])) for k in kept]
            else:
                total = [int(samples[k]) if k < len(samples) else 0 for k in kept]
                correct = [round(scores[k] * n) for k, n in zip(kept, total)]
            cols["step_correct"].append(correct)
            cols["step_total"].append(total)
            cols["step_rollouts"].append([[x["text"] for x in by_t.get(k, [])] for k in kept])
            cols["step_rollout_correct"].append([[x["correct"] for x in by_t.get(k, [])] for k in kept])
    spec = {
        "prompt": datasets.Value("string"),
        "completions": datasets.List(datasets.Value("string")),
        "labels": datasets.List(datasets.Value("bool")),
    }
    if include_rollouts:
        spec.update(
            step_correct=datasets.List(datasets.Value("int64")),
            step_total=datasets.List(datasets.Value("int64")),
            step_rollouts=datasets.List(datasets.List(datasets.Value("string"))),
            step_rollout_correct=datasets.List(datasets.List(datasets.Value("bool"))),
        )
    return datasets.Dataset.from_dict(cols, features=datasets.Features(spec))
