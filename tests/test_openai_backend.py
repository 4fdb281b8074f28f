"""OpenAIServerBackend against a real `transformers serve` process on loopback (no mocks).

`transformers serve` is a deliberately limited peer: on `/v1/completions` it ignores `n` and
`logprobs`, so the backend must top up choices and work without log-probs.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import datasets
import pytest

from dart_hf import DartAdapter, DartConfig
from dart_hf.backends.base import Completion, GenerationBackend, GenerationRequest, RequestsFailed
from dart_hf.backends.openai import OpenAIServerBackend, ServerError, ServerUnavailable
from dart_hf.selection import select_continuation

_MISSING = [m for m in ("fastapi", "uvicorn", "openai") if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(
    bool(_MISSING), reason=f"`transformers serve` needs {_MISSING}: pip install 'transformers[serving]'"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _transformers_cli() -> str:
    local = Path(sys.executable).parent / "transformers"
    return str(local) if local.exists() else (shutil.which("transformers") or "")


@pytest.fixture(scope="session")
def server(tiny_student, tmp_path_factory):
    """`transformers serve <tiny_student>` on a free loopback port; yields (base_url, model)."""
    cli = _transformers_cli()
    if not cli:
        pytest.skip("the `transformers` command-line tool is not installed")
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    cmd = [
        cli,
        "serve",
        tiny_student,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "cpu",
        "--log-level",
        "warning",
    ]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if json.loads(resp.read()).get("status") == "ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve not ready after 60 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield url, tiny_student
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _dead_url() -> str:
    return f"http://127.0.0.1:{_free_port()}"  # nothing listens there


def test_is_a_generation_backend_with_url_free_fingerprint(server):
    url, model = server
    a = OpenAIServerBackend(url, model)
    b = OpenAIServerBackend([_dead_url(), url + "/v1/"], model)
    assert isinstance(a, GenerationBackend)
    assert a.fingerprint == b.fingerprint == f"openai:{model}"
    assert b.base_urls[1] == url
    assert a.tokenizer is not None and a.context_length is None


def test_tops_up_to_exactly_n_without_logprobs(server):
    url, model = server
    backend = OpenAIServerBackend(url, model, max_concurrency=4)
    requests = [
        GenerationRequest("What is 2 + 3?", n=3, seed=1, max_new_tokens=8),
        GenerationRequest("Compute 12 times 7.", n=1, seed=2, max_new_tokens=8),
        GenerationRequest("Half of 1?", n=4, seed=3, max_new_tokens=8),
    ]
    out = backend.generate(requests)
    assert [len(row) for row in out] == [3, 1, 4]  # although the server answers one choice per request
    assert backend._ignores_n
    for row in out:
        assert all(isinstance(c, Completion) and c.logprob is None for c in row)
        assert all(c.finish_reason in ("stop", "length", "answer") and 0 < c.num_tokens <= 8 for c in row)
    assert len({c.text for c in out[2]}) > 1  # sampled, not greedy: generation_config reached the server
    index, policy = select_continuation(out[0], "logprob", seed=0)
    assert policy == "shortest" and 0 <= index < 3


def test_same_seed_same_samples_when_sequential(server):
    # transformers serve seeds torch's global RNG per request, so concurrent requests to it race:
    # reproducible samples from it need max_concurrency=1 (vLLM/sglang seed per request).
    url, model = server
    requests = [GenerationRequest("What is 2 + 3?", n=3, seed=7, max_new_tokens=6)]
    first = OpenAIServerBackend(url, model, max_concurrency=1).generate(requests)  # asks n=3, then tops up
    warm = OpenAIServerBackend(url, model, max_concurrency=1)
    warm._ignores_n = True  # goes straight to one request per sample
    assert [c.text for c in warm.generate(requests)[0]] == [c.text for c in first[0]]
    # a request continuing the stream (adaptive sampling's later rounds) gets samples 1 and 2 again
    rest = GenerationRequest("What is 2 + 3?", n=2, seed=7, max_new_tokens=6, first_sample=1)
    assert [c.text for c in warm.generate([rest])[0]] == [c.text for c in first[0][1:]]


def test_dead_url_fails_over_to_the_live_one(server):
    url, model = server
    backend = OpenAIServerBackend([_dead_url(), url], model, max_retries=2, backoff=0.05, timeout=10)
    start = time.monotonic()
    out = backend.generate([GenerationRequest("What is 2 + 3?", n=2, seed=s, max_new_tokens=4) for s in range(4)])
    assert [len(row) for row in out] == [2] * 4
    assert time.monotonic() - start < 20


def test_dead_server_fails_the_run_after_retries_with_a_clear_error():
    dead = _dead_url()
    backend = OpenAIServerBackend(dead, "some/model", tokenizer=object(), max_retries=2, backoff=0.05, timeout=2)
    start = time.monotonic()
    with pytest.raises(ServerUnavailable, match=r"no server answered .*3 attempts.*127\.0\.0\.1"):
        backend.generate([GenerationRequest("hi", n=2, seed=0, max_new_tokens=4)])
    assert time.monotonic() - start < 5


def test_client_errors_are_not_retried(server):
    url, _ = server
    backend = OpenAIServerBackend(url, "not-the-served-model", tokenizer=object(), max_retries=3, backoff=1.0)
    start = time.monotonic()
    with pytest.raises(RequestsFailed, match="rejected the request: HTTP 400") as info:
        backend.generate([GenerationRequest("hi", n=1, seed=0, max_new_tokens=4)])
    assert time.monotonic() - start < 1.0
    assert isinstance(info.value.errors[0], ServerError) and info.value.outputs == [None]  # this request's failure only


def test_answer_cut_and_logprobs_parsing():
    backend = OpenAIServerBackend("http://127.0.0.1:9", "m", tokenizer=object())
    response = {  # the shape vLLM returns with logprobs=1
        "choices": [
            {
                "index": 1,
                "text": "so 4",
                "finish_reason": "length",
                "logprobs": {"tokens": ["so", " 4"], "token_logprobs": [-1.0, -3.0]},
            },
            {
                "index": 0,
                "text": r"x = \boxed{4}. Then more",
                "finish_reason": "length",
                "logprobs": {
                    "tokens": ["x", " =", r" \boxed{", "4", "}", ".", " Then", " more"],
                    "token_logprobs": [-1.0, -1.0, -1.0, -1.0, -2.0, -9.0, -9.0, -9.0],
                },
            },
        ],
        "usage": {"completion_tokens": 10},
    }
    first, second = backend._completions(response)
    assert first.text == r"x = \boxed{4}" and first.finish_reason == "answer"
    assert first.num_tokens == 5 and first.logprob == pytest.approx(-1.2)
    assert second.text == "so 4" and second.finish_reason == "length" and second.logprob == pytest.approx(-2.0)


def test_answer_cut_keeps_the_whole_closing_token(tiny_student):
    """A server token "}." that closes the box stays whole: the kept text is the tokens sampled, never half of one."""
    from transformers import AutoTokenizer

    choice = {
        "index": 0,
        "text": r"x = \boxed{4}. Then more",
        "finish_reason": "length",
        "logprobs": {
            "tokens": ["x", " =", r" \boxed{", "4", "}.", " Then", " more"],
            "token_logprobs": [-1.0, -1.0, -1.0, -1.0, -2.0, -9.0, -9.0],
        },
    }
    backend = OpenAIServerBackend("http://127.0.0.1:9", "m", tokenizer=object())
    (c,) = backend._completions({"choices": [choice]})
    assert (c.text, c.num_tokens, c.finish_reason) == (r"x = \boxed{4}.", 5, "answer")
    assert c.logprob == pytest.approx(-1.2)

    # No server tokens: the boundary comes from the student's tokenizer, and the cut is on one of its token ends
    tok = AutoTokenizer.from_pretrained(tiny_student)
    bare = {"index": 0, "text": r"so \boxed{42}. Then more text", "finish_reason": "length"}
    (c,) = OpenAIServerBackend("http://127.0.0.1:9", "m", tokenizer=tok)._completions({"choices": [bare]})
    ends = [
        end for _, end in tok(bare["text"], add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    ]
    brace = bare["text"].index("}") + 1
    assert c.finish_reason == "answer" and len(c.text) == min(e for e in ends if e >= brace)
    assert c.text.startswith(r"so \boxed{42}") and c.num_tokens == len(
        tok(c.text, add_special_tokens=False)["input_ids"]
    )

    # Neither: never cut inside a token; the text is kept whole, as the server ended it
    (c,) = backend._completions({"choices": [bare]})
    assert (c.text, c.finish_reason) == (bare["text"], "length")


@pytest.mark.parametrize("bad", ["oops", float("nan"), float("inf"), [1.0], {"x": 1}])
def test_a_bad_logprob_is_missing_for_that_completion_only(bad):
    backend = OpenAIServerBackend("http://127.0.0.1:9", "m", tokenizer=object())
    response = {
        "choices": [
            {"index": 0, "text": "a b", "logprobs": {"tokens": ["a", " b"], "token_logprobs": [-1.0, bad]}},
            {"index": 1, "text": "c d", "logprobs": {"tokens": ["c", " d"], "token_logprobs": [-1.0, -3.0]}},
        ],
    }
    first, second = backend._completions(response)
    assert first.logprob is None and first.num_tokens == 2  # the token count is still the server's
    assert second.logprob == pytest.approx(-2.0)


def test_adapter_maps_a_dataset_end_to_end(server):
    url, model = server
    backend = OpenAIServerBackend([url, url], model)  # two URLs for the same server: round-robin
    ds = datasets.Dataset.from_list(
        [
            {"problem": "What is 2 + 3?", "solution": "We add.\n\n2 + 3 = 5.\n\nSo \\boxed{5}."},
            {"problem": "What is 4 * 2?", "solution": "Multiply.\n\n4 * 2 = 8.\n\n\\boxed{8}"},
        ]
    )
    adapter = DartAdapter(backend, DartConfig(n_sim=2, max_new_tokens=8), progress=False)
    out = ds.map(adapter, batched=True, load_from_cache_file=False)
    assert len(out) == len(ds)
    assert all(a in ("imitate", "explore", "fallback") for a in out["dart_action"])
    assert backend.requests_sent > 0


def test_a_verifiers_stop_rule_cuts_real_server_texts_on_token_boundaries(server):
    """The code stop rule sees each request's prompt: a prompt that ends with the closed answer block keeps one token."""
    from dart_hf.verifiers.code import CodeBlockStopper

    url, model = server
    requests = [
        GenerationRequest("Complete f.\n```python\ndef f():\n    return 1\n```\n", n=1, seed=5, max_new_tokens=6),
        GenerationRequest("What is 2 + 3?", n=1, seed=5, max_new_tokens=6),  # no block: nothing to stop at
    ]
    (whole_closed,), (whole_open,) = OpenAIServerBackend(url, model, max_concurrency=1, stop_at_answer=False).generate(
        requests
    )
    code = OpenAIServerBackend(url, model, max_concurrency=1, stop_at_answer=CodeBlockStopper)
    assert code.fingerprint == f"openai:{model}|stop_rule=code_block"
    (cut,), (uncut,) = code.generate(requests)
    assert whole_closed.text.strip()  # the tiny student wrote something after the block
    first_end = code.tokenizer(whole_closed.text, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ][0][1]
    assert (cut.text, cut.num_tokens, cut.finish_reason) == (whole_closed.text[:first_end], 1, "answer")
    assert (uncut.text, uncut.finish_reason) == (whole_open.text, whole_open.finish_reason)
