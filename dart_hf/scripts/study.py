"""`dart-hf study --config x.yaml`: static SFT vs DART vs pass-rate filtering vs RFT on held-out problems.

dart-hf study --config recipes/planted_gap/study/config_cpu.yaml
dart-hf study --config recipes/planted_gap/study/config_cpu.yaml --seeds 0 1 --n_train 100
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Optional

from ..errors import UsageError, one_line
from ..study import StudyConfig
from ._common import parse, run


def make_parser(subparsers: Optional[argparse._SubParsersAction] = None, prog: Optional[str] = None):
    """A `TrlParser` over `StudyConfig` (YAML via `--config`, CLI flags override it)."""
    from trl import TrlParser

    if subparsers is not None:
        return subparsers.add_parser("study", help="measure whether DART helps", dataclass_types=(StudyConfig,))
    return TrlParser((StudyConfig,), prog=prog)


def main(config: StudyConfig) -> dict:
    """Run the study and print its table."""
    from ..study import run_study
    from ..study.outputs import results_table

    results = run_study(config)
    print(results_table(results))
    print(f"\nwrote {', '.join(results['outputs'].values())} ({results['wall_seconds']:.0f} s)")
    return results


def cli(argv: Optional[Sequence[str]] = None, prog: str = "dart-hf study") -> int:
    """Parse, run, and turn bad input into one line on stderr (exit 2; a `RunError` exits 1), as every command does."""

    def study() -> dict:
        (config,) = parse(make_parser(prog=prog), argv)
        try:
            return main(config)
        except UsageError:
            raise
        except ValueError as err:  # a task the study cannot use (e.g. too few problems): the user's to fix
            raise UsageError(one_line(err)) from err

    return run(prog, study, log_level=logging.WARNING)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli())
