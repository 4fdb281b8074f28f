"""DartTrainer: provenance mask, weighted loss, drop-in SFT behaviour, packing, LoRA, and the training recipe."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import ModelConfig, SFTConfig, SFTTrainer, get_peft_config

from dart_hf.provenance import DartDataCollator, explore_mask_for_example
from dart_hf.sft_config import DartSFTConfig
from dart_hf.trainer import DartTrainer

REPO = Path(__file__).resolve().parents[1]
EXPERT = "We add the numbers {i} and 3 (café ≥ 0).\n\n"  # non-ASCII: offsets are characters, not bytes
STUDENT = "So {i} + 3 = {s}. The answer is \\boxed{{{s}}}."


def dart_rows(n: int = 8, student: str = STUDENT, with_error: bool = False, all_explored: bool = False) -> list[dict]:
    """Hand-made DartAdapter output: even rows explored (expert prefix + student text), odd rows imitated."""
    rows = []
    for i in range(n):
        explored = all_explored or i % 2 == 0
        # `student` replaces the student's text of explored rows only; imitated rows are all expert text
        expert, own = EXPERT.format(i=i), (student if explored else STUDENT).format(i=i, s=i + 3)
        solution = expert + own
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"What is {i} + 3?"}],
                "completion": [{"role": "assistant", "content": solution}],
                "dart_solution": solution,
                "dart_student_start": len(expert) if explored else -1,
                "dart_action": "explore" if explored else "imitate",
            }
        )
    if with_error:
        rows.append(
            {
                "prompt": [{"role": "user", "content": "Broken row"}],
                "completion": [{"role": "assistant", "content": ""}],
                "dart_solution": "",
                "dart_student_start": -1,
                "dart_action": "error",
            }
        )
    return rows


@pytest.fixture(scope="module")
def tokenizer(tiny_student):
    return AutoTokenizer.from_pretrained(tiny_student)


def make_args(tmp_path, cls=DartSFTConfig, **overrides):
    kwargs = dict(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        learning_rate=1e-2,
        logging_steps=1,
        max_length=128,
        bf16=False,
        activation_checkpointing=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    kwargs.update(overrides)
    return cls(**kwargs)


def make_trainer(tiny_student, tokenizer, dataset, args, trainer_cls=DartTrainer, **kwargs):
    model = AutoModelForCausalLM.from_pretrained(tiny_student)
    return trainer_cls(model, args=args, train_dataset=dataset, processing_class=tokenizer, **kwargs)


def train_logs(trainer) -> list[dict]:
    trainer.train()
    return [entry for entry in trainer.state.log_history if "loss" in entry]


def params(trainer) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}


def assert_params_close(a: dict, b: dict, atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=1e-5, msg=name)


# ---- provenance mask ---------------------------------------------------------------------------------------------


def test_explore_mask_marks_exactly_the_student_text(tiny_student, tokenizer, tmp_path):
    trainer = make_trainer(tiny_student, tokenizer, Dataset.from_list(dart_rows(4)), make_args(tmp_path))
    prepared = trainer.train_dataset
    assert "explore_mask" in prepared.column_names
    for i, row in enumerate(prepared):
        assert len(row["explore_mask"]) == len(row["input_ids"])
        student = [t for t, m in zip(row["input_ids"], row["explore_mask"]) if m]
        expert = [t for t, m, lab in zip(row["input_ids"], row["explore_mask"], row["labels"]) if lab != -100 and not m]
        # explore tokens are all trained completion tokens
        assert all(lab != -100 for lab, m in zip(row["labels"], row["explore_mask"]) if m)
        if i % 2 == 0:  # explored: student text, then the template's suffix (provenance of the last content token)
            assert tokenizer.decode(student) == STUDENT.format(i=i, s=i + 3) + "<|im_end|>\n"
            assert tokenizer.decode(expert) == EXPERT.format(i=i)
        else:  # imitated: everything expert
            assert student == []
            assert tokenizer.decode(expert) == EXPERT.format(i=i) + STUDENT.format(i=i, s=i + 3) + "<|im_end|>\n"


def test_explore_mask_fallback_and_string_completions(tokenizer, monkeypatch):
    row = dart_rows(1)[0]
    full = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True, return_dict=True)
    example = {**row, "input_ids": list(full["input_ids"])}
    fast = explore_mask_for_example(example, tokenizer)
    # Without offsets (slow tokenizer) the prefix-tokenization fallback gives the same mask here
    monkeypatch.setattr(type(tokenizer), "is_fast", property(lambda self: False))
    assert explore_mask_for_example(example, tokenizer) == fast
    monkeypatch.undo()
    assert sum(fast) > 0 and fast[-1] == 1

    # Non-conversational prompt-completion (TRL appends eos to the completion before tokenizing)
    prompt, expert, own = "Q: 1 + 3?\nA: ", "We add.\n\n", "So 1 + 3 = 4."
    completion = expert + own + tokenizer.eos_token
    ids = tokenizer(text=prompt + completion)["input_ids"]
    mask = explore_mask_for_example(
        {"prompt": prompt, "completion": completion, "dart_student_start": len(expert), "input_ids": ids}, tokenizer
    )
    assert tokenizer.decode([t for t, m in zip(ids, mask) if m]) == own + tokenizer.eos_token
    no_student = {"prompt": prompt, "completion": completion, "dart_student_start": -1, "input_ids": ids}
    assert explore_mask_for_example(no_student, tokenizer) == [0] * len(ids)


def test_collator_pads_and_concatenates_explore_mask():
    """`DartDataCollator` around the collator SFTTrainer builds (TRL documents it at this path, not re-exported)."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    examples = [
        {"input_ids": [1, 2, 3], "labels": [-100, 2, 3], "explore_mask": [0, 0, 1]},
        {"input_ids": [4, 5], "labels": [-100, 5], "explore_mask": [0, 1]},
    ]
    batch = DartDataCollator(DataCollatorForLanguageModeling(pad_token_id=0))(examples)
    assert batch["explore_mask"].tolist() == [[0, 0, 1], [0, 1, 0]]
    assert batch["input_ids"].shape == batch["explore_mask"].shape
    flat = DartDataCollator(DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True))(examples)
    assert flat["explore_mask"].tolist() == [[0, 0, 1, 0, 1]]
    assert flat["input_ids"].shape == flat["explore_mask"].shape
    padded = DartDataCollator(DataCollatorForLanguageModeling(pad_token_id=0, pad_to_multiple_of=4))(examples)
    assert padded["explore_mask"].tolist() == [[0, 0, 1, 0], [0, 1, 0, 0]]
    plain = DartDataCollator(DataCollatorForLanguageModeling(pad_token_id=0))([{"input_ids": [1, 2]}])
    assert "explore_mask" not in plain


