"""Gap detection against planted truth, and what the cheaper-simulation switches save on data with gaps.

    python benchmarks/gap_detection.py                 # the planted-gap student on 100 planted-gap problems
    python benchmarks/gap_detection.py --n 40 --only n_sim temperature

Every setting adapts the same problems with the same cached planted-gap student (`dart_hf.tasks`).
Against the planted gap step of each expert solution it reports precision, recall, position error and
the false-positive rate on control problems (no planted gap), plus generated tokens and wall time.
Settings that only switch on `early_stop` / `adaptive_sampling` are also compared with the full grid
at the same seed: the share of rows whose gap agrees and the share of the full grid's tokens they
generated. Prints a Markdown table and writes it, with the raw numbers, to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

try:
    import dart_hf  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness import adapt_and_score, fmt, rate  # benchmarks/ is on sys.path when run as a script

from dart_hf import DartConfig
from dart_hf.backends.transformers import TransformersBackend
from dart_hf.tasks.planted_gap import PlantedGapTask
from dart_hf.tasks.student import planted_student

BASE = dict(
    n_sim=4,
    temperature=0.7,
    gap_rule="drop",
    gap_margin=0.5,
    gap_threshold=0.5,
    early_stop=False,
    adaptive_sampling=False,
)

#: (group, label, overrides of BASE)
SETTINGS = [
    ("base", "n_sim 4, T 0.7, drop 0.5, full grid", {}),
    ("n_sim", "n_sim 2", dict(n_sim=2)),
    ("n_sim", "n_sim 8", dict(n_sim=8)),
    ("temperature", "T 0.3", dict(temperature=0.3)),
    ("temperature", "T 1.0", dict(temperature=1.0)),
    ("margin", "drop margin 0.25", dict(gap_margin=0.25)),
    ("margin", "drop margin 0.75", dict(gap_margin=0.75)),
    ("rule", "threshold 0.5", dict(gap_rule="threshold")),
    ("switches", "early_stop", dict(early_stop=True)),
    ("switches", "adaptive_sampling", dict(adaptive_sampling=True)),
    ("switches", "early_stop + adaptive_sampling", dict(early_stop=True, adaptive_sampling=True)),
    ("switches", "n_sim 8, early_stop + adaptive", dict(n_sim=8, early_stop=True, adaptive_sampling=True)),
]


def run(args: argparse.Namespace) -> list[dict]:
    student = args.student or planted_student()
    problems = PlantedGapTask().generate(args.n, seed=args.seed)
    planted = problems["planted_gap"]
    backend = TransformersBackend(student, device="cpu", batch_size=args.batch_size)
    results, full_grids = [], {}
    for group, label, overrides in SETTINGS:
        if args.only and group not in args.only and group != "base":
            continue
        cfg = DartConfig(**{**BASE, **overrides}, n_explore=0, max_new_tokens=args.max_new_tokens, seed=args.seed)
        scored, out = adapt_and_score(problems, backend, cfg, desc=label)
        detected, tokens = scored.pop("gaps"), scored["tokens"]
        row = {"group": group, "setting": label, **scored}
        row["f0"] = sum(s[0] for s in out["dart_step_success"]) / len(out)
        switches = cfg.early_stop or cfg.adaptive_sampling
        key = json.dumps(
            {k: getattr(cfg, k) for k in BASE if k not in ("early_stop", "adaptive_sampling")}, sort_keys=True
        )
        if group == "base":
            row["aligned_f"] = aligned_profile(out["dart_step_success"], planted)
        if not switches:
            full_grids[key] = (detected, tokens)
        elif key in full_grids:
            grid_gaps, grid_tokens = full_grids[key]
            row["agreement"] = sum(a == b for a, b in zip(detected, grid_gaps)) / len(detected)
            row["token_share"] = tokens / grid_tokens
        results.append(row)
        print(_line(row), flush=True)
    return results


def aligned_profile(scores: list[list[float]], planted: list[int]) -> dict[str, float]:
    """Mean f before the planted step, at it, and after it (does the planted step make success fall?)."""
    at = {"f_(g-1)": [], "f_g": [], "f_(g+1)": [], "f_T": []}
    for f, g in zip(scores, planted):
        if g > 0:
            at["f_(g-1)"].append(f[g - 1])
            at["f_g"].append(f[g])
            at["f_(g+1)"].append(f[g + 1])
            at["f_T"].append(f[-1])
    controls = [x for f, g in zip(scores, planted) if g <= 0 for x in f]
    out = {k: sum(v) / len(v) for k, v in at.items() if v}
    out["controls, all t"] = sum(controls) / len(controls) if controls else float("nan")
    return out


HEADER = (
    "| setting | precision [95% CI] | recall [95% CI] | position error | false positives on controls | mean f_0 "
    "| tokens | s | gaps agree with full grid | tokens / full grid |\n|---|---|---|---|---|---|---|---|---|---|"
)


def _line(r: dict) -> str:
    return (
        f"| {r['setting']} | {rate(r['hits'], r['n_detected'])} | {rate(r['hits'], r['n_planted'])} | "
        f"{fmt(r['position_error'])} | {r['false_positives']}/{r['n_controls']} | {fmt(r['f0'])} | "
        f"{r['tokens']:,} | {r['seconds']:.0f} | {fmt(r.get('agreement'))} | {fmt(r.get('token_share'))} |"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="planted-gap problems (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max_new_tokens", type=int, default=96)
    parser.add_argument("--batch_size", type=int, default=256, help="generation batch size")
    parser.add_argument("--student", default=None, help="default: the cached planted-gap student")
    parser.add_argument("--only", nargs="*", default=None, help="groups to run: n_sim temperature margin rule switches")
    parser.add_argument("--out", default="outputs/gap_detection.json")
    args = parser.parse_args(argv)
    print(HEADER)
    results = run(args)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"args": vars(args), "results": results}, f, indent=2)
    base = next((r for r in results if r["group"] == "base"), None)
    if base:
        print(
            "\nmean f around the planted step (base setting): "
            + ", ".join(f"{k} = {v:.2f}" for k, v in base["aligned_f"].items())
        )
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
