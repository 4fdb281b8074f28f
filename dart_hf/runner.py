"""Resumable adaptation: a long run proceeds in chunks saved to disk, so a crash loses one chunk at most."""

from __future__ import annotations

import os
import shutil
from typing import Callable

import datasets

CHUNKS_DIR = "chunks"


def adapt_in_chunks(
    dataset: datasets.Dataset,
    adapter: Callable,
    out_dir: str,
    *,
    chunk_size: int = 64,
    batch_size: int = 16,
) -> datasets.Dataset:
    """`dataset.map(adapter)` chunk by chunk, each chunk saved under `out_dir/chunks/` when done.

    Run the same command again after a crash (even SIGKILL): finished chunks are loaded, not redone,
    and since seeds derive from each row's content the result equals an uninterrupted run. A chunk is
    written to a temporary folder and renamed, so a half-written chunk is never taken for a done one.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    root = os.path.join(out_dir, CHUNKS_DIR)
    os.makedirs(root, exist_ok=True)
    manifest = os.path.join(root, "rows.txt")
    if os.path.exists(manifest):
        with open(manifest) as fh:
            previous = int(fh.read().strip() or -1)
        if previous != len(dataset):
            raise ValueError(
                f"{root} holds chunks of a run over {previous} rows, this run has {len(dataset)}: "
                "use another output_dir or delete the chunks folder"
            )
    else:
        with open(manifest, "w") as fh:
            fh.write(str(len(dataset)))

    parts = []
    for index, start in enumerate(range(0, len(dataset), chunk_size)):
        done = os.path.join(root, f"{index:05d}")
        if not os.path.isdir(done):
            chunk = dataset.select(range(start, min(start + chunk_size, len(dataset))))
            adapted = chunk.map(adapter, batched=True, batch_size=batch_size, load_from_cache_file=False,
                                desc=f"DART chunk {index}")
            tmp = done + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            adapted.save_to_disk(tmp)
            os.replace(tmp, done)
        parts.append(datasets.load_from_disk(done))
    return datasets.concatenate_datasets(parts) if parts else dataset.map(adapter, batched=True)
