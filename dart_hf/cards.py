"""Hub cards for DART outputs, and the pushes that publish them.

An adapted dataset on the Hub is only useful if a reader can tell, without running anything, what
DART changed, with which student and settings, and what it cost. `dataset_card` renders that from
`dart_hf.report.compute_stats`; `model_card` does the same for a student trained on such data.

* `dataset_card(stats, ...)`          - a `huggingface_hub.DatasetCard` (YAML metadata + markdown body);
* `model_card(base_model=..., ...)`   - a `huggingface_hub.ModelCard` for a trained student
  (`DartTrainer.create_model_card` renders it for `trainer.push_to_hub`);
* `push_adapted_dataset(ds, repo_id)` - `Dataset.push_to_hub` + the dataset card, in one call;
* `push_model_card(repo_id, card)`    - the card only, e.g. to update it after an evaluation.

The bodies are the Jinja2 templates in `dart_hf/templates/`, rendered by `DatasetCard.from_template` /
`ModelCard.from_template` as TRL renders its cards; this module computes their context: links, tables
as rows of cells (numbers formatted by `dart_hf.formatting`) and the YAML metadata. It stays one
module (a little over 400 lines): both cards share the links, tables and Hub checks below.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from huggingface_hub import DatasetCard, DatasetCardData, EvalResult, HfApi, ModelCard, ModelCardData, constants
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, HFValidationError
from huggingface_hub.utils import validate_repo_id

from .formatting import compact, duration, is_num, markdown_cell, number, percent
from .schema import (
    ACTION_MEANINGS,
    ACTIONS,
    COLUMN_DESCRIPTIONS,
    COLUMN_TYPES,
    OUTPUT_COLUMNS,
    PAPER_CITATION,
    PAPER_REF,
    USABLE_RULE,
)

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
DATASET_CARD_TEMPLATE = TEMPLATES / "dataset_card.md"
MODEL_CARD_TEMPLATE = TEMPLATES / "model_card.md"

DATASET_TAGS = ("dart", "reasoning", "math", "synthetic", "sft")
MODEL_TAGS = ("dart", "trl", "sft")

#: Columns `DartAdapter` adds, as (type, meaning) for a card reader (in `OUTPUT_COLUMNS` order).
COLUMN_DOCS: dict[str, tuple[str, str]] = {
    name: (COLUMN_TYPES[name], COLUMN_DESCRIPTIONS[name]) for name in OUTPUT_COLUMNS
}

#: Training arguments shown first in a model card (the rest goes in a collapsed block).
_KEY_TRAINING_ARGS = tuple(
    "learning_rate num_train_epochs max_steps per_device_train_batch_size gradient_accumulation_steps "
    "lr_scheduler_type warmup_ratio warmup_steps weight_decay max_length packing completion_only_loss bf16 seed "
    "expert_weight explore_weight".split()
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
    if not name or name.count("/") != 1 or os.path.exists(name):
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


def _table(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> dict[str, list]:
    """A table for the templates' `table` macro: every cell already escaped for markdown."""
    return {"header": [markdown_cell(h) for h in header], "rows": [[markdown_cell(c) for c in row] for row in rows]}


def _config_table(config: Optional[Mapping[str, Any]]) -> Optional[dict[str, list]]:
    return _table(("setting", "value"), [(f"`{k}`", v) for k, v in config.items()]) if config else None


