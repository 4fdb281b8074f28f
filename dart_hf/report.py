"""Summaries of an adapted dataset: statistics, TRL stepwise export, and a one-page HTML report.

After `dataset.map(DartAdapter(...))` a user needs to know, at a glance, what DART did and what it
cost: how many rows were imitated, explored, fell back or failed; where the student's success
collapses along the expert solutions; how many tokens and seconds it took. This module turns the
`dart_*` columns (see `dart_hf.schema.OUTPUT_COLUMNS`) into

* `compute_stats`   - a JSON-safe dict (the numbers behind `stats.json`, cards and the report);
* `to_stepwise`     - TRL's stepwise-supervision dataset (`prompt`, `completions`, `labels`) so the
                      per-step success rates can train a process reward model;
* `write_report`    - one self-contained HTML page (inline CSS, plots as base64 PNG);
* `write_outputs`   - all of the above plus the dataset itself, written into one folder.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .formatting import duration, number
from .schema import ACTION_MEANINGS, ACTIONS, PHASE_SIM, ROLLOUT_ENDING_MEANINGS, Action, is_usable

if TYPE_CHECKING:
    import datasets

#: Relative step positions t/T are rounded to the nearest of these (see `compute_stats`).
POSITION_BINS = (0.0, 0.25, 0.5, 0.75, 1.0)

#: Relative gap positions gap/T fall in one of these half-open intervals (lo, hi].
GAP_BINS = ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))

#: Rollout endings, as in `dart_rollout_endings`, with the words the report and cards use for them.
ENDINGS = ROLLOUT_ENDING_MEANINGS

#: Share of rollouts ending at the token cap from which the report warns that max_new_tokens is too small.
TOKEN_CAP_WARNING = 0.25

_REQUIRED = (
    "dart_steps",
    "dart_step_success",
    "dart_gap_step",
    "dart_action",
    "dart_solution",
    "dart_tokens_generated",
)

_ACTION_COLORS = dict(zip(ACTIONS, ("#4c9a5f", "#3a6fc4", "#e08a2c", "#b0413e")))


# ---------------------------------------------------------------------------------------------- helpers
def _json_safe(value: Any) -> Any:
    """Plain JSON types only: NaN/inf become None, tuples lists, unknown objects their `str`."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(v) for v in value]
    try:  # numpy scalars and arrays
        import numpy as np

        if isinstance(value, np.generic):
            return _json_safe(value.item())
        if isinstance(value, np.ndarray):
            return _json_safe(value.tolist())
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _columns(dataset: Any, names: Iterable[str]) -> dict[str, list]:
    """The named columns as Python lists (missing optional columns are absent)."""
    present = [n for n in names if n in dataset.column_names]
    if not present:
        return {}
    return dataset.select_columns(present).to_dict()


def _check_adapted(dataset: Any) -> None:
    missing = [c for c in _REQUIRED if c not in getattr(dataset, "column_names", [])]
    if missing:
        raise ValueError(
            f"dataset has no DART columns {missing}: run dataset.map(DartAdapter(student), batched=True) first"
        )


