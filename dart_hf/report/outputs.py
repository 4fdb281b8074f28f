"""The output folder of a run: the adapted dataset and every summary of it, written the same way everywhere.

`dart-hf demo`, the recipes and the study all hand their result to `write_outputs`, so a run's
folder always has the same five names and a reader knows where to look.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from typing import Any

from .html import write_report
from .rows import json_safe
from .stepwise import to_stepwise

#: What `write_outputs` writes into the folder (and the keys of the dict it returns).
OUTPUT_NAMES = ("dataset", "dataset.parquet", "stepwise.parquet", "stats.json", "report.html")


def write_outputs(dataset: Any, out_dir: str, *, stats: Mapping[str, Any]) -> dict[str, str]:
    """Write everything a run produces into `out_dir`, the same way for `dart-hf demo` and the recipes.

    Files: `dataset/` (`save_to_disk`, reload with `datasets.load_from_disk`), `dataset.parquet`
    (same rows, for pandas and the Hub viewer), `stepwise.parquet` (`to_stepwise`), `stats.json`
    (`stats`, indent 2) and `report.html` (`write_report`). Returns name -> path, names as in
    `OUTPUT_NAMES`. Existing outputs of the same names are replaced.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, name) for name in OUTPUT_NAMES}

    # Save to a temporary folder first: save_to_disk cannot overwrite the folder a dataset was
    # loaded from, and a half-written folder must not replace a good one.
    tmp = os.path.join(out_dir, ".dataset.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    dataset.save_to_disk(tmp)
    shutil.rmtree(paths["dataset"], ignore_errors=True)
    os.replace(tmp, paths["dataset"])

    dataset.to_parquet(paths["dataset.parquet"])
    to_stepwise(dataset).to_parquet(paths["stepwise.parquet"])
    with open(paths["stats.json"], "w", encoding="utf-8") as f:
        json.dump(json_safe(dict(stats)), f, indent=2, allow_nan=False)
        f.write("\n")
    write_report(dataset, stats, paths["report.html"])
    return paths
