"""Gap search strategies (`DartConfig.gap_search`) against the full grid and against planted truth.

    python benchmarks/gap_search.py                      # 100 planted-gap problems + synthetic profiles
    python benchmarks/gap_search.py --n 40 --trials 300  # quicker
    python benchmarks/gap_search.py --task skill_transfer --replay --variants

Every strategy adapts the same problems of the --task (`dart_hf.tasks.PlantedGapTask`, or
`SkillTransferTask` with its shipped skill student) with the same shipped student and seed, in one run,
so each row's samples come from the same seeded streams: a strategy's gap compares with the grid's row
by row. For each strategy it reports generated tokens and wall time as a share of the grid's, the share
of rows whose gap agrees with the grid's (and, for the rows that disagree, who was right against the
planted truth), precision / recall / position error against the planted gap with Wilson intervals, and
false positives on control problems (rows without a planted gap). `--replay` generates the grid once and
replays every strategy on its rollouts (no wall time), with the floor of a forward scan; `--variants`
adds unshipped ideas to the replay (`VARIANTS`). Then the same strategies on synthetic success-rate
profiles (`benchmarks/sampling_cost.py`), in rollouts and in tokens. Prints Markdown tables, writes the
raw numbers to --out and a plot of token share against agreement and precision to --plot.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Optional

try:
    import dart_hf  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness import adapt_and_score, fmt, rate, timed_map  # benchmarks/ is on sys.path when run as a script

from dart_hf import DartAdapter, DartConfig
from dart_hf.backends.transformers import TransformersBackend
from dart_hf.study.stats import wilson_interval
from dart_hf.tasks.planted_gap import PlantedGapTask, score_detection
from dart_hf.tasks.student import planted_student

#: --task: the generated task and the shipped student it is measured with
TASKS = ("planted_gap", "skill_transfer")

BASE = dict(n_sim=4, temperature=0.7, gap_rule="drop", gap_margin=0.5, n_explore=0)

#: (label, DartConfig overrides); the grid comes first: every other row is measured against it
STRATEGIES = [
    ("grid", dict(gap_search="grid")),
    ("certified", dict(gap_search="certified")),
    ("sequential", dict(gap_search="sequential")),
    ("sequential, probe 2", dict(gap_search="sequential", gap_search_probe=2)),
    ("bisect", dict(gap_search="bisect")),
    ("bisect, probe 2", dict(gap_search="bisect", gap_search_probe=2)),
    ("scan", dict(gap_search="scan")),
    ("scan, probe 2", dict(gap_search="scan", gap_search_probe=2)),
]
TARGET = dict(token_share=0.25, agreement=0.95)


def task_problems(args: argparse.Namespace):
    """The --task's problems (`planted_gap`: the gap rows' truth; -1 on controls)."""
    if args.task == "skill_transfer":
        from dart_hf.tasks.skill_transfer import SkillTransferTask

        return SkillTransferTask().generate(args.n, seed=args.seed)
    return PlantedGapTask().generate(args.n, seed=args.seed)


def task_student(args: argparse.Namespace) -> str:
    """--student, or the shipped student of the --task."""
    if args.student:
        return args.student
    if args.task == "skill_transfer":
        from dart_hf.tasks.skill_student import skill_student

        return skill_student()
    return planted_student()


def run(args: argparse.Namespace) -> list[dict]:
    student = task_student(args)
    problems = task_problems(args)
    planted = list(problems["planted_gap"])
    backend = TransformersBackend(student, device="cpu", batch_size=args.batch_size)
    warm_up = DartConfig(**BASE, max_new_tokens=args.max_new_tokens, seed=args.seed)
    problems.select(range(2)).map(DartAdapter(backend, warm_up, progress=False), batched=True, desc="warm-up")
    results, grid = [], None  # the student is loaded and warm: no strategy pays for it
    for label, overrides in STRATEGIES:
        if args.only and label not in args.only and label != "grid":
            continue
        cfg = DartConfig(**BASE, **overrides, max_new_tokens=args.max_new_tokens, seed=args.seed)
        scored, out = adapt_and_score(problems, backend, cfg, desc=label)
        rollouts = sum(sum(s) for s in out["dart_step_samples"])
        row = result_row(label, scored, rollouts, planted, grid)
        grid = grid or row
        results.append(row)
        print(line(row, len(planted)), flush=True)
    mark_target(results)
    return results


def result_row(label: str, scored: dict, rollouts: int, planted: list[int], grid: Optional[dict]) -> dict:
    """One strategy's row: its scores (`adapt_and_score`'s dict) and its shares of the grid's (itself if None)."""
    row = {"strategy": label, **scored, "rollouts": rollouts}
    grid = grid or row
    row["token_share"] = row["tokens"] / grid["tokens"]
    row["rollout_share"] = rollouts / grid["rollouts"]
    row["time_share"] = None if row["seconds"] is None else row["seconds"] / grid["seconds"]
    row["agree"] = sum(a == b for a, b in zip(row["gaps"], grid["gaps"]))
    row["disagreements"] = who_was_right(row["gaps"], grid["gaps"], planted)
    return row


