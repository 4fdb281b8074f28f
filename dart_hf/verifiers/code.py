"""Is a student's program correct? Its code (the last fenced block) run against the row's tests.

Model-written code is untrusted: it never runs in the adapter's process. Each check builds
`program + tests (+ check(entry_point))` and runs it in the sandbox of `dart_hf.verifiers.sandbox`
(a confined child process with a deadline and limits); this module extracts the code, judges the
runs (in parallel, cached) and says where a code answer ends (`CodeBlockStopper`, the stop rule).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import queue
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Union

from .base import Attempt, GoldCheck, Verdict
from .sandbox import DEFAULT_UID_BASE, RunResult, python_for_uid, run_program

logger = logging.getLogger(__name__)

_FENCE = re.compile(r"^[ \t]*(`{3,})[ \t]*([\w.+#-]*)[ \t]*$")
_CLOSING = re.compile(r"[ \t]*(`+)")  # a line (or its beginning) that closes a block by the stop rule


def extract_code(text: Optional[str]) -> Optional[str]:
    """The content of the last fenced code block of `text` (an unclosed last block counts); None without one."""
    if not text:
        return None
    blocks: list[list[str]] = []
    inside: Optional[str] = None  # the opening fence's backticks while inside a block
    for line in text.splitlines():
        m = _FENCE.match(line)
        if inside is None:
            if m:
                inside = m.group(1)
                blocks.append([])
        elif _closes(m, inside):
            inside = None
        else:
            blocks[-1].append(line)
    if not blocks:
        return None
    return "\n".join(blocks[-1]) + "\n"


def _closes(fence: Optional[re.Match], inside: str) -> bool:
    """Does a fence line close the block opened with `inside` backticks? (Bare, and at least as long.)"""
    return fence is not None and not fence.group(2) and len(fence.group(1)) >= len(inside)


class CodeBlockStopper:
    """The code stop rule: done once the fenced block holding the answer is closed (a `dart_hf.answers.Stopper`).

    That block is the one open at the end of the prompt (the expert prefix opened it), else the first one
    the continuation opens. A prompt that ends right after a closing fence (the whole expert block given)
    has its answer already: the first piece stops it. A line that starts (after indentation) with as many
    backticks as the opening fence stops it at the backtick that completes them, before the rest of the
    line: where the stop falls never depends on how the text was cut into pieces (tokens, or a server's
    whole text). The judged text is the cut one, whose last line is then a bare fence.
    """

    name = "code_block"

    def __init__(self, prompt: str = "") -> None:
        head, newline, last = prompt.rpartition("\n")
        self._inside: Optional[str] = None  # the open block's backticks
        closed_last = False
        for line in head.splitlines() if newline else ():
            m = _FENCE.match(line)
            if self._inside is None and m:
                self._inside, closed_last = m.group(1), False
            elif self._inside is not None and _closes(m, self._inside):
                self._inside, closed_last = None, True
            elif line.strip():
                closed_last = False
        self._answered = closed_last and not last.strip()  # the prompt ends with the answer's closed block
        self._line = last  # the line being written (the prompt's unfinished last line continues)
        self._line_start = -len(last)  # its offset in the fed text
        self._fed = 0
        self.done = False
        self.end = 0

    def feed(self, piece: str) -> bool:
        """Append generated text; return True once the answer's block is closed."""
        if self.done or not piece:
            return self.done
        if self._answered:
            self.done, self.end = True, 0
            return True
        self._fed += len(piece)
        self._line += piece
        while True:
            newline = self._line.find("\n")
            line = self._line if newline == -1 else self._line[:newline]
            if self._inside is not None:
                close = _CLOSING.match(line)
                if close and len(close.group(1)) >= len(self._inside):
                    # at the backtick that completes the fence: the same place whatever the pieces were
                    self.done = True
                    self.end = max(0, self._line_start + close.start(1) + len(self._inside))
                    return True
            if newline == -1:
                return False
            m = _FENCE.match(line)
            if self._inside is None and m:  # an opening fence counts once its line is whole
                self._inside = m.group(1)
            self._line = self._line[newline + 1 :]
            self._line_start += newline + 1


