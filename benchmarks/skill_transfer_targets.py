"""Does the skill-transfer task put the student where it should be, before any training?

    python benchmarks/skill_transfer_targets.py              # the shipped student, 100 problems
    python benchmarks/skill_transfer_targets.py --n 40 --student path/to/student

Runs DART's full simulation grid (n_sim 4, temperature 0.7, no exploration) over generated
skill-transfer problems and prints, for skill problems, the student's mean success f_0 from the bare
problem, f right after the teaching step (f_teach) and f right after the leap (f_leap), with the
targets the task must meet (f_0 <= 0.1, f_teach >= 0.7, f_leap <= 0.1), the same profile for the
plain control problems, and how often DART's detected gap is the leap, each rate with a 95% Wilson
interval over the pooled rollouts. Writes the raw numbers to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

try:
    import dart_hf  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dart_hf import DartAdapter, DartConfig
from dart_hf.backends.transformers import TransformersBackend
from dart_hf.study.stats import wilson_interval
from dart_hf.tasks.skill_student import skill_student
from dart_hf.tasks.skill_transfer import SkillTransferTask

TARGETS = {"f_0": ("<=", 0.1), "f_teach": (">=", 0.7), "f_leap": ("<=", 0.1)}


def profile(rows, n_sim: int) -> dict[str, dict]:
    """Mean f at the task's marked steps, per kind of problem: (mean, problems, 95% Wilson interval).

    The interval pools the `n_sim` rollouts of every problem (successes out of problems x n_sim); the
    rollouts of one problem are not independent, so it is somewhat narrower than a per-problem one.
    """
    groups: dict[str, dict[str, list[float]]] = {"skill": {}, "plain, with leap": {}, "plain, no leap": {}}
    for row in rows:
        f, teach, leap = row["dart_step_success"], row["teach_step"], row["leap_step"]
        kind = "skill" if teach > 0 else ("plain, with leap" if leap > 0 else "plain, no leap")
        points = {"f_0": f[0], "f_T": f[-1]}
        if teach > 0:
            points["f_teach"] = f[teach]
        if leap > 0:
            points["f_before_leap"] = f[leap - 1]
            points["f_leap"] = f[leap]
        for key, value in points.items():
            groups[kind].setdefault(key, []).append(value)
    out: dict[str, dict] = {}
    for kind, g in groups.items():
        if g:
            out[kind] = {
                k: (sum(v) / len(v), len(v), wilson_interval(round(sum(v) * n_sim), len(v) * n_sim))
                for k, v in g.items()
            }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="problems (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n_sim", type=int, default=4)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--max_new_tokens", type=int, default=96)
    parser.add_argument("--student", default=None, help="default: the shipped skill-transfer student")
    parser.add_argument("--out", default="outputs/skill_transfer_targets.json")
    args = parser.parse_args(argv)

    student = args.student or skill_student()
    problems = SkillTransferTask().generate(args.n, seed=args.seed)
    cfg = DartConfig(
        n_sim=args.n_sim,
        n_explore=0,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        early_stop=False,
        adaptive_sampling=False,
        seed=args.seed,
    )
    backend = TransformersBackend(student, device="cpu")
    start = time.perf_counter()
    out = problems.map(
        DartAdapter(backend, cfg, progress=False), batched=True, batch_size=len(problems), load_from_cache_file=False
    )
    seconds = time.perf_counter() - start
    prof = profile(out, args.n_sim)
    columns = ["f_0", "f_teach", "f_before_leap", "f_leap", "f_T"]
    print(f"student: {student}\n{args.n} problems (seed {args.seed}), n_sim {args.n_sim}, T {args.temperature}\n")
    print("| problems | n | " + " | ".join(columns) + " |\n|---|---|" + "---|" * len(columns))
    for kind, p in prof.items():
        n = max(c for _, c, _ in p.values())
        cells = [f"{p[c][0]:.2f} [{p[c][2][0]:.2f}, {p[c][2][1]:.2f}]" if c in p else "—" for c in columns]
        print(f"| {kind} | {n} | " + " | ".join(cells) + " |")
    skill = prof.get("skill", {})
    print("\n| target (skill problems) | measured [95% Wilson] | met | whole interval meets it |\n|---|---|---|---|")
    verdicts = {}
    for key, (op, bound) in TARGETS.items():
        value, _, (low, high) = skill.get(key, (float("nan"), 0, (float("nan"), float("nan"))))
        met = value <= bound if op == "<=" else value >= bound
        sure = high <= bound if op == "<=" else low >= bound
        verdicts[key] = {"value": value, "interval": [low, high], "target": f"{op} {bound}", "met": bool(met)}
        print(
            f"| {key} {op} {bound} | {value:.2f} [{low:.2f}, {high:.2f}] | {'yes' if met else 'NO'} | {'yes' if sure else 'no'} |"
        )
    skill_rows = [r for r in out if r["teach_step"] > 0]
    print("\n| skill word | problems | f_0 | f_teach | f_leap |\n|---|---|---|---|---|")
    for word in sorted({r["skill"] for r in skill_rows}):
        mine = [r for r in skill_rows if r["skill"] == word]
        cells = []
        for at in (lambda r: 0, lambda r: r["teach_step"], lambda r: r["leap_step"]):
            f = [r["dart_step_success"][at(r)] for r in mine]
            low, high = wilson_interval(round(sum(f) * args.n_sim), len(f) * args.n_sim)
            cells.append(f"{sum(f) / len(f):.2f} [{low:.2f}, {high:.2f}]")
        print(f"| {word} | {len(mine)} | " + " | ".join(cells) + " |")
    hits = sum(r["dart_gap_step"] == r["leap_step"] for r in skill_rows)
    low, high = wilson_interval(hits, len(skill_rows))
    print(
        f"\nDART's gap is the leap on {hits}/{len(skill_rows)} skill problems ({low:.2f}-{high:.2f}); "
        f"{sum(out['dart_tokens_generated']):,} tokens, {seconds:.0f} s"
    )
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"args": vars(args), "student": student, "profile": prof, "targets": verdicts}, f, indent=2)
    print(f"wrote {args.out}")
    return 0 if all(v["met"] for v in verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
