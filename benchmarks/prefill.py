"""Shared-prefix prefill in the transformers backend: time and results, with and without sharing.

On the real student (SmolLM2-135M GGUF) and real nested DART prompts (CHAMP: chat template +
problem + expert steps 1..t, for every t), one `generate` call holds several examples x all their
prefixes x `n` samples, as `run_jobs` sends them. For each `max_new_tokens` it prints a markdown
table row per mode: prompt tokens the prefill forwards processed (padding included), prefill time,
end-to-end generate time, and how many completions differ from those without sharing. A third
mode, no sharing with one prompt per prefill forward, shows the float noise that any change of
batch shapes brings (sampled rows can flip after many tokens).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/prefill.py [--examples 4] [--n 4] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_requests(backend, n_examples: int, n: int, max_new_tokens: int, stride: int):
    from dart_hf.backends.base import GenerationRequest
    from dart_hf.config import DartConfig
    from dart_hf.data import load_champ
    from dart_hf.example import parse_example
    from dart_hf.prompts import prefix_text, render_prompt

    cfg = DartConfig(steps_column="steps")
    rows = load_champ()
    requests = []
    for e in range(n_examples):
        example = parse_example(rows[(e * stride + stride // 2) % len(rows)], cfg)
        for t in range(len(example.steps) + 1):
            prompt = render_prompt(example, prefix_text(example, t), backend.tokenizer, cfg)
            requests.append(
                GenerationRequest(
                    prompt,
                    n=n,
                    seed=1000 * e + t,
                    temperature=cfg.temperature,
                    top_p=cfg.top_p,
                    max_new_tokens=max_new_tokens,
                )
            )
    return requests


class Meter:
    """Wrap a backend's `_prefill` and `_forward` to time prefill and count the tokens it processes."""

    def __init__(self, backend):
        self.prefill_s, self.prefill_tokens, self._in_prefill = 0.0, 0, False
        prefill, forward = backend._prefill, backend._forward

        def timed_prefill(*args, **kwargs):
            start, self._in_prefill = time.perf_counter(), True
            try:
                return prefill(*args, **kwargs)
            finally:
                self._in_prefill = False
                self.prefill_s += time.perf_counter() - start

        def counted_forward(model, cache, last_only, **inputs):
            if self._in_prefill:
                self.prefill_tokens += inputs["input_ids"].numel()
            return forward(model, cache, last_only, **inputs)

        backend._prefill, backend._forward = timed_prefill, counted_forward


def run(backend, requests):
    meter = Meter(backend)
    start = time.perf_counter()
    out = backend.generate(requests)
    total = time.perf_counter() - start
    del backend._prefill, backend._forward
    return out, total, meter


def compare(ref, out) -> tuple[int, float]:
    """Rows whose completion differs from `ref`; max |log-prob difference| over the rows that match."""
    pairs = [(a, b) for ra, rb in zip(ref, out) for a, b in zip(ra, rb)]
    key = lambda c: (c.text, c.num_tokens, c.finish_reason)  # noqa: E731
    same = [(a, b) for a, b in pairs if key(a) == key(b)]
    diff = max((abs(a.logprob - b.logprob) for a, b in same if a.logprob is not None), default=0.0)
    return len(pairs) - len(same), diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=4)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--stride", type=int, default=20, help="take CHAMP rows stride/2, 3*stride/2, ...")
    parser.add_argument("--max-new-tokens", type=int, nargs="+", default=[32, 160])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="runs per mode (alternating); median reported")
    args = parser.parse_args()

    import torch

    from dart_hf.backends.transformers import TransformersBackend
    from dart_hf.local_models import smollm2_gguf_path

    base = TransformersBackend(smollm2_gguf_path(), batch_size=args.batch_size)
    model, tokenizer = base.model, base.tokenizer
    modes = {
        "off": TransformersBackend(model, tokenizer, batch_size=args.batch_size, share_prefix=False),
        "on": TransformersBackend(model, tokenizer, batch_size=args.batch_size, share_prefix=True),
    }
    # float-noise reference, run once: no sharing, one prompt per prefill forward (other batch shapes)
    noise = TransformersBackend(model, tokenizer, batch_size=args.batch_size, share_prefix=False, prefill_tokens=1)
    probe = build_requests(base, args.examples, args.n, 4, args.stride)
    lengths = [len(tokenizer(r.prompt, add_special_tokens=False)["input_ids"]) for r in probe]
    print(
        f"SmolLM2-135M ({next(model.parameters()).device}, {torch.get_num_threads()} threads), "
        f"{args.examples} CHAMP examples, {len(probe)} prompts ({min(lengths)}-{max(lengths)} tokens, "
        f"{sum(lengths)} in all) x n={args.n} = {len(probe) * args.n} rows, batch_size={args.batch_size}, "
        f"median of {args.repeats}\n"
    )
    for backend in modes.values():  # warm up: token pieces, kernels
        backend.generate(probe[:2])

    print(
        "| max_new_tokens | share_prefix | prefill tokens | prefill s | generate s | prefill share "
        "| rows differing from `off` | max abs Δ log-prob (matching rows) |"
    )
    print("|---:|:---|---:|---:|---:|---:|---:|---:|")
    for max_new in args.max_new_tokens:
        requests = build_requests(base, args.examples, args.n, max_new, args.stride)
        times = {mode: ([], []) for mode in modes}
        outputs, tokens = {}, {}
        for _ in range(args.repeats):
            for mode, backend in modes.items():
                out, total, meter = run(backend, requests)
                times[mode][0].append(meter.prefill_s)
                times[mode][1].append(total)
                outputs[mode], tokens[mode] = out, meter.prefill_tokens
        ref = {mode: tuple(statistics.median(x) for x in times[mode]) for mode in modes}
        noise_out, noise_total, noise_meter = run(noise, requests)
        rows = [(mode, tokens[mode], *ref[mode], outputs[mode]) for mode in modes]
        rows.append(
            (
                "off, prefill_tokens=1 (noise ref., 1 run)",
                noise_meter.prefill_tokens,
                noise_meter.prefill_s,
                noise_total,
                noise_out,
            )
        )
        for mode, n_tokens, prefill_s, total_s, out in rows:
            differing, diff = compare(outputs["off"], out)
            same = ("-", "-") if mode == "off" else (f"{differing}/{len(requests) * args.n}", f"{diff:.1e}")
            print(
                f"| {max_new} | {mode} | {n_tokens} | {prefill_s:.2f} | {total_s:.2f} "
                f"| {prefill_s / total_s:.0%} | {same[0]} | {same[1]} |"
            )
        (p_off, t_off), (p_on, t_on) = ref["off"], ref["on"]
        print(
            f"| {max_new} | **off/on** | {tokens['off'] / tokens['on']:.2f}x | {p_off / p_on:.2f}x "
            f"| {t_off / t_on:.2f}x | | | |"
        )


if __name__ == "__main__":
    main()
