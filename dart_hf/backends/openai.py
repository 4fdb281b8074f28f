"""Sample student continuations from OpenAI-compatible servers (vLLM, sglang, TGI, llama.cpp, `transformers serve`).

The backend POSTs to `{base_url}/v1/completions` using only the standard library (`urllib` and a
thread pool), so it adds no dependency. Servers differ in what they honour:

- vLLM and sglang return `n` choices per request and per-token log-probs (`logprobs: 1`);
- `transformers serve` ignores `n` and `logprobs` (one choice, no log-probs) and samples only when
  the body carries `"generation_config": "{\\"do_sample\\": true, ...}"` (a JSON *string*).

Requests are therefore robust to both: each `GenerationRequest` first asks for `n` choices with seed
`sample_seed(request.seed, 0)`; when fewer come back, every missing sample `j` is *topped up* with
its own `n=1` request seeded `sample_seed(request.seed, j)`. Once a server has been seen to ignore
`n`, later requests go straight to one `n=1` request per sample. Without log-probs,
`Completion.logprob` is None and the "logprob" selection policy falls back to "shortest"; a
completion whose log-probs hold a value that is not a finite number gets None the same way (the
other completions, and the row, are unaffected).

Failures are told apart by what they say about the run (docs/reliability.md):

- one HTTP exchange never outlasts `timeout` (a whole-request deadline, `_http.request`), however
  slowly the server answers;
- a failed request (connection error, deadline, 5xx, 429 after its `Retry-After`, malformed JSON)
  is retried up to `max_retries` times, on another URL when there is one, within a budget of
  `timeout x (max_retries + 1)` seconds from its first attempt;
- a request that still fails fails alone: `generate` keeps the completions of the others and raises
  `RequestsFailed` saying which failed (the adapter turns those rows into `error` rows);
- when a request exhausts its attempts and no server gave any complete answer meanwhile (nor to a
  short `GET /v1/models` probe), the servers are down: `ServerUnavailable`, a `RunError`, ends the
  run; so do 401/403/404, which every request would get alike.
"""

from __future__ import annotations

import http.client
import itertools
import json
import logging
import math
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Any, Optional

from ..answers import AnswerStopper
from ..errors import RunError
from . import _http
from .base import Completion, GenerationRequest, RequestsFailed, sample_seed

logger = logging.getLogger(__name__)

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