def _rows(dataset: Any, extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Rows as dicts of the DART columns the summaries read (plus `extra` columns when present)."""
    _check_adapted(dataset)
    names = (
        list(_REQUIRED)
        + list(extra)
        + [
            "dart_student_start",
            "dart_answer",
            "dart_seconds",
            "dart_selection",
            "dart_error",
            "dart_verify_timeouts",
            "prompt",
            "problem",
        ]
    )
    cols = _columns(dataset, names)
    n = len(dataset)
    return [{k: v[i] for k, v in cols.items()} for i in range(n)]


def _problem_text(row: Mapping[str, Any]) -> str:
    """The problem as the student saw it: the last user turn of `prompt` (else `problem`)."""
    prompt = row.get("prompt")
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, (list, tuple)):
        users = [m for m in prompt if isinstance(m, Mapping) and m.get("role") == "user"]
        if users and isinstance(users[-1].get("content"), str):
            return users[-1]["content"]
    problem = row.get("problem")
    return problem if isinstance(problem, str) else ""


def _scores(row: Mapping[str, Any]) -> list[float]:
    return [float("nan") if s is None else float(s) for s in (row.get("dart_step_success") or [])]


def _position_bin(t: int, T: int) -> float:
    """Nearest of `POSITION_BINS` to t/T (halves round up, so 1/8 -> 0.25)."""
    return math.floor(4 * t / T + 0.5) / 4


def _gap_bin(gap: int, T: int) -> str:
    rel = gap / T
    for lo, hi in GAP_BINS:
        if lo < rel <= hi:
            return f"({lo:g}, {hi:g}]"
    return f"({GAP_BINS[-1][0]:g}, {GAP_BINS[-1][1]:g}]"  # rel > 1 cannot happen for a valid row


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
    parts = [f"{counts[k]:,} {words} ({counts[k] / total:.0%})" for k, words in ENDINGS.items()]
    return f"{total:,} rollouts: " + ", ".join(parts)


def token_cap_warning(stats: Mapping[str, Any]) -> str | None:
    """A warning when at least `TOKEN_CAP_WARNING` of the rollouts hit the token cap, else None (plain text)."""
    share = stats.get("token_cap_share")
    if not _is_num(share) or share < TOKEN_CAP_WARNING:
        return None
    return (
        f"{share:.0%} of the student's rollouts hit the token cap before finishing: raise max_new_tokens. "
        "A rollout cut off before its answer counts as a failure, so f_t underestimates the student and "
        "gaps may be found where there are none."
    )


# ---------------------------------------------------------------------------------------------- stats
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
    rows = _rows(dataset, extra=("dart_rollout_endings",))
    n = len(rows)
    actions = {a: 0 for a in ACTIONS}
    for r in rows:
        action = r["dart_action"] if r["dart_action"] in actions else Action.ERROR.value
        actions[action] += 1
    ok = [r for r in rows if r["dart_action"] != Action.ERROR]
    usable = sum(1 for r in ok if is_usable(r))

    tokens = int(sum(int(r["dart_tokens_generated"] or 0) for r in rows))
    row_seconds = [float(r["dart_seconds"]) for r in rows if _is_num(r.get("dart_seconds"))]
    wall = float(wall_seconds) if wall_seconds is not None else float(sum(row_seconds))

    by_pos: dict[float, list[float]] = {b: [] for b in POSITION_BINS}
    f0, fT, steps = [], [], []
    relative = {f"({lo:g}, {hi:g}]": 0 for lo, hi in GAP_BINS}
    relative["none"] = 0
    absolute: Counter = Counter()
    for r in ok:
        scores = _scores(r)
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
                if k in endings and _is_num(v):
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
        from . import __version__

        stats["dart_hf_version"] = __version__
    except ImportError:  # pragma: no cover
        pass
    return _json_safe(stats)


# ---------------------------------------------------------------------------------------------- stepwise
def to_stepwise(dataset: Any, threshold: float = 0.5, *, include_rollouts: bool = False) -> datasets.Dataset:
    """Export the per-step success rates as TRL's stepwise-supervision dataset (for a PRM).

    Columns (as TRL's PRM trainer reads them: `prompt` str, `completions` list[str], `labels`
    list[bool] of the same length):

    * `prompt`: the problem text, i.e. the content of the last user turn of `prompt` (with the
      instruction the student saw);
    * `completions`: the expert steps with trailing whitespace stripped (TRL's PRM trainer appends
      its own `step_separator`, "\\n" by default, after every step); steps that are only whitespace
      are dropped together with their label;
    * `labels`: step k (1-based) is True when the student can still follow: f_k >= threshold.

    With `include_rollouts=True` these columns are added (TRL ignores extra columns), one entry per
    step of `completions`, about the simulation rollouts drawn after that step:

    * `step_correct` / `step_total` (list[int]): how many of them reached the gold answer, out of how
      many (so a PRM can weight labels by their evidence); from `dart_rollouts` when the row kept its
      rollouts, else from `dart_step_success` x `dart_step_samples`;
    * `step_rollouts` (list[list[str]]) and `step_rollout_correct` (list[list[bool]]): the student's
      continuations after the step and their verdicts (empty lists when the row kept no rollouts,
      see `DartConfig.keep_rollouts`).

    Skipped rows (they carry no trustworthy per-step signal): `dart_action == "error"`, rows with
    any NaN among f_1..f_T (a prefix not simulated), and rows with no steps. The output therefore
    can have fewer rows than the input; it is an export, not the adapted dataset.
    """
    import datasets

    from .adapter import rollout_records

    extra = ("dart_step_samples", "dart_rollouts") if include_rollouts else ()
    cols: dict[str, list] = {"prompt": [], "completions": [], "labels": []}
    if include_rollouts:
        cols.update(step_correct=[], step_total=[], step_rollouts=[], step_rollout_correct=[])
    for r in _rows(dataset, extra=extra):
        if r["dart_action"] == Action.ERROR:
            continue
        steps = list(r["dart_steps"] or [])
        scores = _scores(r)
        if not steps or len(scores) != len(steps) + 1 or not all(math.isfinite(f) for f in scores[1:]):
            continue
        kept = [k for k, s in enumerate(steps, start=1) if s.strip()]
        if not kept:
            continue
        cols["prompt"].append(_problem_text(r))
        cols["completions"].append([steps[k - 1].rstrip() for k in kept])
        cols["labels"].append([bool(scores[k] >= threshold) for k in kept])
        if include_rollouts:
            sim = [x for x in rollout_records(r.get("dart_rollouts")) if x["phase"] == PHASE_SIM]
            by_t: dict[int, list[dict]] = {}
            for x in sim:
                by_t.setdefault(x["prefix_index"], []).append(x)
            samples = list(r.get("dart_step_samples") or [])
            if sim:
                correct = [sum(x["correct"] for x in by_t.get(k, [])) for k in kept]
                total = [len(by_t.get(k, [])) for k in kept]
            else:
                total = [int(samples[k]) if k < len(samples) else 0 for k in kept]
                correct = [round(scores[k] * n) for k, n in zip(kept, total)]
            cols["step_correct"].append(correct)
            cols["step_total"].append(total)
            cols["step_rollouts"].append([[x["text"] for x in by_t.get(k, [])] for k in kept])
            cols["step_rollout_correct"].append([[x["correct"] for x in by_t.get(k, [])] for k in kept])
    spec = {
        "prompt": datasets.Value("string"),
        "completions": datasets.List(datasets.Value("string")),
        "labels": datasets.List(datasets.Value("bool")),
    }
    if include_rollouts:
        spec.update(
            step_correct=datasets.List(datasets.Value("int64")),
            step_total=datasets.List(datasets.Value("int64")),
            step_rollouts=datasets.List(datasets.List(datasets.Value("string"))),
            step_rollout_correct=datasets.List(datasets.List(datasets.Value("bool"))),
        )
    return datasets.Dataset.from_dict(cols, features=datasets.Features(spec))


# ---------------------------------------------------------------------------------------------- plots
_RC = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 9,
}


def _figure(*args: Any, **kwargs: Any) -> tuple:
    """A matplotlib `Figure` and its axes, without pyplot: no global backend or state is touched
    (a notebook's backend stays as it is) and figures are freed with their last reference."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=kwargs.pop("figsize"))
    return fig, fig.subplots(*args, **kwargs)


def _figure_to_data_uri(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")  # Figure.savefig renders with Agg
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _styled(plot: Any) -> Any:
    """Run a plot function under the report's matplotlib style (locally, via rc_context)."""

    def wrapper(*args: Any, **kwargs: Any) -> str:
        import matplotlib

        with matplotlib.rc_context(_RC):
            return plot(*args, **kwargs)

    wrapper.__name__ = plot.__name__
    wrapper.__doc__ = plot.__doc__
    return wrapper


def _empty_axes(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#666", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


_MAX_CURVES = 40
_MAX_LEGEND = 10


@_styled
def _plot_feasibility(rows: list[dict], stats: Mapping[str, Any]) -> str:
    """Left: f_t per problem, gap marked. Right: mean f_t by relative position (all problems)."""
    import matplotlib
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    fig, (ax, ax2) = _figure(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1.7, 1]})
    curves = [
        (i, r)
        for i, r in enumerate(rows)
        if r["dart_action"] != Action.ERROR and any(math.isfinite(f) for f in _scores(r))
    ]
    shown = curves[:_MAX_CURVES]
    per_problem = len(shown) <= _MAX_LEGEND
    cmap = matplotlib.colormaps["tab10"]
    if not shown:
        _empty_axes(ax, "no simulated rows\n(every row is an error)")
    else:
        max_t = 1
        for k, (i, r) in enumerate(shown):
            scores = _scores(r)
            # Scores are multiples of 1/N_sim, so lines of different problems coincide; a small,
            # fixed vertical offset per problem keeps each one visible (said in the caption).
            offset = ((k % 7) - 3) * 0.008 if per_problem and len(shown) > 1 else 0.0
            xs = [t for t, f in enumerate(scores) if math.isfinite(f)]
            ys = [scores[t] + offset for t in xs]
            max_t = max(max_t, len(scores) - 1)
            color = cmap(k % 10) if per_problem else _ACTION_COLORS.get(r["dart_action"], "#888")
            label = f"#{i} ({r['dart_action']})" if per_problem else None
            ax.plot(
                xs,
                ys,
                marker="o",
                ms=4,
                lw=1.8 if per_problem else 1.0,
                color=color,
                alpha=0.9 if per_problem else 0.45,
                label=label,
            )
            gap = r["dart_gap_step"]
            if gap is not None and 1 <= gap < len(scores) and math.isfinite(scores[gap]):
                ax.plot(
                    [gap],
                    [scores[gap] + offset],
                    marker="X",
                    ms=13,
                    color=color,
                    markeredgecolor="#b00020",
                    markeredgewidth=1.8,
                    zorder=5,
                    linestyle="none",
                )
        ax.set_xlim(-0.3, max_t + 0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        handles, _ = ax.get_legend_handles_labels()
        gap_handle = Line2D(
            [],
            [],
            marker="X",
            ms=11,
            color="white",
            markeredgecolor="#b00020",
            markeredgewidth=1.8,
            linestyle="none",
            label="imitation gap",
        )
        if not per_problem:
            handles = [Line2D([], [], color=c, lw=2, label=a) for a, c in _ACTION_COLORS.items() if a != Action.ERROR]
        ax.legend(
            handles=handles + [gap_handle],
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
            title="problem (action)" if per_problem else "action",
        )
    ax.set_ylim(-0.06, 1.06)
    ax.set_xlabel("t = number of expert steps adopted (0 = student alone)")
    ax.set_ylabel("$f_t$ = student success rate")
    title = "Feasibility curve of each problem"
    if len(curves) > len(shown):
        title += f" (first {len(shown)} of {len(curves)})"
    ax.set_title(title)
    ax.grid(alpha=0.3)

    means = stats.get("mean_success_by_position") or {}
    counts = stats.get("success_by_position_counts") or {}
    keys = [f"{b:g}" for b in POSITION_BINS]
    values = [means.get(k) for k in keys]
    if all(v is None for v in values):
        _empty_axes(ax2, "no finite scores")
    else:
        xs = list(range(len(keys)))
        heights = [v if v is not None else 0.0 for v in values]
        bars = ax2.bar(xs, heights, color="#3a6fc4", alpha=0.85, width=0.65)
        for x, v, bar in zip(xs, values, bars):
            text = "–" if v is None else f"{v:.2f}\n(n={counts.get(keys[x], 0)})"
            ax2.text(x, bar.get_height() + 0.02, text, ha="center", va="bottom", fontsize=9)
        ax2.set_xticks(xs, ["0\nstudent\nalone", "¼", "½", "¾", "1\nall expert\nsteps"])
        ax2.set_ylim(0, 1.25)
        ax2.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
        ax2.grid(axis="y", alpha=0.3)
    ax2.set_xlabel("relative position t/T (rounded to nearest ¼)")
    ax2.set_ylabel("mean $f_t$ over problems")
    ax2.set_title("Average over all problems")
    fig.tight_layout()
    return _figure_to_data_uri(fig)


def _count_bars(ax: Any, labels: Sequence[str], values: list[int], colors: Sequence[str]) -> None:
    """A bar per label with its count written on top (integer y axis)."""
    bars = ax.bar(range(len(labels)), values, color=list(colors), width=0.65)
    for bar, v in zip(bars, values):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), str(v), ha="center", va="bottom")
    ax.set_xticks(range(len(labels)), list(labels))
    ax.set_ylim(0, max(values + [1]) * 1.18 + 0.5)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.grid(axis="y", alpha=0.3)


@_styled
def _plot_gaps(stats: Mapping[str, Any]) -> str:
    fig, ax = _figure(figsize=(5.8, 3.8))
    relative = (stats.get("gap_histogram") or {}).get("relative") or {}
    keys = [f"({lo:g}, {hi:g}]" for lo, hi in GAP_BINS] + ["none"]
    names = ["first ¼", "second ¼", "third ¼", "last ¼", "no gap"]
    values = [int(relative.get(k, 0) or 0) for k in keys]
    if sum(values) == 0:
        _empty_axes(ax, "no simulated rows")
    else:
        _count_bars(ax, names, values, ["#b0413e"] * 4 + ["#9aa5b1"])
    ax.set_xlabel("where the gap falls in the expert solution (gap step / T)")
    ax.set_ylabel("problems")
    ax.set_title("Position of the imitation gap")
    fig.tight_layout()
    return _figure_to_data_uri(fig)


@_styled
def _plot_actions(stats: Mapping[str, Any]) -> str:
    fig, ax = _figure(figsize=(5.8, 3.8))
    actions = stats.get("actions") or {}
    values = [int(actions.get(a, 0) or 0) for a in ACTIONS]
    _count_bars(ax, list(ACTIONS), values, [_ACTION_COLORS[a] for a in ACTIONS])
    ax.set_xlabel("what DART did with the row")
    ax.set_ylabel("problems")
    ax.set_title("Actions")
    fig.tight_layout()
    return _figure_to_data_uri(fig)


# ---------------------------------------------------------------------------------------------- html
_CSS = """
:root { --fg:#1d2329; --muted:#5b6670; --line:#dde3e8; --bg:#ffffff; --panel:#f6f8fa;
        --student:#fff1a8; --student-edge:#d9a400; --gap:#fde2e1; --gap-edge:#b00020; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
       font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Helvetica, Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 26px; margin: 0 0 8px; }
h2 { font-size: 20px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 17px; margin: 0 0 6px; }
p.lead { max-width: 70em; color: #333; margin: 6px 0 14px; }
code { font: 13px/1.4 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; background: var(--panel);
       padding: 1px 4px; border-radius: 3px; }
table.summary { border-collapse: collapse; min-width: 520px; }
table.summary th, table.summary td { text-align: left; padding: 5px 14px 5px 0; border-bottom: 1px solid var(--line);
       vertical-align: top; }
table.summary th { color: var(--muted); font-weight: 600; white-space: nowrap; }
.num { font-variant-numeric: tabular-nums; }
.pill { display:inline-block; padding: 0 8px; border-radius: 10px; color: #fff; font-size: 13px; margin-right: 6px; }
.pill.imitate { background:#4c9a5f; } .pill.explore { background:#3a6fc4; }
.pill.fallback { background:#e08a2c; } .pill.error { background:#b0413e; }
figure { margin: 14px 0 20px; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 14px; max-width: 70em; margin-top: 4px; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 20px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 16px 18px; margin: 18px 0 26px; }
.meta { color: var(--muted); font-size: 14px; margin: 2px 0 10px; }
.meta b { color: var(--fg); font-weight: 600; }
.label { font-size: 13.5px; font-weight: 700; color: #3d4750; margin: 12px 0 4px; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; background: var(--panel); border: 1px solid var(--line);
        border-radius: 6px; padding: 10px 12px; font: 13.5px/1.5 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas,
        monospace; max-height: 44em; overflow: auto; margin: 0; }
.text.problem { max-height: 16em; font-family: inherit; font-size: 14.5px; }
.step::before { content: "step " attr(data-step); display: inline-block; font: 600 10.5px/1.6 -apple-system,
        "Segoe UI", "DejaVu Sans", sans-serif; color: #fff; background: #8a96a3; border-radius: 3px; padding: 0 5px;
        margin-right: 6px; vertical-align: 1px; }
.step.gap { background: var(--gap); outline: 1px solid var(--gap-edge); }
.step.gap::before { content: "step " attr(data-step) " = gap"; background: var(--gap-edge); }
.step.replaced { color: #7b8590; }
.student { background: var(--student); }
.key { font-size: 13.5px; color: var(--muted); margin: 4px 0 0; }
.swatch { display:inline-block; width: 14px; height: 14px; vertical-align: -2px; margin: 0 4px 0 10px;
          border-radius: 2px; }
.scores { display: flex; flex-wrap: wrap; gap: 4px; margin: 4px 0 8px; }
.score { font: 12.5px/1.3 ui-monospace, "DejaVu Sans Mono", monospace; padding: 3px 7px; border-radius: 4px;
         border: 1px solid var(--line); text-align: center; min-width: 52px; }
.score small { display:block; color: var(--muted); font-size: 10.5px; }
.score.gapscore { border-color: var(--gap-edge); background: var(--gap); }
.err { color: #b0413e; }
.banner { border: 1px solid #b0413e; background: #fdecea; color: #7a1f1c; border-radius: 6px; padding: 10px 14px;
          margin: 14px 0; font-weight: 600; }
.warn { color: #8a5300; font-weight: 600; }
.banner.warnbanner { border-color: #d9a400; background: #fff6d6; color: #6b4a00; }
details { margin: 8px 0; } summary { cursor: pointer; color: var(--muted); }
details.rollouts { margin: 3px 0; } details.rollouts > summary { font-size: 13.5px; }
.rollout { border-left: 3px solid var(--line); padding: 2px 0 2px 10px; margin: 6px 0 6px 4px; }
.rollout.ok { border-left-color: #4c9a5f; } .rollout.bad { border-left-color: #b0413e; }
.rollout.chosen { background: var(--student); border-left-color: var(--student-edge); }
.rollout .head { font-size: 13px; color: var(--muted); }
.rollout .head b { color: var(--fg); }
.rollout .text { max-height: 18em; font-size: 12.5px; }
@media (max-width: 900px) { .grid2 { grid-template-columns: 1fr; } }
"""

_INTRO = (
    "DART (Dynamic Adaptation of Reasoning Trajectories) rewrites expert math solutions so that a small "
    "<i>student</i> model can learn from them. Each expert solution is cut into steps. For every t, the student "
    "is given the problem plus the first t expert steps and asked to finish the solution several times; "
    "<b>f<sub>t</sub></b> is the fraction of those attempts that reach the correct answer (f<sub>0</sub> = the "
    "student alone, f<sub>T</sub> = the expert did every step). The <b>imitation gap</b> is the first expert step "
    "after which the student's success collapses: a step the student cannot follow. When there is a gap, DART keeps "
    "the expert steps before it and replaces the rest with a correct solution the student wrote itself "
    "(<span class='pill explore'>explore</span>); with no gap the expert solution is kept "
    "(<span class='pill imitate'>imitate</span>); if the student never got it right from there, a fallback applies "
    "(<span class='pill fallback'>fallback</span>). This page summarizes one run: what DART did, what it cost, "
    "where the gaps are, and a few rewritten solutions next to the originals."
)


def _esc(text: Any) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def _fmt(x: Any, digits: int = 1) -> str:
    return _esc(number(x, digits))


def _summary_table(stats: Mapping[str, Any]) -> str:
    n = stats.get("n_examples", 0) or 0
    actions = stats.get("actions") or {}
    action_cells = " ".join(
        f"<span class='pill {a}'>{a}</span><span class='num'>{int(actions.get(a, 0) or 0)}</span>&nbsp;&nbsp;"
        for a in ACTIONS
    )
    cost = stats.get("cost") or {}
    config = stats.get("config") or {}
    cfg_keys = (
        "n_sim",
        "n_explore",
        "temperature",
        "max_new_tokens",
        "gap_rule",
        "gap_margin",
        "gap_threshold",
        "selection",
        "fallback",
        "seed",
    )
    cfg_short = ", ".join(f"{k}={config[k]}" for k in cfg_keys if isinstance(config, Mapping) and k in config)
    rows = [
        ("examples", f"{n:,} ({int(stats.get('usable', 0) or 0):,} usable for training)"),
        ("actions", action_cells),
        ("student", _esc(stats.get("student") or "–")),
        ("source data", _esc(stats.get("source") or "–")),
        (
            "tokens generated",
            f"{_fmt(stats.get('tokens_generated'))} ({_fmt(cost.get('tokens_per_example'), 0)} per example)",
        ),
        (
            "wall time",
            f"{duration(stats.get('wall_seconds'))}; "
            f"{_fmt(cost.get('seconds_per_example'), 1)} s per example on average",
        ),
        ("throughput", f"{_fmt(stats.get('tokens_per_second'), 1)} generated tokens / s"),
        ("expert steps", f"{_fmt(stats.get('mean_steps'), 1)} per problem on average"),
        (
            "success rate",
            f"student alone f<sub>0</sub> = {_fmt(stats.get('mean_f0'), 2)}, "
            f"after all expert steps f<sub>T</sub> = {_fmt(stats.get('mean_fT'), 2)} (means)",
        ),
    ]
    endings = endings_text(stats)
    if endings:
        warn = token_cap_warning(stats)
        cell = _esc(endings)
        if warn:
            cell += f"<br><span class='warn'>⚠ {_esc(warn)}</span>"
        rows.append(("rollout endings", cell))
    if cfg_short:
        rows.append(("settings", _esc(cfg_short)))
    timeouts = stats.get("verify_timeouts")
    if isinstance(timeouts, Mapping):
        cell = f"{int(timeouts.get('comparisons') or 0):,} comparisons in {int(timeouts.get('rows') or 0):,} rows"
        if timeouts.get("comparisons"):
            cell = f"<span class='err'>{cell}</span> (no verdict in time: counted as not correct)"
        rows.append(("math-verify timeouts", cell))
    errors = stats.get("error_reasons") or {}
    if errors:
        reasons = "<br>".join(f"{int(c)} × {_esc(r)}" for r, c in list(errors.items())[:5])
        rows.append(("errors", f"<span class='err'>{reasons}</span>"))
    body = "\n".join(f"<tr><th>{k}</th><td class='num'>{v}</td></tr>" for k, v in rows)
    out = f"<table class='summary'>\n{body}\n</table>"
    if config:
        out += (
            "<details><summary>full configuration</summary><pre class='text'>"
            + _esc(json.dumps(_json_safe(config), indent=2, sort_keys=True))
            + "</pre></details>"
        )
    return out


def _banner(stats: Mapping[str, Any]) -> str:
    """A warning on top when the run produced nothing to train on, so nobody misses it."""
    n = int(stats.get("n_examples", 0) or 0)
    errors = int((stats.get("actions") or {}).get(Action.ERROR.value, 0) or 0)
    if n == 0:
        return "<div class='banner'>The dataset is empty: there is nothing to report.</div>"
    if errors == n:
        return (
            f"<div class='banner'>Every row ({n}) failed, so nothing was adapted. "
            "The reasons are listed under “errors” below.</div>"
        )
    if not stats.get("usable"):
        return "<div class='banner'>No row is usable for training (all were dropped or failed).</div>"
    if stats.get("mean_fT") == 0:
        return (
            "<div class='banner'>The student never reached the gold answer, not even when given the whole expert "
            "solution (f<sub>T</sub> = 0 for every problem), so DART had no success to lose and found no gap. "
            "Check that the student's continuations end with a \\boxed{} answer and that "
            "max_new_tokens leaves room for it, or use a stronger student.</div>"
        )
    return ""


def _cap_banner(stats: Mapping[str, Any]) -> str:
    """A visible warning on top when too many rollouts were cut off by `max_new_tokens`."""
    warn = token_cap_warning(stats)
    return f"<div class='banner warnbanner'>⚠ {_esc(warn)}</div>" if warn else ""


def _pick_examples(rows: list[dict], k: int) -> list[int]:
    """Explore rows first (they show what DART changes), then fallback, imitate, error; in row order."""
    order = {a.value: k for k, a in enumerate((Action.EXPLORE, Action.FALLBACK, Action.IMITATE, Action.ERROR))}
    ranked = sorted(range(len(rows)), key=lambda i: (order.get(rows[i]["dart_action"], 4), i))
    return ranked[: max(k, 0)]


def _steps_html(steps: Sequence[str], gap: int = -1, dim_after_gap: bool = False) -> str:
    """Steps with a "step k" badge (CSS, not text); the separator stays outside the marked span."""
    parts = []
    for k, step in enumerate(steps, start=1):
        cls = "step"
        if k == gap:
            cls += " gap"
        elif dim_after_gap and gap >= 1 and k > gap:
            cls += " replaced"
        body = step.rstrip()
        parts.append(f"<span class='{cls}' data-step='{k}'>{_esc(body)}</span>{_esc(step[len(body) :])}")
    return "".join(parts)


def _adapted_html(row: Mapping[str, Any]) -> str:
    """The adapted solution; the student-written part (from `dart_student_start`) in one highlighted span."""
    solution = row.get("dart_solution") or ""
    start = row.get("dart_student_start")
    start = int(start) if isinstance(start, int) else -1
    steps = list(row.get("dart_steps") or [])
    if not solution:
        return (
            "<span class='err'>(empty: this row was dropped by the fallback policy and is not used for training)</span>"
        )
    if start < 0 or start > len(solution):
        return _steps_html(steps) if steps and "".join(steps) == solution else _esc(solution)
    prefix, student = solution[:start], solution[start:]
    k = next((k for k in range(len(steps) + 1) if "".join(steps[:k]) == prefix), None)
    prefix_html = _steps_html(steps[:k]) if k is not None else _esc(prefix)
    return f"{prefix_html}<span class='student'>{_esc(student)}</span>"


_FINISH_WORDS = {"answer": "after its answer", "stop": "end-of-sequence", "length": "token cap"}


def _rollout_html(r: Mapping[str, Any]) -> str:
    ok = bool(r["correct"])
    cls = "rollout " + ("ok" if ok else "bad") + (" chosen" if r["chosen"] else "")
    answer = f"answer <b>{_esc(r['answer'])}</b>" if r["answer"] else "no answer"
    finish = _FINISH_WORDS.get(r["finish_reason"], r["finish_reason"])
    head = [
        f"<b>{'✓' if ok else '✗'}</b> sample {int(r['sample'])}",
        answer,
        f"{int(r['tokens'])} tokens",
        f"ended: {_esc(finish)}",
    ]
    if _is_num(r.get("logprob")):
        head.append(f"mean log-prob {r['logprob']:.3f}")
    if r["chosen"]:
        head.append("<b>chosen: this is the student text in the adapted solution</b>")
    return (
        f"<div class='{cls}'><div class='head'>{' · '.join(head)}</div><pre class='text'>{_esc(r['text'])}</pre></div>"
    )


def _rollouts_html(row: Mapping[str, Any]) -> str:
    """Every stored attempt of the student, one collapsed `<details>` per prefix t (then per exploration)."""
    from .adapter import rollout_records

    records = rollout_records(row.get("dart_rollouts"))
    if not records:
        if row.get("dart_action") == Action.ERROR:
            return ""
        return (
            "<div class='key'>The student's individual attempts were not stored: adapt with "
            "<code>DartConfig(keep_rollouts=True)</code> to see them here.</div>"
        )
    T = len(row.get("dart_steps") or [])
    scores = _scores(row)
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["phase"], int(r["prefix_index"])), []).append(r)
    order = sorted(groups, key=lambda g: (g[0] != PHASE_SIM, g[1]))
    out = [
        "<div class='label'>The student's attempts <span class='key'>(click a line to open it; ✓ = reached the gold "
        "answer)</span></div>"
    ]
    for phase, t in order:
        rs = groups[(phase, t)]
        if t == 0:
            where = "the student alone (t = 0)"
        elif t == T:
            where = f"after all {T} expert steps (t = {t})"
        else:
            where = f"after {t} expert step{'s' if t != 1 else ''} (t = {t})"
        if phase == PHASE_SIM:
            f = scores[t] if t < len(scores) else float("nan")
            title = f"{where}{f': f<sub>{t}</sub> = {f:.2f}' if math.isfinite(f) else ''}"
        else:
            title = f"exploration from {where}"
        ends = Counter(r["finish_reason"] for r in rs)
        summary = [title, f"{sum(r['correct'] for r in rs)} of {len(rs)} correct"]
        if ends.get("length"):
            summary.append(f"{ends['length']} hit the token cap")
        if any(r["chosen"] for r in rs):
            summary.append("<b>contains the chosen continuation</b>")
        out.append(
            f"<details class='rollouts' data-phase='{_esc(phase)}' data-t='{t}'>"
            f"<summary>{' · '.join(summary)}</summary>" + "".join(_rollout_html(r) for r in rs) + "</details>"
        )
    return "\n".join(out)


