"""Where the student comes from: telling ids from paths, loading lazily, and a fingerprint that needs no load.

A run's cache keys on the backend's fingerprint before any weight is read, so a Hub id, a folder or
a GGUF file is identified by name, revision and file stamps; only an already loaded model is
fingerprinted by its contents.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from ...errors import RunError, UsageError, one_line

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


@dataclass(frozen=True)
class Source:
    """A student not loaded yet: what `from_pretrained` gets, and its identity for the fingerprint."""

    kind: str  # "hub", "dir" or "gguf"
    where: str  # Hub id, or resolved path of the folder / the .gguf file
    fingerprint: str  # the part of the backend's fingerprint that names the weights
    gguf_file: Optional[str] = None

    @classmethod
    def of(cls, model: Any, revision: Optional[str]) -> Source:
        """Classify `model` (Hub id, folder or `.gguf` path) without loading; a path that is not there is a `UsageError`."""
        path = Path(os.fspath(model)).expanduser()
        if path.is_file() and path.suffix == ".gguf":
            where = str(path.resolve())
            return cls("gguf", where, "gguf:{}:{}:{}".format(where, *_file_stamp(path)[1:]), gguf_file=path.name)
        if path.is_dir():
            where = str(path.resolve())
            stamps = sorted(_file_stamp(p) for p in path.iterdir() if p.is_file() and p.suffix in _FINGERPRINT_SUFFIXES)
            digest = hashlib.sha256(json.dumps(stamps).encode()).hexdigest()[:16]
            return cls("dir", where, f"dir:{where}:{digest}")
        if str(model).endswith(".gguf"):
            raise UsageError(f"GGUF file not found: {model}")
        if looks_like_path(str(model)):
            raise UsageError(f"student {str(model)!r} is not a file or folder (and a path is not a Hub id)")
        return cls("hub", str(model), f"hf:{model}@{revision or 'main'}")

    def load_args(self, revision: Optional[str]) -> tuple[str, dict]:
        """`(pretrained_model_name_or_path, kwargs)` for the `from_pretrained` calls."""
        if self.kind == "gguf":
            return str(Path(self.where).parent), {"gguf_file": self.gguf_file}
        return self.where, {"revision": revision} if revision else {}

    def load(self, what: str, load: Callable[[], Any]) -> Any:
        """`load()`, with any failure turned into a `RunError`: a student that cannot load fails every row alike."""
        try:
            return load()
        except Exception as err:
            raise RunError(f"cannot load the student's {what} from {self.where!r}: {one_line(err)}") from err


def resolve_dtype(dtype: Any) -> Optional[torch.dtype]:
    """`torch.bfloat16`, `"bfloat16"` or `"torch.bfloat16"` to a `torch.dtype` (None stays None)."""
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


def context_from_config(config: Any) -> Optional[int]:
    """The maximum sequence length a config declares, under whichever name its architecture uses."""
    if config is None:
        return None
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    for key in _CONTEXT_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def looks_like_path(name: str) -> bool:
    """A string that can only be a local path (a Hub id is `name` or `namespace/name`)."""
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or "\\" in name


def model_fingerprint(model: Any) -> str:
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


def tokenizer_for_loaded(model: Any, revision: Optional[str]) -> Any:
    """The tokenizer of an already loaded model, from its `name_or_path` (a `ValueError` saying to pass one)."""
    from transformers import AutoTokenizer

    name = getattr(model, "name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", "")
    if not name:
        raise ValueError(
            "TransformersBackend got a loaded model without a tokenizer, and the model has no "
            "`name_or_path` to load one from: pass `tokenizer=`."
        )
    try:
        return AutoTokenizer.from_pretrained(name, revision=revision)
    except Exception as err:
        raise ValueError(
            f"TransformersBackend got a loaded model without a tokenizer and could not load one from "
            f"its name_or_path {name!r} ({type(err).__name__}: {err}); pass `tokenizer=`."
        ) from err


def default_device() -> torch.device:
    """The process's device, as `accelerate` sees it (one GPU per rank under `accelerate launch`)."""
    try:
        from accelerate import PartialState

        return PartialState().device
    except Exception:  # pragma: no cover - accelerate is a dependency
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def eos_token_ids(tokenizer: Any, model: Any) -> set[int]:
    """Every token that ends a row: the tokenizer's EOS and the generation config's (one or several)."""
    ids: set[int] = set()
    gen_config = getattr(model, "generation_config", None)
    for c in (getattr(tokenizer, "eos_token_id", None), getattr(gen_config, "eos_token_id", None)):
        if isinstance(c, int):
            ids.add(c)
        elif isinstance(c, (list, tuple, set)):
            ids.update(int(x) for x in c if x is not None)
    return ids


def token_pieces(tokenizer: Any, vocab_size: int) -> list[str]:
    """Decoded text of every single token (special tokens -> ""), padded to the logits' width."""
    n = len(tokenizer)
    pieces = tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=True)
    return list(pieces) + [""] * max(0, vocab_size - n)
