"""The training set of each study condition, and what it cost to generate.

- `static`: the expert solutions as they are (the paper's baseline; no generation).
- `dart`: `DartAdapter`'s adapted trajectories (rows it could use).
- `pass_rate`: open-r1's pass-rate filtering: the expert solutions of the problems whose student pass
  rate (from `n_sim` samples each) lies in a band.
- `rft`: rejection-sampling fine-tuning: one of the student's own verified solutions per problem it
  solved, from as many samples as match DART's generated tokens.
- `hint_fixed`: a prefix hint without a grid (QuestA-style, as SFT data): the first ceil(p * T) expert
  steps, then one of the student's verified continuations from there (`n_explore` samples).
- `hint_minimal`: the shortest expert prefix after which at least one of `n_sim` student continuations
  is correct (BREAD/POPE-style; t = 0 upward to T - 1, stop at the first success), then that continuation.
- `iterative`: DART in rounds (`dart_hf.iterative`), trained in the harness.

A problem where a hint condition finds no verified continuation keeps its expert solution, as DART's
default `fallback="expert"` does.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import datasets

from ..adapter import is_usable
from ..backends.base import GenerationBackend, derive_seed
from ..config import DartConfig
from ..example import Example, ExampleError, parse_example
from ..iterative import action_counts, adapt_all
from ..prompts import prefix_text
from ..selection import select_continuation
from ..simulation import Rollout, SampleJob, run_jobs
from ..simulation import sample_from_scratch as _sample_from_scratch
from ..verifiers import Verifier

#: Phase name of the from-scratch samples the baselines draw (its own seed stream, apart from DART's).
SCRATCH_PHASE = "scratch"
#: Phase name of the hint baselines' samples after an expert prefix.
HINT_PHASE = "hint"


@dataclass
class TrainingSet:
    """Rows in TRL's prompt-completion format, plus `dart_student_start` (-1 where the expert wrote all)."""

    condition: str
    rows: datasets.Dataset
    tokens_generated: int = 0
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


def _training_row(example: Example, text: str, student_start: int = -1) -> dict[str, Any]:
    return {
        "prompt": example.context,
        "completion": [{"role": "assistant", "content": text}],
        "dart_student_start": student_start,
    }


def _to_dataset(rows: list[dict[str, Any]]) -> datasets.Dataset:
    features = datasets.Features(
        {
            "prompt": [{"role": datasets.Value("string"), "content": datasets.Value("string")}],
            "completion": [{"role": datasets.Value("string"), "content": datasets.Value("string")}],
            "dart_student_start": datasets.Value("int64"),
        }
    )
    columns = {name: [row[name] for row in rows] for name in features}  # from_dict: also right for no rows
    return datasets.Dataset.from_dict(columns, features=features)


def parse_all(train: datasets.Dataset, config: DartConfig) -> list[Optional[Example]]:
    """Every training row as an `Example` (None where it cannot be read; such rows are in no condition)."""
    out: list[Optional[Example]] = []
    for row in train:
        try:
            out.append(parse_example(row, config))
        except ExampleError:
            out.append(None)
    return out


def static_set(examples: list[Optional[Example]]) -> TrainingSet:
    """The paper's baseline: every readable expert solution as it is; nothing generated."""
    rows = [_training_row(e, e.solution) for e in examples if e is not None]
    return TrainingSet("static", _to_dataset(rows))


def dart_set(
    train: datasets.Dataset, backend: GenerationBackend, config: DartConfig, verifier: Optional[Verifier] = None
) -> TrainingSet:
    """`DartAdapter` over the training set, judged by `verifier`; the rows it could use, with their provenance offsets."""
    adapted, seconds = adapt_all(train, backend, config, verifier=verifier)
    rows = [
        {"prompt": r["prompt"], "completion": r["completion"], "dart_student_start": r["dart_student_start"]}
        for r in adapted
        if is_usable(r)
    ]
    info = {"actions": action_counts(adapted), "gap_steps": adapted["dart_gap_step"]}
    return TrainingSet("dart", _to_dataset(rows), sum(adapted["dart_tokens_generated"]), seconds, info)


def sample_from_scratch(
    examples: list[Optional[Example]],
    n: int,
    backend: GenerationBackend,
    verifier: Verifier,
    config: DartConfig,
    first: int = 0,
) -> list[list[Rollout]]:
    """`n` judged samples per problem from the bare prompt (samples `first`..`first + n - 1` of its stream).

    An unreadable problem, or one whose request failed (HTTP backends), has no samples.
    """
    drawn = _sample_from_scratch(examples, n, SCRATCH_PHASE, backend, verifier, config, first)
    return [result if isinstance(result, list) else [] for result in drawn]


def pass_rate_set(
    examples: list[Optional[Example]], samples: list[list[Rollout]], band: tuple[float, float]
) -> TrainingSet:
    """open-r1's pass-rate filtering: expert solutions of the problems whose pass rate lies in `band`."""
    low, high = band
    rows, rates = [], []
    for example, drawn in zip(examples, samples):
        if example is None or not drawn:
            continue
        rate = sum(r.correct for r in drawn) / len(drawn)
        rates.append(rate)
        if low <= rate <= high:
            rows.append(_training_row(example, example.solution))
    info = {"kept": len(rows), "band": list(band), "mean_pass_rate": sum(rates) / len(rates) if rates else None}
    return TrainingSet("pass_rate", _to_dataset(rows), _tokens(samples), info=info)