def _size_category(n: int) -> str:
    """The Hub's `size_categories` bucket for n rows."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")]
    bounds += [(10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]
    for bound, label in bounds:
        if n < bound:
            return label
    return "n>1T" if n >= 10**12 else "1B<n<10B"


def _versions(*packages: str) -> list[tuple[str, str]]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for p in packages:
        try:
            out.append((p, version(p)))
        except PackageNotFoundError:
            continue
    return out


def adapt_config_for(dataset_name: Optional[str]) -> Optional[dict[str, Any]]:
    """The DART config of the adapt run that wrote a local dataset, from the `stats.json` beside it.

    `recipes/adapt.py` writes `dataset/`, `dataset.parquet` and `stats.json` into one folder, so the
    config is found from any of them (or the folder itself). None for a Hub id or when there is none.
    """
    if not dataset_name or not os.path.exists(dataset_name):
        return None
    path = os.path.abspath(dataset_name)
    for folder in (path, os.path.dirname(path)) if os.path.isdir(path) else (os.path.dirname(path),):
        stats_path = os.path.join(folder, "stats.json")
        if os.path.isfile(stats_path):
            try:
                with open(stats_path, encoding="utf-8") as f:
                    config = json.load(f).get("config")
            except (OSError, ValueError, AttributeError) as err:
                logger.warning("could not read the DART config from %s: %s", stats_path, err)
                return None
            return config if isinstance(config, dict) else None
    return None


# ---------------------------------------------------------------------------------------------- dataset card
def _dataset_context(
    stats: Mapping[str, Any], *, title: str, repo_id: Optional[str], source: Optional[str], student: Optional[str]
) -> dict[str, Any]:
    """What `templates/dataset_card.md` shows, computed from `compute_stats` output."""
    from .report import endings_text, token_cap_warning
    from .report.stats import on_policy_text, on_policy_worst

    n = int(stats.get("n_examples") or 0)
    actions = {a: int((stats.get("actions") or {}).get(a, 0) or 0) for a in ACTIONS}
    cost = stats.get("cost") or {}
    endings = endings_text(stats)
    warning = token_cap_warning(stats) if endings else None
    selection = stats.get("selection") or {}
    timeouts = stats.get("verify_timeouts")
    errors = stats.get("error_reasons") or {}
    by_pos = stats.get("mean_success_by_position") or {}
    counts = stats.get("success_by_position_counts") or {}
    hist = stats.get("gap_histogram") or {}
    on_policy, worst = on_policy_text(stats), on_policy_worst(stats)
    check = stats.get("on_policy")
    on_policy_warning = check.get("warning") if isinstance(check, Mapping) else None
    by_pos_rows = [("mean f_t", *(number(v, 3) for v in by_pos.values()))]
    if counts:
        by_pos_rows.append(("scores pooled", *(number(counts.get(k)) for k in by_pos)))
    return {
        "title": title,
        "source_link": _link(source, "dataset"),
        "student_link": _link(student),
        "student_id": student or "<student>",
        "load_id": repo_id or "<namespace>/<this-dataset>",
        "dart_hf_version": stats.get("dart_hf_version"),
        "n_rows": number(n),
        "n_usable": number(int(stats.get("usable") or 0)),
        "usable_rule": USABLE_RULE,
        "paper_ref": PAPER_REF,
        "paper_citation": PAPER_CITATION,
        "provenance": _table(
            ("", ""),
            [
                ("student", _link(student)),
                ("source dataset", _link(source, "dataset")),
                ("verifier", markdown_cell(str(stats.get("verifier") or "math"))),
                ("dart_hf version", stats.get("dart_hf_version")),
            ],
        ),
        "config": _config_table(stats.get("config")),
        "actions": _table(
            ("action", "rows", "share", "meaning"),
            [(f"`{a}`", number(c), percent(c / n) if n else None, ACTION_MEANINGS[a]) for a, c in actions.items()],
        ),
        "mean_steps": number(stats.get("mean_steps"), 1),
        "mean_f0": number(stats.get("mean_f0"), 3),
        "mean_fT": number(stats.get("mean_fT"), 3),
        "endings": markdown_cell(endings) if endings else None,
        "warning": markdown_cell(warning) if warning else None,
        "selection": ", ".join(f"`{k or 'unknown'}` × {number(int(v))}" for k, v in selection.items()),
        "timeouts": {
            "comparisons": number(int(timeouts["comparisons"])),
            "rows": number(int(timeouts.get("rows") or 0)),
        }
        if isinstance(timeouts, Mapping) and timeouts.get("comparisons")
        else None,
        "on_policy": markdown_cell(on_policy) if on_policy else None,
        "on_policy_warning": markdown_cell(on_policy_warning) if on_policy_warning else None,
        "on_policy_worst": _table(
            (
                "row",
                "tokens trained / sampled",
                "NLL trained / sampled (nats)",
                "gap",
                "worst token (nats)",
                "disagrees",
            ),
            [tuple(w.values()) for w in worst],
        )
        if worst
        else None,
        "errors": "; ".join(f"{number(int(c))} × {markdown_cell(r)}" for r, c in errors.items()),
        "by_position": _table(("t/T", *by_pos), by_pos_rows) if by_pos else None,
        "gap_relative": _table(("gap/T", *hist["relative"]), [("rows", *map(number, hist["relative"].values()))])
        if hist.get("relative")
        else None,
        "gap_absolute": _table(("gap step", *hist["absolute"]), [("rows", *map(number, hist["absolute"].values()))])
        if hist.get("absolute")
        else None,
        "cost": _table(
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
        "columns": _table(("column", "type", "meaning"), [(f"`{c}`", t, d) for c, (t, d) in COLUMN_DOCS.items()]),
    }


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
    context = _dataset_context(stats, title=title, repo_id=repo_id, source=source, student=student)
    return DatasetCard.from_template(data, template_path=str(DATASET_CARD_TEMPLATE), **context)


# ---------------------------------------------------------------------------------------------- model card
def _eval_table(eval_results: Mapping[str, Any]) -> dict[str, list]:
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
            if is_num(value):
                kind = dict(task_type="text-generation", dataset_type=name, dataset_name=name)
                out.append(EvalResult(**kind, metric_type=metric, metric_value=value))
    return out


def model_card(
    *,
    base_model: Optional[str],
    dataset_id: Optional[str],
    dart_config: Optional[Mapping[str, Any]],
    training_args: Optional[Mapping[str, Any]],
    eval_results: Optional[Mapping[str, Mapping[str, Any]]] = None,
    repo_id: Optional[str] = None,
    license: Optional[str] = None,
    model_name: Optional[str] = None,
    tags: Sequence[str] = (),
) -> ModelCard:
    """The card of a student trained with DART data.

    `eval_results` maps a dataset name to its metrics, e.g. `{"gsm8k": {"accuracy": 0.41, "pass@4": 0.62}}`;
    numeric values also go to the `model-index` metadata. `training_args` may be a whole
    `TrainingArguments.to_dict()`: the key settings are shown in a table, the rest collapsed, secrets never.
    `tags` are added after `MODEL_TAGS`. A local `base_model` or `dataset_id` is shown in the body but left out
    of the metadata, which the Hub only accepts with Hub ids.
    """
    name = model_name or (_short(repo_id) if repo_id else f"{_short(base_model)}-dart")
    evals = _eval_results_metadata(eval_results) if eval_results else []
    data = ModelCardData(  # the Hub takes Hub ids only here; a local path is named in the body instead
        base_model=base_model if _is_hub_id(base_model) else None,
        datasets=[dataset_id] if _is_hub_id(dataset_id) else None,
        tags=list(dict.fromkeys([*MODEL_TAGS, *tags])),
        library_name="transformers",
        pipeline_tag="text-generation",
        license=license,
        model_name=name,
        eval_results=evals or None,
    )
    args = {k: v for k, v in (training_args or {}).items() if not _SECRET.search(k)}
    rest = {k: v for k, v in args.items() if k not in _KEY_TRAINING_ARGS}
    weights = (args.get("expert_weight", 1.0), args.get("explore_weight", 1.0))
    key_rows = [(f"`{k}`", args[k]) for k in _KEY_TRAINING_ARGS if k in args]
    context = {
        "model_name": name,
        "base_link": _link(base_model),
        "dataset_id": dataset_id,
        "data_link": _link(dataset_id, "dataset") if dataset_id else "DART-adapted data",
        "load_id": repo_id or name,
        "paper_ref": PAPER_REF,
        "paper_citation": PAPER_CITATION,
        "config": _config_table(dart_config),
        "expert_weight": compact(weights[0]),
        "explore_weight": compact(weights[1]),
        "plain_sft": tuple(map(float, weights)) == (1.0, 1.0),
        "key_args": _table(("setting", "value"), key_rows) if key_rows else None,
        "other_args": json.dumps(rest, indent=1, sort_keys=True, default=str) if rest else None,
        "evaluation": _eval_table(eval_results) if eval_results else None,
        "versions": _versions("dart-hf", "trl", "transformers", "datasets", "torch"),
    }
    return ModelCard.from_template(data, template_path=str(MODEL_CARD_TEMPLATE), **context)


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
    """Push a model card alone, e.g. with evaluation results after `trainer.push_to_hub` (which already
    wrote the DART card with the weights); returns the commit URL."""
    check_repo_id(repo_id, what="model")
    return str(card.push_to_hub(repo_id, repo_type="model", token=token, commit_message="Add DART model card"))
