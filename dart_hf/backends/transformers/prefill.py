"""Running a chunk's distinct prompts through the model once, into one cache row per sample.

Each distinct prompt is prefilled once and its KV copied to its `n` sample rows. With prefix
sharing, prompts that share a long token prefix ([`share_groups`][dart_hf.backends.transformers.planner.share_groups])
run it once (batch 1), then their suffixes run with that KV broadcast as past: a row's cache is then
`[shared | pad | suffix]`, which decoding handles like left padding (explicit 2D mask, positions
from the mask). The other prompts go through in micro-batches of about `prefill_tokens` padded
tokens (longest first), which bounds the memory of prefill attention. The parts are then left-padded
to a common width and moved into [`GrowableLayer`][dart_hf.backends.transformers.cache.GrowableLayer]s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import torch

from .cache import GrowableLayer, is_plain
from .planner import micro_batches

Forward = Callable[..., tuple[torch.Tensor, Any]]
"""`forward(model, cache, last_only, **inputs) -> (last-token logits, cache)`: one model call."""

Prefilled = tuple[torch.Tensor, Any, torch.Tensor]
"""Last-token logits, cache and attention mask, one row per sample."""


@dataclass
class _Part:
    """The outcome of one prefill forward, waiting to be merged into the chunk's cache."""

    members: list[int]  # prompt indices, one per row
    logits: torch.Tensor
    kv: list[Optional[list[torch.Tensor]]]  # per layer: [keys, values]; None once merged
    mask: torch.Tensor


def padded_batch(
    prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded input ids and their attention mask."""
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for u, ids in enumerate(prompts):
        input_ids[u, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        mask[u, width - len(ids) :] = 1
    return input_ids.to(device), mask.to(device)


def prefill_plain(
    model: Any, prompts: list[list[int]], expand: list[int], device: torch.device, *, forward: Forward, pad_id: int
) -> Prefilled:
    """One forward over every prompt and transformers' own cache: for models whose cache is not plain."""
    input_ids, mask = padded_batch(prompts, pad_id, device)
    position_ids = (mask.cumsum(-1) - 1).masked_fill_(mask == 0, 1)
    logits, cache = forward(model, None, True, input_ids=input_ids, attention_mask=mask, position_ids=position_ids)
    if expand != list(range(len(prompts))):
        cache.batch_select_indices(torch.tensor(expand, device=device))
    return logits[expand], cache, mask.index_select(0, torch.tensor(expand, device=device))


def prefill_growable(
    model: Any,
    prompts: list[list[int]],
    expand: list[int],
    limit: int,
    device: torch.device,
    *,
    forward: Forward,
    pad_id: int,
    groups: list[tuple[int, list[int]]],
    rest: list[int],
    prefill_tokens: int,
    check_plain: bool,
) -> Optional[Prefilled]:
    """Prefill `groups` (shared prefix, then suffixes) and `rest` (micro-batches) into growable layers.

    `expand[r]` is the prompt of sample row `r`; `limit` bounds a row's length (prompt + budget).
    With `check_plain`, the cache of the first forward is checked to be plain `DynamicLayer`s, and
    None is returned when it is not (the caller then prefills with `prefill_plain`).
    """
    parts: list[_Part] = []
    cache = None

    def unusable(cache: Any) -> bool:
        nonlocal check_plain
        checked, check_plain = check_plain, False
        return checked and not is_plain(cache)

    for shared, members in groups:
        ids = torch.tensor([prompts[members[0]][:shared]], dtype=torch.long, device=device)
        _, cache = forward(
            model, None, True, input_ids=ids, position_ids=torch.arange(shared, device=device).unsqueeze(0)
        )
        if unusable(cache):
            return None
        past = [(layer.keys, layer.values) for layer in cache.layers]
        for batch in micro_batches(members, prompts, prefill_tokens):
            for layer, (keys, values) in zip(cache.layers, past):  # broadcast views: no copy
                layer.keys = keys.expand(len(batch), -1, -1, -1)
                layer.values = values.expand(len(batch), -1, -1, -1)
            input_ids, suffix_mask = padded_batch([prompts[u][shared:] for u in batch], pad_id, device)
            mask = torch.cat([suffix_mask.new_ones((len(batch), shared)), suffix_mask], dim=-1)
            position_ids = (mask.cumsum(-1) - 1)[:, shared:].masked_fill_(suffix_mask == 0, 1)
            logits, cache = forward(
                model, cache, True, input_ids=input_ids, attention_mask=mask, position_ids=position_ids
            )
            parts.append(_Part(batch, logits, [[layer.keys, layer.values] for layer in cache.layers], mask))
    for batch in micro_batches(rest, prompts, prefill_tokens):
        input_ids, mask = padded_batch([prompts[u] for u in batch], pad_id, device)
        position_ids = (mask.cumsum(-1) - 1).masked_fill_(mask == 0, 1)
        logits, cache = forward(model, None, True, input_ids=input_ids, attention_mask=mask, position_ids=position_ids)
        if unusable(cache):
            return None
        parts.append(_Part(batch, logits, [[layer.keys, layer.values] for layer in cache.layers], mask))
    return _merge(parts, cache, expand, limit, device)


def _merge(parts: list[_Part], cache: Any, expand: list[int], limit: int, device: torch.device) -> Prefilled:
    """Left-pad every part to the common width, then one row per sample, in `cache` (the last forward's)."""
    width = max(part.mask.shape[-1] for part in parts)
    rows_of = {u: k for k, u in enumerate(u for part in parts for u in part.members)}
    index = torch.tensor([rows_of[u] for u in expand], device=device)
    logits = torch.cat([part.logits for part in parts]).index_select(0, index)
    mask = torch.cat([torch.nn.functional.pad(p.mask, (width - p.mask.shape[-1], 0)) for p in parts]).index_select(
        0, index
    )
    for li in range(len(cache.layers)):
        keys, values = [], []
        for part in parts:
            k, v = part.kv[li]
            pad = width - k.shape[-2]
            keys.append(torch.nn.functional.pad(k, (0, 0, pad, 0)) if pad else k)
            values.append(torch.nn.functional.pad(v, (0, 0, pad, 0)) if pad else v)
            part.kv[li] = None  # free as we go
        cache.layers[li] = GrowableLayer(
            torch.cat(keys).index_select(0, index), torch.cat(values).index_select(0, index), limit
        )
    return logits, cache, mask
