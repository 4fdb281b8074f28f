"""Run a study: build every condition's training set, train it with `DartTrainer` per seed, evaluate, aggregate."""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
from typing import Any

import datasets
import numpy as np

from ..config import DartConfig
from ..evaluation import evaluate_student
from .conditions import (
    TrainingSet,
    dart_set,
    matched_samples,
    parse_all,
    pass_rate_set,
    rft_set,
    sample_from_scratch,
    static_set,
)
from .config import StudyConfig
from .stats import bootstrap_mean, per_problem_pass

logger = logging.getLogger(__name__)

#: The untrained student, evaluated beside the conditions as the reference every SFT run starts from.
BASE = "base"


def load_task(config: StudyConfig) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Train and held-out sets; the held-out problems never appear in the training set."""
    if config.task == "planted_gap":
        from ..tasks.planted_gap import PlantedGapTask

        task = PlantedGapTask()
        train = task.generate(config.n_train, seed=config.data_seed)
        seen = set(train["problem"])
        pool = task.generate(config.n_eval * 2 + 50, seed=config.data_seed + 1_000_003)
        keep = [i for i, p in enumerate(pool["problem"]) if p not in seen][: config.n_eval]
        return train, pool.select(keep)
    from ..data import load_expert_dataset

    full = load_expert_dataset(config.task).shuffle(seed=config.data_seed)
    n_eval = max(1, round(len(full) * config.eval_fraction))
    evalset = full.select(range(min(n_eval, config.n_eval)))
    train = full.select(range(n_eval, min(len(full), n_eval + config.n_train)))
    return train, evalset


def dart_config(config: StudyConfig, seed: int) -> DartConfig:
    """The `DartConfig` every condition samples with (and the evaluation), seeded per study seed."""
    return DartConfig(
        n_sim=config.n_sim,
        n_explore=config.n_explore,
        temperature=config.temperature,
        max_new_tokens=config.max_new_tokens,
        gap_rule=config.gap_rule,
        gap_margin=config.gap_margin,
        early_stop=config.early_stop,
        adaptive_sampling=config.adaptive_sampling,
        seed=seed,
    )


def build_training_sets(
    config: StudyConfig, train: datasets.Dataset, backend: Any, verifier: Any, seed: int
) -> dict[str, TrainingSet]:
    """Every requested condition's rows, with generation cost; DART first, as it sets the matched budget."""
    dcfg = dart_config(config, seed)
    examples = parse_all(train, dcfg)
    sets: dict[str, TrainingSet] = {}
    if "static" in config.conditions:
        sets["static"] = static_set(examples)
    budget = None
    if "dart" in config.conditions or ("rft" in config.conditions and config.rft_samples is None):
        sets["dart"] = dart_set(train, backend, dcfg)
        budget = sets["dart"].tokens_generated
    if "pass_rate" in config.conditions or "rft" in config.conditions:
        start = time.perf_counter()
        probe = sample_from_scratch(examples, config.n_sim, backend, verifier, dcfg)
        probe_seconds = time.perf_counter() - start
        if "pass_rate" in config.conditions:
            sets["pass_rate"] = pass_rate_set(examples, probe, tuple(config.pass_rate_band))
            sets["pass_rate"].seconds = probe_seconds
        if "rft" in config.conditions:
            n = config.rft_samples or matched_samples(budget or 0, probe, len(train), config.n_sim)
            start = time.perf_counter()
            more = (
                sample_from_scratch(examples, n - config.n_sim, backend, verifier, dcfg, first=config.n_sim)
                if n > config.n_sim
                else [[] for _ in examples]
            )
            drawn = [a + b for a, b in zip(probe, more)] if n >= config.n_sim else [p[:n] for p in probe]
            sets["rft"] = rft_set(examples, drawn, dcfg)
            sets["rft"].seconds = probe_seconds * min(n, config.n_sim) / config.n_sim + time.perf_counter() - start
    if "dart" not in config.conditions:
        sets.pop("dart", None)
    return sets


def train_condition(student: str, rows: datasets.Dataset, config: StudyConfig, seed: int) -> tuple[Any, Any, float]:
    """SFT the student on `rows` with `DartTrainer`; identical hyper-parameters for every condition."""
    from transformers import AutoTokenizer
    from transformers.trainer_callback import PrinterCallback

    from ..sft_config import DartSFTConfig
    from ..trainer import DartTrainer

    tokenizer = AutoTokenizer.from_pretrained(student)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dart-study-") as tmp:
        args = DartSFTConfig(
            output_dir=tmp,
            learning_rate=config.learning_rate,
            num_train_epochs=config.num_train_epochs,
            per_device_train_batch_size=config.per_device_train_batch_size,
            max_length=config.max_length,
            lr_scheduler_type="constant_with_warmup",
            warmup_steps=5,
            seed=seed,
            data_seed=seed,
            use_cpu=config.use_cpu,
            bf16=False,
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            logging_steps=10,
            disable_tqdm=True,
            dataset_num_proc=None,
        )
        trainer = DartTrainer(model=student, args=args, train_dataset=rows, processing_class=tokenizer)
        trainer.remove_callback(PrinterCallback)  # the study prints its own table, not one metrics dict per run
        trainer.train()
    model = trainer.model.eval()
    return model, tokenizer, time.perf_counter() - start


