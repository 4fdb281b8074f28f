"""Getting one request answered by some server: deadlines, retries, backoff and failover across URLs.

Also what a failure means: a request that runs out of attempts while servers still answer fails its
row (`ServerError`); no server answering at all, or an answer every request would get (401, 403,
404), fails the run (`ServerUnavailable`).
"""

from __future__ import annotations

import http.client
import itertools
import json
import random
import threading
import time
from typing import Optional

from ...errors import RunError
from . import _http

_RETRY_STATUS = {408, 409, 425, 429}
_FATAL_STATUS = {401, 403, 404}  # wrong key, wrong URL or unknown model: every request would get the same
_PROBE_TIMEOUT_S = 5.0


class ServerError(RuntimeError):
    """A completion request that failed for good (after retries, or rejected by the server): fails its row."""


class ServerUnavailable(ServerError, RunError):
    """No server answers (or every request would be refused): fails the run, not a row."""


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Aborted(Exception):
    """Another request of the same call found the servers down: stop without another attempt."""


class ServerTransport:
    """The HTTP half of [`OpenAIServerBackend`][dart_hf.backends.openai.OpenAIServerBackend], as a base class.

    It uses the backend's settings (`base_urls`, `model`, `api_key`, `timeout`, `max_retries`,
    `backoff`), its `requests_sent` counter, and the per-process state the backend sets up in
    `_init_runtime` and leaves out of pickles (`_lock`, `_rr`, `_down_until`, `_last_answer`).
    """

    base_urls: list[str]
    model: str
    api_key: Optional[str]
    timeout: float
    max_retries: int
    backoff: float
    requests_sent: int
    _lock: threading.Lock
    _rr: itertools.count
    _down_until: list[float]
    _last_answer: float

    def _pick_url(self, tried: set[int]) -> int:
        """Next URL round-robin, preferring ones not tried by this call and not marked down."""
        now = time.monotonic()
        n = len(self.base_urls)
        start = next(self._rr) % n
        order = [(start + k) % n for k in range(n)]
        with self._lock:
            down = list(self._down_until)
        for pool in (
            [i for i in order if i not in tried and down[i] <= now],
            [i for i in order if down[i] <= now],
            [i for i in order if i not in tried],
        ):
            if pool:
                return pool[0]
        return min(order, key=lambda i: down[i])

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _post_once(self, url: str, body: dict, timeout: float) -> dict:
        """One POST under a whole-request deadline; `_Retryable` for what another attempt may fix."""
        try:
            resp = _http.request(
                "POST", f"{url}/v1/completions", json.dumps(body).encode("utf-8"), self._headers(), timeout
            )
        except _http.DeadlineExceeded as err:
            raise _Retryable(f"deadline for {url}: {err}") from None
        except (OSError, http.client.HTTPException) as err:
            raise _Retryable(f"{type(err).__name__} for {url}: {err}") from None
        self._last_answer = time.monotonic()
        if resp.status >= 400:
            detail = resp.body.decode("utf-8", "replace")[:500]
            message = f"HTTP {resp.status} from {url}/v1/completions: {detail}"
            if resp.status >= 500 or resp.status in _RETRY_STATUS:
                raise _Retryable(message, resp.retry_after)
            if resp.status in _FATAL_STATUS:
                raise ServerUnavailable(
                    f"OpenAIServerBackend: {message} (every request would get it: check the URL, the model name "
                    f"{self.model!r} and the API key)"
                )
            raise ServerError(f"OpenAIServerBackend: the server rejected the request: {message}")
        try:
            out = json.loads(resp.body)
        except ValueError:
            raise _Retryable(f"invalid JSON from {url}: {resp.body[:200]!r}") from None
        if not isinstance(out, dict) or not isinstance(out.get("choices"), list):
            raise _Retryable(f"unexpected response from {url}: {str(out)[:300]}")
        return out

    def _answers(self) -> bool:
        """Does any server give a complete HTTP response (any status) to `GET /v1/models` now?"""
        for url in self.base_urls:
            try:
                _http.request("GET", f"{url}/v1/models", None, self._headers(), min(self.timeout, _PROBE_TIMEOUT_S))
            except (OSError, http.client.HTTPException):
                continue
            self._last_answer = time.monotonic()
            return True
        return False

    def _post(self, body: dict, abort: Optional[threading.Event] = None) -> dict:
        """POST with failover across URLs and backoff, within `timeout x attempts` of the first attempt.

        Raises `ServerError` when this request is out of attempts while servers still answer, and
        `ServerUnavailable` when none does.
        """
        abort = abort or threading.Event()
        attempts = self.max_retries + 1
        started = time.monotonic()
        budget_end = started + self.timeout * attempts
        tried: set[int] = set()
        errors: list[str] = []
        made = 0
        for attempt in range(attempts):
            remaining = budget_end - time.monotonic()
            if abort.is_set():
                raise _Aborted()
            if remaining <= 0:
                break
            i = self._pick_url(tried)
            made += 1
            try:
                out = self._post_once(self.base_urls[i], body, min(self.timeout, remaining))
            except _Retryable as err:
                errors.append(str(err))
                tried.add(i)
                delay = max(self.backoff * (2**attempt) * (0.75 + 0.5 * random.random()), err.retry_after or 0.0)
                with self._lock:
                    self._down_until[i] = max(self._down_until[i], time.monotonic() + delay)
                if attempt == attempts - 1:
                    break
                now = time.monotonic()
                with self._lock:
                    others = any(d <= now for j, d in enumerate(self._down_until) if j != i)
                if not others:  # nowhere else to go: wait before retrying (no longer than the budget)
                    abort.wait(max(0.0, min(delay, budget_end - now)))
                continue
            with self._lock:
                self._down_until[i] = 0.0
                self.requests_sent += 1
            return out
        last = errors[-1] if errors else "no attempt fit in the time budget"
        elapsed = time.monotonic() - started
        if self._last_answer < started and not abort.is_set() and not self._answers():
            raise ServerUnavailable(
                f"OpenAIServerBackend: no server answered in {elapsed:.0f} s ({made} attempts; servers: "
                f"{', '.join(self.base_urls)}); last error: {last}. Start the server or fix the URL."
            )
        raise ServerError(
            f"OpenAIServerBackend: POST /v1/completions failed after {made} attempts in {elapsed:.0f} s "
            f"(servers: {', '.join(self.base_urls)}); last error: {last}"
        )
