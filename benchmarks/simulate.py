"""What the cheaper-simulation switches save, and what they cost in agreement, on one data set.

    python benchmarks/simulate.py                      # SmolLM2-135M (offline GGUF) on 8 CHAMP problems
    python benchmarks/simulate.py --n 16 --max_new_tokens 256 --student path/or/id

Every configuration adapts the same rows with the same student and seed, in one batch. The baseline
is the full grid (T+1 prefixes x n_sim rollouts, no stop at the answer). For each configuration the
table gives generated tokens per example, wall time, tokens/s, and agreement with the full grid: the
gap (as the expert prefix kept, in characters, so a merged-steps run is comparable) and the whole
adapted row (action + solution). "raw" rows replay the exact backend calls of a configuration with
nothing else (no verification, no planning): the throughput ceiling for the same work.
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
from harness import GenerateOnly  # benchmarks/ is on sys.path when run as a script

from dart_hf import DartAdapter, DartConfig
from dart_hf.backends.transformers import TransformersBackend
from dart_hf.data import load_champ
from dart_hf.example import parse_example
from dart_hf.prompts import prefix_text


class Recorder(GenerateOnly):
    """Wraps a backend: keeps every call's requests and counts finish reasons, changes nothing."""

    def __init__(self, backend: TransformersBackend) -> None:
        super().__init__(backend)
        self.calls, self.finish = [], {}

    def generate(self, requests):
        self.calls.append(list(requests))
        out = self.backend.generate(requests)
        for completions in out:
            for c in completions:
                self.finish[c.finish_reason] = self.finish.get(c.finish_reason, 0) + 1
        return out


def kept_prefix(row: dict, config: DartConfig) -> int:
    """Characters of expert text kept before the gap (-1: no gap): comparable across step granularities."""
    gap = row["dart_gap_step"]
    if gap < 0:
        return -1
    return len(prefix_text(parse_example(row, config), gap - 1))


OFF = {"stop_at_answer": False, "share_prefix": False}
CONFIGS = [
    # name, DartConfig switches, backend switches
    ("full grid", {}, OFF),
    ("(a) early stop", {"early_stop": True}, OFF),
    ("(b) adaptive", {"adaptive_sampling": True}, OFF),
    ("(c) shared prefix", {}, {**OFF, "share_prefix": True}),
    ("(d) stop at answer", {}, {**OFF, "stop_at_answer": True}),
    ("(d) max_steps", {"max_steps": "MAX_STEPS"}, OFF),
    (
        "all switches",
        {"early_stop": True, "adaptive_sampling": True, "max_steps": "MAX_STEPS"},
        {"stop_at_answer": True, "share_prefix": True},
    ),
]


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", default=None, help="model id, folder or .gguf (default: SmolLM2-135M GGUF)")
    parser.add_argument("--n", type=int, default=8, help="CHAMP problems (shortest first)")
    parser.add_argument("--n_sim", type=int, default=4)
    parser.add_argument("--max_new_tokens", type=int, default=128)
    parser.add_argument("--max_steps", type=int, default=2, help="for the (d) max_steps rows")
    parser.add_argument("--batch_size", type=int, default=64, help="backend rows decoded together")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="comma-separated configuration names to run (plus the full grid)")
    args = parser.parse_args(argv)

    if args.student is None:
        from dart_hf.local_models import smollm2_gguf_path

        args.student = smollm2_gguf_path()
    rows = list(load_champ(args.n))
    model_backend = TransformersBackend(args.student, batch_size=args.batch_size)
    model, tokenizer = model_backend.model, model_backend.tokenizer
    base = dict(n_sim=args.n_sim, max_new_tokens=args.max_new_tokens, seed=args.seed, steps_column="steps")

    def backend(**switches) -> Recorder:
        return Recorder(TransformersBackend(model, tokenizer, batch_size=args.batch_size, **switches))

    # warm-up on real shapes: the first large batches of a process are slow (allocator, thread pool)
    DartAdapter(backend(**OFF), DartConfig(**base), progress=False).adapt_rows(rows[: max(1, len(rows) // 2)])

    wanted = None if args.only is None else {"full grid", *args.only.split(",")}
    results = []
    reference = None
    for name, dart_switches, backend_switches in CONFIGS:
        if wanted is not None and name not in wanted:
            continue
        dart_switches = {k: (args.max_steps if v == "MAX_STEPS" else v) for k, v in dart_switches.items()}
        config = DartConfig(**base, **dart_switches)
        recorder = backend(**backend_switches)
        adapter = DartAdapter(recorder, config, progress=False)
        start = time.perf_counter()
        out = adapter.adapt_rows(rows)
        wall = time.perf_counter() - start
        tokens = sum(o["dart_tokens_generated"] for o in out)
        errors = [o["dart_error"] for o in out if o["dart_action"] == "error"]
        if errors:
            print(f"{name}: {len(errors)} error rows, e.g. {errors[0]}", file=sys.stderr)
        merged = [dict(row, **o) for row, o in zip(rows, out)]
        gaps = [kept_prefix(m, config) for m in merged]
        adapted = [(o["dart_action"], o["dart_solution"]) for o in out]
        if reference is None:
            reference = (gaps, adapted, tokens)
        result = dict(
            name=name,
            tokens=tokens,
            wall=wall,
            gap_agree=sum(a == b for a, b in zip(gaps, reference[0])) / len(rows),
            row_agree=sum(a == b for a, b in zip(adapted, reference[1])) / len(rows),
            gaps=sum(g >= 0 for g in gaps),
            finish=dict(recorder.finish),
            rounds=len(recorder.calls),
        )
        results.append(result)
        if name in ("full grid", "all switches"):
            raw = backend(**backend_switches)
            start = time.perf_counter()
            raw_tokens = sum(c.num_tokens for call in recorder.calls for cs in raw.generate(call) for c in cs)
            raw_wall = time.perf_counter() - start
            results.append(
                dict(name=f"raw backend, {name}'s calls", tokens=raw_tokens, wall=raw_wall, rounds=len(recorder.calls))
            )

    full_tokens = reference[2]
    print(
        f"\nstudent: {args.student}\nrows: {len(rows)} CHAMP problems, n_sim={args.n_sim}, "
        f"max_new_tokens={args.max_new_tokens}, seed={args.seed}, torch threads={torch.get_num_threads()}\n"
    )
    print(
        "| configuration | tokens/example | vs full grid | backend calls | wall (s) | tokens/s | gap agreement | same adapted row | rollout ends (answer/eos/length) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        agree = f"{r['gap_agree']:.0%}" if "gap_agree" in r else ""
        same = f"{r['row_agree']:.0%}" if "row_agree" in r else ""
        finish = r.get("finish")
        ends = "" if not finish else "/".join(str(finish.get(k, 0)) for k in ("answer", "stop", "length"))
        print(
            f"| {r['name']} | {r['tokens'] / len(rows):.0f} | {r['tokens'] / full_tokens:.2f} | {r['rounds']} | "
            f"{r['wall']:.1f} | {r['tokens'] / r['wall']:.0f} | {agree} | {same} | {ends} |"
        )
    print(f"\nrows with a gap in the full grid: {results[0]['gaps']} of {len(rows)}")


if __name__ == "__main__":
    main()
