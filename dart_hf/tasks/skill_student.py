"""The skill-transfer task's student: the planted-gap student, taught the *format* of the skill, not the skill.

The shipped planted-gap student cannot continue after a teaching step at all (it never saw a line
that is not an operation; measured in `docs/study.md`), so a skill-transfer study needs a student that
can read "A dozen is 12." and go on from there, without knowing that a dozen is 12. This one is the
planted-gap student fine-tuned on a 50/50 mix of plain problems and problems that name their start by
a number *word* from two to twenty ("Ann has seven apples."), solved by stating the quantity first
("Seven is 7.") and then chaining (2,400 steps, warm-up then cosine decay: 600 steps at a constant
rate left it following a teaching step only 18% of the time). It never sees a skill word ("a dozen",
"a score of", ...) nor a product. Training is
deterministic for a given `SkillStudentRecipe`; the default recipe's student ships in
`assets/skill_student`, others are trained once and cached like the planted-gap student.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .skill_transfer import SkillTransferTask
from .student import SHIPPED, chat_prompt, shipped_or_trained, train_steps

#: Bump when training changes in a way the recipe fields do not capture.
SKILL_STUDENT_VERSION = "2"
SHIPPED_SKILL = SHIPPED.parent / "skill_student"


@dataclass(frozen=True)
class SkillStudentRecipe:
    """How the skill student is built from the shipped planted-gap student; every field goes into the cache key."""

    n_train: int = 8000
    steps: int = 2400
    batch_size: int = 16
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    seed: int = 0
    task: SkillTransferTask = SkillTransferTask(vocabulary="practice", skill_share=0.5, gap_share=0.0)

    def key(self) -> str:
        payload = json.dumps({"v": SKILL_STUDENT_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def skill_student(recipe: Optional[SkillStudentRecipe] = None, cache_dir: Optional[os.PathLike] = None) -> str:
    """Path of the skill student for `recipe`: the shipped one for the default recipe, else trained once and cached."""
    recipe = recipe or SkillStudentRecipe()
    train = lambda out: train_skill_student(recipe, out)  # noqa: E731
    return shipped_or_trained(SHIPPED_SKILL, "skill-student", recipe.key(), train, cache_dir)


def train_skill_student(recipe: SkillStudentRecipe, out_dir: os.PathLike) -> dict:
    """Fine-tune the shipped planted-gap student on `recipe.task`'s student-style solutions; save it, return metrics."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(SHIPPED)
    model = AutoModelForCausalLM.from_pretrained(SHIPPED)
    eos_id, pad_id = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.pad_token_id
    examples = []
    for row in recipe.task.generate(recipe.n_train, seed=recipe.seed + 2):
        prompt = tokenizer(chat_prompt(tokenizer, row["problem"]), add_special_tokens=False)["input_ids"]
        answer = tokenizer(row["student_solution"], add_special_tokens=False)["input_ids"] + [eos_id]
        examples.append((prompt, answer))
    torch.manual_seed(recipe.seed)
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
        desc="train skill student",
    )
    model.eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    metrics = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "final_loss": sum(losses[-20:]) / len(losses[-20:]),
        "base": "planted_student",
        "recipe": dataclasses.asdict(recipe),
        "key": recipe.key(),
    }
    (out / "student_recipe.json").write_text(json.dumps(metrics, indent=2))
    return metrics


if __name__ == "__main__":  # pragma: no cover - rebuild the shipped checkpoint: python -m dart_hf.tasks.skill_student
    print(json.dumps(train_skill_student(SkillStudentRecipe(), SHIPPED_SKILL), indent=2))
