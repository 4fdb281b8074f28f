"""An output directory owned by one run: a lock against a second run, a manifest naming whose chunks it holds.

Resuming is only safe when the saved chunks come from the same run: same rows, same student, same
configuration, same chunking. The manifest records those (`ChunkManifest`), and a resume that does
not match is refused with one line instead of silently mixing two runs. The lock makes a second run
on the same directory fail at once instead of racing the first one for the same chunk files.

The manifest is also dart_hf's marker: a `chunks/` folder without one was not written by dart_hf,
so it is refused, never taken over or removed (`--overwrite_output_dir` included).
"""

from __future__ import annotations

import dataclasses
import datetime
import fcntl
import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable
from typing import Any, Optional

from .errors import UsageError

CHUNKS_DIR = "chunks"
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".dart-hf.lock"
_DISCARDED_PREFIX = ".chunks-discarded-"
_NEW_CHUNKS_PREFIX = ".chunks-new-"
_FORMAT = 1


def ensure_writable(out_dir: str) -> None:
    """Create `out_dir` and write a scratch file there, so an unwritable output fails before any generation."""
    try:
        os.makedirs(out_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".dart-hf-write-test-"):
            pass
    except OSError as err:
        raise UsageError(f"cannot write to output directory {out_dir!r}: {err.strerror or err}") from None


class RunLock:
    """Exclusive use of an output directory by one process (`fcntl.flock` on `out_dir/.dart-hf.lock`).

    Non-blocking: a second run fails at once with who holds the lock. The kernel drops the lock when
    its process dies, even by SIGKILL, so a killed run never leaves a stale lock behind (the file may
    stay; the next run takes it over). Re-entrant within one thread, so the recipe can hold it across
    adaptation, output writing and clean-up while `adapt_in_chunks` takes it too; another thread of
    the same process is a second run and is refused like another process (`flock` alone cannot tell
    them apart: it belongs to the open file, and this process keeps one per directory). Released,
    the file is removed while still locked, and a taker checks that the file it locked is still the
    one at the path, so two runs can never both hold "the" lock.

    On a network file system (NFS, Lustre, SMB) `flock` may only exclude processes of the same host:
    two hosts can then both hold it. Give runs on different hosts different output directories.
    """

    _held: dict[str, list[int]] = {}  # real path -> [fd, depth, owning thread's ident]
    _guard = threading.Lock()

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.path = os.path.join(out_dir, LOCK_NAME)

    def acquire(self) -> RunLock:
        ensure_writable(self.out_dir)
        key = os.path.realpath(self.path)
        with self._guard:
            if key in self._held:
                owner = self._held[key][2]
                if owner != threading.get_ident():
                    raise UsageError(
                        f"output directory {self.out_dir!r} is in use by another run in this process "
                        f"(thread {_thread_name(owner)}); wait for it to finish or choose another output directory"
                    )
                self._held[key][1] += 1
                return self
            while True:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
                    os.close(fd)
                    raise UsageError(
                        f"output directory {self.out_dir!r} is in use by another run ({holder}); "
                        "wait for it to finish or choose another output directory"
                    ) from None
                try:
                    same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(fd)  # its holder removed it as we opened it: take the new one
            os.ftruncate(fd, 0)
            stamp = datetime.datetime.now().isoformat(timespec="seconds")
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}".encode(), 0)
            self._held[key] = [fd, 1, threading.get_ident()]
        return self

    def release(self) -> None:
        key = os.path.realpath(self.path)
        with self._guard:
            entry = self._held.get(key)
            if entry is None or entry[2] != threading.get_ident():
                return
            entry[1] -= 1
            if entry[1] == 0:
                del self._held[key]
                try:
                    os.unlink(self.path)  # still locked: nobody can take this file over in between
                except FileNotFoundError:
                    pass
                finally:
                    fcntl.flock(entry[0], fcntl.LOCK_UN)
                    os.close(entry[0])

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _thread_name(ident: int) -> str:
    return next((t.name for t in threading.enumerate() if t.ident == ident), str(ident))


