"""Rows never wait for each other: the adapter drives a stream of requests, and the schedule changes no row.

The `rounds` schedule (a backend seen through `generate` only, `RoundStream`) is how the adapter ran
before streams; every test here checks that the streaming schedule gives the same rows, and the
loopback tests check with a real server process that it keeps the engine busier.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from dart_hf import DartAdapter, DartConfig
from dart_hf.backends.base import GenerationRequest, RoundStream, open_stream
from dart_hf.backends.transformers import TransformersBackend
from dart_hf.tasks.planted_gap import PlantedGapTask
from tests.scripted import TEMPLATE, ScriptedBackend, expert

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ("dart_action", "dart_gap_step", "dart_solution", "dart_step_success", "dart_step_samples", "dart_rollouts")


class RoundsOnly:
    """A backend seen through `generate` only: the adapter runs it round by round."""

    def __init__(self, backend):
        self.backend = backend
        self.fingerprint = backend.fingerprint
        self.tokenizer = backend.tokenizer
        self.context_length = backend.context_length

    def generate(self, requests):
        return self.backend.generate(requests)


class ShuffledStream:
    """A scripted backend's stream that answers one request at a time, in a seeded random order."""

    def __init__(self, backend, seed):
        self.backend, self.rng, self.queued = backend, random.Random(seed), []
        self.collects = 0

    def submit(self, key, request):
        self.queued.append((key, request))

    def collect(self):
        if not self.queued:
            return []
        self.collects += 1
        key, request = self.queued.pop(self.rng.randrange(len(self.queued)))
        return [(key, self.backend.generate([request])[0])]

    def close(self):
        self.queued = []


class PerRowScripted(ScriptedBackend):
    """A scripted student per problem ("P3" gets `scripts["P3"]`): rows that differ, in one backend."""

    def __init__(self, scripts, streaming):
        super().__init__(sim={})
        self.scripts, self.streaming, self.opened = scripts, streaming, None

    def generate(self, requests):
        out = []
        for r in requests:
            self.sim = self.scripts[r.prompt.split("||", 1)[0]]
            out += super().generate([r])
        return out

    def __getattr__(self, name):
        if name == "stream" and self.__dict__.get("streaming"):
            return self._open
        raise AttributeError(name)

    def _open(self):
        self.opened = ShuffledStream(self, seed=5)
        return self.opened


def _script(rng):
    """Outcomes per prefix for 6 steps: success high except at a random gap (or none), as a planted task gives."""
    gap = rng.choice([None, 2, 3, 5])
    return {t: [rng.random() < (0.1 if gap is not None and t == gap else 0.9) for _ in range(4)] for t in range(7)}


def _rows(n):
    return [{"problem": f"P{i}", "solution": expert(6, " so \\boxed{42}"), "answer": "42"} for i in range(n)]


def _same(a, b):
    return json.dumps({c: a[c] for c in COLUMNS}, default=repr) == json.dumps({c: b[c] for c in COLUMNS}, default=repr)


@pytest.mark.parametrize(
    "switches",
    [dict(), dict(early_stop=True), dict(adaptive_sampling=True), dict(early_stop=True, adaptive_sampling=True)],
)
def test_answers_in_any_order_give_the_rows_of_the_round_schedule(switches):
    """Each row's plan sees only its own rollouts: requests coming back one at a time, shuffled, change nothing."""
    rng = random.Random(7)
    rows = _rows(12)
    scripts = {row["problem"]: _script(rng) for row in rows}
    config = DartConfig(prompt_template=TEMPLATE, n_sim=4, n_explore=2, seed=3, **switches)
    rounds_backend, stream_backend = PerRowScripted(scripts, False), PerRowScripted(scripts, True)
    rounds = DartAdapter(rounds_backend, config, progress=False).adapt_rows(rows)
    streamed = DartAdapter(stream_backend, config, progress=False).adapt_rows(rows)
    assert isinstance(open_stream(rounds_backend), RoundStream)
    assert stream_backend.opened.collects == len(stream_backend.calls)  # one request back at a time
    assert sorted(rounds_backend.calls) == sorted(stream_backend.calls)  # the same requests, in another order
    assert rounds_backend.calls != stream_backend.calls
    assert len({r["dart_gap_step"] for r in rounds}) > 1  # the rows differ
    for a, s in zip(rounds, streamed):
        assert _same(a, s)


