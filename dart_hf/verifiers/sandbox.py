"""Running one untrusted Python program in a confined child process: the code sandbox's launcher.

`run_program` writes the program into a fresh temporary folder and starts `_sandbox_child.py` (see
there for the child's side), which confines it:

- a wall-clock deadline, after which the whole process group is killed (and, in a PID namespace,
  every process the program started);
- resource limits: CPU seconds, address space, file size, number of processes, no core dumps;
- a fresh working directory, removed afterwards; a minimal environment (no tokens, no proxy
  variables, no `HF_*`); standard input at /dev/null; stdout and stderr captured up to a cap;
- the network unreachable (a new network namespace) and an unprivileged uid (when started as root)
  where the machine allows; `CodeVerifier.sandbox_report()` says what holds here.

A container is the real boundary; this is defence in depth (see docs/verifiers.md). Why a launcher
script and not `preexec_fn`: checks run from a thread pool, and `preexec_fn` is not safe in a
process with threads (the child may deadlock before `exec`).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import NamedTuple, Optional

from ..errors import RunError

logger = logging.getLogger(__name__)

_CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sandbox_child.py")
# Sandbox uids when started as root: one per worker slot, far above any real account's, so that the
# process limit counts one check's processes and a reaper can kill exactly them.
DEFAULT_UID_BASE = 3_900_000_000
_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}


class RunResult(NamedTuple):
    """What one sandboxed run did."""

    passed: bool  # ran to its end and exited 0
    timed_out: bool  # killed at the deadline, or by a signal (CPU limit, crash): no verdict
    returncode: Optional[int]
    output: str  # stdout and stderr together, at most `max_output_bytes` (the end is kept)
    seconds: float
    isolation: tuple[str, ...]  # which confinements held ('net', 'pid', 'userns', 'uid', or why none)


def _stdlib_readable_by_others(python: str) -> bool:
    """Can an unprivileged uid run `python` and import its standard library (every folder on the way o+x)?"""
    try:
        out = subprocess.run(
            [
                python,
                "-I",
                "-c",
                "import sysconfig, sys, json; p = sysconfig.get_paths(); "
                "print(json.dumps([sys.executable, p['stdlib'], p['platstdlib']]))",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=_ENV,
            check=True,
        ).stdout
        paths = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return False
    for path in paths:
        path = os.path.realpath(path)
        while True:
            try:
                mode = os.stat(path).st_mode
            except OSError:
                return False
            if not mode & 0o001 or not mode & 0o004:  # others may traverse (dirs) / execute, and read
                return False
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
    return True


_PYTHON_FOR_UID: dict[str, Optional[str]] = {}


def python_for_uid(preferred: str) -> Optional[str]:
    """An interpreter an unprivileged uid can use: `preferred` if it can, else a system `python3`; None if none."""
    if preferred not in _PYTHON_FOR_UID:
        found = None
        candidates = [preferred] + [
            p for p in (shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin"),) if p and p != preferred
        ]
        for candidate in candidates:
            if _stdlib_readable_by_others(candidate):
                found = candidate
                break
        _PYTHON_FOR_UID[preferred] = found
    return _PYTHON_FOR_UID[preferred]


def run_program(
    program: str,
    *,
    python: str,
    uid: Optional[int],
    timeout: float,
    cpu_seconds: int,
    memory_mb: int,
    file_size_mb: int,
    max_processes: int,
    max_output_bytes: int,
    isolate: bool,
    warn: Callable[[str, str], None],
) -> RunResult:
    """Run `program` once in the sandbox, as `uid` when not None; `warn(key, message)` reports what did not hold."""
    start = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="dart-code-")
    read_fd = write_fd = -1
    proc: Optional[subprocess.Popen] = None
    try:
        path = os.path.join(workdir, "program.py")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(program)
        if uid is not None:
            os.chown(workdir, uid, uid)
            os.chown(path, uid, uid)
        read_fd, write_fd = os.pipe()
        env = dict(_ENV, HOME=workdir, TMPDIR=workdir)
        nonce = secrets.token_hex(16)
        cfg = {
            "program": path,
            "nonce": nonce,
            "result_fd": write_fd,
            "uid": uid,
            "isolate": isolate,
            "limits": {
                "cpu_seconds": cpu_seconds,
                "memory_bytes": memory_mb << 20,
                "file_size_bytes": file_size_mb << 20,
                "processes": max_processes,
            },
        }
        try:
            proc = subprocess.Popen(
                [python, "-I", _CHILD],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env=env,
                pass_fds=(write_fd,),
                start_new_session=True,
                close_fds=True,
            )
        except OSError as err:  # no interpreter, no processes left: no check can run, stop the run
            raise RunError(f"cannot start the code sandbox with {python!r}: {err}") from None
        os.close(write_fd)
        write_fd = -1
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write((json.dumps(cfg) + "\n").encode())
            proc.stdin.close()
        except OSError:
            pass
        output, result, timed_out = _collect(proc, proc.stdout.fileno(), read_fd, start + timeout, max_output_bytes)
    finally:
        if proc is not None:
            _kill_group(proc)
            if proc.stdout is not None:
                proc.stdout.close()
        for fd in (read_fd, write_fd):
            if fd >= 0:
                os.close(fd)
        shutil.rmtree(workdir, ignore_errors=True)
    lines = result.decode("utf-8", "replace").splitlines()
    isolation: tuple[str, ...] = ()
    if lines:
        try:
            isolation = tuple(json.loads(lines[0]).get("isolation", ()))
        except ValueError:
            pass
    if uid is not None and not _uid_gone(uid, 2.0):  # a PID namespace empties itself, a moment after
        _reap(python, uid, warn)
    for note in isolation:
        if note.startswith("no-namespaces") and note != "no-namespaces: disabled":
            warn("namespaces", f"network and PID namespaces unavailable ({note}); the network is reachable")
    code = proc.returncode if proc is not None else None
    signaled = code is not None and (code < 0 or code > 128)
    passed = not timed_out and code == 0 and nonce in lines[1:]
    return RunResult(
        passed=passed,
        timed_out=timed_out or signaled,
        returncode=code,
        output=output.decode("utf-8", "replace"),
        seconds=time.monotonic() - start,
        isolation=isolation,
    )


def _collect(
    proc: subprocess.Popen, out_fd: int, result_fd: int, deadline: float, max_output_bytes: int
) -> tuple[bytes, bytes, bool]:
    """Read output (keeping the last `max_output_bytes`) and the result pipe until both close or the deadline."""
    output, result = bytearray(), bytearray()
    open_fds = {out_fd, result_fd}
    exited_at: Optional[float] = None
    while open_fds:
        now = time.monotonic()
        if now >= deadline:
            return bytes(output), bytes(result), True
        if exited_at is None and proc.poll() is not None:
            exited_at = now
        if exited_at is not None and now - exited_at > 1.0:
            break  # the launcher is gone; whatever still holds a pipe is killed with the group
        ready, _, _ = select.select(list(open_fds), [], [], min(0.2, deadline - now))
        for fd in ready:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                open_fds.discard(fd)
            elif fd == out_fd:
                output += chunk
                if len(output) > max_output_bytes:
                    del output[: len(output) - max_output_bytes]
            elif len(result) < 4096:
                result += chunk
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return bytes(output), bytes(result), True
    return bytes(output), bytes(result), False


def _reap(python: str, uid: int, warn: Callable[[str, str], None]) -> None:
    """Without a PID namespace, kill whatever the program left behind under its uid."""
    try:
        subprocess.run([python, "-I", _CHILD, "--reap", str(uid)], env=_ENV, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as err:
        warn("reap", f"could not reap uid {uid}: {err}")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL not delivered
        logger.warning("code sandbox: process %d did not exit after SIGKILL", proc.pid)


def _uid_processes(uid: int) -> list[int]:
    """Pids of the processes running as `uid` (from /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def _uid_gone(uid: int, wait: float) -> bool:
    """True once no process runs as `uid`, polled for up to `wait` seconds."""
    end = time.monotonic() + wait
    while _uid_processes(uid):
        if time.monotonic() >= end:
            return False
        time.sleep(0.02)
    return True


__all__ = ["DEFAULT_UID_BASE", "RunResult", "python_for_uid", "run_program"]