def replay(args: argparse.Namespace) -> list[dict]:
    """Every strategy replayed on the grid's own rollouts: one generation run, then no model at all.

    Sample j after prefix t is seeded by (example, prefix, j) whatever the strategy, so a strategy's
    draws are the grid's first draws at each prefix: replaying its plan against the grid's recorded
    outcomes gives the gap and the tokens a live run gives (up to float rounding in batched kernels).
    Wall time cannot be replayed; it is left out (None).
    """
    from dart_hf.gap_search import search_gap
    from dart_hf.rollouts import rollout_records

    problems = task_problems(args)
    planted = list(problems["planted_gap"])
    cache = os.path.splitext(args.out)[0] + ".grid.json"
    if os.path.exists(cache):  # the grid's outcomes from an earlier --replay with the same --out
        with open(cache) as f:
            saved = json.load(f)
        grids = [{int(t): [tuple(x) for x in v] for t, v in g.items()} for g in saved["grids"]]
        seconds, live_tokens, live_gaps = saved["seconds"], saved["tokens"], saved["gaps"]
    else:
        backend = TransformersBackend(task_student(args), device="cpu", batch_size=args.batch_size)
        cfg = DartConfig(
            **BASE, gap_search="grid", keep_rollouts=True, max_new_tokens=args.max_new_tokens, seed=args.seed
        )
        out, seconds = timed_map(problems, DartAdapter(backend, cfg, progress=False), desc="grid")
        grids = []  # per row: t -> [(correct, tokens)] in sample order
        for value, samples in zip(out["dart_rollouts"], out["dart_step_samples"]):
            grid = {t: [None] * n for t, n in enumerate(samples)}
            for r in rollout_records(value):
                if r["phase"] == "sim":
                    grid[r["prefix_index"]][r["sample"]] = (r["correct"], r["tokens"])
            grids.append(grid)
        live_tokens, live_gaps = sum(out["dart_tokens_generated"]), list(out["dart_gap_step"])
        os.makedirs(os.path.dirname(cache) or ".", exist_ok=True)
        with open(cache, "w") as f:
            json.dump({"grids": grids, "seconds": seconds, "tokens": live_tokens, "gaps": live_gaps}, f)
    results, grid_row = [], None
    plans = [(label, overrides, search_gap) for label, overrides in STRATEGIES]
    if args.variants:
        plans += [(label, {}, plan) for label, plan in VARIANTS.items()]
    for label, overrides, plan in plans:
        config = DartConfig(**BASE, **overrides, max_new_tokens=args.max_new_tokens, seed=args.seed)
        detected, tokens, rollouts = [], 0, 0
        for grid in grids:
            drawn, gap = _replay_row(plan(len(grid) - 1, config), grid)
            if gap is not None and drawn[gap - 1] < config.n_sim:  # the adapter's top-up before exploring
                drawn[gap - 1] = config.n_sim
            detected.append(-1 if gap is None else gap)
            tokens += sum(tok for t, n in drawn.items() for _, tok in grid[t][:n])
            rollouts += sum(drawn.values())
        scored = {
            **score_detection(planted, detected),
            "tokens": tokens,
            "seconds": seconds if grid_row is None else None,  # wall time cannot be replayed
            "gaps": detected,
        }
        row = result_row(label, scored, rollouts, planted, grid_row)
        if grid_row is None:
            grid_row = row
            assert tokens == live_tokens and detected == live_gaps, "the replayed grid is the live grid"
            row["time_share"] = None
        results.append(row)
        print(line(row, len(planted)), flush=True)
    mark_target(results)
    results[0]["scan_floor"] = floor = scan_floor(grids, results[0]["gaps"])
    print(
        f"\nfloor of a forward scan with 1-rollout probes that reports the grid's gap: {floor['total']:.2f} of the "
        f"grid's tokens (probes {floor['probes']:.2f}, exploration's top-up of the pre-gap prefix {floor['top_up']:.2f}, "
        f"second rollout at the gap {floor['confirm']:.2f})"
    )
    return results