class OpenAIServerBackend:
    """Sample continuations from one or more OpenAI-compatible `/v1/completions` servers.

    Implements [`GenerationBackend`][dart_hf.backends.base.GenerationBackend].

    Args:
        base_urls: server root(s), e.g. `"http://localhost:8000"` (a trailing `/v1` is accepted).
            Several URLs serving the same model are used round-robin; a URL that fails is skipped
            for a while and its requests go to the others.
        model: the `model` field of each request (for `transformers serve` started with a pinned
            model, exactly the id or path it was started with). Also the tokenizer's default source.
        tokenizer: the student's tokenizer; by default `AutoTokenizer.from_pretrained(model)`, loaded
            lazily. Not needed when `DartConfig.prompt_template` is set.
        api_key: sent as `Authorization: Bearer ...` when given.
        max_concurrency: HTTP requests in flight at once.
        timeout: seconds for one HTTP request, whole: connecting, sending and reading the complete
            response (a server that drips bytes does not extend it).
        max_retries: retries of a request after a connection error, deadline, 5xx, 429 or malformed
            JSON (so `max_retries + 1` attempts, all within `timeout x (max_retries + 1)` seconds of
            the first); 401, 403 and 404 stop the run (`ServerUnavailable`), other 4xx answers fail
            the request at once with the server's message.
        backoff: first retry delay in seconds, doubled at each retry (with jitter) when no other
            URL is available; a longer `Retry-After` from the server is honoured.
        context_length: maximum prompt + generation tokens, if known.
        transformers_serve_compat: also send `generation_config` (a JSON string with `do_sample`,
            `temperature`, `top_p`), without which `transformers serve` decodes greedily. Servers
            that reject unknown fields (vLLM may, depending on its settings) need `False`.
        stop_at_answer: cut each text right after its first closed, non-empty `\\boxed{...}`
            (`finish_reason="answer"`), as [`TransformersBackend`][dart_hf.backends.transformers.TransformersBackend] does.

    Attributes:
        fingerprint: `"openai:{model}"` (plus the tokenizer's name when one is given). The URLs are
            not part of it: the same model on another server gives the same results.
        tokens_generated: running total of generated tokens.
        requests_sent: running total of HTTP completion requests that succeeded.
    """

    def __init__(
        self,
        base_urls: str | Sequence[str],
        model: str,
        tokenizer: Any = None,
        *,
        api_key: Optional[str] = None,
        max_concurrency: int = 16,
        timeout: float = 120.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        context_length: Optional[int] = None,
        transformers_serve_compat: bool = True,
        stop_at_answer: bool = True,
    ) -> None:
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        if not urls:
            raise ValueError("OpenAIServerBackend needs at least one base URL")
        self.base_urls = [self._normalise_url(u) for u in urls]
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.model = str(model)
        self.api_key = api_key
        self.max_concurrency = int(max_concurrency)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.context_length = context_length
        self.transformers_serve_compat = bool(transformers_serve_compat)
        self.stop_at_answer = bool(stop_at_answer)
        self.tokens_generated = 0
        self.requests_sent = 0
        self._tokenizer = tokenizer
        self._tokenizer_given = tokenizer is not None
        self._tokenizer_failed = False
        self._init_runtime()
        extras = []
        if tokenizer is not None:
            extras.append(f"tokenizer={getattr(tokenizer, 'name_or_path', type(tokenizer).__name__)}")
        if not self.stop_at_answer:
            extras.append("stop_at_answer=False")
        self.fingerprint: str = "|".join([f"openai:{self.model}", *extras])

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _normalise_url(url: str) -> str:
        url = str(url).strip().rstrip("/")
        if url.endswith("/v1"):
            url = url[: -len("/v1")]
        if "://" not in url:
            url = "http://" + url
        return url

    def _init_runtime(self) -> None:
        self._lock = threading.Lock()
        self._rr = itertools.count()
        self._down_until = [0.0] * len(self.base_urls)
        self._ignores_n = False
        self._last_answer = float("-inf")  # monotonic time of the last complete HTTP response, any status

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in ("_lock", "_rr", "_down_until", "_ignores_n", "_last_answer"):
            state.pop(key, None)
        if not self._tokenizer_given:
            state["_tokenizer"] = None  # reloaded lazily in the worker
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    def __repr__(self) -> str:
        return f"OpenAIServerBackend(base_urls={self.base_urls!r}, model={self.model!r})"

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.model)
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, value: Any) -> None:
        self._tokenizer = value

    def _count_tokens(self, text: str) -> int:
        """Tokens of `text` with the student's tokenizer when one is available, else whitespace words."""
        if self._tokenizer is None and not self._tokenizer_failed:
            try:
                _ = self.tokenizer
            except Exception as err:  # no tokenizer reachable: counts become approximate
                self._tokenizer_failed = True
                logger.warning("OpenAIServerBackend: no tokenizer for %r (%s); counting words instead", self.model, err)
        if self._tokenizer is not None:
            try:
                return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])
            except Exception:  # pragma: no cover - exotic tokenizers
                pass
        return len(text.split())

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

    # ------------------------------------------------------------------ requests and responses

    def _body(self, request: GenerationRequest, n: int, seed: int) -> dict:
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": request.prompt,
            "n": n,
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": seed,
            "logprobs": 1,
        }
        if self.transformers_serve_compat:
            sampling = {"do_sample": request.temperature > 0, "max_new_tokens": request.max_new_tokens}
            if request.temperature > 0:
                sampling.update(temperature=request.temperature, top_p=request.top_p)
            body["generation_config"] = json.dumps(sampling)
        return body

    def _completions(self, response: dict) -> list[Completion]:
        choices = sorted(response.get("choices") or [], key=lambda c: c.get("index", 0))
        usage = response.get("usage") or {}
        total = usage.get("completion_tokens")
        out = []
        for choice in choices:
            text = choice.get("text") or ""
            reason = "length" if choice.get("finish_reason") == "length" else "stop"
            cut = None
            if self.stop_at_answer:
                stopper = AnswerStopper()
                if stopper.feed(text):
                    cut = stopper._scan_from  # just past the closing brace
                    text, reason = text[:cut], "answer"
            logprob, tok_count = self._logprob(choice.get("logprobs"), cut)
            if tok_count is not None:
                num_tokens = tok_count
            elif cut is None and len(choices) == 1 and isinstance(total, int):
                num_tokens = total
            else:
                num_tokens = self._count_tokens(text)
            out.append(Completion(text=text, num_tokens=num_tokens, logprob=logprob, finish_reason=reason))
        return out

    @staticmethod
    def _logprob(logprobs: Any, cut: Optional[int]) -> tuple[Optional[float], Optional[int]]:
        """Mean token log-prob (over the kept text when cut) and the kept token count, if the server gave them."""
        if not isinstance(logprobs, dict):
            return None, None
        values = logprobs.get("token_logprobs")
        if not values or not isinstance(values, list):
            return None, None
        tokens = logprobs.get("tokens")
        if cut is not None and isinstance(tokens, list) and len(tokens) == len(values):
            kept, length = 0, 0
            for tok in tokens:
                if length >= cut:
                    break
                length += len(tok or "")
                kept += 1
            values = values[:kept]
        elif cut is not None:
            return None, None  # cannot tell which log-probs belong to the kept text
        nums = [v for v in values if v is not None]
        if not all(_is_logprob(v) for v in nums):
            # one unreadable value (a string, NaN, a list) spoils this completion's mean, not the row
            return None, len(values)
        if not nums:
            return None, None
        return sum(nums) / len(nums), len(values)

    def _fetch(
        self, request: GenerationRequest, n: int, seed: int, abort: Optional[threading.Event] = None
    ) -> list[Completion]:
        return self._completions(self._post(self._body(request, n, seed), abort))

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        """Return, for each request, exactly `request.n` completions in sample order.

        Raises `RequestsFailed` when some requests failed for good (the others' completions are in
        it), `ServerUnavailable` when no server answers (the requests still in flight are dropped).
        """
        requests = list(requests)
        results: list[list[Completion]] = [[] for _ in requests]
        errors: dict[int, BaseException] = {}
        if not requests:
            return results
        abort = threading.Event()
        pool = ThreadPoolExecutor(max_workers=self.max_concurrency)

        def settle(futures: dict[tuple[int, int], Future]) -> dict[tuple[int, int], list[Completion]]:
            """Wait for the futures; a failure fails its request, a `RunError` the whole call at once."""
            done: dict[tuple[int, int], list[Completion]] = {}
            index = {fut: key for key, fut in futures.items()}
            for fut in as_completed(index):
                key, err = index[fut], fut.exception()
                if isinstance(err, RunError):
                    abort.set()
                    raise err
                if err is not None:
                    errors.setdefault(key[0], err)
                else:
                    done[key] = fut.result()
            return done

        try:
            # round 1: n choices per request, unless the server is known to ignore `n`; a request that
            # continues a sample stream (`first_sample > 0`) is drawn sample by sample, each seeded as itself
            if not self._ignores_n:
                first = settle(
                    {
                        (r, -1): pool.submit(self._fetch, req, req.n, sample_seed(req.seed, 0), abort)
                        for r, req in enumerate(requests)
                        if req.n > 0 and req.first_sample == 0
                    }
                )
                for (r, _), got in first.items():
                    results[r] = got[: requests[r].n]
                    if len(got) < requests[r].n:
                        self._ignores_n = True
            # top up: one n=1 request per missing sample, seeded as that sample
            for _ in range(3):
                missing = [
                    (r, j) for r, req in enumerate(requests) if r not in errors for j in range(len(results[r]), req.n)
                ]
                if not missing:
                    break
                done = settle(
                    {
                        (r, j): pool.submit(
                            self._fetch,
                            requests[r],
                            1,
                            sample_seed(requests[r].seed, requests[r].first_sample + j),
                            abort,
                        )
                        for r, j in missing
                    }
                )
                for r, req in enumerate(requests):
                    j = len(results[r])
                    while j < req.n and done.get((r, j)):
                        results[r].append(done[(r, j)][0])
                        j += 1
        finally:
            pool.shutdown(
                wait=not abort.is_set(), cancel_futures=True
            )  # aborted: in-flight requests end by their deadline
        for r, req in enumerate(requests):
            if r not in errors and len(results[r]) != req.n:
                errors[r] = ServerError(
                    f"OpenAIServerBackend: got {len(results[r])} of {req.n} completions for a request "
                    "after topping up (the server returned no choices)"
                )
        self.tokens_generated += sum(c.num_tokens for r, row in enumerate(results) if r not in errors for c in row)
        if errors:
            raise RequestsFailed([None if r in errors else row for r, row in enumerate(results)], errors)
        return results


def _is_logprob(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
