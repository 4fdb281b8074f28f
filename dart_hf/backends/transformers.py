"""In-process generation with 🤗 transformers: the default student backend.

The decoding loop is our own rather than `model.generate`, because every sample is seeded on its
own ([`sample_seed`][dart_hf.backends.base.sample_seed]): a row draws its random numbers from a
private generator, so its tokens do not depend on which other requests share the batch, on the
batch size, or on the process that runs it. The loop also

- prefills each distinct prompt of a chunk once and copies its KV cache to the `n` sample rows;
  prompts that share a long token prefix (the prefixes of one DART example: chat template,
  problem, expert steps 1..t) run it once and only their own suffixes on top (`share_prefix`),
- records each chosen token's log-prob under the *raw* model distribution (before temperature and
  top-p) for the "most native continuation" selection policy,
- stops a row at EOS, right after the first closed `\\boxed{...}` (`stop_at_answer`), or at the
  token budget, and drops finished rows from the batch so stragglers do not pay for them.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

import torch
from transformers.cache_utils import DynamicLayer

from ..answers import AnswerStopper, _boxed_spans
from ..errors import RunError, UsageError, one_line
from .base import Completion, GenerationRequest, sample_seed

_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")
_FINGERPRINT_SUFFIXES = (
    ".json",
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".gguf",
    ".model",
    ".jinja",
    ".txt",
    ".tiktoken",
    ".py",
)


def _resolve_dtype(dtype: Any) -> Optional[torch.dtype]:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        value = getattr(torch, dtype.replace("torch.", ""), None)
        if isinstance(value, torch.dtype):
            return value
    raise ValueError(f"unknown dtype {dtype!r}")


def _file_stamp(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return path.name, st.st_size, st.st_mtime_ns


def _context_from_config(config: Any) -> Optional[int]:
    if config is None:
        return None
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    for key in _CONTEXT_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _looks_like_path(name: str) -> bool:
    """A string that can only be a local path (a Hub id is `name` or `namespace/name`)."""
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or "\\" in name


def _model_fingerprint(model: Any) -> str:
    """name_or_path + config + a strided sample (16 values) of every parameter: fast, content-sensitive."""
    h = hashlib.sha256()
    h.update(str(getattr(model, "name_or_path", "")).encode())
    config = getattr(model, "config", None)
    if config is not None:
        try:
            h.update(config.to_json_string(use_diff=False).encode())
        except Exception:  # pragma: no cover - exotic configs
            h.update(repr(config).encode())
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    with torch.no_grad():
        for name, param in model.named_parameters():
            h.update(f"{name}:{tuple(param.shape)}:{param.dtype}".encode())
            if param.device.type == "meta" or param.numel() == 0:
                continue
            flat = param.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 16)][:16]
            try:
                sample = sample.to(torch.float32)
            except Exception:  # pragma: no cover - dtypes that do not convert
                continue
            by_device.setdefault(sample.device, []).append(sample)
        for device in sorted(by_device, key=str):
            h.update(torch.cat(by_device[device]).cpu().numpy().tobytes())
    return "model:" + h.hexdigest()[:24]


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _share_groups(
    prompts: Sequence[Sequence[int]], min_shared: int, forward_cost: int
) -> tuple[list[tuple[int, list[int]]], list[int]]:
    """Plan prefix sharing: `([(shared length, prompt indices), ...], indices prefilled on their own)`.

    Prompts sorted by their token ids put every family of nested prompts (one DART example's
    prefixes) next to each other; a dynamic program then cuts that order into runs that minimise the
    prefill tokens: a run sharing `s` tokens (its common prefix, capped so that every prompt keeps
    at least one token of its own; at least `min_shared`) costs `s + k * (longest - s)` plus two
    forwards of overhead (`forward_cost` tokens each), a prompt on its own costs its length.
    """
    n = len(prompts)
    order = sorted(range(n), key=lambda u: (list(prompts[u]), u))
    lengths = [len(prompts[u]) for u in order]
    adjacent = [_common_prefix(prompts[order[i]], prompts[order[i + 1]]) for i in range(n - 1)]
    best = [0] * (n + 1)
    cut: list[tuple[int, int]] = [(0, 0)] * (n + 1)  # (start of the last run, its shared length; 0: alone)
    for j in range(1, n + 1):
        best[j], cut[j] = best[j - 1] + lengths[j - 1], (j - 1, 0)
        common, shortest, longest = lengths[j - 1], lengths[j - 1], lengths[j - 1]
        for i in range(j - 2, -1, -1):  # the run order[i:j]
            common = min(common, adjacent[i])
            shortest, longest = min(shortest, lengths[i]), max(longest, lengths[i])
            shared = min(common, shortest - 1)
            if shared < min_shared:  # only shrinks as the run grows to the left
                break
            cost = best[i] + 2 * forward_cost + shared + (j - i) * (longest - shared)
            if cost < best[j]:
                best[j], cut[j] = cost, (i, shared)
    groups, rest, j = [], [], n
    while j > 0:
        i, shared = cut[j]
        if shared:
            groups.append((shared, order[i:j]))
        else:
            rest.append(order[i])
        j = i
    return groups[::-1], sorted(rest)


class TransformersBackend:
    """Sample student continuations in-process with a transformers causal LM.

    Implements [`GenerationBackend`][dart_hf.backends.base.GenerationBackend].

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
            then ends at that closing brace (`finish_reason="answer"`).
        prefill_tokens: about how many (padded) prompt tokens one prefill forward processes; bounds
            the memory of prompt processing without changing results.
        share_prefix: prompts of a chunk that share a long token prefix (DART's nested prompts of one
            example) prefill it once, with batch 1, then their suffixes with that KV broadcast as
            past; on SmolLM2-135M / CHAMP this processes 2.7x fewer prefill tokens and prefills
            about 2x faster on CPU (`benchmarks/prefill.py`). Results are the same up to float
            rounding (as with other batch shapes), hence in the fingerprint when off. Models whose
            cache is not made of plain `DynamicLayer`s ignore it.

    Attributes:
        fingerprint: cheap, stable identity (see `GenerationBackend`), computed without loading.
        tokens_generated: running total of generated tokens (for throughput and cost accounting).
    """

    _MIN_SHARED = 16  # tokens: shorter common prefixes are not worth a group of their own
    _FORWARD_COST = 16  # overhead of one extra prefill forward, in prompt tokens (for `_share_groups`)

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        revision: Optional[str] = None,
        device: Any = None,
        dtype: Any = None,
        batch_size: int = 64,
        stop_at_answer: bool = True,
        prefill_tokens: int = 8192,
        share_prefix: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.revision = revision
        self.batch_size = int(batch_size)
        self.prefill_tokens = int(prefill_tokens)
        self.stop_at_answer = bool(stop_at_answer)
        self.share_prefix = bool(share_prefix)
        self.tokens_generated = 0
        self._device = torch.device(device) if device is not None else None
        self._device_given = device is not None
        self._tokenizer_given = tokenizer is not None
        self._single_thread = False
        self._dtype = _resolve_dtype(dtype)
        self._model: Any = None
        self._tokenizer: Any = tokenizer
        self._config: Any = None
        self._pieces: Optional[list[str]] = None
        self._eos_ids: Optional[set[int]] = None
        self._forward_args: Optional[tuple[str, bool]] = None
        self._gguf_file: Optional[str] = None
        self._plain_cache: Optional[bool] = None  # does the model use plain DynamicLayers (see `_prefill`)?

        if isinstance(model, torch.nn.Module):
            self._source, self._kind = None, "loaded"
            self._model = model
            if self._device is not None or self._dtype is not None:
                model.to(device=self._device, dtype=self._dtype)
            model.eval()
            if self._tokenizer is None:
                self._tokenizer = self._tokenizer_for_loaded(model)
            base = _model_fingerprint(model)
        else:
            path = Path(os.fspath(model)).expanduser()
            if path.is_file() and path.suffix == ".gguf":
                self._kind, self._source = "gguf", str(path.resolve())
                self._gguf_file = path.name
                base = "gguf:{}:{}:{}".format(self._source, *_file_stamp(path)[1:])
            elif path.is_dir():
                self._kind, self._source = "dir", str(path.resolve())
                stamps = sorted(
                    _file_stamp(p) for p in path.iterdir() if p.is_file() and p.suffix in _FINGERPRINT_SUFFIXES
                )
                digest = hashlib.sha256(json.dumps(stamps).encode()).hexdigest()[:16]
                base = f"dir:{self._source}:{digest}"
            elif str(model).endswith(".gguf"):
                raise UsageError(f"GGUF file not found: {model}")
            elif _looks_like_path(str(model)):
                raise UsageError(f"student {str(model)!r} is not a file or folder (and a path is not a Hub id)")
            else:
                self._kind, self._source = "hub", str(model)
                base = f"hf:{self._source}@{revision or 'main'}"
        extras = []
        if tokenizer is not None:
            extras.append(f"tokenizer={getattr(tokenizer, 'name_or_path', type(tokenizer).__name__)}")
        if self._dtype is not None:
            extras.append(f"dtype={str(self._dtype).replace('torch.', '')}")
        if not self.stop_at_answer:
            extras.append("stop_at_answer=False")
        if not self.share_prefix:
            extras.append("share_prefix=False")
        self.fingerprint: str = "|".join([base, *extras])

    # ------------------------------------------------------------------ loading

    def _tokenizer_for_loaded(self, model: Any) -> Any:
        from transformers import AutoTokenizer

        name = getattr(model, "name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", "")
        if not name:
            raise ValueError(
                "TransformersBackend got a loaded model without a tokenizer, and the model has no "
                "`name_or_path` to load one from: pass `tokenizer=`."
            )
        try:
            return AutoTokenizer.from_pretrained(name, revision=self.revision)
        except Exception as err:
            raise ValueError(
                f"TransformersBackend got a loaded model without a tokenizer and could not load one from "
                f"its name_or_path {name!r} ({type(err).__name__}: {err}); pass `tokenizer=`."
            ) from err

    def _load_args(self) -> tuple[str, dict]:
        if self._kind == "gguf":
            return str(Path(self._source).parent), {"gguf_file": self._gguf_file}
        return self._source, {"revision": self.revision} if self.revision else {}

    def _load(self, what: str, load: Callable[[], Any]) -> Any:
        """`load()`, with any failure turned into a `RunError`: a student that cannot load fails every row alike."""
        try:
            return load()
        except Exception as err:
            raise RunError(f"cannot load the student's {what} from {self._source!r}: {one_line(err)}") from err

    def check_loadable(self) -> None:
        """Load the tokenizer and config now (not the weights), so a student that cannot load stops a run before it starts."""
        _ = self.tokenizer
        _ = self.context_length

    @property
    def model(self) -> Any:
        """The loaded model (loads it on first access)."""
        if self._model is None:
            from transformers import AutoModelForCausalLM

            device = self._device
            if device is None:
                try:
                    from accelerate import PartialState

                    device = PartialState().device
                except Exception:  # pragma: no cover - accelerate is a dependency
                    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
                self._device = device
            dtype = self._dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
            where, kwargs = self._load_args()
            model = self._load("weights", lambda: AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **kwargs))
            model.to(device)
            model.eval()
            self._model = model
        return self._model

    @property
    def tokenizer(self) -> Any:
        """The tokenizer (loaded lazily, without the weights)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            where, kwargs = self._load_args()
            self._tokenizer = self._load("tokenizer", lambda: AutoTokenizer.from_pretrained(where, **kwargs))
        return self._tokenizer

    @property
    def context_length(self) -> Optional[int]:
        """The model's maximum sequence length (config `max_position_embeddings`), read from the config only."""
        if self._model is not None:
            return _context_from_config(self._model.config)
        if self._config is None:
            from transformers import AutoConfig

            where, kwargs = self._load_args()
            self._config = self._load("config", lambda: AutoConfig.from_pretrained(where, **kwargs))
        return _context_from_config(self._config)

    @property
    def is_loaded(self) -> bool:
        return self._model is not None

    def __repr__(self) -> str:
        return f"TransformersBackend({self.fingerprint!r}, loaded={self.is_loaded})"

    def __getstate__(self) -> dict:
        """Ship ids and paths, not lazily loaded weights: each `map` worker loads its own copy."""
        state = self.__dict__.copy()
        if self._kind != "loaded":
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
        # In a worker started by the process that pickled us (datasets `num_proc`), torch's OpenMP
        # pool inherited through fork deadlocks in the first parallel region; one thread per worker
        # avoids that and is the fair share of the cores anyway.
        self._single_thread = pickled_in is not None and os.getppid() == pickled_in

    # ------------------------------------------------------------------ decoding helpers

    def _token_pieces(self, vocab_size: int) -> list[str]:
        """Decoded text of every single token (special tokens -> ""), computed once."""
        if self._pieces is None or len(self._pieces) < vocab_size:
            tok = self.tokenizer
            n = len(tok)
            pieces = tok.batch_decode([[i] for i in range(n)], skip_special_tokens=True)
            self._pieces = list(pieces) + [""] * max(0, vocab_size - n)
        return self._pieces

    def _eos_token_ids(self) -> set[int]:
        if self._eos_ids is None:
            ids: set[int] = set()
            candidates = [getattr(self.tokenizer, "eos_token_id", None)]
            gen_config = getattr(self.model, "generation_config", None)
            candidates.append(getattr(gen_config, "eos_token_id", None))
            for c in candidates:
                if isinstance(c, int):
                    ids.add(c)
                elif isinstance(c, (list, tuple, set)):
                    ids.update(int(x) for x in c if x is not None)
            self._eos_ids = ids
        return self._eos_ids

    def _forward(self, model: Any, cache: Any, last_only: bool, **inputs: Any) -> tuple[torch.Tensor, Any]:
        if self._forward_args is None:
            params = inspect.signature(model.forward).parameters
            cache_kw = "cache" if "cache" in params else "past_key_values"
            self._forward_args = (cache_kw, "logits_to_keep" in params)
        cache_kw, has_keep = self._forward_args
        if cache is not None:
            inputs[cache_kw] = cache
        if last_only and has_keep:
            inputs["logits_to_keep"] = 1
        out = model(**inputs, use_cache=True)
        new_cache = getattr(out, "cache", None)
        if new_cache is None:
            new_cache = out.past_key_values
        return out.logits[:, -1, :].float(), new_cache

    @staticmethod
    def _select(logits: torch.Tensor, rows: list[dict]) -> torch.Tensor:
        """Next token of every row: greedy (temperature 0) or seeded inverse-CDF sampling per row."""
        from transformers import TemperatureLogitsWarper, TopPLogitsWarper

        chosen = torch.empty(len(rows), dtype=torch.long, device=logits.device)
        groups: dict[tuple[float, float], list[int]] = {}
        for i, row in enumerate(rows):
            groups.setdefault((row["temperature"], row["top_p"]), []).append(i)
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
            u = torch.cat([torch.rand(1, generator=rows[i]["generator"], dtype=torch.float64) for i in members])
            target = (u.to(cdf.device) * cdf[:, -1]).unsqueeze(-1)
            token = torch.searchsorted(cdf, target, right=True).squeeze(-1)
            chosen[idx] = token.clamp_(max=cdf.shape[-1] - 1)
        return chosen

    def _padded_batch(self, prompts: list[list[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(p) for p in prompts)
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = min(self._eos_token_ids(), default=0)
        input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for u, ids in enumerate(prompts):
            input_ids[u, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            mask[u, width - len(ids) :] = 1
        return input_ids.to(device), mask.to(device)

    def _micro_batches(self, members: list[int], prompts: list[list[int]]) -> list[list[int]]:
        """Split prompts (longest first) into batches of about `prefill_tokens` padded tokens."""
        batches, current = [], []
        for u in sorted(members, key=lambda u: (-len(prompts[u]), u)):
            if current and len(prompts[current[0]]) * (len(current) + 1) > self.prefill_tokens:
                batches.append(current)
                current = []
            current.append(u)
        if current:
            batches.append(current)
        return batches

    @staticmethod
    def _is_plain(cache: Any) -> bool:
        layers = getattr(cache, "layers", None)
        return bool(layers) and all(
            type(layer) is DynamicLayer and layer.is_initialized and layer.keys.numel() > 0 for layer in layers
        )

    def _learned_cache_is_not_plain(self, cache: Any) -> bool:
        """On the first prefill forward, learn the model's cache kind; True means: redo the prefill the plain way."""
        if self._plain_cache is None:
            self._plain_cache = self._is_plain(cache)
            return not self._plain_cache
        return False

    def _prefill(
        self, model: Any, prompts: list[list[int]], expand: list[int], limit: int, device: torch.device
    ) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """Run the distinct prompts; return last-token logits, cache and attention mask, one row per sample.

        With `share_prefix`, prompts that share a long token prefix (`_share_groups`) run it once
        (batch 1), then their suffixes run with that KV broadcast as past: a row's cache is then
        `[shared | pad | suffix]`, which decoding handles like left padding (explicit 2D mask,
        positions from the mask). The other prompts go through in micro-batches of about
        `prefill_tokens` padded tokens (longest first), which bounds the memory of prefill attention.
        The parts are then left-padded to a common width and moved into `_GrowableLayer`s, which
        write new tokens in place instead of re-concatenating the whole cache at every step. Models
        whose cache is not made of plain `DynamicLayer`s (sliding windows, linear attention, ...) get
        one prefill forward and transformers' own cache.
        """
        if self._plain_cache is False:
            input_ids, mask = self._padded_batch(prompts, device)
            position_ids = (mask.cumsum(-1) - 1).masked_fill_(mask == 0, 1)
            logits, cache = self._forward(
                model, None, True, input_ids=input_ids, attention_mask=mask, position_ids=position_ids
            )
            if expand != list(range(len(prompts))):
                cache.batch_select_indices(torch.tensor(expand, device=device))
            return logits[expand], cache, mask.index_select(0, torch.tensor(expand, device=device))

        if self.share_prefix:
            shared_groups, rest = _share_groups(prompts, self._MIN_SHARED, self._FORWARD_COST)
        else:
            shared_groups, rest = [], list(range(len(prompts)))
        # parts: (prompt indices, last-token logits, per-layer [keys, values], attention mask)
        parts: list[tuple[list[int], torch.Tensor, list[list[torch.Tensor]], torch.Tensor]] = []
        cache = None
        for shared, members in shared_groups:
            ids = torch.tensor([prompts[members[0]][:shared]], dtype=torch.long, device=device)
            _, cache = self._forward(
                model, None, True, input_ids=ids, position_ids=torch.arange(shared, device=device).unsqueeze(0)
            )
            if self._learned_cache_is_not_plain(cache):
                return self._prefill(model, prompts, expand, limit, device)
            past = [(layer.keys, layer.values) for layer in cache.layers]
            for batch in self._micro_batches(members, prompts):
                for layer, (keys, values) in zip(cache.layers, past):  # broadcast views: no copy
                    layer.keys = keys.expand(len(batch), -1, -1, -1)
                    layer.values = values.expand(len(batch), -1, -1, -1)
                input_ids, suffix_mask = self._padded_batch([prompts[u][shared:] for u in batch], device)
                mask = torch.cat([suffix_mask.new_ones((len(batch), shared)), suffix_mask], dim=-1)
                position_ids = (mask.cumsum(-1) - 1)[:, shared:].masked_fill_(suffix_mask == 0, 1)
                logits, cache = self._forward(
                    model, cache, True, input_ids=input_ids, attention_mask=mask, position_ids=position_ids
                )
                parts.append((batch, logits, [[layer.keys, layer.values] for layer in cache.layers], mask))
        for batch in self._micro_batches(rest, prompts):
            input_ids, mask = self._padded_batch([prompts[u] for u in batch], device)
            position_ids = (mask.cumsum(-1) - 1).masked_fill_(mask == 0, 1)
            logits, cache = self._forward(
                model, None, True, input_ids=input_ids, attention_mask=mask, position_ids=position_ids
            )
            if self._learned_cache_is_not_plain(cache):
                return self._prefill(model, prompts, expand, limit, device)
            parts.append((batch, logits, [[layer.keys, layer.values] for layer in cache.layers], mask))

        # merge: left-pad every part to the common width, then one row per sample
        width = max(part[3].shape[-1] for part in parts)
        rows_of = {u: k for k, u in enumerate(u for part in parts for u in part[0])}
        index = torch.tensor([rows_of[u] for u in expand], device=device)
        logits = torch.cat([part[1] for part in parts]).index_select(0, index)
        mask = torch.cat([torch.nn.functional.pad(m, (width - m.shape[-1], 0)) for _, _, _, m in parts]).index_select(
            0, index
        )
        for li in range(len(cache.layers)):
            keys, values = [], []
            for _, _, kv, _ in parts:
                k, v = kv[li]
                pad = width - k.shape[-2]
                keys.append(torch.nn.functional.pad(k, (0, 0, pad, 0)) if pad else k)
                values.append(torch.nn.functional.pad(v, (0, 0, pad, 0)) if pad else v)
                kv[li] = None  # free as we go
            cache.layers[li] = _GrowableLayer(
                torch.cat(keys).index_select(0, index), torch.cat(values).index_select(0, index), limit
            )
        return logits, cache, mask

    # ------------------------------------------------------------------ generation

    def generate(self, requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
        """Return, for each request, exactly `request.n` completions in sample order."""
        requests = list(requests)
        results: list[list[Optional[Completion]]] = [[None] * r.n for r in requests]
        for r in requests:
            if r.n < 0 or r.max_new_tokens < 0 or r.first_sample < 0:
                raise ValueError(
                    f"n, max_new_tokens and first_sample must be >= 0, got n={r.n}, "
                    f"max_new_tokens={r.max_new_tokens}, first_sample={r.first_sample}"
                )
            if r.temperature < 0 or not 0 < r.top_p <= 1:
                raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {r.temperature}, {r.top_p}")
        if not any(r.n for r in requests):
            return [[] for _ in requests]
        if self._single_thread and torch.get_num_threads() > 1:
            torch.set_num_threads(1)

        model = self.model
        tokenizer = self.tokenizer
        context = self.context_length
        prompt_ids: dict[str, list[int]] = {}
        for r in requests:
            if r.n and r.prompt not in prompt_ids:
                ids = tokenizer(r.prompt, add_special_tokens=False)["input_ids"]
                if context is not None and len(ids) >= context:
                    raise ValueError(
                        f"prompt of {len(ids)} tokens does not fit the model's context of {context} tokens "
                        f"(it leaves no room for generation): {r.prompt[:80]!r}..."
                    )
                prompt_ids[r.prompt] = ids

        rows = []
        for ri, r in enumerate(requests):
            ids = prompt_ids.get(r.prompt)
            budget = r.max_new_tokens if context is None else min(r.max_new_tokens, context - len(ids or []))
            for j in range(r.n):
                rows.append(
                    dict(
                        request=ri,
                        sample=j,
                        prompt=r.prompt,
                        ids=ids,
                        budget=budget,
                        temperature=float(r.temperature),
                        top_p=float(r.top_p),
                        seed=sample_seed(r.seed, r.first_sample + j),
                    )
                )
        with torch.inference_mode():
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start : start + self.batch_size]
                for row, completion in zip(chunk, self._generate_chunk(model, chunk)):
                    results[row["request"]][row["sample"]] = completion
        return results  # type: ignore[return-value]

    def _generate_chunk(self, model: Any, rows: list[dict]) -> list[Completion]:
        device = next(model.parameters()).device
        eos_ids = self._eos_token_ids()
        done: list[Optional[Completion]] = [None] * len(rows)
        for i, row in enumerate(rows):
            if row["budget"] <= 0:
                done[i] = Completion(text="", num_tokens=0, logprob=None, finish_reason="length")
            row["generator"] = torch.Generator().manual_seed(row["seed"])
            row["stopper"] = AnswerStopper() if self.stop_at_answer else None
            row["tokens"] = []
            row["logprob_sum"] = 0.0
        live = [i for i in range(len(rows)) if done[i] is None]
        if not live:
            return done  # type: ignore[return-value]

        # Prefill every distinct prompt once (left padding), then copy its cache to its sample rows.
        unique: dict[str, int] = {}
        for i in live:
            unique.setdefault(rows[i]["prompt"], len(unique))
        prompts: list[list[int]] = [[] for _ in unique]
        for i in live:
            prompts[unique[rows[i]["prompt"]]] = rows[i]["ids"]
        expand = [unique[rows[i]["prompt"]] for i in live]
        limit = max(len(p) for p in prompts) + max(rows[i]["budget"] for i in live)
        logits, cache, mask = self._prefill(model, prompts, expand, limit, device)
        pieces = self._token_pieces(logits.shape[-1]) if self.stop_at_answer else None
        generated = 0
        while True:
            active = [rows[i] for i in live]
            tokens = self._select(logits, active)
            token_lp = torch.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
            token_list, lp_list = tokens.tolist(), token_lp.tolist()
            keep = []
            for k, i in enumerate(live):
                row, tok_id = rows[i], token_list[k]
                row["tokens"].append(tok_id)
                row["logprob_sum"] += lp_list[k]
                generated += 1
                reason = None
                if tok_id in eos_ids:
                    reason = "stop"
                elif row["stopper"] is not None and row["stopper"].feed(pieces[tok_id]):
                    reason = "answer"
                elif len(row["tokens"]) >= row["budget"]:
                    reason = "length"
                if reason is None:
                    keep.append(k)
                else:
                    done[i] = self._completion(row, reason)
            if not keep:
                break
            if len(keep) < len(live):
                keep_idx = torch.tensor(keep, device=device)
                cache.batch_select_indices(keep_idx)
                mask, tokens = mask.index_select(0, keep_idx), tokens.index_select(0, keep_idx)
                live = [live[k] for k in keep]
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
            position_ids = mask.sum(-1, keepdim=True) - 1
            logits, cache = self._forward(
                model, cache, False, input_ids=tokens.unsqueeze(-1), attention_mask=mask, position_ids=position_ids
            )
        self.tokens_generated += generated
        return done  # type: ignore[return-value]

    def _completion(self, row: dict, reason: str) -> Completion:
        ids = row["tokens"]
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        if reason == "answer":
            # the closing token may carry more ("}." / "}$"): end the text at the brace that closed the
            # first non-empty box (empty `\\boxed{}` echoes of the instruction do not stop a row)
            ends = [end for start, end in _boxed_spans(text) if text[start:end].strip()]
            if ends:
                text = text[: ends[0] + 1]
        return Completion(text=text, num_tokens=len(ids), logprob=row["logprob_sum"] / len(ids), finish_reason=reason)


class _GrowableLayer(DynamicLayer):
    """A `DynamicLayer` that appends new tokens in place into spare capacity.

    transformers' `DynamicLayer` concatenates the whole cache with each new token, i.e. copies
    O(context) memory per step and layer; this one grows its buffers geometrically (never past
    `limit` tokens) and hands attention views of the filled part.
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
        return self._length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._regrow(indices.to(self._k.device), self._k.shape[-2])
        self._views()

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.batch_select_indices(beam_idx)

    def batch_repeat_interleave(self, repeats: int) -> None:
        index = torch.arange(self._k.shape[0], device=self._k.device).repeat_interleave(repeats)
        self.batch_select_indices(index)

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative number of tokens to remove")
        self._length = max(0, self._length + tokens_to_remove)
        self._views()

    def reset(self) -> None:
        self._length = 0
        self._views()
