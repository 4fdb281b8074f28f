"""Loading the student: once, whichever threads share a backend; a student that cannot reach its device stops the run.

The real tiny student (`dart_hf.local_models`) is loaded by real `from_pretrained` calls; the
wrappers below only count the calls and widen the window in which two threads could both load.
"""

from __future__ import annotations

import json
import threading
import time

import datasets
import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from dart_hf import DartAdapter, DartConfig
from dart_hf.backends.openai import OpenAIServerBackend
from dart_hf.backends.transformers import TransformersBackend

ROWS = [
    {"problem": f"What is {i} + {i}?", "solution": f"Add.\n\n{i} + {i} = {2 * i}.\n\n\\boxed{{{2 * i}}}"}
    for i in range(3)
]


def counted(monkeypatch, cls, delay: float = 0.3) -> list:
    """Count `cls.from_pretrained` calls; each waits `delay` first, so overlapping calls really overlap."""
    real, calls = cls.from_pretrained, []

    def from_pretrained(*args, **kwargs):
        calls.append(threading.get_ident())
        time.sleep(delay)
        return real(*args, **kwargs)

    monkeypatch.setattr(cls, "from_pretrained", from_pretrained)
    return calls


def adapt(backend) -> datasets.Dataset:
    config = DartConfig(n_sim=2, n_explore=2, max_new_tokens=16, temperature=1.0)
    adapter = DartAdapter(backend, config, progress=False)
    return datasets.Dataset.from_list(ROWS).map(adapter, batched=True, load_from_cache_file=False, keep_in_memory=True)


def comparable(ds: datasets.Dataset) -> str:
    return json.dumps({name: list(ds[name]) for name in ds.column_names if name != "dart_seconds"})


def test_two_threads_sharing_one_backend_load_it_once_and_adapt_as_one_thread_does(tiny_student, monkeypatch):
    model_loads = counted(monkeypatch, AutoModelForCausalLM)
    tokenizer_loads = counted(monkeypatch, AutoTokenizer)
    backend = TransformersBackend(tiny_student, device="cpu")
    results: list = [None, None]
    failures: list = []
    start = threading.Barrier(2)

    def work(k: int) -> None:
        try:
            start.wait()
            results[k] = adapt(backend)
        except BaseException as err:  # noqa: BLE001 - reported below
            failures.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not failures, failures
    assert len(model_loads) == 1 and len(tokenizer_loads) == 1  # not one load per thread
    for out in results:
        assert out is not None and "error" not in out["dart_action"], out and out["dart_error"]
    alone = adapt(backend)  # the same backend, one thread: the same rows
    assert comparable(results[0]) == comparable(results[1]) == comparable(alone)


def test_two_threads_load_the_server_backends_tokenizer_once(tiny_student, monkeypatch):
    loads = counted(monkeypatch, AutoTokenizer)
    backend = OpenAIServerBackend("http://127.0.0.1:9", tiny_student)
    got: list = []
    threads = [threading.Thread(target=lambda: got.append(backend.tokenizer)) for _ in range(2)]
    threads += [threading.Thread(target=lambda: got.append(backend._count_tokens("two words"))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(loads) == 1 and got[0] is not None and len(got) == 4


def test_a_student_that_cannot_move_to_its_device_stops_the_run_with_exit_1(
    tiny_student, tmp_path, monkeypatch, capsys
):
    """`model.to(device)` failing (CUDA out of memory, in real life) is a `RunError`: exit 1, no outputs, one load."""
    from dart_hf.scripts.adapt import cli

    real, loads = AutoModelForCausalLM.from_pretrained, []

    def from_pretrained(*args, **kwargs):
        model = real(*args, **kwargs)  # the weights load for real; only the move fails

        def to(*a, **k):
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

        model.to = to
        loads.append(model)
        return model

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", from_pretrained)
    data, out = tmp_path / "expert.jsonl", tmp_path / "out"
    data.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    args = ["--dataset_name", str(data), "--student", tiny_student, "--output_dir", str(out), "--n_sim", "2"]
    code = cli([*args, "--max_new_tokens", "8", "--batch_size", "1", "--chunk_size", "1"])
    err = capsys.readouterr().err
    assert code == 1, err[-2000:]
    assert "error: cannot load the student's weights onto cpu" in err and "CUDA out of memory" in err
    assert "Traceback" not in err
    assert len(loads) == 1  # stopped at the first failure, not reloaded for every row or round
    assert not (out / "dataset").exists() and not (out / "stats.json").exists()


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
