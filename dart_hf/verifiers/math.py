"""Is a student's final answer mathematically equal to the gold answer? (math-verify, with a hard deadline.)

Why the machinery: math-verify's own timeout uses SIGALRM, which works only in a main thread, and
some inputs keep sympy busy past it or forever (Math-Verify issue 65). So comparisons run in a
worker *process* (`dart_hf/verifiers/_math_worker.py`) that is killed when an item overruns its deadline; the
item is a timeout (no verdict; False to callers that want a bool) and the worker restarts lazily.
Timeouts are reported, not hidden: a row whose every comparison times out is an error upstream. The worker is started with
`subprocess.Popen`, not `multiprocessing`, because `datasets.map(num_proc=...)` runs transforms in
daemonic processes, which may not start `multiprocessing` children. The deadline uses `select` on
the worker's pipe, so this module is POSIX-only (as DART's targets are).
"""

from __future__ import annotations

import json
import logging
import math
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Optional

from ..errors import RunError
from .base import GoldCheck, Verdict

logger = logging.getLogger(__name__)

_WORKER_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_math_worker.py")
# Run the worker from its file: `-m dart_hf.verifiers._math_worker` would first import the `dart_hf`
# package (and `datasets` with it), doubling each worker's start-up time and memory.
_BOOTSTRAP = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
_STARTUP_TIMEOUT_S = 120.0  # importing sympy on a loaded machine; not an item's deadline


class _Timeout(Exception):
    pass


class _WorkerGone(Exception):
    pass


def _normalize(answer: Optional[str]) -> str:
    """Answer without surrounding whitespace or `$` delimiters (an escaped `\\$` stays)."""
    s = "" if answer is None else str(answer).strip()
    while s.startswith("$"):
        s = s[1:].lstrip()
    while s.endswith("$") and not s.endswith("\\$"):
        s = s[:-1].rstrip()
    return " ".join(s.split())