def scan_floor(grids: list[dict], gaps: list[int]) -> dict[str, float]:
    """Tokens any forward scan probing 1 rollout per prefix must draw to report the grid's gap, as a share of the grid's.

    It reads the grid's gap (no strategy can): one rollout at each prefix 1..gap (1..T without a gap), the
    n_sim rollouts the adapter draws at the pre-gap prefix before exploring, and a second rollout at the gap
    (`drop` 0.5 at n_sim 4 needs two failures there). Prefix 0 is never counted.
    """
    parts = dict(probes=0, top_up=0, confirm=0)
    full = 0
    for grid, gap in zip(grids, gaps):
        last = len(grid) - 1 if gap < 0 else gap
        parts["probes"] += sum(grid[t][0][1] for t in range(1, last + 1))
        if gap > 0:
            parts["top_up"] += sum(tok for _, tok in grid[gap - 1])
            parts["confirm"] += grid[gap][1][1]
        full += sum(tok for samples in grid.values() for _, tok in samples)
    shares = {key: value / full for key, value in parts.items()}
    return {**shares, "total": sum(shares.values())}


def _replay_row(plan, grid: dict) -> tuple[dict[int, int], object]:
    """Drive one row's plan against the grid's recorded outcomes; returns rollouts drawn per prefix and the gap."""
    from dart_hf.backends.base import Completion
    from dart_hf.simulation import Rollout

    drawn = dict.fromkeys(grid, 0)
    try:
        jobs = next(plan)
        while True:
            got = []
            for job in jobs:
                assert job.first == drawn[job.t], "a strategy continues each prefix's stream"
                outcomes = grid[job.t][job.first : job.first + job.n]
                got.append([Rollout(job.t, Completion("", tok), None, ok) for ok, tok in outcomes])
                drawn[job.t] += job.n
            jobs = plan.send(got)
    except StopIteration as stop:
        return drawn, stop.value[1]


# ---------------------------------------------------------------------------------------------- variants
# Ideas measured on the replay (--variants) and not shipped as strategies; docs/benchmarks.md has their numbers.
def _variant(search):
    """A plan like `search_gap`'s from a strategy body `search(sim, config)`."""

    def plan(n_steps: int, config: DartConfig):
        sim = {t: [] for t in range(n_steps + 1)}
        gap = yield from search(sim, config)
        return sim, gap

    return plan


def _next_draw(order):
    """What `gap_search._confirm` draws next for pair (t-1, t): `alternate` (both prefixes, as `sequential`
    confirms), `after` (t until full, then t-1) or `before` (t-1 until full, then t: what `scan` does)."""
    from dart_hf.gap_search import _before_first

    if order == "before":
        return _before_first
    if order == "alternate":
        return lambda sim, t, n: {p: min(len(sim[p]) + 1, n) for p in (t - 1, t)}

    def after(sim, t, n):
        p = t if len(sim[t]) < n else t - 1
        return {p: len(sim[p]) + 1}

    return after


def _pair(sim, t, config, order):
    """Exact decision of pair (t-1, t), one rollout per round, in the given order."""
    from dart_hf.gap_search import _confirm

    return (yield from _confirm(sim, t, config, _next_draw(order)))


