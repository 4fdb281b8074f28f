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

    # Resume of a run whose chunks are all done: nothing is adapted, the main process loads the chunks
    # and writes; every process waits for that before the process group ends (`finish`'s barrier).
    done = tmp_path / "done"
    prepare_chunks(str(done), manifest)
    for index, (start, stop) in enumerate([(0, 4), (4, 8), (8, 9)]):
        chunk = expected.select(range(start, stop)).map(lambda row: {"dart_seconds": -1.0})
        chunk.save_to_disk(done / "chunks" / f"{index:05d}")
    proc = torchrun(*command(data, tiny_student, done))
    got = datasets.load_from_disk(done / "dataset")
    assert list(got["dart_seconds"]) == [-1.0] * len(ROWS)  # every row loaded, none adapted again
    assert_same(got, expected)
    assert not (done / "chunks").exists()
    for rank in (0, 1):
        assert f"process {rank} waits for the others before finishing" in proc.stderr, proc.stderr[-3000:]


FINISH_SCRIPT = """
import os, sys, time
from dart_hf.distributed import finish, process_state

state = process_state(cpu=True)
marker = sys.argv[1]
if state.is_main_process:
    time.sleep(2.0)  # the main process is still writing the outputs ...
    with open(marker, "w") as fh:
        fh.write("outputs")
finish()  # ... so every process must wait here for it
print(f"rank {state.process_index} finished; outputs written: {os.path.exists(marker)}", flush=True)
"""


def test_finish_waits_for_every_process_before_ending_the_group(tmp_path):
    """Under real torchrun: no process leaves `finish` before the main process has written its outputs.

    Without that barrier, a process with nothing left to do tore its group down while the main
    process was writing; in about 1 of 15 done-resumes it aborted and torchrun killed the main process.
    Such a race cannot be reproduced on demand; this pins the mechanism that removes it.
    """
    script, marker = tmp_path / "finish.py", tmp_path / "outputs.txt"
    script.write_text(FINISH_SCRIPT)
    proc = torchrun(str(script), str(marker))
    assert "rank 1 finished; outputs written: True" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert "rank 0 finished; outputs written: True" in proc.stdout
