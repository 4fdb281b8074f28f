"""Dataset / model cards and what publishing them would send to the Hub.

The Hub cannot be reached from the test machines, so publishing is tested at the `huggingface_hub`
boundary: the `HfApi` methods that `Dataset.push_to_hub` and `RepoCard.push_to_hub` call are
replaced by `FakeHub`, an in-memory repository that records every call and keeps every file
committed. The assertions read those bytes back (parquet with pyarrow, README.md with
`DatasetCard`/`ModelCard`), i.e. they check what would have been uploaded. Anything else that tries
the network (an `HfApi` method the fake does not know, a raw httpx2/requests call, a socket) raises
`UnexpectedNetworkCall` at once, so a new call in a future `datasets` fails loudly instead of hanging.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import socket
from pathlib import Path
from typing import Any

import datasets
import httpx2
import pyarrow.parquet as pq
import pytest
import requests
from huggingface_hub import (
    CommitInfo,
    CommitOperationAdd,
    CommitOperationDelete,
    DatasetCard,
    HfApi,
    HfFileSystem,
    ModelCard,
    RepoCard,
    constants,
    hf_api,
)
from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError
from huggingface_hub.hf_api import RepoUrl
from huggingface_hub.utils import validate_repo_id

from dart_hf.adapter import OUTPUT_COLUMNS
from dart_hf.cards import (
    COLUMN_DOCS,
    DATASET_TAGS,
    MODEL_TAGS,
    check_repo_id,
    dataset_card,
    model_card,
    push_adapted_dataset,
    push_model_card,
)
from dart_hf.config import DartConfig
from dart_hf.report import compute_stats

NAN = float("nan")


def _row(steps: list[str], scores: list[float], gap: int, action: str, tokens: int, seconds: float, **extra: Any):
    solution = extra.pop("solution", "".join(steps))
    return {
        "problem": "p",
        "dart_steps": steps,
        "dart_step_success": scores,
        "dart_gap_step": gap,
        "dart_action": action,
        "dart_solution": solution,
        "dart_student_start": extra.pop("start", -1),
        "dart_answer": "3",
        "dart_tokens_generated": tokens,
        "dart_seconds": seconds,
        "dart_selection": extra.pop("selection", ""),
        "dart_error": extra.pop("error", ""),
        "prompt": [{"role": "user", "content": "p"}],
        "completion": [{"role": "assistant", "content": solution}],
    }


# imitate 2, explore 1, fallback 1, error 1; 250 tokens; gaps at 2/3 and 2/2, none for two rows
ROWS = [
    _row(["s1\n\n", "s2\n\n", "s3"], [0.25, 0.75, 0.0, 1.0], 2, "explore", 100, 2.0,
         solution="s1\n\nSo x = 3, $\\boxed{3}$.", start=4, selection="logprob"),
    _row(["a\n\n", "b\n\n", "c\n\n", "d"], [0.5, 0.5, 0.75, 1.0, 1.0], -1, "imitate", 50, 1.0),
    _row(["x\n\n", "y"], [0.0, 0.75, 0.0], 2, "fallback", 70, 3.0),
    _row(["whole"], [NAN, NAN], -1, "error", 0, 0.5, error="gold answer is empty"),
    _row(["p\n\n", "q"], [0.5, NAN, 1.0], -1, "imitate", 30, 1.5),
]  # fmt: skip

STUDENT = "HuggingFaceTB/SmolLM2-135M-Instruct"
SOURCE = "GAIR/LIMO"
TOKEN = "hf_test_token"
ENDPOINT = constants.ENDPOINT


# ---------------------------------------------------------------------------------------------- network guard
class UnexpectedNetworkCall(AssertionError):
    """Raised (and recorded) for any request that did not go through `FakeHub`."""


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every way out of the process fails fast; a swallowed attempt still fails the test at teardown."""
    attempts: list[str] = []

    def refuse(what: str):
        attempts.append(what)
        raise UnexpectedNetworkCall(f"unexpected network call: {what}")

    def httpx_send(self, request, *args, **kwargs):
        refuse(f"httpx2 {request.method} {request.url}")

    async def httpx_send_async(self, request, *args, **kwargs):
        refuse(f"httpx2 (async) {request.method} {request.url}")

    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            refuse(f"socket connect {address}")
        return real_connect(self, address)

    monkeypatch.setattr(httpx2.Client, "send", httpx_send)
    monkeypatch.setattr(httpx2.AsyncClient, "send", httpx_send_async)
    monkeypatch.setattr(requests.Session, "send", lambda self, request, **kw: refuse(f"requests {request.url}"))
    monkeypatch.setattr(socket.socket, "connect", connect)
    HfFileSystem.clear_instance_cache()  # fsspec caches instances (and their directory listings)
    yield attempts
    HfFileSystem.clear_instance_cache()
    assert not attempts, f"code tried the network: {attempts}"