def _scan_variant(order="before", second_chance=False):
    """`scan` with another confirmation order, or passing a failed probe when the next rollout succeeds."""
    from dart_hf.gap_search import _top_up

    def search(sim, config):
        for t in range(1, len(sim)):
            yield from _top_up(sim, {t: 1})
            if sim[t][0].correct:
                continue
            if second_chance:
                yield from _top_up(sim, {t: 2})
                if sim[t][1].correct:
                    continue
            if (yield from _pair(sim, t, config, order)):
                return t
        return None

    return _variant(search)


def _skip_ahead(sim, config):
    """Probe every other prefix (2, 4, ..., and T); a failed probe at t looks at the pairs ending at t-1 and t
    (1 rollout at each, confirmed like `scan`). Misses a gap at t-1 when f has recovered by t."""
    from dart_hf.gap_search import _top_up

    last = len(sim) - 1
    t = min(2, last)
    while t >= 1:
        yield from _top_up(sim, {t: max(1, len(sim[t]))})
        if not sim[t][0].correct or t == last:
            for c in range(max(1, t - 1), t + 1):
                yield from _top_up(sim, {c: max(1, len(sim[c]))})
                if not sim[c][0].correct and (yield from _pair(sim, c, config, "before")):
                    return c
        if t == last:
            return None
        t = min(t + 2, last)
    return None


#: label -> plan; replayed with --variants
VARIANTS = {
    "variant: scan, alternating confirmation": _scan_variant("alternate"),
    "variant: scan, confirming at t first": _scan_variant("after"),
    "variant: scan, second chance": _scan_variant("before", second_chance=True),
    "variant: skip-ahead (every other prefix)": _variant(_skip_ahead),
}


def who_was_right(detected: list[int], grid: list[int], planted: list[int]) -> dict[str, int]:
    """Rows where the strategy's gap differs from the grid's, by which of them matches the planted gap."""
    truth = [p if p > 0 else -1 for p in planted]
    diff = [(d, g, p) for d, g, p in zip(detected, grid, truth) if d != g]
    return {
        "strategy right": sum(d == p for d, _, p in diff),
        "grid right": sum(g == p for _, g, p in diff),
        "neither": sum(d != p and g != p for d, g, p in diff),
    }


def mark_target(results: list[dict]) -> None:
    """The issue's bar: <= 0.25 of the grid's tokens, >= 0.95 agreement, precision and recall inside or above
    the grid's intervals (point estimate >= the grid's lower bound)."""
    grid = results[0]
    p_low = wilson_interval(grid["hits"], grid["n_detected"])[0]
    r_low = wilson_interval(grid["hits"], grid["n_planted"])[0]
    for r in results:
        r["meets_target"] = bool(
            r["token_share"] <= TARGET["token_share"]
            and r["agree"] / len(r["gaps"]) >= TARGET["agreement"]
            and r["precision"] >= p_low
            and r["recall"] >= r_low
        )


HEADER = (
    "| strategy | tokens | tokens / grid | rollouts / grid | wall time / grid | gaps agree with grid [95% CI] "
    "| disagreements: strategy right / grid right / neither | precision [95% CI] | recall [95% CI] "
    "| position error | false positives on controls |\n|---|---:|---:|---:|---:|---|---|---|---|---:|---:|"
)


def line(r: dict, n_rows: int) -> str:
    d = r["disagreements"]
    return (
        f"| {r['strategy']} | {r['tokens']:,} | {r['token_share']:.2f} | {r['rollout_share']:.2f} | "
        f"{fmt(r['time_share'])} | {rate(r['agree'], n_rows)} | "
        f"{d['strategy right']} / {d['grid right']} / {d['neither']} | {rate(r['hits'], r['n_detected'])} | "
        f"{rate(r['hits'], r['n_planted'])} | {fmt(r['position_error'])} | "
        f"{r['false_positives']}/{r['n_controls']} |"
    )


