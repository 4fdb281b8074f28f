"""User errors are found up front: one line, exit 2, before any data, model or sample is loaded or drawn.

Each used to surface only after the expensive work (a push after the whole adaptation, pass@k after
every sample) or as a traceback. In-process calls of the commands' `cli`; what would come after the
check (loading the data, the model, sampling) is replaced by a function that fails the test, so a
check that moved later would show. The Hub cannot be reached here: the push checks are tested at the
`huggingface_hub` boundary (`constants.HF_HUB_OFFLINE`, `get_token`, `HfApi.whoami`).
"""

from __future__ import annotations

import json

import datasets
import httpx2 as httpx  # huggingface_hub's own HTTP client
import huggingface_hub
import pytest
from huggingface_hub import constants
from huggingface_hub.errors import HfHubHTTPError

from dart_hf.scripts import adapt, evaluate, train

ROWS = [{"problem": "What is 1 + 1?", "solution": "Add.\n\n1 + 1 = 2.\n\n\\boxed{2}"}]
SECRET = "hf_SECRET_token_never_printed"


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "expert.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    return path


def never(what):
    def fail(*args, **kwargs):
        raise AssertionError(f"{what} ran before the check refused the command")

    return fail


def one_line(capsys, code, got, *needles):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert got == code, err[-3000:]
    assert "Traceback" not in err and len(lines) == 1, err[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------------------------------ adapt
def run_adapt(data, tmp_path, *extra):
    return adapt.cli(
        ["--dataset_name", str(data), "--student", "no-such-org/no-such-model", "--output_dir", str(tmp_path / "o")]
        + list(extra)
    )


@pytest.fixture
def online(monkeypatch):
    """The Hub as huggingface_hub would see it online, with a token; nothing is loaded or generated."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: SECRET)
    monkeypatch.setattr("dart_hf.data.load_expert_dataset", never("loading the dataset"))
    monkeypatch.setattr(adapt, "build_adapter", never("loading the student"))
    return monkeypatch


def test_an_invalid_hub_dataset_id_is_refused_before_anything(data, tmp_path, capsys, online):
    got = run_adapt(data, tmp_path, "--push_to_hub", "--hub_dataset_id", "not a repo id!")
    one_line(capsys, 2, got, "--hub_dataset_id 'not a repo id!' is not a valid Hub repo id")
    got = run_adapt(data, tmp_path, "--hub_dataset_id", "a/b/c")
    one_line(capsys, 2, got, "is not a valid Hub repo id")


def test_push_to_hub_offline_or_without_a_token_is_refused_before_adapting(data, tmp_path, capsys, online):
    push = ("--push_to_hub", "--hub_dataset_id", "me/champ-dart")
    online.setattr(constants, "HF_HUB_OFFLINE", True)
    one_line(capsys, 2, run_adapt(data, tmp_path, *push), "offline", "HF_HUB_OFFLINE")

    online.setattr(constants, "HF_HUB_OFFLINE", False)
    online.setattr(huggingface_hub, "get_token", lambda: None)
    one_line(capsys, 2, run_adapt(data, tmp_path, *push), "needs a Hub token", "hf auth login")

    online.setattr(huggingface_hub, "get_token", lambda: SECRET)
    asked = []

    def unreachable(self, token=None, **kwargs):
        asked.append(token)
        raise ConnectionError(f"cannot connect with {token}")  # what this machine (no Hub) gives

    online.setattr(huggingface_hub.HfApi, "whoami", unreachable)
    line = one_line(capsys, 2, run_adapt(data, tmp_path, *push), "cannot reach the Hub")
    assert asked == [SECRET] and SECRET not in line

    def refused(self, token=None, **kwargs):
        request = httpx.Request("GET", "https://huggingface.co/api/whoami-v2")
        raise HfHubHTTPError("401 Unauthorized", response=httpx.Response(401, request=request))

    online.setattr(huggingface_hub.HfApi, "whoami", refused)
    one_line(capsys, 2, run_adapt(data, tmp_path, *push), "refused the token (HTTP 401)")

    # A token the Hub accepts passes the check: the run goes on to load the data (here: the sentinel).
    online.setattr(huggingface_hub.HfApi, "whoami", lambda self, token=None, **kw: {"name": "me"})
    with pytest.raises(AssertionError, match="loading the dataset ran"):
        run_adapt(data, tmp_path, *push)


def test_a_split_the_data_does_not_have_is_refused(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(adapt, "build_adapter", never("loading the student"))
    got = run_adapt(data, tmp_path, "--dataset_split", "nope")
    one_line(capsys, 2, got, "no 'nope' split")
    got = run_adapt("champ", tmp_path, "--dataset_split", "nope")
    one_line(capsys, 2, got, "'champ' has a single split, 'train'; there is no 'nope' split")
    saved = tmp_path / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS)}).save_to_disk(str(saved))
    got = run_adapt(saved, tmp_path, "--dataset_split", "nope")
    one_line(capsys, 2, got, "has no 'nope' split (it has 'train')")


def test_an_empty_data_file_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(adapt, "build_adapter", never("loading the student"))
    for content in ("", "\n  \n"):
        empty = tmp_path / "empty.jsonl"
        empty.write_text(content)
        one_line(capsys, 2, run_adapt(empty, tmp_path), "is empty")


# ------------------------------------------------------------------------------------------ evaluate
@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--n_samples", "2", "--ks", "4"], "--ks 4: every k of pass@k must be between 1 and --n_samples (2)"),
        (["--ks", "0"], "--ks 0: every k"),
        (["--n_samples", "0"], "--n_samples must be >= 1"),
        (["--dataset_split", "nope"], "no 'nope' split"),
    ],
)
def test_evaluate_refuses_impossible_settings_before_sampling(data, capsys, monkeypatch, tmp_path, flags, needle):
    monkeypatch.setattr("dart_hf.evaluation.evaluate_student", never("sampling"))
    got = evaluate.cli(
        ["--model", "no-such-org/no-such-model", "--dataset_name", str(data), "--output_file", str(tmp_path / "e.json")]
        + flags
    )
    one_line(capsys, 2, got, needle)


# ------------------------------------------------------------------------------------------ train
def dart_row(i, action="explore", solution=None):
    text = f"{i} + 3 = {i + 3}. \\boxed{{{i + 3}}}" if solution is None else solution
    return {
        "prompt": [{"role": "user", "content": f"What is {i} + 3? " + "Think carefully. " * 10}],
        "completion": [{"role": "assistant", "content": text}],
        "dart_solution": text,
        "dart_student_start": 0,
        "dart_action": action,
    }


def run_train(tiny_student, path, tmp_path, *extra):
    return train.cli(
        ["--dataset_name", str(path), "--model_name_or_path", tiny_student, "--output_dir", str(tmp_path / "t")]
        + ["--max_steps", "1", "--use_cpu", "true", "--report_to", "none", "--save_strategy", "no"]
        + list(extra)
    )


def test_train_refuses_data_it_cannot_train_on_before_loading_the_model(tiny_student, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("dart_hf.trainer.DartTrainer", never("loading the model"))
    unusable = tmp_path / "unusable.parquet"
    datasets.Dataset.from_list([dart_row(0, "error", ""), dart_row(1, "fallback", "")]).to_parquet(str(unusable))
    got = run_train(tiny_student, unusable, tmp_path)
    one_line(capsys, 2, got, "none of the 2 rows", "is usable for training", "error, fallback")

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    one_line(capsys, 2, run_train(tiny_student, empty, tmp_path), "is empty")

    good = tmp_path / "good.parquet"
    datasets.Dataset.from_list([dart_row(i) for i in range(3)]).to_parquet(str(good))
    got = run_train(tiny_student, good, tmp_path, "--max_length", "8")
    one_line(capsys, 2, got, "--max_length 8 is shorter than every prompt", "raise --max_length")

    with pytest.raises(AssertionError, match="loading the model ran"):  # a max_length some prompt fits passes
        run_train(tiny_student, good, tmp_path, "--max_length", "512")


def test_train_writes_no_cache_file_next_to_a_saved_dataset(tiny_student, tmp_path):
    """TRL's preparation used to leave `cache-*.arrow` files in the user's `save_to_disk` folder."""
    saved = tmp_path / "saved"
    datasets.Dataset.from_list([dart_row(i) for i in range(4)] + [dart_row(9, "error", "")]).save_to_disk(str(saved))
    before = sorted(p.name for p in saved.iterdir())
    assert run_train(tiny_student, saved, tmp_path, "--per_device_train_batch_size", "2", "--disable_tqdm", "true") == 0
    assert sorted(p.name for p in saved.iterdir()) == before
    assert datasets.is_caching_enabled()  # as it was: no global state left behind
