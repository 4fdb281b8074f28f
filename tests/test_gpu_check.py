"""benchmarks/gpu.py, the GPU check, in its CPU smoke mode: so it cannot rot between GPU sessions."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu.py"
TIMEOUT_S = 300  # about 1 minute on 2 busy cores; a hang fails instead of blocking CI


def load_module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_cpu_tiny_run_passes_every_section(tmp_path):
    out = tmp_path / "gpu"
    env = dict(
        os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1"
    )
    try:
        proc = subprocess.run(
            [sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--out", str(out)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"benchmarks/gpu.py --tiny did not finish in {TIMEOUT_S} s:\n{(err.stdout or b'')[-3000:]!r}")
    report = json.loads((out / "gpu_check.json").read_text())
    sections = report["sections"]
    failed = {name: s.get("error") or s for name, s in sections.items() if s["status"] != "pass"}
    assert proc.returncode == 0 and report["ok"] and not report["partial"], (failed, proc.stderr[-3000:])
    assert list(sections) == ["correctness", "throughput", "training", "recipe"]

    checks = sections["correctness"]["checks"]
    assert all(checks[name]["ok"] for name in ("greedy_float32", "greedy_bfloat16", "adapter_map"))
    assert (
        checks["greedy_float32"]["equal_alone"]
        == checks["greedy_float32"]["equal_batched"]
        == checks["greedy_float32"]["prompts"]
    )
    assert checks["adapter_map"]["actions"] == ["explore", "imitate", "error"]

    rows = sections["throughput"]["rows"]
    assert [r["batch_size"] for r in rows] == [4, 16]
    for r in rows:
        assert r["fixed_length"] and r["backend_tokens"] == r["batch_size"] * r["new_tokens"]
        assert r["backend_tok_s"] > 0 and r["generate_tok_s"] > 0 and r["ratio"] > 0
        share = r["backend_python_share"]  # None when the per-step difference drowns in CPU noise
        assert "backend_busy_ms_per_step" in r and (share is None or 0 <= share <= 1), r
        assert "error" not in r["backend_host"] and r["backend_host"]["step_ms"] > 0

    training = sections["training"]
    for run in (training["in_process"], training["accelerate_launch"]["result"]):
        assert run["steps"] == 20 and all(math.isfinite(x) for x in run["losses"])
        assert run["decreasing"] and run["losses"][-1] < run["losses"][0]
        assert run["expert_loss_logged"] and run["explore_loss_logged"]  # provenance weights on
    assert training["accelerate_launch"]["returncode"] == 0
    assert training["accelerate_launch"]["result"]["process_group"] == "gloo"  # the launcher's group, on CPU

    recipe = sections["recipe"]
    assert (
        recipe["returncode"] == 0 and recipe["rows_in"] == recipe["rows_out"] and recipe["stats"]["num_processes"] == 1
    )

    md = (out / "gpu_check.md").read_text()
    assert md.startswith("# GPU check: PASS") and "| B | backend tok/s | generate tok/s | ratio |" in md


def test_a_failing_section_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    gpu = load_module()

    def broken(ctx):
        raise RuntimeError("planted failure")

    monkeypatch.setattr(gpu, "section_throughput", broken)
    monkeypatch.setattr(gpu, "section_training", lambda ctx: {"ok": True, "in_process": {"ok": True}})
    out = tmp_path / "gpu"
    rc = gpu.main(["--device", "cpu", "--tiny", "--out", str(out), "--sections", "throughput,training"])
    report = json.loads((out / "gpu_check.json").read_text())
    assert rc == 1 and not report["ok"]
    assert report["sections"]["throughput"]["status"] == "error"
    assert "planted failure" in report["sections"]["throughput"]["error"]
    assert report["sections"]["training"]["status"] == "pass"
    assert "planted failure" in (out / "gpu_check.md").read_text()


def test_dart_rows_and_requests_shape():
    gpu = load_module()
    rows = gpu._rows_for(["a", "b"], n_sim=3, batch=8)
    assert rows == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2), ("a", 3), ("a", 4)]
    requests = gpu._requests(rows, new_tokens=5, temperature=0.7)
    assert [(r.prompt, r.first_sample, r.n) for r in requests] == [("a", 0, 3), ("b", 0, 3), ("a", 3, 2)]
    assert sum(r.n for r in requests) == 8 and all(r.max_new_tokens == 5 for r in requests)


def test_smollm2_assets_are_small_and_load():
    from transformers import AutoTokenizer, LlamaConfig

    gpu = load_module()
    size = sum(p.stat().st_size for p in gpu.ASSETS.iterdir())
    assert size < 3 * 2**20
    config = LlamaConfig.from_pretrained(gpu.ASSETS)
    assert (
        config.hidden_size,
        config.num_hidden_layers,
        config.num_attention_heads,
        config.num_key_value_heads,
        config.intermediate_size,
        config.vocab_size,
        config.tie_word_embeddings,
    ) == (576, 30, 9, 3, 1536, 49152, True)
    tok = AutoTokenizer.from_pretrained(gpu.ASSETS)
    assert len(tok) == config.vocab_size and tok.eos_token == "<|im_end|>"
    prompt = gpu.chat_prompt(tok, "What is 2 + 3?", "We add.\n\n")
    assert prompt.startswith("<|im_start|>system") and prompt.endswith("<|im_start|>assistant\nWe add.\n\n")
