"""Summaries of an adapted dataset: statistics, TRL stepwise export, and a one-page HTML report.

After `dataset.map(DartAdapter(...))` a user needs to know, at a glance, what DART did and what it
cost. This package turns the `dart_*` columns (see `dart_hf.schema.OUTPUT_COLUMNS`) into

* `compute_stats` (`stats`)     - a JSON-safe dict: the numbers behind `stats.json`, cards and the report;
* `to_stepwise` (`stepwise`)    - TRL's stepwise-supervision dataset (`prompt`, `completions`, `labels`) so
                                  the per-step success rates can train a process reward model;
* `write_report` (`html`)       - one self-contained HTML page (inline CSS, plots as base64 PNG), rendered
                                  from the Jinja2 template `dart_hf/templates/report.html.j2`;
* `write_outputs` (`outputs`)   - all of the above plus the dataset itself, written into one folder.

`plots` draws the figures, `examples` prepares the worked examples, `rows` reads the columns.
Every name is importable from `dart_hf.report` directly.
"""

from __future__ import annotations

from .html import render_report, report_context, write_report
from .outputs import OUTPUT_NAMES, write_outputs
from .stats import ENDINGS, GAP_BINS, POSITION_BINS, TOKEN_CAP_WARNING, compute_stats, endings_text, token_cap_warning
from .stepwise import to_stepwise

__all__ = [
    "ENDINGS",
    "GAP_BINS",
    "OUTPUT_NAMES",
    "POSITION_BINS",
    "TOKEN_CAP_WARNING",
    "compute_stats",
    "endings_text",
    "render_report",
    "report_context",
    "to_stepwise",
    "token_cap_warning",
    "write_outputs",
    "write_report",
]
