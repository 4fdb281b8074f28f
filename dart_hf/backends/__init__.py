"""Generation backends: where the student's continuations come from."""

from .base import Completion, GenerationBackend, GenerationRequest, derive_seed, sample_seed

__all__ = ["Completion", "GenerationBackend", "GenerationRequest", "derive_seed", "sample_seed"]
