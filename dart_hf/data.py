"""Loading expert datasets: a Hub id, a local file or folder, the offline CHAMP set, or the planted-gap task."""

from __future__ import annotations

import importlib.util
import json
import os
import re
from typing import Optional

import datasets

from .config import DartConfig
from .errors import UsageError, one_line

CHAMP = "champ"
PLANTED_GAP = "planted_gap"
HUMANEVAL = "humaneval"  # dart_hf.humaneval
_NUMERIC_ANSWER = re.compile(r"^-?\d+(\.\d+)?(/\d+)?$")
_FILE_BUILDERS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv"}


def _package_dir(name: str, install_hint: str) -> str:
    spec = importlib.util.find_spec(name)  # does not run the package's __init__
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package '{name}' is not installed; run: {install_hint}")
    return list(spec.submodule_search_locations)[0]


def load_champ(n: Optional[int] = None, *, numeric_answers: bool = True, min_steps: int = 2) -> datasets.Dataset:
    """CHAMP (270 competition problems with step-split expert solutions), from the `champ-dataset` package.

    With `n`, keep the `n` problems with the shortest solutions (a weak student's best chance);
    `numeric_answers` keeps problems whose answer is a number or fraction, which math-verify
    can check (CHAMP also has yes/no and free-text answers).
    """
    root = _package_dir("champ_dataset", "pip install --no-deps champ-dataset")
    with open(os.path.join(root, "dataset_files", "v0.json"), encoding="utf-8") as fh:
        problems = json.load(fh)["problems"]
    rows = []
    for key, p in problems.items():
        steps = [s["_text"].strip() for s in p["solution"]["steps"] if s["_text"].strip()]
        answer = p["_answer"].strip()
        if len(steps) < min_steps or (numeric_answers and not _NUMERIC_ANSWER.match(answer)):
            continue
        rows.append(
            {
                "id": key,
                "category": p.get("category", ""),
                "problem": p["_text"].strip(),
                "steps": steps,
                "solution": "\n\n".join(steps),
                "answer": answer,
            }
        )
    rows.sort(key=lambda r: (len(r["solution"]), r["id"]))
    if n is not None:
        rows = rows[:n]
    return datasets.Dataset.from_list(rows)


def _only_train(name: str, split: str, what: str) -> None:
    if split != "train":
        hint = "" if what == "the data" else ", or set eval_strategy: 'no'"
        raise UsageError(
            f"{name} holds a single dataset, used as the 'train' split; there is no {split!r} split. Use a DatasetDict "
            f"folder or a Hub dataset with that split{hint}."
        )


def _is_blank(path: str, limit: int = 1 << 20) -> bool:
    """An empty data file, or one of only whitespace (datasets' JSON reader dies on it with a bare StopIteration)."""
    size = os.path.getsize(path)
    if size == 0:
        return True
    if size > limit or path.lower().endswith(".parquet"):
        return False
    with open(path, "rb") as fh:
        return not fh.read().strip()


def load_split(
    name: str,
    split: str,
    config: Optional[str] = None,
    streaming: bool = False,
    *,
    strict_split: bool = True,
    what: str = "training",
) -> datasets.Dataset | datasets.IterableDataset:
    """One split of a Hub dataset, a `save_to_disk` folder or a data file.

    A single file or saved `Dataset` is one split, 'train'; asking it for another split is a
    `UsageError` unless `strict_split=False`, which returns it whatever `split` says. A split a
    `DatasetDict` folder lacks is a `UsageError` naming the ones it has.
    """
    if os.path.isfile(name):
        ext = os.path.splitext(name)[1].lower()
        if ext not in _FILE_BUILDERS:
            raise UsageError(f"Unsupported dataset file {name!r}: use one of {sorted(_FILE_BUILDERS)}")
        if strict_split:
            _only_train(name, split, what)
        if _is_blank(name):
            raise UsageError(f"dataset file {name!r} is empty: no rows to read")
        builder = _FILE_BUILDERS[ext]
        return datasets.load_dataset(builder, data_files={"train": name}, split="train", streaming=streaming)
    saved_markers = ("dataset_info.json", "dataset_dict.json")
    if os.path.isdir(name) and any(os.path.isfile(os.path.join(name, marker)) for marker in saved_markers):
        loaded = datasets.load_from_disk(name)
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise UsageError(f"{name} has no {split!r} split (it has {', '.join(map(repr, loaded))})")
            return loaded[split]
        if strict_split:
            _only_train(name, split, what)
        return loaded
    return datasets.load_dataset(name, name=config, split=split, streaming=streaming)


