"""Resumable adaptation: a long run proceeds in chunks saved to disk, so a crash loses one chunk at most.

Under `torchrun` / `accelerate launch` (pass the process state from `dart_hf.distributed.process_state`)
each chunk is split between the processes, each adapts its share on its own device, and the main
process gathers the rows in order and saves the chunk. Seeds derive from each row's content, so the
result is the one a single process would write.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Callable, Optional

import datasets

CHUNKS_DIR = "chunks"


def _chunk_plan(dataset: datasets.Dataset, out_dir: str, chunk_size: int) -> tuple[str, list[tuple[int, int, int]]]:
    """Check (or write) the chunks folder's manifest; (folder, [(index, start, stop) of every chunk])."""
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
    chunks = [(i, start, min(start + chunk_size, len(dataset))) for i, start in enumerate(range(0, len(dataset), chunk_size))]
    return root, chunks


def _save(adapted: datasets.Dataset, done: str) -> None:
    tmp = done + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    adapted.save_to_disk(tmp)
    os.replace(tmp, done)


def _load_chunks(root: str, chunks: list[tuple[int, int, int]], dataset: datasets.Dataset, adapter: Callable) -> datasets.Dataset:
    """The finished chunks, in order, as one dataset."""
    parts = [datasets.load_from_disk(os.path.join(root, f"{index:05d}")) for index, _, _ in chunks]
    if parts:
        return datasets.concatenate_datasets(parts)
    return dataset.map(adapter, batched=True)  # no rows: let the adapter add its (empty) columns


def adapt_in_chunks(
    dataset: datasets.Dataset,
    adapter: Callable,
    out_dir: str,
    *,
    chunk_size: int = 64,
    batch_size: int = 16,
    state: Any = None,
) -> Optional[datasets.Dataset]:
    """`dataset.map(adapter)` chunk by chunk, each chunk saved under `out_dir/chunks/` when done.

    Run the same command again after a crash (even SIGKILL): finished chunks are loaded, not redone,
    and since seeds derive from each row's content the result equals an uninterrupted run. A chunk is
    written to a temporary folder and renamed, so a half-written chunk is never taken for a done one.

    `state`: an Accelerate `PartialState` (see `dart_hf.distributed.process_state`). With several
    processes, every process must call this with the same arguments: each adapts a contiguous share
    of every chunk, the main process gathers the shares and saves the chunk, and only the main process
    reads or writes `out_dir` (so other nodes need no shared file system). The main process returns
    the whole adapted dataset, identical to a one-process run; the other processes return None.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if state is not None and state.num_processes > 1:
        return _adapt_in_chunks_distributed(dataset, adapter, out_dir, chunk_size, batch_size, state)
    root, chunks = _chunk_plan(dataset, out_dir, chunk_size)
    for index, start, stop in chunks:
        done = os.path.join(root, f"{index:05d}")
        if not os.path.isdir(done):
            chunk = dataset.select(range(start, stop))
            adapted = chunk.map(adapter, batched=True, batch_size=batch_size, load_from_cache_file=False,
                                desc=f"DART chunk {index}")
            _save(adapted, done)
    return _load_chunks(root, chunks, dataset, adapter)


def _adapt_share(share: datasets.Dataset, adapter: Callable, batch_size: int) -> list[dict[str, Any]]:
    """The adapter's new columns for each row of `share`, as one dict per row, in order."""
    rows: list[dict[str, Any]] = []
    for start in range(0, len(share), batch_size):
        out = adapter(share[start : start + batch_size])
        n = min(batch_size, len(share) - start)
        for name, values in out.items():
            if len(values) != n:
                raise ValueError(f"adapter returned {len(values)} values of {name!r} for a batch of {n} rows")
        rows.extend({name: values[i] for name, values in out.items()} for i in range(n))
    return rows


def _adapt_in_chunks_distributed(
    dataset: datasets.Dataset, adapter: Callable, out_dir: str, chunk_size: int, batch_size: int, state: Any
) -> Optional[datasets.Dataset]:
    from accelerate.utils import broadcast_object_list, gather_object

    # The main process alone looks at the chunks folder and tells the others what is left to do (or
    # why nothing can be done: an exception on one rank only would leave the others waiting).
    plan: list[Any] = [None]
    error: Optional[Exception] = None
    if state.is_main_process:
        try:
            root, chunks = _chunk_plan(dataset, out_dir, chunk_size)
            plan[0] = ("ok", [c for c in chunks if not os.path.isdir(os.path.join(root, f"{c[0]:05d}"))])
        except Exception as err:  # noqa: BLE001 - raised on every process below
            error, plan[0] = err, ("error", f"{type(err).__name__}: {err}")
    broadcast_object_list(plan, from_process=0)
    status, todo = plan[0]
    if error is not None:
        raise error
    if status != "ok":
        raise RuntimeError(f"the main process cannot adapt into {out_dir}: {todo}")

    for index, start, stop in todo:
        chunk = dataset.select(range(start, stop))
        with state.split_between_processes(chunk) as share:
            mine = _adapt_share(share, adapter, batch_size) if len(share) else []
        rows = gather_object(mine)  # shares in process order = rows in dataset order
        if state.is_main_process:
            if len(rows) != len(chunk):
                raise RuntimeError(f"chunk {index}: gathered {len(rows)} rows for {len(chunk)}")
            # Rebuild the chunk with the same map call (same batches) a single process makes, so
            # the columns get the same types whatever the process count.
            adapted = chunk.map(
                _Replay(rows), batched=True, batch_size=batch_size, with_indices=True,
                load_from_cache_file=False, keep_in_memory=True, new_fingerprint=f"dart-chunk-{index}-{stop - start}",
                desc=f"DART chunk {index}",
            )
            _save(adapted, os.path.join(out_dir, CHUNKS_DIR, f"{index:05d}"))
        state.wait_for_everyone()

    if not state.is_main_process:
        return None
    root, chunks = _chunk_plan(dataset, out_dir, chunk_size)
    return _load_chunks(root, chunks, dataset, adapter)


class _Replay:
    """Map function that returns rows adapted elsewhere; row `i` of the chunk is `rows[i]`."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def __call__(self, batch: Any, indices: list[int]) -> dict[str, list[Any]]:
        names = list(self.rows[0]) if self.rows else []
        return {name: [self.rows[i][name] for i in indices] for name in names}
