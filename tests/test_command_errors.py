"""What a user sees when a command cannot run: one line on stderr, no traceback, a meaningful exit code.

Exit code 2: the command or its inputs are wrong (`UsageError`). Exit code 1: the run could not go
on (`RunError`: the student does not load, or too many rows ended in error). Both are decided
before any generation, except the error share, which is checked after the outputs are written.
Subprocesses, as a user runs them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = [
    {"problem": f"What is {i} + {i}?", "solution": f"Add.\n\n{i} + {i} = {2 * i}.\n\n\\boxed{{{2 * i}}}"}
    for i in range(3)
]
TIMEOUT_S = 300
# Progress bars (tqdm: loading a JSON file shows one) and INFO logs are not messages; anything else is.
NOISE = re.compile(r"\d+%\||/s\]|/s, |^INFO ")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)


def assert_one_line(proc: subprocess.CompletedProcess, code: int, prog: str, *needles: str) -> str:
    assert proc.returncode == code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if ANSI.sub("", line).strip() and not NOISE.search(line)]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), proc.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "expert.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    return path


def adapt(data, student, out, *extra):
    return run(
        "recipes/adapt.py",
        "--dataset_name",
        str(data),
        "--student",
        str(student),
        "--output_dir",
        str(out),
        "--n_sim",
        "2",
        "--n_explore",
        "0",
        "--max_new_tokens",
        "8",
        *extra,
    )


@pytest.mark.parametrize(
    "case, needles",
    [
        ("unknown_yaml_key", ["Unknown arguments from config file", "bogus_key"]),
        ("wrong_columns", ["dataset columns", "question"]),
        ("chunk_size_0", ["--chunk_size must be >= 1, got 0"]),
        ("unwritable_output", ["cannot write to output directory"]),
        ("missing_gguf", ["GGUF file not found"]),
        ("student_path_missing", ["'/nonexistent' is not a file or folder"]),
        ("n_sim_0", ["DartConfig.n_sim must be an integer >= 1, got 0"]),
        ("bad_verifier", ["--verifier must be one of math, code, choice or 'module:function', got 'maths'"]),
        ("verifier_not_importable", ["--verifier no_such_module_q:f: cannot import 'no_such_module_q'"]),
    ],
)
def test_adapt_recipe_usage_errors_exit_2_with_one_line(case, needles, data, tiny_student, tmp_path):
    out, student, extra = tmp_path / "out", tiny_student, []
    if case == "unknown_yaml_key":
        config = tmp_path / "config.yaml"
        config.write_text(f"dataset_name: {data}\nstudent: {tiny_student}\noutput_dir: {out}\nbogus_key: 1\n")
        proc = run("recipes/adapt.py", "--config", str(config))
    else:
        if case == "wrong_columns":
            data.write_text(json.dumps({"question": "q", "worked_answer": "a"}) + "\n")
        elif case == "chunk_size_0":
            extra = ["--chunk_size", "0"]
        elif case == "unwritable_output":
            (tmp_path / "a_file").write_text("")
            out = tmp_path / "a_file" / "out"  # a path through a regular file: unwritable, even for root
        elif case == "missing_gguf":
            student = tmp_path / "missing.gguf"
        elif case == "student_path_missing":
            student = "/nonexistent"
        elif case == "n_sim_0":
            extra = ["--n_sim", "0"]
        elif case == "bad_verifier":
            extra = ["--verifier", "maths"]
        elif case == "verifier_not_importable":
            extra = ["--verifier", "no_such_module_q:f"]
        proc = adapt(data, student, out, *extra)
    assert_one_line(proc, 2, "adapt.py", *needles)
    assert not (out / "dataset").exists()


def test_a_student_that_cannot_load_stops_the_run_before_any_output(data, tmp_path):
    out = tmp_path / "out"
    proc = adapt(data, "no-such-org/no-such-model", out)
    assert_one_line(proc, 1, "adapt.py", "cannot load the student's tokenizer", "no-such-org/no-such-model")
    assert not (out / "dataset").exists() and not (out / "chunks").exists()


def test_error_share_exits_1_after_writing_the_outputs(data, tiny_student, tmp_path):
    rows = ROWS[:2] + [{"problem": "No gold here", "solution": "Think.\n\nDone."}]  # 1 error row of 3
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    proc = adapt(data, tiny_student, tmp_path / "lenient")  # default: fails only when every row errored
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = adapt(data, tiny_student, tmp_path / "strict", "--max_error_share", "0.2")
    assert_one_line(proc, 1, "adapt.py", "1 of 3 rows ended in error", "max_error_share=0.2")
    assert (tmp_path / "strict" / "dataset.parquet").exists() and not (tmp_path / "strict" / "chunks").exists()

    data.write_text(json.dumps(rows[2]) + "\n")
    proc = adapt(data, tiny_student, tmp_path / "all")
    assert_one_line(proc, 1, "adapt.py", "1 of 1 rows ended in error (every row)")
    assert (tmp_path / "all" / "dataset.parquet").exists()


def test_resume_of_another_run_is_refused_until_overwrite(data, tiny_student, tmp_path):
    from dart_hf import DartAdapter, DartConfig
    from dart_hf.data import load_expert_dataset
    from dart_hf.resumable import adapt_in_chunks

    from scripted import TEMPLATE, ScriptedBackend

    out = tmp_path / "out"
    other = DartAdapter(ScriptedBackend(sim={}), DartConfig(n_sim=4, prompt_template=TEMPLATE), progress=False)

    class Killed(BaseException):
        pass

    def dies_after_one_chunk(batch, calls=[]):  # noqa: B006  (the list counts calls across calls)
        calls.append(1)
        if len(calls) > 1:
            raise Killed()
        return other(batch)

    dies_after_one_chunk.fingerprint, dies_after_one_chunk.config = other.fingerprint, other.config
    with pytest.raises(Killed):
        adapt_in_chunks(load_expert_dataset(str(data)), dies_after_one_chunk, str(out), chunk_size=2, batch_size=2)

    proc = adapt(data, tiny_student, out, "--chunk_size", "2")
    assert_one_line(proc, 2, "adapt.py", "another run", "n_sim 4 -> 2", "--overwrite_output_dir")
    proc = adapt(data, tiny_student, out, "--chunk_size", "2", "--overwrite_output_dir")
    assert proc.returncode == 0, proc.stderr[-3000:]
    import datasets

    assert datasets.load_from_disk(out / "dataset")["problem"] == [r["problem"] for r in ROWS]


def test_a_second_run_on_a_busy_output_dir_fails_fast(data, tiny_student, tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from dart_hf.rundir import RunLock; RunLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(300)",
            str(out),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = adapt(data, tiny_student, out)
        assert_one_line(proc, 2, "adapt.py", "is in use by another run", f"pid {holder.pid}")
        proc = run("-m", "dart_hf", "demo", "--dataset", str(data), "--student", tiny_student, "--out", str(out))
        assert_one_line(proc, 2, "dart-hf demo", "is in use by another run")
    finally:
        holder.kill()
        holder.wait()
    assert not (out / "dataset").exists()


@pytest.mark.parametrize("overwrite", [[], ["--overwrite_output_dir"]])
def test_folders_dart_hf_did_not_write_are_refused_and_kept(data, tmp_path, overwrite):
    """The attack: `P/chunks/doc.txt` and `P/dataset/loader.py` used to be deleted by a run that exited 0."""
    out = tmp_path / "P"
    (out / "chunks").mkdir(parents=True)
    (out / "chunks" / "doc.txt").write_text("my notes")
    (out / "dataset").mkdir()
    (out / "dataset" / "loader.py").write_text("print('mine')")
    # A student that cannot load would exit 1: exit 2 shows the refusal came first, before any loading.
    proc = adapt(data, "no-such-org/no-such-model", out, *overwrite)
    assert_one_line(proc, 2, "adapt.py", "chunks was not written by dart_hf", "choose another output directory")
    assert (out / "chunks" / "doc.txt").read_text() == "my notes"
    assert (out / "dataset" / "loader.py").read_text() == "print('mine')"
    assert sorted(os.listdir(out)) == ["chunks", "dataset"] and os.listdir(out / "chunks") == ["doc.txt"]


def test_an_output_dir_with_foreign_files_is_used_without_touching_them(data, tiny_student, tmp_path):
    out = tmp_path / "P"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "stats.json").write_text('{"mine": true}')  # at an output's name, not dart_hf's: refused
    proc = adapt(data, "no-such-org/no-such-model", out)
    assert_one_line(proc, 2, "adapt.py", "holds stats.json not written by dart_hf")
    (out / "stats.json").unlink()
    proc = adapt(data, tiny_student, out)  # other names are simply left alone
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(os.listdir(out)) == sorted(
        ["notes.txt", "dataset", "dataset.parquet", "stepwise.parquet", "stats.json", "report.html"]
    )


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--dataset", "typo"], ["cannot load dataset 'typo'", "not 'champ'"]),
        (["--n", "0"], ["--max_samples must be >= 1"]),
        (["--student", "missing.gguf"], ["GGUF file not found"]),
        (["--n-sim", "0"], ["DartConfig.n_sim must be an integer >= 1, got 0"]),
    ],
)
def test_demo_usage_errors_exit_2_with_one_line(args, needles, tmp_path):
    proc = run("-m", "dart_hf", "demo", "--out", str(tmp_path / "out"), *args)
    assert_one_line(proc, 2, "dart-hf demo", *needles)
    assert not (tmp_path / "out" / "dataset").exists()


def test_demo_output_that_cannot_be_written_is_refused_before_loading_anything(tmp_path):
    (tmp_path / "a_file").write_text("")
    proc = run("-m", "dart_hf", "demo", "--out", str(tmp_path / "a_file" / "out"), "--student", "never-loaded")
    assert_one_line(proc, 2, "dart-hf demo", "cannot write to output directory")
