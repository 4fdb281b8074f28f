"""The report's three figures, drawn with matplotlib and returned as PNG data URIs.

Data URIs keep `report.html` one self-contained file (no image folder to lose when it is mailed
or uploaded). Figures are made without pyplot, so a notebook's backend and state are untouched.
"""

from __future__ import annotations

import base64
import functools
import io
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..schema import ACTIONS, Action
from .rows import step_scores
from .stats import GAP_BINS, POSITION_BINS, gap_bin_label

#: One colour per action, shared by the plots (the page's CSS pills use the same ones).
ACTION_COLORS = dict(zip(ACTIONS, ("#4c9a5f", "#3a6fc4", "#e08a2c", "#b0413e")))

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


def _styled(plot: Callable[..., str]) -> Callable[..., str]:
    """Run a plot function under the report's matplotlib style (locally, via rc_context)."""

    @functools.wraps(plot)
    def wrapper(*args: Any, **kwargs: Any) -> str:
        import matplotlib

        with matplotlib.rc_context(_RC):
            return plot(*args, **kwargs)

    return wrapper


def _empty_axes(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#666", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


#: At most this many feasibility curves are drawn (the first ones); more would be an unreadable tangle.
MAX_CURVES = 40

#: Up to this many curves each get a colour and a legend entry; more are coloured by action.
MAX_LEGEND = 10

#: Vertical offset step between curves: scores are multiples of 1/N_sim, so equal curves would hide each other.
CURVE_NUDGE = 0.008


def feasibility_curves(rows: Sequence[Mapping[str, Any]]) -> list[tuple[int, Mapping[str, Any]]]:
    """(index, row) of the rows that get a feasibility curve: simulated rows with at least one finite f_t."""
    return [
        (i, r)
        for i, r in enumerate(rows)
        if r["dart_action"] != Action.ERROR and any(math.isfinite(f) for f in step_scores(r))
    ]


@_styled
def plot_feasibility(rows: list[dict], stats: Mapping[str, Any]) -> str:
    """Left: f_t per problem, gap marked. Right: mean f_t by relative position (all problems).

    The curves are where a reader sees the imitation gap; the averages show whether expert steps
    help this student at all. Returns a PNG data URI.
    """
    import matplotlib
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    fig, (ax, ax2) = _figure(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1.7, 1]})
    curves = feasibility_curves(rows)
    shown = curves[:MAX_CURVES]
    per_problem = len(shown) <= MAX_LEGEND
    cmap = matplotlib.colormaps["tab10"]
    if not shown:
        _empty_axes(ax, "no simulated rows\n(every row is an error)")
    else:
        max_t = 1
        for k, (i, r) in enumerate(shown):
            scores = step_scores(r)
            # Scores are multiples of 1/N_sim, so lines of different problems coincide; a small,
            # fixed vertical offset per problem keeps each one visible (said in the caption).
            offset = ((k % 7) - 3) * CURVE_NUDGE if per_problem and len(shown) > 1 else 0.0
            xs = [t for t, f in enumerate(scores) if math.isfinite(f)]
            ys = [scores[t] + offset for t in xs]
            max_t = max(max_t, len(scores) - 1)
            color = cmap(k % 10) if per_problem else ACTION_COLORS.get(r["dart_action"], "#888")
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
            handles = [Line2D([], [], color=c, lw=2, label=a) for a, c in ACTION_COLORS.items() if a != Action.ERROR]
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
def plot_gaps(stats: Mapping[str, Any]) -> str:
    """Bars of `gap_histogram["relative"]`: whether gaps sit early or late in the expert solutions (PNG data URI)."""
    fig, ax = _figure(figsize=(5.8, 3.8))
    relative = (stats.get("gap_histogram") or {}).get("relative") or {}
    keys = [gap_bin_label(lo, hi) for lo, hi in GAP_BINS] + ["none"]
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
def plot_actions(stats: Mapping[str, Any]) -> str:
    """Bars of the action counts, in the colours the page uses for them (PNG data URI)."""
    fig, ax = _figure(figsize=(5.8, 3.8))
    actions = stats.get("actions") or {}
    values = [int(actions.get(a, 0) or 0) for a in ACTIONS]
    _count_bars(ax, list(ACTIONS), values, [ACTION_COLORS[a] for a in ACTIONS])
    ax.set_xlabel("what DART did with the row")
    ax.set_ylabel("problems")
    ax.set_title("Actions")
    fig.tight_layout()
    return _figure_to_data_uri(fig)
