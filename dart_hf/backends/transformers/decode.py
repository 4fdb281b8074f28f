"""The decode loop: seeded per-row sampling, raw log-probs, and stopping rows as they finish.

Every sample draws its random numbers from a private generator seeded by
[`sample_seed`][dart_hf.backends.base.sample_seed], so its tokens do not depend on which other
requests share the batch, on the batch size, or on the process that runs it. Each chosen token's
log-prob is taken under the *raw* model distribution (before temperature and top-p), for the
"most native continuation" selection policy. Rows that finish leave the batch at once, so
stragglers do not pay for them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from ...answers import AnswerStopper
from ..base import Completion
from .prefill import Forward, Prefilled


@dataclass(eq=False)
class Sample:
    """One sample row of a `generate` call, in flight: what to draw, and what it has drawn so far."""

    request: int  # index of its request in the `generate` call
    index: int  # its sample number within that request (0-based, before `first_sample`)
    prompt: str
    prompt_ids: list[int]
    budget: int  # tokens it may generate: `max_new_tokens`, capped by the context left after the prompt
    temperature: float
    top_p: float
    seed: int  # `sample_seed(request.seed, first_sample + index)`
    # set when its chunk starts (`begin`), filled while decoding
    generator: Optional[torch.Generator] = field(default=None, repr=False)
    stopper: Optional[AnswerStopper] = field(default=None, repr=False)
    tokens: list[int] = field(default_factory=list)
    logprob_sum: float = 0.0  # of the chosen tokens, under the raw model distribution

    def begin(self, stop_at_answer: bool) -> None:
        """Seed its generator and reset what it has drawn (generators are made per chunk: they are not small)."""
        self.generator = torch.Generator().manual_seed(self.seed)
        self.stopper = AnswerStopper() if stop_at_answer else None
        self.tokens = []
        self.logprob_sum = 0.0


def forward_signature(model: Any) -> tuple[str, bool]:
    """`(name of the cache argument, accepts logits_to_keep)` of `model.forward`."""
    params = inspect.signature(model.forward).parameters
    return ("cache" if "cache" in params else "past_key_values"), "logits_to_keep" in params


def call_model(
    model: Any, signature: tuple[str, bool], cache: Any, last_only: bool, **inputs: Any
) -> tuple[torch.Tensor, Any]:
    """One forward with the cache; returns the last position's logits (float32) and the new cache."""
    cache_kw, has_keep = signature
    if cache is not None:
        inputs[cache_kw] = cache
    if last_only and has_keep:
        inputs["logits_to_keep"] = 1
    out = model(**inputs, use_cache=True)
    new_cache = getattr(out, "cache", None)
    if new_cache is None:
        new_cache = out.past_key_values
    return out.logits[:, -1, :].float(), new_cache


def select_tokens(logits: torch.Tensor, samples: list[Sample]) -> torch.Tensor:
    """Next token of every row: greedy (temperature 0) or seeded inverse-CDF sampling per row."""
    from transformers import TemperatureLogitsWarper, TopPLogitsWarper

    chosen = torch.empty(len(samples), dtype=torch.long, device=logits.device)
    groups: dict[tuple[float, float], list[int]] = {}
    for i, sample in enumerate(samples):
        groups.setdefault((sample.temperature, sample.top_p), []).append(i)
    for (temperature, top_p), members in groups.items():
        idx = torch.tensor(members, device=logits.device)
        scores = logits.index_select(0, idx)
        if temperature == 0:
            chosen[idx] = scores.argmax(dim=-1)
            continue
        scores = TemperatureLogitsWarper(temperature)(None, scores)
        if top_p < 1.0:
            scores = TopPLogitsWarper(top_p)(None, scores)
        cdf = torch.softmax(scores, dim=-1).to(torch.float64).cumsum(dim=-1)
        # one uniform per row from that row's own generator: independent of the batch
        u = torch.cat([torch.rand(1, generator=samples[i].generator, dtype=torch.float64) for i in members])
        target = (u.to(cdf.device) * cdf[:, -1]).unsqueeze(-1)
        token = torch.searchsorted(cdf, target, right=True).squeeze(-1)
        chosen[idx] = token.clamp_(max=cdf.shape[-1] - 1)
    return chosen


