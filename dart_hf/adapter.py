"""`DartAdapter`: the DART transform for `datasets.Dataset.map`.

    adapted = dataset.map(DartAdapter("HuggingFaceTB/SmolLM2-135M-Instruct"), batched=True)

Each row is simulated, its imitation gap found, explored and assembled on its own (DESIGN.md §1);
seeds derive from the row's content, so the output is the same for any batch size, process count or
order, and a row that cannot be adapted gets `dart_action="error"` and a reason instead of raising.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
from tqdm.auto import tqdm

from .backends.base import derive_seed
from .config import DartConfig
from .errors import RunError
from .example import Example, ExampleError, parse_example
from .prompts import prefix_text
from .schema import (  # noqa: F401  (OUTPUT_COLUMNS, ROLLOUT_*, USABLE_ACTIONS, is_usable: re-exported from here)
    OUTPUT_COLUMNS,
    PHASE_EXPLORE,
    PHASE_SIM,
    ROLLOUT_ENDINGS,
    ROLLOUT_FIELDS,
    USABLE_ACTIONS,
    Action,
    is_usable,
)
from .selection import select_continuation
from .simulation import Rollout, SampleJob, check_prompt_length, run_jobs, simulate, success_rates

logger = logging.getLogger(__name__)

#: Bump when a change to the algorithm changes outputs, so `datasets` caches are not reused.
ALGORITHM_VERSION = "3"  # 3: dart_verify_timeouts; rows whose comparisons all time out are errors


def _config_fingerprint(config: DartConfig) -> str:
    from datasets.fingerprint import Hasher  # callables are hashed by their code, as datasets does

    fields = config.to_dict()
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
            calling with plain dicts whose every column is list-valued (see `_is_batch`).

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
    ) -> None:
        self.config = config if config is not None else DartConfig()
        if not isinstance(self.config, DartConfig):
            raise TypeError(f"config must be a DartConfig, got {type(self.config).__name__}")
        if _is_backend(student):
            if tokenizer is not None:
                raise ValueError("pass the tokenizer to the backend, not to DartAdapter")
            self.backend = student
        else:
            from .backends.transformers import TransformersBackend

            self.backend = TransformersBackend(student, tokenizer)
        from .verification import MathVerifier

        self.verifier = MathVerifier(timeout=self.config.verify_timeout)
        self.progress = progress
        if batched not in (None, True, False):
            raise TypeError(f"batched must be None, True or False, got {batched!r}")
        self.batched = batched
        cfg = self.config
        if (cfg.early_stop or cfg.adaptive_sampling) and not isinstance(cfg.gap_rule, str):
            logger.warning("early_stop/adaptive_sampling need a named gap rule; a callable rule gets the full grid")

    algorithm_version = ALGORITHM_VERSION

    @property
    def fingerprint(self) -> str:
        """Cheap, stable identity used by `datasets` caching: student + config + algorithm version."""
        payload = "\x1f".join([ALGORITHM_VERSION, self.backend.fingerprint, _config_fingerprint(self.config)])
        return hashlib.sha256(payload.encode()).hexdigest()

    def __repr__(self) -> str:
        return f"DartAdapter(student={self.backend.fingerprint!r}, config={self.config!r})"

    # ------------------------------------------------------------------ map interface
    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Adapt a batch (`batched=True`) or a single row; returns only the new columns."""
        rows, batched = _rows(batch, self.config, self.batched)
        outputs = self.adapt_rows(rows)
        if not batched:
            return outputs[0]
        return {name: [o[name] for o in outputs] for name in OUTPUT_COLUMNS}

    def adapt_rows(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Adapt rows together: each round, the pending sampling jobs of every row go to the backend in one call.

        Batching across rows keeps the backend's batches full when early stop or adaptive sampling
        leave each row only a few rollouts per round. A row's samples are seeded by its content, so
        they do not depend on its neighbours (up to float rounding in batched kernels). `dart_seconds`
        is the row's own time plus its share, by generated tokens, of each round it took part in.
        """
        tasks = [_Task(row) for row in rows]
        for task in tasks:
            self._start(task)
        bar = tqdm(total=len(tasks), desc="DART", unit="ex", disable=not self.progress or len(tasks) < 2, leave=False)
        tokens, start = 0, time.perf_counter()
        active = [task for task in tasks if task.out is None]
        bar.update(len(tasks) - len(active))
        while active:
            began = time.perf_counter()
            results = self._run_round(active)
            elapsed = time.perf_counter() - began
            round_tokens = {id(task): sum(r.completion.num_tokens for rs in got for r in rs) for task, got in results}
            total = sum(round_tokens.values())
            for task, got in results:
                share = round_tokens[id(task)] / total if total else 1 / len(results)
                task.seconds += elapsed * share
                tokens += round_tokens[id(task)]
                self._advance(task, got)
            still = [task for task in active if task.out is None]
            bar.update(len(active) - len(still))
            bar.set_postfix(tok_s=f"{tokens / max(time.perf_counter() - start, 1e-9):.0f}")
            active = still
        bar.close()
        for task in tasks:
            task.out["dart_seconds"] = task.seconds
            task.out["dart_verify_timeouts"] = task.verify_timeouts
        # every row, good or error, batched or not: exactly these columns, in this order
        return [{name: task.out[name] for name in OUTPUT_COLUMNS} for task in tasks]

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

    def _advance(self, task: _Task, got: list[list[Rollout]]) -> None:
        began = time.perf_counter()
        task.verify_timeouts += sum(r.timed_out for rs in got for r in rs)
        try:
            task.pending = task.plan.send(got)
        except StopIteration as stop:
            task.out = stop.value
        except Exception as err:
            self._fail(task, err)
        task.seconds += time.perf_counter() - began

    def _run_round(self, active: list[_Task]) -> list[tuple[_Task, list[list[Rollout]]]]:
        """Sample the pending jobs of all active rows at once; returns the rows that got all their rollouts.

        A job that failed on its own (the backend raised `RequestsFailed`) fails its row; the other
        rows keep what they received, nothing is asked again. A `RunError` (no server answers, the
        student cannot load) ends the run. Any other exception from a call of several rows is not
        attributable to one row, so the rows are retried one by one to isolate the culprit.
        """
        work = [(task.example, job) for task in active for job in task.pending]
        try:
            rollouts = run_jobs(work, self.backend, self.verifier, self.config)
        except RunError:
            raise
        except Exception as err:
            if len(active) == 1:
                self._fail(active[0], err)
                return []
            logger.warning("a DART round failed (%s: %s); retrying row by row", type(err).__name__, err)
            results = []
            for task in active:
                results += self._run_round([task])
            return results
        results, it = [], iter(rollouts)
        for task in active:
            got = [next(it) for _ in task.pending]
            failed = [g for g in got if isinstance(g, BaseException)]
            if failed:
                self._fail(task, failed[0])
            else:
                results.append((task, got))
        return results

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
        task.out = _error_row(task.example, task.row, self.config, reason)

    # ------------------------------------------------------------------ the algorithm
    def _adapt(self, example: Example) -> Generator[list[SampleJob], list[list[Rollout]], dict[str, Any]]:
        """One row's DART as a plan: yields rounds of sampling jobs, receives their rollouts, returns the row."""
        config = self.config
        n_prefixes = len(example.steps) + 1
        sim, gap = yield from simulate(len(example.steps), config)
        _check_judged(sim, config)
        scores = success_rates(sim, n_prefixes)
        explored: list[list[Rollout]] = []  # exploration draws, in the order they were sampled

        chosen: Optional[Rollout] = None  # the continuation assembled into the solution, if any
        out = {
            "dart_steps": list(example.steps),
            "dart_gap_step": -1 if gap is None else gap,
            "dart_action": Action.IMITATE.value,
            "dart_solution": example.solution,
            "dart_student_start": -1,
            "dart_answer": example.gold,
            "dart_selection": "",
            "dart_error": "",
        }
        if gap is not None:
            # Explore from the prefix before the gap; `backoff` then tries earlier prefixes, best f first.
            starts = [gap - 1]
            if config.fallback == "backoff":
                starts += sorted(
                    range(gap - 1), key=lambda t: (-(scores[t] if not math.isnan(scores[t]) else -1.0), -t)
                )
            for t in starts:
                drawn = len(sim[t])
                if drawn < config.n_sim:  # early stop / adaptive left it short: select among the full grid's candidates
                    (more,) = yield [SampleJob(t, config.n_sim - drawn, PHASE_SIM, drawn)]
                    sim[t] += more
                candidates = [r for r in sim[t] if r.correct]
                if not candidates and config.n_explore > 0:
                    (extra,) = yield [SampleJob(t, config.n_explore, PHASE_EXPLORE)]
                    explored.append(list(extra))
                    candidates = [r for r in extra if r.correct]
                if candidates:
                    seed = derive_seed(config.seed, example.key, "select", t)
                    index, policy = select_continuation([r.completion for r in candidates], config.selection, seed)
                    chosen = candidates[index]
                    out["dart_selection"] = policy
                    break
            if chosen is not None:
                prefix = prefix_text(example, chosen.prefix_index)
                out.update(
                    dart_action=Action.EXPLORE.value,
                    dart_solution=prefix + chosen.completion.text,
                    dart_student_start=len(prefix),
                )
            else:
                out["dart_action"] = Action.FALLBACK.value
                if config.fallback == "drop":
                    out["dart_solution"] = ""
        # after any top-ups: what was drawn, and what it cost
        out["dart_step_success"] = success_rates(sim, n_prefixes)
        out["dart_step_samples"] = [len(sim[t]) for t in range(n_prefixes)]
        judged = [(r, PHASE_SIM, j) for t in range(n_prefixes) for j, r in enumerate(sim[t])]
        judged += [(r, PHASE_EXPLORE, j) for extra in explored for j, r in enumerate(extra)]
        out["dart_tokens_generated"] = sum(r.completion.num_tokens for r, _, _ in judged)
        out["dart_rollout_endings"] = _endings(r for r, _, _ in judged)
        out["dart_rollouts"] = _rollout_column(judged if config.keep_rollouts else [], chosen)
        out["prompt"] = example.context
        out["completion"] = [{"role": "assistant", "content": out["dart_solution"]}]
        return out


@dataclass
class _Task:
    """One row in flight: its plan (a generator), the jobs it waits on, and its output once done."""

    row: Mapping[str, Any]
    example: Optional[Example] = None
    plan: Any = None
    pending: list = field(default_factory=list)
    out: Optional[dict[str, Any]] = None
    seconds: float = 0.0
    verify_timeouts: int = 0  # comparisons math-verify did not finish, the gold's own check included


def _is_backend(obj: Any) -> bool:
    """Duck-typed (an isinstance check against the Protocol would touch lazy properties and load files)."""
    import os

    import torch

    if isinstance(obj, (str, os.PathLike, torch.nn.Module)):
        return False
    return (
        callable(getattr(type(obj), "generate", None)) and hasattr(type(obj), "__dict__") and "fingerprint" in dir(obj)
    )


def _endings(rollouts: Any) -> dict[str, int]:
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


def _rollout_column(drawn: Sequence[tuple[Rollout, str, int]], chosen: Optional[Rollout]) -> dict[str, Any]:
    """The `dart_rollouts` value: one typed numpy array per field in `ROLLOUT_FIELDS`, equal lengths.

    Column-wise on purpose: `datasets` infers a column's Arrow type from the first batch it writes,
    and an empty Python list has no element type (it becomes `list<null>`, which no later batch can
    widen). A typed numpy array keeps its type even when empty, so the column gets the same type
    with `keep_rollouts` off, on error rows, and in any batch order.
    """
    values: dict[str, list] = {
        "prefix_index": [r.prefix_index for r, _, _ in drawn],
        "phase": [phase for _, phase, _ in drawn],
        "sample": [j for _, _, j in drawn],
        "text": [r.completion.text for r, _, _ in drawn],
        "answer": [r.answer or "" for r, _, _ in drawn],
        "correct": [bool(r.correct) for r, _, _ in drawn],
        "tokens": [r.completion.num_tokens for r, _, _ in drawn],
        "finish_reason": [r.completion.finish_reason for r, _, _ in drawn],
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


def _check_judged(rollouts: dict[int, list[Rollout]], config: DartConfig) -> None:
    """A row whose every comparison timed out has no measured f: an error, not f = 0 everywhere."""
    judged = [r for rs in rollouts.values() for r in rs if r.answer is not None]
    if judged and all(r.timed_out for r in judged):
        raise ExampleError(
            f"every math-verify comparison timed out ({len(judged)} of {len(judged)}, "
            f"over {config.verify_timeout:g} s each)"
        )


def _error_row(example: Optional[Example], row: Mapping[str, Any], config: DartConfig, reason: str) -> dict[str, Any]:
    """Same columns and types as a good row (datasets fixes column types from the first batch)."""
    if example is not None:
        steps, context, solution, gold = list(example.steps), example.context, example.solution, example.gold
    else:
        problem = row.get(config.problem_column)
        solution = row.get(config.solution_column)
        context = [{"role": "user", "content": problem if isinstance(problem, str) else ""}]
        solution = solution if isinstance(solution, str) else ""
        steps, gold = [solution], ""
    return {
        "dart_steps": steps,
        "dart_step_success": [float("nan")] * (len(steps) + 1),
        "dart_step_samples": [0] * (len(steps) + 1),
        "dart_gap_step": -1,
        "dart_action": Action.ERROR.value,
        "dart_solution": solution,
        "dart_student_start": -1,
        "dart_answer": gold,
        "dart_tokens_generated": 0,
        "dart_selection": "",
        "dart_error": reason,
        "dart_rollout_endings": dict.fromkeys(ROLLOUT_ENDINGS, 0),
        "dart_rollouts": _rollout_column([], None),
        "prompt": context,
        "completion": [{"role": "assistant", "content": solution}],
    }


def _rows(batch: Mapping[str, Any], config: DartConfig, declared: Optional[bool]) -> tuple[list[dict[str, Any]], bool]:
    """Rows of a batch, or the single row of an unbatched call, and which of the two it was."""
    known = (config.problem_column, config.solution_column, config.messages_column)
    if not any(column in batch for column in known):
        raise KeyError(
            f"batch has none of the columns '{config.problem_column}', '{config.solution_column}', "
            f"'{config.messages_column}' (got {sorted(batch)}); set them in DartConfig"
        )
    if not _is_batch(batch, config, declared):
        return [dict(batch)], False
    keys = list(batch.keys())
    n = len(batch[keys[0]])
    return [{k: batch[k][i] for k in keys} for i in range(n)], True


def _is_batch(batch: Mapping[str, Any], config: DartConfig, declared: Optional[bool]) -> bool:
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
        is_batch = isinstance(batch, LazyBatch)
        if declared is not None and declared != is_batch:
            given = "a batch (map(..., batched=True))" if is_batch else "a single row (map without batched=True)"
            raise ValueError(
                f"DartAdapter(batched={declared}) was given {given}: call dataset.map(adapter, batched={declared}) "
                "or leave DartAdapter's batched=None"
            )
        return is_batch
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
