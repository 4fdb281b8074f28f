"""Where a decode step's time goes: a torch profile of decode steps 40-59 of the demo workload.

    OMP_NUM_THREADS=1 python benchmarks/decode_profile.py --n 4 --kv shared
    OMP_NUM_THREADS=1 python benchmarks/decode_profile.py --n 4 --kv per-sample

SmolLM2-135M (GGUF, float32) adapts the `--n` shortest CHAMP problems with the demo's settings
(grid, n_sim 4, n_explore 4, 160 new tokens); the profiler table lists the operators of 20 decode
steps by self CPU time, with the batch's live rows and widths every fourth step.
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

from torch.profiler import profile

from dart_hf import DartAdapter, DartConfig
from dart_hf.backends.transformers import TransformersBackend
from dart_hf.backends.transformers.decode import DecodeBatch
from dart_hf.data import load_champ
from dart_hf.local_models import smollm2_gguf_path
from dart_hf.verification import MathVerifier

FIRST, LAST = 40, 60  # decode steps profiled


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4, help="CHAMP problems (the shortest numeric ones)")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--kv", choices=["shared", "per-sample"], default="shared")
    args = parser.parse_args(argv)
    backend = TransformersBackend(
        smollm2_gguf_path(), device="cpu", batch_size=args.batch_size, shared_kv=args.kv == "shared"
    )
    _ = backend.model  # loaded before the clock
    rows = load_champ(args.n)
    step, count, widths, profiler = DecodeBatch.step, [0], [], profile()

    def profiled(self: DecodeBatch):
        count[0] += 1
        if count[0] == FIRST:
            profiler.__enter__()
        if FIRST <= count[0] < LAST and count[0] % 4 == 0:
            kv = getattr(self, "_kv", None)
            widths.append((len(self.live), len(self._rows), getattr(kv, "_pwidth", None), getattr(kv, "_swidth", None)))
        if count[0] == LAST:
            profiler.__exit__(None, None, None)
        return step(self)

    DecodeBatch.step = profiled  # type: ignore[method-assign]
    verifier = MathVerifier()
    try:
        start = time.perf_counter()
        config = DartConfig(n_explore=4, max_new_tokens=160, steps_column="steps")
        DartAdapter(backend, config, progress=False, verifier=verifier).adapt_rows(list(rows))
        print(
            f"kv {args.kv}: wall {time.perf_counter() - start:.1f} s, {backend.tokens_generated} tokens, {count[0]} steps"
        )
    finally:
        DecodeBatch.step = step  # type: ignore[method-assign]
        verifier.close()
    for live, rows_, prompt_width, own_width in widths:
        print(f"live rows {live}, row slots {rows_}, prompt width {prompt_width}, own-token width {own_width}")
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