def _example_html(i: int, row: Mapping[str, Any]) -> str:
    action = row["dart_action"]
    steps = list(row.get("dart_steps") or [])
    scores = _scores(row)
    gap = int(row["dart_gap_step"]) if row.get("dart_gap_step") is not None else -1
    T = len(steps)
    gap_text = f"at step {gap} of {T}" if gap >= 1 else "none"
    meta = [
        f"gold answer <b>{_esc(row.get('dart_answer') or '–')}</b>",
        f"imitation gap <b>{gap_text}</b>",
        f"<b>{_fmt(row.get('dart_tokens_generated'))}</b> tokens generated",
    ]
    if _is_num(row.get("dart_seconds")):
        meta.append(f"<b>{row['dart_seconds']:.1f}</b> s")
    if row.get("dart_selection"):
        meta.append(f"continuation chosen by <b>{_esc(row['dart_selection'])}</b>")
    chips = "".join(
        f"<div class='score{' gapscore' if t == gap else ''}'><small>f<sub>{t}</sub></small>"
        f"{'–' if not math.isfinite(f) else f'{f:.2f}'}</div>"
        for t, f in enumerate(scores)
    )
    out = [
        f"<div class='card' id='example-{i}'>",
        f"<h3>Example #{i}</h3>",
        f"<div class='meta'><span class='pill {_esc(action)}'>{_esc(action)}</span> {' · '.join(meta)}</div>",
    ]
    if row.get("dart_error"):
        out.append(f"<div class='err'>error: {_esc(row['dart_error'])}</div>")
    out.append(f"<div class='label'>Problem</div><pre class='text problem'>{_esc(_problem_text(row))}</pre>")
    if scores:
        gap_note = f"; red = the gap, step {gap}" if gap >= 1 else ""
        out.append(
            f"<div class='label'>Student success rate f<sub>t</sub> after adopting t expert steps "
            f"<span class='key'>(– = not simulated{gap_note})</span></div>"
            f"<div class='scores'>{chips}</div>"
        )
    expert = (
        _steps_html(steps, gap, dim_after_gap=action == Action.EXPLORE) if steps else _esc(row.get("dart_solution"))
    )
    left_key = ""
    if action == Action.EXPLORE:
        right_caption = "Adapted solution (what the student is trained on)"
        left_key = (
            "<div class='key'>Red: the gap step, the first one the student cannot follow. It and the grey "
            "steps after it are replaced in the adapted solution.</div>"
        )
        right_key = (
            "<div class='key'>Steps with a badge are copied from the expert;"
            "<span class='swatch' style='background:var(--student)'></span>"
            "highlighted text was written by the student and reaches the gold answer.</div>"
        )
    elif action == Action.FALLBACK:
        kept = bool(row.get("dart_solution"))
        right_caption = "Adapted solution (" + ("expert solution kept" if kept else "dropped") + ")"
        right_key = (
            f"<div class='key'>A gap was found at step {gap}, but no student attempt from there reached the gold "
            "answer, so the fallback policy " + ("kept the expert solution." if kept else "dropped the row.") + "</div>"
        )
    elif action == Action.ERROR:
        right_caption = "Adapted solution (unchanged: the row could not be adapted)"
        right_key = ""
    else:
        right_caption = "Adapted solution (expert solution kept)"
        finite = [f for f in scores if math.isfinite(f)]
        if finite and max(finite) == 0:
            why = (
                "the student never reached the gold answer, with or without expert steps, so there was no "
                "success to lose"
            )
        else:
            why = "the student's success never collapsed after an expert step"
        right_key = f"<div class='key'>No gap: {why}. The expert solution is kept unchanged.</div>"
    out.append(
        "<div class='grid2'>"
        f"<div><div class='label'>Expert solution ({T} step{'s' if T != 1 else ''})</div>"
        f"<pre class='text expert'>{expert}</pre>{left_key}</div>"
        f"<div><div class='label'>{right_caption}</div>"
        f"<pre class='text adapted'>{_adapted_html(row)}</pre>{right_key}</div>"
        "</div>"
    )
    attempts = _rollouts_html(row)
    if attempts:
        out.append(attempts)
    out.append("</div>")
    return "\n".join(out)


