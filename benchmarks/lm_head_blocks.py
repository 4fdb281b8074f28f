"""The LM head product whole against in blocks of vocabulary entries (`decode.blocked_head`).

    OMP_NUM_THREADS=1 python benchmarks/lm_head_blocks.py

SmolLM2's head shape (49,152 x 576, float32) against 64, 128 and 256 rows of one token each; ms per
product, whole and in blocks of 512, 1,024 (`HEAD_BLOCK`) and 2,048 entries.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F


def ms(fn) -> float:
    fn()
    start, runs = time.perf_counter(), 0
    while time.perf_counter() - start < 1.0:
        fn()
        runs += 1
    return (time.perf_counter() - start) / runs * 1000


def blocked(x: torch.Tensor, weight: torch.Tensor, block: int) -> torch.Tensor:
    return torch.cat([F.linear(x, weight[b : b + block]) for b in range(0, weight.shape[0], block)], dim=-1)


def main() -> None:
    torch.set_grad_enabled(False)
    weight = torch.randn(49152, 576)
    print(f"threads {torch.get_num_threads()}\n\n| rows | whole | 512 | 1,024 | 2,048 |\n|---|---|---|---|---|")
    for rows in (64, 128, 256):
        x = torch.randn(rows, 1, 576)
        cells = [ms(lambda x=x: F.linear(x, weight))]
        for block in (512, 1024, 2048):
            cells.append(ms(lambda x=x, block=block: blocked(x, weight, block)))
        print(f"| {rows} | " + " | ".join(f"{c:.1f} ms" for c in cells) + " |")


if __name__ == "__main__":
    main()
