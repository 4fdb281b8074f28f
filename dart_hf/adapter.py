"""`DartAdapter`: the DART transform for `datasets.Dataset.map`.

    adapted = dataset.map(DartAdapter("HuggingFaceTB/SmolLM2-135M-Instruct"), batched=True)

Each row is simulated, its imitation gap found, explored and assembled on its own (DESIGN.md §1);
seeds derive from the row's content, so the output is the same for any batch size, process count or
order, and a row that cannot be adapted gets `dart_action="error"` and a reason instead of raising.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from tqdm.auto import tqdm

from .backends.base import Outcome, derive_seed, open_stream
from .config import DartConfig
from .errors import RunError
from .example import Example, ExampleError, parse_example
from .gap_search import APPROXIMATE_SEARCHES, gap_search_name, search_gap
from .prompts import prefix_text
from .rows import batch_rows, error_row, output_row
from .schema import (  # noqa: F401  (USABLE_ACTIONS, is_usable: re-exported, as defined here before schema.py)
    OUTPUT_COLUMNS,
    PHASE_EXPLORE,
    PHASE_SIM,
    USABLE_ACTIONS,
    Action,
    is_usable,
)
from .selection import select_continuation
from .simulation import Rollout, SampleJob, check_prompt_length, job_request, judge_outputs, success_rates
from .verifiers import MathVerifier, Verifier, as_verifier, verifier_fingerprint
from .verifiers.base import stop_rule_of

_Judged = Union[list[Union[list[Rollout], BaseException]], BaseException]  # a row's judged round, or why it failed

logger = logging.getLogger(__name__)

#: Bump when a change to the algorithm changes outputs, so `datasets` caches are not reused.
ALGORITHM_VERSION = "4"  # 4: answers cut at token boundaries, dart_student_sample; 3: dart_verify_timeouts


def _config_fingerprint(config: DartConfig) -> str:
    from datasets.fingerprint import Hasher  # callables are hashed by their code, as datasets does

    fields = config.to_dict()
    # fields that change nothing are left out, so configs from before they existed keep their fingerprints
    if config.gap_search is None:
        del fields["gap_search"]
    if gap_search_name(config) not in APPROXIMATE_SEARCHES:
        del fields["gap_search_probe"]
    for name in ("gap_rule", "splitter"):
        value = getattr(config, name)
        if callable(value) and not isinstance(value, str):
            fields[name] = Hasher.hash(value)
    return json.dumps(fields, sort_keys=True, default=str)


class DartAdapter:
    """Adapt expert demonstrations to one student; a plain callable over a `datasets` batch.

    Args:
        student: a Hub model id or local directory (loaded lazily in each process), a path to a
            `.gguf` file, a loaded `PreTrainedModel`, or any object implementing
            [`GenerationBackend`][dart_hf.backends.base.GenerationBackend].
        config: a [`DartConfig`][dart_hf.DartConfig]; defaults follow the paper's settings.
        tokenizer: the student's tokenizer when `student` is a loaded model without a usable
            `name_or_path`.
        progress: show a progress bar over the rows of each batch, with generated tokens/s.
        batched: whether calls pass a batch (column -> list) or one row. None (default): `Dataset.map`
            tells by the type of what it passes, and a plain dict is read by its shape; set it when
            calling with plain dicts whose every column is list-valued (see `dart_hf.rows.is_batch`).
        verifier: the judge of final answers, any [`Verifier`][dart_hf.verifiers.Verifier];
            None (default): math-verify, as `MathVerifier(timeout=config.verify_timeout)`. It is
            part of the fingerprint, so `datasets` never reuses rows judged by another verifier.

    The output adds the columns in `OUTPUT_COLUMNS` to every row; input columns are kept.
    """

    def __init__(
        self,
        student: Any,
        config: Optional[DartConfig] = None,
        *,
        tokenizer: Any = None,
        progress: bool = True,
        batched: Optional[bool] = None,
        verifier: Optional[Verifier] = None,
    ) -> None:
        self.config = config if config is not None else DartConfig()
        if not isinstance(self.config, DartConfig):
            raise TypeError(f"config must be a DartConfig, got {type(self.config).__name__}")
        self.verifier = as_verifier(verifier, self.config.verify_timeout)
        if _is_backend(student):
            if tokenizer is not None:
                raise ValueError("pass the tokenizer to the backend, not to DartAdapter")
            self.backend = student
        else:
            from .backends.transformers import TransformersBackend

            self.backend = TransformersBackend(student, tokenizer, stop_at_answer=stop_rule_of(self.verifier))
        self.progress = progress
        if batched not in (None, True, False):
            raise TypeError(f"batched must be None, True or False, got {batched!r}")
        self.batched = batched
        cfg = self.config
        if gap_search_name(cfg) != "grid" and not isinstance(cfg.gap_rule, str):
            logger.warning("gap_search='certified' needs a named gap rule; a callable rule gets the full grid")

    algorithm_version = ALGORITHM_VERSION

    @property
    def fingerprint(self) -> str:
        """Cheap, stable identity used by `datasets` caching: student + config + verifier + algorithm version."""
        parts = [ALGORITHM_VERSION, self.backend.fingerprint, _config_fingerprint(self.config)]
        judge = verifier_fingerprint(self.verifier, self.config.verify_timeout)
        payload = "\x1f".join(parts if judge is None else [*parts, judge])  # the default adds nothing
        return hashlib.sha256(payload.encode()).hexdigest()

    def __repr__(self) -> str:
        return f"DartAdapter(student={self.backend.fingerprint!r}, config={self.config!r})"

    # ------------------------------------------------------------------ map interface
    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Adapt a batch (`batched=True`) or a single row; returns only the new columns."""
        rows, batched = batch_rows(batch, self.config, self.batched)
        outputs = self.adapt_rows(rows)
        if not batched:
            return outputs[0]
        return {name: [o[name] for o in outputs] for name in OUTPUT_COLUMNS}

    def adapt_rows(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Adapt rows together, each at its own pace, through one stream of generation requests.

        Every row's plan yields rounds of sampling jobs; a round's requests go to the backend's
        stream (`open_stream`) as soon as the row asks for them, and the row moves on as soon as its
        own round is back, while the other rows' requests are still running. So a continuous-batching
        backend (`TransformersBackend`, `OpenAIServerBackend`) stays full however the rows' rounds
        interleave; a backend with only `generate` gets one call per round of all waiting rows. A
        row's samples are seeded by its content, so they do not depend on its neighbours or on the
        schedule (up to float rounding in batched kernels). `dart_seconds` is the row's own time plus
        its share, by generated tokens, of each wait for the backend that returned its requests.

        A request that failed on its own (the backend raised `RequestsFailed`, or one request of a
        failing call) fails its row; the other rows keep going. A `RunError` (no server answers, the
        student cannot load) ends the run.
        """
        tasks = [_Task(row) for row in rows]
        bar = tqdm(total=len(tasks), desc="DART", unit="ex", disable=not self.progress or len(tasks) < 2, leave=False)
        owner: dict[int, tuple[_Task, int]] = {}  # request key -> (its row, its job's place in the round)
        keys = itertools.count()
        stream = open_stream(self.backend)
        tokens, start = 0, time.perf_counter()

        def submit(task: _Task) -> None:
            task.got = [None] * len(task.pending)
            task.waiting = len(task.pending)
            for i, job in enumerate(task.pending):
                key = next(keys)
                owner[key] = (task, i)
                stream.submit(key, job_request(task.example, job, self.backend, self.config))

        try:
            for task in tasks:  # each row's first round goes out while the next rows are read
                self._start(task)
                if task.out is None:
                    submit(task)
                else:
                    bar.update(1)
            while owner:
                began = time.perf_counter()
                done = stream.collect()
                elapsed = time.perf_counter() - began
                if not done:
                    raise RuntimeError(f"the generation stream returned nothing with {len(owner)} requests pending")
                spent = {key: _tokens(outcome) for key, outcome in done}
                total = sum(spent.values())
                back = []  # rows whose round is complete, in the order their last request came back
                for key, outcome in done:
                    task, i = owner.pop(key)
                    task.seconds += elapsed * (spent[key] / total if total else 1 / len(done))
                    tokens += spent[key]
                    if task.out is not None:  # failed already: what else it asked for is dropped
                        continue
                    task.got[i] = outcome
                    task.waiting -= 1
                    if task.waiting == 0:
                        back.append(task)
                for task, got in zip(back, self._judge(back)):
                    self._advance(task, got)
                    if task.out is None:
                        submit(task)
                    else:
                        bar.update(1)
                bar.set_postfix(tok_s=f"{tokens / max(time.perf_counter() - start, 1e-9):.0f}")
        finally:
            stream.close()
        bar.close()
        for task in tasks:
            task.out.update(dart_seconds=task.seconds, dart_verify_timeouts=task.verify_timeouts)
        return [task.out for task in tasks]  # every row, good or error: `output_row`'s columns

    # ------------------------------------------------------------------ driving the per-row plans
    def _start(self, task: _Task) -> None:
        began = time.perf_counter()
        try:
            task.example = parse_example(task.row, self.config)
            reason, timed_out = self.verifier.inspect_gold(task.example.gold)
            task.verify_timeouts += int(timed_out)
            if reason is not None:
                raise ExampleError(reason)
            check_prompt_length(task.example, self.backend, self.config)
            task.plan = self._adapt(task.example)
            task.pending = next(task.plan)
        except Exception as err:
            self._fail(task, err)
        task.seconds += time.perf_counter() - began

    def _judge(self, back: list[_Task]) -> list[_Judged]:
        """Judge the rounds of every row that came back together, in one verifier call (a fast server
        returns many rows at a time, and each call to a verifier's worker costs a round trip).

        If that call raises, each row is judged on its own, so the error stays with the row that caused it.
        """
        if len(back) < 2:
            return [self._judge_round(task) for task in back]
        began = time.perf_counter()
        work = [(task.example, job) for task in back for job in task.pending]
        try:
            judged = judge_outputs(work, [g for task in back for g in task.got], self.verifier, self.config)
        except RunError:
            raise
        except Exception:
            return [self._judge_round(task) for task in back]
        share = (time.perf_counter() - began) / len(back)
        rounds, at = [], 0
        for task in back:
            task.seconds += share
            rounds.append(judged[at : at + len(task.pending)])
            at += len(task.pending)
        return rounds

    def _judge_round(self, task: _Task) -> _Judged:
        began = time.perf_counter()
        try:
            return judge_outputs([(task.example, job) for job in task.pending], task.got, self.verifier, self.config)
        except RunError:
            raise
        except Exception as err:
            return err
        finally:
            task.seconds += time.perf_counter() - began

    def _advance(self, task: _Task, got: _Judged) -> None:
        """Send the row's judged round to its plan, which yields the next round or the row."""
        began = time.perf_counter()
        try:
            if isinstance(got, BaseException):
                raise got
            failed = [g for g in got if isinstance(g, BaseException)]
            if failed:
                raise failed[0]
            task.verify_timeouts += sum(r.timed_out for rs in got for r in rs)
            task.pending = task.plan.send(got)
        except StopIteration as stop:
            task.out = stop.value
        except Exception as err:
            self._fail(task, err)
        task.seconds += time.perf_counter() - began

    def _fail(self, task: _Task, err: BaseException) -> None:
        if isinstance(err, RunError):  # wrong with the run, not with this row: stop before writing anything
            raise err
        if isinstance(err, ExampleError):
            reason = str(err)
        else:  # one bad row must not kill a long run
            logger.warning(
                "DART failed on a row: %s: %s", type(err).__name__, err, exc_info=logger.isEnabledFor(logging.DEBUG)
            )
            reason = f"{type(err).__name__}: {err}"
        task.out = error_row(task.example, task.row, self.config, reason)

    # ------------------------------------------------------------------ the algorithm
    def _adapt(self, example: Example) -> Generator[list[SampleJob], list[list[Rollout]], dict[str, Any]]:
        """One row's DART as a plan: yields rounds of sampling jobs, receives their rollouts, returns the row."""
        config = self.config
        n_prefixes = len(example.steps) + 1
        sim, gap = yield from search_gap(len(example.steps), config)
        _check_judged(sim, self.verifier)
        scores = success_rates(sim, n_prefixes)
        explored: list[list[Rollout]] = []  # exploration draws, in the order they were sampled

        chosen: Optional[Rollout] = None  # the continuation assembled into the solution, if any
        action, solution, student_start, selection = Action.IMITATE, example.solution, -1, ""
        if gap is not None:
            # Explore from the prefix before the gap; `backoff` then tries earlier prefixes, best f first.
            starts = [gap - 1]
            if config.fallback == "backoff":
                starts += sorted(
                    range(gap - 1), key=lambda t: (-(scores[t] if not math.isnan(scores[t]) else -1.0), -t)
                )
            for t in starts:
                drawn = len(sim[t])
                if drawn < config.n_sim:  # the gap search left it short: select among the full grid's candidates
                    (more,) = yield [SampleJob(t, config.n_sim - drawn, PHASE_SIM, drawn)]
                    sim[t] += more
                candidates = [r for r in sim[t] if r.correct]
                if not candidates and config.n_explore > 0:
                    (extra,) = yield [SampleJob(t, config.n_explore, PHASE_EXPLORE)]
                    explored.append(list(extra))
                    candidates = [r for r in extra if r.correct]
                if candidates:
                    seed = derive_seed(config.seed, example.key, "select", t)
                    index, selection = select_continuation([r.completion for r in candidates], config.selection, seed)
                    chosen = candidates[index]
                    break
            if chosen is not None:
                prefix = prefix_text(example, chosen.prefix_index)
                action, solution, student_start = Action.EXPLORE, prefix + chosen.completion.text, len(prefix)
            else:
                action = Action.FALLBACK
                if config.fallback == "drop":
                    solution = ""
        # after any top-ups: what was drawn, and what it cost
        judged = [(r, PHASE_SIM, j) for t in range(n_prefixes) for j, r in enumerate(sim[t])]
        judged += [(r, PHASE_EXPLORE, j) for extra in explored for j, r in enumerate(extra)]
        return output_row(
            example.context,
            example.steps,
            solution,
            example.gold,
            action=action,
            gap_step=-1 if gap is None else gap,
            student_start=student_start,
            selection=selection,
            step_success=success_rates(sim, n_prefixes),
            step_samples=[len(sim[t]) for t in range(n_prefixes)],
            judged=judged,
            keep_rollouts=config.keep_rollouts,
            chosen=chosen,
        )


@dataclass
class _Task:
    """One row in flight: its plan (a generator), the jobs it waits on, and its output once done."""

    row: Mapping[str, Any]
    example: Optional[Example] = None
    plan: Any = None
    pending: list = field(default_factory=list)  # the jobs of the round it waits on
    got: list = field(default_factory=list)  # their outcomes so far (None: not back yet)
    waiting: int = 0  # how many of them are not back yet
    out: Optional[dict[str, Any]] = None
    seconds: float = 0.0
    verify_timeouts: int = 0  # comparisons math-verify did not finish, the gold's own check included


def _tokens(outcome: Outcome) -> int:
    return 0 if isinstance(outcome, BaseException) else sum(c.num_tokens for c in outcome)


def _is_backend(obj: Any) -> bool:
    """Duck-typed (an isinstance check against the Protocol would touch lazy properties and load files)."""
    import os

    import torch

    if isinstance(obj, (str, os.PathLike, torch.nn.Module)):
        return False
    return (
        callable(getattr(type(obj), "generate", None)) and hasattr(type(obj), "__dict__") and "fingerprint" in dir(obj)
    )


def _check_judged(rollouts: dict[int, list[Rollout]], verifier: Verifier) -> None:
    """A row whose every comparison timed out has no measured f: an error, not f = 0 everywhere."""
    judged = [r for rs in rollouts.values() for r in rs if r.answer is not None]
    if judged and all(r.timed_out for r in judged):
        if isinstance(verifier, MathVerifier):
            what, deadline = "math-verify comparison", f", over {verifier.timeout:g} s each"
        else:
            what, deadline = f"comparison by {type(verifier).__name__}", ""
        raise ExampleError(f"every {what} timed out ({len(judged)} of {len(judged)}{deadline})")


def _save_adapter_for_hashing(pickler: Any, obj: DartAdapter) -> None:
    pickler.save_reduce(_fingerprint_token, (obj.fingerprint,), obj=obj)


def _fingerprint_token(fingerprint: str) -> str:
    return fingerprint


def _register_with_datasets_hasher() -> None:
    """Make `datasets` hash the adapter by its fingerprint instead of pickling a model's weights.

    Only the hashing pickler is affected; `num_proc` workers still receive the adapter by normal
    pickling (without lazily loaded weights, which each worker loads itself).
    """
    try:
        from datasets.utils._dill import pklregister
    except ImportError:  # pragma: no cover - datasets moved it; fall back to (slow) default hashing
        logger.warning("datasets' hashing pickler not found: DartAdapter fingerprints may be slow")
        return
    pklregister(DartAdapter)(_save_adapter_for_hashing)


_register_with_datasets_hasher()
