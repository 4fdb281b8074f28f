"""The real SmolLM2-135M student, end to end (slow: loads a 100 MB GGUF and generates on CPU)."""

import os
import re
import subprocess
import sys

import datasets
import pytest

from dart_hf import DartAdapter, DartConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HAND_WRITTEN = [
    {
        "problem": "Tom has 3 apples and buys 5 more. How many apples does he have now?",
        "solution": "Tom starts with 3 apples.\n\nHe buys 5 more, so 3 + 5 = 8.\n\nThe answer is \\boxed{8}.",
    },
    {
        "problem": "A pen costs 2 dollars. How much do 4 pens cost?",
        "solution": "One pen costs 2 dollars.\n\nFour pens cost 4 * 2 = 8 dollars.\n\nSo \\boxed{8}.",
    },
    {
        "problem": "What is half of 10?",
        "solution": "Half means dividing by 2.\n\n10 / 2 = 5, so the answer is \\boxed{5}.",
    },
]


@pytest.mark.slow
def test_smollm2_adapts_hand_written_problems(smollm2_gguf):
    ds = datasets.Dataset.from_list(HAND_WRITTEN)
    adapter = DartAdapter(smollm2_gguf, DartConfig(n_sim=4, n_explore=4, max_new_tokens=48), progress=False)
    out = ds.map(adapter, batched=True, load_from_cache_file=False)
    assert len(out) == 3
    assert all(a in ("imitate", "explore", "fallback") for a in out["dart_action"]), out["dart_error"]
    assert [len(s) for s in out["dart_steps"]] == [3, 3, 2]
    for row in out:
        assert len(row["dart_step_success"]) == len(row["dart_steps"]) + 1
        assert row["dart_tokens_generated"] > 0
        # with every expert step given (the last one states the boxed answer), the student succeeds
        assert row["dart_step_success"][-1] >= 0.5
        if row["dart_action"] == "explore":
            start = row["dart_student_start"]
            assert row["dart_solution"][:start] == "".join(row["dart_steps"][: row["dart_gap_step"] - 1])
    print(list(zip(out["dart_action"], out["dart_step_success"])))


@pytest.mark.slow
def test_readme_quickstart_runs_as_written():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "README has no python quickstart"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(
        [sys.executable, "-c", blocks[0]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^(imitate|explore|fallback) \[", proc.stdout, flags=re.M), proc.stdout


@pytest.mark.slow
def test_converted_gguf_folder_trains_a_step(smollm2_checkpoint, tmp_path):
    """A GGUF converted with `gguf_to_checkpoint` is a plain checkpoint: full fine-tuning works (one step, ~6 s)."""
    import json

    import torch

    from dart_hf.sft_config import DartSFTConfig
    from dart_hf.trainer import DartTrainer

    folder = smollm2_checkpoint
    config = json.load(open(os.path.join(folder, "config.json"), encoding="utf-8"))
    assert "quantization_config" not in config  # a GGUF quantizer here makes Trainer refuse to fine-tune
    row = {
        "prompt": [{"role": "user", "content": "What is 2 + 3?"}],
        "completion": [{"role": "assistant", "content": "2 + 3 = 5. \\boxed{5}"}],
        "dart_solution": "2 + 3 = 5. \\boxed{5}",
        "dart_student_start": -1,
        "dart_action": "imitate",
    }
    args = DartSFTConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=1,
        per_device_train_batch_size=1,
        learning_rate=1e-4,
        max_length=64,
        bf16=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = DartTrainer(folder, args=args, train_dataset=datasets.Dataset.from_list([row]))
    before = trainer.model.model.embed_tokens.weight.detach().clone()
    trainer.train()
    assert trainer.state.global_step == 1
    assert not torch.equal(before, trainer.model.model.embed_tokens.weight)
