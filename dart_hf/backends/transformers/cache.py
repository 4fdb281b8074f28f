"""A KV cache layer that grows in place, and the test for caches it can replace.

transformers' `DynamicLayer` concatenates the whole cache with each new token, i.e. copies
O(context) memory per step and layer; decoding hundreds of tokens for a batch of long DART prompts
spends much of its time there. Only plain `DynamicLayer` caches are replaced: sliding windows,
linear attention and the like keep transformers' own layers.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from transformers.cache_utils import DynamicLayer


def is_plain(cache: Any) -> bool:
    """Is every layer of `cache` a filled, plain `DynamicLayer` (so `GrowableLayer`s can stand in)?"""
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(
        type(layer) is DynamicLayer and layer.is_initialized and layer.keys.numel() > 0 for layer in layers
    )


class GrowableLayer(DynamicLayer):
    """A `DynamicLayer` that appends new tokens in place into spare capacity.

    Its buffers grow geometrically (never past `limit` tokens) and attention gets views of the
    filled part.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, limit: int) -> None:
        super().__init__()
        self.device = keys.device
        self.is_initialized = True
        self._limit = max(int(limit), keys.shape[-2])
        self._length = keys.shape[-2]
        capacity = min(self._limit, self._length + 64)
        self._k = self._alloc(keys, keys.shape[0], capacity)
        self._v = self._alloc(values, values.shape[0], capacity)
        self._k[:, :, : self._length] = keys
        self._v[:, :, : self._length] = values
        self._views()

    @staticmethod
    def _alloc(like: torch.Tensor, batch: int, capacity: int) -> torch.Tensor:
        return like.new_empty((batch, like.shape[1], capacity, like.shape[3]))

    def _views(self) -> None:
        self.keys = self._k[:, :, : self._length]
        self.values = self._v[:, :, : self._length]

    def _regrow(self, batch_index: Optional[torch.Tensor], capacity: int) -> None:
        k, v = self._k[:, :, : self._length], self._v[:, :, : self._length]
        if batch_index is not None:
            k, v = k.index_select(0, batch_index), v.index_select(0, batch_index)
        self._k = self._alloc(k, k.shape[0], capacity)
        self._v = self._alloc(v, v.shape[0], capacity)
        self._k[:, :, : self._length] = k
        self._v[:, :, : self._length] = v

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        """Write the new tokens after the filled part (regrowing when full); return keys and values so far."""
        new = key_states.shape[-2]
        end = self._length + new
        if end > self._k.shape[-2]:
            capacity = max(end, min(self._limit, self._k.shape[-2] * 3 // 2 + 64))
            self._regrow(None, capacity)
        self._k[:, :, self._length : end] = key_states
        self._v[:, :, self._length : end] = value_states
        self._length = end
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        """Tokens cached so far."""
        return self._length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only these rows (finished rows leave the batch)."""
        self._regrow(indices.to(self._k.device), self._k.shape[-2])
        self._views()

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Reorder rows, as beam search asks."""
        self.batch_select_indices(beam_idx)

    def batch_repeat_interleave(self, repeats: int) -> None:
        """Repeat every row `repeats` times in place."""
        index = torch.arange(self._k.shape[0], device=self._k.device).repeat_interleave(repeats)
        self.batch_select_indices(index)

    def crop(self, tokens_to_remove: int) -> None:
        """Drop the last `-tokens_to_remove` tokens (transformers passes a negative count)."""
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative number of tokens to remove")
        self._length = max(0, self._length + tokens_to_remove)
        self._views()

    def reset(self) -> None:
        """Empty the layer, keeping its buffers."""
        self._length = 0
        self._views()