@dataclasses.dataclass(frozen=True)
class ChunkManifest:
    """Which run the chunks of a directory belong to; a resume must match every field."""

    dataset: str  # content hash of the input rows (`dataset_fingerprint`)
    adapter: str  # student + configuration + algorithm version (`DartAdapter.fingerprint`)
    chunk_size: int
    rows: int
    # Human-readable parts of the adapter (student, config), used only to say what differs.
    about: dict = dataclasses.field(default_factory=dict, compare=False)

    def to_json(self) -> str:
        return json.dumps({"format": _FORMAT, **dataclasses.asdict(self)}, indent=2, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> ChunkManifest:
        data = json.loads(text)
        if data.get("format") != _FORMAT:
            raise ValueError(f"unknown manifest format {data.get('format')!r}")
        return cls(
            data["dataset"], data["adapter"], int(data["chunk_size"]), int(data["rows"]), data.get("about") or {}
        )

    def differences(self, other: ChunkManifest) -> list[str]:
        """What changed from `self` (saved) to `other` (this run), as short phrases; empty when they match."""
        out = []
        if self.rows != other.rows:
            out.append(f"rows {self.rows} -> {other.rows}")
        elif self.dataset != other.dataset:
            out.append("the dataset's rows differ")
        if self.chunk_size != other.chunk_size:
            out.append(f"chunk_size {self.chunk_size} -> {other.chunk_size}")
        if self.adapter != other.adapter:
            out.extend(_about_differences(self.about, other.about) or ["the student or the DART configuration differ"])
        return out


def _about_differences(old: dict, new: dict) -> list[str]:
    out = []
    for key in ("algorithm", "student"):
        if old.get(key) != new.get(key):
            out.append(f"{key} {old.get(key)!r} -> {new.get(key)!r}")
    old_cfg, new_cfg = old.get("config") or {}, new.get("config") or {}
    for key in sorted(set(old_cfg) | set(new_cfg)):
        if old_cfg.get(key) != new_cfg.get(key):
            out.append(f"{key} {old_cfg.get(key)!r} -> {new_cfg.get(key)!r}")
    return out


def dataset_fingerprint(dataset: Any, batch_size: int = 1024) -> str:
    """SHA-256 of the rows' content (Arrow IPC of each batch), the same for the same rows however loaded.

    `Dataset._fingerprint` is random for in-memory datasets, so it cannot tell a resume from a new
    run. `take` rewrites each batch without slice offsets, so a `select`ed range hashes like the same
    rows built directly. About 1 GB/s: negligible next to the generation it protects.
    """
    import pyarrow as pa

    digest = hashlib.sha256()
    for table in dataset.with_format("arrow").iter(batch_size=batch_size):
        table = table.take(pa.array(range(table.num_rows), type=pa.int64()))
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        digest.update(sink.getvalue())
    digest.update(f"rows={len(dataset)}".encode())
    return digest.hexdigest()


def adapter_identity(adapter: Any) -> tuple[str, dict]:
    """(fingerprint, readable parts) of a map function: `DartAdapter` has both; others are hashed as datasets does."""
    fingerprint = getattr(adapter, "fingerprint", None)
    if not isinstance(fingerprint, str):
        from datasets.fingerprint import Hasher

        fingerprint = Hasher.hash(adapter)
    about: dict = {}
    config, backend = getattr(adapter, "config", None), getattr(adapter, "backend", None)
    if config is not None and hasattr(config, "to_dict"):
        about["config"] = json.loads(json.dumps(config.to_dict(), default=str))
    if backend is not None:
        about["student"] = str(getattr(backend, "fingerprint", ""))
    algorithm = getattr(adapter, "algorithm_version", None)
    if algorithm is not None:
        about["algorithm"] = str(algorithm)
    return fingerprint, about


def chunk_folders(root: str) -> list[str]:
    """Names of the finished chunk folders under `root` (`00000`, `00001`, ...)."""
    if not os.path.isdir(root):
        return []
    return sorted(name for name in os.listdir(root) if name.isdigit())


def check_chunks(out_dir: str) -> None:
    """Refuse (`UsageError`) a `chunks` entry in `out_dir` that dart_hf did not write (no manifest).

    dart_hf creates its chunks folder with the manifest already inside (`prepare_chunks`), so a
    `chunks` without one is someone else's: it is never taken over, resumed into or removed.
    """
    root = os.path.join(out_dir, CHUNKS_DIR)
    if os.path.lexists(root) and not (
        os.path.isdir(root) and not os.path.islink(root) and os.path.isfile(os.path.join(root, MANIFEST_NAME))
    ):
        raise UsageError(
            f"{root} was not written by dart_hf (no {MANIFEST_NAME}: chunks without a manifest are never taken over "
            "or removed, even with --overwrite_output_dir); move it away or choose another output directory"
        )


def prepare_chunks(out_dir: str, manifest: ChunkManifest, *, overwrite: bool = False) -> str:
    """The chunks folder of `out_dir`, checked against `manifest` (or created with it); returns its path.

    Raises `UsageError` when the folder holds chunks of another run (`overwrite=True` discards
    them first) or was not written by dart_hf (`check_chunks`; refused even with `overwrite`).
    Leftovers of an interrupted clean-up are removed.
    """
    root = os.path.join(out_dir, CHUNKS_DIR)
    check_chunks(out_dir)
    for name in os.listdir(out_dir) if os.path.isdir(out_dir) else []:
        if name.startswith(_DISCARDED_PREFIX) or name.startswith(_NEW_CHUNKS_PREFIX):
            shutil.rmtree(os.path.join(out_dir, name), ignore_errors=True)
    if overwrite:
        discard_chunks(out_dir)
    path = os.path.join(root, MANIFEST_NAME)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        try:
            saved = ChunkManifest.from_json(text)
        except (ValueError, KeyError, TypeError) as err:
            raise UsageError(f"{path} is unreadable ({err}); {_START_OVER}") from None
        diff = saved.differences(manifest)
        if diff:
            done = len(chunk_folders(root))
            raise UsageError(
                f"{root} holds {done} chunk(s) of another run ({'; '.join(diff)}); resuming would mix the two. "
                + _START_OVER
            )
        return root
    # The folder appears with its manifest inside, in one rename: a chunks folder without a manifest
    # is then never one of ours, even after a kill.
    new = os.path.join(out_dir, f"{_NEW_CHUNKS_PREFIX}{uuid.uuid4().hex[:8]}")
    os.makedirs(new)  # the permissions the umask gives, like any folder the user makes
    with open(os.path.join(new, MANIFEST_NAME), "w", encoding="utf-8") as fh:
        fh.write(manifest.to_json())
    os.rename(new, root)
    return root


_START_OVER = "rerun with --overwrite_output_dir (overwrite=True) to discard them, or choose another output directory"


def discard_chunks(out_dir: str) -> None:
    """Remove `out_dir/chunks` atomically: renamed away first, so a kill never leaves half a chunks folder.

    Only a chunks folder dart_hf wrote (one with its manifest) is removed; any other is refused.
    """
    root = os.path.join(out_dir, CHUNKS_DIR)
    if not os.path.lexists(root):
        return
    check_chunks(out_dir)
    trash = os.path.join(out_dir, f"{_DISCARDED_PREFIX}{uuid.uuid4().hex[:8]}")
    os.replace(root, trash)
    shutil.rmtree(trash, ignore_errors=True)


TMP_PREFIX = ".dart-hf-tmp-"


def write_atomically(path: str, write: Callable[[str], Any]) -> None:
    """`write(tmp)` to a fresh temporary name beside `path`, then `os.replace` it onto `path`.

    Readers see the old file or the new one whole, never a truncated one, whatever kills the
    writer (a crash, a full disk). The temporary name starts with `TMP_PREFIX`, dart_hf's own.
    """
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f"{TMP_PREFIX}{uuid.uuid4().hex[:8]}-{name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.isdir(tmp) and not os.path.islink(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def remove_tmp_leftovers(out_dir: str) -> None:
    """Remove what a killed `write_atomically` left in `out_dir` (names starting with `TMP_PREFIX` only)."""
    for name in os.listdir(out_dir) if os.path.isdir(out_dir) else []:
        if name.startswith(TMP_PREFIX):
            path = os.path.join(out_dir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)


def read_manifest(out_dir: str) -> Optional[ChunkManifest]:
    """The manifest of `out_dir`'s chunks, if any (for tools and tests)."""
    path = os.path.join(out_dir, CHUNKS_DIR, MANIFEST_NAME)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as fh:
        return ChunkManifest.from_json(fh.read())
