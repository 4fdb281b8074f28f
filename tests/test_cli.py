"""`dart-hf <command>`: the dispatcher, `--config` YAML with flag overrides, the demo's presets, `--help`."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = [
    {"problem": f"What is {i} + {i}?", "solution": f"Add.\n\n{i} + {i} = {2 * i}.\n\n\\boxed{{{2 * i}}}"}
    for i in range(2)
]


def dart_hf(*args, timeout=300):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run(
        [sys.executable, "-m", "dart_hf", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("command", ["adapt", "train", "evaluate", "demo", "study"])
def test_every_command_has_help(command):
    proc = dart_hf(command, "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"usage: dart-hf {command}" in proc.stdout and "--config" not in proc.stderr


def test_top_level_help_lists_the_commands_and_a_bad_command_exits_2():
    proc = dart_hf("--help")
    assert proc.returncode == 0
    for command in ("adapt", "train", "evaluate", "demo", "study"):
        assert command in proc.stdout
    assert dart_hf("bogus").returncode == 2


def test_adapt_reads_the_yaml_and_flags_override_it(tiny_student, tmp_path):
    data = tmp_path / "expert.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    out = tmp_path / "out"
    config = tmp_path / "adapt.yaml"
    config.write_text(
        f"dataset_name: {data}\nstudent: {tiny_student}\noutput_dir: {out}\n"
        "n_sim: 1\nn_explore: 0\nmax_new_tokens: 4\nseed: 7\n"
    )
    proc = dart_hf("adapt", "--config", str(config), "--n_sim", "2", "--max-new-tokens", "6")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "actions:" in proc.stdout
    stats = json.loads((out / "stats.json").read_text())
    assert stats["config"]["n_sim"] == 2 and stats["config"]["max_new_tokens"] == 6  # flags win
    assert stats["config"]["seed"] == 7 and stats["config"]["n_explore"] == 0  # the YAML's, where no flag
    assert stats["n_examples"] == len(ROWS)
    assert stats["verifier"] == "math"  # the default, recorded


def test_adapt_bad_yaml_value_is_one_line_exit_2(tmp_path):
    config = tmp_path / "adapt.yaml"
    config.write_text("dataset_name: x.jsonl\nstudent: s\nn_sim: 0\n")
    proc = dart_hf("adapt", "--config", str(config))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("dart-hf adapt: error: DartConfig.n_sim must be")


def test_demo_is_adapt_with_presets_that_yaml_and_flags_override(tmp_path):
    from dart_hf.scripts import adapt, demo

    def parsed(*argv):
        return adapt.parse_args(list(argv), demo.make_parser(prog="dart-hf demo"))

    script, config = parsed()
    assert (script.dataset_name, script.student, script.max_samples, script.output_dir) == (
        "planted_gap",
        None,  # resolved once the data is loaded: adapt.default_student
        12,
        "outputs/demo",
    )
    assert (config.n_sim, config.n_explore, config.max_new_tokens, config.keep_rollouts) == (4, 4, 96, True)
    assert script.summary == "table"
    script, config = parsed("--dataset", "champ", "--n", "8", "--n_sim", "8", "--out", "x", "--keep_rollouts", "false")
    assert (script.dataset_name, script.max_samples, script.output_dir) == ("champ", 8, "x")
    assert (config.n_sim, config.max_new_tokens, config.keep_rollouts) == (8, 160, False)
    script, config = parsed("--dataset", "humaneval")
    assert (script.max_samples, config.max_new_tokens, script.verifier) == (4, 128, None)  # None: 'code' for it
    yaml_file = tmp_path / "demo.yaml"
    yaml_file.write_text("max_new_tokens: 32\nn_sim: 3\n")
    _, config = parsed("--config", str(yaml_file), "--n-sim", "5")
    assert (config.max_new_tokens, config.n_sim) == (32, 5)
    # the adapt command itself keeps its own defaults and required flags
    _, config = adapt.parse_args(["--dataset_name", "d", "--student", "s"])
    assert (config.max_new_tokens, config.n_explore, config.keep_rollouts) == (1024, 8, False)