def rft_set(examples: list[Optional[Example]], samples: list[list[Rollout]], config: DartConfig) -> TrainingSet:
    """Rejection-sampling fine-tuning: one verified student solution per solved problem (chosen as DART chooses)."""
    rows = []
    for example, drawn in zip(examples, samples):
        correct = [r for r in drawn if r.correct]
        if example is None or not correct:
            continue
        seed = derive_seed(config.seed, example.key, "rft-select")
        index, _ = select_continuation([r.completion for r in correct], config.selection, seed)
        rows.append(_training_row(example, correct[index].completion.text, student_start=0))
    info = {"kept": len(rows), "samples_per_problem": max((len(s) for s in samples), default=0)}
    return TrainingSet("rft", _to_dataset(rows), _tokens(samples), info=info)


def _tokens(samples: list[list[Rollout]]) -> int:
    return sum(r.completion.num_tokens for drawn in samples for r in drawn)


def matched_samples(budget_tokens: int, probe: list[list[Rollout]], n_problems: int, minimum: int) -> int:
    """Samples per problem whose expected cost matches `budget_tokens`, from the mean cost of the probe's samples."""
    drawn = [r.completion.num_tokens for s in probe for r in s]
    if not drawn or n_problems == 0:
        return minimum
    per_sample = max(sum(drawn) / len(drawn), 1.0)
    return max(minimum, round(budget_tokens / (per_sample * n_problems)))


def _hinted_row(example: Example, t: int, correct: list[Rollout], config: DartConfig, name: str) -> dict[str, Any]:
    """Expert steps 1..t + one verified continuation (chosen as DART chooses); the expert's solution if none."""
    if not correct:
        return _training_row(example, example.solution)
    seed = derive_seed(config.seed, example.key, f"{name}-select", t)
    index, _ = select_continuation([r.completion for r in correct], config.selection, seed)
    prefix = prefix_text(example, t)
    return _training_row(example, prefix + correct[index].completion.text, student_start=len(prefix))


def hint_fixed_set(
    examples: list[Optional[Example]],
    backend: GenerationBackend,
    verifier: Verifier,
    config: DartConfig,
    fraction: float,
) -> TrainingSet:
    """First ceil(fraction * T) expert steps + one of `config.n_explore` student continuations that verifies."""
    start = time.perf_counter()
    readable = [e for e in examples if e is not None]
    hints = [min(len(e.steps), math.ceil(fraction * len(e.steps))) for e in readable]
    work = [(e, SampleJob(t, config.n_explore, HINT_PHASE)) for e, t in zip(readable, hints)]
    drawn = [r if isinstance(r, list) else [] for r in run_jobs(work, backend, verifier, config)]
    rows = [
        _hinted_row(e, t, [r for r in d if r.correct], config, "hint_fixed") for e, t, d in zip(readable, hints, drawn)
    ]
    explored = sum(row["dart_student_start"] >= 0 for row in rows)
    info = {"explored": explored, "expert_kept": len(rows) - explored, "fraction": fraction}
    return TrainingSet("hint_fixed", _to_dataset(rows), _tokens(drawn), time.perf_counter() - start, info)


def hint_minimal_set(
    examples: list[Optional[Example]], backend: GenerationBackend, verifier: Verifier, config: DartConfig
) -> TrainingSet:
    """The shortest expert prefix (t = 0 upward) after which one of `config.n_sim` continuations verifies, + it.

    The search stops at t = T - 1: after the whole solution the expert has already stated the answer, so a
    problem without a success before that keeps the expert's solution. All problems still searching
    advance one prefix per round, so each round is one batched backend call.
    """
    start = time.perf_counter()
    readable = [e for e in examples if e is not None]
    found: dict[int, tuple[int, list[Rollout]]] = {}
    all_drawn: list[list[Rollout]] = []
    open_ = list(range(len(readable)))
    t = 0
    while open_:
        work = [(readable[i], SampleJob(t, config.n_sim, HINT_PHASE)) for i in open_]
        drawn = [r if isinstance(r, list) else [] for r in run_jobs(work, backend, verifier, config)]
        all_drawn += drawn
        still = []
        for i, d in zip(open_, drawn):
            correct = [r for r in d if r.correct]
            if correct:
                found[i] = (t, correct)
            elif t + 1 < len(readable[i].steps):
                still.append(i)
        open_, t = still, t + 1
    rows = [
        _hinted_row(e, *found[i], config, "hint_minimal") if i in found else _training_row(e, e.solution)
        for i, e in enumerate(readable)
    ]
    hint_steps = [found[i][0] for i in sorted(found)]
    info = {
        "explored": len(found),
        "expert_kept": len(readable) - len(found),
        "mean_hint_steps": sum(hint_steps) / len(hint_steps) if hint_steps else None,
    }
    return TrainingSet("hint_minimal", _to_dataset(rows), _tokens(all_drawn), time.perf_counter() - start, info)
