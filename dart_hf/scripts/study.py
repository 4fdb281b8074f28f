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

from ..study import StudyConfig


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
    """Parse, run, and turn bad input into one line on stderr with exit status 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = make_parser(prog=prog)
    try:
        (config,) = parser.parse_args_and_config(list(argv) if argv is not None else None)
    except (ValueError, FileNotFoundError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    try:
        main(config)
    except (ValueError, FileNotFoundError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli())
