"""Raw decode throughput: transformers' `model.generate_batch` against `TransformersBackend.generate`.

    OMP_NUM_THREADS=1 python benchmarks/continuous_batching.py --which generate_batch
    OMP_NUM_THREADS=1 python benchmarks/continuous_batching.py --which backend

The same samples (the first `--prompts` CHAMP problems in SmolLM2's chat template, `--samples`
each, `--max_new_tokens`, temperature 0.7) on SmolLM2-135M (GGUF, float32, CPU), after a short
warm-up call; prints generated tokens per second. Run both in the same minutes: only their ratio
means anything.
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

from transformers import GenerationConfig

from dart_hf.backends.base import GenerationRequest
from dart_hf.backends.transformers import TransformersBackend
from dart_hf.data import load_champ
from dart_hf.local_models import smollm2_gguf_path


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--which", choices=["generate_batch", "backend"], required=True)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max_new_tokens", type=int, default=64)
    args = parser.parse_args(argv)
    backend = TransformersBackend(smollm2_gguf_path(), device="cpu", batch_size=64, stop_at_answer=False)
    tok, model = backend.tokenizer, backend.model
    prompts = [
        tok.apply_chat_template([{"role": "user", "content": r["problem"]}], tokenize=False, add_generation_prompt=True)
        for r in load_champ(args.prompts)
    ]
    if args.which == "backend":
        requests = [
            GenerationRequest(p, n=args.samples, seed=i, temperature=0.7, max_new_tokens=args.max_new_tokens)
            for i, p in enumerate(prompts)
        ]
        backend.generate(requests[:1])
        start = time.perf_counter()
        tokens = sum(c.num_tokens for r in backend.generate(requests) for c in r)
    else:
        ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts for _ in range(args.samples)]
        config = GenerationConfig(
            max_new_tokens=args.max_new_tokens,
            do_sample=True,
            temperature=0.7,
            eos_token_id=-1,
            pad_token_id=tok.pad_token_id,
        )
        model.generate_batch(ids[:2], generation_config=config, max_new_tokens=8)
        start = time.perf_counter()
        tokens = sum(len(o.generated_tokens) for o in model.generate_batch(ids, generation_config=config).values())
    seconds = time.perf_counter() - start
    print(f"{args.which}: {tokens} tokens in {seconds:.1f} s = {tokens / seconds:.1f} tokens/s")


if __name__ == "__main__":
    main()
