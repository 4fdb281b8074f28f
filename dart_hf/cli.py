"""`dart-hf <command>`: a thin dispatcher, as `trl <command>`, to `dart_hf.scripts.<command>`.

Each command's module parses its own arguments (`make_parser()`: a `TrlParser`, so `--config x.yaml`
and flag overrides work the same in `dart-hf adapt` and `python recipes/adapt.py`) and runs `main`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Optional

COMMANDS = {
    "adapt": "adapt an expert dataset to a student with DART (--config x.yaml; any DartConfig field as a flag)",
    "train": "fine-tune a student on DART-adapted data with DartTrainer (--config x.yaml; "
    "multi-GPU: accelerate launch recipes/train.py)",
    "evaluate": "accuracy and pass@k of a model on a test split",
    "demo": "adapt planted-gap problems for a small student trained on them (or CHAMP for SmolLM2-135M with "
    "--dataset champ) on this machine (no GPU, no Hub) and write a report: `adapt` with presets",
    "study": "measure whether DART helps: static SFT vs DART vs pass-rate filtering vs RFT (--config x.yaml)",
}


def make_parser() -> argparse.ArgumentParser:
    """The `dart-hf` parser: it only picks the command; `dart-hf <command> --help` lists that command's options."""
    parser = argparse.ArgumentParser(
        prog="dart-hf", description="DART: adapt expert reasoning data to a small student.", allow_abbrev=False
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    for name, help_text in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)  # the command's own parser handles -h
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `dart-hf` console script; returns the exit status.

    0: done; 1: the run could not go on (`RunError`: student, server, verifier, or too many error
    rows); 2: bad command or inputs (`UsageError`, a missing package or file). One line on stderr.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args, _ = make_parser().parse_known_args(argv[:1])
    module = importlib.import_module(f"dart_hf.scripts.{args.command}")
    return module.cli(argv[1:], prog=f"dart-hf {args.command}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
