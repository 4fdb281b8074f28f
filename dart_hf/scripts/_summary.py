"""What `dart-hf adapt` prints: one line of totals, or (`--summary table`, the demo) one line per problem."""

from __future__ import annotations

import os
from typing import Any


def print_header(n_rows: int, source: str, student: str, config: Any) -> None:
    """Before the run: what is adapted, for whom, with which budget."""
    print(f"DART: {n_rows} problems from {source!r}, student {os.path.basename(student)}")
    print(
        f"  n_sim={config.n_sim} n_explore={config.n_explore} max_new_tokens={config.max_new_tokens} seed={config.seed}"
    )


def print_line(stats: dict, out: str, num_processes: int) -> None:
    """After the run: actions, tokens, wall time, processes, where the outputs are."""
    print(
        f"actions: {stats['actions']}  tokens: {stats['tokens_generated']}  wall: {stats['wall_seconds']:.0f}s"
        f" ({num_processes} process{'es' if num_processes > 1 else ''}) -> {out}"
    )
    warning = (stats.get("on_policy") or {}).get("warning")
    if warning:
        print(f"WARNING: on-policy check: {warning}")


def _print_on_policy(stats: dict) -> None:
    from ..report.stats import on_policy_text

    text = on_policy_text(stats)
    if text:
        print(f"on-policy check: {text}")
    warning = (stats.get("on_policy") or {}).get("warning")
    if warning:
        print(f"WARNING: on-policy check: {warning}")


def print_table(adapted: Any, stats: dict, paths: dict) -> None:
    """After the run: one line per problem (action, gap found and planted, f_0..f_T), then the totals."""
    from ..report import endings_text, token_cap_warning

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
        from ..tasks.planted_gap import score_detection

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
    _print_on_policy(stats)
    print(f"outputs: {os.path.dirname(paths['report.html'])}/ -> open report.html in a browser")
