"""Study harness plumbing: conditions' training sets, matched budget, intervals, outputs and the CLI."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from dart_hf import DartConfig
from dart_hf.backends.base import Completion
from dart_hf.example import parse_example
from dart_hf.simulation import Rollout
from dart_hf.study import StudyConfig
from dart_hf.study.conditions import matched_samples, pass_rate_set, rft_set, static_set
from dart_hf.study.stats import bootstrap_mean, per_problem_pass


def _examples(n):
    cfg = DartConfig()
    return [parse_example({"problem": f"p{i}", "solution": f"step\n\n\\boxed{{{i}}}"}, cfg) for i in range(n)]


def _rollouts(outcomes, tokens=10):
    return [
        Rollout(0, Completion(f"try {j} {ok}", tokens, logprob=-0.1 * j), str(j), ok) for j, ok in enumerate(outcomes)
    ]


def test_static_keeps_every_readable_row_as_the_expert_wrote_it():
    examples = _examples(3) + [None]
    ts = static_set(examples)
    assert len(ts.rows) == 3 and ts.tokens_generated == 0
    assert [r["completion"][0]["content"] for r in ts.rows] == [e.solution for e in examples[:3]]
    assert set(ts.rows["dart_student_start"]) == {-1}


def test_pass_rate_keeps_problems_inside_the_band_and_counts_all_samples():
    examples = _examples(4)
    samples = [
        _rollouts([True] * 4),
        _rollouts([True, False, False, False]),
        _rollouts([False] * 4),
        _rollouts([True, True, False, False]),
    ]
    ts = pass_rate_set(examples, samples, (0.1, 0.9))
    kept = [r["completion"][0]["content"] for r in ts.rows]
    assert kept == [examples[1].solution, examples[3].solution]
    assert ts.tokens_generated == 16 * 10
    assert ts.info["mean_pass_rate"] == pytest.approx((1 + 0.25 + 0 + 0.5) / 4)


def test_rft_trains_on_one_verified_student_sample_per_solved_problem():
    examples = _examples(3)
    samples = [_rollouts([False, True, True]), _rollouts([False, False, False]), _rollouts([True])]
    ts = rft_set(examples, samples, DartConfig(selection="logprob"))
    texts = [r["completion"][0]["content"] for r in ts.rows]
    assert texts == ["try 1 True", "try 0 True"]  # highest log-prob among the correct ones; unsolved problem absent
    assert set(ts.rows["dart_student_start"]) == {0}  # every token is the student's
    assert ts.tokens_generated == 7 * 10


def test_matched_samples_spends_the_dart_budget():
    probe = [_rollouts([False] * 4, tokens=25) for _ in range(10)]  # 25 tokens per sample
    assert matched_samples(10 * 25 * 12, probe, 10, minimum=4) == 12
    assert matched_samples(100, probe, 10, minimum=4) == 4  # never fewer than the pass-rate probe


def test_per_problem_pass_and_bootstrap_interval():
    p1 = per_problem_pass([0, 2, 4, None], 4, 1)
    assert p1[:3].tolist() == [0.0, 0.5, 1.0] and math.isnan(p1[3])
    values = np.array([[0.0, 0.5, 1.0, 1.0], [0.0, 0.5, 1.0, 0.5]])
    ci = bootstrap_mean(values, 500)
    assert ci["low"] <= ci["mean"] <= ci["high"] and ci["mean"] == pytest.approx(0.5625)
    assert ci["high"] - ci["low"] > 0.1
    same = bootstrap_mean(values, 500, baseline=values)
    assert (same["mean"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
    shifted = bootstrap_mean(values, 500, baseline=values - 0.25)
    assert shifted["mean"] == pytest.approx(0.25) and shifted["low"] == pytest.approx(0.25)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(conditions=["static", "sft2"]),
        dict(seeds=[]),
        dict(ks=[8], eval_samples=4),
        dict(pass_rate_band=[0.9, 0.1]),
    ],
)
def test_bad_study_config_is_refused(kwargs):
    with pytest.raises(ValueError):
        StudyConfig(**kwargs)


STUDY_YAML = """\
task: planted_gap
conditions: [static, dart, pass_rate, rft]
n_train: 8
n_eval: 6
seeds: [0, 1]
max_new_tokens: 64
eval_samples: 2
ks: [1, 2]
num_train_epochs: 1
bootstrap: 200
output_dir: {out}
"""


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    """`dart-hf study` end to end at tiny sizes, with the shipped planted-gap student, as a user runs it."""
    tmp = tmp_path_factory.mktemp("study")
    config = tmp / "study.yaml"
    config.write_text(STUDY_YAML.format(out=tmp / "out"))
    proc = subprocess.run(
        [sys.executable, "-m", "dart_hf", "study", "--config", str(config), "--seeds", "0", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, tmp / "out"


def test_study_writes_every_output_with_all_conditions_and_seeds(study_run):
    proc, out = study_run
    for name in ("results.json", "results.md", "study.png", "card_section.md"):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    assert set(results["summary"]) == {"base", "static", "dart", "pass_rate", "rft"}
    assert results["n_train"] == 8 and results["n_eval"] == 6
    assert results["seeds_done"] == [0, 1] and results["partial"] is False  # seed 0's partial write was replaced
    for runs in results["runs"].values():
        assert [r["seed"] for r in runs] == [0, 1]
        assert all(len(r["correct"]) == 6 and all(0 <= c <= 2 for c in r["correct"]) for r in runs)
    s = results["summary"]
    for entry in s.values():
        for k in (1, 2):
            ci = entry[f"pass@{k}"]
            assert ci["low"] - 1e-9 <= ci["mean"] <= ci["high"] + 1e-9
        assert entry["pass@2"]["mean"] >= entry["pass@1"]["mean"] - 1e-9
    assert s["static"]["train_rows"] == 8 and s["static"]["gen_tokens"] == 0
    assert s["dart"]["gen_tokens"] > 0 and s["rft"]["gen_tokens"] >= s["pass_rate"]["gen_tokens"] > 0
    assert s["pass_rate"]["train_rows"] <= 8 and s["rft"]["train_rows"] <= 8
    assert "pass@1_minus_static" in s["dart"] and "pass@1_minus_static" not in s["static"]
    dart_pairs = {k for k in s["dart"] if k.startswith("pass@1_minus_")}
    assert dart_pairs == {f"pass@1_minus_{c}" for c in ("base", "static", "pass_rate", "rft")}
    assert "| DART − RFT (own verified samples) |" in (out / "results.md").read_text()
    table = (out / "results.md").read_text()
    assert all(label in table for label in ("static SFT", "DART-adapted SFT", "pass-rate filtering", "RFT"))
    assert "DART-adapted SFT" in proc.stdout  # the table is printed too
    assert "## DART study" in (out / "card_section.md").read_text()


def test_study_cli_bad_config_is_one_line_and_exit_2(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("conditions: [static, magic]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "dart_hf", "study", "--config", str(config)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "conditions must be" in proc.stderr and "Traceback" not in proc.stderr


def test_wilson_interval_brackets_the_rate():
    from dart_hf.study.stats import wilson_interval

    low, high = wilson_interval(65, 71)
    assert low < 65 / 71 < high and high - low < 0.2
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0, abs=1e-12) and wilson_interval(0, 10)[1] > 0.2
    assert math.isnan(wilson_interval(0, 0)[0])


def test_study_help_lists_the_config_fields():
    proc = subprocess.run(
        [sys.executable, "-m", "dart_hf", "study", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--n_train" in proc.stdout and "--pass_rate_band" in proc.stdout and "95% intervals" in proc.stdout
    assert all(c in proc.stdout for c in ("hint_fixed", "hint_minimal", "iterative", "skill_transfer"))
    assert "--hint_fraction" in proc.stdout and "--iterative_rounds" in proc.stdout


def test_new_conditions_train_and_report_per_subset_on_the_skill_task(tmp_path):
    """hint_fixed, hint_minimal and iterative end to end on the skill-transfer task with its shipped student."""
    config = tmp_path / "study.yaml"
    config.write_text(
        "task: skill_transfer\nconditions: [dart, hint_fixed, hint_minimal, iterative]\nn_train: 5\nn_eval: 6\n"
        f"seeds: [0]\nmax_new_tokens: 64\neval_samples: 2\nks: [1, 2]\nnum_train_epochs: 1\nbootstrap: 100\n"
        f"output_dir: {tmp_path / 'out'}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "dart_hf", "study", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    s = results["summary"]
    assert set(s) == {"base", "dart", "hint_fixed", "hint_minimal", "iterative"}
    assert results["student"].endswith("skill_student")
    for name in ("hint_fixed", "hint_minimal"):
        assert s[name]["train_rows"] == 5 and s[name]["gen_tokens"] > 0  # every problem: hinted or the expert's
        assert "pass@1_minus_dart" in s[name] and "pass@1_minus_base" in s[name]
    (it,) = results["runs"]["iterative"]
    (dart,) = results["runs"]["dart"]
    assert len(it["info"]["rounds"]) == 2 and it["gen_tokens"] > dart["gen_tokens"]  # round 2 adapted again
    assert it["train_seconds"] > dart["train_seconds"]
    assert set(results["subsets"]) <= {"skill", "plain"} and results["subsets"]
    for sub in results["subsets"].values():
        assert set(sub) == set(s)
    if "skill" in results["subsets"]:
        stated = results["subsets"]["skill"]["base"]["states_quantity"]
        assert stated is not None and 0.0 <= stated <= 1.0
        number = results["subsets"]["skill"]["base"]["states_number"]
        assert number is not None and stated <= number <= 1.0  # the exact teaching line also ends on its number
    assert "**skill problems**" in (tmp_path / "out" / "results.md").read_text() or "skill" not in results["subsets"]


def test_study_cli_broken_yaml_is_one_line_and_exit_2(tmp_path):
    """Like every other command (scripts/_common.parse): a YAML syntax error is bad input, not a traceback."""
    config = tmp_path / "broken.yaml"
    config.write_text("conditions: [static\n")
    proc = subprocess.run(
        [sys.executable, "-m", "dart_hf", "study", "--config", str(config)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "dart-hf study: error:" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
