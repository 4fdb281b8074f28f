"""`dart-hf adapt --config x.yaml`: adapt an expert dataset to one student and write the demo's output layout.

    dart-hf adapt --config recipes/qwen2.5-math-1.5b/dart/config_adapt_limo.yaml
    dart-hf adapt --dataset_name champ --student path/to/model --output_dir outputs/adapted \
        --n_sim 4 --push_to_hub --hub_dataset_id my-user/champ-dart-smollm2

Writes `dataset/`, `dataset.parquet`, `stepwise.parquet`, `stats.json` and `report.html` into
`--output_dir`; `stats.json["on_policy"]` checks that the student-written text in the rows is what the
student sampled (`dart_hf.onpolicy`). Every `DartConfig` field can be set in the YAML file or on the command line (flags
override the YAML). Several processes (one per GPU, or CPU processes) share the work and write the
same output as one:

    torchrun --nproc_per_node 8 recipes/adapt.py --config recipes/qwen2.5-math-1.5b/dart/config_adapt_limo.yaml
    accelerate launch --num_processes 8 recipes/adapt.py --config recipes/qwen2.5-math-1.5b/dart/config_adapt_limo.yaml
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from ..config import DartConfig
from ..errors import RunError, UsageError, error_share_failure
from ._common import check_hub_push, check_repo_id, parse, run

logger = logging.getLogger(__name__)
SUMMARIES = ("line", "table")


@dataclass
class AdaptScriptArguments:
    """What to adapt, for which student, where to write it; the DART knobs themselves are `DartConfig`'s."""

    dataset_name: str = field(
        metadata={
            "help": "'planted_gap', 'champ', 'humaneval', a Hub id, a save_to_disk folder or a JSON/JSONL/Parquet/CSV "
            "file.",
            "aliases": ["--dataset"],
        }
    )
    student: str = field(
        metadata={
            "help": "Student: Hub id, local folder or .gguf file; with --server_urls, the model name the servers "
            "serve (its tokenizer loads from there too)."
        }
    )
    output_dir: str = field(
        default="outputs/adapted", metadata={"help": "Where the outputs are written.", "aliases": ["--out"]}
    )
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
    dataset_split: str = field(default="train", metadata={"help": "Split to adapt.", "aliases": ["--split"]})
    max_samples: Optional[int] = field(
        default=None, metadata={"help": "Adapt only the first N rows.", "aliases": ["--n"]}
    )
    student_revision: Optional[str] = field(default=None, metadata={"help": "Hub revision of the student."})
    batch_size: int = field(
        default=16,
        metadata={
            "help": "Rows per datasets.map batch; their rollouts are generated together, so larger keeps batches full."
        },
    )
    generation_batch_size: int = field(default=64, metadata={"help": "Sequences the student decodes together."})
    server_urls: Optional[list[str]] = field(
        default=None,
        metadata={
            "help": "Sample from these OpenAI-compatible servers (vLLM, sglang, TGI, `transformers serve`) instead of "
            "loading the student in-process. Credentials in a URL (http://user:password@host:8000) are sent as "
            "Basic auth and shown as http://***@host:8000 everywhere."
        },
    )
    api_key_env: Optional[str] = field(
        default=None,
        metadata={
            "help": "Name of the environment variable holding the servers' API key (sent as a Bearer token). "
            "The key itself is never a flag or a YAML value, so it stays out of process lists and configs."
        },
    )
    stop_at_answer: bool = field(
        default=True,
        metadata={
            "help": "Stop a rollout once its answer is written: right after its first closed \\boxed{...}, or "
            "where the verifier's stop rule says (code: once the answer's fenced block is closed)."
        },
    )
    share_prefix: bool = field(
        default=True, metadata={"help": "Prefill a prompt prefix shared by several prompts once (KV cache reuse)."}
    )
    shared_kv: bool = field(
        default=True,
        metadata={
            "help": "While decoding, the samples of one prompt read its KV from one copy (same completions; "
            "faster with long prompts and several samples each). Off: one KV row per sample."
        },
    )
    chunk_size: int = field(
        default=64, metadata={"help": "Rows per saved chunk: rerunning after a crash resumes from the last chunk."}
    )
    summary: str = field(
        default="line",
        metadata={
            "help": "What is printed: 'line' (totals on one line) or 'table' (the run's budget first, then one "
            "line per problem: action, gap, f_0..f_T, tokens; then totals, as the demo does).",
            "choices": list(SUMMARIES),
        },
    )
    verifier: Optional[str] = field(
        default=None,
        metadata={
            "help": "The judge of the student's answers (default: 'code' for humaneval, else 'math'): 'math' "
            "(math-verify), 'code' (run the last code block "
            "against the row's tests in a sandbox), 'choice' (multiple choice), or 'module:function' (a TRL "
            "reward function or a Verifier). See docs/verifiers.md."
        },
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
            raise UsageError(f"--max_samples must be >= 1 (the number of problems to adapt), got {self.max_samples}")
        if not 0.0 <= self.max_error_share <= 1.0:
            raise UsageError(f"--max_error_share must be between 0 and 1, got {self.max_error_share}")
        if self.summary not in SUMMARIES:
            raise UsageError(f"--summary must be one of {', '.join(SUMMARIES)}, got {self.summary!r}")
        if self.push_to_hub and not self.hub_dataset_id:
            raise UsageError("--push_to_hub needs --hub_dataset_id namespace/name")
        if self.api_key_env and not self.server_urls:
            raise UsageError("--api_key_env is for --server_urls")
        if self.api_key_env and not os.environ.get(self.api_key_env):
            raise UsageError(f"--api_key_env {self.api_key_env}: that environment variable is not set")
        if self.server_urls and not self.student:
            raise UsageError("--server_urls needs --student, the model name the servers serve")
        if self.hub_dataset_id is not None:
            check_repo_id(self.hub_dataset_id, "--hub_dataset_id")


DATACLASS_TYPES = (AdaptScriptArguments, DartConfig)


def make_parser(subparsers: Optional[argparse._SubParsersAction] = None, prog: Optional[str] = None) -> Any:
    """A `TrlParser` over `AdaptScriptArguments` and `DartConfig` (YAML via `--config`, flags override it)."""
    from trl import TrlParser

    if subparsers is not None:
        return subparsers.add_parser(
            "adapt", help="adapt an expert dataset to a student with DART", dataclass_types=DATACLASS_TYPES
        )
    return TrlParser(DATACLASS_TYPES, prog=prog)


def parse_args(argv: Optional[Sequence[str]] = None, parser: Any = None) -> tuple[AdaptScriptArguments, DartConfig]:
    """Command line + `--config` YAML; any mistake in them (unknown key, bad value) is a `UsageError`."""
    script_args, dart_config = parse(parser or make_parser(), argv)
    script_args.check()
    return script_args, dart_config


def default_student(dataset_name: str) -> str:
    """The student used when none is named (the demo): the planted-gap student for planted_gap, else SmolLM2-135M GGUF."""
    from ..data import PLANTED_GAP

    if dataset_name == PLANTED_GAP:
        from ..tasks.student import planted_student

        return planted_student()
    from ..local_models import smollm2_gguf_path

    return smollm2_gguf_path()


def build_adapter(script_args: AdaptScriptArguments, dart_config: DartConfig, verifier: Any = None) -> Any:
    """The student (tokenizer and config loaded now, so that one that cannot load stops the run here) and its adapter."""
    from ..adapter import DartAdapter
    from ..backends.transformers import TransformersBackend
    from ..verifiers.base import stop_rule_of

    # the verifier says where an answer ends (code: its closed block), unless --stop_at_answer false
    stop_at_answer = stop_rule_of(verifier) if script_args.stop_at_answer else False
    if script_args.server_urls:
        from ..backends.openai import OpenAIServerBackend

        api_key = os.environ.get(script_args.api_key_env) if script_args.api_key_env else None
        try:
            server = OpenAIServerBackend(
                script_args.server_urls, script_args.student, api_key=api_key, stop_at_answer=stop_at_answer
            )
        except ValueError as err:
            raise UsageError(str(err)) from err
        return DartAdapter(server, dart_config, verifier=verifier)
    student = TransformersBackend(
        script_args.student,
        revision=script_args.student_revision,
        batch_size=script_args.generation_batch_size,
        stop_at_answer=stop_at_answer,
        share_prefix=script_args.share_prefix,
        shared_kv=script_args.shared_kv,
    )
    student.check_loadable()
    return DartAdapter(student, dart_config, verifier=verifier)


def main(script_args: AdaptScriptArguments, dart_config: DartConfig) -> Optional[dict]:
    """Adapt and write the outputs; the stats on the main process, None on the others.

    Raises `UsageError` (bad command or inputs) or `RunError` (the student, a server or the verifier
    cannot work; or too many rows ended in error, checked after the outputs are written).
    """
    from ..data import apply_dataset_defaults, check_columns, default_verifier, load_expert_dataset
    from ..distributed import process_state
    from ..onpolicy import on_policy_check
    from ..report import compute_stats, write_outputs
    from ..report.outputs import check_outputs
    from ..resumable import adapt_and_write, output_dir_lock
    from ..verifiers.registry import apply_verifier_defaults, make_verifier

    script_args.check()
    script_args.verifier = script_args.verifier or default_verifier(script_args.dataset_name)
    verifier = make_verifier(script_args.verifier, dart_config.verify_timeout)  # a bad spec stops here
    state = process_state()  # before the student loads: it goes to this process's device
    out = script_args.output_dir

    def up_front(out_dir: str) -> None:  # on the main process, once the lock is held
        check_outputs(out_dir)
        if script_args.push_to_hub:
            check_hub_push(script_args.hub_dataset_id, "--hub_dataset_id")

    # Writable, ours alone, nothing in the way that dart_hf did not write, a push that can happen:
    # checked before anything is loaded or generated.
    with output_dir_lock(out, state, check=up_front):
        with state.main_process_first():  # the main process fills the datasets cache, the others reuse it
            dataset = load_expert_dataset(
                script_args.dataset_name, split=script_args.dataset_split, n=script_args.max_samples
            )
        apply_dataset_defaults(script_args.dataset_name, dart_config)
        apply_verifier_defaults(verifier, dart_config, dataset.column_names)
        check_columns(dataset, dart_config)
        if not script_args.student:
            script_args.student = default_student(script_args.dataset_name)
        if script_args.summary == "table" and state.is_main_process:
            from ._summary import print_header

            print_header(len(dataset), script_args.dataset_name, script_args.student, dart_config)
        adapter = build_adapter(script_args, dart_config, verifier)

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
            stats["verifier"] = script_args.verifier
            # is the student's text in the rows what it sampled? one forward per explored row (dart_hf.onpolicy)
            stats["on_policy"] = on_policy_check(adapted, adapter.backend)
            paths = write_outputs(adapted, out, stats=stats)
            logger.info("wrote %s", ", ".join(paths))
            return adapted, stats, paths

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
    adapted, stats, paths = done
    from ._summary import print_line, print_table

    if script_args.summary == "table":
        print_table(adapted, stats, paths)
    else:
        print_line(stats, out, state.num_processes)
    errors = [e for a, e in zip(adapted["dart_action"], adapted["dart_error"]) if a == "error"]
    failure = error_share_failure(len(errors), len(adapted), script_args.max_error_share, errors[0] if errors else "")
    if failure is not None:
        raise RunError(f"{failure} (outputs written to {out})")
    if script_args.push_to_hub:
        from ..cards import push_adapted_dataset

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


def cli(argv: Optional[Sequence[str]] = None, prog: str = "dart-hf adapt") -> int:
    """Parse, run, end the process group of a torchrun / accelerate launch run; returns the exit status."""
    from ..distributed import finish

    code: Optional[int] = None
    try:
        code = run(prog, lambda: main(*parse_args(argv, make_parser(prog=prog))))
        return code
    finally:
        finish(wait=code == 0)  # success: wait for the other processes; a failure leaves at once


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli(prog="adapt.py"))
