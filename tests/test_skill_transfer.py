"""The skill-transfer task's ground truth: teaching and leap steps where the solutions say, right arithmetic."""

import json
import re

import pytest

from dart_hf.tasks.skill_transfer import QUANTITIES, SkillTransferTask, states_number, states_quantity

LINE = re.compile(r"^(\d+|\d+ × \d+) ([+-]) (\d+) = (\d+)$")
PRODUCT = re.compile(r"^(\d+) = (\d+) × (\d+)$")


@pytest.fixture(scope="module")
def rows():
    return list(SkillTransferTask().generate(400, seed=3))


def _value(left: str) -> int:
    if "×" in left:
        a, b = left.split(" × ")
        return int(a) * int(b)
    return int(left)


def _check_chain(steps: list[str], answer: str, start: int) -> None:
    """Every line's arithmetic is right and each line starts from the previous total."""
    total = start
    for step in steps[:-1]:
        if m := PRODUCT.match(step):
            assert int(m.group(1)) == int(m.group(2)) * int(m.group(3)) == total, step
            continue
        m = LINE.match(step)
        assert m, f"not an operation line: {step!r}"
        left, sign, delta, result = m.groups()
        assert _value(left) == total, step
        total = total + int(delta) if sign == "+" else total - int(delta)
        assert total == int(result), step
        assert 0 <= total <= 30
    assert steps[-1] == f"The answer is \\boxed{{{answer}}}." and int(answer) == total


def test_same_seed_same_rows_other_seed_other_rows():
    task = SkillTransferTask()
    assert task.generate(20, seed=1)[:] == task.generate(20, seed=1)[:]
    assert task.generate(20, seed=1)["problem"] != task.generate(20, seed=2)["problem"]


def test_skill_rows_teach_first_and_leap_later_with_right_arithmetic(rows):
    skill = [r for r in rows if r["skill"]]
    assert len(skill) > 150
    for r in skill:
        steps = r["solution"].split("\n\n")
        teach, quantity = QUANTITIES[r["skill"]]
        # the problem names the quantity by its word only; the teaching step states it, first
        assert r["problem"].split(".")[0].endswith(r["skill"] + " " + r["problem"].split(".")[0].split()[-1])
        assert not re.search(r"\d", r["problem"].split(".")[0])
        assert r["teach_step"] == 1 and steps[0] == r["teach_text"] == teach and r["quantity"] == quantity
        # the leap is a product rewrite of the running total, after at least one chain line of the student's own
        assert r["leap_step"] >= 3 and r["planted_gap"] == r["leap_step"]
        assert steps[r["leap_step"] - 1] == r["leap_text"] and PRODUCT.match(r["leap_text"])
        assert all("×" not in s for s in steps[: r["leap_step"] - 1])
        _check_chain(steps[1:], r["answer"], quantity)
        # the student-style solution is the same chain without the leap: teaching step, one line per operation
        student = r["student_solution"].split("\n\n")
        assert student[0] == teach and len(student) == r["n_ops"] + 2 and "×" not in r["student_solution"]
        _check_chain(student[1:], r["answer"], quantity)
        assert steps[: r["leap_step"] - 1] == student[: r["leap_step"] - 1]


def test_plain_rows_are_controls_without_a_teaching_step(rows):
    plain = [r for r in rows if not r["skill"]]
    assert len(plain) > 100
    assert any(r["leap_step"] > 0 for r in plain) and any(r["leap_step"] == -1 for r in plain)
    for r in plain:
        steps = r["solution"].split("\n\n")
        start = int(re.search(r"has (\d+) ", r["problem"]).group(1))
        assert r["teach_step"] == -1 and r["teach_text"] == "" and r["quantity"] == -1
        assert not any(step == t for step in steps for t, _ in QUANTITIES.values())
        _check_chain(steps, r["answer"], start)
        if r["leap_step"] > 0:
            assert steps[r["leap_step"] - 1] == r["leap_text"] and PRODUCT.match(r["leap_text"])
        else:
            assert r["solution"] == r["student_solution"] and r["leap_text"] == ""


@pytest.mark.parametrize("share, expected", [(0.0, 0), (1.0, 30)])
def test_skill_share_extremes(share, expected):
    got = SkillTransferTask(skill_share=share).generate(30, seed=0)
    assert sum(bool(s) for s in got["skill"]) == expected


@pytest.mark.parametrize("kwargs", [dict(skill_share=1.5), dict(gap_share=-0.1), dict(min_ops=1)])
def test_bad_sizes_are_refused(kwargs):
    with pytest.raises(ValueError):
        SkillTransferTask(**kwargs)


def test_states_quantity_reads_the_teaching_line():
    assert states_quantity("A dozen is 12.\n\n12 + 3 = 15", "a dozen") is True
    assert states_quantity("A dozen is 10.\n\n10 + 3 = 13", "a dozen") is False
    assert states_quantity("12 + 3 = 15", "a dozen") is False
    assert states_quantity("A pair is 2.", "a dozen") is False
    assert states_quantity("7 + 3 = 10", "") is None


def test_states_number_reads_the_quantity_in_a_misspelt_opening_line():
    assert states_number("A dozen is 12.\n\n12 + 3 = 15", 12) is True
    assert states_number("\ufffd\ufffden is 12.\n\n12 + 3 = 15", 12) is True  # words it cannot spell
    assert states_number("Sen is 2.\n\n3 + 5 = 8", 3) is False  # the wrong number
    assert states_number("12 + 3 = 15", 12) is False  # an operation, not a statement
    assert states_number("Gus has 20 eggs, 12.\n\n12 + 1 = 13", 12) is True  # the last number counts
    assert states_number("", 12) is False


def test_the_shipped_skill_student_is_the_default_recipes_and_never_saw_the_skill():
    from dart_hf.tasks.skill_student import SHIPPED_SKILL, SkillStudentRecipe, skill_student

    recipe = SkillStudentRecipe()
    # the key first: on a mismatch `skill_student()` would train a new student (about 25 minutes) instead of failing
    assert json.loads((SHIPPED_SKILL / "student_recipe.json").read_text())["key"] == recipe.key()
    assert skill_student() == str(SHIPPED_SKILL)
    seen = recipe.task.generate(recipe.n_train, seed=recipe.seed + 2)  # exactly its training rows
    assert any(seen["skill"]) and not all(seen["skill"])  # the format with number words, and plain problems
    for row in seen:
        assert not any(word in row["problem"] for word in QUANTITIES)
        assert "×" not in row["student_solution"]
        assert not any(teach in row["student_solution"] for teach, _ in QUANTITIES.values())
