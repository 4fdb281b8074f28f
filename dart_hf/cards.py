"""Hub cards for DART outputs, and the pushes that publish them.

An adapted dataset on the Hub is only useful if a reader can tell, without running anything, what
DART changed, with which student and settings, and what it cost. `dataset_card` renders that from
`dart_hf.report.compute_stats`; `model_card` does the same for a student trained on such data.

* `dataset_card(stats, ...)`          - a `huggingface_hub.DatasetCard` (YAML metadata + markdown body);
* `model_card(base_model=..., ...)`   - a `huggingface_hub.ModelCard` for a trained student;
* `push_adapted_dataset(ds, repo_id)` - `Dataset.push_to_hub` + the dataset card, in one call;
* `push_model_card(repo_id, card)`    - the card only (the trainer pushes the weights itself).

The bodies are built in Python (no Jinja template) so the only dependency is `huggingface_hub`.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from huggingface_hub import DatasetCard, DatasetCardData, EvalResult, HfApi, ModelCard, ModelCardData, constants
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, HFValidationError
from huggingface_hub.utils import validate_repo_id

from .formatting import duration, number
from .schema import (  # noqa: F401  (PAPER_URL, PAPER_REF: kept importable from here)
    ACTION_MEANINGS,
    ACTIONS,
    COLUMN_DESCRIPTIONS,
    COLUMN_TYPES,
    OUTPUT_COLUMNS,
    PAPER_REF,
    PAPER_URL,
)

logger = logging.getLogger(__name__)

DATASET_TAGS = ("dart", "reasoning", "math", "synthetic", "sft")
MODEL_TAGS = ("dart", "trl", "sft")

#: Columns `DartAdapter` adds, as (type, meaning) for a card reader (in `OUTPUT_COLUMNS` order).
COLUMN_DOCS: dict[str, tuple[str, str]] = {
    name: (COLUMN_TYPES[name], COLUMN_DESCRIPTIONS[name]) for name in OUTPUT_COLUMNS
}

#: Training arguments shown first in a model card (the rest goes in a collapsed block).
_KEY_TRAINING_ARGS = (
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "lr_scheduler_type",
    "warmup_ratio",
    "warmup_steps",
    "weight_decay",
    "max_length",
    "packing",
    "completion_only_loss",
    "bf16",
    "seed",
    "expert_weight",
    "explore_weight",
)
_SECRET = re.compile(r"token|password|secret|api_?key", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------- helpers
def check_repo_id(repo_id: Any, *, what: str = "repo") -> str:
    """Fail before any upload with a message that says what a valid id looks like."""
    example = "my-user/limo-dart-smollm2" if what == "dataset" else "my-user/smollm2-135m-dart"
    hint = f"repo_id must be 'namespace/name' (e.g. {example!r})"
    if not isinstance(repo_id, str) or not repo_id:
        raise ValueError(f"{hint}, got {repo_id!r}")
    if repo_id.startswith(("http://", "https://", "hf://")) or repo_id.startswith("buckets/"):
        raise ValueError(f"{hint}, not a URL or bucket path: got {repo_id!r}")
    if repo_id.count("/") != 1:
        raise ValueError(f"{hint}: exactly one '/' between namespace and name, got {repo_id!r}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(f"{hint}: {err}") from err
    return repo_id


def _is_hub_id(name: Optional[str]) -> bool:
    if not name or name.count("/") != 1:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def _link(name: Optional[str], kind: str = "model") -> str:
    """A Hub id becomes a link; a local path stays code (it means nothing to a reader elsewhere)."""
    if not name:
        return "unknown"
    if _is_hub_id(name):
        prefix = "datasets/" if kind == "dataset" else ""
        return f"[{name}](https://huggingface.co/{prefix}{name})"
    return f"`{name}` (local)"


def _short(name: Optional[str]) -> str:
    return re.split(r"[\\/]", name.rstrip("/\\"))[-1] if name else ""


def _cell(value: Any) -> str:
    """One markdown table cell: no pipes or newlines may break the row."""
    if isinstance(value, (dict, list, tuple)):
        value = json.dumps(value, sort_keys=isinstance(value, dict), default=str)
    text = "–" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _size_category(n: int) -> str:
    """The Hub's `size_categories` bucket for n rows."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")]
    bounds += [(10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]
    for bound, label in bounds:
        if n < bound:
            return label
    return "n>1T" if n >= 10**12 else "1B<n<10B"


def _config_table(config: Optional[Mapping[str, Any]]) -> str:
    if not config:
        return "_No DART configuration was recorded with these statistics._"
    return _table(("setting", "value"), [(f"`{k}`", v) for k, v in config.items()])


def _versions(*packages: str) -> list[tuple[str, str]]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for p in packages:
        try:
            out.append((p, version(p)))
        except PackageNotFoundError:
            continue
    return out


# ---------------------------------------------------------------------------------------------- dataset card
def _dataset_body(
    stats: Mapping[str, Any], *, title: str, repo_id: Optional[str], source: Optional[str], student: Optional[str]
) -> str:
    n = int(stats.get("n_examples") or 0)
    usable = int(stats.get("usable") or 0)
    actions = {a: int((stats.get("actions") or {}).get(a, 0) or 0) for a in ACTIONS}
    cost = stats.get("cost") or {}
    config = stats.get("config")
    load_id = repo_id or "<namespace>/<this-dataset>"

    parts = [f"# {title}", ""]
    parts.append(
        f"The expert solutions of {_link(source, 'dataset')} rewritten by **DART** for the student model "
        f"{_link(student)}, so that every training demonstration stays within what that student can follow. "
        f"{n:,} rows, {usable:,} usable for training. Made with "
        f"`dart_hf` {stats.get('dart_hf_version') or ''}".rstrip()
        + "."
    )
    parts += [
        "",
        "## What DART did",
        "",
        "DART (Dynamic Adaptation of Reasoning Trajectories; " + PAPER_REF + ") adapts expert reasoning to a "
        "given student. Each expert solution is cut into steps s_1..s_T; for every prefix length t the student "
        "continues the solution several times and f_t, the fraction of continuations that reach the gold answer "
        "(checked by math equivalence), estimates how well it can finish after adopting t expert steps. The first "
        "step whose adoption makes f_t collapse is the *imitation gap*: an expert leap the student cannot follow. "
        "From the prefix before the gap DART keeps a student continuation that verifiably reaches the gold answer, "
        "so the adapted solution is expert steps up to the gap followed by the student's own correct reasoning. "
        "Solutions without a gap are kept unchanged. All per-step scores are stored, so the gap can be re-decided "
        "offline.",
        "",
        "## How it was made",
        "",
        _table(
            ("", ""),
            [
                ("student", _link(student)),
                ("source dataset", _link(source, "dataset")),
                ("dart_hf version", stats.get("dart_hf_version")),
            ],
        ),
        "",
        "DART configuration (`dart_hf.DartConfig`):",
        "",
        _config_table(config),
        "",
        "## Statistics",
        "",
        _table(
            ("action", "rows", "share", "meaning"),
            [(f"`{a}`", f"{c:,}", f"{c / n:.1%}" if n else "–", ACTION_MEANINGS[a]) for a, c in actions.items()],
        ),
        "",
        f"- rows: **{n:,}**, usable for training: **{usable:,}** (non-error rows with a non-empty `dart_solution`)",
        f"- expert steps per problem (mean): {number(stats.get('mean_steps'), 1)}",
        f"- mean f_0 (student alone): **{number(stats.get('mean_f0'), 3)}**; "
        f"mean f_T (after all expert steps): **{number(stats.get('mean_fT'), 3)}**",
    ]
    from .report import endings_text, token_cap_warning

    endings = endings_text(stats)
    if endings:
        parts.append(f"- how the student's rollouts ended: {_cell(endings)}")
        warning = token_cap_warning(stats)
        if warning:
            parts.append(f"- **warning**: {_cell(warning)}")
    selection = stats.get("selection") or {}
    if selection:
        parts.append(
            "- continuation chosen by: " + ", ".join(f"`{k or 'unknown'}` × {int(v):,}" for k, v in selection.items())
        )
    timeouts = stats.get("verify_timeouts")
    if isinstance(timeouts, Mapping) and timeouts.get("comparisons"):
        n_rows = int(timeouts.get("rows") or 0)
        parts.append(
            f"- math-verify timeouts: {int(timeouts['comparisons']):,} comparisons in {n_rows:,} rows "
            "(no verdict in time: counted as not correct)"
        )
    errors = stats.get("error_reasons") or {}
    if errors:
        parts.append("- error reasons: " + "; ".join(f"{int(c):,} × {_cell(r)}" for r, c in errors.items()))

    by_pos = stats.get("mean_success_by_position") or {}
    if by_pos:
        counts = stats.get("success_by_position_counts") or {}
        parts += [
            "",
            "Mean success rate f_t by relative position t/T in the expert solution (0 = student alone, 1 = the "
            "expert wrote everything):",
            "",
            _table(
                ("t/T", *by_pos.keys()),
                [
                    ("mean f_t", *(number(v, 3) for v in by_pos.values())),
                    *([("scores pooled", *(number(counts.get(k)) for k in by_pos))] if counts else []),
                ],
            ),
        ]
    hist = stats.get("gap_histogram") or {}
    if hist.get("relative"):
        parts += [
            "",
            "Where the imitation gap falls (non-error rows), as a fraction gap/T of the solution length:",
            "",
            _table(("gap/T", *hist["relative"].keys()), [("rows", *(number(v) for v in hist["relative"].values()))]),
        ]
    if hist.get("absolute"):
        parts += [
            "",
            "By gap step (1-based):",
            "",
            _table(("gap step", *hist["absolute"].keys()), [("rows", *(number(v) for v in hist["absolute"].values()))]),
        ]

    parts += [
        "",
        "## Cost",
        "",
        _table(
            ("", ""),
            [
                ("tokens generated by the student", number(stats.get("tokens_generated"))),
                ("wall time", duration(stats.get("wall_seconds"))),
                ("throughput", f"{number(stats.get('tokens_per_second'), 1)} tokens/s"),
                ("tokens per example", number(cost.get("tokens_per_example"), 1)),
                ("tokens per usable example", number(cost.get("tokens_per_usable_example"), 1)),
                ("seconds per example", number(cost.get("seconds_per_example"), 2)),
            ],
        ),
        "",
        "## Columns",
        "",
        "The source columns are kept; DART adds:",
        "",
        _table(("column", "type", "meaning"), [(f"`{c}`", t, d) for c, (t, d) in COLUMN_DOCS.items()]),
        "",
        "## Usage",
        "",
        "```python",
        "from datasets import load_dataset",
        "from dart_hf import is_usable",
        "",
        f'ds = load_dataset("{load_id}", split="train")',
        'ds = ds.filter(is_usable)  # drops `dart_action == "error"` rows and rows the fallback policy dropped',
        "",
        "# SFT on the adapted trajectories (prompt/completion), knowing which tokens the student wrote",
        "from dart_hf.sft_config import DartSFTConfig",
        "from dart_hf.trainer import DartTrainer",
        "",
        f'trainer = DartTrainer(model="{student or "<student>"}", train_dataset=ds,',
        '                      args=DartSFTConfig(output_dir="out", learning_rate=5e-6, num_train_epochs=3))',
        "trainer.train()",
        "```",
        "",
        "`dart_step_success` can also train a process reward model: `dart_hf.report.to_stepwise(ds)` exports "
        "TRL's stepwise-supervision format.",
        "",
        "## Citation",
        "",
        f"Method: {PAPER_REF}.",
        "",
    ]
    return "\n".join(parts)


def dataset_card(
    stats: Mapping[str, Any],
    *,
    repo_id: Optional[str] = None,
    source_dataset: Optional[str] = None,
    student: Optional[str] = None,
    license: Optional[str] = None,
    pretty_name: Optional[str] = None,
) -> DatasetCard:
    """The card of a DART-adapted dataset, from `dart_hf.report.compute_stats` output.

    `source_dataset` / `student` default to `stats["source"]` / `stats["student"]`. `license` should
    be the source dataset's (DART output inherits it); it is left out when unknown rather than guessed.
    """
    source = source_dataset or stats.get("source")
    student = student or stats.get("student")
    title = pretty_name or "DART-adapted reasoning data"
    if not pretty_name and source and student:
        title = f"{_short(source)} adapted by DART to {_short(student)}"
    data = DatasetCardData(
        license=license or stats.get("license"),
        language=["en"],
        pretty_name=title,
        size_categories=[_size_category(int(stats.get("n_examples") or 0))],
        source_datasets=[source] if source else None,
        task_categories=["text-generation"],
        tags=list(DATASET_TAGS),
    )
    body = _dataset_body(stats, title=title, repo_id=repo_id, source=source, student=student)
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


# ---------------------------------------------------------------------------------------------- model card
def _eval_table(eval_results: Mapping[str, Any]) -> str:
    metrics: list[str] = []
    for scores in eval_results.values():
        for m in scores if isinstance(scores, Mapping) else ["score"]:
            if m not in metrics:
                metrics.append(m)
    rows = []
    for name, scores in eval_results.items():
        scores = scores if isinstance(scores, Mapping) else {"score": scores}
        rows.append((name, *(number(scores.get(m), 4) for m in metrics)))
    return _table(("dataset", *metrics), rows)


def _eval_results_metadata(eval_results: Mapping[str, Any]) -> list[EvalResult]:
    """`model-index` entries, so the Hub shows the scores next to the model."""
    out = []
    for name, scores in eval_results.items():
        scores = scores if isinstance(scores, Mapping) else {"score": scores}
        for metric, value in scores.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                out.append(
                    EvalResult(
                        task_type="text-generation",
                        dataset_type=name,
                        dataset_name=name,
                        metric_type=metric,
                        metric_value=value,
                    )
                )
    return out


def model_card(
    *,
    base_model: str,
    dataset_id: Optional[str],
    dart_config: Optional[Mapping[str, Any]],
    training_args: Optional[Mapping[str, Any]],
    eval_results: Optional[Mapping[str, Mapping[str, Any]]] = None,
    repo_id: Optional[str] = None,
    license: Optional[str] = None,
) -> ModelCard:
    """The card of a student trained with DART data.

    `eval_results` maps a dataset name to its metrics, e.g. `{"gsm8k": {"accuracy": 0.41, "pass@4": 0.62}}`;
    numeric values also go to the `model-index` metadata. `training_args` may be a whole
    `TrainingArguments.to_dict()`: the key settings are shown in a table, the rest collapsed, secrets never.
    """
    name = _short(repo_id) if repo_id else f"{_short(base_model)}-dart"
    evals = _eval_results_metadata(eval_results) if eval_results else []
    data = ModelCardData(
        base_model=base_model,
        datasets=[dataset_id] if dataset_id else None,
        tags=list(MODEL_TAGS),
        library_name="transformers",
        pipeline_tag="text-generation",
        license=license,
        model_name=name,
        eval_results=evals or None,
    )
    args = {k: v for k, v in (training_args or {}).items() if not _SECRET.search(k)}
    key_rows = [(f"`{k}`", args[k]) for k in _KEY_TRAINING_ARGS if k in args]
    rest = {k: v for k, v in args.items() if k not in _KEY_TRAINING_ARGS}
    weights = (args.get("expert_weight", 1.0), args.get("explore_weight", 1.0))

    data_link = _link(dataset_id, "dataset") if dataset_id else "DART-adapted data"
    parts = [
        f"# {name}",
        "",
        f"{_link(base_model)} fine-tuned with **DART** on {data_link}: "
        "expert reasoning rewritten so that every demonstration stays within what this student can follow "
        f"({PAPER_REF}).",
        "",
        "## Base model",
        "",
        _link(base_model),
        "",
        "## Training data",
        "",
        (f"{data_link}: " if dataset_id else "")
        + "expert solutions adapted to this very student by DART. At the first expert step after which the "
        "student's success rate collapses (the imitation gap), the rest of the solution is replaced by the "
        "student's own continuation that reaches the gold answer; solutions without a gap are kept. The dataset "
        "card has the statistics and the cost of the adaptation.",
        "",
        "## DART settings",
        "",
        _config_table(dart_config),
        "",
        "## Training settings",
        "",
        "Token-level SFT on the adapted trajectories (`dart_hf.trainer.DartTrainer`, a TRL `SFTTrainer`). "
        f"Loss weights: expert-written tokens × {float(weights[0]):g}, student-written tokens × {float(weights[1]):g}"
        + (" (plain SFT, as in the paper)." if tuple(map(float, weights)) == (1.0, 1.0) else "."),
        "",
    ]
    if key_rows:
        parts += [_table(("setting", "value"), key_rows), ""]
    elif not args:
        parts += ["_No training arguments were recorded._", ""]
    if rest:
        parts += [
            "<details><summary>all other training arguments</summary>",
            "",
            "```json",
            json.dumps(rest, indent=1, sort_keys=True, default=str),
            "```",
            "",
            "</details>",
            "",
        ]
    if eval_results:
        parts += ["## Evaluation", "", _eval_table(eval_results), ""]
    parts += [
        "## Usage",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        f'generator = pipeline("text-generation", model="{repo_id or name}")',
        'question = "What is 12 * 7 + 5? Please reason step by step, and put your final answer within \\\\boxed{}."',
        'print(generator([{"role": "user", "content": question}], max_new_tokens=512)[0]["generated_text"])',
        "```",
        "",
    ]
    versions = _versions("dart-hf", "trl", "transformers", "datasets", "torch")
    if versions:
        parts += ["## Framework versions", "", *(f"- {p}: {v}" for p, v in versions), ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(parts))


# ---------------------------------------------------------------------------------------------- pushes
def _hub_metadata_from_datasets(api: HfApi, repo_id: str, revision: Optional[str], dataset: Any) -> dict[str, Any]:
    """`configs` / `dataset_info` as `push_to_hub` wrote them, so the card we push over its README keeps them."""
    try:
        path = api.hf_hub_download(repo_id, constants.REPOCARD_NAME, repo_type="dataset", revision=revision)
        with open(path, encoding="utf-8-sig", newline="") as f:
            pushed = DatasetCard(f.read()).data.to_dict()
        kept = {k: pushed[k] for k in ("configs", "dataset_info") if pushed.get(k)}
        if kept:
            return kept
    except (HfHubHTTPError, EntryNotFoundError) as err:
        logger.warning("could not read the README written by push_to_hub (%s); writing `configs` ourselves", err)
    splits = list(dataset.keys()) if hasattr(dataset, "keys") else [str(getattr(dataset, "split", None) or "train")]
    return {
        "configs": [{"config_name": "default", "data_files": [{"split": s, "path": f"data/{s}-*"} for s in splits]}]
    }


def push_adapted_dataset(
    dataset: Any,
    repo_id: str,
    *,
    stats: Mapping[str, Any],
    private: bool = False,
    token: Optional[str] = None,
    source_dataset: Optional[str] = None,
    student: Optional[str] = None,
    license: Optional[str] = None,
) -> str:
    """Publish an adapted dataset with its card; returns the dataset's URL on the Hub.

    Two commits: the parquet shards (`dataset.push_to_hub`), then README.md. `push_to_hub` writes a
    README of its own whose `configs`/`dataset_info` metadata tell the Hub where the data files are;
    they are read back at the data commit and carried over into the DART card, which is committed on
    top of exactly that commit. `private` only applies when the repo is created.
    """
    check_repo_id(repo_id, what="dataset")
    card = dataset_card(stats, repo_id=repo_id, source_dataset=source_dataset, student=student, license=license)
    commit = dataset.push_to_hub(repo_id, private=private, token=token, commit_message="Upload DART-adapted dataset")
    api = HfApi(token=token)
    data_commit = getattr(commit, "oid", None)
    for key, value in _hub_metadata_from_datasets(api, repo_id, data_commit, dataset).items():
        card.data[key] = value
    # parent_commit: if someone committed in between, fail instead of overwriting a README we did not read
    card.push_to_hub(
        repo_id, repo_type="dataset", token=token, commit_message="Add DART dataset card", parent_commit=data_commit
    )
    return f"{api.endpoint}/datasets/{repo_id}"


def push_model_card(repo_id: str, card: ModelCard, token: Optional[str] = None) -> str:
    """Push the card of a trained student (after `trainer.push_to_hub`, which uploads the weights);
    returns the commit URL."""
    check_repo_id(repo_id, what="model")
    return str(card.push_to_hub(repo_id, repo_type="model", token=token, commit_message="Add DART model card"))
