"""`dart-hf demo` at a tiny size: outputs exist and agree with each other."""

import json
import os
import subprocess
import sys

import datasets
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, check=True):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run(
        [sys.executable, "-m", "dart_hf", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=check
    )


def test_demo_outputs_agree(tiny_student, tmp_path):
    out = tmp_path / "demo"
    proc = run_cli(
        "demo",
        "--dataset",
        "champ",
        "--n",
        "3",
        "--student",
        tiny_student,
        "--n-sim",
        "2",
        "--n-explore",
        "2",
        "--max-new-tokens",
        "8",
        "--out",
        str(out),
    )
    assert "actions:" in proc.stdout and "tokens/s" in proc.stdout
    names = sorted(os.listdir(out))
    assert names == ["dataset", "dataset.parquet", "report.html", "stats.json", "stepwise.parquet"]

    ds = datasets.load_from_disk(out / "dataset")
    parquet = pd.read_parquet(out / "dataset.parquet")
    stats = json.loads((out / "stats.json").read_text())
    stepwise = pd.read_parquet(out / "stepwise.parquet")

    assert len(ds) == len(parquet) == stats["n_examples"] == 3
    assert list(parquet["dart_action"]) == ds["dart_action"]
    assert sum(stats["actions"].values()) == 3
    for action, count in stats["actions"].items():
        assert ds["dart_action"].count(action) == count
    assert stats["tokens_generated"] == sum(ds["dart_tokens_generated"]) > 0
    assert stats["config"]["n_sim"] == 2 and stats["config"]["steps_column"] == "steps"
    # CHAMP's own steps are kept
    assert all(len(s) >= 2 for s in ds["dart_steps"])
    usable = [a != "error" for a in ds["dart_action"]]
    assert len(stepwise) <= sum(usable)
    assert set(stepwise.columns) >= {"prompt", "completions", "labels"}
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html
    # the demo keeps every rollout: the report shows them, and 8 new tokens cut most of them off
    assert stats["config"]["keep_rollouts"] is True
    assert "<details class='rollouts'" in html
    assert sum(stats["rollout_endings"].values()) == sum(len(r["text"]) for r in ds["dart_rollouts"]) > 0
    assert stats["rollout_endings"]["length"] > 0 and "rollout endings:" in proc.stdout


def test_demo_missing_columns_is_a_clear_error(tiny_student, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n")
    proc = run_cli("demo", "--student", tiny_student, "--dataset", str(data), "--out", str(tmp_path / "o"), check=False)
    assert proc.returncode == 2
    assert "--problem-column" in proc.stderr and "question" in proc.stderr


def test_demo_custom_columns_from_a_local_file(tiny_student, tmp_path):
    data = tmp_path / "data.jsonl"
    rows = [{"question": "What is 1+1?", "worked": "One and one.\n\nTwo: \\boxed{2}", "final": "2"}]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "o"
    run_cli(
        "demo",
        "--student",
        tiny_student,
        "--dataset",
        str(data),
        "--out",
        str(out),
        "--n-sim",
        "1",
        "--max-new-tokens",
        "4",
        "--problem-column",
        "question",
        "--solution-column",
        "worked",
        "--answer-column",
        "final",
    )
    ds = datasets.load_from_disk(out / "dataset")
    assert ds["dart_answer"] == ["2"] and ds["dart_action"][0] != "error"


def test_default_demo_shows_dart_acting_on_planted_gaps(tmp_path):
    """The README's demo as written: the shipped planted-gap student, gaps found where they were planted."""
    out = tmp_path / "demo"
    proc = run_cli("demo", "--out", str(out))
    assert "planted_gap" in proc.stdout and "gap detection vs planted truth" in proc.stdout
    ds = datasets.load_from_disk(out / "dataset")
    assert len(ds) == 12
    actions = set(ds["dart_action"])
    assert {"imitate", "explore"} <= actions and "error" not in actions
    planted, found = ds["planted_gap"], ds["dart_gap_step"]
    assert sum(p == f for p, f in zip(planted, found)) >= 9  # measured 12/12 on this seed; noise allowed
    for row in ds:
        if row["dart_action"] == "explore":  # expert prefix kept, the student's own words after it
            start = row["dart_student_start"]
            assert row["dart_solution"][:start] == "".join(row["dart_steps"][: row["dart_gap_step"] - 1])
            assert "×" not in row["dart_solution"][start:]
    html = (out / "report.html").read_text()
    assert "<details class='rollouts'" in html
    # the student's own words are the tokens it sampled: every explore row passes the on-policy check
    check = json.loads((out / "stats.json").read_text())["on_policy"]
    explored = [r for r in ds if r["dart_action"] == "explore"]
    assert check["checked"] and check["rows"] == len(explored) and check["disagreeing"] == 0, check
    assert all(r["dart_solution"].endswith("}.") for r in explored)  # the closing "}." token is kept whole
    assert "on-policy check:" in proc.stdout and "on-policy check" in html


def test_readme_train_and_evaluate_after_the_demo(tmp_path):
    """The README's next steps: train the shipped student on the demo's output with the planted-gap config, evaluate it."""
    out = tmp_path / "demo"
    run_cli("demo", "--out", str(out), "--n", "6")
    trained = tmp_path / "trained"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    train = [sys.executable, "recipes/train.py", "--config", "recipes/planted_gap/dart/config_train.yaml"]
    overrides = ["--dataset_name", str(out / "dataset.parquet"), "--output_dir", str(trained), "--disable_tqdm", "true"]
    proc = subprocess.run(train + overrides, cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((trained / "trainer_state.json").read_text())
    assert state["global_step"] >= 1 and any("explore_loss" in entry for entry in state["log_history"])
    card = (trained / "README.md").read_text()
    assert "DART" in card and "`n_sim`" in card  # the trainer's own card, with the demo's settings from stats.json

    result_file = tmp_path / "eval.json"
    proc = run_cli(
        "evaluate",
        "--model",
        str(trained),
        "--dataset_name",
        "planted_gap",
        "--max_samples",
        "8",
        "--n_samples",
        "2",
        "--ks",
        "1",
        "2",
        "--output_file",
        str(result_file),
    )
    result = json.loads(result_file.read_text())
    assert result["n_scored"] == 8 and 0.0 <= result["pass@1"] <= result["pass@2"] <= 1.0
