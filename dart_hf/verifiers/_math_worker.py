"""Worker process behind `dart_hf.verifiers.MathVerifier`: runs math-verify, answers over pipes.

Why a separate process: some inputs keep math-verify (sympy) busy forever, and its SIGALRM timeout
only works in a main thread. The parent owns the real deadline and kills this process when it is
exceeded; here, in our own main thread, math-verify's alarms are kept only as a backstop (set
longer than the parent's deadline) so that an orphaned worker still finishes its item and exits.

Protocol (JSON lines). Startup: the worker writes `{"ready": true}` once math-verify is imported,
so import time never counts against an item's deadline. Then, per request line
`{"id": n, "op": "verify", "gold": g, "pred": p}` or `{"id": n, "op": "check", "gold": g}` (does `g`
parse into math, and can it be compared at all?) it writes `{"id": n, "result": bool}` (plus
`"error"` when math-verify raised). End of input: exit.

This module imports nothing from `dart_hf`, so it can run from its file path without importing the
package (which would pull in `datasets` and double the start-up time and memory of every worker).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys
from typing import Any, Optional

DEFAULT_BACKSTOP_S = 10
PROBE = "0"  # a plain number: comparing a gold with it exercises the gold's evaluation


def _answer_parser(backstop: int) -> Any:
    """Build `parse_answer(text) -> (parsed list, has_math)` with the DART extraction config."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse
    from sympy import Basic, MatrixBase

    # Boxed first (as TRL's accuracy_reward), with math-verify's default (full) normalization so that
    # `\frac12` and `\sqrt2` parse; TRL's pred-side `NormalizationConfig(units=True)` rejects them.
    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]

    @functools.lru_cache(maxsize=1024)  # the same gold is compared with many predictions
    def parse_answer(text: str) -> tuple[tuple[Any, ...], bool]:
        fallback: tuple[Any, ...] = ()
        for wrapped in ("\\boxed{" + text + "}", "$" + text + "$"):
            parsed = tuple(parse(wrapped, extraction_config=config, parsing_timeout=backstop))
            if any(isinstance(x, (Basic, MatrixBase)) for x in parsed):
                return parsed, True
            fallback = fallback or parsed  # strings only: math-verify can still compare them as text
        return fallback, False

    return parse_answer


def _handle(request: dict[str, Any], parse_answer: Any, backstop: int) -> bool:
    from math_verify import verify

    gold_parsed, gold_ok = parse_answer(request["gold"])
    if request["op"] == "check":
        if gold_ok:
            # Some golds parse, then hang every comparison (Math-Verify issue 65): compare once with a
            # probe, under the same deadline, so such a gold fails its check instead of every rollout.
            probe, _ = parse_answer(PROBE)
            verify(list(gold_parsed), list(probe), timeout_seconds=backstop)
        return gold_ok
    if request["op"] != "verify":
        raise ValueError(f"unknown op {request['op']!r}")
    pred_parsed, _ = parse_answer(request["pred"])
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(list(gold_parsed), list(pred_parsed), timeout_seconds=backstop))


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    backstop = max(1, int(argv[0])) if argv else DEFAULT_BACKSTOP_S

    # The protocol owns the real stdout; anything a library prints goes to stderr instead.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # Ctrl-C is for the parent; this process ends when its input closes (or when it is killed).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.ERROR)
    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.ERROR)

    parse_answer = _answer_parser(backstop)
    # Warm up before saying ready: the lazy set-up of sympy and the parser (over 1 s on a loaded
    # machine) must not count against the first item's deadline.
    try:
        _handle({"op": "verify", "gold": "\\frac{1}{2}", "pred": "0.5"}, parse_answer, backstop)
    except Exception:  # noqa: BLE001 - a broken install shows on the first real request instead
        pass

    def reply(obj: dict[str, Any]) -> bool:
        try:
            out.write(json.dumps(obj) + "\n")
            out.flush()
            return True
        except (BrokenPipeError, OSError):  # parent gone
            return False

    if not reply({"ready": True, "pid": os.getpid()}):
        return 0
    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
        except ValueError:
            reply({"id": None, "result": False, "error": "bad request line"})
            continue
        answer: dict[str, Any] = {"id": request.get("id")}
        try:
            answer["result"] = _handle(request, parse_answer, backstop)
        except Exception as err:  # noqa: BLE001 - one bad answer must not end the worker
            answer["result"] = False
            answer["error"] = f"{type(err).__name__}: {err}"[:500]
        except BaseException as err:  # math-verify's TimeoutException escaping its own handlers
            if isinstance(err, (SystemExit, KeyboardInterrupt)):
                raise
            answer["result"] = False
            answer["error"] = f"{type(err).__name__}: {err}"[:500]
        if not reply(answer):
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