def _evaluate(backend: Any, evalset: datasets.Dataset, config: StudyConfig, seed: int, verifier: Any) -> dict[str, Any]:
    result = evaluate_student(
        backend,
        evalset,
        dart_config(config, seed),
        n_samples=config.eval_samples,
        ks=tuple(config.ks),
        verifier=verifier,
        progress=False,
    )
    return {
        "correct": [r["correct"] for r in result["rows"]],
        "accuracy": result["accuracy"],
        "tokens": result["tokens_generated"],
        "seconds": result["wall_seconds"],
    }


def run_study(config: StudyConfig, *, progress: bool = True) -> dict[str, Any]:
    """Run every seed and condition; write the outputs into `config.output_dir`; return the results dict."""
    from tqdm.auto import tqdm

    from ..backends.transformers import TransformersBackend
    from ..verifiers import make_verifier

    verifier = make_verifier(config.verifier)  # a bad spec is a usage error, before any work
    os.makedirs(config.output_dir, exist_ok=True)
    started = time.perf_counter()
    student = config.student
    if student is None:
        from ..tasks.student import planted_student

        student = planted_student()
    train, evalset = load_task(config)
    device = "cpu" if config.use_cpu else None
    base_backend = TransformersBackend(student, device=device)
    _ = base_backend.model  # load now, so no condition's generation time includes loading the weights

    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in [BASE, *config.conditions]}
    steps = len(config.seeds) * (len(config.conditions) + 1)
    bar = tqdm(total=steps, desc="study", unit="run", disable=not progress)
    for seed in config.seeds:
        sets = build_training_sets(config, train, base_backend, verifier, seed)
        ev = _evaluate(base_backend, evalset, config, seed, verifier)
        runs[BASE].append(
            {"seed": seed, "train_rows": 0, "gen_tokens": 0, "gen_seconds": 0.0, "train_seconds": 0.0, **ev}
        )
        bar.update()
        for condition in config.conditions:
            tset = sets[condition]
            record: dict[str, Any] = {
                "seed": seed,
                "train_rows": len(tset.rows),
                "gen_tokens": tset.tokens_generated,
                "gen_seconds": tset.seconds,
                "info": {k: v for k, v in tset.info.items() if k != "gap_steps"},
            }
            if len(tset.rows) == 0:  # nothing to train on: the condition leaves the student as it was
                record.update(train_seconds=0.0, **ev)
            else:
                model, tokenizer, seconds = train_condition(student, tset.rows, config, seed)
                record.update(
                    train_seconds=seconds,
                    **_evaluate(TransformersBackend(model, tokenizer, device=device), evalset, config, seed, verifier),
                )
            runs[condition].append(record)
            bar.update()
    bar.close()

    results = aggregate(runs, config)
    results.update(
        student=student,
        task=config.task,
        n_train=len(train),
        n_eval=len(evalset),
        config=dataclasses.asdict(config),
        wall_seconds=time.perf_counter() - started,
    )
    from .outputs import write_study_outputs

    results["outputs"] = write_study_outputs(results, config.output_dir)
    return results


def aggregate(runs: dict[str, list[dict[str, Any]]], config: StudyConfig) -> dict[str, Any]:
    """Per condition: pass@k with intervals, the paired difference to static SFT, cost; raw runs kept."""
    matrices = {
        c: {k: np.stack([per_problem_pass(r["correct"], config.eval_samples, k) for r in rs]) for k in config.ks}
        for c, rs in runs.items()
    }
    summary: dict[str, Any] = {}
    for condition, rs in runs.items():
        entry: dict[str, Any] = {
            "train_rows": float(np.mean([r["train_rows"] for r in rs])),
            "gen_tokens": float(np.mean([r["gen_tokens"] for r in rs])),
            "gen_seconds": float(np.mean([r["gen_seconds"] for r in rs])),
            "train_seconds": float(np.mean([r["train_seconds"] for r in rs])),
        }
        for k in config.ks:
            m = matrices[condition][k]
            entry[f"pass@{k}"] = bootstrap_mean(m, config.bootstrap)
            entry[f"pass@{k}_per_seed"] = [float(np.nanmean(row)) for row in m]
            # every condition against static SFT and the untouched student; DART against every other condition
            others = [c for c in matrices if c != condition] if condition == "dart" else ["static", BASE]
            for other in others:
                if other in matrices and other != condition:
                    entry[f"pass@{k}_minus_{other}"] = bootstrap_mean(m, config.bootstrap, baseline=matrices[other][k])
        summary[condition] = entry
    return {"summary": summary, "runs": {c: [{k: v for k, v in r.items()} for r in rs] for c, rs in runs.items()}}
