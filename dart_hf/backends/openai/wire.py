"""What goes over the wire to a `/v1/completions` server and what comes back, as pure functions.

Kept apart from the client (retries, failover, top-ups) because servers differ here and only here:
`transformers serve` needs its sampling settings as a JSON *string* in `generation_config`, and
log-probs may be missing, partial or not numbers at all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, Optional, Union

from ...answers import StopRule, make_stopper
from ..base import Completion, GenerationRequest


def request_body(
    request: GenerationRequest, n: int, seed: int, model: str, transformers_serve_compat: bool
) -> dict[str, Any]:
    """The JSON body asking for `n` choices of `request` with `seed` (and `generation_config` for `transformers serve`)."""
    body: dict[str, Any] = {
        "model": model,
        "prompt": request.prompt,
        "n": n,
        "max_tokens": request.max_new_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "seed": seed,
        "logprobs": 1,
    }
    if transformers_serve_compat:
        sampling = {"do_sample": request.temperature > 0, "max_new_tokens": request.max_new_tokens}
        if request.temperature > 0:
            sampling.update(temperature=request.temperature, top_p=request.top_p)
        body["generation_config"] = json.dumps(sampling)
    return body


def parse_completions(
    response: dict,
    stop_at_answer: Union[bool, StopRule],
    count_tokens: Callable[[str], int],
    token_ends: Optional[Callable[[str], Optional[list[int]]]] = None,
    prompt: str = "",
) -> list[Completion]:
    """The response's choices as `Completion`s, in choice order, cut after the first answer when `stop_at_answer`.

    `stop_at_answer` is True (the first non-empty `\\boxed{}`), False, or a stop rule made fresh for each
    choice from the request's `prompt` (`dart_hf.answers.make_stopper`).

    The cut falls on a token boundary, after the whole token that closed the answer (`"}."` stays
    `"}."`), so the text is made of tokens the student sampled: the server's own tokens when its
    log-probs list them, else `token_ends(text)` (the end offsets of the student tokenizer's tokens
    of the text: the same tokens unless the server sampled a non-canonical split), else no cut.
    Token counts come from the log-probs when the server sent them, else from `usage` (one uncut
    choice), else from `count_tokens(text)`.
    """
    choices = unique_choices(response.get("choices") or [])
    usage = response.get("usage") or {}
    total = usage.get("completion_tokens")
    out = []
    for choice in choices:
        text = choice.get("text") or ""
        reason = "length" if choice.get("finish_reason") == "length" else "stop"
        cut = None
        stopper = make_stopper(stop_at_answer, prompt)
        if stopper is not None:
            if stopper.feed(text):
                ends = _server_token_ends(choice.get("logprobs"), text)
                if ends is None and token_ends is not None:
                    ends = token_ends(text)
                # just past the closing brace, then on to the end of the token that holds it
                cut = next((end for end in ends or () if end >= stopper.end), None)
                if cut is not None:
                    text, reason = text[:cut], "answer"
        logprob, tok_count = mean_logprob(choice.get("logprobs"), cut)
        if tok_count is not None:
            num_tokens = tok_count
        elif cut is None and len(choices) == 1 and isinstance(total, int):
            num_tokens = total
        else:
            num_tokens = count_tokens(text)
        out.append(Completion(text=text, num_tokens=num_tokens, logprob=logprob, finish_reason=reason))
    return out


def unique_choices(choices: list) -> list:
    """The choices in `index` order, each index once (the first seen): a repeated index is one sample, not two.

    Choices without an index keep their order after the indexed ones; a choice that is not a JSON object, or
    whose index is not an integer, is dropped (missing samples are topped up).
    """
    seen: set = set()
    indexed, loose = [], []
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        index = choice.get("index")
        if index is None:
            loose.append(choice)
        elif isinstance(index, int) and not isinstance(index, bool) and index not in seen:
            seen.add(index)
            indexed.append(choice)
    return sorted(indexed, key=lambda c: c["index"]) + loose


def _server_token_ends(logprobs: Any, text: str) -> Optional[list[int]]:
    """End offsets of the server's tokens in `text`, when its log-probs list tokens that spell the text exactly."""
    tokens = logprobs.get("tokens") if isinstance(logprobs, dict) else None
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens) or "".join(tokens) != text:
        return None  # absent, or pieces that do not spell the text (e.g. "bytes:\\xe2" for split characters)
    ends, length = [], 0
    for tok in tokens:
        length += len(tok)
        ends.append(length)
    return ends


def mean_logprob(logprobs: Any, cut: Optional[int]) -> tuple[Optional[float], Optional[int]]:
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


def _is_logprob(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
