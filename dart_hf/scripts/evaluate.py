"""`dart-hf evaluate`: accuracy (any verifier; math-verify by default) and pass@k of a model on a test split; writes a JSON, prints a table.

    dart-hf evaluate --model outputs/smoke/trained --dataset_name champ --max_samples 20 \
        --n_samples 4 --ks 1 4 --output_file outputs/eval.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from ..config import DartConfig
from ..errors import UsageError
from ._common import parse, run


@dataclass
class EvalScriptArguments:
    """Which model on which problems, how many samples; generation and grading settings are `DartConfig`'s."""

    model: str = field(metadata={"help": "Model to evaluate: Hub id, local folder or .gguf file."})
    dataset_name: str = field(metadata={"help": "'champ', a Hub id, a save_to_disk folder or a data file."})
    dataset_split: Optional[str] = field(
        default=None,
        metadata={
            "help": "Split to evaluate (default: 'test' of a Hub dataset or DatasetDict folder; a single file, saved "
            "dataset, 'champ' or 'planted_gap' is used whole). A split the data does not have is an error."
        },
    )
    max_samples: Optional[int] = field(default=None, metadata={"help": "Evaluate the first N problems."})
    n_samples: int = field(default=1, metadata={"help": "Samples per problem."})
    ks: list[int] = field(default_factory=lambda: [1], metadata={"help": "k values for pass@k (each <= n_samples)."})
    output_file: str = field(default="outputs/eval.json", metadata={"help": "Where the JSON result is written."})
    verifier: Optional[str] = field(
        default=None,
        metadata={
            "help": "The judge: 'math', 'code', 'choice' or 'module:function' (default: 'code' for humaneval, "
            "else 'math'). See docs/verifiers.md."
        },
    )

    def check(self) -> None:
        """Refuse impossible settings before the model loads or any sample is drawn."""
        if self.max_samples is not None and self.max_samples < 1:
            raise UsageError(f"--max_samples must be >= 1, got {self.max_samples}")
        if self.n_samples < 1:
            raise UsageError(f"--n_samples must be >= 1, got {self.n_samples}")
        if not self.ks:
            raise UsageError("--ks needs at least one k")
        bad = [k for k in self.ks if not 1 <= k <= self.n_samples]
        if bad:
            raise UsageError(
                f"--ks {' '.join(map(str, bad))}: every k of pass@k must be between 1 and --n_samples "
                f"({self.n_samples}); sample more with --n_samples or pick smaller k"
            )


DATACLASS_TYPES = (EvalScriptArguments, DartConfig)


def make_parser(subparsers: Optional[argparse._SubParsersAction] = None, prog: Optional[str] = None) -> Any:
    """A `TrlParser` over `EvalScriptArguments` and `DartConfig` (YAML via `--config`, flags override it)."""
    from trl import TrlParser

    if subparsers is not None:
        return subparsers.add_parser(
            "evaluate", help="accuracy and pass@k of a model on a test split", dataclass_types=DATACLASS_TYPES
        )
    return TrlParser(DATACLASS_TYPES, prog=prog)


def main(args: EvalScriptArguments, config: DartConfig) -> dict:
    """Evaluate, write `output_file`, print a one-row markdown table; returns the result."""
    from ..backends.transformers import TransformersBackend
    from ..data import apply_dataset_defaults, default_verifier, load_expert_dataset
    from ..evaluation import evaluate_student
    from ..verifiers.base import stop_rule_of
    from ..verifiers.registry import apply_verifier_defaults, make_verifier

    args.check()
    args.verifier = args.verifier or default_verifier(args.dataset_name)
    verifier = make_verifier(args.verifier, config.verify_timeout)
    dataset = load_expert_dataset(args.dataset_name, split=args.dataset_split, n=args.max_samples, default_split="test")
    apply_dataset_defaults(args.dataset_name, config)
    apply_verifier_defaults(verifier, config, dataset.column_names)
    result = evaluate_student(
        TransformersBackend(args.model, stop_at_answer=stop_rule_of(verifier)),
        dataset,
        config,
        n_samples=args.n_samples,
        ks=tuple(args.ks),
        verifier=verifier,
    )
    result.update(_module_scores(dataset, result, args.ks, verifier))
    result["model"], result["dataset"], result["verifier"] = args.model, args.dataset_name, args.verifier
    # what `cards.model_card(eval_results=...)` / `DartTrainer.create_model_card` put into `model-index`
    result["eval_results"] = {args.dataset_name: {m: result[m] for m in ["accuracy"] + [f"pass@{k}" for k in args.ks]}}
    os.makedirs(os.path.dirname(os.path.abspath(args.output_file)), exist_ok=True)
    with open(args.output_file, "w") as fh:
        json.dump(result, fh, indent=2, default=str)
    metrics = ["accuracy"] + [f"pass@{k}" for k in args.ks]
    print("| model | dataset | problems | " + " | ".join(metrics) + " |")
    print("|---|---|---|" + "---|" * len(metrics))
    print(
        f"| {args.model} | {args.dataset_name} | {result['n_scored']} | "
        + " | ".join(f"{result[m]:.3f}" for m in metrics)
        + " |"
    )
    return result


def _module_scores(dataset: Any, result: dict, ks: Sequence[int], verifier: Any) -> dict:
    """pass@k and accuracy from the `evaluate` module (`dart_hf/metrics/pass_at_k.py`), on the scored rows.

    The verifier is the one that judged the samples, so its cache answers again without rerunning
    anything; the module's numbers replace the in-line ones (they agree: tested).
    """
    from ..metrics import load_pass_at_k

    scored = [(i, r) for i, r in enumerate(result["rows"]) if r.get("correct") is not None]
    if not scored:
        return {}
    scores = load_pass_at_k().compute(
        predictions=[r["responses"] for _, r in scored],
        references=[r["gold"] for _, r in scored],
        k=list(ks),
        verifier=verifier,
        rows=[dict(dataset[i]) for i, _ in scored],
    )
    return {"accuracy": scores["accuracy"], "no_verdict": scores["no_verdict"]} | {
        f"pass@{k}": scores[f"pass@{k}"] for k in ks
    }


def cli(argv: Optional[Sequence[str]] = None, prog: str = "dart-hf evaluate") -> int:
    """Parse, run, and turn bad input into one line on stderr; returns the exit status."""

    def go() -> dict:
        args, config = parse(make_parser(prog=prog), argv)
        args.check()
        return main(args, config)

    return run(prog, go)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli(prog="evaluate.py"))
