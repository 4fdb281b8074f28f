"""CodeVerifier: real sandboxed subprocesses, the attacks of docs/reliability.md each observed.

Limits are kept small (seconds, a few processes, 256 MB) so that no attack can hang the suite or
harm the machine. Attacks whose promise needs a confinement this machine lacks (a network or PID
namespace, an unprivileged uid) are skipped with the reason, never weakened.
"""

from __future__ import annotations

import os
import pickle
import socket
import time

import datasets
import pytest

from dart_hf import DartAdapter, DartConfig
from dart_hf.backends.base import Completion
from dart_hf.verifiers import CodeVerifier
from dart_hf.verifiers.code import DEFAULT_UID_BASE, build_program, extract_code

TESTS = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"
GOOD = "def add(a, b):\n    return a + b\n"
BAD = "def add(a, b):\n    return a - b\n"


@pytest.fixture(scope="module")
def verifier():
    # 6 s: long enough for a loaded machine to start Python, short enough for the attacks that run to it
    return CodeVerifier(timeout=6, memory_mb=256, max_processes=8, max_output_bytes=4096, workers=2)


@pytest.fixture(scope="module")
def report(verifier):
    return verifier.sandbox_report()


def _sandbox_processes() -> list[int]:
    """Pids of processes running as a sandbox uid (root mode), read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                uid = next(int(line.split()[1]) for line in fh if line.startswith("Uid:"))
        except (OSError, StopIteration, ValueError):
            continue
        if DEFAULT_UID_BASE <= uid < DEFAULT_UID_BASE + 64:
            found.append(int(entry))
    return found


# ------------------------------------------------------------------ answers and verdicts
def test_extract_code_takes_the_last_block_and_an_unclosed_one():
    text = "first\n```python\nx = 1\n```\nthen\n```py\ny = 2\nprint(y)\n```\nbye"
    assert extract_code(text) == "y = 2\nprint(y)\n"
    assert extract_code("```python\ndef f():\n    return 1") == "def f():\n    return 1\n"
    assert extract_code("no code here, just `inline`") is None
    assert extract_code("````\nwith ``` inside\n````") == "with ``` inside\n"


def test_correct_and_wrong_programs_against_humaneval_style_tests(verifier):
    pairs = [(TESTS + "\ncheck(add)\n", GOOD), (TESTS + "\ncheck(add)\n", BAD), (TESTS, None)]
    assert [tuple(v) for v in verifier.judge_many(pairs)] == [(True, False), (False, False), (False, False)]


def test_entry_point_comes_from_the_row_and_text_through_the_last_code_block(verifier):
    from dart_hf.verifiers import Attempt

    good_text = "Here it is:\n```python\n" + GOOD + "```\n"
    bad_text = "```python\n" + GOOD + "```\nWait, better:\n```python\n" + BAD + "```"
    row = {"test": TESTS, "entry_point": "add"}
    attempts = [Attempt(TESTS, verifier.extract_answer(t), t, row) for t in (good_text, bad_text)]
    assert [v.correct for v in verifier.judge_attempts(attempts)] == [True, False]
    assert build_program(GOOD, TESTS, "add").endswith("check(add)\n")


def test_bad_tests_are_refused_as_gold_without_running_them(verifier):
    assert verifier.inspect_gold(TESTS).reason is None
    assert "empty" in verifier.inspect_gold("  ").reason
    assert "not valid Python" in verifier.inspect_gold("def check(:\n").reason


def test_pickle_keeps_settings_and_fingerprint():
    v = CodeVerifier(timeout=2, memory_mb=300, workers=3)
    w = pickle.loads(pickle.dumps(v))
    assert (w.timeout, w.memory_mb, w.workers, w.fingerprint) == (2.0, 300, 3, v.fingerprint)
    assert CodeVerifier(timeout=3).fingerprint != v.fingerprint


def test_adapter_judges_code_rollouts_with_the_rows_tests():
    """DartAdapter + CodeVerifier: the program the student finishes is run against the row's own tests."""

    class CodeStudent:
        fingerprint, tokenizer, context_length = "code-student", None, None

        def generate(self, requests):
            # sample j is correct when j is even: f = 0.5 at every prefix
            return [
                [
                    Completion(
                        text=("    return a + b\n```" if j % 2 == 0 else "    return a * b\n```"),
                        num_tokens=5,
                        logprob=-0.1,
                        finish_reason="stop",
                    )
                    for j in range(r.first_sample, r.first_sample + r.n)
                ]
                for r in requests
            ]

    row = {
        "problem": "Write add(a, b).",
        "steps": ["```python\n", "def add(a, b):\n"],
        "test": TESTS,
        "entry_point": "add",
    }
    config = DartConfig(
        prompt_template="{problem}||{prefix}", steps_column="steps", answer_column="test", keep_rollouts=True
    )
    out = datasets.Dataset.from_list([row]).map(
        DartAdapter(CodeStudent(), config, verifier=CodeVerifier(timeout=5), progress=False),
        batched=True,
        load_from_cache_file=False,
    )
    assert out["dart_action"] == ["imitate"], out["dart_error"]
    assert out["dart_step_success"][0] == [0.0, 0.0, 0.5]  # the body alone fails: it needs the def line


# ------------------------------------------------------------------ the attacks (docs/reliability.md)
def test_infinite_loop_is_killed_at_the_deadline_and_is_no_verdict(verifier):
    start = time.monotonic()
    result = verifier.run("while True:\n    pass\n")
    assert result.timed_out and not result.passed
    assert time.monotonic() - start < verifier.timeout + 5
    v = verifier.judge_many([(TESTS, "while True:\n    pass\n")])[0]
    assert (v.correct, v.timed_out) == (False, True)


