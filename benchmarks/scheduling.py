"""Does wall time follow tokens? Slot occupancy of a continuous-batching engine over an adapt, per gap search.

    python benchmarks/scheduling.py                       # 240 planted-gap rows, loopback server + in-process
    python benchmarks/scheduling.py --n 400 --slots 64 --token_ms 4 --only server

Two schedules drive the same rows with the same seeds:

- `rounds`: the backend seen through `generate` only (`RoundStream`): each call carries the current
  round of every waiting row, and no row moves on before the slowest request of the round is back
  (how the adapter ran before streams);
- `stream`: the backend's own `stream()`: a row's next requests go out as soon as its round is back,
  while the other rows' requests still run.

Server part: `benchmarks/loopback_server.py` in its own process, an engine with `--slots` sequences and
`--token_ms` per decode step (see its docstring for the student it plays), driven by
`OpenAIServerBackend(max_concurrency=--concurrency)`. Occupancy = the engine's busy slot-seconds /
(slots x the adapt's wall time). In-process part: `TransformersBackend` with the planted-gap student
on CPU; occupancy = busy slot-seconds (live rows x the duration of each decode step) / (`batch_size`
x the adapt's wall time), so prefill, verification and planning count as idle slots, as they do on
the server; "per decode step" = live rows / `batch_size` averaged over decode steps. Both schedules
warm up on 4 rows before any clock starts. For each gap search the table gives generated tokens and
wall time as shares of the grid's (same schedule, same run), their ratio (1.0: wall time follows
tokens), the same ratio for this process's CPU time (in-process, one thread: what other processes'
load on a shared machine barely moves; on the server side it is the client's CPU only), and whether
every row equals the first run's row for the same search (the first schedule, and the first `--kv` layout). "Ideal occupancy" replays the run's own rounds (each row's
requests between two `collect`s, with their completion lengths) on a perfect engine with the same
slots and no overhead at all (`ideal_occupancy`): what the rows' dependencies alone allow. The load
average is printed before and after (the machine may be shared).
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any, Optional

try:
    import dart_hf  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import datasets
import torch  # imported before any clock starts: DartAdapter imports it
from harness import GenerateOnly, fmt, load_average, timed_map  # benchmarks/ is on sys.path when run as a script

from dart_hf import DartAdapter, DartConfig
from dart_hf.backends.base import open_stream
from dart_hf.gap_search import APPROXIMATE_SEARCHES
from dart_hf.tasks.planted_gap import PlantedGapTask
from dart_hf.verification import MathVerifier

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = "{problem}\n\nSolution:{prefix}"
SCHEDULES = ("rounds", "stream")
MAP_BATCH_SIZE: list[Optional[int]] = [None]  # rows per `map` call (None: all in one call); --map_batch_size
VERIFIER = MathVerifier()  # one judge for every run, started before the clock (its worker takes seconds to start)


def strategies() -> dict[str, dict[str, Any]]:
    """Gap searches to compare: the grid first (every share is against it), then the cheaper ones."""
    out: dict[str, dict[str, Any]] = {
        "grid": dict(early_stop=False, adaptive_sampling=False),
        "certified": dict(early_stop=True, adaptive_sampling=True),
    }
    for name in APPROXIMATE_SEARCHES:
        out[name] = dict(gap_search=name)
    return out


class Recorded(GenerateOnly):
    """The backend, with every request's row, round and completion lengths recorded (for `ideal_occupancy`).

    A row is the problem text before `TEMPLATE`'s "Solution:" within one adapter call (one `map`
    batch: one stream); its round is what it submits between two `collect`s (the adapter submits a
    row's round at once).
    """

    def __init__(self, backend: Any) -> None:
        super().__init__(backend)
        self.reset()

    def reset(self) -> None:
        self.rounds: dict[tuple[int, str], dict[int, list[int]]] = {}  # (call, row) -> epoch -> completion lengths
        self.calls = 0

    def stream(self) -> Any:
        inner, recorded, call = open_stream(self.backend), self, self.calls
        self.calls += 1
        epoch, owner = [0], {}

        class Stream:
            def submit(self, key, request) -> None:
                owner[key] = ((call, request.prompt.split("\n\nSolution:")[0]), epoch[0])
                inner.submit(key, request)

            def collect(self):
                done = inner.collect()
                epoch[0] += 1
                for key, outcome in done:
                    row, at = owner.pop(key)
                    lengths = [] if isinstance(outcome, BaseException) else [c.num_tokens for c in outcome]
                    recorded.rounds.setdefault(row, {}).setdefault(at, []).extend(lengths)
                return done

            def close(self) -> None:
                inner.close()

        return Stream()


def ideal_occupancy(rounds: dict[tuple[int, str], dict[int, list[int]]], slots: int) -> float:
    """Occupancy of a perfect engine on these rounds: `slots` sequences, one token each per step, no overhead.

    Within one adapter call, every row's first round is ready at once and each next round the moment
    its previous round's last sequence ends (verification and planning cost nothing); a free slot
    takes the oldest ready sequence. Calls run one after the other, as `map` batches do. The rows'
    dependencies (and the rows per call) alone then bound occupancy: once fewer rows are left than it
    takes to fill the slots, slots idle however fast everything else is.
    """
    calls: dict[int, list[list[list[int]]]] = {}
    for (call, _), by_epoch in rounds.items():
        calls.setdefault(call, []).append([lengths for _, lengths in sorted(by_epoch.items())])
    total = sum(n for chains in calls.values() for chain in chains for lengths in chain for n in lengths)
    span = sum(_makespan(chains, slots) for chains in calls.values())
    return total / (slots * span) if total else float("nan")


def _makespan(chains: list[list[list[int]]], slots: int) -> float:
    """Steps a perfect `slots`-wide engine takes for these rows' chains of rounds (see `ideal_occupancy`)."""
    ready: list[tuple[float, int, int]] = []  # (ready at, row, length), oldest first
    running: list[tuple[float, int]] = []  # (ends at, row)
    left: dict[int, tuple[int, int]] = {}  # row -> (its current round, sequences of it not yet ended)

    def release(row: int, k: int, now: float) -> None:
        lengths = [n for n in chains[row][k] if n > 0]
        left[row] = (k, len(lengths))
        for n in lengths:
            heapq.heappush(ready, (now, row, n))
        if not lengths and k + 1 < len(chains[row]):
            release(row, k + 1, now)

    for row, chain in enumerate(chains):
        if chain:
            release(row, 0, 0.0)
    now = end = 0.0
    while ready or running:
        while ready and len(running) < slots:
            _, row, n = heapq.heappop(ready)
            heapq.heappush(running, (now + n, row))
        now, row = heapq.heappop(running)
        end = max(end, now)
        k, count = left[row]
        left[row] = (k, count - 1)
        if count == 1 and k + 1 < len(chains[row]):
            release(row, k + 1, now)
    return end


class WordTokenizer:
    """Counts words: the loopback server's unit of generation."""

    chat_template = None

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        return {"input_ids": list(range(len(text.split())))}


def adapt(problems: datasets.Dataset, backend: Any, config: DartConfig) -> tuple[datasets.Dataset, float, float]:
    """The adapted rows, wall seconds and this process's CPU seconds (which other processes' load barely moves)."""
    cpu = time.process_time()
    adapter = DartAdapter(backend, config, progress=False, verifier=VERIFIER)
    out, wall = timed_map(problems, adapter, batch_size=MAP_BATCH_SIZE[0])
    return out, wall, time.process_time() - cpu


def signature(out: datasets.Dataset) -> list[tuple]:
    return list(zip(out["dart_action"], out["dart_gap_step"], out["dart_solution"], out["dart_step_samples"]))


def _get(url: str, method: str = "GET") -> dict:
    req = urllib.request.Request(url, data=b"{}" if method == "POST" else None, method=method)
    with urllib.request.urlopen(req, timeout=10) as response:
        return json.loads(response.read())


def start_server(slots: int, token_ms: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "loopback_server.py"), "--slots", str(slots), "--token_ms", str(token_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().split()
    if len(line) != 2 or line[0] != "PORT":
        proc.kill()
        raise RuntimeError(f"the loopback server did not start: {line}")
    return proc, f"http://127.0.0.1:{line[1]}"


def run_server(args: argparse.Namespace, problems: datasets.Dataset) -> list[dict]:
    from dart_hf.backends.openai import OpenAIServerBackend

    proc, url = start_server(args.slots, args.token_ms)
    results = []
    try:
        backend = OpenAIServerBackend(
            url, "loopback-student", WordTokenizer(), max_concurrency=args.concurrency, timeout=600
        )
        results = measure(
            "server",
            problems,
            {"rounds": GenerateOnly(backend), "stream": backend},
            args,
            occupancy=lambda wall: (_get(url + "/stats")["busy_slot_s"] / (args.slots * wall), None),
            reset=lambda: _get(url + "/reset", "POST"),
            slots=args.slots,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return results


def run_in_process(args: argparse.Namespace, problems: datasets.Dataset) -> list[dict]:
    from dart_hf.backends.transformers import TransformersBackend
    from dart_hf.backends.transformers.decode import DecodeBatch
    from dart_hf.tasks.student import planted_student

    steps: list[tuple[int, float]] = []  # (live rows, seconds) of every decode step
    step = DecodeBatch.step

    def counted(self: DecodeBatch):
        live, start = len(self.live), time.perf_counter()
        try:
            return step(self)
        finally:
            steps.append((live, time.perf_counter() - start))

    def occupancy(wall: float) -> tuple[float, float]:
        """(busy slot-seconds / (slots x wall), mean live rows / slots over decode steps)."""
        if not steps:
            return float("nan"), float("nan")
        busy = sum(live * seconds for live, seconds in steps)
        return busy / (args.batch_size * wall), sum(live for live, _ in steps) / (args.batch_size * len(steps))

    DecodeBatch.step = counted  # type: ignore[method-assign]
    try:
        rows: list[dict] = []
        reference: dict = {}  # every KV layout's rows are compared with the first one's
        for kv in args.kv:
            backend = TransformersBackend(
                planted_student(), device="cpu", batch_size=args.batch_size, shared_kv=kv == "shared"
            )
            rows += measure(
                f"in-process, {kv} KV",
                problems,
                {"rounds": GenerateOnly(backend), "stream": backend},
                args,
                occupancy=occupancy,
                reset=steps.clear,
                slots=args.batch_size,
                reference=reference,
            )
        return rows
    finally:
        DecodeBatch.step = step  # type: ignore[method-assign]


def measure(
    where: str, problems, backends: dict, args, occupancy, reset, slots: int, reference: Optional[dict] = None
) -> list[dict]:
    """Adapt `problems` with every search and schedule; `reference`: each search's first rows (shared across calls)."""
    rows, grid = [], {}
    reference = {} if reference is None else reference
    backends = {schedule: Recorded(backend) for schedule, backend in backends.items()}
    for schedule in args.schedules:  # warm-up on a few rows: the first batches of a process are slow
        adapt(problems.select(range(min(4, len(problems)))), backends[schedule], config_for({}, args))
    for name, overrides in strategies().items():
        if args.strategies and name not in args.strategies and name != "grid":
            continue
        config = config_for(overrides, args)
        for schedule in args.schedules:
            reset()
            backends[schedule].reset()
            out, wall, cpu = adapt(problems, backends[schedule], config)
            row = {
                "where": where,
                "strategy": name,
                "schedule": schedule,
                "rows": len(out),
                "errors": sum(a == "error" for a in out["dart_action"]),
                "tokens": sum(out["dart_tokens_generated"]),
                "wall": wall,
                "cpu": cpu,
            }
            row["occupancy"], row["step_occupancy"] = occupancy(wall)
            row["ideal_occupancy"] = ideal_occupancy(backends[schedule].rounds, slots)
            if name == "grid":
                grid[schedule] = row
            row["token_share"] = row["tokens"] / grid[schedule]["tokens"]
            row["wall_share"] = row["wall"] / grid[schedule]["wall"]
            row["cpu_share"] = row["cpu"] / grid[schedule]["cpu"]
            sig = signature(out)
            reference.setdefault(name, sig)  # the first run of this search is the reference
            row["same_rows"] = sum(a == b for a, b in zip(sig, reference[name])) / len(sig)
            rows.append(row)
            print(line(row), flush=True)
    return rows


def config_for(overrides: dict, args: argparse.Namespace) -> DartConfig:
    return DartConfig(
        **overrides,
        n_sim=4,
        n_explore=0,
        temperature=0.7,
        max_new_tokens=args.max_new_tokens,
        prompt_template=TEMPLATE,
        seed=args.seed,
    )


HEADER = (
    "| backend | gap search | schedule | rows (errors) | tokens | token share | wall (s) | wall share "
    "| wall share / token share | CPU (s) | CPU share / token share | slot occupancy | occupancy per decode step | ideal occupancy of these rounds "
    "| rows equal to the first run's (same search) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def line(r: dict) -> str:
    return (
        f"| {r['where']} | {r['strategy']} | {r['schedule']} | {r['rows']} ({r['errors']}) | {r['tokens']:,} | "
        f"{r['token_share']:.2f} | {r['wall']:.1f} | {r['wall_share']:.2f} | "
        f"{r['wall_share'] / r['token_share']:.2f} | {r['cpu']:.1f} | {r['cpu_share'] / r['token_share']:.2f} | "
        f"{r['occupancy']:.2f} | "
        f"{fmt(r['step_occupancy'])} | {fmt(r['ideal_occupancy'])} | {r['same_rows']:.2f} |"
    )


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=240, help="planted-gap rows (half with a planted gap)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("server", "in-process"), default=None)
    parser.add_argument("--strategies", nargs="*", default=None, help="gap searches to run (the grid always runs)")
    parser.add_argument("--slots", type=int, default=64, help="loopback engine: sequences decoded at once")
    parser.add_argument("--token_ms", type=float, default=4.0, help="loopback engine: ms per decode step")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=128,
        help="OpenAIServerBackend.max_concurrency (>= slots: adaptive rounds send n=1)",
    )
    parser.add_argument("--batch_size", type=int, default=64, help="TransformersBackend.batch_size")
    parser.add_argument("--max_new_tokens", type=int, default=96)
    parser.add_argument(
        "--kv",
        nargs="+",
        default=["shared"],
        choices=["shared", "per-sample"],
        help="in-process KV layout: one copy per prompt (`shared_kv=True`, the default) and/or one per sample",
    )
    parser.add_argument(
        "--schedules", nargs="+", default=list(SCHEDULES), choices=SCHEDULES, help="the first is the rows' reference"
    )
    parser.add_argument(
        "--map_batch_size",
        type=int,
        default=None,
        help="rows per `datasets.map` call, i.e. per adapter call (default: all rows in one call; `dart-hf adapt "
        "--batch_size`, 16 by default)",
    )
    parser.add_argument("--in_process_n", type=int, default=None, help="rows for the in-process part (default --n)")
    args = parser.parse_args(argv)
    datasets.disable_progress_bars()
    MAP_BATCH_SIZE[0] = args.map_batch_size
    VERIFIER.judge_many([("1", "2")])  # start its worker now
    problems = PlantedGapTask().generate(args.n, seed=args.seed)
    print(
        f"rows per map call {args.map_batch_size or args.n}, torch threads {torch.get_num_threads()}, load average {load_average()} (1, 5, 15 min)\n",
        flush=True,
    )
    print(HEADER, flush=True)
    if args.only in (None, "server"):
        run_server(args, problems)
    if args.only in (None, "in-process"):
        n = args.in_process_n or args.n
        run_in_process(args, problems.select(range(min(n, len(problems)))))
    print(f"\nload average {load_average()} (1, 5, 15 min)", flush=True)


if __name__ == "__main__":
    main()
