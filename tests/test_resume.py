"""A killed adaptation resumes from its saved chunks and ends identical to an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import datasets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = [{"problem": f"What is {i} + {i}?", "solution": f"Add.\n\n{i} + {i} = {2 * i}.\n\n\\boxed{{{2 * i}}}"} for i in range(12)]


def command(data, student, out):
    return [sys.executable, "recipes/adapt.py", "--dataset_name", str(data), "--student", student, "--output_dir",
            str(out), "--n_sim", "2", "--n_explore", "2", "--max_new_tokens", "200", "--temperature", "1.0",
            "--chunk_size", "2", "--batch_size", "2"]


def test_sigkill_then_resume_gives_the_uninterrupted_result(tiny_student, tmp_path):
    data = tmp_path / "expert.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")

    killed = tmp_path / "killed"
    proc = subprocess.Popen(command(data, tiny_student, killed), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_chunk = killed / "chunks" / "00000"
    deadline = time.monotonic() + 120
    while not first_chunk.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(p for p in os.listdir(killed / "chunks") if p.isdigit())
    assert 1 <= len(done) < 6, f"the kill should land mid-run (chunks done: {done})"
    assert not (killed / "dataset.parquet").exists()

    subprocess.run(command(data, tiny_student, killed), cwd=ROOT, env=env, check=True, capture_output=True)
    fresh = tmp_path / "fresh"
    subprocess.run(command(data, tiny_student, fresh), cwd=ROOT, env=env, check=True, capture_output=True)

    resumed, expected = datasets.load_from_disk(killed / "dataset"), datasets.load_from_disk(fresh / "dataset")
    assert len(resumed) == len(ROWS)
    for name in expected.column_names:
        if name != "dart_seconds":
            assert resumed[name] == expected[name], name
    assert not (killed / "chunks").exists()  # cleaned up once the outputs are written
