"""The planted-gap task: the planted gap is where the expert solution says it is, and the arithmetic is right."""

import re

import pytest

from dart_hf import DartConfig
from dart_hf.example import parse_example
from dart_hf.tasks.planted_gap import PlantedGapTask

LINE = re.compile(r"^(\d+) ([+-]) (\d+) = (\d+)$")
FACTOR = re.compile(r"^(\d+) = (\d+) × (\d+)$")
CARRY = re.compile(r"^(\d+) × (\d+) ([+-]) (\d+) = (\d+)$")


def _apply(a: int, sign: str, b: int) -> int:
    return a + b if sign == "+" else a - b


@pytest.fixture(scope="module")
def rows():
    return list(PlantedGapTask().generate(300, seed=7))


def _steps(row):
    # the steps DartAdapter will see: paragraphs, separators stripped
    return [s.strip() for s in parse_example(row, DartConfig()).steps]


def test_same_seed_same_rows_other_seed_other_rows():
    task = PlantedGapTask()
    assert task.generate(20, seed=3).to_list() == task.generate(20, seed=3).to_list()
    assert task.generate(20, seed=3)["problem"] != task.generate(20, seed=4)["problem"]


def test_student_solution_chains_correct_arithmetic(rows):
    for row in rows:
        lines = row["student_solution"].split("\n\n")
        assert len(lines) == row["n_ops"] + 1
        value = int(LINE.match(lines[0]).group(1))
        assert f"has {value} " in row["problem"]
        for line in lines[:-1]:
            a, sign, b, result = LINE.match(line).groups()
            assert int(a) == value and _apply(value, sign, int(b)) == int(result)
            value = int(result)
            assert 0 <= value <= PlantedGapTask().max_value
        assert lines[-1] == f"The answer is \\boxed{{{value}}}." and row["answer"] == str(value)


def test_planted_gap_step_is_the_first_step_in_the_unknown_technique(rows):
    gapped = [r for r in rows if r["planted_gap"] > 0]
    assert gapped, "no planted gaps generated"
    for row in gapped:
        g = row["planted_gap"]
        steps, student = _steps(row), row["student_solution"].split("\n\n")
        assert len(steps) == len(student) + 1
        assert steps[: g - 1] == student[: g - 1]  # student style before the gap
        assert all("×" not in s for s in steps[: g - 1])
        value = int(LINE.match(student[g - 1]).group(1))  # the running total entering step g
        total, a, b = map(int, FACTOR.match(steps[g - 1]).groups())
        assert total == value == a * b and 2 <= a <= b
        a2, b2, sign, d, result = CARRY.match(steps[g]).groups()
        assert (int(a2), int(b2)) == (a, b) and steps[g].endswith(student[g - 1].split(" = ")[1])
        assert _apply(value, sign, int(d)) == int(result)
        assert steps[g + 1 :] == student[g:]  # student style again after the product is gone
        assert parse_example(row, DartConfig()).gold == row["answer"]


def test_control_rows_are_student_style_throughout(rows):
    controls = [r for r in rows if r["planted_gap"] == -1]
    assert controls
    assert all(r["solution"] == r["student_solution"] for r in controls)


@pytest.mark.parametrize("share,expected", [(0.0, False), (1.0, True)])
def test_gap_share_extremes(share, expected):
    ds = PlantedGapTask(gap_share=share).generate(40, seed=1)
    assert all((g > 0) is expected for g in ds["planted_gap"])


def test_gap_share_is_respected_on_average(rows):
    share = sum(r["planted_gap"] > 0 for r in rows) / len(rows)
    assert 0.6 <= share <= 0.8  # default 0.7, 300 rows


@pytest.mark.parametrize(
    "kwargs", [dict(min_ops=0), dict(min_ops=4, max_ops=3), dict(gap_share=1.5), dict(max_start=1)]
)
def test_bad_sizes_are_refused(kwargs):
    with pytest.raises(ValueError):
        PlantedGapTask(**kwargs)


def test_score_detection_counts_exact_hits_misses_and_false_positives():
    from dart_hf.tasks.planted_gap import score_detection

    planted = [2, 3, 4, -1, -1, 1]
    detected = [2, 4, -1, 3, -1, 1]
    s = score_detection(planted, detected)
    assert s["precision"] == pytest.approx(2 / 4)  # hits at rows 0 and 5 out of 4 detections
    assert s["recall"] == pytest.approx(2 / 4)  # 2 of 4 planted gaps found exactly
    assert s["position_error"] == pytest.approx((0 + 1 + 0) / 3)
    assert s["false_positive_rate"] == pytest.approx(1 / 2)
    with pytest.raises(ValueError):
        score_detection([1], [])


def test_the_documented_import_path_works():
    """The docs say `dart_hf.tasks.PlantedGapTask`; it used to raise ImportError (issue 20)."""
    import dart_hf.tasks
    from dart_hf.tasks import PlantedGapTask as documented

    assert documented is PlantedGapTask and "PlantedGapTask" in dart_hf.tasks.__all__
    assert len(documented().generate(3, seed=0)) == 3
