"""Getting one request answered by some server: deadlines, retries, backoff and failover across URLs.

Also what a failure means: a request that runs out of attempts while servers still answer fails its
row (`ServerError`); no server answering at all, or an answer every request would get (401, 403,
404, a redirect), fails the run (`ServerUnavailable`). Credentials in a URL go out as
`Authorization: Basic` and are masked (`http://***@host`) in every message.
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
from ...redaction import Secrets
from . import _http

_RETRY_STATUS = {408, 409, 425, 429}
_FATAL_STATUS = {401, 403, 404}  # wrong key, wrong URL or unknown model: every request would get the same
_PROBE_TIMEOUT_S = 5.0
_PROBE_MAX_BYTES = 1 << 20
# A completion body's cap: this many bytes per requested token (text, a token string, its log-prob
# and offset, the top log-probs, JSON punctuation: vLLM sends under 200 with `logprobs: 1`), plus a floor.
BODY_BYTES_PER_TOKEN = 1024
BODY_BYTES_FLOOR = 1 << 20


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

    It uses the backend's settings (`base_urls` as shown, `_endpoints` as used: each URL without
    its credentials and its `Authorization` value; `_secrets`; `model`, `api_key`, `timeout`,
    `max_retries`, `backoff`), its `requests_sent` counter, and the per-process state the backend
    sets up in `_init_runtime` and leaves out of pickles (`_lock`, `_rr`, `_down_until`, `_last_answer`).
    """

    base_urls: list[str]
    _endpoints: list[tuple[str, Optional[str]]]
    _secrets: Secrets
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

    def _headers(self, i: int) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        auth = self._endpoints[i][1]
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        elif auth:
            headers["Authorization"] = auth
        return headers

    @staticmethod
    def max_body_bytes(body: dict) -> int:
        """The largest completion response accepted for `body`: `BODY_BYTES_PER_TOKEN` per requested token, plus a floor."""
        tokens = max(0, int(body.get("n") or 1)) * max(0, int(body.get("max_tokens") or 0))
        return BODY_BYTES_FLOOR + BODY_BYTES_PER_TOKEN * tokens

    def _post_once(self, i: int, body: dict, timeout: float) -> dict:
        """One POST to URL `i` under a whole-request deadline; `_Retryable` for what another attempt may fix."""
        url, shown = self._endpoints[i][0], self.base_urls[i]
        cap = self.max_body_bytes(body)
        try:
            resp = _http.request(
                "POST", f"{url}/v1/completions", json.dumps(body).encode("utf-8"), self._headers(i), timeout, cap
            )
        except _http.DeadlineExceeded as err:
            raise _Retryable(f"deadline for {shown}: {err}") from None
        except _http.ResponseTooLarge as err:
            self._last_answer = time.monotonic()
            raise ServerError(
                f"OpenAIServerBackend: {shown}/v1/completions sent a {err} (that is {BODY_BYTES_PER_TOKEN} bytes "
                f"per requested token: n={body.get('n')}, max_tokens={body.get('max_tokens')})"
            ) from None
        except (OSError, http.client.HTTPException) as err:
            raise _Retryable(self._secrets.scrub(f"{type(err).__name__} for {shown}: {err}")) from None
        self._last_answer = time.monotonic()
        if 300 <= resp.status < 400:
            target = self._secrets.scrub(resp.location) if resp.location else "no Location header"
            raise ServerUnavailable(
                f"OpenAIServerBackend: redirect not followed: HTTP {resp.status} from {shown}/v1/completions to "
                f"{target} (every request would get it: use the URL it points to)"
            )
        if resp.status >= 400:
            detail = self._secrets.scrub(resp.body.decode("utf-8", "replace")[:500])
            message = f"HTTP {resp.status} from {shown}/v1/completions: {detail}"
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
            raise _Retryable(self._secrets.scrub(f"invalid JSON from {shown}: {resp.body[:200]!r}")) from None
        if not isinstance(out, dict) or not isinstance(out.get("choices"), list):
            raise _Retryable(self._secrets.scrub(f"unexpected response from {shown}: {str(out)[:300]}"))
        return out

    def _answers(self) -> bool:
        """Does any server give a complete HTTP response (any status) to `GET /v1/models` now?"""
        for i, (url, _) in enumerate(self._endpoints):
            try:
                _http.request(
                    "GET",
                    f"{url}/v1/models",
                    None,
                    self._headers(i),
                    min(self.timeout, _PROBE_TIMEOUT_S),
                    _PROBE_MAX_BYTES,
                )
            except _http.ResponseTooLarge:
                pass  # an answer all the same
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
                out = self._post_once(i, body, min(self.timeout, remaining))
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