class CodeVerifier:
    """Judges code by running it against tests in a sandboxed child process.

    The gold of a row is its tests (a Python program that raises when the answer is wrong, as
    HumanEval's `test`); when the row has an `entry_point` column, `check(<entry_point>)` is called
    after them. The answer of an attempt is its last fenced code block, or what `extract(text)`
    returns. A pass is a program that ran to its end and exited 0; a failed assertion or any error
    is a wrong answer; a deadline overrun or a kill by a signal (CPU limit, crash) is no verdict,
    counted like a math-verify timeout.

    Args:
        timeout: wall-clock seconds per check; the process group is killed then.
        memory_mb: address-space limit of the program's process.
        cpu_seconds: CPU-time limit (default: the timeout, rounded up).
        file_size_mb: largest file the program may write.
        max_processes: processes the program may have at once (itself included).
        max_output_bytes: how much of stdout + stderr is kept (the rest is read and dropped).
        workers: checks run at once (a thread pool; each check is its own process).
        isolate: try network and PID namespaces.
        sandbox_uid: when this process is root, run programs as this uid + worker slot
            ("auto": a high unused range; None: never switch users, which leaves root's powers).
        python: the interpreter that runs programs (default: this one, or a system `python3` when
            the sandbox uid cannot read this one's standard library).
        extract: `text -> code or None`, replacing the last-code-block rule.
        test_column: the row column holding the tests, read by `judge_attempts`.
        entry_point_column: the row column naming the function the tests call.
    """

    instruction = "Write the whole function, signature included, in one ```python code block."
    stop_rule = CodeBlockStopper  # generation stops once the answer's code block is closed

    def __init__(
        self,
        timeout: float = 10.0,
        memory_mb: int = 1024,
        cpu_seconds: Optional[int] = None,
        file_size_mb: int = 16,
        max_processes: int = 16,
        max_output_bytes: int = 65536,
        workers: int = 2,
        isolate: bool = True,
        sandbox_uid: Union[int, str, None] = "auto",
        python: Optional[str] = None,
        extract: Optional[Callable[[str], Optional[str]]] = None,
        test_column: str = "test",
        entry_point_column: str = "entry_point",
        cache_size: int = 10_000,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        for name, value in (
            ("memory_mb", memory_mb),
            ("file_size_mb", file_size_mb),
            ("max_processes", max_processes),
            ("max_output_bytes", max_output_bytes),
            ("workers", workers),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if sandbox_uid not in ("auto", None) and not (isinstance(sandbox_uid, int) and sandbox_uid > 0):
            raise ValueError(f"sandbox_uid must be 'auto', None or a uid > 0, got {sandbox_uid!r}")
        if extract is not None and not callable(extract):
            raise ValueError("extract must be a callable `text -> code or None`")
        self.timeout = float(timeout)
        self.memory_mb = memory_mb
        self.cpu_seconds = int(cpu_seconds) if cpu_seconds is not None else max(1, math.ceil(self.timeout))
        self.file_size_mb = file_size_mb
        self.max_processes = max_processes
        self.max_output_bytes = max_output_bytes
        self.workers = workers
        self.isolate = bool(isolate)
        self.sandbox_uid = sandbox_uid
        self.python = python
        self.extract = extract
        self.test_column = test_column
        self.entry_point_column = entry_point_column
        self.cache_size = int(cache_size)
        self.timeouts = 0  # checks stopped by the deadline or killed by a signal
        self._reset_runtime()

    # ------------------------------------------------------------------ the Verifier protocol
    def extract_answer(self, text: str) -> Optional[str]:
        """The code of a response: `extract(text)` when given, else its last fenced code block."""
        return self.extract(text) if self.extract is not None else extract_code(text)

    def judge_many(self, pairs: Sequence[tuple[str, Optional[str]]]) -> list[Verdict]:
        """One `Verdict` per `(tests, code)` pair; no code is a wrong answer (never run)."""
        return self._judge_programs([(code, tests, None) for tests, code in pairs])

    def judge_attempts(self, attempts: Sequence[Attempt]) -> list[Verdict]:
        """One `Verdict` per attempt: its code, the gold (or the row's test column), the row's entry point."""
        work = []
        for a in attempts:
            tests = a.gold or _text(a.row.get(self.test_column))
            work.append((a.answer, tests, _text(a.row.get(self.entry_point_column)) or None))
        return self._judge_programs(work)

    def inspect_gold(self, gold: str) -> GoldCheck:
        """The tests must be non-empty Python that compiles (compiled here, never run here)."""
        if not gold or not gold.strip():
            return GoldCheck("the tests (gold) are empty")
        try:
            compile(gold, "tests.py", "exec")
        except (SyntaxError, ValueError) as err:
            return GoldCheck(f"the tests (gold) are not valid Python: {type(err).__name__}: {err}"[:300])
        return GoldCheck(None)

    @property
    def fingerprint(self) -> str:
        extract = "last-code-block"
        if self.extract is not None:
            extract = f"{getattr(self.extract, '__module__', '?')}.{getattr(self.extract, '__qualname__', '?')}"
        return (
            f"timeout={self.timeout!r},memory_mb={self.memory_mb},cpu={self.cpu_seconds},"
            f"fsize_mb={self.file_size_mb},nproc={self.max_processes},extract={extract},"
            f"columns={self.test_column}/{self.entry_point_column}"
        )

    def __repr__(self) -> str:
        return f"CodeVerifier(timeout={self.timeout:g}, memory_mb={self.memory_mb}, workers={self.workers})"

    # ------------------------------------------------------------------ running programs
    def run(self, program: str) -> RunResult:
        """Run one program in the sandbox (what every check does; also for diagnostics)."""
        slot = self._slots.get()
        try:
            return self._run_in_slot(program, slot)
        finally:
            self._slots.put(slot)

    def sandbox_report(self) -> dict[str, Any]:
        """Which confinements hold on this machine (runs one trivial program)."""
        result = self.run("print('ok')\n")
        return {
            "isolation": list(result.isolation),
            "network_isolated": "net" in result.isolation,
            "pid_namespace": "pid" in result.isolation,
            "unprivileged_uid": "uid" in result.isolation or os.geteuid() != 0,
            "python": self._python(),
            "works": result.passed,
        }

    def close(self) -> None:
        """Nothing to end between checks (each check is its own process); kept for symmetry with MathVerifier."""

    # Pickling ships the settings only: a lock and a queue cannot cross processes.
    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
        state.pop("timeouts", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.timeouts = 0
        self._reset_runtime()

    # ------------------------------------------------------------------ internals
    def _reset_runtime(self) -> None:
        self._lock = threading.Lock()
        self._slots: queue.Queue[int] = queue.Queue()
        for slot in range(self.workers):
            self._slots.put(slot)
        self._cache: OrderedDict[str, Verdict] = OrderedDict()
        self._warned: set[str] = set()

    def _uid(self, slot: int) -> Optional[int]:
        if os.geteuid() != 0 or self.sandbox_uid is None:
            return None
        base = DEFAULT_UID_BASE if self.sandbox_uid == "auto" else int(self.sandbox_uid)
        return base + slot

    def _python(self) -> str:
        preferred = self.python or sys.executable
        if os.geteuid() != 0 or self.sandbox_uid is None:
            return preferred
        found = python_for_uid(preferred)
        if found is None:
            self._warn_once(
                "no interpreter", "no Python interpreter whose standard library an unprivileged uid can read"
            )
            return preferred
        return found

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning("code sandbox: %s (see docs/verifiers.md)", message)

    def _judge_programs(self, work: Sequence[tuple[Optional[str], str, Optional[str]]]) -> list[Verdict]:
        results: list[Optional[Verdict]] = [None] * len(work)
        todo: dict[str, list[int]] = {}
        programs: dict[str, str] = {}
        for i, (code, tests, entry_point) in enumerate(work):
            if not code or not code.strip():
                results[i] = Verdict(False)
                continue
            program = build_program(code, tests, entry_point)
            key = hashlib.sha256(program.encode()).hexdigest()
            with self._lock:
                cached = self._cache.get(key)
            if cached is not None:
                results[i] = cached
                continue
            todo.setdefault(key, []).append(i)
            programs[key] = program
        keys = list(todo)
        if keys:
            with ThreadPoolExecutor(max_workers=min(self.workers, len(keys))) as pool:
                runs = list(pool.map(lambda k: self.run(programs[k]), keys))
            for key, run in zip(keys, runs):
                verdict = Verdict(run.passed, run.timed_out)
                with self._lock:
                    if self.cache_size > 0:
                        self._cache[key] = verdict
                        if len(self._cache) > self.cache_size:
                            self._cache.popitem(last=False)
                for i in todo[key]:
                    results[i] = verdict
        return [r if r is not None else Verdict(False) for r in results]

    def _run_in_slot(self, program: str, slot: int) -> RunResult:
        result = run_program(
            program,
            python=self._python(),
            uid=self._uid(slot),
            timeout=self.timeout,
            cpu_seconds=self.cpu_seconds,
            memory_mb=self.memory_mb,
            file_size_mb=self.file_size_mb,
            max_processes=self.max_processes,
            max_output_bytes=self.max_output_bytes,
            isolate=self.isolate,
            warn=self._warn_once,
        )
        if result.timed_out:
            with self._lock:
                self.timeouts += 1
        return result


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def build_program(code: str, tests: str, entry_point: Optional[str] = None) -> str:
    """The program a check runs: the code, the tests, then `check(entry_point)` when there is one."""
    program = code.rstrip() + "\n\n\n" + tests.strip() + "\n"
    if entry_point:
        program += f"\n\ncheck({entry_point})\n"
    return program


__all__ = ["CodeVerifier", "RunResult", "build_program", "extract_code"]