# ---------------------------------------------------------------------------------------------- fake Hub
def _http_error(cls: type, message: str, status: int = 404) -> Exception:
    request = httpx2.Request("GET", f"{ENDPOINT}/api/fake")
    return cls(message, response=httpx2.Response(status, request=request))


def _read(op: CommitOperationAdd) -> bytes:
    with op.as_file() as f:
        return f.read()


class FakeHub:
    """In-memory Hub behind the `HfApi` methods that publishing uses; records every call.

    Strict like the real server where it matters here: committing to a missing repo, a stale
    `parent_commit`, or an LFS file whose content was neither pre-uploaded nor still readable
    is an error.
    """

    METHODS = (
        "repo_info",
        "create_repo",
        "preupload_lfs_files",
        "create_commit",
        "list_repo_tree",
        "_iter_repo_tree_pages",
        "hf_hub_download",
        "_validate_yaml",  # upload_folder checks README.md with it before hashing anything
    )

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.repos: dict[tuple[str, str], dict[str, Any]] = {}  # (repo_type, repo_id) -> repo
        self.snapshots: dict[str, dict[str, bytes]] = {}  # commit oid -> files
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.commits: list[dict[str, Any]] = []
        self.preuploaded: dict[str, bytes] = {}  # sha256 hex -> content
        self.validated: list[tuple[str, str]] = []  # (repo_type, card text) sent to /api/validate-yaml

    def install(self, monkeypatch) -> FakeHub:
        for name in self.METHODS:
            monkeypatch.setattr(HfApi, name, self._method(name))
        hub = self

        def validate(card: RepoCard, repo_type: str | None = None) -> None:
            hub._validate_yaml(str(card), repo_type=repo_type or card.repo_type)

        monkeypatch.setattr(RepoCard, "validate", validate)
        return self

    def _method(self, name: str):
        impl = getattr(self, "_" + name.lstrip("_"))

        def method(api: HfApi, *args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, {"token": kwargs.get("token") or api.token, **kwargs}))
            return impl(*args, **kwargs)

        method.__name__ = name
        return method

    # helpers
    def add_repo(self, repo_id: str, repo_type: str = "model", private: bool = False) -> None:
        oid = hashlib.sha1(f"init {repo_type} {repo_id}".encode()).hexdigest()
        self.repos[(repo_type, repo_id)] = {"private": private, "head": oid, "files": {}}
        self.snapshots[oid] = {}

    def _repo(self, repo_id: str, repo_type: str | None) -> dict[str, Any]:
        key = (repo_type or "model", repo_id)
        if key not in self.repos:
            raise _http_error(RepositoryNotFoundError, f"404: {key} not found")
        return self.repos[key]

    def _files(self, repo_id: str, repo_type: str | None, revision: str | None) -> dict[str, bytes]:
        repo = self._repo(repo_id, repo_type)
        if revision in (None, "main"):
            return repo["files"]
        assert revision in self.snapshots, f"unknown revision {revision!r}"
        return self.snapshots[revision]

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def files(self, repo_id: str, repo_type: str = "dataset") -> dict[str, bytes]:
        return self.repos[(repo_type, repo_id)]["files"]

    # HfApi methods
    def _validate_yaml(self, content: str, *, repo_type: str | None = None, **_: Any) -> None:
        """The server's /api/validate-yaml: metadata that does not parse is rejected, and so is a `base_model`
        or model `datasets` entry that is not a Hub id (a local path means nothing there)."""
        repo_type = repo_type or "model"
        card = (DatasetCard if repo_type == "dataset" else ModelCard)(content)
        if repo_type == "model":
            for repo_id in [card.data.base_model, *(card.data.datasets or [])]:
                if repo_id is not None:
                    validate_repo_id(repo_id)
        self.validated.append((repo_type, content))

    def _repo_info(self, repo_id: str, *, repo_type: str | None = None, revision: str | None = None, **_: Any):
        repo = self._repo(repo_id, repo_type)
        sha = repo["head"] if revision in (None, "main") else revision
        cls = hf_api.DatasetInfo if repo_type == "dataset" else hf_api.ModelInfo
        return cls(id=repo_id, sha=sha, private=repo["private"])

    def _create_repo(self, repo_id: str, *, repo_type: str | None = None, private: bool | None = None, **kw: Any):
        if (repo_type or "model", repo_id) not in self.repos:
            self.add_repo(repo_id, repo_type or "model", bool(private))
        elif not kw.get("exist_ok"):
            raise AssertionError("create_repo on an existing repo without exist_ok")
        prefix = "datasets/" if repo_type == "dataset" else ""
        return RepoUrl(f"{ENDPOINT}/{prefix}{repo_id}", endpoint=ENDPOINT)

    def _preupload_lfs_files(self, repo_id: str, additions: list, *, repo_type: str | None = None, **_: Any):
        self._repo(repo_id, repo_type)
        for op in additions:
            data = _read(op)
            assert hashlib.sha256(data).digest() == op.upload_info.sha256
            self.preuploaded[hashlib.sha256(data).hexdigest()] = data

    def _create_commit(
        self,
        repo_id: str,
        operations: list,
        *,
        commit_message: str,
        repo_type: str | None = None,
        revision: str | None = None,
        parent_commit: str | None = None,
        create_pr: bool | None = None,
        **_: Any,
    ) -> CommitInfo:
        repo = self._repo(repo_id, repo_type)
        assert revision in (None, "main") and not create_pr, "only commits to main are expected"
        if parent_commit is not None:
            assert parent_commit == repo["head"], "412: parent_commit is not the head of main"
        files = dict(repo["files"])
        sent = []
        for op in operations:
            if isinstance(op, CommitOperationAdd):
                try:
                    data = _read(op)
                except FileNotFoundError:  # LFS content: the local file may be gone after pre-upload
                    data = self.preuploaded.get(op.upload_info.sha256.hex())
                    assert data is not None, f"{op.path_in_repo}: content neither pre-uploaded nor readable"
                files[op.path_in_repo] = data
                sent.append(op.path_in_repo)
            elif isinstance(op, CommitOperationDelete):
                folder = op.path_in_repo.rstrip("/") + "/"
                for path in [p for p in files if p == op.path_in_repo or p.startswith(folder)]:
                    del files[path]
            else:
                raise AssertionError(f"unexpected commit operation {op!r}")
        oid = hashlib.sha1(f"{repo['head']} {commit_message} {len(self.commits)}".encode()).hexdigest()
        repo["files"], repo["head"] = files, oid
        self.snapshots[oid] = dict(files)
        self.commits.append(
            {
                "repo_id": repo_id,
                "repo_type": repo_type or "model",
                "message": commit_message,
                "added": sent,
                "oid": oid,
            }
        )
        prefix = "datasets/" if repo_type == "dataset" else ""
        return CommitInfo(
            commit_url=f"{ENDPOINT}/{prefix}{repo_id}/commit/{oid}",
            commit_message=commit_message,
            commit_description="",
            oid=oid,
            _endpoint=ENDPOINT,
        )

    def _entries(
        self, repo_id: str, path: str | None, recursive: bool, repo_type: str | None, revision: str | None
    ) -> list:
        files = self._files(repo_id, repo_type, revision)
        prefix = path.strip("/") + "/" if path and path.strip("/") else ""
        if prefix and not any(p.startswith(prefix) for p in files):
            raise _http_error(RemoteEntryNotFoundError, f"404: {path} not found in {repo_id}")
        out, folders = [], set()
        for p, data in sorted(files.items()):
            if not p.startswith(prefix):
                continue
            parts = p[len(prefix) :].split("/")
            for depth in range(1, len(parts) if recursive else min(len(parts), 2)):
                folder = prefix + "/".join(parts[:depth])
                if folder not in folders:
                    folders.add(folder)
                    out.append(hf_api.RepoFolder(path=folder, oid=hashlib.sha1(folder.encode()).hexdigest()))
            if recursive or len(parts) == 1:
                out.append(hf_api.RepoFile(path=p, size=len(data), oid=hashlib.sha1(data).hexdigest()))
        return out

    def _list_repo_tree(
        self,
        repo_id: str,
        path_in_repo: str | None = None,
        *,
        recursive: bool = False,
        repo_type: str | None = None,
        revision: str | None = None,
        **_: Any,
    ):
        return iter(self._entries(repo_id, path_in_repo, recursive, repo_type, revision))

    def _iter_repo_tree_pages(
        self,
        repo_id: str,
        path_in_repo: str | None = None,
        *,
        recursive: bool = False,
        repo_type: str | None = None,
        revision: str | None = None,
        **_: Any,
    ):
        yield self._entries(repo_id, path_in_repo, recursive, repo_type, revision), True

    def _hf_hub_download(
        self, repo_id: str, filename: str, *, repo_type: str | None = None, revision: str | None = None, **_: Any
    ) -> str:
        files = self._files(repo_id, repo_type, revision)
        if filename not in files:
            raise _http_error(RemoteEntryNotFoundError, f"404: {filename} not found in {repo_id}")
        out = self.tmp / "downloads" / str(len(self.calls)) / filename
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(files[filename])
        return str(out)


