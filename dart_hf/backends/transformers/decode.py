"""The decode loop: seeded per-row sampling, raw log-probs, and stopping rows as they finish.

Every sample draws its random numbers from a private generator seeded by
[`sample_seed`][dart_hf.backends.base.sample_seed], so its tokens do not depend on which other
requests share the batch, on the batch size, or on the process that runs it. Each chosen token's
log-prob is taken under the *raw* model distribution (before temperature and top-p), for the
"most native continuation" selection policy. Rows that finish make room for waiting samples
(`DecodeBatch.admit`), so the batch stays full while there is work.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import torch

from ...answers import Stopper, StopRule, make_stopper
from ..base import Completion
from .cache import GrowableLayer
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
    stopper: Optional[Stopper] = field(default=None, repr=False)
    tokens: list[int] = field(default_factory=list)
    logprob_sum: float = 0.0  # of the chosen tokens, under the raw model distribution

    def begin(self, stop_at_answer: Union[bool, StopRule]) -> None:
        """Seed its generator and reset what it has drawn (generators are made per chunk: they are not small)."""
        self.generator = torch.Generator().manual_seed(self.seed)
        self.stopper = make_stopper(stop_at_answer, self.prompt)
        self.tokens = []
        self.logprob_sum = 0.0


def forward_signature(model: Any) -> tuple[str, bool]:
    """`(name of the cache argument, accepts logits_to_keep)` of `model.forward`."""
    params = inspect.signature(model.forward).parameters
    return ("cache" if "cache" in params else "past_key_values"), "logits_to_keep" in params


HEAD_BLOCK = 1024  # vocabulary entries per block of the LM head on CPU


@contextmanager
def blocked_head(model: Any) -> Iterator[None]:
    """On CPU, run a plain linear LM head in blocks of `HEAD_BLOCK` vocabulary entries.

    A decode batch's head product is short and very wide (64 x 576 against 49,152 x 576 for
    SmolLM2), a shape CPU BLAS handles poorly: in blocks it took 76 instead of 114 ms at 64 rows
    (one thread), and the head is a fifth of the model's FLOPs per token. Same products, summed in
    the same length; what the model does after its head (scaling, soft-capping) is unchanged.
    """
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    if type(head) is not torch.nn.Linear or head.weight.device.type != "cpu" or head.out_features <= 2 * HEAD_BLOCK:
        yield
        return
    weight, bias = head.weight, head.bias

    def forward(x: torch.Tensor) -> torch.Tensor:
        blocks = range(0, weight.shape[0], HEAD_BLOCK)
        return torch.cat(
            [
                torch.nn.functional.linear(
                    x, weight[b : b + HEAD_BLOCK], None if bias is None else bias[b : b + HEAD_BLOCK]
                )
                for b in blocks
            ],
            dim=-1,
        )

    head.forward = forward
    try:
        yield
    finally:
        del head.forward


def call_model(
    model: Any, signature: tuple[str, bool], cache: Any, last_only: bool, **inputs: Any
) -> tuple[torch.Tensor, Any]:
    """One forward with the cache; returns the last position's logits (float32) and the new cache."""
    cache_kw, has_keep = signature
    if cache is not None:
        inputs[cache_kw] = cache
    if last_only and has_keep:
        inputs["logits_to_keep"] = 1
    with blocked_head(model):
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


