"""The two ways a run ends early, and how a command reports them.

A problem with one *row* (no gold answer, a prompt too long, a request the server rejects) becomes
that row's `dart_action="error"` and the run goes on. A problem with the *command* or the *run*
(a typo, a student that cannot load, no server answering) would turn every row into an error, so it
stops the run before anything is written, with one line that says what to fix:

- `UsageError` (exit code 2): the command or its inputs are wrong. Subclasses `ValueError`, so code
  that caught the `ValueError`s raised before keeps working.
- `RunError` (exit code 1): the run cannot go on (student, servers, verifier worker). `DartAdapter`
  re-raises it instead of writing an error row.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Optional, TypeVar

from .redaction import redact

T = TypeVar("T")


class UsageError(ValueError):
    """The command or its inputs are wrong: fix the command (exit code 2)."""

    exit_code = 2


class RunError(RuntimeError):
    """The run cannot go on whatever the row: fix the environment it runs in (exit code 1)."""

    exit_code = 1


def one_line(err: BaseException) -> str:
    """The error's message on one line (continuation lines of library messages folded in, URL credentials masked)."""
    text = redact(" ".join(str(err).split()))
    return text or type(err).__name__


def report(prog: str, err: BaseException) -> int:
    """Print `prog: error: <message>` on stderr and return the exit code for `err`."""
    print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
    return getattr(err, "exit_code", 1)


def run_command(prog: str, fn: Callable[[], T]) -> tuple[Optional[T], int]:
    """Call `fn`; a `UsageError` or `RunError` becomes one line on stderr and its exit code.

    Anything else is a bug and keeps its traceback.
    """
    try:
        return fn(), 0
    except (UsageError, RunError) as err:
        return None, report(prog, err)


def error_share_failure(n_errors: int, n_rows: int, max_error_share: float, example: str = "") -> Optional[RunError]:
    """The `RunError` a finished run ends with when too many rows ended in `error`, else None.

    A run fails when every row errored (whatever the threshold: nothing was adapted), or when the
    share of error rows is greater than `max_error_share` (1.0, the default, leaves only the first
    rule; 0.0 fails on any error row).
    """
    if not 0.0 <= max_error_share <= 1.0:
        raise UsageError(f"max_error_share must be between 0 and 1, got {max_error_share}")
    if n_errors == 0 or n_rows == 0:
        return None
    share = n_errors / n_rows
    if n_errors < n_rows and share <= max_error_share:
        return None
    rule = "every row" if n_errors == n_rows else f"more than max_error_share={max_error_share:g}"
    first = f"; first error: {example}" if example else ""
    return RunError(f"{n_errors} of {n_rows} rows ended in error ({rule}){first}")
