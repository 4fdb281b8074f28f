"""Step-wise adaptability estimation: the student continues from expert prefixes and is judged by outcome.

The full grid samples `n_sim` rollouts after every prefix t = 0..T; the gap search strategies in
[`dart_hf.gap_search`][dart_hf.gap_search] draw less of it (`DartConfig.gap_search`).

Samples are seeded per (example, phase, prefix, sample index), so a round that continues a prefix's
stream draws exactly the samples the full grid would have drawn there, whatever the strategy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Union

from .backends.base import Completion, GenerationBackend, GenerationRequest, RequestsFailed, derive_seed
from .config import DartConfig
from .errors import RunError
from .example import Example, ExampleError
from .prompts import prefix_text, render_prompt
from .schema import PHASE_SIM
from .verifiers.base import Attempt, answer_of, judge_attempts

if TYPE_CHECKING:
    from .verifiers import Verifier


@dataclass
class Rollout:
    """One judged student continuation."""

    prefix_index: int  # t: the student continued after expert steps 1..t
    completion: Completion
    answer: Optional[str]  # final answer of prefix + continuation
    correct: bool
    timed_out: bool = (
        False  # the verifier gave no verdict (e.g. math-verify's deadline): `correct` is False, but unjudged
    )


@dataclass(frozen=True)
class SampleJob:
    """`n` rollouts after expert prefix `t`: samples `first`..`first + n - 1` of the (phase, t) stream."""

    t: int
    n: int
    phase: str = PHASE_SIM
    first: int = 0


def check_prompt_length(example: Example, backend: GenerationBackend, config: DartConfig) -> None:
    """Fail the row early, with a reason, when even the shortest continuation would not fit."""
    tokenizer, limit = backend.tokenizer, backend.context_length
    if tokenizer is None or limit is None:
        return
    longest = render_prompt(example, prefix_text(example, len(example.steps)), tokenizer, config)
    n_tokens = len(tokenizer(longest, add_special_tokens=False)["input_ids"])
    if n_tokens >= limit:
        raise ExampleError(f"prompt is longer than the student's context ({n_tokens} >= {limit} tokens)")


def job_request(example: Example, job: SampleJob, backend: GenerationBackend, config: DartConfig) -> GenerationRequest:
    """The backend request of one job: its prompt, and the seed of its (example, phase, prefix) stream."""
    return GenerationRequest(
        prompt=render_prompt(example, prefix_text(example, job.t), backend.tokenizer, config),
        n=job.n,
        seed=derive_seed(config.seed, example.key, job.phase, job.t),
        temperature=config.temperature,
        top_p=config.top_p,
        max_new_tokens=config.max_new_tokens,
        first_sample=job.first,
        tag=job.phase,
    )


def run_jobs(
    work: Sequence[tuple[Example, SampleJob]], backend: GenerationBackend, verifier: Verifier, config: DartConfig
) -> list[Union[list[Rollout], BaseException]]:
    """Sample every job in one backend call (jobs of many examples batch together) and judge the answers.

    Seeds derive from (config seed, example content, phase, prefix, sample index), never from what
    else shares the call. When the backend reports that some requests failed (`RequestsFailed`), the
    jobs that succeeded are judged and kept and each failed job gets its exception in its place.
    """
    if not work:
        return []
    requests = [job_request(example, job, backend, config) for example, job in work]
    outputs: list[Union[list[Completion], BaseException, None]]
    try:
        outputs = list(backend.generate(requests))
    except RequestsFailed as partial:
        outputs = [partial.errors[i] if i in partial.errors else o for i, o in enumerate(partial.outputs)]
    if len(outputs) != len(requests):
        raise RuntimeError(f"backend returned completions for {len(outputs)} of {len(requests)} requests")
    return judge_outputs(work, outputs, verifier, config)


def judge_outputs(
    work: Sequence[tuple[Example, SampleJob]],
    outputs: Sequence[Union[list[Completion], BaseException, None]],
    verifier: Verifier,
    config: DartConfig,
) -> list[Union[list[Rollout], BaseException]]:
    """Judge each job's completions (one verifier call for all); a job whose outcome is an exception keeps it.

    A job that got another number of completions than it asked for gets a `RuntimeError`.
    """
    errors: dict[int, BaseException] = {}
    for i, (o, (_, job)) in enumerate(zip(outputs, work)):
        if isinstance(o, BaseException):
            errors[i] = o
        elif o is None or len(o) != job.n:
            errors[i] = RuntimeError(
                f"backend returned {0 if o is None else len(o)} completions for a request of {job.n}"
            )
    kept = [i for i in range(len(work)) if i not in errors]
    texts = {i: [prefix_text(work[i][0], work[i][1].t) + c.text for c in outputs[i]] for i in kept}  # type: ignore[union-attr]
    answers = {i: [answer_of(verifier, text, config.answer_phrase_fallback) for text in texts[i]] for i in kept}
    attempts = [
        Attempt(work[i][0].gold, a, text, work[i][0].row) for i in kept for a, text in zip(answers[i], texts[i])
    ]
    given = judge_attempts(verifier, attempts)
    if len(given) != len(attempts):  # a broken verifier would fail every row alike: stop the run instead
        method = "judge_attempts" if callable(getattr(verifier, "judge_attempts", None)) else "judge_many"
        raise RunError(f"{type(verifier).__name__}.{method} returned {len(given)} verdicts for {len(attempts)} answers")
    verdicts = iter(given)
    judged: dict[int, list[Rollout]] = {
        i: [Rollout(work[i][1].t, c, a, *next(verdicts)) for c, a in zip(outputs[i], answers[i])]  # type: ignore[arg-type]
        for i in kept
    }
    return [judged[i] if i in judged else errors[i] for i in range(len(work))]


def sample_from_scratch(
    examples: Sequence[Optional[Example]],
    n: int,
    phase: str,
    backend: GenerationBackend,
    verifier: Verifier,
    config: DartConfig,
    first: int = 0,
) -> list[Union[list[Rollout], BaseException, None]]:
    """`n` judged samples per example from its bare prompt (prefix t = 0), all in one backend call.

    Samples `first`..`first + n - 1` of the example's `phase` stream, so baselines and evaluation
    draw apart from DART's own streams and a later call can extend an earlier one. A None example
    (an unreadable row) gets None; a request that failed on its own (HTTP backends) gets its
    exception, for the caller to count as it sees fit.
    """
    work = [(e, SampleJob(0, n, phase, first)) for e in examples if e is not None]
    got = iter(run_jobs(work, backend, verifier, config))
    return [None if e is None else next(got) for e in examples]


def simulate(n_steps: int, config: DartConfig):
    """Plan the simulation of one example with `config.gap_search` ([`search_gap`][dart_hf.gap_search.search_gap]).

    Yields rounds of jobs, receives their rollouts; returns the rollouts per prefix and the first gap
    (1-based step index, or None).
    """
    from .gap_search import search_gap  # the strategies build on SampleJob and Rollout, defined here

    return search_gap(n_steps, config)


def success_rates(rollouts: dict[int, list[Rollout]], n_prefixes: int) -> list[float]:
    """f_0..f_T from the rollouts drawn; NaN where a prefix was not simulated."""
    return [
        sum(r.correct for r in rollouts[t]) / len(rollouts[t]) if rollouts.get(t) else float("nan")
        for t in range(n_prefixes)
    ]