def test_rows_move_on_while_other_rows_wait():
    """A row's next round goes out while other rows' requests are still queued: rounds do not wait for each other."""
    rng = random.Random(1)
    rows = _rows(6)
    backend = PerRowScripted({row["problem"]: _script(rng) for row in rows}, True)
    config = DartConfig(prompt_template=TEMPLATE, n_sim=4, n_explore=0, early_stop=True, adaptive_sampling=True)
    events = []  # ("submit", problem, requests of other rows queued) or ("collect",)
    submit, collect = ShuffledStream.submit, ShuffledStream.collect

    def recorded_submit(self, key, request):
        events.append(("submit", request.prompt.split("||", 1)[0], len(self.queued)))
        submit(self, key, request)

    def recorded_collect(self):
        events.append(("collect",))
        return collect(self)

    ShuffledStream.submit, ShuffledStream.collect = recorded_submit, recorded_collect
    try:
        out = DartAdapter(backend, config, progress=False).adapt_rows(rows)
    finally:
        ShuffledStream.submit, ShuffledStream.collect = submit, collect
    assert len(out) == len(rows) and all(o["dart_action"] != "error" for o in out)
    first_collect = events.index(("collect",))
    assert {e[1] for e in events[:first_collect]} == {row["problem"] for row in rows}  # every row starts at once
    later = [e for e in events[first_collect:] if e[0] == "submit"]
    assert len(later) > len(rows)
    assert all(queued > 0 for _, _, queued in later[: len(later) // 2])  # next rounds join other rows' waiting ones


def test_round_stream_isolates_the_request_that_breaks_a_call():
    class Flaky(ScriptedBackend):
        def generate(self, requests):
            if any("BAD" in r.prompt for r in requests):
                raise ValueError("cannot continue this one")
            return super().generate(requests)

    stream = RoundStream(Flaky(sim={0: [True] * 4}))
    good = GenerationRequest(prompt="P||", n=4, seed=1, tag="sim")
    bad = GenerationRequest(prompt="BAD||", n=4, seed=1, tag="sim")
    stream.submit("a", good)
    stream.submit("b", bad)
    got = dict(stream.collect())
    assert len(got["a"]) == 4 and isinstance(got["b"], ValueError)
    assert stream.collect() == []


# ---------------------------------------------------------------- a real (tiny) student in-process


@pytest.fixture(scope="module")
def planted_rows():
    return PlantedGapTask().generate(4, seed=2)


def test_in_process_stream_gives_the_rows_of_the_round_schedule(tiny_student, planted_rows):
    """Continuous batching (rows join the batch as others finish; batch 5 forces merges) changes no row."""
    config = DartConfig(
        n_sim=3, n_explore=2, max_new_tokens=10, temperature=1.0, early_stop=True, adaptive_sampling=True
    )
    streamed_backend = TransformersBackend(tiny_student, device="cpu", batch_size=5)
    rows = [planted_rows[i] for i in range(len(planted_rows))]
    streamed = DartAdapter(streamed_backend, config, progress=False).adapt_rows(rows)
    alone = [
        DartAdapter(
            RoundsOnly(TransformersBackend(tiny_student, device="cpu", batch_size=1)), config, progress=False
        ).adapt_rows([row])[0]
        for row in rows
    ]
    assert [o["dart_action"] for o in streamed].count("error") == 0
    for s, a in zip(streamed, alone):
        assert _same(s, a)
    assert streamed_backend.tokens_generated == sum(o["dart_tokens_generated"] for o in streamed)


def test_in_process_stream_refills_the_batch(tiny_student):
    """Samples wait for free rows and join between steps; the batch never holds more than `batch_size`."""
    from dart_hf.backends.transformers.decode import DecodeBatch

    backend = TransformersBackend(tiny_student, device="cpu", batch_size=4)
    sizes, step = [], DecodeBatch.step

    def counted(self):
        sizes.append(len(self.live))
        return step(self)

    stream = backend.stream(refill=1)
    requests = [GenerationRequest(prompt=f"Count {i}:", n=3, seed=i, max_new_tokens=6 + 3 * i) for i in range(5)]
    for i, r in enumerate(requests):
        stream.submit(i, r)
    DecodeBatch.step = counted
    try:
        got = {}
        while len(got) < len(requests):
            got.update(stream.collect())
    finally:
        DecodeBatch.step = step
    assert max(sizes) == 4 and sizes.count(4) > len(sizes) // 2  # refilled, not drained to the end
    reference = backend.generate(requests)  # the same requests again, all at once
    for i, r in enumerate(requests):
        assert [c.text for c in got[i]] == [c.text for c in reference[i]]
        assert len(got[i]) == r.n


# ---------------------------------------------------------------- a real server process


def _loopback(slots, token_ms):
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "loopback_server.py"),
            "--slots",
            str(slots),
            "--token_ms",
            str(token_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    port = proc.stdout.readline().split()[1]
    return proc, f"http://127.0.0.1:{port}"


def _post(url):
    req = urllib.request.Request(url, data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=10) as response:
        return json.loads(response.read())


def _busy(url):
    with urllib.request.urlopen(url + "/stats", timeout=10) as response:
        return json.loads(response.read())["busy_slot_s"]


class WordTokenizer:
    chat_template = None

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}


def test_stream_keeps_a_loopback_engine_busier_than_rounds_with_the_same_rows():
    """A real server process with 8 slots and 20 ms per token: the adapter's stream fills it, rounds leave it idle."""
    from dart_hf.backends.openai import OpenAIServerBackend
    from dart_hf.verification import MathVerifier

    problems = PlantedGapTask().generate(16, seed=5)
    proc, url = _loopback(slots=8, token_ms=20)
    verifier = MathVerifier()
    verifier.judge_many([("1", "2")])  # its worker starts before the clock
    try:
        backend = OpenAIServerBackend(url, "loopback-student", WordTokenizer(), max_concurrency=16, timeout=60)
        config = DartConfig(
            n_sim=4, n_explore=0, max_new_tokens=64, early_stop=True, adaptive_sampling=True,
            prompt_template="{problem}\n\nSolution:{prefix}",
        )  # fmt: skip
        occupancy, outs = {}, {}
        for name, b in (("rounds", RoundsOnly(backend)), ("stream", backend)):
            _post(url + "/reset")
            import time

            start = time.perf_counter()
            outs[name] = problems.map(
                DartAdapter(b, config, progress=False, verifier=verifier), batched=True, load_from_cache_file=False
            )
            occupancy[name] = _busy(url) / (8 * (time.perf_counter() - start))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        verifier.close()
    assert len(outs["stream"]) == len(problems)
    assert "error" not in outs["stream"]["dart_action"]
    for column in COLUMNS:  # as JSON: NaN (an unsampled prefix) equals NaN
        assert json.dumps(outs["stream"][column], default=repr) == json.dumps(outs["rounds"][column], default=repr)
    assert sum(g > 0 for g in outs["stream"]["dart_gap_step"]) >= 3  # the loopback student fails at planted gaps
    assert occupancy["stream"] > occupancy["rounds"] * 1.3, occupancy  # measured 0.7-0.8 vs 0.2-0.4 when shared


def test_loopback_server_honours_n_and_logprobs():
    from dart_hf.backends.openai import OpenAIServerBackend

    proc, url = _loopback(slots=4, token_ms=1)
    try:
        backend = OpenAIServerBackend(url, "loopback-student", WordTokenizer(), max_concurrency=4, timeout=30)
        prompt = "Ann has 7 apples. She buys 5 more. How many apples does Ann have now?\n\nSolution:"
        (got,) = backend.generate([GenerationRequest(prompt=prompt, n=4, seed=11, max_new_tokens=64)])
        assert backend.requests_sent == 1 and len(got) == 4  # all four choices in one request
        assert all(c.logprob is not None and c.num_tokens == len(c.text.split()) for c in got)
        (again,) = backend.generate([GenerationRequest(prompt=prompt, n=4, seed=11, max_new_tokens=64)])
        assert [c.text for c in again] == [c.text for c in got]
        assert sum("\\boxed{12}" in c.text for c in got) >= 2
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert os.path.exists(ROOT / "benchmarks" / "loopback_server.py")
