"""`OpenAIServerBackend.stream()`: up to `max_concurrency` HTTP requests always in flight.

Each submitted request goes out at once on a pool of `max_concurrency` threads (the pool queues
the rest), so the server keeps receiving work while the caller judges what came back and decides
what to ask next. Requests are drawn exactly as `generate` draws them: `n` choices seeded
`sample_seed(seed, 0)` and a top-up of one `n=1` request per missing sample (up to three tries
each) when the server ignores `n`; a request that continues a stream (`first_sample > 0`), or any
request once the server is known to ignore `n`, goes sample by sample.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from ...errors import RunError
from ..base import Completion, GenerationRequest, Outcome, sample_seed
from .transport import ServerError

if TYPE_CHECKING:
    from .backend import OpenAIServerBackend

_TRIES = 3  # n=1 requests per missing sample before the request fails


@dataclass
class _State:
    request: GenerationRequest
    results: list[Optional[Completion]]
    tries: dict[int, int] = field(default_factory=dict)


class ServerStream:
    """A [`GenerationStream`][dart_hf.backends.base.GenerationStream] over one `OpenAIServerBackend`."""

    def __init__(self, backend: OpenAIServerBackend) -> None:
        self.backend = backend
        self._pool = ThreadPoolExecutor(max_workers=backend.max_concurrency)
        self._abort = threading.Event()
        self._futures: dict[Future, tuple[Hashable, int]] = {}  # -> (request key, sample; -1: all n at once)
        self._states: dict[Hashable, _State] = {}
        self._done: list[tuple[Hashable, Outcome]] = []

    def submit(self, key: Hashable, request: GenerationRequest) -> None:
        if request.n <= 0:
            self._done.append((key, []))
            return
        self._states[key] = _State(request, [None] * request.n)
        if not self.backend._ignores_n and request.first_sample == 0:
            self._send(key, -1)
        else:
            for j in range(request.n):
                self._send(key, j)

    def _send(self, key: Hashable, j: int) -> None:
        r = self._states[key].request
        n, seed = (r.n, sample_seed(r.seed, 0)) if j < 0 else (1, sample_seed(r.seed, r.first_sample + j))
        future = self._pool.submit(self.backend._fetch, r, n, seed, self._abort)
        self._futures[future] = (key, j)

    def collect(self) -> list[tuple[Hashable, Outcome]]:
        while not self._done and self._futures:
            finished, _ = wait(list(self._futures), return_when=FIRST_COMPLETED)
            for future in finished:
                key, j = self._futures.pop(future)
                err = future.exception()
                if isinstance(err, RunError):
                    self._abort.set()
                    raise err
                state = self._states.get(key)
                if state is None:  # its request failed already
                    continue
                if err is not None:
                    self._fail(key, err)
                    continue
                self._receive(key, state, j, future.result())
        done, self._done = self._done, []
        return done

    def _receive(self, key: Hashable, state: _State, j: int, got: list[Completion]) -> None:
        n = state.request.n
        if j < 0:
            state.results[: len(got[:n])] = got[:n]
            if len(got) < n:
                self.backend._ignores_n = True
                for missing in range(len(got), n):
                    self._send(key, missing)
        elif got:
            state.results[j] = got[0]
        else:  # the server returned no choice: try that sample again, a few times
            state.tries[j] = state.tries.get(j, 1) + 1
            if state.tries[j] > _TRIES:
                self._fail(
                    key,
                    ServerError(
                        f"OpenAIServerBackend: got {sum(c is not None for c in state.results)} of {n} completions "
                        "for a request after topping up (the server returned no choices)"
                    ),
                )
                return
            self._send(key, j)
        if all(c is not None for c in state.results):
            del self._states[key]
            with self.backend._lock:
                self.backend.tokens_generated += sum(c.num_tokens for c in state.results)  # type: ignore[union-attr]
            self._done.append((key, state.results))  # type: ignore[arg-type]

    def _fail(self, key: Hashable, err: BaseException) -> None:
        del self._states[key]
        self._done.append((key, err))

    def close(self) -> None:
        self._abort.set()  # requests still in flight end at their deadline; queued ones never start
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._futures.clear()
        self._states.clear()
