"""`report.html`: one self-contained page that explains a DART run to someone who has never heard of DART.

Python gathers the facts into a plain context (numbers already formatted by `dart_hf.formatting`,
texts raw); the Jinja2 template `dart_hf/templates/report.html.j2` holds all markup, CSS and
wording. The template engine escapes every value (autoescape), so a problem, a gold answer or a
student attempt that contains HTML is shown as text and cannot break or script the page.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import jinja2

from ..formatting import MISSING, duration, number
from ..rundir import write_atomically
from ..schema import ACTION_MEANINGS, ACTIONS, Action
from .examples import example_context, pick_examples
from .plots import CURVE_NUDGE, MAX_CURVES, MAX_LEGEND, feasibility_curves, plot_actions, plot_feasibility, plot_gaps
from .rows import json_safe, read_rows
from .stats import endings_text, on_policy_text, on_policy_worst, token_cap_warning

#: The template, in `dart_hf/templates/`.
TEMPLATE = "report.html.j2"

#: The tag in the template's head that marks a report as written by dart_hf (`report.outputs` checks it).
GENERATOR_META = "<meta name='generator' content='dart_hf'>"

#: Settings worth a glance in the summary table (all of them are in the collapsed full configuration).
SUMMARY_SETTINGS = (
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


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The Jinja2 environment of the report: package templates, autoescape on, undefined names an error."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("dart_hf", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _banner(stats: Mapping[str, Any]) -> str | None:
    """Which warning goes on top when the run produced nothing to train on, so nobody misses it."""
    n = int(stats.get("n_examples", 0) or 0)
    errors = int((stats.get("actions") or {}).get(Action.ERROR.value, 0) or 0)
    if n == 0:
        return "empty"
    if errors == n:
        return "all_errors"
    if not stats.get("usable"):
        return "nothing_usable"
    if stats.get("mean_fT") == 0:
        return "never_correct"
    return None


def _on_policy_warning(stats: Mapping[str, Any]) -> str | None:
    check = stats.get("on_policy")
    return (check.get("warning") or None) if isinstance(check, Mapping) else None


def _summary(stats: Mapping[str, Any]) -> dict[str, Any]:
    """The summary table's cells, formatted; optional rows are None (or empty) when they do not apply."""
    actions = stats.get("actions") or {}
    cost = stats.get("cost") or {}
    config = stats.get("config") or {}
    settings = ", ".join(f"{k}={config[k]}" for k in SUMMARY_SETTINGS if isinstance(config, Mapping) and k in config)
    endings = endings_text(stats)
    timeouts = stats.get("verify_timeouts")
    if isinstance(timeouts, Mapping):
        comparisons = int(timeouts.get("comparisons") or 0)
        timeouts = {
            "comparisons": number(comparisons),
            "rows": number(int(timeouts.get("rows") or 0)),
            "any": bool(comparisons),
        }
    else:
        timeouts = None
    errors = stats.get("error_reasons") or {}
    return {
        "examples": number(int(stats.get("n_examples", 0) or 0)),
        "usable": number(int(stats.get("usable", 0) or 0)),
        "actions": [{"name": a, "count": number(int(actions.get(a, 0) or 0))} for a in ACTIONS],
        "student": stats.get("student") or MISSING,
        "source": stats.get("source") or MISSING,
        "tokens": number(stats.get("tokens_generated"), 1),
        "tokens_per_example": number(cost.get("tokens_per_example"), 0),
        "wall_time": duration(stats.get("wall_seconds")),
        "seconds_per_example": number(cost.get("seconds_per_example"), 1),
        "tokens_per_second": number(stats.get("tokens_per_second"), 1),
        "mean_steps": number(stats.get("mean_steps"), 1),
        "mean_f0": number(stats.get("mean_f0"), 2),
        "mean_fT": number(stats.get("mean_fT"), 2),
        "endings": endings,
        "token_cap_warning": token_cap_warning(stats) if endings else None,
        "settings": settings or None,
        "verify_timeouts": timeouts,
        "errors": [{"count": number(int(c)), "reason": r} for r, c in list(errors.items())[:5]],
        "config_json": json.dumps(json_safe(config), indent=2, sort_keys=True) if config else None,
        "on_policy": on_policy_text(stats),
        "on_policy_worst": on_policy_worst(stats),
    }


def report_context(dataset: Any, stats: Mapping[str, Any], *, max_examples: int = 4) -> dict[str, Any]:
    """Everything `report.html.j2` shows, as plain values: what `write_report` renders.

    Reads the dataset's DART columns once, and `dart_rollouts` (which can be large) only for the
    rows shown as examples.
    """
    rows = read_rows(dataset)
    n_curves = len(feasibility_curves(rows))
    figures = {
        "feasibility": plot_feasibility(rows, stats),
        "gaps": plot_gaps(stats),
        "actions": plot_actions(stats),
        "curves_total": number(n_curves),
        "curves_shown": number(min(n_curves, MAX_CURVES)),
        "per_problem": min(n_curves, MAX_CURVES) <= MAX_LEGEND,
        "nudged": min(n_curves, MAX_CURVES) > 1,
        "max_nudge": number(3 * CURVE_NUDGE, 3),  # offsets are -3..3 nudges (see plot_feasibility)
    }
    picked = pick_examples(rows, max_examples)
    if picked and "dart_rollouts" in dataset.column_names:  # read the (large) rollouts of the shown rows only
        shown = dataset.select(picked).select_columns(["dart_rollouts"]).to_dict()["dart_rollouts"]
        for i, value in zip(picked, shown):
            rows[i] = {**rows[i], "dart_rollouts": value}
    return {
        "subtitle": ", ".join(x for x in (stats.get("source"), stats.get("student")) if x),
        "banner": _banner(stats),
        "n_examples": number(int(stats.get("n_examples", 0) or 0)),
        "token_cap_warning": token_cap_warning(stats),
        "on_policy_warning": _on_policy_warning(stats),
        "summary": _summary(stats),
        "figures": figures,
        "action_meanings": [{"name": a, "meaning": ACTION_MEANINGS[a]} for a in ACTIONS],
        "dataset_empty": not rows,
        "n_rows": number(len(rows)),
        "any_explore": bool(int((stats.get("actions") or {}).get(Action.EXPLORE.value, 0) or 0)),
        "examples": [example_context(i, rows[i]) for i in picked],
        "version": stats.get("dart_hf_version"),
    }


def render_report(context: Mapping[str, Any]) -> str:
    """The HTML page for a `report_context` (the template escapes every value)."""
    return environment().get_template(TEMPLATE).render(context)


def write_report(dataset: Any, stats: Mapping[str, Any], path: str, *, max_examples: int = 4) -> None:
    """Write one self-contained HTML page (inline CSS, base64 PNG plots, no external resources).

    It is meant to be opened by someone who has never heard of DART: an explanation, a summary
    table, feasibility curves, gap positions, action counts, and a few examples with the expert and
    the adapted solution side by side (explore rows first, student-written text highlighted).
    """
    page = render_report(report_context(dataset, stats, max_examples=max_examples))

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)

    write_atomically(path, write)  # a crash or a full disk never leaves half a page
