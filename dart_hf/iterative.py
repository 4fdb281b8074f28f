"""Iterative DART: adapt with the current student, train it, adapt the same problems again with the trained one.

One round is the ordinary pipeline, `dataset.map(DartAdapter(student))` then `DartTrainer` on the
usable rows; the next round adapts the *same* problems with the student the previous round trained,
so what the student learnt (a skill an early expert step showed) moves its gaps later, and the next
round's data keeps more of the expert's text and less of the student's old habits (the reviewers'
"one iteration only"; SIKeD, arXiv 2410.18574, iterates the same way)::

    from dart_hf import DartConfig, DartSFTConfig
    from dart_hf.iterative import iterative_dart, sft_round

    rounds = iterative_dart(
        "path/to/student", dataset, DartConfig(n_sim=4),
        train=sft_round(DartSFTConfig(output_dir="out", learning_rate=1e-4)),
        rounds=2,
    )
    rounds[-1].model.save_pretrained("out/final")

`train` is any callable `(model, tokenizer, rows, round_index) -> (model, tokenizer)`, so a user can
keep their own trainer settings, save a checkpoint per round, or push each round to the Hub.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import datasets

from .adapter import DartAdapter, is_usable
from .config import DartConfig
from .verifiers import Verifier
from .verifiers.base import stop_rule_of

#: `(model, tokenizer, usable adapted rows, round index from 0) -> (trained model, tokenizer)`
TrainFn = Callable[[Any, Any, datasets.Dataset, int], tuple[Any, Any]]


@dataclass
class RoundResult:
    """What one round produced: the adapted dataset, the rows trained on, the trained student, the cost."""

    index: int
    adapted: datasets.Dataset
    rows: datasets.Dataset
    model: Any
    tokenizer: Any
    tokens_generated: int
    generation_seconds: float
    training_seconds: float
    actions: dict[str, int] = field(default_factory=dict)


def adapt_all(
    dataset: datasets.Dataset,
    backend: Any,
    config: DartConfig,
    desc: str = "DART",
    verifier: Optional[Verifier] = None,
) -> tuple[datasets.Dataset, float]:
    """`dataset.map(DartAdapter)` over the whole set in one batch (no cache reuse), and its wall seconds."""
    start = time.perf_counter()
    adapted = dataset.map(
        DartAdapter(backend, config, progress=False, verifier=verifier),
        batched=True,
        batch_size=max(len(dataset), 1),
        load_from_cache_file=False,
        desc=desc,
    )
    return adapted, time.perf_counter() - start


def action_counts(adapted: datasets.Dataset) -> dict[str, int]:
    """How many adapted rows took each `dart_action` (imitate, explore, fallback, ...)."""
    counts: dict[str, int] = {}
    for action in adapted["dart_action"]:
        counts[action] = counts.get(action, 0) + 1
    return counts


def usable_rows(adapted: datasets.Dataset) -> datasets.Dataset:
    """The rows `DartTrainer` trains on: prompt, completion and provenance of every usable adapted row."""
    keep = [i for i, row in enumerate(adapted) if is_usable(row)]
    return adapted.select(keep).select_columns(["prompt", "completion", "dart_student_start"])


def iterative_dart(
    student: Union[str, Any],
    dataset: datasets.Dataset,
    config: DartConfig,
    train: TrainFn,
    rounds: int = 2,
    tokenizer: Any = None,
    device: Optional[str] = None,
    on_round: Optional[Callable[[RoundResult], None]] = None,
    first_round: int = 0,
    make_backend: Optional[Callable[[Any, Any], Any]] = None,
    verifier: Optional[Verifier] = None,
) -> list[RoundResult]:
    """Run `rounds` rounds of adapt-then-train, each adapting `dataset` with the previous round's student.

    Args:
        student: model id or folder, or a loaded model (then pass `tokenizer`).
        dataset: expert rows, as `DartAdapter` reads them; the same problems every round.
        config: the adaptation settings; round r samples with seed `config.seed + r`, so no round
            repeats another's random draws.
        train: trains one round (see `sft_round`).
        rounds: number of rounds (>= 1; 1 is plain DART).
        on_round: called after each round, e.g. to save its checkpoint.
        first_round: index of the first round run here (its seed offset), to continue an earlier loop
            whose last trained student is `student`.
        make_backend: `(model, tokenizer) -> GenerationBackend` that samples from a round's student;
            default: the in-process `TransformersBackend`, stopping where `verifier` says.
        verifier: the judge of every round's rollouts (default: `MathVerifier`).
    """
    if make_backend is None:
        from .backends.transformers import TransformersBackend

        def make_backend(model: Any, tok: Any) -> Any:
            return TransformersBackend(model, tok, device=device, stop_at_answer=stop_rule_of(verifier))

    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    model, results = student, []
    for index in range(first_round, first_round + rounds):
        backend = make_backend(model, tokenizer)
        tokenizer = getattr(backend, "tokenizer", tokenizer)
        current = getattr(backend, "model", model)
        round_config = dataclasses.replace(config, seed=config.seed + index)
        adapted, generation_seconds = adapt_all(
            dataset, backend, round_config, desc=f"DART round {index + 1}", verifier=verifier
        )
        rows = usable_rows(adapted)
        start = time.perf_counter()
        if len(rows):
            model, tokenizer = train(current, tokenizer, rows, index)
        result = RoundResult(
            index=index,
            adapted=adapted,
            rows=rows,
            model=model if len(rows) else current,
            tokenizer=tokenizer,
            tokens_generated=sum(adapted["dart_tokens_generated"]),
            generation_seconds=generation_seconds,
            training_seconds=time.perf_counter() - start,
            actions=action_counts(adapted),
        )
        model = result.model
        results.append(result)
        if on_round is not None:
            on_round(result)
    return results


def sft_round(args: Any) -> TrainFn:
    """A `train` callable: `DartTrainer` with `args` (a `DartSFTConfig`) on each round's rows."""

    def train(model: Any, tokenizer: Any, rows: datasets.Dataset, index: int) -> tuple[Any, Any]:
        from .trainer import DartTrainer

        trainer = DartTrainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer)
        trainer.train()
        return trainer.model.eval(), tokenizer

    return train