# ---- training and loss -------------------------------------------------------------------------------------------


def test_trains_filters_and_logs_provenance(tiny_student, tokenizer, tmp_path):
    dataset = Dataset.from_list(dart_rows(8, with_error=True))
    args = make_args(tmp_path, max_steps=6, gradient_accumulation_steps=2)
    trainer = make_trainer(tiny_student, tokenizer, dataset, args, eval_dataset=dataset.select(range(4, 9)))
    assert len(trainer.train_dataset) == 8  # the error row is dropped
    assert len(trainer.eval_dataset) == 4
    before = params(trainer)
    logs = train_logs(trainer)
    assert logs[-1]["loss"] < logs[0]["loss"]
    for entry in logs:
        assert {"expert_loss", "explore_loss", "explore_token_share", "entropy", "mean_token_accuracy"} <= entry.keys()
        assert 0 < entry["explore_token_share"] < 1
    after = params(trainer)
    assert any(not torch.equal(before[n], after[n]) for n in before)
    metrics = trainer.evaluate()
    assert {"eval_loss", "eval_expert_loss", "eval_explore_loss", "eval_explore_token_share"} <= metrics.keys()


def test_accepts_plain_sft_config(tiny_student, tokenizer, tmp_path):
    trainer = make_trainer(tiny_student, tokenizer, Dataset.from_list(dart_rows(2)), make_args(tmp_path, SFTConfig))
    assert isinstance(trainer.args, DartSFTConfig)
    assert (trainer.args.expert_weight, trainer.args.explore_weight) == (1.0, 1.0)
    assert trainer.args.max_length == 128 and not trainer.args.gradient_checkpointing


def test_default_weights_equal_sft_trainer_and_weighted_path_is_a_weighted_mean(tiny_student, tokenizer, tmp_path):
    """1.0/1.0 is SFTTrainer's own loss; 2.0/2.0 goes through DartTrainer's logits path and must agree (GA=2)."""
    dataset = Dataset.from_list(dart_rows(8))
    common = dict(max_steps=2, gradient_accumulation_steps=2, optim="sgd", learning_rate=0.5)
    sft = make_trainer(tiny_student, tokenizer, dataset, make_args(tmp_path, SFTConfig, **common), SFTTrainer)
    sft_logs = train_logs(sft)
    dart = make_trainer(tiny_student, tokenizer, dataset, make_args(tmp_path, **common))
    dart_logs = train_logs(dart)
    scaled = make_trainer(
        tiny_student, tokenizer, dataset, make_args(tmp_path, expert_weight=2.0, explore_weight=2.0, **common)
    )
    scaled_logs = train_logs(scaled)
    for ref, a, b in zip(sft_logs, dart_logs, scaled_logs, strict=True):
        assert a["loss"] == pytest.approx(ref["loss"], rel=1e-6)
        assert b["loss"] == pytest.approx(ref["loss"], rel=1e-4)
        assert b["expert_loss"] == pytest.approx(a["expert_loss"], rel=1e-4)
        assert b["explore_loss"] == pytest.approx(a["explore_loss"], rel=1e-4)
    assert_params_close(params(sft), params(dart), atol=1e-6)
    assert_params_close(params(sft), params(scaled), atol=1e-5)


