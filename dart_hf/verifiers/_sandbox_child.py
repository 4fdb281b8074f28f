"""The child side of `CodeVerifier`'s sandbox: confine this process, then run one untrusted program.

Started by the verifier as `python -I _sandbox_child.py` in a fresh temporary folder, in a session of
its own, with a minimal environment. It reads one JSON line of settings from stdin (then stdin is
/dev/null), and:

1. where the machine allows, moves into new network and PID namespaces (and a user namespace when
   not root): the network is unreachable (not even loopback is up) and, once the program's process
   ends, the kernel kills everything it started;
2. forks the program's process, which sets its resource limits (CPU seconds, address space, file
   size, number of processes, no core dumps), drops root to an unprivileged uid when started as
   root, and runs the program;
3. writes the settings' `nonce` on the result pipe only after the program ran to its end, so an
   early `sys.exit(0)` or `os._exit(0)` is not a pass.

The first line on the result pipe says which confinements hold (`{"isolation": [...]}`), so the
verifier can report them. This file imports nothing from `dart_hf` (it runs from its path) and uses
only the standard library.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys
import traceback

CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000


def _unshare(flags: int) -> str:
    """'' on success, else why not (an errno name)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(flags) == 0:
        return ""
    return os.strerror(ctypes.get_errno())


def _isolate(cfg: dict) -> list[str]:
    """Enter new namespaces where allowed; the names of what holds, or 'no-namespaces: <why>'."""
    if not cfg.get("isolate", True):
        return ["no-namespaces: disabled"]
    flags = CLONE_NEWNET | CLONE_NEWPID
    if os.geteuid() != 0:
        flags |= CLONE_NEWUSER  # an unprivileged user may create namespaces inside a user namespace of its own
    why = _unshare(flags)
    if not why:
        return ["net", "pid"] + (["userns"] if flags & CLONE_NEWUSER else [])
    return [f"no-namespaces: {why}"]


def _limit(cfg: dict) -> None:
    limits = cfg["limits"]
    for name, value in (
        ("RLIMIT_CPU", limits["cpu_seconds"]),
        ("RLIMIT_AS", limits["memory_bytes"]),
        ("RLIMIT_FSIZE", limits["file_size_bytes"]),
        ("RLIMIT_NPROC", limits["processes"]),
        ("RLIMIT_CORE", 0),
    ):
        if value is None or not hasattr(resource, name):
            continue
        kind = getattr(resource, name)
        soft = hard = int(value)
        if name == "RLIMIT_CPU":
            hard = soft + 1  # SIGXCPU at the soft limit, SIGKILL one second later
        resource.setrlimit(kind, (soft, hard))


def _drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _run_program(cfg: dict, result_fd: int) -> None:
    """In the program's own process: confine, run, mark the end; never returns."""
    code = 1
    try:
        _limit(cfg)
        if cfg.get("uid") is not None:
            _drop_privileges(int(cfg["uid"]))
        with open(cfg["program"], encoding="utf-8") as fh:
            source = fh.read()
        nonce = cfg.pop("nonce")
        compiled = compile(source, "program.py", "exec")
        del source
        exec(compiled, {"__name__": "__main__", "__builtins__": __builtins__})  # noqa: S102 - the sandboxed program
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(result_fd, ("\n" + nonce + "\n").encode())
        code = 0
    except SystemExit as err:  # an exit before the end is no pass, whatever its status
        code = err.code if isinstance(err.code, int) else 1
        code = code or 3
    except BaseException:  # noqa: BLE001 - the program's failure is the verdict
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _reap(uid: int) -> int:
    """Kill every process of `uid` (a sandbox uid): used where no PID namespace ends them."""
    import signal

    _drop_privileges(uid)
    try:
        os.kill(-1, signal.SIGKILL)  # every process this uid may signal, except this one
    except ProcessLookupError:
        pass
    return 0


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--reap":
        return _reap(int(sys.argv[2]))
    cfg = json.loads(sys.stdin.readline())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    result_fd = int(cfg["result_fd"])
    isolation = _isolate(cfg)
    if cfg.get("uid") is not None:
        isolation.append("uid")
    os.write(result_fd, (json.dumps({"isolation": isolation}) + "\n").encode())
    pid = os.fork()  # in a new PID namespace, this child is its init: its end ends every process it started
    if pid == 0:
        _run_program(cfg, result_fd)
    os.close(result_fd)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    sys.exit(main())
