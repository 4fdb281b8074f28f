"""dart_hf: adapt expert reasoning datasets to a small student model (DART, arXiv 2505.20700)."""

from .adapter import DartAdapter
from .backends.base import Completion, GenerationBackend, GenerationRequest
from .config import DartConfig
from .rollouts import rollout_records
from .schema import OUTPUT_COLUMNS, Action, is_usable
from .verifiers import MathVerifier, Verifier

__version__ = "0.1.0"

# TRL is heavy to import: the trainer names load on first access.
_LAZY = {"DartTrainer": ".trainer", "DartDataCollator": ".provenance", "DartSFTConfig": ".sft_config"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'dart_hf' has no attribute {name!r}")


__all__ = [
    "OUTPUT_COLUMNS",
    "Action",
    "Completion",
    "DartAdapter",
    "DartConfig",
    "DartDataCollator",
    "DartSFTConfig",
    "DartTrainer",
    "GenerationBackend",
    "GenerationRequest",
    "MathVerifier",
    "is_usable",
    "rollout_records",
    "Verifier",
]