def _masked_reference(trainer: DartTrainer, keep_student: bool) -> Dataset:
    """Pre-tokenized copy of the prepared data, trained only on student (or only on expert) tokens."""

    def mask(row):
        labels = [lab if (m == 1) == keep_student else -100 for lab, m in zip(row["labels"], row["explore_mask"])]
        return {"input_ids": row["input_ids"], "labels": labels}

    data = trainer.train_dataset
    return data.map(mask, remove_columns=data.column_names)


@pytest.mark.parametrize("zero", ["explore", "expert"])
def test_zero_weight_equals_sft_without_those_tokens(tiny_student, tokenizer, tmp_path, zero):
    """explore_weight=0 is SFT on the expert tokens only, expert_weight=0 SFT on the student tokens only."""
    common = dict(max_steps=2, gradient_accumulation_steps=2, optim="sgd", learning_rate=0.5)
    weights = {"explore_weight": 0.0} if zero == "explore" else {"expert_weight": 0.0}
    # every row explored, so that no reference row is left without trained tokens (TRL would drop it)
    rows = dart_rows(8, all_explored=True)
    dart = make_trainer(tiny_student, tokenizer, Dataset.from_list(rows), make_args(tmp_path, **weights, **common))
    reference = _masked_reference(dart, keep_student=zero == "expert")
    dart_logs = train_logs(dart)
    sft = make_trainer(tiny_student, tokenizer, reference, make_args(tmp_path, SFTConfig, **common), SFTTrainer)
    sft_logs = train_logs(sft)
    for ref, got in zip(sft_logs, dart_logs, strict=True):
        assert got["loss"] == pytest.approx(ref["loss"], rel=1e-4)
        kept = "expert_loss" if zero == "explore" else "explore_loss"
        assert got["loss"] == pytest.approx(got[kept], rel=1e-4)
    assert_params_close(params(sft), params(dart), atol=1e-5)


def test_explore_weight_zero_ignores_student_text(tiny_student, tokenizer, tmp_path):
    """Two datasets that differ only in the student's text (and its length) give the same update."""
    other = "Hence the sum is {s}; final answer: \\boxed{{{s}}}. I hope it is correct."
    common = dict(max_steps=1, optim="sgd", learning_rate=1.0, explore_weight=0.0)
    a = make_trainer(tiny_student, tokenizer, Dataset.from_list(dart_rows(4)), make_args(tmp_path, **common))
    changed = Dataset.from_list(dart_rows(4, student=other))
    b = make_trainer(tiny_student, tokenizer, changed, make_args(tmp_path, **common))
    train_logs(a)
    train_logs(b)
    assert_params_close(params(a), params(b), atol=1e-6)
    # ... whereas with the student's tokens weighted, the update differs
    c = make_trainer(tiny_student, tokenizer, changed, make_args(tmp_path, **{**common, "explore_weight": 1.0}))
    train_logs(c)
    assert any(not torch.allclose(params(a)[n], params(c)[n], atol=1e-6) for n in params(a))


def test_trains_on_real_dart_adapter_output(tiny_student, tokenizer, tmp_path):
    """The contract with `DartAdapter`: its output trains as is, and `explore_mask` covers the explored text."""
    from dart_hf import DartAdapter, DartConfig

    from scripted import TEMPLATE, ScriptedBackend, expert

    rows = [
        {"problem": "What is 6*7?", "solution": expert(3), "answer": "42"},
        {"problem": "broken", "solution": "", "answer": "42"},
        {"problem": "What is 40+2?", "solution": expert(3), "answer": "42"},
    ]
    ok, lost = [True] * 4, [False, False, None, False]
    backend = ScriptedBackend(sim={0: ok, 1: ok, 2: lost, 3: ok})
    adapter = DartAdapter(backend, DartConfig(prompt_template=TEMPLATE), progress=False)
    adapted = Dataset.from_list(rows).map(adapter, batched=True)
    explored = adapted[0]
    assert explored["dart_action"] == "explore" and adapted[1]["dart_action"] == "error"
    trainer = make_trainer(tiny_student, tokenizer, adapted, make_args(tmp_path, max_steps=1))
    assert len(trainer.train_dataset) == 2
    row = trainer.train_dataset[0]
    student = tokenizer.decode([t for t, m in zip(row["input_ids"], row["explore_mask"]) if m])
    assert student == explored["dart_solution"][explored["dart_student_start"] :] + "<|im_end|>\n"
    assert {"expert_loss", "explore_loss"} <= train_logs(trainer)[0].keys()


