"""Numbers, durations and table cells as people read them: one set of helpers for the HTML report and the Hub cards.

Missing or non-finite values (None, NaN, inf) print as an en dash, so a table never shows `nan`.
"""

from __future__ import annotations

import json
import math
from typing import Any

#: What a missing or non-finite value prints as.
MISSING = "–"


def is_num(x: Any) -> bool:
    """A finite int or float (not a bool): a value that can be averaged or formatted as a number."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def number(value: Any, digits: int = 2) -> str:
    """`1,234` for ints (and for integral floats from 1000 up), `1,234.57` for other floats; `str` otherwise."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return MISSING
        if value.is_integer() and abs(value) >= 1000:
            return f"{int(value):,}"
        return f"{value:,.{digits}f}"
    return str(value)


def duration(seconds: Any) -> str:
    """`42.0 s` under two minutes, `12.5 min (750 s)` under two hours, then `3.2 h (11,520 s)`."""
    if not is_num(seconds):
        return MISSING
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min ({seconds:,.0f} s)"
    return f"{seconds / 3600:.1f} h ({seconds:,.0f} s)"


def percent(share: Any, digits: int = 1) -> str:
    """`40.0%` for a share of 0.4."""
    if not is_num(share):
        return MISSING
    return f"{share:.{digits}%}"


def compact(value: Any) -> str:
    """`1`, `0.5`, `5e-06`: the shortest form, for settings such as loss weights."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return MISSING if value is None else str(value)
    return f"{float(value):g}" if math.isfinite(value) else MISSING


def markdown_cell(value: Any) -> str:
    """One markdown table cell: containers as JSON, None as `MISSING`; no pipe or newline may break the row."""
    if isinstance(value, (dict, list, tuple)):
        value = json.dumps(value, sort_keys=isinstance(value, dict), default=str)
    text = MISSING if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")
