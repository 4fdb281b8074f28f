"""Run a study: build every condition's training set, train it with `DartTrainer` per seed, evaluate, aggregate."""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import tempfile
import time
from typing import Any, Optional

import datasets
import numpy as np

from ..config import DartConfig
from ..evaluation import evaluate_student
from ..tasks.skill_transfer import states_number, states_quantity
from .conditions import (
    TrainingSet,
    dart_set,
    hint_fixed_set,
    hint_minimal_set,
    matched_samples,
    parse_all,
    pass_rate_set,
    rft_set,
    sample_from_scratch,
    static_set,
)
from .config import GENERATED_TASKS, StudyConfig
from .stats import bootstrap_mean, per_problem_pass

logger = logging.getLogger(__name__)

#: The untrained student, evaluated beside the conditions as the reference every SFT run starts from.
BASE = "base"


def load_task(config: StudyConfig) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Train and held-out sets; the held-out problems never appear in the training set."""
    if config.task in GENERATED_TASKS:
        from ..tasks.planted_gap import PlantedGapTask
        from ..tasks.skill_transfer import SkillTransferTask

        task = PlantedGapTask() if config.task == "planted_gap" else SkillTransferTask()
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
    wants_dart = {"dart", "iterative"} & set(config.conditions)
    if wants_dart or ("rft" in config.conditions and config.rft_samples is None):
        sets["dart"] = dart_set(train, backend, dcfg, verifier)
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
    if "hint_fixed" in config.conditions:
        sets["hint_fixed"] = hint_fixed_set(examples, backend, verifier, dcfg, config.hint_fraction)
    if "hint_minimal" in config.conditions:
        sets["hint_minimal"] = hint_minimal_set(examples, backend, verifier, dcfg)
    if "dart" not in config.conditions and "iterative" not in config.conditions:
        sets.pop("dart", None)
    return sets


def train_condition(
    student: Any, rows: datasets.Dataset, config: StudyConfig, seed: int, tokenizer: Any = None
) -> tuple[Any, Any, float]:
    """SFT the student (a folder, or a loaded model + `tokenizer`) on `rows` with `DartTrainer`; identical
    hyper-parameters for every condition."""
    from transformers import AutoTokenizer
    from transformers.trainer_callback import PrinterCallback

    from ..sft_config import DartSFTConfig
    from ..trainer import DartTrainer

    tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(student)
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


def run_iterative(
    student: Any,
    train: datasets.Dataset,
    first: TrainingSet,
    dart_trained: Optional[tuple[Any, Any, float]],
    config: StudyConfig,
    seed: int,
    verifier: Any = None,
) -> tuple[Any, Any, dict[str, Any]]:
    """DART in `config.iterative_rounds` rounds (`dart_hf.iterative`); round 1 is the `dart` condition.

    Round 1 adapts with the untrained student and trains exactly as `dart` does, so its data and (when
    `dart` ran) its trained model are reused; each later round adapts the same problems with the
    student the previous round trained and trains that student further on the new rows.
    """
    from ..iterative import iterative_dart

    if dart_trained is not None:
        model, tokenizer, train_seconds = copy.deepcopy(dart_trained[0]), dart_trained[1], dart_trained[2]
    elif len(first.rows):
        model, tokenizer, train_seconds = train_condition(student, first.rows, config, seed)
    else:
        model, tokenizer, train_seconds = student, None, 0.0
    record: dict[str, Any] = {
        "train_rows": len(first.rows),
        "gen_tokens": first.tokens_generated,
        "gen_seconds": first.seconds,
        "info": {"rounds": [first.info.get("actions", {})]},
    }

    def train_round(m: Any, tok: Any, rows: datasets.Dataset, index: int) -> tuple[Any, Any]:
        trained, tok, _ = train_condition(m, rows, config, seed, tokenizer=tok)
        return trained, tok

    if config.iterative_rounds > 1:
        rounds = iterative_dart(
            model,
            train,
            dart_config(config, seed),
            train_round,
            rounds=config.iterative_rounds - 1,
            tokenizer=tokenizer,
            device="cpu" if config.use_cpu else None,
            first_round=1,
            verifier=verifier,
        )
        for r in rounds:
            record["gen_tokens"] += r.tokens_generated
            record["gen_seconds"] += r.generation_seconds
            train_seconds += r.training_seconds
            record["info"]["rounds"].append(r.actions)
        record["train_rows"] = len(rounds[-1].rows)
        model, tokenizer = rounds[-1].model, rounds[-1].tokenizer
    if tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model)
    record["train_seconds"] = train_seconds
    return model, tokenizer, record


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
    skills = evalset["skill"] if "skill" in evalset.column_names else [""] * len(evalset)
    stated = [
        [states_quantity(text, skill) for text in r.get("responses", [])] if skill else []
        for r, skill in zip(result["rows"], skills)
    ]
    flat = [x for xs in stated for x in xs]
    quantities = evalset["quantity"] if "quantity" in evalset.column_names else [0] * len(evalset)
    numbers = [
        states_number(text, quantity)
        for r, skill, quantity in zip(result["rows"], skills, quantities)
        if skill
        for text in r.get("responses", [])
    ]
    return {
        "correct": [r["correct"] for r in result["rows"]],
        "states_quantity": sum(flat) / len(flat) if flat else None,
        "states_number": sum(numbers) / len(numbers) if numbers else None,
        "accuracy": result["accuracy"],
        "tokens": result["tokens_generated"],
        "seconds": result["wall_seconds"],
    }


def run_study(config: StudyConfig, *, progress: bool = True) -> dict[str, Any]:
    """Run every seed and condition; write the outputs into `config.output_dir`; return the results dict."""
    from tqdm.auto import tqdm

    from ..backends.transformers import TransformersBackend
    from ..verifiers import make_verifier
    from ..verifiers.base import stop_rule_of

    verifier = make_verifier(config.verifier)  # a bad spec is a usage error, before any work
    os.makedirs(config.output_dir, exist_ok=True)
    started = time.perf_counter()
    student = config.student
    if student is None:
        from ..tasks.skill_student import skill_student
        from ..tasks.student import planted_student

        student = skill_student() if config.task == "skill_transfer" else planted_student()
    train, evalset = load_task(config)
    device = "cpu" if config.use_cpu else None
    stop = stop_rule_of(verifier)  # every condition samples and is evaluated with the verifier's stop rule

    def backend(model: Any, tokenizer: Any = None) -> TransformersBackend:
        return TransformersBackend(model, tokenizer, device=device, stop_at_answer=stop)

    base_backend = backend(student)
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
        trained: dict[str, tuple[Any, Any, float]] = {}  # the DART model is iterative's first round
        for condition in config.conditions:
            tset = sets["dart" if condition == "iterative" else condition]
            record: dict[str, Any] = {
                "seed": seed,
                "train_rows": len(tset.rows),
                "gen_tokens": tset.tokens_generated,
                "gen_seconds": tset.seconds,
                "info": {k: v for k, v in tset.info.items() if k != "gap_steps"},
            }
            if condition == "iterative":
                model, tokenizer, extra = run_iterative(
                    student, train, sets["dart"], trained.get("dart"), config, seed, verifier
                )
                record.update(extra)
                record.update(_evaluate(backend(model, tokenizer), evalset, config, seed, verifier))
            elif len(tset.rows) == 0:  # nothing to train on: the condition leaves the student as it was
                record.update(train_seconds=0.0, **ev)
            else:
                model, tokenizer, seconds = train_condition(student, tset.rows, config, seed)
                trained[condition] = (model, tokenizer, seconds)
                record.update(
                    train_seconds=seconds,
                    **_evaluate(backend(model, tokenizer), evalset, config, seed, verifier),
                )
            runs[condition].append(record)
            bar.update()
        if seed != config.seeds[-1]:  # a long study shows (and keeps) every finished seed
            _write(runs, config, evalset, student, train, started, partial=True)
    bar.close()
    return _write(runs, config, evalset, student, train, started, partial=False)


def _write(
    runs: dict[str, list[dict[str, Any]]],
    config: StudyConfig,
    evalset: datasets.Dataset,
    student: Any,
    train: datasets.Dataset,
    started: float,
    partial: bool,
) -> dict[str, Any]:
    """Aggregate the seeds run so far and write the outputs (`partial`: not every seed has run yet)."""
    from .outputs import write_study_outputs

    results = aggregate(runs, config, problem_subsets(evalset))
    results.update(
        student=student,
        task=config.task,
        n_train=len(train),
        n_eval=len(evalset),
        config=dataclasses.asdict(config),
        seeds_done=[r["seed"] for r in runs[BASE]],
        partial=partial,
        wall_seconds=time.perf_counter() - started,
    )
    results["outputs"] = write_study_outputs(results, config.output_dir)
    return results


def problem_subsets(evalset: datasets.Dataset) -> dict[str, list[int]]:
    """Held-out problems reported apart: `skill` and `plain` where the task marks a skill per problem."""
    if "skill" not in evalset.column_names:
        return {}
    skills = evalset["skill"]
    return {"skill": [i for i, s in enumerate(skills) if s], "plain": [i for i, s in enumerate(skills) if not s]}


def _summarise(
    runs: dict[str, list[dict[str, Any]]], config: StudyConfig, columns: Optional[list[int]] = None
) -> dict[str, Any]:
    matrices = {
        c: {k: np.stack([per_problem_pass(r["correct"], config.eval_samples, k) for r in rs]) for k in config.ks}
        for c, rs in runs.items()
    }
    if columns is not None:
        matrices = {c: {k: m[:, columns] for k, m in ms.items()} for c, ms in matrices.items()}
    summary: dict[str, Any] = {}
    for condition, rs in runs.items():
        stated = [r["states_quantity"] for r in rs if r.get("states_quantity") is not None]
        numbers = [r["states_number"] for r in rs if r.get("states_number") is not None]
        entry: dict[str, Any] = {
            "train_rows": float(np.mean([r["train_rows"] for r in rs])),
            "gen_tokens": float(np.mean([r["gen_tokens"] for r in rs])),
            "gen_seconds": float(np.mean([r["gen_seconds"] for r in rs])),
            "train_seconds": float(np.mean([r["train_seconds"] for r in rs])),
            "states_quantity": float(np.mean(stated)) if stated else None,
            "states_number": float(np.mean(numbers)) if numbers else None,
        }
        for k in config.ks:
            m = matrices[condition][k]
            entry[f"pass@{k}"] = bootstrap_mean(m, config.bootstrap)
            entry[f"pass@{k}_per_seed"] = [float(np.nanmean(row)) for row in m]
            # every condition against static SFT, DART and the untouched student; DART against every other condition
            others = [c for c in matrices if c != condition] if condition == "dart" else ["static", "dart", BASE]
            for other in others:
                if other in matrices and other != condition:
                    entry[f"pass@{k}_minus_{other}"] = bootstrap_mean(m, config.bootstrap, baseline=matrices[other][k])
        summary[condition] = entry
    return summary


def aggregate(
    runs: dict[str, list[dict[str, Any]]], config: StudyConfig, subsets: Optional[dict[str, list[int]]] = None
) -> dict[str, Any]:
    """Per condition: pass@k with intervals, paired differences to static SFT, DART and the untrained student,
    cost; the same per subset of held-out problems (`problem_subsets`); raw runs kept."""
    return {
        "summary": _summarise(runs, config),
        "subsets": {name: _summarise(runs, config, cols) for name, cols in (subsets or {}).items() if cols},
        "runs": {c: [dict(r) for r in rs] for c, rs in runs.items()},
    }
