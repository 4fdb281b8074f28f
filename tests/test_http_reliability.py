"""OpenAIServerBackend against a misbehaving OpenAI-compatible server on 127.0.0.1, written here.

Each test scripts what the server does per request (500s, 429 with Retry-After, malformed JSON,
fewer choices than `n`, a hang, a slow drip, death mid-run) and checks what the backend promises:
one HTTP exchange never outlasts `timeout`, a failed request fails alone and the rest is kept, and
servers that do not answer stop the run (`ServerUnavailable`, a `RunError`) instead of turning
every row into an error. Time bounds are generous: they separate "bounded" from "minutes or
forever", not fast from slow.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

import datasets
import pytest

from dart_hf import DartAdapter, DartConfig
from dart_hf.backends.base import GenerationRequest, RequestsFailed
from dart_hf.backends.openai import OpenAIServerBackend, ServerError, ServerUnavailable
from dart_hf.errors import RunError

from scripted import TEMPLATE, CharTokenizer, expert

pytestmark = pytest.mark.timeout(120)  # a regression to "hang forever" fails instead of blocking the suite
DRIP_FOR_S = 20.0


def completion(body: dict, n: Optional[int] = None) -> dict:
    """A vLLM-shaped answer: `n` choices (default: as asked), text depending on prompt, seed and index."""
    n = body.get("n", 1) if n is None else n
    choices = [
        {"index": k, "text": f" s{body.get('seed')}.{k} so \\boxed{{42}}", "finish_reason": "stop"} for k in range(n)
    ]
    return {"choices": choices, "usage": {"completion_tokens": 5 * n}}


class Server:
    """A threaded HTTP server whose answer to each request is `behaviour(server, method, body)`.

    The behaviour returns ("json", status, payload[, headers]), ("raw", status, bytes), ("hang",)
    or ("drip", seconds_per_byte). `posts` records every POST body, in arrival order.
    """

    def __init__(self, behaviour: Callable[[Server, str, dict], tuple]) -> None:
        self.behaviour = behaviour
        self.posts: list[dict] = []
        self.auth: list[Optional[str]] = []  # the Authorization header of every request, in arrival order
        self.current = threading.local()  # `.headers` of the request being answered, for behaviours that echo it
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep the test output clean
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                outer.current.headers = self.headers
                with outer.lock:
                    outer.auth.append(self.headers.get("Authorization"))
                    if method == "POST":
                        outer.posts.append(body)
                action = outer.behaviour(outer, method, body)
                try:
                    self._act(action)
                except OSError:  # the client gave up on us: expected in these tests
                    pass

            def _act(self, action: tuple) -> None:
                kind = action[0]
                if kind == "hang":
                    outer.stopping.wait()
                    return
                if kind == "drip":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    give_up = (
                        time.monotonic() + DRIP_FOR_S
                    )  # then hang up, so a client without a deadline fails, not hangs
                    while not outer.stopping.wait(action[1]) and time.monotonic() < give_up:
                        self.wfile.write(b" ")
                        self.wfile.flush()
                    return
                status, data = action[1], action[2]
                payload = data if kind == "raw" else json.dumps(data).encode()
                self.send_response(status)
                for name, value in (action[3] if len(action) > 3 else {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self):
                self._serve("POST")

            def do_GET(self):
                self._serve("GET")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def count(self) -> int:
        with self.lock:
            return len(self.posts)

    def die(self) -> None:
        """Stop accepting connections (later ones are refused) and end every hang or drip."""
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers: list[Server] = []

    def start(behaviour):
        server = Server(behaviour)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if not server.stopping.is_set():
            server.die()


def ok(server, method, body):
    return ("json", 200, completion(body) if method == "POST" else {"data": []})


def backend(urls, **kwargs) -> OpenAIServerBackend:
    kwargs = {"timeout": 1.0, "max_retries": 1, "backoff": 0.01, "tokenizer": CharTokenizer(), **kwargs}
    return OpenAIServerBackend(urls, "test-model", **kwargs)


def reqs(*prompts: str, n: int = 2) -> list[GenerationRequest]:
    return [GenerationRequest(p, n=n, seed=i, max_new_tokens=8) for i, p in enumerate(prompts)]


def test_500s_then_success_retries_only_the_failed_requests(serve):
    def behaviour(server, method, body):
        return ("json", 500, {"error": "busy"}) if server.count() <= 2 else ok(server, method, body)

    server = serve(behaviour)
    out = backend(server.url, max_retries=3).generate(reqs("a", "b", "c"))
    assert [len(row) for row in out] == [2, 2, 2]
    assert server.count() == 3 + 2  # three requests, the two that got a 500 sent again, nothing else


def test_429_waits_for_retry_after(serve):
    def behaviour(server, method, body):
        if server.count() == 1:
            return ("json", 429, {"error": "slow down"}, {"Retry-After": "1"})
        return ok(server, method, body)

    server = serve(behaviour)
    start = time.monotonic()
    out = backend(server.url, timeout=5.0).generate(reqs("a"))
    elapsed = time.monotonic() - start
    assert len(out[0]) == 2 and server.count() == 2
    assert 0.9 <= elapsed < 10  # the 10 ms backoff alone would have retried at once


def test_malformed_json_is_retried_and_a_request_that_keeps_getting_it_fails_alone(serve):
    def behaviour(server, method, body):
        if method == "POST" and (body["prompt"] == "broken" or server.count() == 1):
            return ("raw", 200, b'{"choices": [tru')
        return ok(server, method, body)

    server = serve(behaviour)
    out = backend(server.url).generate(reqs("first", "x"))  # the first answer is malformed, its retry is not
    assert [len(row) for row in out] == [2, 2]
    with pytest.raises(RequestsFailed) as info:
        backend(server.url).generate(reqs("a", "broken", "c"))
    assert set(info.value.errors) == {1} and "invalid JSON" in str(info.value.errors[1])
    assert isinstance(info.value.errors[1], ServerError) and not isinstance(info.value.errors[1], RunError)
    assert [len(row) for row in info.value.outputs if row is not None] == [2, 2]


def test_fewer_choices_than_n_are_topped_up_one_sample_at_a_time(serve):
    server = serve(lambda server, method, body: ("json", 200, completion(body, n=1)))
    client = backend(server.url)
    out = client.generate(reqs("a", n=3))
    assert len(out[0]) == 3 and len({c.text for c in out[0]}) == 3  # each top-up seeded as its own sample
    assert [b["n"] for b in server.posts] == [3, 1, 1]
    assert client._ignores_n


def test_a_hung_server_stops_the_run_within_timeout_times_attempts(serve):
    server = serve(lambda server, method, body: ("hang",))
    start = time.monotonic()
    with pytest.raises(ServerUnavailable, match="no server answered"):
        backend(server.url, timeout=1.0, max_retries=1).generate(reqs("a", "b", "c"))
    elapsed = time.monotonic() - start
    assert elapsed < 10  # 2 attempts x 1 s + a 1 s probe; minutes before the whole-request deadline


def test_a_slow_drip_cannot_outlast_the_deadline(serve):
    server = serve(lambda server, method, body: ("drip", 0.1))  # a byte every 0.1 s: no read ever times out
    start = time.monotonic()
    with pytest.raises(ServerUnavailable):
        backend(server.url, timeout=1.0, max_retries=1).generate(reqs("a"))
    elapsed = time.monotonic() - start
    assert elapsed < 10  # a per-read timeout would wait for all 100,000 bytes (3 hours)


def test_a_request_that_hangs_alone_fails_alone_and_the_others_are_kept(serve):
    server = serve(
        lambda server, method, body: ("hang",) if body.get("prompt") == "stuck" else ok(server, method, body)
    )
    start = time.monotonic()
    with pytest.raises(RequestsFailed) as info:
        backend(server.url, timeout=1.0, max_retries=1).generate(reqs("a", "stuck", "c"))
    elapsed = time.monotonic() - start
    assert set(info.value.errors) == {1} and "deadline" in str(info.value.errors[1])
    assert [len(row) for row in info.value.outputs if row is not None] == [2, 2]
    assert elapsed < 10


# ------------------------------------------------------------------ through DartAdapter and datasets.map


def rows(n: int) -> datasets.Dataset:
    return datasets.Dataset.from_list(
        [{"problem": f"problem {i}", "solution": expert(2), "answer": "42"} for i in range(n)]
    )


def adapter(client: OpenAIServerBackend) -> DartAdapter:
    return DartAdapter(client, DartConfig(n_sim=2, n_explore=0, prompt_template=TEMPLATE), progress=False)


def test_a_rejected_request_fails_its_row_and_nothing_is_asked_twice(serve):
    def behaviour(server, method, body):
        if method == "POST" and body["prompt"].startswith("problem 1||"):
            return ("json", 400, {"error": "this prompt is not allowed"})
        return ok(server, method, body)

    server = serve(behaviour)
    out = rows(4).map(adapter(backend(server.url)), batched=True, batch_size=4, load_from_cache_file=False)
    assert out["dart_action"][1] == "error" and "HTTP 400" in out["dart_error"][1]
    assert all(a != "error" for i, a in enumerate(out["dart_action"]) if i != 1)
    prompts = [(b["prompt"], b["seed"]) for b in server.posts]
    assert len(prompts) == len(set(prompts)) == 4 * 3  # one request per (row, prefix): no row-by-row replay


def test_every_url_down_stops_the_map_instead_of_writing_error_rows(serve):
    dead = [serve(ok), serve(ok)]
    for server in dead:
        server.die()
    start = time.monotonic()
    with pytest.raises(ServerUnavailable, match="no server answered"):
        rows(3).map(adapter(backend([s.url for s in dead])), batched=True, batch_size=1, load_from_cache_file=False)
    assert time.monotonic() - start < 20


def test_death_mid_run_with_one_url_stops_the_run(serve):
    def behaviour(server, method, body):
        return ok(server, method, body)

    server = serve(behaviour)
    client = backend(server.url)
    calls = []

    def kill_after_first_batch(batch):
        calls.append(1)
        if len(calls) == 2:
            server.die()
        return adapt(batch)

    adapt = adapter(client)
    with pytest.raises(ServerUnavailable):
        rows(4).map(kill_after_first_batch, batched=True, batch_size=1, load_from_cache_file=False)
    assert server.count() == 3 and len(calls) == 2  # the first row was served, the second found the server gone


def test_death_of_one_of_two_urls_mid_run_loses_no_row(serve):
    first, second = serve(ok), serve(ok)

    def behaviour(server, method, body):
        if server.count() == 4:
            server.stopping.set()
            threading.Thread(target=server.die, daemon=True).start()  # dies with this request in flight
            return ("hang",)
        return ok(server, method, body)

    first.behaviour = behaviour
    out = rows(4).map(
        adapter(backend([first.url, second.url], max_retries=2)), batched=True, batch_size=1, load_from_cache_file=False
    )
    assert all(a != "error" for a in out["dart_action"]), out["dart_error"]
    # the second URL took over; the dying first server may still accept a request that races its
    # shutdown (seen once under load: 5), so its count is at least, not exactly, the 4 it served
    assert first.count() >= 4 and second.count() >= 8


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_refusal_every_request_would_get_stops_the_run_at_once(serve, status):
    server = serve(lambda server, method, body: ("json", status, {"error": "no such model / bad key"}))
    with pytest.raises(ServerUnavailable, match=rf"HTTP {status}.*check the URL, the model name"):
        backend(server.url, max_retries=3).generate(reqs("a"))
    assert server.count() == 1  # not retried: another attempt would get the same answer


# ------------------------------------------------------------------ credentials, redirects, odd answers

PASSWORD = "s3cr3t%2FPLANTED-pw"  # as written in the URL; the server gets it decoded ("/")
SECRETS = ("s3cr3t%2FPLANTED-pw", "s3cr3t/PLANTED-pw", "PLANTED")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def assert_no_secret(text: str, *extra: str) -> None:
    for secret in (*SECRETS, *extra):
        assert secret not in text, f"{secret!r} leaked: ...{text[max(0, text.find(secret) - 80) :][:200]}..."


def with_password(url: str, user: str = "alice", password: str = PASSWORD) -> str:
    return url.replace("http://", f"http://{user}:{password}@")


def test_url_credentials_are_sent_as_basic_auth_and_masked_everywhere(serve, caplog):
    def behaviour(server, method, body):
        if method == "POST" and body["prompt"] == "echo":  # a server that echoes the request's headers
            return ("json", 400, {"error": f"refused, you sent {dict(server.current.headers)}"})
        if method == "POST" and body["prompt"] == "broken":
            return ("raw", 200, b'{"choices": [tru')
        return ok(server, method, body)

    server = serve(behaviour)
    client = backend(with_password(server.url))
    with pytest.raises(RequestsFailed) as info:
        client.generate(reqs("a", "echo", "broken"))
    token = basic("alice", "s3cr3t/PLANTED-pw")
    assert server.auth and set(server.auth) == {token}  # every request, retries included
    assert len(info.value.outputs[0]) == 2 and set(info.value.errors) == {1, 2}
    shown = [repr(client), str(client.base_urls), client.fingerprint, caplog.text]
    shown += [str(err) for err in info.value.errors.values()]
    for text in shown:
        assert_no_secret(text, token.split()[1])
    assert f"http://***@127.0.0.1:{server.url.rsplit(':', 1)[1]}" in repr(client)
    assert "***@127.0.0.1" in str(info.value.errors[1]) and "Authorization" in str(info.value.errors[1])
    assert client.fingerprint == backend(server.url).fingerprint  # credentials are not the model's identity
    with pytest.raises(ValueError, match="not both") as both:
        backend(with_password(server.url), api_key="key-PLANTED")
    assert_no_secret(str(both.value))

    server.die()
    with pytest.raises(ServerUnavailable, match=r"no server answered") as down:
        backend(with_password(server.url)).generate(reqs("a"))
    assert_no_secret(str(down.value))
    assert "***@127.0.0.1" in str(down.value)


def test_a_redirect_is_not_followed_and_stops_the_run_with_its_target_masked(serve):
    target = f"http://bob:{PASSWORD}@elsewhere.example:8000/v1/completions"
    server = serve(lambda server, method, body: ("json", 307, {}, {"Location": target}))
    with pytest.raises(
        ServerUnavailable, match=r"redirect not followed: HTTP 307 .* to http://\*\*\*@elsewhere"
    ) as info:
        backend(server.url, max_retries=3).generate(reqs("a"))
    assert_no_secret(str(info.value))
    assert server.count() == 1  # not retried: every request would be redirected alike


def test_duplicate_choice_indices_count_once_and_the_missing_samples_are_topped_up(serve):
    def behaviour(server, method, body):
        answer = completion(body)
        answer["choices"] = [dict(answer["choices"][0]) for _ in range(body["n"])]  # n copies of choice 0
        return ("json", 200, answer)

    server = serve(behaviour)
    out = backend(server.url).generate(reqs("a", n=3))
    assert len(out[0]) == 3 and len({c.text for c in out[0]}) == 3  # three samples, not one counted thrice
    assert [b["n"] for b in server.posts] == [3, 1, 1]


def test_a_response_body_over_the_cap_fails_its_request_alone(serve):
    cap = OpenAIServerBackend.max_body_bytes({"n": 2, "max_tokens": 8})

    def behaviour(server, method, body):
        answer = completion(body) if method == "POST" else {"data": []}
        if method == "POST" and body["prompt"] == "huge":
            answer["choices"][0]["text"] = "x" * cap
        return ("json", 200, answer)

    server = serve(behaviour)
    with pytest.raises(RequestsFailed) as info:
        backend(server.url, max_retries=2).generate(reqs("a", "huge"))
    assert set(info.value.errors) == {1} and "exceeds the cap" in str(info.value.errors[1])
    assert "n=2, max_tokens=8" in str(info.value.errors[1]) and len(info.value.outputs[0]) == 2
    assert server.count() == 2  # not asked again: the same request would get the same answer


@pytest.mark.parametrize("where", ["url", "api_key"])
def test_a_whole_adapt_run_writes_the_planted_secret_nowhere(serve, tiny_student, tmp_path, where):
    """`dart-hf adapt --server_urls` with a password in the URL (or a key in the environment): every
    file the run writes (dataset arrow files, parquet, stats.json, report.html, datasets' caches),
    the dataset card and everything printed are searched for the secret."""
    key = "key-PLANTED-0123456789"
    expected = basic("alice", "s3cr3t/PLANTED-pw") if where == "url" else f"Bearer {key}"

    def behaviour(server, method, body):
        if server.current.headers.get("Authorization") != expected:
            return ("json", 401, {"error": "who are you?"})
        if method == "GET":
            return ("json", 200, {"data": []})
        i = int(re.search(r"What is (\d+) \+", body["prompt"]).group(1))
        if i == 1:  # refused, echoing what the client sent: the row errors, its reason names the URL
            sent = dict(server.current.headers)
            return ("json", 400, {"error": f"problem 1 is not allowed; you sent {sent}"})
        choices = [
            {"index": k, "text": f" So the answer is \\boxed{{{2 * i}}}", "finish_reason": "stop"}
            for k in range(body["n"])
        ]
        return ("json", 200, {"choices": choices})

    server = serve(behaviour)
    data, out = tmp_path / "data" / "expert.jsonl", tmp_path / "out"
    data.parent.mkdir()
    rows = [
        {"problem": f"What is {i} + {i}?", "solution": f"Add.\n\n{i} + {i} = {2 * i}.\n\n\\boxed{{{2 * i}}}"}
        for i in range(3)
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_CACHE=str(tmp_path / "hf_cache"), DART_TEST_KEY=key)
    args = ["--dataset_name", str(data), "--student", tiny_student, "--output_dir", str(out), "--n_sim", "2"]
    args += ["--n_explore", "2", "--max_new_tokens", "16", "--summary", "table", "--chunk_size", "2"]
    if where == "url":
        args += ["--server_urls", with_password(server.url)]
    else:
        args += ["--server_urls", server.url, "--api_key_env", "DART_TEST_KEY"]
    proc = subprocess.run(
        [sys.executable, "-m", "dart_hf", "adapt", *args], env=env, capture_output=True, text=True, timeout=100
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert server.auth and set(server.auth) == {expected}

    adapted = datasets.load_from_disk(str(out / "dataset"))
    assert adapted["dart_action"][1] == "error" and "HTTP 400" in adapted["dart_error"][1]
    assert all(a != "error" for i, a in enumerate(adapted["dart_action"]) if i != 1)
    assert "***" in adapted["dart_error"][1]  # the echoed header (and for "url" the URL) reached the row, masked
    secrets = [key, expected.split()[1]]
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".arrow") for p in written) and (out / "report.html").exists()
    assert (out / "stats.json").exists() and (out / "dataset.parquet").exists()
    for path in written:
        blob = path.read_bytes()
        for secret in (*SECRETS, *secrets):
            assert secret.encode() not in blob, f"{secret!r} in {path}"
    from dart_hf.cards import dataset_card

    card = str(dataset_card(json.loads((out / "stats.json").read_text()), repo_id="user/adapted"))
    for text in (proc.stdout, proc.stderr, card):
        assert_no_secret(text, *secrets)
