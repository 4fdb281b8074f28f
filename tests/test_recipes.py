"""The smoke pipeline, as a user runs it: recipes/adapt.py -> recipes/train.py -> recipes/evaluate_student.py."""

import json
import os
import subprocess
import sys

import datasets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBLEMS = [
    {"problem": "What is 2 + 3?", "solution": "We add.\n\n2 + 3 = 5.\n\nSo \\boxed{5}."},
    {"problem": "What is 4 * 2?", "solution": "Multiply.\n\n4 * 2 = 8.\n\n\\boxed{8}"},
    {"problem": "What is 9 - 6?", "solution": "Subtract.\n\n9 - 6 = 3.\n\n\\boxed{3}"},
    {"problem": "What is 1 + 1?", "solution": "One more.\n\n\\boxed{2}"},
]


def run(*args):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_adapt_train_evaluate(tiny_student, tmp_path):
    data = tmp_path / "expert.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in PROBLEMS) + "\n")
    adapted = tmp_path / "adapted"
    run(
        "recipes/adapt.py",
        "--dataset_name",
        str(data),
        "--student",
        tiny_student,
        "--output_dir",
        str(adapted),
        "--n_sim",
        "2",
        "--n_explore",
        "2",
        "--max_new_tokens",
        "8",
        "--temperature",
        "1.0",
    )
    assert sorted(os.listdir(adapted)) == [
        "dataset",
        "dataset.parquet",
        "report.html",
        "stats.json",
        "stepwise.parquet",
    ]
    ds = datasets.load_from_disk(adapted / "dataset")
    assert len(ds) == len(PROBLEMS)

    trained = tmp_path / "trained"
    run(
        "recipes/train.py",
        "--config",
        "recipes/smoke/dart/config_train.yaml",
        "--model_name_or_path",
        tiny_student,
        "--dataset_name",
        str(adapted / "dataset.parquet"),
        "--output_dir",
        str(trained),
        "--max_steps",
        "2",
    )
    assert (trained / "config.json").exists()
    assert any(name.endswith(".safetensors") for name in os.listdir(trained))
    card = (trained / "README.md").read_text()
    assert f"`{tiny_student}` (local)" in card and "n_sim" in card  # DART config read from stats.json
    assert "base_model:" not in card  # the Hub's metadata takes Hub ids only; a local path is named in the body

    result_file = tmp_path / "eval.json"
    proc = run(
        "recipes/evaluate_student.py",
        "--model",
        str(trained),
        "--dataset_name",
        str(data),
        "--n_samples",
        "2",
        "--ks",
        "1",
        "2",
        "--max_new_tokens",
        "8",
        "--output_file",
        str(result_file),
    )
    result = json.loads(result_file.read_text())
    assert result["n_scored"] == len(PROBLEMS)
    assert 0.0 <= result["accuracy"] <= result["pass@2"] <= 1.0
    assert "| accuracy | pass@1 | pass@2 |" in proc.stdout.replace("problems | ", "")


def _script(name):
    import importlib

    return importlib.import_module(f"dart_hf.scripts.{name}")


def _shipped_configs():
    """Every `recipes/<model>/<method>/config_*.yaml`, open-r1 style, with the script that reads it."""
    found = []
    for folder, _, names in os.walk(os.path.join(ROOT, "recipes")):
        if "accelerate_configs" in folder:
            continue
        for name in names:
            if name.startswith("config_") and name.endswith(".yaml"):
                method = os.path.basename(folder)
                script = "study" if method == "study" else "adapt" if name.startswith("config_adapt") else "train"
                found.append((os.path.join(folder, name), script))
    return sorted(found)


def test_every_shipped_config_parses_with_its_recipe():
    """A typo in a YAML key fails here, not hours into a run on rented GPUs."""
    configs = _shipped_configs()
    assert any(script == "adapt" for _, script in configs) and any(script == "train" for _, script in configs)
    old = os.path.join(ROOT, "recipes", "configs")
    assert not os.path.isdir(old) or not os.listdir(old)  # open-r1 layout only
    for path, script in configs:
        # GPU-only precision flags are overridden: this machine has no GPU, and only the keys are under test
        cpu = ["--bf16", "false", "--tf32", "false", "--use_cpu", "true"] if script == "train" else []
        parsed = _script(script).make_parser().parse_args_and_config(["--config", path, *cpu])
        assert parsed, path
    script, dart = (
        _script("adapt")
        .make_parser()
        .parse_args_and_config(
            ["--config", os.path.join(ROOT, "recipes", "qwen2.5-math-1.5b", "dart", "config_adapt_limo.yaml")]
        )
    )
    assert (
        dart.early_stop and dart.adaptive_sampling and script.share_prefix and script.shared_kv and dart.max_steps == 24
    )


def test_recipes_only_call_the_package():
    """`recipes/*.py` are launchers: the logic is in `dart_hf.scripts`, found through the installed package."""
    scripts = {"adapt": "adapt", "train": "train", "evaluate_student": "evaluate", "study": "study"}
    for name, script in scripts.items():
        text = open(os.path.join(ROOT, "recipes", f"{name}.py")).read()
        assert "sys.path" not in text and f"from dart_hf.scripts.{script} import cli" in text, name
        assert len(text.splitlines()) < 20, name
