"""Where to cut a code prefix: what SmolLM2 writes right after HumanEval's prompt, by how the prefix ends.

    OMP_NUM_THREADS=1 python benchmarks/humaneval_cut_probe.py --n 4 --problems 2

For the demo's first problems (the fewest steps: `add`, `strlen`), the student continues its own
assistant turn after the prompt (signature and docstring, in an open ```python block), `--n`
samples each, with the prefix ending as the old loader cut it (after the docstring's newline) and
as `code_steps` cuts it now (before that newline). Prints one row per (problem, cut): how many
samples closed the block at once, and how many passed the problem's tests (`CodeVerifier`, the
judged code being the prefix plus the continuation's block, as in DART's simulation).
"""

from __future__ import annotations

import argparse
import time

import torch

from dart_hf.backends.base import GenerationRequest
from dart_hf.backends.transformers import TransformersBackend
from dart_hf.config import DartConfig
from dart_hf.example import parse_example
from dart_hf.humaneval import code_steps, load_humaneval
from dart_hf.local_models import smollm2_gguf_path
from dart_hf.prompts import render_prompt
from dart_hf.verifiers import Attempt, CodeVerifier
from dart_hf.verifiers.code import CodeBlockStopper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4, help="samples per (problem, cut)")
    parser.add_argument("--problems", type=int, default=2, help="the first problems of the demo's order")
    parser.add_argument("--max_new_tokens", type=int, default=48)
    args = parser.parse_args()
    torch.manual_seed(0)
    verifier = CodeVerifier()
    backend = TransformersBackend(smollm2_gguf_path(), batch_size=32, stop_at_answer=CodeBlockStopper)
    config = DartConfig(splitter=code_steps, answer_column="test", instruction=CodeVerifier.instruction)
    rows = load_humaneval(args.problems)
    requests, labels = [], []
    for row in rows:
        example = parse_example(row, config)
        prompt_step = example.steps[0]  # the prompt, cut before the newline that ends the docstring
        head = render_prompt(example, "", backend.tokenizer, config)
        for cut, prefix in (("after the newline (old)", prompt_step + "\n"), ("before it (now)", prompt_step)):
            requests.append(GenerationRequest(head + prefix, n=args.n, seed=1, max_new_tokens=args.max_new_tokens))
            labels.append((row, cut, prefix))
    start = time.perf_counter()
    outputs = backend.generate(requests)
    seconds = time.perf_counter() - start
    print("| problem | prefix ends | closed the block at once | passed the tests |\n|---|---|---|---|")
    for (row, cut, prefix), completions in zip(labels, outputs):
        texts = [prefix + c.text for c in completions]
        attempts = [Attempt(row["test"], verifier.extract_answer(t), t, row) for t in texts]
        passed = sum(v.correct for v in verifier.judge_attempts(attempts))
        closed = sum(c.text.lstrip(" \n").startswith("```") for c in completions)
        print(
            f"| {row['task_id']} `{row['entry_point']}` | {cut} | {closed}/{len(completions)} | {passed}/{len(completions)} |"
        )
    print(f"\n{sum(len(o) for o in outputs)} samples, {seconds:.0f} s of generation")


if __name__ == "__main__":
    main()
