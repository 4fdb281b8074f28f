"""A killed adaptation resumes from its saved chunks and ends identical to an uninterrupted run."""

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import datasets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = [
    {"problem": f"What is {i} + {i}?", "solution": f"Add.\n\n{i} + {i} = {2 * i}.\n\n\\boxed{{{2 * i}}}"}
    for i in range(12)
]


def command(data, student, out):
    return [
        sys.executable,
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
        "200",
        "--temperature",
        "1.0",
        "--chunk_size",
        "2",
        "--batch_size",
        "2",
    ]


def test_sigkill_then_resume_gives_the_uninterrupted_result(tiny_student, tmp_path):
    data = tmp_path / "expert.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        command(data, tiny_student, killed), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
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


# ---------------------------------------------------------------------------------------------------
# Never mix two runs: the chunks folder carries a manifest, and the output directory a lock.
# In-process with the scripted backend (fast); one subprocess test checks what the user sees.

import pytest  # noqa: E402

from dart_hf import DartAdapter, DartConfig  # noqa: E402
from dart_hf.errors import UsageError  # noqa: E402
from dart_hf.resumable import adapt_and_write, adapt_in_chunks  # noqa: E402

from scripted import TEMPLATE, ScriptedBackend, expert  # noqa: E402

T, F = True, False
SCRIPT = {0: [T, T, F, F], 1: [T, T, T, F], 2: [F, F, F, F], 3: [T, T, T, T]}


class Killed(BaseException):
    """Stands for SIGKILL in-process: nothing after it runs, no `except Exception` catches it."""


def scripted_rows(tag: str, n: int = 6) -> datasets.Dataset:
    return datasets.Dataset.from_list(
        [{"problem": f"{tag} problem {i}", "solution": expert(3), "answer": "42"} for i in range(n)]
    )


@functools.cache
def scripted_adapter(n_sim: int = 4) -> DartAdapter:
    """One per n_sim: its math-verify worker starts once."""
    script = {t: (outcomes * 2)[:n_sim] for t, outcomes in SCRIPT.items()}
    return DartAdapter(
        ScriptedBackend(sim=script, n_sim=n_sim), DartConfig(n_sim=n_sim, prompt_template=TEMPLATE), progress=False
    )


class KillAfter:
    """Map function that adapts `calls` batches, then dies."""

    def __init__(self, adapter, calls):
        self.adapter, self.calls, self.fingerprint, self.config, self.backend = (
            adapter,
            calls,
            adapter.fingerprint,
            adapter.config,
            adapter.backend,
        )

    def __call__(self, batch):
        if self.calls == 0:
            raise Killed()
        self.calls -= 1
        return self.adapter(batch)


def killed_run(out, dataset, adapter, chunks_done=1):
    with pytest.raises(Killed):
        adapt_in_chunks(dataset, KillAfter(adapter, chunks_done), str(out), chunk_size=2, batch_size=2)
    assert sorted(p for p in os.listdir(out / "chunks") if p.isdigit()) == [f"{i:05d}" for i in range(chunks_done)]


def test_resume_refuses_chunks_of_another_dataset_of_the_same_length(tmp_path):
    killed_run(tmp_path, scripted_rows("old"), scripted_adapter())
    with pytest.raises(UsageError, match=r"another run \(the dataset's rows differ\).*--overwrite_output_dir"):
        adapt_in_chunks(scripted_rows("new"), scripted_adapter(), str(tmp_path), chunk_size=2, batch_size=2)


def test_resume_refuses_chunks_of_another_configuration(tmp_path):
    killed_run(tmp_path, scripted_rows("same"), scripted_adapter(n_sim=4))
    with pytest.raises(UsageError, match=r"n_sim 4 -> 3"):
        adapt_in_chunks(scripted_rows("same"), scripted_adapter(n_sim=3), str(tmp_path), chunk_size=2, batch_size=2)
    with pytest.raises(UsageError, match=r"chunk_size 2 -> 3"):
        adapt_in_chunks(scripted_rows("same"), scripted_adapter(n_sim=4), str(tmp_path), chunk_size=3, batch_size=2)


