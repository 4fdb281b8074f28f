"""`TransformersBackend.stream()`: requests join the running decode batch as its rows free up.

A [`DecodeBatch`][dart_hf.backends.transformers.decode.DecodeBatch] (a
[`SharedPromptBatch`][dart_hf.backends.transformers.shared_prompt.SharedPromptBatch] when the model
qualifies and `shared_kv` is on) decodes up to `batch_size` samples; whenever enough of them have
finished, samples still waiting are prefilled into the free rows between two steps. So a caller that submits a row's next requests as soon as its last ones come
back (the adapter does) keeps the batch full, instead of decoding ever smaller rounds. `collect`
decodes until at least one request has all its samples and returns every request that is done.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import torch

from ...errors import RunError
from ..base import Completion, GenerationRequest, Outcome, sample_seed
from .decode import DecodeBatch, Sample
from .shared_prompt import SharedPromptBatch

if TYPE_CHECKING:
    from .backend import TransformersBackend


def check_request(r: GenerationRequest) -> None:
    """Refuse a request no backend could serve (negative counts, a temperature or top-p out of range)."""
    if r.n < 0 or r.max_new_tokens < 0 or r.first_sample < 0:
        raise ValueError(
            f"n, max_new_tokens and first_sample must be >= 0, got n={r.n}, "
            f"max_new_tokens={r.max_new_tokens}, first_sample={r.first_sample}"
        )
    if r.temperature < 0 or not 0 < r.top_p <= 1:
        raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {r.temperature}, {r.top_p}")


@dataclass
class _Pending:
    """A submitted request: its completions so far, in sample order."""

    results: list[Optional[Completion]]
    missing: int


class DecodeStream:
    """A [`GenerationStream`][dart_hf.backends.base.GenerationStream] over one `TransformersBackend`.

    New samples join when at least `refill` rows are free (default: an eighth of `batch_size`, so a
    prefill forward serves several rows) or when the batch has emptied. A forward that raises fails
    the requests of every sample it was running (each fails its own row); a `RunError` ends the run.
    """

    def __init__(self, backend: TransformersBackend, refill: Optional[int] = None) -> None:
        self.backend = backend
        self.refill = max(1, backend.batch_size // 8) if refill is None else max(1, int(refill))
        self._batch: Optional[DecodeBatch] = None
        self._waiting: deque[Sample] = deque()
        self._pending: dict[Hashable, _Pending] = {}
        self._done: list[tuple[Hashable, Outcome]] = []
        self._prompt_ids: dict[str, list[int]] = {}
        self._joining: list[Sample] = []  # samples being admitted (failed with the batch if that raises)

    # ------------------------------------------------------------------ the stream protocol

    def submit(self, key: Hashable, request: GenerationRequest) -> None:
        try:
            check_request(request)
            samples = self._samples(key, request) if request.n else []
        except (ValueError, RunError) as err:
            if isinstance(err, RunError):
                raise
            self._done.append((key, err))
            return
        if not samples:
            self._done.append((key, []))
            return
        self._pending[key] = _Pending([None] * request.n, request.n)
        self._waiting.extend(samples)

    def collect(self) -> list[tuple[Hashable, Outcome]]:
        backend = self.backend
        if backend._single_thread and torch.get_num_threads() > 1:
            torch.set_num_threads(1)
        with torch.inference_mode():
            while not self._done and (self._waiting or (self._batch is not None and self._batch.live)):
                batch = self._ensure_batch()
                try:
                    self._fill(batch)
                    finished = batch.step()
                except RunError:
                    raise
                except Exception as err:
                    self._fail_batch(batch, err)
                    continue
                self._finish(finished)
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        self._waiting.clear()
        self._pending.clear()
        self._batch = None

    # ------------------------------------------------------------------ inside

    def _samples(self, key: Hashable, r: GenerationRequest) -> list[Sample]:
        backend = self.backend
        context = backend.context_length
        ids = self._prompt_ids.get(r.prompt)
        if ids is None:
            ids = backend.tokenizer(r.prompt, add_special_tokens=False)["input_ids"]
            if context is not None and len(ids) >= context:
                raise ValueError(
                    f"prompt of {len(ids)} tokens does not fit the model's context of {context} tokens "
                    f"(it leaves no room for generation): {r.prompt[:80]!r}..."
                )
            if len(self._prompt_ids) > 4096:  # a long run: keep the memory bounded
                self._prompt_ids.clear()
            self._prompt_ids[r.prompt] = ids
        budget = r.max_new_tokens if context is None else min(r.max_new_tokens, context - len(ids))
        return [
            Sample(
                key,
                j,
                r.prompt,
                ids,
                budget,
                float(r.temperature),
                float(r.top_p),
                sample_seed(r.seed, r.first_sample + j),
            )  # type: ignore[arg-type]
            for j in range(r.n)
        ]

    def _ensure_batch(self) -> DecodeBatch:
        if self._batch is None:
            b = self.backend
            kind = SharedPromptBatch if b._shares_kv() else DecodeBatch
            self._batch = kind(
                b.model,
                stop_at_answer=b.stop_at_answer,
                eos_ids=b._eos_token_ids(),
                pieces=b._token_pieces,
                prefill=b._prefill,
                forward=b._forward,
                select=b._select,
                finish=b._completion,
            )
        return self._batch

    def _fill(self, batch: DecodeBatch) -> None:
        """Admit waiting samples into free rows, once enough rows are free (or none is live)."""
        while self._waiting and self._waiting[0].request not in self._pending:  # its request failed
            self._waiting.popleft()
        free = self.backend.batch_size - len(batch.live)
        if not self._waiting or not batch.can_admit or (batch.live and free < min(self.refill, len(self._waiting))):
            return
        joining = []
        while self._waiting and len(joining) < free:
            sample = self._waiting.popleft()
            if sample.request in self._pending:
                joining.append(sample)
        self._joining = joining
        self._finish(batch.admit(joining))
        self._joining = []

    def _finish(self, finished: list[tuple[Sample, Completion]]) -> None:
        for sample, completion in finished:
            self.backend.tokens_generated += completion.num_tokens
            pending = self._pending.get(sample.request)
            if pending is None:  # its request failed meanwhile
                continue
            pending.results[sample.index] = completion
            pending.missing -= 1
            if pending.missing == 0:
                del self._pending[sample.request]
                self._done.append((sample.request, pending.results))  # type: ignore[arg-type]

    def _fail_batch(self, batch: DecodeBatch, err: Exception) -> None:
        """A forward raised: fail the requests of the rows it ran and of the samples joining, start afresh."""
        for sample in [*batch.live, *self._joining]:
            if self._pending.pop(sample.request, None) is not None:
                self._done.append((sample.request, err))
        self._joining = []
        self._batch = None
