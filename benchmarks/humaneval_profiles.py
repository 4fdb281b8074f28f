"""Summarize a HumanEval DART sweep (finished, or the chunks done so far): actions, gaps, f-profiles.

    dart-hf adapt --dataset_name humaneval --student "$(python -c 'from dart_hf.local_models import smollm2_gguf_path as p; print(p())')" \
        --output_dir outputs/humaneval_sweep --n_sim 2 --max_steps 3 --early_stop true --adaptive_sampling true \
        --max_new_tokens 96 --n_explore 2 --keep_rollouts true --batch_size 8 --chunk_size 8
    python benchmarks/humaneval_profiles.py outputs/humaneval_sweep

Prints Markdown: how many problems are done, the actions, f_0 and f_T, mean f by prefix index, the
distinct f-profiles (unsampled prefixes of the cheaper simulation shown as '-'), the rollouts'
endings and the cost.
"""

from __future__ import annotations

import argparse
import collections
import glob
import math
import os
import statistics
import sys

import datasets


def load(out_dir: str) -> datasets.Dataset:
    final = os.path.join(out_dir, "dataset")
    if os.path.isdir(final):
        return datasets.load_from_disk(final)
    parts = sorted(glob.glob(os.path.join(out_dir, "chunks", "[0-9]" * 5)))
    if not parts:
        sys.exit(f"no finished chunk in {out_dir}")
    return datasets.concatenate_datasets([datasets.load_from_disk(p) for p in parts])


def profile(scores: list[float]) -> str:
    return " ".join("-" if s is None or (isinstance(s, float) and math.isnan(s)) else f"{s:.2g}" for s in scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default="outputs/humaneval_sweep")
    args = parser.parse_args()
    ds = load(args.out_dir)
    rows = ds.to_list()
    n = len(rows)
    actions = collections.Counter(r["dart_action"] for r in rows)
    print(f"problems done: {n}\n")
    print("| action | problems |\n|---|---|")
    for a, c in actions.most_common():
        print(f"| `{a}` | {c} |")
    f = [r["dart_step_success"] for r in rows if r["dart_step_success"]]
    f0 = [s[0] for s in f if s[0] is not None and not math.isnan(s[0])]
    fT = [s[-1] for s in f if s[-1] is not None and not math.isnan(s[-1])]
    print(f"\nf_0 > 0 in {sum(x > 0 for x in f0)} of {len(f0)} problems (mean {statistics.mean(f0):.3f})" if f0 else "")
    print(f"f_T sampled in {len(fT)} problems, mean {statistics.mean(fT):.3f}" if fT else "f_T never sampled")
    longest = max(len(s) for s in f) if f else 0
    means = []
    for t in range(longest):
        vals = [s[t] for s in f if t < len(s) and s[t] is not None and not math.isnan(s[t])]
        means.append((t, len(vals), statistics.mean(vals) if vals else float("nan")))
    print("\n| prefix t | problems sampled there | mean f_t |\n|---|---|---|")
    for t, k, m in means:
        print(f"| {t} | {k} | {m:.3f} |")
    patterns = collections.Counter(profile(s) for s in f)
    print("\n| f-profile (f_0 .. f_T) | problems |\n|---|---|")
    for p, c in patterns.most_common(12):
        print(f"| {p} | {c} |")
    gaps = collections.Counter(r["dart_gap_step"] for r in rows if r["dart_gap_step"] is not None)
    if gaps:
        print("\ngap at step: " + ", ".join(f"{g}: {c}" for g, c in sorted(gaps.items())))
    endings: collections.Counter = collections.Counter()
    for r in rows:
        for ending, count in (r.get("dart_rollout_endings") or {}).items():
            endings[ending] += int(count or 0)
    if endings:
        print("\nrollout endings: " + ", ".join(f"{k}: {v}" for k, v in endings.most_common()))
    tokens = sum(int(r["dart_tokens_generated"] or 0) for r in rows)
    seconds = sum(float(r.get("dart_seconds") or 0) for r in rows)
    print(
        f"\ntokens generated: {tokens} ({tokens / n:.0f} per problem); adapter seconds summed over rows: {seconds:.0f}"
    )
    errors = collections.Counter(r["dart_error"] for r in rows if r["dart_action"] == "error")
    for reason, c in errors.most_common(5):
        print(f"- error x{c}: {reason[:160]}")


if __name__ == "__main__":
    main()
