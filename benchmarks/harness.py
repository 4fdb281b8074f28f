"""What the benchmark scripts share: a timed adapt, a backend seen through `generate` only, rates with intervals.

The scripts put `benchmarks/` first on the import path when run as `python benchmarks/x.py`, so they
import this module as `harness`.
"""

from __future__ import annotations

import os
import time
from typing import Any, Optional

import datasets

from dart_hf import DartAdapter, DartConfig
from dart_hf.study.stats import wilson_interval
from dart_hf.tasks.planted_gap import score_detection


def timed_map(
    problems: datasets.Dataset, adapter: DartAdapter, desc: Optional[str] = None, batch_size: Optional[int] = None
) -> tuple[datasets.Dataset, float]:
    """`problems.map(adapter)` (in one batch by default), never from a cache; returns the rows and the seconds."""
    start = time.perf_counter()
    out = problems.map(
        adapter,
        batched=True,
        batch_size=batch_size or len(problems),
        load_from_cache_file=False,
        keep_in_memory=True,
        desc=desc,
    )
    return out, time.perf_counter() - start


def adapt_and_score(
    problems: datasets.Dataset, backend: Any, config: DartConfig, desc: Optional[str] = None, **adapter_kwargs: Any
) -> tuple[dict, datasets.Dataset]:
    """Adapt planted-gap problems; score the detected gaps against the planted ones (with tokens and seconds)."""
    out, seconds = timed_map(problems, DartAdapter(backend, config, progress=False, **adapter_kwargs), desc)
    detected = list(out["dart_gap_step"])
    row = {
        **score_detection(list(problems["planted_gap"]), detected),
        "tokens": sum(out["dart_tokens_generated"]),
        "seconds": seconds,
        "gaps": detected,
    }
    return row, out


class GenerateOnly:
    """A backend seen through `generate` only (and the properties the adapter reads).

    The adapter then drives it round by round (`RoundStream`); subclasses can watch the calls.
    """

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    @property
    def fingerprint(self) -> str:
        return self.backend.fingerprint

    @property
    def tokenizer(self) -> Any:
        return self.backend.tokenizer

    @property
    def context_length(self) -> Optional[int]:
        return self.backend.context_length

    def generate(self, requests):
        return self.backend.generate(requests)


def rate(k: int, n: int) -> str:
    """`k/n [low, high]` with a 95% Wilson interval; a dash when n is 0."""
    low, high = wilson_interval(k, n)
    return "—" if not n else f"{k / n:.2f} [{low:.2f}, {high:.2f}]"


def fmt(x: Optional[float], digits: int = 2) -> str:
    """A number, or a dash for None / NaN."""
    return "—" if x is None or x != x else f"{x:.{digits}f}"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: timings on a shared machine mean little without them."""
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())