def load_expert_dataset(
    source: str, *, split: Optional[str] = "train", n: Optional[int] = None, default_split: str = "train"
) -> datasets.Dataset:
    """`source`: "champ", "planted_gap", "humaneval", a local .json/.jsonl/.parquet/.csv file, a `save_to_disk` folder, or a Hub id.

    `split` picks a split of a Hub dataset or a `DatasetDict` folder (None: `default_split`). The
    other sources hold one split, 'train': they are used whole when `split` is None or 'train', and
    any other split is refused (it used to be ignored silently), as is a split the data lacks.
    """
    if n is not None and n < 1:
        raise UsageError(f"the number of rows to adapt must be >= 1, got {n}")
    if source in (CHAMP, PLANTED_GAP, HUMANEVAL):
        if split not in (None, "train"):
            raise UsageError(f"{source!r} has a single split, 'train'; there is no {split!r} split")
        if source == CHAMP:
            return load_champ(n)
        if source == HUMANEVAL:
            from .humaneval import load_humaneval

            return load_humaneval(n)
        from .tasks.planted_gap import PlantedGapTask

        return PlantedGapTask().generate(64 if n is None else n, seed=0)
    try:
        # a single file or saved Dataset is the 'train' split: used whole unless another split is asked for
        ds = load_split(source, split or default_split, strict_split=split is not None, what="the data")
    except UsageError:
        raise
    except (OSError, ValueError, KeyError, datasets.exceptions.DatasetsError) as err:
        what = (
            ""
            if os.path.exists(source)
            else "not 'champ', 'planted_gap' or 'humaneval', not a local file or folder, and not loadable from the Hub: "
        )
        raise UsageError(f"cannot load dataset {source!r}: {what}{one_line(err)}") from err
    if len(ds) == 0:
        raise UsageError(f"dataset {source!r} has no rows")
    if n is not None:
        ds = ds.select(range(min(n, len(ds))))
    return ds


def apply_dataset_defaults(source: str, config: DartConfig) -> None:
    """Settings a built-in dataset needs unless the user set them: its steps column, its gold column."""
    if source == CHAMP and config.steps_column is None:
        config.steps_column = "steps"
    if source == HUMANEVAL:
        from .humaneval import code_steps

        if config.splitter is None:
            config.splitter = code_steps  # code keeps its whitespace: no pre-split steps column
        if config.answer_column == "answer":
            config.answer_column = "test"


def default_verifier(source: str) -> str:
    """The verifier a dataset is judged with when `--verifier` is not given."""
    return "code" if source == HUMANEVAL else "math"


def check_columns(dataset: datasets.Dataset, config: DartConfig) -> None:
    """Fail before any generation when the dataset lacks the columns the config names."""
    cols = set(dataset.column_names)
    has_pair = config.problem_column in cols and (
        config.solution_column in cols or (config.steps_column is not None and config.steps_column in cols)
    )
    if has_pair or config.messages_column in cols:
        return
    raise UsageError(
        f"dataset columns {sorted(cols)} contain neither '{config.problem_column}' + '{config.solution_column}' "
        f"nor '{config.messages_column}'. Name your columns with --problem-column / --solution-column / "
        "--answer-column / --messages-column (or the DartConfig fields of the same names)."
    )
