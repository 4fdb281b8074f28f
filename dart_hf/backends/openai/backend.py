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
  run; so do 401/403/404 and redirects (not followed), which every request would get alike;
- a response body longer than `BODY_BYTES_PER_TOKEN` bytes per requested token (plus 1 MiB) fails
  its request unread;
- `http://user:password@host` sends `Authorization: Basic` and shows `http://***@host` everywhere
  (`dart_hf.redaction`).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Any, Optional, Union

from ...answers import StopRule, stop_rule_label
from ...errors import RunError
from ...redaction import Secrets, redact, split_credentials
from ..base import Completion, GenerationRequest, RequestsFailed, sample_seed
from .stream import ServerStream
from .transport import ServerError, ServerTransport
from .wire import parse_completions, request_body

logger = logging.getLogger(__name__)


class OpenAIServerBackend(ServerTransport):
    """Sample continuations from one or more OpenAI-compatible `/v1/completions` servers.

    Implements [`GenerationBackend`][dart_hf.backends.base.GenerationBackend].

    Args:
        base_urls: server root(s), e.g. `"http://localhost:8000"` (a trailing `/v1` is accepted).
            Several URLs serving the same model are used round-robin; a URL that fails is skipped
            for a while and its requests go to the others. Credentials in a URL
            (`http://user:password@host:8000`) are sent as `Authorization: Basic` and never shown:
            the `base_urls` attribute, messages and the repr read `http://***@host:8000`.
        model: the `model` field of each request (for `transformers serve` started with a pinned
            model, exactly the id or path it was started with). Also the tokenizer's default source.
        tokenizer: the student's tokenizer; by default `AutoTokenizer.from_pretrained(model)`, loaded
            lazily. Not needed when `DartConfig.prompt_template` is set.
        api_key: sent as `Authorization: Bearer ...` when given (not together with credentials in a URL).
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
        stop_at_answer: cut each text after the token that closes its first non-empty `\\boxed{...}`
            (`finish_reason="answer"`), or where a stop rule says (a `dart_hf.answers.StopRule`, e.g. a
            verifier's `stop_rule`), as [`TransformersBackend`][dart_hf.backends.transformers.TransformersBackend]
            does; token boundaries come from the server's log-probs, else from the student's (fast)
            tokenizer; with neither, the text is kept whole (never cut inside a token).

    Attributes:
        base_urls: the server roots as shown (credentials masked).
        fingerprint: `"openai:{model}"` (plus the tokenizer's name when one is given). The URLs and
            credentials are not part of it: the same model on another server gives the same results.
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
        stop_at_answer: Union[bool, StopRule] = True,
    ) -> None:
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        if not urls:
            raise ValueError("OpenAIServerBackend needs at least one base URL")
        self._endpoints = [split_credentials(self._normalise_url(u)) for u in urls]
        self._secrets = Secrets([api_key])
        for u in urls:
            self._secrets.add_url(self._normalise_url(u))
        self.base_urls = [redact(self._normalise_url(u)) for u in urls]  # as shown; requests use `_endpoints`
        if api_key and any(auth for _, auth in self._endpoints):
            raise ValueError("OpenAIServerBackend: give either api_key or credentials in the URLs, not both")
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
        self.stop_at_answer = stop_at_answer if callable(stop_at_answer) else bool(stop_at_answer)
        self.tokens_generated = 0
        self.requests_sent = 0
        self._tokenizer = tokenizer
        self._tokenizer_given = tokenizer is not None
        self._tokenizer_failed = False
        self._tokenizer_lock = threading.RLock()
        self._init_runtime()
        extras = []
        if tokenizer is not None:
            extras.append(f"tokenizer={getattr(tokenizer, 'name_or_path', type(tokenizer).__name__)}")
        stop_label = stop_rule_label(self.stop_at_answer)  # a rule that changes the texts changes results
        if stop_label:
            extras.append(stop_label)
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
        for key in ("_lock", "_rr", "_down_until", "_ignores_n", "_last_answer", "_tokenizer_lock"):
            state.pop(key, None)
        if not self._tokenizer_given:
            state["_tokenizer"] = None  # reloaded lazily in the worker
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._tokenizer_lock = threading.RLock()
        self._init_runtime()

    def __repr__(self) -> str:
        return f"OpenAIServerBackend(base_urls={self.base_urls!r}, model={self.model!r})"

    @property
    def tokenizer(self) -> Any:
        """The student's tokenizer, loaded on first use (once, whichever threads ask at the same time)."""
        if self._tokenizer is None:
            with self._tokenizer_lock:
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
            with self._tokenizer_lock:  # one attempt, whichever threads count at the same time
                if self._tokenizer is None and not self._tokenizer_failed:
                    try:
                        _ = self.tokenizer
                    except Exception as err:  # no tokenizer reachable: counts become approximate
                        self._tokenizer_failed = True
                        logger.warning(
                            "OpenAIServerBackend: no tokenizer for %r (%s); counting words instead", self.model, err
                        )
        if self._tokenizer is not None:
            try:
                return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])
            except Exception:  # pragma: no cover - exotic tokenizers
                pass
        return len(text.split())

    def _token_ends(self, text: str) -> Optional[list[int]]:
        """End offsets of the student tokenizer's tokens of `text` (where an answer cut may fall); None without a fast tokenizer."""
        if self._tokenizer is None and not self._tokenizer_failed:
            self._count_tokens("")  # loads the tokenizer, or notes that it cannot be loaded
        try:
            offsets = self._tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        except Exception:  # no tokenizer, a slow one, or a stand-in: no boundaries known
            return None
        return [end for _, end in offsets]

    # ------------------------------------------------------------------ requests and responses

    def _completions(self, response: dict, prompt: str = "") -> list[Completion]:
        return parse_completions(response, self.stop_at_answer, self._count_tokens, self._token_ends, prompt)

    def _fetch(
        self, request: GenerationRequest, n: int, seed: int, abort: Optional[threading.Event] = None
    ) -> list[Completion]:
        body = request_body(request, n, seed, self.model, self.transformers_serve_compat)
        return self._completions(self._post(body, abort), request.prompt)

    def stream(self) -> ServerStream:
        """A [`GenerationStream`][dart_hf.backends.base.GenerationStream]: up to `max_concurrency` requests in flight, whoever sent them."""
        return ServerStream(self)

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