def _stop(proc: subprocess.Popen, owner_pid: int) -> None:
    """Kill and reap `proc`. A forked copy of the owner must not touch the owner's worker."""
    if os.getpid() != owner_pid:
        return
    for stream in (proc.stdin, proc.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
    if proc.poll() is None:
        try:
            proc.kill()
        except OSError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL not delivered: nothing more to do
        logger.warning("math-verify worker %d did not exit after SIGKILL", proc.pid)


class MathVerifier:
    """Checks `(gold, predicted)` answer strings (the content of `\\boxed{}`) with math-verify.

    `timeout` is a hard wall-clock deadline per comparison (the worker's start-up is not counted): an
    overrun kills the worker, counts in `timeouts`, and the item is a timeout (`Verdict(False, True)`,
    cached as such; `verify`/`verify_many` read it as False). The worker process starts on first use,
    ends with `close()` (or when the verifier is garbage-collected, or at interpreter exit) and
    restarts when needed. Safe to share between threads (one lock around the pipe). Pickling keeps only the settings, so
    `datasets` can ship the verifier to its worker processes, each of which starts its own worker.
    """

    def __init__(self, timeout: float = 5.0, cache_size: int = 10_000) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        self.timeout = float(timeout)
        self.cache_size = int(cache_size)
        self.timeouts = 0  # comparisons stopped by the deadline
        self.failures = 0  # comparisons lost to a worker crash (e.g. out of memory)
        self._reset_runtime()

    # ------------------------------------------------------------------ public API
    def verify(self, gold: str, pred: Optional[str]) -> bool:
        """True when `pred` is mathematically equal to `gold` (gold first: math-verify is not symmetric)."""
        return self.verify_many([(gold, pred)])[0]

    def verify_many(self, pairs: Sequence[tuple[str, Optional[str]]]) -> list[bool]:
        """Judge many `(gold, pred)` pairs (a timeout counts as False; `judge_many` tells them apart)."""
        return [v.correct for v in self.judge_many(pairs)]

    def judge_many(self, pairs: Sequence[tuple[str, Optional[str]]]) -> list[Verdict]:
        """A `Verdict` per `(gold, pred)` pair: one worker round trip per distinct, uncached pair.

        A pair without a prediction, or with one identical to the gold, is decided without math-verify
        (and never times out). A cached timeout is reported as a timeout again.
        """
        results: list[Optional[Verdict]] = [None] * len(pairs)
        todo: dict[tuple[str, str], list[int]] = {}
        for i, (gold, pred) in enumerate(pairs):
            g, p = _normalize(gold), _normalize(pred)
            if not p or not g:
                results[i] = Verdict(False)
            elif g == p:
                results[i] = Verdict(True)
            else:
                todo.setdefault((g, p), []).append(i)
        for (g, p), indices in todo.items():
            verdict = Verdict(*self._judge(("verify", g, p)))
            for i in indices:
                results[i] = verdict
        return [r if r is not None else Verdict(False) for r in results]

    def check_gold(self, gold: str) -> Optional[str]:
        """None when `gold` can be judged against; otherwise why not, for the error column."""
        return self.inspect_gold(gold).reason

    def inspect_gold(self, gold: str) -> GoldCheck:
        """Can math-verify parse `gold` into math, and compare it at all within the deadline?

        A gold that does not parse makes every comparison False, and one that hangs makes every
        comparison time out (Math-Verify issue 65), so such rows must be refused, not adapted to f = 0.
        """
        g = _normalize(gold)
        if not g:
            return GoldCheck("gold answer is empty")
        parsed, status = self._judge_status(("check", g, ""))
        if parsed:
            return GoldCheck(None)
        shown = repr(gold) if len(gold) <= 80 else repr(gold[:60]) + f"... ({len(gold)} characters)"
        if status == "crash":
            return GoldCheck(f"the math-verify worker died twice while checking gold answer {shown}", True)
        if status == "timeout":
            return GoldCheck(f"gold answer {shown} timed out in math-verify (over {self.timeout:g} s)", True)
        return GoldCheck(f"gold answer {shown} could not be parsed by math-verify")

    def close(self) -> None:
        """End the worker process now (the verifier stays usable: the next call starts a new one)."""
        with self._lock:
            self._stop_worker()

    def __enter__(self) -> MathVerifier:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MathVerifier(timeout={self.timeout:g})"

    # Pickling ships the settings only: a process handle, pipes and lock cannot cross processes.
    def __getstate__(self) -> dict[str, Any]:
        return {"timeout": self.timeout, "cache_size": self.cache_size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    # ------------------------------------------------------------------ internals
    def _reset_runtime(self) -> None:
        self._lock = threading.Lock()
        self._owner_pid = os.getpid()
        self._proc: Optional[subprocess.Popen] = None
        self._finalizer: Optional[weakref.finalize] = None
        self._buffer = b""
        self._next_id = 0
        self._cache: OrderedDict[tuple[str, str, str], tuple[bool, str]] = OrderedDict()

    def _judge(self, key: tuple[str, str, str]) -> tuple[bool, bool]:
        """(verdict, timed out) for one request: from the cache, or from the worker."""
        verdict, status = self._judge_status(key)
        return verdict, status != "ok"

    def _judge_status(self, key: tuple[str, str, str]) -> tuple[bool, str]:
        """(verdict, "ok" | "timeout" | "crash") for one request: from the cache, or from the worker."""
        if os.getpid() != self._owner_pid:
            # Forked copy (not unpickled): the worker, pipes and maybe a held lock belong to the parent.
            self._reset_runtime()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
            verdict, status = self._ask(key)
            outcome = (verdict, status)
            if status != "crash" and self.cache_size > 0:  # a crash may be chance; an overrun would recur
                self._cache[key] = outcome
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            return outcome

    def _ask(self, key: tuple[str, str, str]) -> tuple[bool, str]:
        """(verdict, "ok" | "timeout" | "crash") from the worker under the deadline; lock held.

        A worker that dies (killed from outside, out of memory) is not a timeout: the request is sent
        once more to a fresh worker, and only a second death makes it a "crash" (no verdict).
        """
        op, gold, pred = key
        deaths = 0
        for attempt in (1, 2, 3):
            proc = self._ensure_worker()
            self._next_id += 1
            request_id = self._next_id
            line = json.dumps({"id": request_id, "op": op, "gold": gold, "pred": pred}) + "\n"
            try:
                self._write(proc, line.encode())
            except OSError:  # worker died while idle: start a new one and send again, once
                self._stop_worker()
                if attempt == 3:
                    raise RunError("math-verify worker keeps dying before it gets a request") from None
                continue
            try:
                reply = self._read_reply(proc, time.monotonic() + self.timeout)
            except _Timeout:
                self._stop_worker()
                self.timeouts += 1
                logger.warning(
                    "math-verify exceeded %.3g s on gold=%.80r pred=%.80r; judged False", self.timeout, gold, pred
                )
                return False, "timeout"
            except _WorkerGone as err:
                self._stop_worker()
                deaths += 1
                if deaths < 2:
                    logger.warning(
                        "math-verify worker died (%s) on gold=%.80r pred=%.80r; retrying once", err, gold, pred
                    )
                    continue
                self.failures += 1
                logger.warning(
                    "math-verify worker died twice (%s) on gold=%.80r pred=%.80r; no verdict", err, gold, pred
                )
                return False, "crash"
            if reply.get("id") != request_id:
                self._stop_worker()
                raise RuntimeError(f"math-verify worker answered request {reply.get('id')}, expected {request_id}")
            if reply.get("error"):
                logger.debug("math-verify error on gold=%.80r pred=%.80r: %s", gold, pred, reply["error"])
            return bool(reply.get("result")), "ok"
        raise RunError("math-verify worker keeps dying before it answers a request")

    def _ensure_worker(self) -> subprocess.Popen:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._stop_worker()
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(_WORKER_FILE))))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        # math-verify's own alarms stay on in the worker's main thread, but only as a backstop that
        # fires after our deadline, so that an orphaned worker cannot stay stuck on one item.
        backstop = math.ceil(self.timeout) + 1
        proc = subprocess.Popen(
            [sys.executable, "-c", _BOOTSTRAP, _WORKER_FILE, str(backstop)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            env=env,
            close_fds=True,
        )
        self._proc, self._buffer = proc, b""
        self._finalizer = weakref.finalize(self, _stop, proc, self._owner_pid)  # GC and interpreter exit
        try:
            ready = self._read_reply(proc, time.monotonic() + _STARTUP_TIMEOUT_S)
        except (_Timeout, _WorkerGone) as err:
            self._stop_worker()
            raise RunError(
                f"the math-verify worker failed to start ({type(err).__name__}: {err}); check that "
                f"`{sys.executable} -c 'import math_verify'` works (pip install 'math-verify[antlr4_13_2]')"
            ) from None
        if not ready.get("ready"):
            self._stop_worker()
            raise RunError(f"the math-verify worker sent {ready!r} instead of its ready line")
        return proc

    def _stop_worker(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # runs `_stop` once, then detaches
        self._proc, self._finalizer, self._buffer = None, None, b""

    @staticmethod
    def _write(proc: subprocess.Popen, data: bytes) -> None:
        assert proc.stdin is not None
        view = memoryview(data)
        while view:
            view = view[proc.stdin.write(view) or 0 :]

    def _read_reply(self, proc: subprocess.Popen, deadline: float) -> dict[str, Any]:
        """Next JSON line from the worker, or `_Timeout` at `deadline` (select: no blocking read)."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Timeout()
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                try:
                    code = proc.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    code = None
                raise _WorkerGone(f"pipe closed, exit code {code}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            return json.loads(line)
        except ValueError as err:
            raise _WorkerGone(f"unreadable reply {line[:200]!r}") from err