@pytest.fixture
def hub(tmp_path, monkeypatch) -> FakeHub:
    return FakeHub(tmp_path).install(monkeypatch)


# ---------------------------------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def ds() -> datasets.Dataset:
    return datasets.Dataset.from_list(ROWS)


@pytest.fixture(scope="module")
def stats(ds) -> dict:
    return compute_stats(ds, config=DartConfig().to_dict(), student=STUDENT, source=SOURCE, wall_seconds=12.5)


def _nan_safe(value: Any) -> Any:
    """NaN != NaN; rows with NaN scores compare equal after this."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict):
        return {k: _nan_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_safe(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------- dataset card
def test_dataset_card_metadata(stats):
    card = dataset_card(stats, repo_id="me/limo-dart", license="mit")
    data = DatasetCard(str(card)).data  # what the Hub parses from README.md
    assert data.tags == list(DATASET_TAGS)
    assert data.task_categories == ["text-generation"]
    assert data.source_datasets == [SOURCE]
    assert data.license == "mit"
    assert data.size_categories == ["n<1K"]
    assert data.pretty_name == "LIMO adapted by DART to SmolLM2-135M-Instruct"


def test_dataset_card_body_has_the_stats(stats):
    # stats of test_report.ROWS: imitate 2, explore 1, fallback 1, error 1; 250 tokens in 12.5 s
    text = dataset_card(stats, repo_id="me/limo-dart").text
    for action, count in {"imitate": 2, "explore": 1, "fallback": 1, "error": 1}.items():
        assert f"| `{action}` | {count} |" in text
    assert "rows: **5**, usable for training: **4**" in text
    assert "| tokens generated by the student | 250 |" in text
    assert "| wall time | 12.5 s |" in text
    assert "| throughput | 20.0 tokens/s |" in text
    assert "| tokens per example | 50.0 |" in text
    assert "mean f_0 (student alone): **0.312**" in text and "mean f_T (after all expert steps): **0.750**" in text
    assert "| rows | 0 | 0 | 1 | 1 | 2 |" in text  # relative gap histogram, "none" last
    assert "1 × gold answer is empty" in text
    assert "https://arxiv.org/abs/2505.20700" in text
    assert f"[{STUDENT}](https://huggingface.co/{STUDENT})" in text
    assert f"[{SOURCE}](https://huggingface.co/datasets/{SOURCE})" in text
    assert "| `n_sim` | 4 |" in text and "| `gap_rule` | drop |" in text
    assert 'load_dataset("me/limo-dart", split="train")' in text and "DartTrainer" in text
    for column in OUTPUT_COLUMNS:
        assert f"| `{column}` |" in text


def test_dataset_card_shows_how_rollouts_ended(stats):
    assert "how the student's rollouts ended" not in dataset_card(stats).text  # no column, no line
    ok = {**stats, "rollout_endings": {"answer": 30, "stop": 6, "length": 4}, "token_cap_share": 0.1}
    text = dataset_card(ok).text
    assert (
        "- how the student's rollouts ended: 40 rollouts: 30 stopped after the answer (a \\boxed{} or a closed code block) (75%), "
        in text
    )
    assert "4 hit the max_new_tokens cap (10%)" in text and "raise max_new_tokens" not in text
    capped = {**stats, "rollout_endings": {"answer": 5, "stop": 0, "length": 5}, "token_cap_share": 0.5}
    assert "- **warning**: 50% of the student's rollouts hit the token cap" in dataset_card(capped).text


def test_dataset_card_reports_verifier_timeouts(stats):
    assert "verifier timeouts" not in dataset_card(stats).text  # none recorded: no line
    text = dataset_card({**stats, "verify_timeouts": {"comparisons": 6, "rows": 3}}).text
    assert "- verifier timeouts: 6 comparisons in 3 rows" in text


def test_card_documents_every_adapter_column():
    assert tuple(COLUMN_DOCS) == tuple(OUTPUT_COLUMNS)


def test_dataset_card_with_little_information():
    stats = {"n_examples": 0, "usable": 0, "actions": {}, "config": None, "student": "/local/ckpt", "source": None}
    card = dataset_card(stats)
    data = DatasetCard(str(card)).data
    assert data.license is None and data.source_datasets is None
    assert data.pretty_name == "DART-adapted reasoning data"
    assert "No DART configuration was recorded" in card.text
    assert "`/local/ckpt` (local)" in card.text  # a local path is not turned into a Hub link
    assert 'load_dataset("<namespace>/<this-dataset>"' in card.text
    assert 'DartTrainer(model="<student>", train_dataset=ds,' in dataset_card({**stats, "student": None}).text


# ---------------------------------------------------------------------------------------------- model card
TRAINING_ARGS = {
    "learning_rate": 5e-6,
    "num_train_epochs": 3,
    "expert_weight": 1.0,
    "explore_weight": 0.5,
    "logging_steps": 10,
    "hub_token": "hf_secret_value",
}
EVALS = {"gsm8k": {"accuracy": 0.41, "pass@4": 0.62}, "math500": {"accuracy": 0.2}}


def _model_card(**overrides: Any) -> ModelCard:
    kwargs = dict(
        base_model=STUDENT,
        dataset_id="me/limo-dart",
        dart_config=DartConfig().to_dict(),
        training_args=TRAINING_ARGS,
        eval_results=EVALS,
        repo_id="me/smollm2-dart",
    )
    return model_card(**{**kwargs, **overrides})


def test_model_card_metadata_and_eval_table():
    card = _model_card()
    data = ModelCard(str(card)).data
    assert data.base_model == STUDENT
    assert data.datasets == ["me/limo-dart"]
    assert data.tags == list(MODEL_TAGS)
    assert data.library_name == "transformers"
    assert data.model_name == "smollm2-dart"
    results = {(r.dataset_name, r.metric_type): r.metric_value for r in data.eval_results}
    assert results == {("gsm8k", "accuracy"): 0.41, ("gsm8k", "pass@4"): 0.62, ("math500", "accuracy"): 0.2}
    text = card.text
    assert "| dataset | accuracy | pass@4 |" in text
    assert "| gsm8k | 0.4100 | 0.6200 |" in text and "| math500 | 0.2000 | – |" in text
    assert "| `learning_rate` | 5e-06 |" in text and "| `num_train_epochs` | 3 |" in text
    assert "expert-written tokens × 1, student-written tokens × 0.5" in text
    assert "| `n_sim` | 4 |" in text
    assert "hf_secret_value" not in str(card)  # secrets in training arguments never reach a card


def test_model_card_without_evaluation():
    card = _model_card(eval_results=None, training_args=None, dart_config=None, dataset_id=None, repo_id=None)
    data = ModelCard(str(card)).data
    assert data.eval_results is None and data.datasets is None
    assert "## Evaluation" not in card.text
    assert "(plain SFT, as in the paper)" in card.text
    assert data.model_name == "SmolLM2-135M-Instruct-dart"


# ---------------------------------------------------------------------------------------------- publishing
def test_push_adapted_dataset_sends_rows_and_card(hub, ds, stats):
    url = push_adapted_dataset(ds, "me/limo-dart", stats=stats, private=True, token=TOKEN, license="mit")
    assert url == f"{ENDPOINT}/datasets/me/limo-dart"

    # the calls, in order: datasets' push (repo lookup, creation, LFS pre-upload, parquet + README commit),
    # then ours (read back the README datasets wrote, commit the DART card over it)
    # (tree listings and repeated look-ups are datasets' HfFileSystem looking for an existing README.md)
    names = [n for n in hub.names() if n not in ("list_repo_tree", "_iter_repo_tree_pages")]
    names = [n for i, n in enumerate(names) if i == 0 or n != names[i - 1]]
    assert names == [
        "repo_info", "create_repo", "preupload_lfs_files", "repo_info", "create_commit",
        "hf_hub_download", "create_commit",
    ]  # fmt: skip
    data_commit, card_commit = hub.commits
    assert dict(hub.calls)["hf_hub_download"]["revision"] == data_commit["oid"]
    assert [kw for n, kw in hub.calls if n == "create_commit"][1]["parent_commit"] == data_commit["oid"]
    assert all(kw["token"] == TOKEN for _, kw in hub.calls), "the token given is used for every call"
    create = dict(hub.calls)["create_repo"]
    assert create["repo_type"] == "dataset" and create["private"] is True

    # two commits: data first, then the card
    assert [c["added"] for c in hub.commits] == [["data/train-00000-of-00001.parquet", "README.md"], ["README.md"]]
    files = hub.files("me/limo-dart")
    assert sorted(files) == ["README.md", "data/train-00000-of-00001.parquet"]

    # the parquet shard decodes back to the same rows and features
    table = pq.read_table(io.BytesIO(files["data/train-00000-of-00001.parquet"]))
    assert _nan_safe(table.to_pylist()) == _nan_safe(ds.to_list())
    assert datasets.Dataset(table).features == ds.features

    # README.md: valid metadata (tags, source, and datasets' `configs` kept), body with the stats
    assert [t for t, _ in hub.validated] == ["dataset"]
    card = DatasetCard(files["README.md"].decode("utf-8"))
    assert card.data.tags == list(DATASET_TAGS)
    assert card.data.source_datasets == [SOURCE]
    assert card.data.license == "mit"
    assert card.data.configs == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    assert card.data.dataset_info["splits"][0]["num_examples"] == len(ds)
    assert "| `explore` | 1 |" in card.text and "| tokens generated by the student | 250 |" in card.text


def test_push_adapted_dataset_in_several_shards(hub, ds, stats, monkeypatch):
    monkeypatch.setattr(datasets.config, "MAX_SHARD_SIZE", ds.data.nbytes // 2)  # 2-3 shards of the 5 rows
    push_adapted_dataset(ds, "me/limo-dart", stats=stats, token=TOKEN)
    files = hub.files("me/limo-dart")
    shards = sorted(p for p in files if p.endswith(".parquet"))
    assert 1 < len(shards) <= len(ds)
    rows = [r for p in shards for r in pq.read_table(io.BytesIO(files[p])).to_pylist()]
    assert _nan_safe(rows) == _nan_safe(ds.to_list())
    assert dict(hub.calls)["create_repo"]["private"] is False


def test_push_adapted_dataset_writes_configs_when_readme_is_unreadable(hub, ds, stats, monkeypatch):
    def missing(*args: Any, **kwargs: Any):
        raise _http_error(RemoteEntryNotFoundError, "404: README.md")

    monkeypatch.setattr(HfApi, "hf_hub_download", missing)
    push_adapted_dataset(ds, "me/limo-dart", stats=stats, token=TOKEN)
    card = DatasetCard(hub.files("me/limo-dart")["README.md"].decode("utf-8"))
    assert card.data.configs == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]


def test_push_model_card(hub):
    hub.add_repo("me/smollm2-dart")  # created by trainer.push_to_hub, which uploads the weights
    url = push_model_card("me/smollm2-dart", _model_card(), token=TOKEN)
    assert url.startswith(f"{ENDPOINT}/me/smollm2-dart/commit/")
    assert hub.names() == ["create_commit"]
    assert hub.calls[0][1]["token"] == TOKEN and hub.validated[0][0] == "model"
    card = ModelCard(hub.files("me/smollm2-dart", "model")["README.md"].decode("utf-8"))
    assert card.data.base_model == STUDENT
    assert "| gsm8k | 0.4100 | 0.6200 |" in card.text


def test_trainer_writes_and_pushes_the_dart_model_card(hub, tiny_student, tmp_path, monkeypatch):
    """`DartTrainer.create_model_card` replaces TRL's generic card, locally and in `trainer.push_to_hub`."""
    from dart_hf.sft_config import DartSFTConfig
    from dart_hf.trainer import DartTrainer

    # the adapt recipe's output folder: the data and the stats.json holding the DART config
    adapted = tmp_path / "adapted"
    adapted.mkdir()
    (adapted / "stats.json").write_text(json.dumps({"config": {**DartConfig().to_dict(), "n_sim": 3}}))
    rows = [r for r in ROWS if r["dart_action"] != "error"]
    datasets.Dataset.from_list(rows).to_parquet(str(adapted / "dataset.parquet"))
    train = datasets.Dataset.from_list(rows).select_columns(["prompt", "completion", "dart_student_start"])
    out = tmp_path / "out"
    args = DartSFTConfig(
        output_dir=str(out), hub_model_id="me/smollm2-dart", hub_token=TOKEN, learning_rate=5e-6, explore_weight=0.5,
        max_length=64, bf16=False, use_cpu=True, report_to="none", save_strategy="no", disable_tqdm=True,
    )  # fmt: skip
    trainer = DartTrainer(tiny_student, args=args, train_dataset=train)

    card = trainer.create_model_card(dataset_name=str(adapted / "dataset.parquet"))
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert readme == str(card)
    local = ModelCard(readme).data
    assert local.base_model is None and local.datasets is None  # local paths: named in the body only
    assert f"`{tiny_student}` (local)" in readme and f"`{adapted / 'dataset.parquet'}` (local)" in readme
    assert "| `n_sim` | 3 |" in readme  # the DART config, from the adapt run's stats.json
    assert "| `learning_rate` | 5e-06 |" in readme and "student-written tokens × 0.5" in readme
    assert "https://arxiv.org/abs/2505.20700" in readme and "@article{dart2025" in readme
    assert "It has been trained using [TRL]" not in readme  # not TRL's generic card
    assert hub.calls == []

    # upload_folder's one-commit path (without hf_xet), which goes through create_commit like every push here
    monkeypatch.setattr(hf_api, "is_xet_available", lambda: False)
    trainer.push_to_hub(dataset_name="me/limo-dart")  # TRL scripts pass the Hub id of the data here
    assert [n for n in hub.names() if n != "preupload_lfs_files"] == ["create_repo", "_validate_yaml", "create_commit"]
    assert all(kw["token"] == TOKEN for _, kw in hub.calls)
    (commit,) = hub.commits
    assert "README.md" in commit["added"] and "model.safetensors" in commit["added"]
    assert [t for t, _ in hub.validated] == ["model"]
    pushed = ModelCard(hub.files("me/smollm2-dart", "model")["README.md"].decode("utf-8"))
    assert pushed.data.datasets == ["me/limo-dart"]
    assert pushed.data.model_name == "smollm2-dart"
    assert pushed.data.tags[:3] == list(MODEL_TAGS)
    assert "[me/limo-dart](https://huggingface.co/datasets/me/limo-dart)" in pushed.text
    assert "| `n_sim` | 3 |" in pushed.text  # remembered from the first call
    assert 'pipeline("text-generation", model="me/smollm2-dart")' in pushed.text
    assert "https://arxiv.org/abs/2505.20700" in pushed.text
    assert TOKEN not in str(pushed)


@pytest.mark.parametrize(
    "repo_id",
    ["", None, "limo-dart", "a/b/c", "me/bad name", "https://huggingface.co/datasets/me/x", "buckets/me/x", "me/-x"],
)
def test_bad_repo_ids_fail_before_any_upload(hub, ds, stats, repo_id):
    with pytest.raises(ValueError, match=r"repo_id must be 'namespace/name' \(e\.g\. 'my-user/"):
        push_adapted_dataset(ds, repo_id, stats=stats)
    with pytest.raises(ValueError, match="namespace/name"):
        push_model_card(repo_id, _model_card())
    assert hub.calls == []


def test_check_repo_id_accepts_normal_ids():
    assert check_repo_id("my-user/limo_dart.v2") == "my-user/limo_dart.v2"


def test_guard_stops_calls_the_fake_does_not_know(hub, no_network):
    with pytest.raises(UnexpectedNetworkCall, match="httpx2 GET"):
        HfApi(token=TOKEN).list_repo_refs("me/limo-dart", repo_type="dataset")
    assert no_network and "list_repo_refs" not in hub.names()
    no_network.clear()  # expected here; any other test leaving an attempt fails at teardown
