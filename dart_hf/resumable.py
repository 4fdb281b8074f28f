"""Resumable adaptation: a long run proceeds in chunks saved to disk, so a crash loses one chunk at most.

Under `torchrun` / `accelerate launch` (pass the process state from `dart_hf.distributed.process_state`)
each chunk is split between the processes, each adapts its share on its own device, and the main
process gathers the rows in order and saves the chunk. Seeds derive from each row's content, so the
result is the one a single process would write.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any, Optional, TypeVar

import datasets

from .errors import RunError, UsageError
from .rundir import (
    CHUNKS_DIR,
    ChunkManifest,
    RunLock,
    adapter_identity,
    check_chunks,
    dataset_fingerprint,
    discard_chunks,
    prepare_chunks,
)

__all__ = ["CHUNKS_DIR", "adapt_and_write", "adapt_in_chunks", "discard_chunks", "manifest_for", "output_dir_lock"]

T = TypeVar("T")


def manifest_for(dataset: datasets.Dataset, adapter: Callable, chunk_size: int) -> ChunkManifest:
    """The manifest a run of `adapter` over `dataset` in chunks of `chunk_size` writes, and a resume must match."""
    fingerprint, about = adapter_identity(adapter)
    return ChunkManifest(dataset_fingerprint(dataset), fingerprint, chunk_size, len(dataset), about)


def _plan(
    dataset: datasets.Dataset, adapter: Callable, out_dir: str, chunk_size: int, overwrite: bool
) -> tuple[str, list[tuple[int, int, int]]]:
    """Check (or write) the chunks folder's manifest; (folder, [(index, start, stop) of every chunk])."""
    root = prepare_chunks(out_dir, manifest_for(dataset, adapter, chunk_size), overwrite=overwrite)
    chunks = [
        (i, start, min(start + chunk_size, len(dataset))) for i, start in enumerate(range(0, len(dataset), chunk_size))
    ]
    return root, chunks


def _save(adapted: datasets.Dataset, done: str) -> None:
    tmp = done + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    adapted.save_to_disk(tmp)
    os.replace(tmp, done)


def _load_chunks(
    root: str, chunks: list[tuple[int, int, int]], dataset: datasets.Dataset, adapter: Callable
) -> datasets.Dataset:
    """The finished chunks, in order, as one dataset (rows in = rows out, checked)."""
    parts = [datasets.load_from_disk(os.path.join(root, f"{index:05d}")) for index, _, _ in chunks]
    if not parts:  # no rows: let the adapter add its (empty) columns
        return dataset.map(adapter, batched=True, keep_in_memory=True)
    adapted = datasets.concatenate_datasets(parts)
    if len(adapted) != len(dataset):
        raise RunError(f"{root}: the chunks hold {len(adapted)} rows for {len(dataset)} input rows")
    return adapted


def _check_sizes(chunk_size: int, batch_size: int) -> None:
    if chunk_size < 1:
        raise UsageError(f"chunk_size must be >= 1, got {chunk_size}")
    if batch_size < 1:
        raise UsageError(f"batch_size must be >= 1, got {batch_size}")


def _raise_everywhere(state: Any, error: Optional[BaseException]) -> None:
    """Raise `error` (set on the main process only) on every process, so no process waits for the others forever."""
    if state is not None and state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        box: list[Any] = [None if error is None else (type(error).__name__, str(error), getattr(error, "exit_code", 1))]
        broadcast_object_list(box, from_process=0)
        if error is None and box[0] is not None:
            name, message, code = box[0]
            cls = UsageError if code == UsageError.exit_code else RunError
            raise cls(message if name in ("UsageError", "RunError") else f"{name}: {message}")
    if error is not None:
        raise error


@contextlib.contextmanager
def output_dir_lock(out_dir: str, state: Any = None, check: Optional[Callable[[str], None]] = None) -> Iterator[None]:
    """Hold `out_dir`'s `RunLock` for the block (on the main process; the others only learn whether it failed).

    Hold it across adaptation, output writing and `discard_chunks`, so that a second run on the same
    directory fails at once instead of racing this one. `check(out_dir)` runs on the main process
    once the lock is held (e.g. `report.outputs.check_outputs`: nothing in the way that dart_hf did
    not write); what it raises is raised on every process, before the block runs.
    """
    lock = RunLock(out_dir)
    main = state is None or state.is_main_process
    error: Optional[BaseException] = None
    if main:
        try:
            lock.acquire()
        except Exception as err:  # noqa: BLE001 - raised on every process below
            error = err
        else:
            try:
                check_chunks(out_dir)
                if check is not None:
                    check(out_dir)
            except Exception as err:  # noqa: BLE001 - raised on every process below
                lock.release()
                error = err
    _raise_everywhere(state, error)
    try:
        yield
    finally:
        if main:
            lock.release()


