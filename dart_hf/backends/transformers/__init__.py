"""In-process generation with 🤗 transformers: the default student backend.

- `loading`: telling Hub ids, folders and GGUF files apart, lazy loading, the fingerprint;
- `planner`: which prompts prefill together (prefix-sharing groups, micro-batches);
- `cache`: the KV cache layer that grows in place;
- `prefill`: prompts into one cache row per sample;
- `decode`: the `Sample` in flight and the seeded decode loop;
- `backend`: [`TransformersBackend`][dart_hf.backends.transformers.TransformersBackend], which wires them.
"""

from .backend import TransformersBackend

__all__ = ["TransformersBackend"]