def plot(results: list[dict], path: str) -> None:
    """Token share (x) against agreement with the grid and precision (y), one point pair per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 5), sharex=True)
    grid = results[0]
    p_low, p_high = wilson_interval(grid["hits"], grid["n_detected"])
    for ax, (key, title) in zip(axes, [("agreement", "gap agrees with the grid"), ("precision", "precision")]):
        for i, r in enumerate(results):
            n = len(r["gaps"]) if key == "agreement" else r["n_detected"]
            k = r["agree"] if key == "agreement" else r["hits"]
            low, high = wilson_interval(k, n)
            y = k / n
            yerr = [[max(y - low, 0)], [max(high - y, 0)]]
            marker = "osD^v<>p*hX"[i % 10]
            filled = "variant" not in r["strategy"]  # unshipped ideas are hollow
            ax.errorbar(
                r["token_share"],
                y,
                yerr=yerr,
                fmt=marker,
                color=f"C{i % 10}",
                mfc=None if filled else "none",
                capsize=3,
                label=r["strategy"],
            )
        ax.axvline(TARGET["token_share"], color="grey", linestyle=":", label="target: 0.25 of the tokens")
        if key == "agreement":
            ax.axhline(TARGET["agreement"], color="grey", linestyle="--", label="target: 0.95 agreement")
        else:
            ax.axhspan(p_low, p_high, color="grey", alpha=0.2, label="grid's 95% interval")
        ax.set_xlabel("generated tokens / grid's")
        ax.set_title(title)
        ax.set_xlim(0, 1.1)
    task = "skill-transfer" if results[0].get("task") == "skill_transfer" else "planted-gap"
    fig.suptitle(f"Gap search strategies on {len(grid['gaps'])} {task} problems (n_sim 4, one run)")
    labels = {}  # one legend for both panels, below them
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            labels.setdefault(label, handle)
    fig.legend(labels.values(), labels.keys(), loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.01 + 0.03 * math.ceil(len(labels) / 4), 1, 1))
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=TASKS, default="planted_gap", help="generated task (default: %(default)s)")
    parser.add_argument("--n", type=int, default=100, help="problems of the task (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max_new_tokens", type=int, default=96)
    parser.add_argument("--batch_size", type=int, default=256, help="generation batch size")
    parser.add_argument("--student", default=None, help="default: the task's shipped student")
    parser.add_argument("--only", nargs="*", default=None, help="strategies to run besides the grid")
    parser.add_argument("--trials", type=int, default=2000, help="outcome grids per synthetic profile")
    parser.add_argument("--out", default="outputs/gap_search.json")
    parser.add_argument("--plot", default="outputs/gap_search.png")
    parser.add_argument(
        "--replay", action="store_true", help="one grid run with its rollouts kept; every strategy replayed on them"
    )
    parser.add_argument(
        "--variants", action="store_true", help="with --replay: also replay the unshipped ideas (VARIANTS)"
    )
    parser.add_argument("--replot", action="store_true", help="only redraw --plot (and the table) from --out")
    args = parser.parse_args(argv)
    if args.replot:
        with open(args.out) as f:
            results = json.load(f)["results"]
        print(HEADER)
        print("\n".join(line(r, len(r["gaps"])) for r in results))
        plot(results, args.plot)
        return 0
    print(HEADER)
    if args.variants and not args.replay:
        parser.error("--variants needs --replay")
    results = replay(args) if args.replay else run(args)
    for r in results:
        r["task"] = args.task
    best = [r["strategy"] for r in results if r["meets_target"] and r["strategy"] != "grid"]
    print(
        f"\nmeets the target (<= 0.25 tokens, >= 0.95 agreement, precision/recall within the grid's): {best or 'none'}"
    )
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"args": vars(args), "results": results}, f, indent=2)
    plot(results, args.plot)
    print(f"wrote {args.out} and {args.plot}")

    from sampling_cost import APPROXIMATE, SWITCHES, profile_table  # benchmarks/ is on sys.path as a script

    print(f"\nSynthetic profiles (n_sim 4, drop 0.5, {args.trials} outcome grids each): rollouts / grid (agreement)\n")
    print("\n".join(profile_table(4, args.trials, args.seed)))
    columns = {"certified": SWITCHES["(a)+(b) = certified"], **APPROXIMATE}
    if args.variants:
        columns.update(VARIANTS)
    print(
        "\nThe same profiles, tokens: a rollout after prefix t weighs T + 1 - t, and the adapter's top-up of the "
        "pre-gap prefix is counted: tokens / grid (agreement)\n"
    )
    print("\n".join(profile_table(4, args.trials, args.seed, columns, cost="tokens", top_up=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