def test_overwrite_starts_over_and_a_matching_resume_reuses_the_chunks(tmp_path):
    killed_run(tmp_path / "a", scripted_rows("old"), scripted_adapter())
    got = adapt_in_chunks(
        scripted_rows("new"), scripted_adapter(), str(tmp_path / "a"), chunk_size=2, batch_size=2, overwrite=True
    )
    assert got["problem"] == scripted_rows("new")["problem"]

    killed_run(tmp_path / "b", scripted_rows("same"), scripted_adapter())
    counting = KillAfter(scripted_adapter(), calls=10**6)
    got = adapt_in_chunks(scripted_rows("same"), counting, str(tmp_path / "b"), chunk_size=2, batch_size=2)
    assert counting.calls == 10**6 - 2  # 3 chunks of one batch each: the first was loaded, not redone
    fresh = scripted_rows("same").map(scripted_adapter(), batched=True, batch_size=2)
    assert got.remove_columns("dart_seconds").to_list() == fresh.remove_columns("dart_seconds").to_list()


def test_a_second_run_on_a_locked_output_dir_fails_at_once(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from dart_hf.rundir import RunLock; RunLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(120)",
            str(tmp_path),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        with pytest.raises(UsageError, match=rf"in use by another run \(pid {holder.pid} "):
            adapt_in_chunks(scripted_rows("x"), scripted_adapter(), str(tmp_path), chunk_size=2)
        assert time.monotonic() - start < 10
        assert not (tmp_path / "chunks").exists()
    finally:
        holder.kill()
        holder.wait()
    adapt_in_chunks(scripted_rows("x"), scripted_adapter(), str(tmp_path), chunk_size=2)  # a dead holder's lock is free


FS_STEPS = ("replace", "rename", "unlink", "rmdir")


def test_a_kill_at_any_file_system_step_leaves_a_directory_the_same_call_resumes(tmp_path, monkeypatch):
    """Kill (in-process) at the k-th rename/delete of a whole run, for every k, then rerun the same call."""
    dataset, expected = scripted_rows("kill", 4), None

    def write(adapted):  # what the recipe writes, reduced to the dataset folder, written as write_outputs does
        shutil.rmtree(out / ".dataset.tmp", ignore_errors=True)
        adapted.save_to_disk(str(out / ".dataset.tmp"))
        shutil.rmtree(out / "dataset", ignore_errors=True)
        os.replace(out / ".dataset.tmp", out / "dataset")
        return adapted

    def run():
        return adapt_and_write(dataset, scripted_adapter(), str(out), write, chunk_size=2, batch_size=2)

    real = {name: getattr(os, name) for name in FS_STEPS}
    countdown = [None]

    def step(name):
        def wrapper(*args, **kwargs):
            if countdown[0] is not None:
                countdown[0] -= 1
                if countdown[0] < 0:
                    raise Killed()
            return real[name](*args, **kwargs)

        return wrapper

    for name in FS_STEPS:
        monkeypatch.setattr(os, name, step(name))
    out = tmp_path / "fresh"
    countdown[0] = 10**6
    expected = run().remove_columns("dart_seconds").to_list()
    total = 10**6 - countdown[0]
    assert total >= 8 and sorted(os.listdir(out)) == ["dataset"]

    for k in range(total):
        out = tmp_path / f"kill{k}"
        countdown[0] = k
        with pytest.raises(Killed):
            run()
        countdown[0] = None
        got = run()
        assert got.remove_columns("dart_seconds").to_list() == expected, f"killed at step {k}"
        assert sorted(os.listdir(out)) == ["dataset"], f"killed at step {k}: {os.listdir(out)}"


def test_chunks_without_a_manifest_are_not_taken_for_this_run(tmp_path):
    scripted_rows("x").select(range(2)).save_to_disk(str(tmp_path / "chunks" / "00000"))  # e.g. an older dart_hf
    for overwrite in (False, True):
        with pytest.raises(UsageError, match="chunks was not written by dart_hf"):
            adapt_in_chunks(scripted_rows("x"), scripted_adapter(), str(tmp_path), chunk_size=2, overwrite=overwrite)
    assert (tmp_path / "chunks" / "00000" / "dataset_info.json").exists()


@pytest.mark.parametrize("overwrite", [False, True])
def test_folders_dart_hf_did_not_write_are_refused_before_any_generation_and_kept(tmp_path, overwrite):
    """The attack: P/chunks/doc.txt and P/dataset/loader.py used to be taken over, then deleted."""
    from dart_hf.report import write_outputs
    from dart_hf.report.outputs import check_outputs
    from dart_hf.resumable import output_dir_lock

    (tmp_path / "chunks").mkdir()
    (tmp_path / "chunks" / "doc.txt").write_text("my notes")
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "loader.py").write_text("print('mine')")
    counting = KillAfter(scripted_adapter(), calls=10**6)

    def run():
        with output_dir_lock(str(tmp_path), check=check_outputs):  # what `dart-hf adapt` does up front
            return adapt_and_write(
                scripted_rows("x", 2),
                counting,
                str(tmp_path),
                lambda adapted: write_outputs(adapted, str(tmp_path), stats={}),
                chunk_size=2,
                overwrite=overwrite,
            )

    with pytest.raises(UsageError, match=r"chunks was not written by dart_hf"):
        run()
    (tmp_path / "chunks" / "doc.txt").rename(tmp_path / "doc.txt")  # only dataset/ is in the way now
    (tmp_path / "chunks").rmdir()
    with pytest.raises(UsageError, match=r"holds dataset not written by dart_hf"):
        run()
    assert counting.calls == 10**6, "refused before any generation"
    assert (tmp_path / "doc.txt").read_text() == "my notes"
    assert (tmp_path / "dataset" / "loader.py").read_text() == "print('mine')"
    assert sorted(os.listdir(tmp_path)) == ["dataset", "doc.txt"]  # nothing written, nothing removed