class DecodeBatch:
    """Samples decoding together, one token each per step; new samples can join between steps.

    This is continuous batching in the decode loop: `admit` prefills new samples and merges their
    cache rows into the running batch (left-padded to a common width; columns that every row pads
    are trimmed away), `step` draws one token for every live sample and returns the ones that
    finished. A finished sample's row is not copied out of the cache at once (each compaction copies
    the whole cache): it rides along, masked out of nothing and ignored, until the next admission or
    until a quarter of the rows are finished. A sample's tokens depend only on its prompt and its
    seed, never on which rows it shared the batch with (up to float rounding in batched kernels).
    Caches that are not `GrowableLayer`s (models whose cache is not plain) cannot be merged: new
    samples then wait until the batch is empty (`can_admit`).

    `pieces(vocab_size)` is each token's text (for `stop_at_answer`); `prefill`, `forward`, `select`
    and `finish` are the backend's methods, called through it so benchmarks can time them.
    """

    def __init__(
        self,
        model: Any,
        *,
        stop_at_answer: Union[bool, StopRule],
        eos_ids: set[int],
        pieces: Callable[[int], list[str]],
        prefill: Callable[[Any, list[list[int]], list[int], int, torch.device], Prefilled],
        forward: Forward,
        select: Callable[[torch.Tensor, list[Sample]], torch.Tensor],
        finish: Callable[[Sample, str], Completion],
    ) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        self.stop_at_answer, self.eos_ids, self.pieces = stop_at_answer, eos_ids, pieces
        self.prefill, self.forward, self.select, self.finish = prefill, forward, select, finish
        self.live: list[Sample] = []  # the samples still decoding
        self.generated = 0  # tokens drawn so far
        self._rows: list[Optional[Sample]] = []  # one per cache row; None: finished, not yet compacted away
        self._logits: Optional[torch.Tensor] = None  # next-token logits of every row
        self._cache: Any = None
        self._mask: Optional[torch.Tensor] = None
        self._tokens: Optional[torch.Tensor] = None  # the token each row drew last (fed at the next step)
        self._token_text: Optional[list[str]] = None

    @property
    def can_admit(self) -> bool:
        """Whether new samples can join now (always, unless the running cache cannot be merged)."""
        return not self.live or all(isinstance(layer, GrowableLayer) for layer in self._cache.layers)

    def _begin(self, samples: list[Sample]) -> tuple[list[tuple[Sample, Completion]], list[Sample]]:
        """Start `samples`: `(those with no token budget, finished at once; those that join)`."""
        finished, joining = [], []
        for sample in samples:
            sample.begin(self.stop_at_answer)
            if sample.budget <= 0:
                finished.append((sample, Completion(text="", num_tokens=0, logprob=None, finish_reason="length")))
            else:
                joining.append(sample)
        return finished, joining

    def admit(self, samples: list[Sample]) -> list[tuple[Sample, Completion]]:
        """Prefill `samples` into the batch; those with no token budget finish at once and are returned."""
        finished, joining = self._begin(samples)
        if not joining:
            return finished
        if not self.can_admit:
            raise RuntimeError("this model's cache cannot take new rows while others decode")
        if self.live:
            if self._tokens is not None:  # feed the tokens drawn last, so every row's logits are for its next token
                self._advance()
            self._compact()
        unique: dict[str, int] = {}
        for sample in joining:
            unique.setdefault(sample.prompt, len(unique))
        prompts: list[list[int]] = [[] for _ in unique]
        for sample in joining:
            prompts[unique[sample.prompt]] = sample.prompt_ids
        expand = [unique[sample.prompt] for sample in joining]
        limit = max(len(p) for p in prompts) + max(sample.budget for sample in joining)
        logits, cache, mask = self.prefill(self.model, prompts, expand, limit, self.device)
        if self._token_text is None and self.stop_at_answer:
            self._token_text = self.pieces(logits.shape[-1])
        if not self.live:
            self._logits, self._cache, self._mask = logits, cache, mask
        else:
            self._merge(logits, cache, mask, max(sample.budget for sample in joining))
        self.live += joining
        self._rows = list(self.live)
        return finished

    def _merge(self, logits: torch.Tensor, cache: Any, mask: torch.Tensor, budget: int) -> None:
        """Append new rows to the running cache: left-pad both to a common width, trim all-pad columns."""
        assert self._mask is not None and self._logits is not None
        width = max(self._mask.shape[-1], mask.shape[-1])

        def widen(t: torch.Tensor, dim_from_end: int) -> torch.Tensor:
            pad = width - t.shape[-dim_from_end]
            if not pad:
                return t
            return torch.nn.functional.pad(t, (0, 0, pad, 0) if dim_from_end == 2 else (pad, 0))

        merged_mask = torch.cat([widen(self._mask, 1), widen(mask, 1)])
        first = int((merged_mask.sum(0) > 0).nonzero()[0])  # leading columns every row pads
        merged_mask = merged_mask[:, first:]
        remaining = max(s.budget - len(s.tokens) for s in self.live)
        limit = merged_mask.shape[-1] + max(remaining, budget)
        for li, (old, new) in enumerate(zip(self._cache.layers, cache.layers)):
            keys = torch.cat([widen(old.keys, 2), widen(new.keys, 2)])[:, :, first:]
            values = torch.cat([widen(old.values, 2), widen(new.values, 2)])[:, :, first:]
            self._cache.layers[li] = GrowableLayer(keys, values, limit)
        self._mask = merged_mask
        self._logits = torch.cat([self._logits, logits])

    def _compact(self) -> None:
        """Drop the rows of finished samples from the cache, mask, logits and pending tokens."""
        if len(self._rows) == len(self.live):
            return
        keep = torch.tensor([i for i, s in enumerate(self._rows) if s is not None], device=self.device)
        self._cache.batch_select_indices(keep)
        self._mask = self._mask.index_select(0, keep)  # type: ignore[union-attr]
        if self._tokens is not None:
            self._tokens = self._tokens.index_select(0, keep)
        if self._logits is not None:
            self._logits = self._logits.index_select(0, keep)
        self._rows = list(self.live)

    def _advance(self) -> None:
        """Run the model on the tokens drawn last: the next logits of every row."""
        assert self._mask is not None and self._tokens is not None
        self._mask = torch.cat([self._mask, self._mask.new_ones((self._mask.shape[0], 1))], dim=-1)
        position_ids = self._mask.sum(-1, keepdim=True) - 1
        self._logits, self._cache = self.forward(
            self.model,
            self._cache,
            False,
            input_ids=self._tokens.unsqueeze(-1),
            attention_mask=self._mask,
            position_ids=position_ids,
        )
        self._tokens = None

    def step(self) -> list[tuple[Sample, Completion]]:
        """One token for every live sample; returns the samples that finished (they leave the batch)."""
        if not self.live:
            return []
        if self._tokens is not None:
            self._advance()
        assert self._logits is not None
        rows = [i for i, s in enumerate(self._rows) if s is not None]
        all_rows = len(rows) == len(self._rows)
        logits = self._logits if all_rows else self._logits.index_select(0, torch.tensor(rows, device=self.device))
        tokens = self.select(logits, self.live)
        token_lp = torch.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        token_list, lp_list = tokens.tolist(), token_lp.tolist()
        finished = []
        for k, (i, sample) in enumerate(zip(rows, self.live)):
            tok_id = token_list[k]
            sample.tokens.append(tok_id)
            sample.logprob_sum += lp_list[k]
            reason = None
            if tok_id in self.eos_ids:
                reason = "stop"
            elif sample.stopper is not None and sample.stopper.feed(self._token_text[tok_id]):  # type: ignore[index]
                reason = "answer"
            elif len(sample.tokens) >= sample.budget:
                reason = "length"
            if reason is not None:
                finished.append((sample, self.finish(sample, reason)))
                self._rows[i] = None
        self.generated += len(self.live)
        if all_rows:
            fed = tokens
        else:  # finished rows are fed a token too (their outputs are ignored): any will do
            fed = torch.zeros(len(self._rows), dtype=tokens.dtype, device=tokens.device)
            fed[torch.tensor(rows, device=self.device)] = tokens
        self._tokens, self._logits = fed, None
        if finished:
            self._retire()
        return finished

    def _retire(self) -> None:
        """Rows of finished samples leave: the batch empties, or is compacted once a quarter of its rows are done."""
        self.live = [s for s in self._rows if s is not None]
        if not self.live:
            self._rows, self._cache, self._mask, self._tokens = [], None, None, None
        elif 4 * (len(self._rows) - len(self.live)) >= len(self._rows):
            self._compact()
