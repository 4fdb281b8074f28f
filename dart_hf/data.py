"""Loading expert datasets: a Hub id, a local file or folder, or the offline CHAMP set."""

from __future__ import annotations

import importlib.util
import json
import os
import re
from typing import Optional

import datasets

from .config import DartConfig

CHAMP = "champ"
_NUMERIC_ANSWER = re.compile(r"^-?\d+(\.\d+)?(/\d+)?$")


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


def load_expert_dataset(source: str, *, split: str = "train", n: Optional[int] = None) -> datasets.Dataset:
    """`source`: "champ", a local .json/.jsonl/.parquet/.csv file, a `save_to_disk` folder, or a Hub id."""
    if source == CHAMP:
        return load_champ(n)
    if os.path.isfile(source):
        ext = os.path.splitext(source)[1].lower()
        if ext in (".json", ".jsonl"):
            ds = datasets.Dataset.from_json(source)
        elif ext == ".parquet":
            ds = datasets.Dataset.from_parquet(source)
        elif ext == ".csv":
            ds = datasets.Dataset.from_csv(source)
        else:
            raise ValueError(f"unsupported file type '{ext}' for {source}: use JSON, JSONL, Parquet or CSV")
    elif os.path.isdir(source):
        loaded = datasets.load_from_disk(source)
        ds = loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
    else:
        ds = datasets.load_dataset(source, split=split)
    if n is not None:
        ds = ds.select(range(min(n, len(ds))))
    return ds


def check_columns(dataset: datasets.Dataset, config: DartConfig) -> None:
    """Fail before any generation when the dataset lacks the columns the config names."""
    cols = set(dataset.column_names)
    has_pair = config.problem_column in cols and (
        config.solution_column in cols or (config.steps_column is not None and config.steps_column in cols)
    )
    if has_pair or config.messages_column in cols:
        return
    raise ValueError(
        f"dataset columns {sorted(cols)} contain neither '{config.problem_column}' + '{config.solution_column}' "
        f"nor '{config.messages_column}'. Name your columns with --problem-column / --solution-column / "
        "--answer-column / --messages-column (or the DartConfig fields of the same names)."
    )
