"""The numbers behind `stats.json`, the dataset card and the report: what DART did and what it cost.

After `dataset.map(DartAdapter(...))` a user needs to know, at a glance, how many rows were
imitated, explored, fell back or failed; where the student's success collapses along the expert
solutions; how many tokens and seconds it took. `compute_stats` reduces the `dart_*` columns to one
JSON-safe dict; `endings_text` and `token_cap_warning` phrase two of its facts for people, once,
for both the HTML report and the Hub card.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ..formatting import is_num, number
from ..schema import ACTIONS, ROLLOUT_ENDING_MEANINGS, Action, is_usable
from .rows import json_safe, read_rows, step_scores

#: Relative step positions t/T are rounded to the nearest of these (see `compute_stats`).
POSITION_BINS = (0.0, 0.25, 0.5, 0.75, 1.0)

#: Relative gap positions gap/T fall in one of these half-open intervals (lo, hi].
GAP_BINS = ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))

#: Rollout endings, as in `dart_rollout_endings`, with the words the report and cards use for them.
ENDINGS = ROLLOUT_ENDING_MEANINGS

#: Template tokens after the student's end-of-turn are mentioned when they cost more than this (nats) beyond it.
ABS_NATS = 1.0

#: Share of rollouts ending at the token cap from which the report warns that max_new_tokens is too small.
TOKEN_CAP_WARNING = 0.25


def gap_bin_label(lo: float, hi: float) -> str:
    """The key of one `GAP_BINS` interval in `gap_histogram["relative"]`, e.g. "(0.5, 0.75]"."""
    return f"({lo:g}, {hi:g}]"


def _position_bin(t: int, T: int) -> float:
    """Nearest of `POSITION_BINS` to t/T (halves round up, so 1/8 -> 0.25)."""
    return math.floor(4 * t / T + 0.5) / 4


def _gap_bin(gap: int, T: int) -> str:
    rel = gap / T
    for lo, hi in GAP_BINS:
        if lo < rel <= hi:
            return gap_bin_label(lo, hi)
    return gap_bin_label(*GAP_BINS[-1])  # rel > 1 cannot happen for a valid row


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def endings_text(stats: Mapping[str, Any]) -> str | None:
    """One line on how the rollouts ended ("12 stopped after a \\boxed{} answer (40%), ..."), or None.

    Shared by the HTML report and the dataset card; plain text (escape it for HTML).
    """
    endings = stats.get("rollout_endings")
    if not isinstance(endings, Mapping):
        return None
    total = sum(int(endings.get(k) or 0) for k in ENDINGS)
    if not total:
        return None
    counts = {k: int(endings.get(k) or 0) for k in ENDINGS}
    parts = [f"{number(counts[k])} {words} ({counts[k] / total:.0%})" for k, words in ENDINGS.items()]
    return f"{number(total)} rollouts: " + ", ".join(parts)


def on_policy_text(stats: Mapping[str, Any]) -> str | None:
    """One line on the on-policy check (`stats["on_policy"]`, from `dart_hf.onpolicy`), or None when it did not run.

    Shared by the HTML report and the dataset card; plain text (escape it for HTML). Its warning is
    `stats["on_policy"]["warning"]`.
    """
    check = stats.get("on_policy")
    if not isinstance(check, Mapping):
        return None
    if not check.get("checked"):
        return f"not checked: {check.get('reason') or 'unknown reason'}"
    rows = int(check.get("rows") or 0)
    if not rows:
        return "no row has student-written text to check"
    trained, sampled = check.get("nll_per_token_trained"), check.get("nll_per_token_sampled")
    text = (
        f"{number(rows)} rows with student text ({number(int(check.get('tokens') or 0))} tokens) cost the student "
        f"{number(trained, 3)} nats/token in the training format"
    )
    if is_num(sampled):
        text += f" vs {number(sampled, 3)} when sampled"
    text += f"; {number(int(check.get('disagreeing') or 0))} disagree ({check.get('tolerance')})"
    if is_num(check.get("end_nll_mean")):
        text += f"; the end-of-turn token after the student's text costs {number(check['end_nll_mean'], 4)} nats"
    suffix = check.get("suffix_nll_mean")
    if is_num(suffix) and (not is_num(check.get("end_nll_mean")) or suffix - check["end_nll_mean"] > ABS_NATS):
        text += (
            f", the template's tokens from it to the end {number(suffix, 2)} nats (the template puts tokens after "
            "the end of turn that the student never generates, and SFT trains on them)"
        )
    if check.get("unrecorded"):
        text += f"; {number(int(check['unrecorded']))} without log-probs recorded at sampling (not compared)"
    return text


def on_policy_worst(stats: Mapping[str, Any]) -> list[dict[str, str]]:
    """The worst rows of the on-policy check as formatted cells (row, tokens, NLLs, gap, worst token), worst first."""
    check = stats.get("on_policy")
    if not isinstance(check, Mapping) or not check.get("checked"):
        return []
    out = []
    for w in check.get("worst") or []:
        out.append(
            {
                "row": number(w.get("row")),
                "tokens": f"{number(w.get('tokens_trained'))} / {number(w.get('tokens_sampled'))}",
                "nll": f"{number(w.get('nll_trained'), 3)} / {number(w.get('nll_sampled'), 3)}",
                "gap": number(w.get("gap"), 3),
                "worst_token": f"{w.get('worst_token')!r} ({number(w.get('worst_token_nll'), 2)})",
                "disagrees": "yes" if w.get("disagrees") else "no",
            }
        )
    return out


def token_cap_warning(stats: Mapping[str, Any]) -> str | None:
    """A warning when at least `TOKEN_CAP_WARNING` of the rollouts hit the token cap, else None (plain text)."""
    share = stats.get("token_cap_share")
    if not is_num(share) or share < TOKEN_CAP_WARNING:
        return None
    return (
        f"{share:.0%} of the student's rollouts hit the token cap before finishing: raise max_new_tokens. "
        "A rollout cut off before its answer counts as a failure, so f_t underestimates the student and "
        "gaps may be found where there are none."
    )


def compute_stats(
    dataset: Any,
    *,
    config: dict | None = None,
    wall_seconds: float | None = None,
    student: str | None = None,
    source: str | None = None,
) -> dict:
    """Numbers that describe one DART run; JSON-safe (NaN -> null) so they go straight to `stats.json`.

    Counts cover every row (rows in = rows out); score statistics only rows that were simulated
    (action != "error") and only finite f_t.

    Keys:
        n_examples, usable (non-error rows with a non-empty `dart_solution`), actions (all four
        actions, 0 when absent), error_reasons (reason -> count), verify_timeouts (math-verify
        comparisons that gave no verdict in time: {"comparisons": total, "rows": rows with any};
        null for data adapted before the column existed), selection (policy -> count over
        explore rows), tokens_generated (sum), wall_seconds (the given wall time, else the sum of
        `dart_seconds`), tokens_per_second, cost (tokens/seconds per example, means over all rows),
        mean_steps (mean T over non-error rows), mean_f0 / mean_fT (student alone / after all expert
        steps), mean_success_by_position, gap_histogram, rollout_endings, token_cap_share, config,
        student, source.

    `rollout_endings`: how all judged rollouts ended, summed over rows from `dart_rollout_endings`:
    `answer` (stopped after its final `\\boxed{}`), `stop` (end-of-sequence), `length` (hit
    `max_new_tokens`); None when the dataset has no such column. `token_cap_share` = length / total
    (None without rollouts): a large share means the budget cut the student off, and f_t is then
    lower than the student's real chance.

    `mean_success_by_position`: a problem with T steps has scores f_0..f_T; f_t sits at relative
    position t/T, which is rounded to the nearest of 0, 0.25, 0.5, 0.75, 1 (halves round up). The
    value for a bin is the mean of all finite f_t in it, pooled over problems (null when empty);
    `success_by_position_counts` gives how many scores each bin pooled. So "0" is always the
    student alone and "1" always "the expert wrote everything", whatever T is.

    `gap_histogram`: over non-error rows, `relative` counts gap/T in the intervals (0, .25],
    (.25, .5], (.5, .75], (.75, 1] plus "none" (no gap); `absolute` counts the 1-based gap step
    ("1", "2", ...) plus "none".
    """
    rows = read_rows(dataset, extra=("dart_rollout_endings",))
    n = len(rows)
    actions = {a: 0 for a in ACTIONS}
    for r in rows:
        action = r["dart_action"] if r["dart_action"] in actions else Action.ERROR.value
        actions[action] += 1
    ok = [r for r in rows if r["dart_action"] != Action.ERROR]
    usable = sum(1 for r in ok if is_usable(r))

    tokens = int(sum(int(r["dart_tokens_generated"] or 0) for r in rows))
    row_seconds = [float(r["dart_seconds"]) for r in rows if is_num(r.get("dart_seconds"))]
    wall = float(wall_seconds) if wall_seconds is not None else float(sum(row_seconds))

    by_pos: dict[float, list[float]] = {b: [] for b in POSITION_BINS}
    f0, fT, steps = [], [], []
    relative = {gap_bin_label(lo, hi): 0 for lo, hi in GAP_BINS}
    relative["none"] = 0
    absolute: Counter = Counter()
    for r in ok:
        scores = step_scores(r)
        T = len(r["dart_steps"] or [])
        steps.append(T)
        if T >= 1 and len(scores) == T + 1:
            for t, f in enumerate(scores):
                if math.isfinite(f):
                    by_pos[_position_bin(t, T)].append(f)
            if math.isfinite(scores[0]):
                f0.append(scores[0])
            if math.isfinite(scores[-1]):
                fT.append(scores[-1])
        gap = int(r["dart_gap_step"]) if r["dart_gap_step"] is not None else -1
        if gap >= 1 and T >= 1:
            relative[_gap_bin(gap, T)] += 1
            absolute[str(gap)] += 1
        else:
            relative["none"] += 1
            absolute["none"] += 1
    absolute_sorted = {k: absolute[k] for k in sorted((k for k in absolute if k != "none"), key=int)}
    absolute_sorted["none"] = absolute.get("none", 0)

    errors = Counter(r.get("dart_error") or "unknown error" for r in rows if r["dart_action"] == Action.ERROR)
    verify_timeouts = None
    if "dart_verify_timeouts" in dataset.column_names:
        counts = [int(r.get("dart_verify_timeouts") or 0) for r in rows]
        verify_timeouts = {"comparisons": sum(counts), "rows": sum(1 for c in counts if c)}
    selection = Counter(r.get("dart_selection") or "" for r in rows if r["dart_action"] == Action.EXPLORE)

    endings = None
    if "dart_rollout_endings" in getattr(dataset, "column_names", []):
        endings = dict.fromkeys(ENDINGS, 0)
        for r in rows:
            for k, v in (r.get("dart_rollout_endings") or {}).items():
                if k in endings and is_num(v):
                    endings[k] += int(v)
    n_rollouts = sum(endings.values()) if endings else 0

    stats = {
        "n_examples": n,
        "usable": usable,
        "actions": actions,
        "error_reasons": dict(errors.most_common(20)),
        "verify_timeouts": verify_timeouts,
        "selection": dict(selection),
        "tokens_generated": tokens,
        "wall_seconds": wall,
        "tokens_per_second": tokens / wall if wall > 0 else None,
        "cost": {
            "tokens_per_example": tokens / n if n else None,
            "seconds_per_example": _mean(row_seconds),
            "wall_seconds_per_example": wall / n if n else None,
            "tokens_per_usable_example": tokens / usable if usable else None,
        },
        "mean_steps": _mean(steps),
        "mean_f0": _mean(f0),
        "mean_fT": _mean(fT),
        "mean_success_by_position": {f"{b:g}": _mean(v) for b, v in by_pos.items()},
        "success_by_position_counts": {f"{b:g}": len(v) for b, v in by_pos.items()},
        "gap_histogram": {"relative": relative, "absolute": absolute_sorted},
        "rollout_endings": endings,
        "token_cap_share": endings["length"] / n_rollouts if n_rollouts else None,
        "config": config,
        "student": student,
        "source": source,
    }
    try:
        from .. import __version__

        stats["dart_hf_version"] = __version__
    except ImportError:  # pragma: no cover
        pass
    return json_safe(stats)
