"""`dart-hf train --config x.yaml`: fine-tune a student on DART-adapted data with `DartTrainer` (TRL's `trl sft`).

    dart-hf train --config recipes/smoke/dart/config_train.yaml --max_steps 2
    accelerate launch --config_file recipes/accelerate_configs/zero2.yaml recipes/train.py \
        --config recipes/qwen2.5-math-1.5b/dart/config_limo.yaml

Any `DartSFTConfig` / `ModelConfig` field can be set in the YAML file or overridden on the command line.
`dataset_name` is a Hub id, a folder written by `Dataset.save_to_disk`, or a .parquet/.json/.jsonl/.csv file.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from trl import ModelConfig, ScriptArguments

from ..errors import UsageError, one_line
from ..sft_config import DartSFTConfig
from ._common import parse, run

logger = logging.getLogger(__name__)


@dataclass
class DartTrainScriptArguments(ScriptArguments):
    """TRL's `ScriptArguments` (`dataset_name`, `dataset_config`, `dataset_train_split`, `dataset_test_split`, ...),
    where `dataset_name` may also be a local folder or file."""

    max_train_samples: Optional[int] = field(
        default=None, metadata={"help": "Train on the first N rows only (after loading, before filtering)."}
    )


DATACLASS_TYPES = (DartTrainScriptArguments, DartSFTConfig, ModelConfig)


def make_parser(subparsers: Optional[argparse._SubParsersAction] = None, prog: Optional[str] = None) -> Any:
    """A `TrlParser` over the script arguments, `DartSFTConfig` and `ModelConfig`, as `trl sft`'s."""
    from trl import TrlParser

    if subparsers is not None:
        return subparsers.add_parser(
            "train", help="fine-tune a student on DART-adapted data (DartTrainer)", dataclass_types=DATACLASS_TYPES
        )
    return TrlParser(DATACLASS_TYPES, prog=prog)


def main(script_args: DartTrainScriptArguments, training_args: DartSFTConfig, model_args: ModelConfig) -> Any:
    """Load the data and the model, train (resuming from the last checkpoint), save, evaluate, push; the trainer.

    From a `save_to_disk` folder, datasets' caching is off while this runs: TRL's preparation maps
    the data, and the cache files would land beside the saved dataset's own, in the user's folder
    (uncached, they go to a temporary folder that is removed at exit).
    """
    import datasets

    caching = datasets.is_caching_enabled()
    if script_args.dataset_name is not None and os.path.isdir(script_args.dataset_name):
        datasets.disable_caching()
    try:
        return _main(script_args, training_args, model_args)
    finally:
        if caching:
            datasets.enable_caching()