def write_report(dataset: Any, stats: Mapping[str, Any], path: str, *, max_examples: int = 4) -> None:
    """Write one self-contained HTML page (inline CSS, base64 PNG plots, no external resources).

    It is meant to be opened by someone who has never heard of DART: an explanation, a summary
    table, feasibility curves, gap positions, action counts, and a few examples with the expert and
    the adapted solution side by side (explore rows first, student-written text highlighted).
    """
    rows = _rows(dataset)
    title = "DART adaptation report"
    subtitle = ", ".join(x for x in (stats.get("source"), stats.get("student")) if x)
    n_curves = sum(1 for r in rows if r["dart_action"] != Action.ERROR and any(math.isfinite(f) for f in _scores(r)))
    n_shown = min(n_curves, _MAX_CURVES)
    if n_shown <= _MAX_LEGEND:
        how = "one line per problem, numbered as in the examples below"
        if n_shown > 1:
            how += " (lines are nudged vertically by at most 0.024 so that problems with equal scores stay visible)"
    else:
        how = f"one line per problem, coloured by action ({n_shown} of {n_curves} problems shown)"
    figs = [
        (
            _plot_feasibility(rows, stats),
            f"<b>Left:</b> {how}. The x axis counts how many expert steps the student was given "
            "before continuing on its own; the y axis is <b>f<sub>t</sub></b>, the fraction of the student's "
            "attempts from there that reached the correct answer. A curve that rises means the expert steps help; "
            "a sudden fall marks an expert step the student cannot follow &mdash; the <b>imitation gap</b> (red X). "
            "<b>Right:</b> f<sub>t</sub> averaged over problems, with t/T rounded to the nearest quarter of the "
            "solution (n = number of scores averaged). Error rows are not drawn.",
        ),
    ]
    gaps_uri, actions_uri = _plot_gaps(stats), _plot_actions(stats)
    picked = _pick_examples(rows, max_examples)
    if picked and "dart_rollouts" in dataset.column_names:  # read the (large) rollouts of the shown rows only
        shown = dataset.select(picked).select_columns(["dart_rollouts"]).to_dict()["dart_rollouts"]
        rows = list(rows)
        for i, value in zip(picked, shown):
            rows[i] = {**rows[i], "dart_rollouts": value}
    n_explore = int((stats.get("actions") or {}).get(Action.EXPLORE.value, 0) or 0)
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{_esc(title)}{' — ' + _esc(subtitle) if subtitle else ''}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f"<h1>{_esc(title)}</h1>",
        f"<p class='lead'>{_INTRO}</p>",
        _banner(stats),
        _cap_banner(stats),
        "<h2>Summary</h2>",
        _summary_table(stats),
        "<h2>Where the student loses track</h2>",
    ]
    for uri, caption in figs:
        parts.append(f'<figure><img src="{uri}" alt="feasibility curves"><figcaption>{caption}</figcaption></figure>')
    parts.append(
        "<div class='grid2'>"
        f'<figure><img src="{gaps_uri}" alt="gap position histogram"><figcaption>Where the imitation gap falls, '
        "as a fraction of the expert solution's length T (first ¼ = steps 1..T/4). “no gap” problems keep the "
        "expert solution. Error rows are not counted.</figcaption></figure>"
        f'<figure><img src="{actions_uri}" alt="action counts"><figcaption>'
        + "; ".join(f"<b>{a}</b>: {ACTION_MEANINGS[a]}" for a in ACTIONS)
        + ".</figcaption></figure></div>"
    )
    parts.append("<h2>Examples</h2>")
    if not rows:
        parts.append("<p>The dataset is empty.</p>")
    else:
        note = (
            f"{len(picked)} of {len(rows)} rows, explore rows first."
            if n_explore
            else f"{len(picked)} of {len(rows)} rows. No row was explored in this run, so no solution contains "
            "student-written text."
        )
        parts.append(
            f"<p class='lead'>{note} On the left the original expert solution, cut into steps (the gap "
            "step in red); on the right the solution DART produced for training.</p>"
        )
        parts.extend(_example_html(i, rows[i]) for i in picked)
    version = stats.get("dart_hf_version")
    parts.append(f"<p class='key'>Generated by dart_hf{' ' + _esc(version) if version else ''}.</p>")
    parts.append("</main></body></html>")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(parts))


