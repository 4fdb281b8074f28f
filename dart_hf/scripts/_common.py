"""What every `dart-hf` command shares: YAML + flags through `TrlParser`, and one line on stderr for bad input."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Optional

from ..errors import UsageError, one_line, run_command


def parse(parser: Any, argv: Optional[Sequence[str]]) -> tuple:
    """`parser.parse_args_and_config(argv)`; a mistake in the YAML or the flags (unknown key, bad value) is a `UsageError`.

    Argparse's own errors (unknown flag, missing required flag) still print the usage and exit 2.
    """
    import yaml

    try:
        return parser.parse_args_and_config(list(argv) if argv is not None else None)
    except (ValueError, TypeError, OSError, yaml.YAMLError) as err:
        raise UsageError(one_line(err)) from err


def run(prog: str, fn: Callable[[], Any], log_level: int = logging.INFO) -> int:
    """Call `fn` and return the exit status: 0, 1 (`RunError`) or 2 (`UsageError`, a missing package or file).

    A missing optional package (the offline student, CHAMP) or input file is the user's to fix, so it
    is reported like a bad flag; anything else is a bug and keeps its traceback.
    """
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s")

    def guarded() -> Any:
        try:
            return fn()
        except (ModuleNotFoundError, FileNotFoundError) as err:
            raise UsageError(str(err)) from err

    return run_command(prog, guarded)[1]
