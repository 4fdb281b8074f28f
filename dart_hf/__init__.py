"""dart_hf: adapt expert reasoning datasets to a small student model (DART, arXiv 2505.20700)."""

from .adapter import OUTPUT_COLUMNS, DartAdapter, is_usable
from .backends.base import Completion, GenerationBackend, GenerationRequest
from .config import DartConfig

__version__ = "0.1.0"

__all__ = [
    "OUTPUT_COLUMNS",
    "Completion",
    "DartAdapter",
    "DartConfig",
    "GenerationBackend",
    "GenerationRequest",
    "is_usable",
]
