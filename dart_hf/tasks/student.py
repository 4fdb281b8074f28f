"""A small student made competent at the planted-gap task's own style, and cached so it is trained once.

The student is a ~1M-parameter Llama with a digit-level tokenizer, trained from scratch on
student-style solutions only (one operation per step). It never sees the expert's product technique,
so it can follow every expert step except the planted one. Training is deterministic for a given
`StudentRecipe`, and the checkpoint is cached under a name derived from the recipe, so the demo and the
study reuse it instead of retraining.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from tqdm.auto import tqdm

from ..config import DEFAULT_INSTRUCTION
from .planted_gap import PlantedGapTask

logger = logging.getLogger(__name__)

#: Bump when training changes in a way the recipe fields do not capture, so stale caches are not reused.
STUDENT_VERSION = "1"


@dataclass(frozen=True)
class StudentRecipe:
    """How the planted-gap student is built; every field goes into the cache key."""

    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 384
    n_train: int = 20000
    steps: int = 800
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_steps: int = 100
    seed: int = 0
    task: PlantedGapTask = PlantedGapTask()

    def key(self) -> str:
        payload = json.dumps({"v": STUDENT_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def default_cache_dir() -> Path:
    """`$DART_HF_CACHE` or `~/.cache/dart_hf`."""
    return Path(os.environ.get("DART_HF_CACHE") or Path.home() / ".cache" / "dart_hf")


#: The default recipe's student, shipped with the package (about 3.6 MB) so the demo never has to train it.
SHIPPED = Path(__file__).resolve().parent.parent / "assets" / "planted_student"


def _recipe_key(path: Path) -> Optional[str]:
    try:
        return json.loads((path / "student_recipe.json").read_text())["key"]
    except (OSError, ValueError, KeyError):
        return None


def planted_student(recipe: Optional[StudentRecipe] = None, cache_dir: Optional[os.PathLike] = None) -> str:
    """Path of the trained student for `recipe`: the shipped one for the default recipe, else trained once and cached.

    Training takes a few minutes on 2 CPU cores and is deterministic for a given recipe.
    """
    recipe = recipe or StudentRecipe()
    return shipped_or_trained(
        SHIPPED, "planted-student", recipe.key(), lambda out: train_student(recipe, out), cache_dir
    )


def shipped_or_trained(
    shipped: Path,
    name: str,
    key: str,
    train: Callable[[Path], Any],
    cache_dir: Optional[os.PathLike] = None,
) -> str:
    """The shipped checkpoint when its recipe key is `key`, else `train(folder)` once into the cache (atomically)."""
    if _recipe_key(shipped) == key and (shipped / "config.json").is_file():
        return str(shipped)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = root / f"{name}-{key}"
    if (path / "config.json").is_file() and (path / "student_recipe.json").is_file():
        return str(path)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".", dir=root))
    try:
        train(tmp)
        if path.exists():  # another process finished first
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(path)


def chat_prompt(tokenizer, problem: str) -> str:
    """The rendered prompt the student learns from; the same text `DartAdapter` renders before a prefix."""
    content = f"{problem.rstrip()}\n\n{DEFAULT_INSTRUCTION}"
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )


def _corpus(task: PlantedGapTask, n: int, seed: int) -> list[str]:
    rows = task.generate(n, seed=seed)
    return [text for row in rows for text in (row["problem"], row["student_solution"], row["solution"])]


def train_student(recipe: StudentRecipe, out_dir: os.PathLike) -> dict:
    """Train the student from scratch on student-style solutions; save it and return training metrics."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from ..local_models import train_tokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The tokenizer sees the expert's text too: the student must be able to *read* a product, not write one.
    tokenizer = train_tokenizer(
        vocab_size=1000,
        corpus=_corpus(recipe.task, 2000, seed=recipe.seed + 1) + [DEFAULT_INSTRUCTION, "user", "assistant"] * 50,
        individual_digits=False,
    )
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    bos_id = tokenizer.convert_tokens_to_ids("<|im_start|>")

    rows = recipe.task.generate(recipe.n_train, seed=recipe.seed + 2)
    examples = []
    for row in rows:
        prompt = tokenizer(chat_prompt(tokenizer, row["problem"]), add_special_tokens=False)["input_ids"]
        answer = tokenizer(row["student_solution"], add_special_tokens=False)["input_ids"] + [eos_id]
        examples.append((prompt, answer))
    max_len = max(len(p) + len(a) for p, a in examples)

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_layers,
        num_attention_heads=recipe.num_heads,
        num_key_value_heads=recipe.num_heads,
        max_position_embeddings=max(512, 2 * max_len),
        tie_word_embeddings=True,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        architectures=["LlamaForCausalLM"],
    )
    torch.manual_seed(recipe.seed)
    model = LlamaForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=0.01)
    losses = train_steps(
        model,
        examples,
        optimizer,
        recipe.steps,
        recipe.batch_size,
        pad_id,
        random.Random(recipe.seed),
        warmup_steps=recipe.warmup_steps,
        desc="train planted-gap student",
    )
    model.eval()
    model.generation_config = GenerationConfig(bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    metrics = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "final_loss": sum(losses[-50:]) / len(losses[-50:]),
        "recipe": dataclasses.asdict(recipe),
        "key": recipe.key(),
    }
    (out / "student_recipe.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def train_steps(
    model,
    examples: list[tuple[list[int], list[int]]],
    optimizer,
    steps: int,
    batch_size: int,
    pad_id: int,
    rng: random.Random,
    warmup_steps: Optional[int] = None,
    desc: str = "train",
) -> list[float]:
    """`steps` optimizer steps on batches drawn with replacement from `(prompt ids, answer ids)` pairs.

    The loss covers the answer tokens only; gradients are clipped to norm 1. With `warmup_steps` the
    learning rate rises linearly over them and then follows a cosine to 0 at `steps`; without, it is
    constant. Returns each step's loss. Shared by the planted-gap and skill-transfer students.
    """
    import torch

    def lr_at(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = None if warmup_steps is None else torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)

    model.train()
    losses = []
    for _ in tqdm(range(steps), desc=desc, unit="step"):
        batch = [examples[rng.randrange(len(examples))] for _ in range(batch_size)]
        width = max(len(p) + len(a) for p, a in batch)
        ids = torch.full((len(batch), width), pad_id)
        labels = torch.full((len(batch), width), -100)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (p, a) in enumerate(batch):
            seq = p + a
            ids[i, : len(seq)] = torch.tensor(seq)
            labels[i, len(p) : len(seq)] = torch.tensor(a)
            mask[i, : len(seq)] = 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses
