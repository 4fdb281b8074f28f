"""Which SFT budget moves the student at all? Static SFT only, judged on its own training rows.

    python benchmarks/study_budget.py --config recipes/skill_transfer/study/config_cpu.yaml \
        --budgets 1e-4:3 1e-3:3 1e-3:6

A study whose training cannot move the weights compares data selections that all leave the student
as it was. This picks the training budget (learning rate x epochs; same rows and batch for every
condition) *without looking at any condition's held-out result*: for each budget it trains static
SFT (the expert rows as they are) exactly as the study does (`dart_hf.study.harness.train_condition`,
seed 0) and prints the mean per-token NLL of those rows' completions under the student before and
after, and how far the weights moved (largest absolute change, and the relative L2 norm of the
change). The study's rule: the cheapest budget that at least halves the training rows' NLL.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

try:
    import dart_hf  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from dart_hf.study.conditions import parse_all, static_set
from dart_hf.study.config import StudyConfig
from dart_hf.study.harness import dart_config, load_task, train_condition


def completion_nll(model, tokenizer, rows) -> float:
    """Mean NLL per completion token (chat template, prompt masked), over all rows."""
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for row in rows:
            prompt = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
            full = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
            p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([tokenizer(full, add_special_tokens=False)["input_ids"]])
            logits = model(input_ids=ids).logits[0, :-1]
            targets = ids[0, 1:]
            nll = torch.nn.functional.cross_entropy(logits, targets, reduction="none")[len(p_ids) - 1 :]
            total, count = total + float(nll.sum()), count + nll.numel()
    return total / count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a study YAML (its task, student, n_train, batch size)")
    parser.add_argument("--student", default=None, help="default: the config's student, else the task's shipped one")
    parser.add_argument("--budgets", nargs="+", default=["1e-4:3", "1e-3:3", "1e-3:6"], help="lr:epochs pairs")
    args = parser.parse_args(argv)

    import yaml

    with open(args.config) as f:
        config = StudyConfig(**yaml.safe_load(f))
    student = args.student or config.student
    if student is None:
        from dart_hf.tasks.skill_student import skill_student
        from dart_hf.tasks.student import planted_student

        student = skill_student() if config.task == "skill_transfer" else planted_student()
    train, _ = load_task(config)
    rows = static_set(parse_all(train, dart_config(config, 0))).rows
    tokenizer = AutoTokenizer.from_pretrained(student)
    base = AutoModelForCausalLM.from_pretrained(student)
    before = completion_nll(base, tokenizer, rows)
    weights = {n: p.detach().clone() for n, p in base.named_parameters()}
    norm = torch.sqrt(sum((w**2).sum() for w in weights.values()))
    print(f"student: {student}\n{len(rows)} static rows, batch {config.per_device_train_batch_size}")
    print(f"NLL per completion token before training: {before:.3f}\n")
    print(
        "| lr | epochs | optimizer steps | NLL after | NLL after / before | max abs weight change | ‖Δw‖ / ‖w‖ | train s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for budget in args.budgets:
        lr, epochs = (float(x) for x in budget.split(":"))
        cfg = dataclasses.replace(config, learning_rate=lr, num_train_epochs=epochs)
        start = time.perf_counter()
        model, _, _ = train_condition(student, rows, cfg, seed=0)
        seconds = time.perf_counter() - start
        after = completion_nll(model, tokenizer, rows)
        deltas = {n: p.detach() - weights[n] for n, p in model.named_parameters()}
        biggest = max(float(d.abs().max()) for d in deltas.values())
        rel = float(torch.sqrt(sum((d**2).sum() for d in deltas.values())) / norm)
        steps = int(epochs) * -(-len(rows) // config.per_device_train_batch_size)
        print(
            f"| {lr:g} | {epochs:g} | {steps} | {after:.3f} | {after / before:.2f} | {biggest:.1e} | {rel:.1e} "
            f"| {seconds:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