# ---- drop-in: other dataset types --------------------------------------------------------------------------------


def test_drop_in_on_plain_prompt_completion_and_messages(tiny_student, tokenizer, tmp_path):
    rows = dart_rows(4)
    prompt_completion = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
    messages = Dataset.from_list([{"messages": r["prompt"] + r["completion"]} for r in rows])
    for dataset in (prompt_completion, messages):
        args = dict(max_steps=1, optim="sgd")
        sft = make_trainer(tiny_student, tokenizer, dataset, make_args(tmp_path, SFTConfig, **args), SFTTrainer)
        sft_logs = train_logs(sft)
        dart = make_trainer(tiny_student, tokenizer, dataset, make_args(tmp_path, **args))
        assert "explore_mask" not in dart.train_dataset.column_names
        dart_logs = train_logs(dart)
        assert dart_logs[0]["loss"] == pytest.approx(sft_logs[0]["loss"], rel=1e-6)
        assert dart_logs[0]["explore_token_share"] == 0.0
        assert dart_logs[0]["expert_loss"] == pytest.approx(dart_logs[0]["loss"], rel=1e-4)


# ---- packing, LoRA -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["bfd", "wrapped"])
def test_packing_carries_explore_mask(tiny_student, tokenizer, tmp_path, strategy):
    dataset = Dataset.from_list(dart_rows(8))
    unpacked = make_trainer(tiny_student, tokenizer, dataset, make_args(tmp_path, max_steps=1)).train_dataset
    # explore_weight != 1 also runs DartTrainer's own loss on the padding-free packed batches
    args = make_args(tmp_path, packing=True, packing_strategy=strategy, max_length=160, max_steps=2, explore_weight=0.5)
    trainer = make_trainer(tiny_student, tokenizer, dataset, args)
    packed = trainer.train_dataset
    assert len(packed) < len(unpacked)
    assert {"input_ids", "labels", "explore_mask"} <= set(packed.column_names)

    def student_tokens(data):
        return sorted(t for row in data for t, m in zip(row["input_ids"], row["explore_mask"]) if m)

    assert student_tokens(packed) == student_tokens(unpacked)
    if strategy == "bfd":  # padding-free batches; `wrapped` is only checked at the data level
        logs = train_logs(trainer)
        assert all(0 < entry["explore_token_share"] < 1 for entry in logs)


def test_lora_with_provenance_weights(tiny_student, tokenizer, tmp_path):
    model_args = ModelConfig(
        model_name_or_path=tiny_student, use_peft=True, lora_r=4, lora_alpha=8, lora_target_modules=["q_proj", "v_proj"]
    )
    args = make_args(tmp_path, max_steps=2, gradient_accumulation_steps=2, explore_weight=0.5)
    trainer = DartTrainer(
        tiny_student,
        args=args,
        train_dataset=Dataset.from_list(dart_rows(8)),
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    trainable = params(trainer)
    assert trainable and all("lora_" in name for name in trainable)
    frozen = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if not p.requires_grad}
    logs = train_logs(trainer)
    assert {"expert_loss", "explore_loss", "explore_token_share"} <= logs[-1].keys()
    assert any(not torch.equal(trainable[n], p) for n, p in params(trainer).items())
    assert all(torch.equal(frozen[n], p) for n, p in trainer.model.named_parameters() if not p.requires_grad)


def test_config_validation(tmp_path):
    with pytest.raises(ValueError):
        make_args(tmp_path, expert_weight=0.0, explore_weight=0.0)
    with pytest.raises(ValueError):
        make_args(tmp_path, explore_weight=-1.0)


# ---- recipe ------------------------------------------------------------------------------------------------------


def test_recipe_trains_from_config_with_cli_override(tiny_student, tmp_path):
    """`recipes/train.py --config recipes/smoke/dart/config_train.yaml --max_steps 2`, with the smoke inputs created first."""
    shutil.copytree(tiny_student, tmp_path / "outputs/smoke/student")
    (tmp_path / "outputs/smoke/adapted").mkdir(parents=True)
    Dataset.from_list(dart_rows(8, with_error=True)).to_parquet(str(tmp_path / "outputs/smoke/adapted/dataset.parquet"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "recipes/train.py"),
            "--config",
            str(REPO / "recipes/smoke/dart/config_train.yaml"),
            "--max_steps",
            "2",
            "--disable_tqdm",
            "true",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "outputs/smoke/trained"
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert (out / "tokenizer.json").is_file()
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert any("explore_loss" in entry for entry in state["log_history"])