def _main(script_args: DartTrainScriptArguments, training_args: DartSFTConfig, model_args: ModelConfig) -> Any:
    import datasets
    import transformers
    from transformers import AutoTokenizer, set_seed
    from transformers.trainer_utils import get_last_checkpoint
    from trl import get_peft_config, get_quantization_config

    from ..data import load_split
    from ..trainer import DartTrainer

    set_seed(training_args.seed)
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        level=training_args.get_process_log_level(),
        handlers=[logging.StreamHandler(sys.stdout)],
        force=True,
    )
    datasets.utils.logging.set_verbosity(training_args.get_process_log_level())
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    logger.info("Script %s\nModel %s\nTraining %s", script_args, model_args, training_args)

    last_checkpoint = None
    if os.path.isdir(training_args.output_dir):
        last_checkpoint = get_last_checkpoint(training_args.output_dir)
    if last_checkpoint is not None and training_args.resume_from_checkpoint is None:
        logger.info("Checkpoint detected, resuming training at %s.", last_checkpoint)

    if script_args.dataset_name is None:
        raise UsageError("`dataset_name` is required (a Hub id, a save_to_disk folder or a data file).")
    try:
        train_dataset = load_split(
            script_args.dataset_name,
            script_args.dataset_train_split,
            script_args.dataset_config,
            script_args.dataset_streaming,
        )
    except (OSError, ValueError, KeyError, datasets.exceptions.DatasetsError) as err:
        if isinstance(err, UsageError):
            raise
        raise UsageError(f"cannot load dataset {script_args.dataset_name!r}: {one_line(err)}") from err
    if script_args.max_train_samples is not None:
        if isinstance(train_dataset, datasets.IterableDataset):
            train_dataset = train_dataset.take(script_args.max_train_samples)
        else:
            train_dataset = train_dataset.select(range(min(script_args.max_train_samples, len(train_dataset))))
    check_train_rows(train_dataset, script_args.dataset_name, training_args)
    eval_dataset = None
    if training_args.eval_strategy != "no":
        eval_dataset = load_split(
            script_args.dataset_name,
            script_args.dataset_test_split,
            script_args.dataset_config,
            script_args.dataset_streaming,
        )

    tokenizer = AutoTokenizer.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
    )
    check_prompt_lengths(train_dataset, tokenizer, training_args)
    model_init_kwargs = dict(
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
        attn_implementation=model_args.attn_implementation,
        dtype=model_args.dtype,
    )
    model_init_kwargs.update(training_args.model_init_kwargs or {})
    training_args.model_init_kwargs = model_init_kwargs

    trainer = DartTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
        quantization_config=get_quantization_config(model_args),
    )

    if isinstance(trainer.train_dataset, datasets.Dataset) and len(trainer.train_dataset) == 0:
        raise UsageError(
            f"no training row is left after TRL's preparation (max_length={training_args.max_length} may cut "
            "every completion away); raise --max_length"
        )
    checkpoint = training_args.resume_from_checkpoint or last_checkpoint
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = train_result.metrics
    if not isinstance(train_dataset, datasets.IterableDataset):
        metrics["train_samples"] = len(trainer.train_dataset)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()

    trainer.save_model(training_args.output_dir)
    logger.info("Model saved to %s", training_args.output_dir)
    # The DART card (config from the adapt run's stats.json beside the data); push_to_hub sends the same one.
    trainer.create_model_card(dataset_name=script_args.dataset_name)

    if eval_dataset is not None:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)

    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=script_args.dataset_name)
        logger.info("Model pushed to the Hub: %s", trainer.hub_model_id)

    if hasattr(trainer, "end"):  # transformers >= 5.18: finish trackers, destroy the process group
        trainer.end()
    return trainer


def check_train_rows(dataset: Any, name: str, args: DartSFTConfig) -> None:
    """Refuse, before the model loads, training data with no row or with no row `DartTrainer` would keep."""
    import datasets

    from ..schema import is_usable

    if not isinstance(dataset, datasets.Dataset):
        return  # streamed: rows are only known while training
    if len(dataset) == 0:
        raise UsageError(f"dataset {name!r} has no rows to train on")
    columns = dataset.column_names
    if args.filter_unusable and "dart_action" in columns and "dart_solution" in columns:
        rows = dataset.select_columns(["dart_action", "dart_solution"])
        if not any(is_usable(row) for row in rows):
            actions = sorted(set(rows["dart_action"]))
            raise UsageError(
                f"none of the {len(dataset)} rows of {name!r} is usable for training (dart_action: "
                f"{', '.join(actions)}; usable rows are imitate/explore/fallback with a solution); adapt again"
            )


def check_prompt_lengths(dataset: Any, tokenizer: Any, args: DartSFTConfig) -> None:
    """Refuse, before the model loads, a `max_length` that every prompt reaches: no completion token would be trained.

    Only for prompt-completion data truncated from the end (`truncation_mode="keep_start"`, TRL's
    default), where TRL would cut every completion away and then stop with a traceback.
    """
    import datasets

    if (
        not isinstance(dataset, datasets.Dataset)
        or args.max_length is None
        or args.truncation_mode != "keep_start"
        or "prompt" not in dataset.column_names
        or args.packing
    ):
        return
    shortest = None
    for prompt in dataset["prompt"]:
        if isinstance(prompt, str):
            text = prompt
        elif isinstance(prompt, list) and getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        else:
            return  # a shape TRL reads its own way: leave it to TRL
        n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        shortest = n if shortest is None else min(shortest, n)
        if shortest < args.max_length:
            return
    raise UsageError(
        f"--max_length {args.max_length} is shorter than every prompt (the shortest has {shortest} tokens): "
        "no completion token would be trained; raise --max_length"
    )


def cli(argv: Optional[Sequence[str]] = None, prog: str = "dart-hf train") -> int:
    """Parse, train, and turn bad input into one line on stderr; returns the exit status."""
    return run(prog, lambda: main(*parse(make_parser(prog=prog), argv)))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli(prog="train.py"))
