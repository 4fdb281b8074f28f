"""The report's worked examples: which rows to show, and each one as plain data for the template.

An example is where a reader checks DART's decision by eye: the expert solution cut into steps
with the gap marked, the adapted solution with the student-written part highlighted, f_t per
prefix, and every stored student attempt. This module only gathers those facts (text stays raw,
numbers are formatted by `dart_hf.formatting`); the template `report.html.j2` lays them out and
escapes them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..formatting import MISSING, is_num, number
from ..rollouts import rollout_records
from ..schema import PHASE_SIM, Action
from .rows import problem_text, step_scores

#: Shown first to last: explore rows show what DART changes, error rows the least.
EXAMPLE_ORDER = (Action.EXPLORE, Action.FALLBACK, Action.IMITATE, Action.ERROR)


def pick_examples(rows: Sequence[Mapping[str, Any]], k: int) -> list[int]:
    """Indices of the `k` rows to show: by `EXAMPLE_ORDER` of their action, then in row order."""
    order = {a.value: n for n, a in enumerate(EXAMPLE_ORDER)}
    ranked = sorted(range(len(rows)), key=lambda i: (order.get(rows[i]["dart_action"], len(order)), i))
    return ranked[: max(k, 0)]


def _steps(steps: Sequence[str], gap: int = -1, dim_after_gap: bool = False) -> list[dict[str, Any]]:
    """One entry per step: its CSS class, number, text, and the separator after it (kept outside the mark)."""
    out = []
    for k, step in enumerate(steps, start=1):
        cls = "step"
        if k == gap:
            cls += " gap"
        elif dim_after_gap and gap >= 1 and k > gap:
            cls += " replaced"
        body = step.rstrip()
        out.append({"cls": cls, "k": k, "body": body, "tail": step[len(body) :]})
    return out


def _adapted(row: Mapping[str, Any]) -> dict[str, Any]:
    """The adapted solution as copied expert steps (or plain text) plus the student-written rest.

    `student` is the text from `dart_student_start` on (None when no part was written by the
    student); `steps` is set when the copied part is exactly a prefix of the expert steps.
    """
    solution = row.get("dart_solution") or ""
    start = row.get("dart_student_start")
    start = int(start) if isinstance(start, int) else -1
    steps = list(row.get("dart_steps") or [])
    out: dict[str, Any] = {"empty": not solution, "steps": None, "text": None, "student": None}
    if not solution:
        return out
    if start < 0 or start > len(solution):
        if steps and "".join(steps) == solution:
            out["steps"] = _steps(steps)
        else:
            out["text"] = solution
        return out
    prefix, out["student"] = solution[:start], solution[start:]
    k = next((k for k in range(len(steps) + 1) if "".join(steps[:k]) == prefix), None)
    if k is not None:
        out["steps"] = _steps(steps[:k])
    else:
        out["text"] = prefix
    return out


def _verdict(action: str, row: Mapping[str, Any], scores: Sequence[float]) -> str:
    """Which explanation goes under the adapted solution (the template words each one)."""
    if action == Action.EXPLORE:
        return "explore"
    if action == Action.FALLBACK:
        return "fallback_kept" if row.get("dart_solution") else "fallback_dropped"
    if action == Action.ERROR:
        return "error"
    finite = [f for f in scores if math.isfinite(f)]
    return "imitate_never_correct" if finite and max(finite) == 0 else "imitate"


def _rollouts(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """Every stored attempt of the student, grouped per prefix t (simulation first, then explorations).

    None when there is nothing to say (an error row without attempts); `kept` is False when the
    attempts were not stored, so the page can say how to keep them.
    """
    records = rollout_records(row.get("dart_rollouts"))
    if not records:
        return None if row.get("dart_action") == Action.ERROR else {"kept": False, "groups": []}
    scores = step_scores(row)
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["phase"], int(r["prefix_index"])), []).append(r)
    out = []
    for phase, t in sorted(groups, key=lambda g: (g[0] != PHASE_SIM, g[1])):
        rs = groups[(phase, t)]
        f = scores[t] if t < len(scores) else float("nan")
        n_cap = sum(r["finish_reason"] == "length" for r in rs)
        out.append(
            {
                "phase": phase,
                "simulation": phase == PHASE_SIM,
                "t": t,
                "f": number(f, 2) if phase == PHASE_SIM and math.isfinite(f) else None,
                "correct": number(sum(bool(r["correct"]) for r in rs)),
                "total": number(len(rs)),
                "token_cap": number(n_cap) if n_cap else None,
                "has_chosen": any(r["chosen"] for r in rs),
                "attempts": [
                    {
                        "correct": bool(r["correct"]),
                        "chosen": bool(r["chosen"]),
                        "sample": int(r["sample"]),
                        "answer": r["answer"] or None,
                        "tokens": number(int(r["tokens"])),
                        "finish_reason": r["finish_reason"],
                        "logprob": number(r["logprob"], 3) if is_num(r.get("logprob")) else None,
                        "text": r["text"],
                    }
                    for r in rs
                ],
            }
        )
    return {"kept": True, "groups": out}


def example_context(index: int, row: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the template shows about row `index`: raw texts, formatted numbers, no markup."""
    action = row["dart_action"]
    steps = list(row.get("dart_steps") or [])
    scores = step_scores(row)
    gap = int(row["dart_gap_step"]) if row.get("dart_gap_step") is not None else -1
    return {
        "index": index,
        "action": action,
        "answer": row.get("dart_answer") or MISSING,
        "gap": gap if gap >= 1 else None,
        "n_steps": len(steps),
        "tokens": number(row.get("dart_tokens_generated"), 1),
        "seconds": number(row["dart_seconds"], 1) if is_num(row.get("dart_seconds")) else None,
        "selection": row.get("dart_selection") or None,
        "error": row.get("dart_error") or None,
        "problem": problem_text(row),
        "scores": [{"t": t, "value": number(f, 2), "gap": t == gap} for t, f in enumerate(scores)],
        "expert_steps": _steps(steps, gap, dim_after_gap=action == Action.EXPLORE) if steps else None,
        "expert_text": row.get("dart_solution") or "",
        "adapted": _adapted(row),
        "verdict": _verdict(action, row, scores),
        "rollouts": _rollouts(row),
    }
