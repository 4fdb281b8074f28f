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
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import random
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Sequence

from ..answers import AnswerStopper
from .base import Completion, GenerationRequest, sample_seed

logger = logging.getLogger(__name__)

_RETRY_STATUS = {408, 409, 425, 429}


class ServerError(RuntimeError):
    """A completion request that failed for good (after retries, or rejected by the server)."""


class _Retryable(Exception):
    pass


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
        timeout: seconds per HTTP request.
        max_retries: retries of a request after a connection error, timeout, 5xx or 429 (so
            `max_retries + 1` attempts); other 4xx answers fail at once with the server's message.
        backoff: first retry delay in seconds, doubled at each retry (with jitter) when no other
            URL is available.
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

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in ("_lock", "_rr", "_down_until", "_ignores_n"):
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

    def _post_once(self, url: str, body: dict) -> dict:
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(f"{url}/v1/completions", data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", "replace")[:500]
            message = f"HTTP {err.code} from {url}/v1/completions: {detail}"
            if err.code >= 500 or err.code in _RETRY_STATUS:
                raise _Retryable(message) from err
            raise ServerError(f"OpenAIServerBackend: the server rejected the request: {message}") from err
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise _Retryable(f"{type(reason).__name__} for {url}: {reason}") from err
        try:
            return json.loads(payload)
        except ValueError as err:
            raise _Retryable(f"invalid JSON from {url}: {payload[:200]!r}") from err

    def _post(self, body: dict) -> dict:
        """POST with failover across URLs and exponential backoff; raises `ServerError` when out of retries."""
        tried: set[int] = set()
        errors: list[str] = []
        for attempt in range(self.max_retries + 1):
            i = self._pick_url(tried)
            try:
                out = self._post_once(self.base_urls[i], body)
            except _Retryable as err:
                errors.append(str(err))
                tried.add(i)
                delay = self.backoff * (2 ** attempt)
                with self._lock:
                    self._down_until[i] = max(self._down_until[i], time.monotonic() + delay)
                if attempt == self.max_retries:
                    break
                now = time.monotonic()
                with self._lock:
                    others = any(d <= now for j, d in enumerate(self._down_until) if j != i)
                if not others:  # nowhere else to go: wait before retrying
                    time.sleep(delay * (0.75 + 0.5 * random.random()))
                continue
            with self._lock:
                self._down_until[i] = 0.0
                self.requests_sent += 1
            if not isinstance(out, dict) or "choices" not in out:
                raise ServerError(f"OpenAIServerBackend: unexpected response from {self.base_urls[i]}: {str(out)[:300]}")
            return out
        raise ServerError(
            f"OpenAIServerBackend: POST /v1/completions failed after {self.max_retries + 1} attempts "
            f"(servers: {', '.join(self.base_urls)}); last error: {errors[-1] if errors else 'unknown'}"
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

    def _fetch(self, request: GenerationRequest, n: int, seed: int) -> list[Completion]:
        return self._completions(self._post(self._body(request, n, seed)))

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        """Return, for each request, exactly `request.n` completions in sample order."""
        requests = list(requests)
        results: list[list[Completion]] = [[] for _ in requests]
        if not requests:
            return results
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            # round 1: n choices per request, unless the server is known to ignore `n`; a request that
            # continues a sample stream (`first_sample > 0`) is drawn sample by sample, each seeded as itself
            if self._ignores_n:
                jobs = {}
            else:
                jobs = {
                    (r, None): pool.submit(self._fetch, req, req.n, sample_seed(req.seed, 0))
                    for r, req in enumerate(requests)
                    if req.n > 0 and req.first_sample == 0
                }
            for (r, _), fut in jobs.items():
                got = fut.result()
                results[r] = got[: requests[r].n]
                if len(got) < requests[r].n:
                    self._ignores_n = True
            # top up: one n=1 request per missing sample, seeded as that sample
            for round_ in range(3):
                missing = [(r, j) for r, req in enumerate(requests) for j in range(len(results[r]), req.n)]
                if not missing:
                    break
                futures = {
                    (r, j): pool.submit(
                        self._fetch, requests[r], 1, sample_seed(requests[r].seed, requests[r].first_sample + j)
                    )
                    for r, j in missing
                }
                done: dict[tuple[int, int], list[Completion]] = {k: f.result() for k, f in futures.items()}
                for r, req in enumerate(requests):
                    j = len(results[r])
                    while j < req.n and done.get((r, j)):
                        results[r].append(done[(r, j)][0])
                        j += 1
        for r, req in enumerate(requests):
            if len(results[r]) != req.n:
                raise ServerError(
                    f"OpenAIServerBackend: got {len(results[r])} of {req.n} completions for a request "
                    "after topping up (the server returned no choices)"
                )
        self.tokens_generated += sum(c.num_tokens for row in results for c in row)
        return results


def _is_logprob(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
