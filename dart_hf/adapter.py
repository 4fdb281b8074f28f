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
from typing import Any, Mapping, Optional

from tqdm.auto import tqdm

from .backends.base import derive_seed
from .config import DartConfig
from .examples import Example, ExampleError, parse_example
from .exploration import select_continuation
from .gap import find_gap
from .simulation import Rollout, check_prompt_length, prefix_text, rollout, success_rates

logger = logging.getLogger(__name__)

#: Bump when a change to the algorithm changes outputs, so `datasets` caches are not reused.
ALGORITHM_VERSION = "1"

OUTPUT_COLUMNS = (
    "dart_steps",
    "dart_step_success",
    "dart_gap_step",
    "dart_action",
    "dart_solution",
    "dart_student_start",
    "dart_answer",
    "dart_tokens_generated",
    "dart_seconds",
    "dart_selection",
    "dart_error",
    "prompt",
    "completion",
)

#: Actions whose `dart_solution` is fit for training.
USABLE_ACTIONS = ("imitate", "explore", "fallback")


def is_usable(row: Mapping[str, Any]) -> bool:
    """True for rows to train on: adapted without error and not dropped by `fallback="drop"`."""
    return row["dart_action"] in USABLE_ACTIONS and bool(row["dart_solution"])


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

    The output adds the columns in `OUTPUT_COLUMNS` to every row; input columns are kept.
    """

    def __init__(
        self,
        student: Any,
        config: Optional[DartConfig] = None,
        *,
        tokenizer: Any = None,
        progress: bool = True,
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
        rows, batched = _rows(batch, self.config)
        outputs = []
        bar = tqdm(total=len(rows), desc="DART", unit="ex", disable=not self.progress or len(rows) < 2, leave=False)
        tokens, start = 0, time.perf_counter()
        for row in rows:
            out = self.adapt_row(row)
            outputs.append(out)
            tokens += out["dart_tokens_generated"]
            bar.set_postfix(tok_s=f"{tokens / max(time.perf_counter() - start, 1e-9):.0f}")
            bar.update()
        bar.close()
        if not batched:
            return outputs[0]
        return {name: [o[name] for o in outputs] for name in OUTPUT_COLUMNS}

    def adapt_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Adapt one row; any failure becomes `dart_action="error"` with the reason in `dart_error`."""
        start = time.perf_counter()
        example: Optional[Example] = None
        try:
            example = parse_example(row, self.config)
            reason = self.verifier.check_gold(example.gold)
            if reason is not None:
                raise ExampleError(reason)
            check_prompt_length(example, self.backend, self.config)
            out = self._adapt(example)
        except ExampleError as err:
            out = _error_row(example, row, self.config, str(err))
        except Exception as err:  # one bad row must not kill a long run
            logger.warning("DART failed on a row: %s: %s", type(err).__name__, err, exc_info=logger.isEnabledFor(logging.DEBUG))
            out = _error_row(example, row, self.config, f"{type(err).__name__}: {err}")
        out["dart_seconds"] = time.perf_counter() - start
        return out

    # ------------------------------------------------------------------ the algorithm
    def _adapt(self, example: Example) -> dict[str, Any]:
        config = self.config
        n_prefixes = len(example.steps) + 1
        sim = rollout(example, range(n_prefixes), config.n_sim, "sim", self.backend, self.verifier, config)
        tokens = _tokens(sim)
        scores = success_rates(sim, n_prefixes)
        gap = find_gap(scores, config.gap_rule, config.gap_margin, config.gap_threshold)

        out = {
            "dart_steps": list(example.steps),
            "dart_step_success": scores,
            "dart_gap_step": -1 if gap is None else gap,
            "dart_action": "imitate",
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
                starts += sorted(range(gap - 1), key=lambda t: (-(scores[t] if not math.isnan(scores[t]) else -1.0), -t))
            chosen: Optional[Rollout] = None
            for t in starts:
                candidates = [r for r in sim.get(t, []) if r.correct]
                if not candidates and config.n_explore > 0:
                    extra = rollout(example, [t], config.n_explore, "explore", self.backend, self.verifier, config)
                    tokens += _tokens(extra)
                    candidates = [r for r in extra[t] if r.correct]
                if candidates:
                    seed = derive_seed(config.seed, example.key, "select", t)
                    index, policy = select_continuation([r.completion for r in candidates], config.selection, seed)
                    chosen = candidates[index]
                    out["dart_selection"] = policy
                    break
            if chosen is not None:
                prefix = prefix_text(example, chosen.prefix_index)
                out.update(
                    dart_action="explore",
                    dart_solution=prefix + chosen.completion.text,
                    dart_student_start=len(prefix),
                )
            else:
                out["dart_action"] = "fallback"
                if config.fallback == "drop":
                    out["dart_solution"] = ""
        out["dart_tokens_generated"] = tokens
        out["prompt"] = example.context
        out["completion"] = [{"role": "assistant", "content": out["dart_solution"]}]
        return out


def _is_backend(obj: Any) -> bool:
    """Duck-typed (an isinstance check against the Protocol would touch lazy properties and load files)."""
    import os

    import torch

    if isinstance(obj, (str, os.PathLike, torch.nn.Module)):
        return False
    return callable(getattr(type(obj), "generate", None)) and hasattr(type(obj), "__dict__") and "fingerprint" in dir(obj)


def _tokens(rollouts: dict[int, list[Rollout]]) -> int:
    return sum(r.completion.num_tokens for rs in rollouts.values() for r in rs)


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
        "dart_gap_step": -1,
        "dart_action": "error",
        "dart_solution": solution,
        "dart_student_start": -1,
        "dart_answer": gold,
        "dart_tokens_generated": 0,
        "dart_selection": "",
        "dart_error": reason,
        "prompt": context,
        "completion": [{"role": "assistant", "content": solution}],
    }


def _rows(batch: Mapping[str, Any], config: DartConfig) -> tuple[list[dict[str, Any]], bool]:
    """Rows of a `batched=True` batch, or the single row of an unbatched call."""
    for column in (config.problem_column, config.solution_column, config.messages_column):
        if column in batch:
            value = batch[column]
            batched = isinstance(value, (list, tuple)) and not (
                column == config.messages_column and value and isinstance(value[0], Mapping)
            )
            break
    else:
        raise KeyError(
            f"batch has none of the columns '{config.problem_column}', '{config.solution_column}', "
            f"'{config.messages_column}' (got {sorted(batch)}); set them in DartConfig"
        )
    if not batched:
        return [dict(batch)], False
    keys = list(batch.keys())
    n = len(batch[keys[0]])
    return [{k: batch[k][i] for k in keys} for i in range(n)], True


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
