"""Accuracy (math-verify) and pass@k of a model on a test split; writes a JSON and prints a table.

    python recipes/evaluate.py --model outputs/smoke/trained --dataset_name champ --max_samples 20 \
        --n_samples 4 --ks 1 4 --output_file outputs/eval.json
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Optional

try:
    import dart_hf  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trl import TrlParser

from dart_hf import DartConfig
from dart_hf.data import load_expert_dataset
from dart_hf.evaluation import evaluate_student


@dataclass
class EvalScriptArguments:
    model: str = field(metadata={"help": "Model to evaluate: Hub id, local folder or .gguf file."})
    dataset_name: str = field(metadata={"help": "'champ', a Hub id, a save_to_disk folder or a data file."})
    dataset_split: str = field(
        default="test",
        metadata={"help": "Split of a Hub dataset or DatasetDict folder (single files and datasets are used whole)."},
    )
    max_samples: Optional[int] = field(default=None, metadata={"help": "Evaluate the first N problems."})
    n_samples: int = field(default=1, metadata={"help": "Samples per problem."})
    ks: list[int] = field(default_factory=lambda: [1], metadata={"help": "k values for pass@k (each <= n_samples)."})
    output_file: str = field(default="outputs/eval.json", metadata={"help": "Where the JSON result is written."})


def make_parser() -> TrlParser:
    return TrlParser((EvalScriptArguments, DartConfig))


def main(args: EvalScriptArguments, config: DartConfig) -> dict:
    from dart_hf.backends.transformers import TransformersBackend

    dataset = load_expert_dataset(args.dataset_name, split=args.dataset_split, n=args.max_samples)
    result = evaluate_student(
        TransformersBackend(args.model), dataset, config, n_samples=args.n_samples, ks=tuple(args.ks)
    )
    result["model"], result["dataset"] = args.model, args.dataset_name
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


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
