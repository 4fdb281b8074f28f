"""A loopback OpenAI-compatible server that behaves like a continuous-batching engine, for scheduling measurements.

    python benchmarks/loopback_server.py --slots 64 --token_ms 4      # prints "PORT <n>", then serves

The engine decodes at most `--slots` sequences at once and spends `--token_ms` per step, in which
every running sequence gets one token (vLLM's and sglang's shape, with a fixed time per step); a
request's `n` choices are `n` sequences, queued until slots are free, and its answer is sent when
its last sequence ends. `GET /stats` returns the busy slot-seconds since the last `POST /reset`,
which is what slot occupancy is computed from.

The student it plays solves the planted-gap task's word problems (`dart_hf.tasks.planted_gap`):
it computes the answer from the problem text and states it with probability 0.9, except right
after an expert step that leaves the running total as a product (the planted gap), where it
succeeds with probability 0.1. A choice is `k` words (`k` drawn from 8..64) ending in
`\\boxed{answer}`; everything is drawn from the request's seed, the choice index and the prompt, so
the same request gets the same answer whenever it comes. Log-probs are returned per word.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GAIN = re.compile(r"\b(?:buys|finds|gets|is given) (\d+) more\b")
LOSS = re.compile(r"\b(?:gives away|loses|sells|uses) (\d+)\b")
START = re.compile(r"\bhas (\d+) ")
PRODUCT_LEFT = re.compile(r"= \d+ × \d+\s*$")  # the planted step: the running total written as a product


def answer_of(problem: str) -> int:
    """The planted-gap problem's answer, read from its sentences in order."""
    start = START.search(problem)
    value = int(start.group(1)) if start else 0
    for sentence in problem.split(". "):
        gain, loss = GAIN.search(sentence), LOSS.search(sentence)
        if gain:
            value += int(gain.group(1))
        elif loss:
            value -= int(loss.group(1))
    return value


def choice(prompt: str, seed: int, index: int, max_tokens: int) -> tuple[str, int, str]:
    """(text, tokens, finish reason) of one choice: a pure function of the request."""
    problem, _, prefix = prompt.partition("\n\nSolution:")
    rng = random.Random(f"{seed}|{index}|{prompt}")
    p_success = 0.1 if PRODUCT_LEFT.search(prefix) else 0.9
    answer = answer_of(problem)
    said = answer if rng.random() < p_success else answer + rng.choice((-2, -1, 1, 2))
    tokens = rng.randint(8, 64)
    if tokens > max_tokens:
        return " ".join(["step"] * max_tokens), max_tokens, "length"
    return " ".join(["step"] * (tokens - 1) + [f"\\boxed{{{said}}}"]), tokens, "stop"


class Engine:
    """`slots` sequences decode together, one token per `token_s`; the rest wait in a queue."""

    def __init__(self, slots: int, token_s: float) -> None:
        self.slots, self.token_s = slots, token_s
        self.cond = threading.Condition()
        self.waiting: deque = deque()
        self.busy_slot_s = 0.0
        self.tokens = 0
        self.since = time.perf_counter()
        self.timeline: list[float] = []  # occupancy in each second since the last reset
        threading.Thread(target=self._run, daemon=True).start()

    def run(self, lengths: list[int]) -> None:
        """Decode sequences of these lengths; return when all have ended."""
        done = threading.Event()
        group = {"left": len(lengths), "done": done}
        with self.cond:
            for n in lengths:
                self.waiting.append([n, group])
            self.cond.notify()
        done.wait()

    def reset(self) -> None:
        with self.cond:
            self.busy_slot_s, self.tokens, self.since, self.timeline = 0.0, 0, time.perf_counter(), []

    def stats(self) -> dict:
        with self.cond:
            return {
                "busy_slot_s": self.busy_slot_s,
                "tokens": self.tokens,
                "slots": self.slots,
                "seconds": time.perf_counter() - self.since,
                "timeline": [round(x, 2) for x in self.timeline],
            }

    def _run(self) -> None:
        active: list = []
        while True:
            with self.cond:
                while not active and not self.waiting:
                    self.cond.wait()
                began = time.perf_counter()
                while self.waiting and len(active) < self.slots:
                    active.append(self.waiting.popleft())
            time.sleep(max(0.0, began + self.token_s - time.perf_counter()))
            took = time.perf_counter() - began  # at least `token_s`; more when the machine is busy
            ended = []
            with self.cond:
                self.busy_slot_s += len(active) * took
                second = int(began - self.since)
                self.timeline.extend([0.0] * (second + 1 - len(self.timeline)))
                self.timeline[second] += len(active) * took / self.slots
                self.tokens += len(active)
                for seq in active:
                    seq[0] -= 1
                    if seq[0] <= 0:
                        ended.append(seq)
                active = [seq for seq in active if seq[0] > 0]
            for _, group in ended:
                group["left"] -= 1
                if group["left"] == 0:
                    group["done"].set()


def make_handler(engine: Engine, model: str):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, payload: dict, status: int = 200) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send({"object": "list", "data": [{"id": model, "object": "model"}]})
            elif self.path == "/stats":
                self._send(engine.stats())
            else:
                self._send({"error": "not found"}, 404)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.path == "/reset":
                engine.reset()
                self._send({"ok": True})
                return
            if self.path != "/v1/completions":
                self._send({"error": "not found"}, 404)
                return
            n, seed = int(body.get("n", 1)), int(body.get("seed", 0))
            drawn = [choice(body["prompt"], seed, i, int(body.get("max_tokens", 16))) for i in range(n)]
            engine.run([tokens for _, tokens, _ in drawn])
            choices = []
            for i, (text, _, reason) in enumerate(drawn):
                words = text.split(" ")
                words = words[:1] + [" " + w for w in words[1:]]  # tokens that concatenate to the text
                logprobs = {"tokens": words, "token_logprobs": [-0.5 - 0.01 * (k % 7) for k in range(len(words))]}
                choices.append({"index": i, "text": text, "finish_reason": reason, "logprobs": logprobs})
            usage = {"completion_tokens": sum(t for _, t, _ in drawn)}
            self._send({"object": "text_completion", "model": model, "choices": choices, "usage": usage})

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed as 'PORT <n>')")
    parser.add_argument("--slots", type=int, default=64, help="sequences the engine decodes at once")
    parser.add_argument("--token_ms", type=float, default=4.0, help="milliseconds per decode step")
    parser.add_argument("--model", default="loopback-student")
    args = parser.parse_args(argv)
    engine = Engine(args.slots, args.token_ms / 1000)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(engine, args.model))
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # pragma: no cover
        pass
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