def adapt_in_chunks(
    dataset: datasets.Dataset,
    adapter: Callable,
    out_dir: str,
    *,
    chunk_size: int = 64,
    batch_size: int = 16,
    state: Any = None,
    overwrite: bool = False,
) -> Optional[datasets.Dataset]:
    """`dataset.map(adapter)` chunk by chunk, each chunk saved under `out_dir/chunks/` when done.

    Run the same command again after a crash (even SIGKILL): finished chunks are loaded, not redone,
    and since seeds derive from each row's content the result equals an uninterrupted run. A chunk is
    written to a temporary folder and renamed, so a half-written chunk is never taken for a done one.

    The chunks folder carries a manifest (`dart_hf.rundir.ChunkManifest`: the rows' content hash,
    the adapter's fingerprint, `chunk_size`, the row count). Chunks of another run are never
    reused: a mismatch raises `UsageError` naming what differs, and `overwrite=True` discards them
    instead. The directory is locked while this runs (`RunLock`): a second run on it fails at once.

    `state`: an Accelerate `PartialState` (see `dart_hf.distributed.process_state`). With several
    processes, every process must call this with the same arguments: each adapts a contiguous share
    of every chunk, the main process gathers the shares and saves the chunk, and only the main process
    reads or writes `out_dir` (so other nodes need no shared file system). The main process returns
    the whole adapted dataset, identical to a one-process run; the other processes return None.
    """
    _check_sizes(chunk_size, batch_size)
    if state is not None and state.num_processes > 1:
        return _adapt_in_chunks_distributed(dataset, adapter, out_dir, chunk_size, batch_size, state, overwrite)
    with RunLock(out_dir):
        root, chunks = _plan(dataset, adapter, out_dir, chunk_size, overwrite)
        for index, start, stop in chunks:
            done = os.path.join(root, f"{index:05d}")
            if not os.path.isdir(done):
                chunk = dataset.select(range(start, stop))
                # In memory: a cache file would land beside the input's own files, in the user's folder.
                adapted = chunk.map(
                    adapter,
                    batched=True,
                    batch_size=batch_size,
                    load_from_cache_file=False,
                    keep_in_memory=True,
                    desc=f"DART chunk {index}",
                )
                _save(adapted, done)
        return _load_chunks(root, chunks, dataset, adapter)


def adapt_and_write(
    dataset: datasets.Dataset,
    adapter: Callable,
    out_dir: str,
    write: Callable[[datasets.Dataset], T],
    *,
    chunk_size: int = 64,
    batch_size: int = 16,
    state: Any = None,
    overwrite: bool = False,
) -> Optional[T]:
    """The recipes' whole run: lock `out_dir`, adapt in chunks, `write(adapted)` (main process), discard the chunks.

    Killed at any point, the same call resumes: until `write` returns, the chunks folder is complete
    or being completed (outputs written so far are written again); then it is renamed away in one
    step, so it is whole or gone, never half deleted. Returns what `write` returned (None on the
    other processes).
    """
    with output_dir_lock(out_dir, state):
        adapted = adapt_in_chunks(
            dataset, adapter, out_dir, chunk_size=chunk_size, batch_size=batch_size, state=state, overwrite=overwrite
        )
        if adapted is None:
            return None
        result = write(adapted)
        discard_chunks(out_dir)
        return result


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
    dataset: datasets.Dataset,
    adapter: Callable,
    out_dir: str,
    chunk_size: int,
    batch_size: int,
    state: Any,
    overwrite: bool,
) -> Optional[datasets.Dataset]:
    from accelerate.utils import broadcast_object_list, gather_object

    with output_dir_lock(out_dir, state):
        # The main process alone looks at the chunks folder and tells the others what is left to do (or
        # why nothing can be done: an exception on one rank only would leave the others waiting).
        plan: list[Any] = [None]
        error: Optional[Exception] = None
        root, chunks = os.path.join(out_dir, CHUNKS_DIR), []
        if state.is_main_process:
            try:
                root, chunks = _plan(dataset, adapter, out_dir, chunk_size, overwrite)
                plan[0] = [c for c in chunks if not os.path.isdir(os.path.join(root, f"{c[0]:05d}"))]
            except Exception as err:  # noqa: BLE001 - raised on every process below
                error = err
        _raise_everywhere(state, error)
        broadcast_object_list(plan, from_process=0)

        for index, start, stop in plan[0]:
            chunk = dataset.select(range(start, stop))
            with state.split_between_processes(chunk) as share:
                try:
                    mine: tuple[str, Any] = ("ok", _adapt_share(share, adapter, batch_size) if len(share) else [])
                except (UsageError, RunError) as err:
                    mine = ("error", (type(err).__name__, str(err)))
            shares = gather_object([mine])  # one (status, rows) per process, in process order, on every process
            failed = [payload for status, payload in shares if status == "error"]
            if failed:  # a run-level failure on any process stops them all, not just that one
                name, message = failed[0]
                raise (UsageError if name == "UsageError" else RunError)(message)
            rows = [row for _, payload in shares for row in payload]  # shares in process order = rows in dataset order
            if state.is_main_process:
                if len(rows) != len(chunk):
                    raise RuntimeError(f"chunk {index}: gathered {len(rows)} rows for {len(chunk)}")
                # Rebuild the chunk with the same map call (same batches) a single process makes, so
                # the columns get the same types whatever the process count.
                adapted = chunk.map(
                    _Replay(rows),
                    batched=True,
                    batch_size=batch_size,
                    with_indices=True,
                    load_from_cache_file=False,
                    keep_in_memory=True,
                    new_fingerprint=f"dart-chunk-{index}-{stop - start}",
                    desc=f"DART chunk {index}",
                )
                _save(adapted, os.path.join(root, f"{index:05d}"))
            state.wait_for_everyone()

        if not state.is_main_process:
            return None
        return _load_chunks(root, chunks, dataset, adapter)


class _Replay:
    """Map function that returns rows adapted elsewhere; row `i` of the chunk is `rows[i]`."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def __call__(self, batch: Any, indices: list[int]) -> dict[str, list[Any]]:
        names = list(self.rows[0]) if self.rows else []
        return {name: [self.rows[i][name] for i in indices] for name in names}
