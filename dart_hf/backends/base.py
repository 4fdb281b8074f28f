"""The generation-backend protocol: what simulation and exploration need from a student."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Protocol, Union, runtime_checkable

from ..errors import RunError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationRequest:
    """`n` sampled continuations of one prompt.

    `seed` fully determines the samples: the backend derives the seed of sample `j` with
    [`sample_seed`][dart_hf.backends.base.sample_seed], so the result never depends on which other
    requests share a batch. `first_sample` continues a sample stream: a request with
    `first_sample=2, n=2` returns samples 2 and 3 of the stream whose samples 0 and 1 an earlier
    request returned (adaptive sampling draws its rounds this way).
    """

    prompt: str
    n: int
    seed: int
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 1024
    first_sample: int = 0
    tag: str = ""  # free-form label ("sim", "explore"): for logs and test doubles, never for sampling


@dataclass
class Completion:
    """One continuation, with what selection and cost accounting need."""

    text: str
    num_tokens: int
    logprob: Optional[float] = None  # mean token log-prob under the student; None if the backend has none
    finish_reason: str = "stop"  # "answer" (stopped after the final \boxed{}), "stop" (EOS) or "length"


class RequestsFailed(Exception):
    """Some requests of a `generate` call failed for good; the others succeeded and are kept.

    A backend that can fail request by request (an HTTP server) raises this instead of losing the
    whole call: `outputs[i]` is request `i`'s completions, or None when it failed with `errors[i]`.
    A failure of the whole run (no server answers, the student cannot load) is a
    [`RunError`][dart_hf.errors.RunError] instead.
    """

    def __init__(self, outputs: list[Optional[list[Completion]]], errors: dict[int, BaseException]) -> None:
        first = errors[min(errors)] if errors else None
        super().__init__(f"{len(errors)} of {len(outputs)} requests failed; first: {type(first).__name__}: {first}")
        self.outputs = outputs
        self.errors = errors


@runtime_checkable
class GenerationBackend(Protocol):
    """Anything that samples continuations: in-process transformers, an HTTP server, a script in tests.

    Attributes:
        fingerprint: cheap, stable identity of the student (id + revision, file + size + mtime, ...);
            it goes into the `datasets` cache fingerprint of the adapter.
        tokenizer: the student's tokenizer, used for its chat template and prompt-length checks.
            May be None when `DartConfig.prompt_template` is set.
        context_length: maximum prompt + generation tokens, or None if unknown.
    """

    fingerprint: str
    tokenizer: Any
    context_length: Optional[int]

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        """Return, for each request, exactly `request.n` completions in sample order.

        May raise `RequestsFailed` (some requests failed, the rest are kept) or `RunError`.
        """
        ...


Outcome = Union[list[Completion], BaseException]
"""What a stream hands back for one request: its `n` completions, or why it failed on its own."""


@runtime_checkable
class GenerationStream(Protocol):
    """Requests in, each request's completions out as soon as it is done: how a driver keeps a backend full.

    A backend that can start new work while other work runs (continuous batching in-process, an HTTP
    server with requests in flight) offers `stream()`; [`open_stream`][dart_hf.backends.base.open_stream]
    wraps any other backend's `generate` in a [`RoundStream`][dart_hf.backends.base.RoundStream].
    Samples are seeded per request exactly as in `generate`, so what a request returns never depends
    on when it was submitted or what ran beside it.
    """

    def submit(self, key: Hashable, request: GenerationRequest) -> None:
        """Queue `request`; its outcome comes back from `collect` under `key`."""
        ...

    def collect(self) -> list[tuple[Hashable, Outcome]]:
        """Block until at least one submitted request is done; return every done one (`[]` if none is pending).

        A request that failed on its own comes back as its exception; a failure of the run (a
        [`RunError`][dart_hf.errors.RunError]) is raised.
        """
        ...

    def close(self) -> None:
        """Drop what is still queued or running."""
        ...


class RoundStream:
    """A stream over a backend that only has `generate`: each `collect` is one `generate` of everything submitted.

    This is the round-synchronous schedule (every row's next jobs wait for the slowest request of
    the round). A `generate` that raises for several requests at once is retried request by request,
    so the failure lands on the request that caused it.
    """

    def __init__(self, backend: GenerationBackend) -> None:
        self.backend = backend
        self._queued: list[tuple[Hashable, GenerationRequest]] = []

    def submit(self, key: Hashable, request: GenerationRequest) -> None:
        self._queued.append((key, request))

    def collect(self) -> list[tuple[Hashable, Outcome]]:
        queued, self._queued = self._queued, []
        return self._run(queued)

    def _run(self, queued: list[tuple[Hashable, GenerationRequest]]) -> list[tuple[Hashable, Outcome]]:
        if not queued:
            return []
        requests = [request for _, request in queued]
        errors: dict[int, BaseException] = {}
        try:
            try:
                outputs: list[Optional[list[Completion]]] = list(self.backend.generate(requests))
            except RequestsFailed as partial:
                outputs, errors = list(partial.outputs), dict(partial.errors)
            if len(outputs) != len(requests):
                raise RuntimeError(f"backend returned completions for {len(outputs)} of {len(requests)} requests")
        except RunError:
            raise
        except Exception as err:
            if len(queued) == 1:
                return [(queued[0][0], err)]
            logger.warning("a generation call failed (%s: %s); retrying request by request", type(err).__name__, err)
            return [done for one in queued for done in self._run([one])]
        return [
            (key, errors[i] if i in errors else outputs[i])  # type: ignore[misc]
            for i, (key, _) in enumerate(queued)
        ]

    def close(self) -> None:
        self._queued = []


def open_stream(backend: GenerationBackend) -> GenerationStream:
    """The backend's own stream when it has one (`backend.stream()`), else a `RoundStream` over `generate`."""
    make = getattr(backend, "stream", None)
    return make() if callable(make) else RoundStream(backend)


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from arbitrary parts, stable across processes and Python versions."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def sample_seed(request_seed: int, index: int) -> int:
    """Seed of sample `index` of a request: every backend must use this, so samples are reproducible."""
    return derive_seed(request_seed, index)