def test_fork_bomb_is_capped_and_leaves_no_process(verifier, report):
    if not (report["pid_namespace"] or "uid" in report["isolation"]):
        pytest.skip(f"no PID namespace and no sandbox uid here ({report['isolation']}): the cap is not observable")
    # bounded by itself too (3 s), so that even a sandbox failure could not take the machine down
    bomb = (
        "import os, time\nroot = os.getpid()\nend = time.time() + 3\nrefused = 0\n"
        "while time.time() < end:\n    try:\n        os.fork()\n    except OSError:\n        refused += 1\n"
        "if os.getpid() == root:\n    print('refused', refused, flush=True)\n"
    )
    result = verifier.run(bomb)
    assert result.seconds < verifier.timeout + 5
    refused = [int(line.split()[1]) for line in result.output.splitlines() if line.startswith("refused ")]
    assert refused and refused[0] > 0, result.output  # the process limit said no
    assert _sandbox_processes() == []  # and nothing it started outlived the check


def test_process_limit_is_enforced(verifier, report):
    if "uid" not in report["isolation"] and "userns" not in report["isolation"]:
        pytest.skip(f"the process limit counts this user's other processes here ({report['isolation']})")
    program = (
        "import os, time\nkids = []\n"
        "for _ in range(20):\n    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
        "    if pid == 0:\n        time.sleep(5)\n        os._exit(0)\n    kids.append(pid)\n"
        "print('forked', len(kids))\nassert len(kids) < 8\n"
    )
    result = verifier.run(program)
    assert result.passed, result.output
    assert int(result.output.split()[1]) < verifier.max_processes


def test_memory_bomb_fails_without_getting_the_memory(verifier):
    result = verifier.run("b = bytearray(2 * 1024**3)\nprint('allocated')\n")
    assert not result.passed
    assert "allocated" not in result.output and "MemoryError" in result.output


def test_writing_outside_the_temporary_folder_is_refused(verifier, report, tmp_path):
    outside = tmp_path / "escaped.txt"
    program = (
        "import os\nopen('inside.txt', 'w').write('ok')\nprint('cwd', os.getcwd())\n"
        f"open({str(outside)!r}, 'w').write('escaped')\n"
    )
    result = verifier.run(program)
    cwd = next(line.split(" ", 1)[1] for line in result.output.splitlines() if line.startswith("cwd "))
    assert not os.path.exists(cwd)  # the fresh working folder is removed afterwards
    if "uid" not in report["isolation"]:
        pytest.skip("not root here: programs run as this user and may write where it may (see docs/verifiers.md)")
    assert not result.passed and "PermissionError" in result.output
    assert not outside.exists()


def test_file_size_is_capped(verifier):
    result = verifier.run("open('big.bin', 'wb').write(b'x' * (64 * 1024 * 1024))\nprint('wrote')\n")
    assert not result.passed and "wrote" not in result.output


def test_environment_holds_no_secret(verifier, monkeypatch):
    secret = "hf_SECRETtokenvalue0123456789"
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.setenv("HTTPS_PROXY", f"http://user:{secret}@proxy:3128")
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    program = (
        "import os, glob\nprint(sorted(os.environ))\nprint(dict(os.environ))\n"
        "for path in glob.glob('/proc/*/environ'):\n"
        "    try:\n        print(open(path, 'rb').read().decode('latin-1'))\n    except OSError:\n        pass\n"
    )
    result = verifier.run(program)
    assert result.passed, result.output
    assert "HOME" in result.output and secret not in result.output
    assert "HF_TOKEN" not in result.output and "PROXY" not in result.output.upper().replace("NO_PROXY", "")


def test_network_is_unreachable(verifier, report):
    if not report["network_isolated"]:
        pytest.skip(f"no network namespace on this machine ({report['isolation']})")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        program = (
            "import socket\ns = socket.socket()\ns.settimeout(1)\n"
            f"s.connect(('127.0.0.1', {port}))\nprint('connected')\n"
        )
        result = verifier.run(program)
        assert not result.passed and "connected" not in result.output
        assert "OSError" in result.output or "unreachable" in result.output.lower()
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody came
    finally:
        server.close()


def test_early_exits_are_not_a_pass(verifier):
    for program in ("import os\nos._exit(0)\n", "import sys\nsys.exit(0)\n", "raise SystemExit\n"):
        result = verifier.run(program + "raise AssertionError('never reached')\n")
        assert not result.passed, program
    assert verifier.run("print('fine')\n").passed


def test_output_flood_is_capped_and_ends_at_the_deadline(verifier):
    start = time.monotonic()
    result = verifier.run("while True:\n    print('x' * 10000)\n")
    assert result.timed_out and not result.passed
    assert len(result.output.encode()) <= verifier.max_output_bytes
    assert time.monotonic() - start < verifier.timeout + 5
    big = verifier.run("print('y' * 10**6)\n")
    assert big.passed and len(big.output.encode()) <= verifier.max_output_bytes


def test_stdin_is_empty(verifier):
    assert verifier.run("import sys\nassert sys.stdin.read() == ''\n").passed


def test_a_sandbox_that_cannot_start_stops_the_run():
    from dart_hf.errors import RunError

    broken = CodeVerifier(python="/nonexistent/python3", sandbox_uid=None)
    with pytest.raises(RunError, match="cannot start the code sandbox"):
        broken.judge_many([(TESTS, GOOD)])