# ---------------------------------------------------------------------------------------------- outputs
OUTPUT_NAMES = ("dataset", "dataset.parquet", "stepwise.parquet", "stats.json", "report.html")


def write_outputs(dataset: Any, out_dir: str, *, stats: Mapping[str, Any]) -> dict[str, str]:
    """Write everything a run produces into `out_dir`, the same way for `dart-hf demo` and the recipes.

    Files: `dataset/` (`save_to_disk`, reload with `datasets.load_from_disk`), `dataset.parquet`
    (same rows, for pandas and the Hub viewer), `stepwise.parquet` (`to_stepwise`), `stats.json`
    (`stats`, indent 2) and `report.html` (`write_report`). Returns name -> path, names as in
    `OUTPUT_NAMES`. Existing outputs of the same names are replaced.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, name) for name in OUTPUT_NAMES}

    # Save to a temporary folder first: save_to_disk cannot overwrite the folder a dataset was
    # loaded from, and a half-written folder must not replace a good one.
    tmp = os.path.join(out_dir, ".dataset.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    dataset.save_to_disk(tmp)
    shutil.rmtree(paths["dataset"], ignore_errors=True)
    os.replace(tmp, paths["dataset"])

    dataset.to_parquet(paths["dataset.parquet"])
    to_stepwise(dataset).to_parquet(paths["stepwise.parquet"])
    with open(paths["stats.json"], "w", encoding="utf-8") as f:
        json.dump(_json_safe(dict(stats)), f, indent=2, allow_nan=False)
        f.write("\n")
    write_report(dataset, stats, paths["report.html"])
    return paths
