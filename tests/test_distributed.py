"""recipes/adapt.py under torchrun (2 CPU processes) writes what one process writes, and resumes."""

import json
import os
import subprocess
import sys

import datasets
import pytest

from dart_hf.data import load_expert_dataset
from dart_hf.resumable import manifest_for
from dart_hf.rundir import prepare_chunks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 9 rows, chunks of 4: chunks of 4, 4 and 1 rows, so one process gets an empty share of the last.
# The last row has no \boxed{} answer: an error row, whose columns are mostly empty.
ROWS = [
    {"problem": f"What is {i} + {i}?", "solution": f"Add.\n\n{i} + {i} = {2 * i}.\n\n\\boxed{{{2 * i}}}"}
    for i in range(8)
]
ROWS.append({"problem": "What is 1 + 2?", "solution": "Add them.\n\nThe sum is three."})
TIMEOUT_S = 180  # a run takes seconds; a hang (e.g. at process-group teardown) fails instead of blocking CI


def command(data, student, out):
    return [
        "recipes/adapt.py",
        "--dataset_name",
        str(data),
        "--student",
        student,
        "--output_dir",
        str(out),
        "--n_sim",
        "2",
        "--n_explore",
        "2",
        "--max_new_tokens",
        "32",
        "--temperature",
        "1.0",
        "--chunk_size",
        "4",
        "--batch_size",
        "3",
    ]


def _recipe_module():
    from dart_hf.scripts import adapt

    return adapt


def run(args):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("OMP_NUM_THREADS", None)  # torchrun sets 1 per process; the single run keeps torch's default
    try:
        proc = subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"{args[:4]} did not finish in {TIMEOUT_S} s:\n{(err.stderr or b'')[-3000:]!r}")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def torchrun(*args):
    return run(["-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", *args])


def assert_same(got, expected):
    assert got.features == expected.features
    assert len(got) == len(expected) == len(ROWS)
    for name in expected.column_names:
        if name != "dart_seconds":
            assert json.dumps(list(got[name])) == json.dumps(list(expected[name])), name  # NaN == NaN here


def test_two_processes_write_what_one_writes_and_resume(tiny_student, tmp_path):
    data = tmp_path / "expert.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")

    single = tmp_path / "single"
    run(command(data, tiny_student, single))
    expected = datasets.load_from_disk(single / "dataset")
    assert expected["dart_action"].count("error") == 1 and len(set(expected["dart_action"])) == 2

    double = tmp_path / "double"
    proc = torchrun(*command(data, tiny_student, double))
    assert "(2 processes)" in proc.stdout and proc.stdout.count("actions:") == 1  # the main process reports
    assert_same(datasets.load_from_disk(double / "dataset"), expected)
    assert sorted(os.listdir(double)) == sorted(os.listdir(single))  # same outputs, chunks cleaned up
    stats, single_stats = (json.loads((d / "stats.json").read_text()) for d in (double, single))
    assert (stats["num_processes"], single_stats["num_processes"]) == (2, 1)
    assert stats["tokens_generated"] == single_stats["tokens_generated"] > 0 and stats["wall_seconds"] > 0

    # Resume under torchrun: a run stopped after its first chunk left chunks/00000 behind (here: the
    # single run's rows, marked) and the manifest; the rerun loads that chunk and adapts the rest.
    resumed = tmp_path / "resumed"
    recipe = _recipe_module()
    script_args, dart_config = recipe.parse_args(command(data, tiny_student, resumed)[1:])
    manifest = manifest_for(load_expert_dataset(str(data)), recipe.build_adapter(script_args, dart_config), 4)
    prepare_chunks(str(resumed), manifest)
    first = expected.select(range(4)).map(lambda row: {"dart_seconds": -1.0})
    first.save_to_disk(resumed / "chunks" / "00000")
    torchrun(*command(data, tiny_student, resumed))
    got = datasets.load_from_disk(resumed / "dataset")
    assert list(got["dart_seconds"])[:4] == [-1.0] * 4 and min(list(got["dart_seconds"])[4:]) >= 0  # loaded, not redone
    assert_same(got, expected)
    assert not (resumed / "chunks").exists()
