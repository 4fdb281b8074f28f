"""The output folder of a run: the adapted dataset and every summary of it, written the same way everywhere.

`dart-hf demo`, the recipes and the study all hand their result to `write_outputs`, so a run's
folder always has the same five names and a reader knows where to look.

Each of the five carries dart_hf's marker, and only an output with the marker is ever replaced:
anything else at one of those names is the user's, and `check_outputs` refuses the folder (before
any generation, when the commands call it up front). Every file is written under a temporary name
and renamed into place, so a crash or a full disk never leaves a truncated one.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from typing import Any

from ..errors import UsageError
from ..rundir import TMP_PREFIX, remove_tmp_leftovers, write_atomically
from .html import GENERATOR_META, write_report
from .rows import json_safe
from .stepwise import to_stepwise

#: What `write_outputs` writes into the folder (and the keys of the dict it returns).
OUTPUT_NAMES = ("dataset", "dataset.parquet", "stepwise.parquet", "stats.json", "report.html")

#: The file inside `dataset/` that marks it as written by dart_hf.
DATASET_MARKER = ".dart-hf-output.json"
#: The Parquet schema metadata key that marks `dataset.parquet` and `stepwise.parquet`.
PARQUET_MARKER = b"dart_hf"
#: The key of `stats.json` that marks it (`compute_stats` always writes it).
STATS_MARKER = "dart_hf_version"
_MAX_STATS_BYTES = 64 << 20  # a larger stats.json is not one dart_hf wrote


def _version() -> str:
    from .. import __version__

    return __version__


def _marker() -> str:
    return json.dumps({"written_by": "dart_hf", "version": _version()})


def _is_ours(path: str, name: str) -> bool:
    """Does the output at `path` carry dart_hf's marker? (Symbolic links never do: dart_hf writes none.)"""
    if os.path.islink(path):
        return False
    if name == "dataset":
        return os.path.isdir(path) and os.path.isfile(os.path.join(path, DATASET_MARKER))
    if not os.path.isfile(path):
        return False
    try:
        if name.endswith(".parquet"):
            import pyarrow.parquet as pq

            return PARQUET_MARKER in (pq.read_schema(path).metadata or {})
        if name == "stats.json":
            if os.path.getsize(path) > _MAX_STATS_BYTES:
                return False
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            return isinstance(data, dict) and STATS_MARKER in data
        if name == "report.html":
            with open(path, encoding="utf-8", errors="replace") as fh:
                return GENERATOR_META in fh.read(4096)
    except Exception:  # noqa: BLE001 - unreadable, not JSON, not Parquet (pyarrow has its own errors): not ours
        return False
    return False


def foreign_outputs(out_dir: str) -> list[str]:
    """The `OUTPUT_NAMES` present in `out_dir` that dart_hf did not write (no marker): never to be replaced."""
    return [
        name for name in OUTPUT_NAMES if os.path.lexists(p := os.path.join(out_dir, name)) and not _is_ours(p, name)
    ]


def check_outputs(out_dir: str) -> None:
    """Refuse (`UsageError`, one line) an `out_dir` where writing the outputs would replace something not dart_hf's."""
    foreign = foreign_outputs(out_dir)
    if foreign:
        raise UsageError(
            f"output directory {out_dir!r} holds {', '.join(foreign)} not written by dart_hf (no dart_hf marker); "
            "dart_hf never replaces what it did not write, even with --overwrite_output_dir: "
            "move them away or choose another output directory"
        )


def _write_parquet(dataset: Any, path: str) -> None:
    """`dataset` as Parquet, as `Dataset.to_parquet` writes it, with dart_hf's marker in the schema metadata."""
    import pyarrow.parquet as pq

    schema = dataset.features.arrow_schema
    schema = schema.with_metadata({**(schema.metadata or {}), PARQUET_MARKER: _marker().encode()})
    with pq.ParquetWriter(path, schema) as writer:
        for table in dataset.with_format("arrow").iter(batch_size=1000):
            writer.write_table(table.cast(schema))


def _write_dataset(dataset: Any, out_dir: str) -> str:
    """`save_to_disk` into a temporary folder, mark it, then swap it for the old `dataset/` (ours, checked)."""
    path = os.path.join(out_dir, "dataset")

    def save(tmp: str) -> None:
        # A temporary folder first: save_to_disk cannot overwrite the folder a dataset was loaded
        # from, and a half-written folder must not replace a good one.
        dataset.save_to_disk(tmp)
        with open(os.path.join(tmp, DATASET_MARKER), "w", encoding="utf-8") as fh:
            fh.write(_marker())
        if os.path.lexists(path):  # a folder cannot be renamed onto a full one: move the old one away first
            os.replace(path, os.path.join(out_dir, f"{TMP_PREFIX}{uuid.uuid4().hex[:8]}-old-dataset"))

    write_atomically(path, save)
    remove_tmp_leftovers(out_dir)  # the old dataset
    return path


def write_outputs(dataset: Any, out_dir: str, *, stats: Mapping[str, Any]) -> dict[str, str]:
    """Write everything a run produces into `out_dir`, the same way for `dart-hf demo` and the recipes.

    Files: `dataset/` (`save_to_disk`, reload with `datasets.load_from_disk`), `dataset.parquet`
    (same rows, for pandas and the Hub viewer), `stepwise.parquet` (`to_stepwise`), `stats.json`
    (`stats`, indent 2) and `report.html` (`write_report`). Returns name -> path, names as in
    `OUTPUT_NAMES`. Existing outputs of the same names are replaced when dart_hf wrote them; if any
    was not (`check_outputs`), nothing is written and `UsageError` is raised.
    """
    os.makedirs(out_dir, exist_ok=True)
    check_outputs(out_dir)
    remove_tmp_leftovers(out_dir)
    paths = {name: os.path.join(out_dir, name) for name in OUTPUT_NAMES}

    _write_dataset(dataset, out_dir)
    write_atomically(paths["dataset.parquet"], lambda tmp: _write_parquet(dataset, tmp))
    write_atomically(paths["stepwise.parquet"], lambda tmp: _write_parquet(to_stepwise(dataset), tmp))
    saved = json_safe({**stats, STATS_MARKER: stats.get(STATS_MARKER) or _version()})

    def write_stats(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(saved, f, indent=2, allow_nan=False)
            f.write("\n")

    write_atomically(paths["stats.json"], write_stats)
    write_report(dataset, stats, paths["report.html"])  # atomic too
    return paths
