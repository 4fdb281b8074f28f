"""Summarize a HumanEval DART sweep (finished, or the chunks done so far): actions, f-profiles, cost.

    STUDENT="$(python -c 'from dart_hf.local_models import smollm2_gguf_path as p; print(p())')"
    OMP_NUM_THREADS=1 nice -n 10 dart-hf adapt --dataset_name humaneval --student "$STUDENT" \
        --output_dir outputs/humaneval_sweep --n_sim 4 --gap_search certified --max_steps 3 \
        --max_new_tokens 160 --n_explore 2 --keep_rollouts true --batch_size 8 --chunk_size 8 \
        --generation_batch_size 64
    python benchmarks/humaneval_profiles.py outputs/humaneval_sweep

Prints Markdown: how many problems are done; the actions with Wilson 95% intervals; the
distributions of f_0 (the student alone), f_1 (after the prompt: signature and docstring) and f_T
(after the whole expert solution); mean f by prefix; the distinct f-profiles (prefixes the cheaper
simulation did not sample shown as '-'); how rollouts ended; tokens and time.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import math
import os
import statistics
import sys

import datasets

from dart_hf.study.stats import wilson_interval


def load(out_dir: str) -> datasets.Dataset:
    final = os.path.join(out_dir, "dataset")
    if os.path.isdir(final):
        return datasets.load_from_disk(final)
    parts = sorted(glob.glob(os.path.join(out_dir, "chunks", "[0-9]" * 5)))
    if not parts:
        sys.exit(f"no finished chunk in {out_dir}")
    return datasets.concatenate_datasets([datasets.load_from_disk(p) for p in parts])


def sampled(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def profile(scores: list[float]) -> str:
    return " ".join(f"{s:.2g}" if sampled(s) else "-" for s in scores)


def rate(k: int, n: int) -> str:
    lo, hi = wilson_interval(k, n)
    return f"{k}/{n} = {k / n:.2f} [{lo:.2f}, {hi:.2f}]" if n else "0/0"


def distribution(name: str, values: list[float], n_rows: int) -> None:
    counts = collections.Counter(round(v, 3) for v in values)
    cells = ", ".join(f"{v:g}: {c}" for v, c in sorted(counts.items()))
    positive = sum(v > 0 for v in values)
    mean = f"{statistics.mean(values):.3f}" if values else "-"
    print(f"| {name} | {len(values)} of {n_rows} | {mean} | {rate(positive, len(values))} | {cells} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default="outputs/humaneval_sweep")
    args = parser.parse_args()
    rows = load(args.out_dir).to_list()
    n = len(rows)
    print(f"problems done: {n}\n")
    actions = collections.Counter(r["dart_action"] for r in rows)
    print("| action | problems (Wilson 95%) |\n|---|---|")
    for a, c in actions.most_common():
        print(f"| `{a}` | {rate(c, n)} |")

    f = [r["dart_step_success"] or [] for r in rows]
    print("\n| f | sampled in | mean | problems with f > 0 (Wilson 95%) | distribution (value: problems) |")
    print("|---|---|---|---|---|")
    distribution("f_0 (student alone)", [s[0] for s in f if s and sampled(s[0])], n)
    distribution("f_1 (after the prompt)", [s[1] for s in f if len(s) > 1 and sampled(s[1])], n)
    distribution("f_T (after the whole solution)", [s[-1] for s in f if len(s) > 1 and sampled(s[-1])], n)

    # by number of steps T: prefix t means the same thing only among problems with the same T
    print("\n| steps T | prefix t | problems sampled there | mean f_t |\n|---|---|---|---|")
    for T in sorted({len(s) - 1 for s in f if s}):
        same = [s for s in f if len(s) - 1 == T]
        for t in range(T + 1):
            vals = [s[t] for s in same if sampled(s[t])]
            mean = f"{statistics.mean(vals):.3f}" if vals else "-"
            print(f"| {T} ({len(same)} problems) | {t} | {len(vals)} | {mean} |")
    patterns = collections.Counter(profile(s) for s in f)
    print("\n| f-profile (f_0 .. f_T) | problems |\n|---|---|")
    for p, c in patterns.most_common(15):
        print(f"| {p} | {c} |")
    gaps = collections.Counter(r["dart_gap_step"] for r in rows if r["dart_gap_step"] is not None)
    if gaps:
        named = {-1: "none"}
        print("\ngap at step: " + ", ".join(f"{named.get(g, g)}: {c}" for g, c in sorted(gaps.items())))

    endings: collections.Counter = collections.Counter()
    for r in rows:
        for ending, count in (r.get("dart_rollout_endings") or {}).items():
            endings[ending] += int(count or 0)
    if endings:
        print("\nrollout endings: " + ", ".join(f"{k}: {v}" for k, v in endings.most_common()))
    tokens = sum(int(r["dart_tokens_generated"] or 0) for r in rows)
    seconds = sum(float(r.get("dart_seconds") or 0) for r in rows)
    print(f"\ntokens generated: {tokens} ({tokens / max(n, 1):.0f} per problem)")
    print(f"adapter seconds summed over rows: {seconds:.0f}")
    stats_path = os.path.join(args.out_dir, "stats.json")
    if os.path.exists(stats_path):
        with open(stats_path) as fh:
            stats = json.load(fh)
        wall = stats.get("wall_seconds") or stats.get("seconds")
        if wall:
            print(f"wall seconds (stats.json): {float(wall):.0f}")
    errors = collections.Counter(r["dart_error"] for r in rows if r["dart_action"] == "error")
    for reason, c in errors.most_common(5):
        print(f"- error x{c}: {reason[:160]}")


if __name__ == "__main__":
    main()
