"""`TransformersBackend`: the pieces of this package wired behind the `GenerationBackend` protocol.

It owns what lives as long as the backend (the lazily loaded model and tokenizer, what it learned
about them) and the seams `_prefill`, `_forward`, `_select` and `_completion`, which the decode
loop calls through it so that `benchmarks/prefill.py` and `benchmarks/gpu.py` can time them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any, Optional, Union

import torch

from ...answers import StopRule, stop_rule_label
from ..base import Completion, GenerationRequest
from .decode import Sample, call_model, completion, forward_signature, select_tokens
from .loading import (
    Source,
    context_from_config,
    default_device,
    eos_token_ids,
    model_fingerprint,
    resolve_dtype,
    token_pieces,
    tokenizer_for_loaded,
)
from .planner import share_groups
from .prefill import Prefilled, prefill_growable, prefill_plain
from .shared_prompt import supports
from .stream import DecodeStream, check_request


class TransformersBackend:
    """Sample student continuations in-process with a transformers causal LM.

    Implements [`GenerationBackend`][dart_hf.backends.base.GenerationBackend]. Decoding is our own
    loop rather than `model.generate`, so that every sample is seeded on its own
    ([`sample_seed`][dart_hf.backends.base.sample_seed]) and its tokens do not depend on the batch;
    it records each token's log-prob under the raw model distribution and stops a row at EOS,
    right after its first closed `\\boxed{...}` (`stop_at_answer`), or at its token budget.

    Args:
        model: a Hub id, a local checkpoint folder, a path to a `.gguf` file, or a loaded
            `PreTrainedModel`. Ids and paths are loaded lazily, on first use.
        tokenizer: the tokenizer; by default loaded from the same place as the model (for a loaded
            model: from `model.name_or_path`).
        revision: Hub revision of `model` (and of the tokenizer when loaded from the same id).
        device: where to run; by default the process's device (`accelerate.PartialState().device`).
            A loaded model stays where it is unless `device` is given.
        dtype: default float32 on CPU and bfloat16 on CUDA; a loaded model keeps its dtype unless given.
        batch_size: rows (prompt x sample) decoded together.
        stop_at_answer: stop a row right after its first closed `\\boxed{...}`; the returned text
            then ends with the whole token that closed it (`"}."` stays `"}."`: the text is always
            the tokens the student sampled), `finish_reason="answer"`. A `dart_hf.answers.StopRule`
            (a verifier's `stop_rule`, e.g. code's `CodeBlockStopper`) stops where it says instead.
        prefill_tokens: about how many (padded) prompt tokens one prefill forward processes; bounds
            the memory of prompt processing without changing results.
        share_prefix: prompts of a chunk that share a long token prefix (DART's nested prompts of one
            example) prefill it once, with batch 1, then their suffixes with that KV broadcast as
            past; on SmolLM2-135M / CHAMP this processes 2.7x fewer prefill tokens and prefills
            about 2x faster on CPU (`benchmarks/prefill.py`). Results are the same up to float
            rounding (as with other batch shapes), hence in the fingerprint when off. Models whose
            cache is not made of plain `DynamicLayer`s ignore it.
        shared_kv: while decoding, the samples of one prompt read its KV from one copy, and new
            samples join without copying the running cache
            (`SharedPromptBatch` in `backends/transformers/shared_prompt.py`:
            attention over the prompt once per group, then over each sample's own tokens). Results
            are the same up to float rounding, hence in the fingerprint when off. Models that do not
            qualify (half precision, sliding windows, soft-capping, attention not through
            transformers' SDPA interface) decode one KV row per sample.

    Attributes:
        fingerprint: cheap, stable identity (see `GenerationBackend`), computed without loading.
        tokens_generated: running total of generated tokens (for throughput and cost accounting).
    """

    _MIN_SHARED = 16  # tokens: shorter common prefixes are not worth a group of their own
    _FORWARD_COST = 16  # overhead of one extra prefill forward, in prompt tokens (for `share_groups`)

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        revision: Optional[str] = None,
        device: Any = None,
        dtype: Any = None,
        batch_size: int = 64,
        stop_at_answer: Union[bool, StopRule] = True,
        prefill_tokens: int = 8192,
        share_prefix: bool = True,
        shared_kv: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.revision = revision
        self.batch_size = int(batch_size)
        self.prefill_tokens = int(prefill_tokens)
        self.stop_at_answer = stop_at_answer if callable(stop_at_answer) else bool(stop_at_answer)
        self.share_prefix = bool(share_prefix)
        self.shared_kv = bool(shared_kv)
        self.tokens_generated = 0
        self._device = torch.device(device) if device is not None else None
        self._device_given = device is not None
        self._tokenizer_given = tokenizer is not None
        self._single_thread = False
        self._dtype = resolve_dtype(dtype)
        self._source: Optional[Source] = None  # None: a model given loaded
        self._model: Any = None
        self._tokenizer: Any = tokenizer
        self._config: Any = None
        # learned from the loaded model and tokenizer, on first use (forgotten when pickled)
        self._pieces: Optional[list[str]] = None
        self._eos_ids: Optional[set[int]] = None
        self._forward_args: Optional[tuple[str, bool]] = None
        self._plain_cache: Optional[bool] = None  # is the cache made of plain DynamicLayers (see `_prefill`)?
        # lazy loads happen once, whichever threads share the backend (concurrent `from_pretrained` calls
        # corrupt transformers' state); reentrant because loading the model may read the tokenizer
        self._load_lock = threading.RLock()

        if isinstance(model, torch.nn.Module):
            self._model = model
            if self._device is not None or self._dtype is not None:
                model.to(device=self._device, dtype=self._dtype)
            model.eval()
            if self._tokenizer is None:
                self._tokenizer = tokenizer_for_loaded(model, revision)
            base = model_fingerprint(model)
        else:
            self._source = Source.of(model, revision)
            base = self._source.fingerprint
        extras = []
        if tokenizer is not None:
            extras.append(f"tokenizer={getattr(tokenizer, 'name_or_path', type(tokenizer).__name__)}")
        if self._dtype is not None:
            extras.append(f"dtype={str(self._dtype).replace('torch.', '')}")
        stop_label = stop_rule_label(self.stop_at_answer)  # a rule that changes the texts changes results
        if stop_label:
            extras.append(stop_label)
        if not self.share_prefix:
            extras.append("share_prefix=False")
        if not self.shared_kv:
            extras.append("shared_kv=False")
        self.fingerprint: str = "|".join([base, *extras])

    # ------------------------------------------------------------------ loading

    def check_loadable(self) -> None:
        """Load the tokenizer and config now (not the weights), so a student that cannot load stops a run before it starts."""
        _ = self.tokenizer
        _ = self.context_length

    @property
    def model(self) -> Any:
        """The loaded model (loads it on first access, once even when threads ask together)."""
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    self._model = self._load_model()
        return self._model

    def _load_model(self) -> Any:
        from transformers import AutoModelForCausalLM

        assert self._source is not None
        if self._device is None:
            self._device = default_device()
        device = self._device
        dtype = self._dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
        where, kwargs = self._source.load_args(self.revision)
        model = self._source.load("weights", lambda: AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **kwargs))
        # a model that cannot go to its device (CUDA out of memory) fails every row alike: a RunError
        self._source.load(f"weights onto {device}", lambda: model.to(device))
        model.eval()
        return model

    @property
    def tokenizer(self) -> Any:
        """The tokenizer (loaded lazily, without the weights; once even when threads ask together)."""
        if self._tokenizer is None:
            with self._load_lock:
                if self._tokenizer is None:
                    from transformers import AutoTokenizer

                    assert self._source is not None
                    where, kwargs = self._source.load_args(self.revision)
                    self._tokenizer = self._source.load(
                        "tokenizer", lambda: AutoTokenizer.from_pretrained(where, **kwargs)
                    )
        return self._tokenizer

    @property
    def context_length(self) -> Optional[int]:
        """The model's maximum sequence length (config `max_position_embeddings`), read from the config only."""
        if self._model is not None:
            return context_from_config(self._model.config)
        if self._config is None:
            with self._load_lock:
                if self._config is None:
                    from transformers import AutoConfig

                    assert self._source is not None
                    where, kwargs = self._source.load_args(self.revision)
                    self._config = self._source.load("config", lambda: AutoConfig.from_pretrained(where, **kwargs))
        return context_from_config(self._config)

    @property
    def is_loaded(self) -> bool:
        """Whether the weights are in memory."""
        return self._model is not None

    def __repr__(self) -> str:
        return f"TransformersBackend({self.fingerprint!r}, loaded={self.is_loaded})"

    def __getstate__(self) -> dict:
        """Ship ids and paths, not lazily loaded weights: each `map` worker loads its own copy."""
        state = self.__dict__.copy()
        state.pop("_load_lock", None)
        if self._source is not None:
            state.update(_model=None, _config=None, _pieces=None, _eos_ids=None, _forward_args=None, _plain_cache=None)
            if not self._tokenizer_given:
                state["_tokenizer"] = None
            if not self._device_given:
                state["_device"] = None
        state["_pickled_in_pid"] = os.getpid()
        return state

    def __setstate__(self, state: dict) -> None:
        pickled_in = state.pop("_pickled_in_pid", None)
        self.__dict__.update(state)
        self._load_lock = threading.RLock()
        # In a worker started by the process that pickled us (datasets `num_proc`), torch's OpenMP
        # pool inherited through fork deadlocks in the first parallel region; one thread per worker
        # avoids that and is the fair share of the cores anyway.
        self._single_thread = pickled_in is not None and os.getppid() == pickled_in

    # ------------------------------------------------------------------ generation

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        """Return, for each request, exactly `request.n` completions in sample order.

        The requests run through one [`stream`][dart_hf.backends.transformers.TransformersBackend.stream]:
        a row that finishes is refilled with a waiting sample, so stragglers do not leave the batch
        half empty. A request that cannot run (a prompt longer than the context) raises.
        """
        requests = list(requests)
        for r in requests:
            check_request(r)
        results: list[Optional[list[Completion]]] = [None] * len(requests)
        stream = self.stream()
        for i, r in enumerate(requests):
            stream.submit(i, r)
        left = len(requests)
        while left:
            done = stream.collect()
            if not done:  # pragma: no cover - the stream returns every request it was given
                raise RuntimeError(f"decoding stopped with {left} requests unanswered")
            for i, outcome in done:
                if isinstance(outcome, BaseException):
                    stream.close()
                    raise outcome
                results[i] = outcome  # type: ignore[index]
                left -= 1
        return results  # type: ignore[return-value]

    def stream(self, refill: Optional[int] = None) -> DecodeStream:
        """A [`GenerationStream`][dart_hf.backends.base.GenerationStream]: requests join the decode batch as rows free up.

        `refill`: admit waiting samples once this many rows are free (default `batch_size // 8`).
        """
        return DecodeStream(self, refill)

    # ------------------------------------------------------------------ seams of the decode loop

    def _token_pieces(self, vocab_size: int) -> list[str]:
        """Decoded text of every single token, computed once."""
        if self._pieces is None or len(self._pieces) < vocab_size:
            self._pieces = token_pieces(self.tokenizer, vocab_size)
        return self._pieces

    def _eos_token_ids(self) -> set[int]:
        if self._eos_ids is None:
            self._eos_ids = eos_token_ids(self.tokenizer, self.model)
        return self._eos_ids

    def _pad_id(self) -> int:
        pad_id = self.tokenizer.pad_token_id
        return min(self._eos_token_ids(), default=0) if pad_id is None else pad_id

    def _forward(self, model: Any, cache: Any, last_only: bool, **inputs: Any) -> tuple[torch.Tensor, Any]:
        if self._forward_args is None:
            self._forward_args = forward_signature(model)
        return call_model(model, self._forward_args, cache, last_only, **inputs)

    _select = staticmethod(select_tokens)

    def _shares_kv(self) -> bool:
        """Decode with one KV copy per prompt (`SharedPromptBatch` in `backends/transformers/shared_prompt.py`)?"""
        return self.shared_kv and self._plain_cache is not False and supports(self.model)

    def _prefill(
        self, model: Any, prompts: list[list[int]], expand: list[int], limit: int, device: torch.device
    ) -> Prefilled:
        """Run the distinct prompts; return last-token logits, cache and attention mask, one row per sample.

        Into growable cache layers, sharing prefixes when `share_prefix` (see `prefill.py`); models
        whose cache is not made of plain `DynamicLayer`s (sliding windows, linear attention, ...)
        get one prefill forward and transformers' own cache, learned on the first forward.
        """
        pad_id = self._pad_id()
        if self._plain_cache is not False:
            if self.share_prefix:
                groups, rest = share_groups(prompts, self._MIN_SHARED, self._FORWARD_COST)
            else:
                groups, rest = [], list(range(len(prompts)))
            out = prefill_growable(
                model,
                prompts,
                expand,
                limit,
                device,
                forward=self._forward,
                pad_id=pad_id,
                groups=groups,
                rest=rest,
                prefill_tokens=self.prefill_tokens,
                check_plain=self._plain_cache is None,
            )
            self._plain_cache = out is not None
            if out is not None:
                return out
        return prefill_plain(model, prompts, expand, device, forward=self._forward, pad_id=pad_id)

    def _completion(self, sample: Sample, reason: str) -> Completion:
        return completion(sample, reason, self.tokenizer.decode(sample.tokens, skip_special_tokens=True))