def completion(sample: Sample, reason: str, text: str) -> Completion:
    """The finished sample's `Completion`, from the decoded text of all its tokens.

    A row stopped at its answer keeps the whole token that closed the box, even when that token
    carries more ("}." / "}$"): cutting inside it would train the student on a token sequence it
    never sampled (`}` alone, then end-of-turn), which costs it ~15 nats at that token.
    """
    n = len(sample.tokens)
    return Completion(text=text, num_tokens=n, logprob=sample.logprob_sum / n, finish_reason=reason)


def decode_chunk(
    model: Any,
    samples: list[Sample],
    *,
    stop_at_answer: bool,
    eos_ids: set[int],
    pieces: Callable[[int], list[str]],
    prefill: Callable[[Any, list[list[int]], list[int], int, torch.device], Prefilled],
    forward: Forward,
    select: Callable[[torch.Tensor, list[Sample]], torch.Tensor],
    finish: Callable[[Sample, str], Completion],
) -> tuple[list[Completion], int]:
    """Decode one chunk of samples to completions (in their order); also return the tokens generated.

    `pieces(vocab_size)` is each token's text (for `stop_at_answer`); `prefill`, `forward`, `select`
    and `finish` are the backend's methods, called through it so benchmarks can time them.
    """
    device = next(model.parameters()).device
    done: list[Optional[Completion]] = [None] * len(samples)
    for i, sample in enumerate(samples):
        if sample.budget <= 0:
            done[i] = Completion(text="", num_tokens=0, logprob=None, finish_reason="length")
        sample.begin(stop_at_answer)
    live = [i for i in range(len(samples)) if done[i] is None]
    if not live:
        return done, 0  # type: ignore[return-value]

    # Prefill every distinct prompt once (left padding), then copy its cache to its sample rows.
    unique: dict[str, int] = {}
    for i in live:
        unique.setdefault(samples[i].prompt, len(unique))
    prompts: list[list[int]] = [[] for _ in unique]
    for i in live:
        prompts[unique[samples[i].prompt]] = samples[i].prompt_ids
    expand = [unique[samples[i].prompt] for i in live]
    limit = max(len(p) for p in prompts) + max(samples[i].budget for i in live)
    logits, cache, mask = prefill(model, prompts, expand, limit, device)
    token_text = pieces(logits.shape[-1]) if stop_at_answer else None
    generated = 0
    while True:
        tokens = select(logits, [samples[i] for i in live])
        token_lp = torch.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        token_list, lp_list = tokens.tolist(), token_lp.tolist()
        keep = []
        for k, i in enumerate(live):
            sample, tok_id = samples[i], token_list[k]
            sample.tokens.append(tok_id)
            sample.logprob_sum += lp_list[k]
            generated += 1
            reason = None
            if tok_id in eos_ids:
                reason = "stop"
            elif sample.stopper is not None and sample.stopper.feed(token_text[tok_id]):
                reason = "answer"
            elif len(sample.tokens) >= sample.budget:
                reason = "length"
            if reason is None:
                keep.append(k)
            else:
                done[i] = finish(sample, reason)
        if not keep:
            break
        if len(keep) < len(live):
            keep_idx = torch.tensor(keep, device=device)
            cache.batch_select_indices(keep_idx)
            mask, tokens = mask.index_select(0, keep_idx), tokens.index_select(0, keep_idx)
            live = [live[k] for k in keep]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
        position_ids = mask.sum(-1, keepdim=True) - 1
        logits, cache = forward(
            model, cache, False, input_ids=tokens.unsqueeze(-1), attention_mask=mask, position_ids=position_ids
        )
    return done, generated  # type: ignore[return-value]
