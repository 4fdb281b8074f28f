"""Adapt an expert dataset to one student with DART and write the demo's output layout.

    python recipes/adapt.py --config recipes/configs/adapt_limo_qwen2.5-math-1.5b.yaml
    python recipes/adapt.py --dataset_name champ --student path/to/model --output_dir outputs/adapted \
        --n_sim 4 --push_to_hub --hub_dataset_id my-user/champ-dart-smollm2

Writes `dataset/`, `dataset.parquet`, `stepwise.parquet`, `stats.json` and `report.html` into
`--output_dir`. Every `DartConfig` field can be set in the YAML file or on the command line.

Several processes (one per GPU, or CPU processes) share the work and write the same output as one:

    torchrun --nproc_per_node 8 recipes/adapt.py --config recipes/configs/adapt_limo_qwen2.5-math-1.5b.yaml
    accelerate launch --num_processes 8 recipes/adapt.py --config recipes/configs/adapt_limo_qwen2.5-math-1.5b.yaml
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

try:
    import dart_hf  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from trl import TrlParser

from dart_hf import DartAdapter, DartConfig
from dart_hf.data import check_columns, load_expert_dataset
from dart_hf.distributed import finish, process_state
from dart_hf.errors import RunError, UsageError, error_share_failure, one_line, run_command
from dart_hf.report import compute_stats, write_outputs
from dart_hf.resumable import adapt_and_write, output_dir_lock

logger = logging.getLogger(__name__)
PROG = "adapt.py"


@dataclass
class AdaptScriptArguments:
    dataset_name: str = field(
        metadata={"help": "'champ', a Hub id, a save_to_disk folder or a JSON/JSONL/Parquet/CSV file."}
    )
    student: str = field(metadata={"help": "Student: Hub id, local folder or .gguf file."})
    output_dir: str = field(default="outputs/adapted", metadata={"help": "Where the outputs are written."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Discard the chunks of an unfinished run in output_dir and start over (without it, "
            "chunks of another run are refused, never mixed in)."
        },
    )
    max_error_share: float = field(
        default=1.0,
        metadata={
            "help": "Exit with code 1, after writing the outputs, when more than this share of rows ended in "
            "'error' (0 fails on any error row); a run where every row errored always fails."
        },
    )
    dataset_split: str = field(default="train", metadata={"help": "Split to adapt."})
    max_samples: Optional[int] = field(default=None, metadata={"help": "Adapt only the first N rows."})
    student_revision: Optional[str] = field(default=None, metadata={"help": "Hub revision of the student."})
    batch_size: int = field(
        default=16,
        metadata={
            "help": "Rows per datasets.map batch; their rollouts are generated together, so larger keeps batches full."
        },
    )
    generation_batch_size: int = field(default=64, metadata={"help": "Sequences the student decodes together."})
    stop_at_answer: bool = field(
        default=True, metadata={"help": "Stop a rollout right after its first closed \\boxed{...}."}
    )
    share_prefix: bool = field(
        default=True, metadata={"help": "Prefill a prompt prefix shared by several prompts once (KV cache reuse)."}
    )
    chunk_size: int = field(
        default=64, metadata={"help": "Rows per saved chunk: rerunning after a crash resumes from the last chunk."}
    )
    push_to_hub: bool = field(default=False, metadata={"help": "Push the adapted dataset and its card."})
    hub_dataset_id: Optional[str] = field(default=None, metadata={"help": "Target repo, 'namespace/name'."})
    hub_private: bool = field(default=False, metadata={"help": "Create the Hub repo as private."})

    def check(self) -> None:
        """Refuse impossible settings before anything is loaded or generated."""
        for name in ("chunk_size", "batch_size", "generation_batch_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.max_samples is not None and self.max_samples < 1:
            raise UsageError(f"--max_samples must be >= 1, got {self.max_samples}")
        if not 0.0 <= self.max_error_share <= 1.0:
            raise UsageError(f"--max_error_share must be between 0 and 1, got {self.max_error_share}")
        if self.push_to_hub and not self.hub_dataset_id:
            raise UsageError("--push_to_hub needs --hub_dataset_id namespace/name")


def make_parser() -> TrlParser:
    return TrlParser((AdaptScriptArguments, DartConfig))


def parse_args(argv: Optional[list[str]] = None) -> tuple[AdaptScriptArguments, DartConfig]:
    """Command line + `--config` YAML; any mistake in them (unknown key, bad value) is a `UsageError`."""
    import yaml

    try:
        script_args, dart_config = make_parser().parse_args_and_config(argv)
    except (ValueError, TypeError, OSError, yaml.YAMLError) as err:
        raise UsageError(one_line(err)) from err
    script_args.check()
    return script_args, dart_config


def build_adapter(script_args: AdaptScriptArguments, dart_config: DartConfig) -> DartAdapter:
    """The student (tokenizer and config loaded now, so that one that cannot load stops the run here) and its adapter."""
    from dart_hf.backends.transformers import TransformersBackend

    student = TransformersBackend(
        script_args.student,
        revision=script_args.student_revision,
        batch_size=script_args.generation_batch_size,
        stop_at_answer=script_args.stop_at_answer,
        share_prefix=script_args.share_prefix,
    )
    student.check_loadable()
    return DartAdapter(student, dart_config)


def main(script_args: AdaptScriptArguments, dart_config: DartConfig) -> Optional[dict]:
    """Adapt and write the outputs; the stats on the main process, None on the others.

    Raises `UsageError` (bad command or inputs) or `RunError` (the student, a server or the verifier
    cannot work; or too many rows ended in error, checked after the outputs are written).
    """
    script_args.check()
    state = process_state()  # before the student loads: it goes to this process's device
    out = script_args.output_dir
    with output_dir_lock(out, state):  # writable, and ours alone: checked before any generation
        with state.main_process_first():  # the main process fills the datasets cache, the others reuse it
            dataset = load_expert_dataset(
                script_args.dataset_name, split=script_args.dataset_split, n=script_args.max_samples
            )
        if script_args.dataset_name == "champ" and dart_config.steps_column is None:
            dart_config.steps_column = "steps"
        check_columns(dataset, dart_config)
        adapter = build_adapter(script_args, dart_config)

        start = time.perf_counter()

        def write(adapted):
            wall = time.perf_counter() - start  # of this invocation: a resumed run counts only what it redid
            stats = compute_stats(
                adapted,
                config=dart_config.to_dict(),
                wall_seconds=wall,
                student=script_args.student,
                source=script_args.dataset_name,
            )
            stats["num_processes"] = state.num_processes
            paths = write_outputs(adapted, out, stats=stats)
            logger.info("wrote %s", ", ".join(paths))
            return adapted, stats

        done = adapt_and_write(
            dataset,
            adapter,
            out,
            write,
            chunk_size=script_args.chunk_size,
            batch_size=script_args.batch_size,
            state=state,
            overwrite=script_args.overwrite_output_dir,
        )
    if done is None:
        return None  # the main process gathered every row and writes the outputs
    adapted, stats = done
    wall = stats["wall_seconds"]
    print(
        f"actions: {stats['actions']}  tokens: {stats['tokens_generated']}  wall: {wall:.0f}s"
        f" ({state.num_processes} process{'es' if state.num_processes > 1 else ''}) -> {out}"
    )
    errors = [e for a, e in zip(adapted["dart_action"], adapted["dart_error"]) if a == "error"]
    failure = error_share_failure(len(errors), len(adapted), script_args.max_error_share, errors[0] if errors else "")
    if failure is not None:
        raise RunError(f"{failure} (outputs written to {out})")
    if script_args.push_to_hub:
        from dart_hf.cards import push_adapted_dataset

        url = push_adapted_dataset(
            adapted,
            script_args.hub_dataset_id,
            stats=stats,
            private=script_args.hub_private,
            source_dataset=script_args.dataset_name,
            student=script_args.student,
        )
        print(f"pushed to {url}")
    return stats


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        _, code = run_command(PROG, lambda: main(*parse_args()))
    finally:
        finish()  # end the process group of a torchrun / accelerate launch run
    sys.exit(code)