def test_a_second_run_in_another_thread_of_the_same_process_is_refused(tmp_path):
    """The lock used to be re-entrant process-wide: two threads on one output_dir shared `.tmp` paths."""
    import threading

    inside, go_on, result = threading.Event(), threading.Event(), {}

    class Waits:  # a map function that holds the first run inside its first chunk until told to go on
        fingerprint, config, backend = scripted_adapter().fingerprint, scripted_adapter().config, None

        def __call__(self, batch):
            inside.set()
            assert go_on.wait(60)
            return scripted_adapter()(batch)

    def first():
        try:
            result["first"] = adapt_in_chunks(scripted_rows("t", 4), Waits(), str(tmp_path), chunk_size=2)
        except BaseException as err:  # noqa: BLE001 - reported below
            result["first"] = err

    thread = threading.Thread(target=first, name="first-run")
    thread.start()
    try:
        assert inside.wait(60)
        with pytest.raises(UsageError, match=r"in use by another run in this process \(thread first-run\)"):
            adapt_in_chunks(scripted_rows("t", 4), scripted_adapter(), str(tmp_path), chunk_size=2)
        with pytest.raises(UsageError, match="in use by another run in this process"):
            adapt_and_write(scripted_rows("t", 4), scripted_adapter(), str(tmp_path), lambda a: a, chunk_size=2)
    finally:
        go_on.set()
        thread.join(120)
    assert isinstance(result["first"], datasets.Dataset), result["first"]  # the first run was not disturbed
    assert result["first"]["dart_action"] == scripted_rows("t", 4).map(scripted_adapter(), batched=True)["dart_action"]
    adapt_in_chunks(scripted_rows("t", 4), scripted_adapter(), str(tmp_path), chunk_size=2)  # free again once done


def test_no_cache_file_is_written_next_to_the_input_data(tmp_path):
    """Adapting a `save_to_disk` folder used to leave `cache-*.arrow` files in it (the user's folder)."""
    from dart_hf.data import load_expert_dataset

    scripted_rows("c", 4).save_to_disk(str(tmp_path / "input"))
    before = sorted(os.listdir(tmp_path / "input"))
    dataset = load_expert_dataset(str(tmp_path / "input"))
    adapt_and_write(dataset, scripted_adapter(), str(tmp_path / "out"), lambda a: a.to_list(), chunk_size=2)
    adapt_in_chunks(dataset.select(range(0)), scripted_adapter(), str(tmp_path / "empty"), chunk_size=2)
    assert sorted(os.listdir(tmp_path / "input")) == before
