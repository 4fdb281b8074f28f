"""`StudyConfig`: every knob of a DART study, readable from YAML by `TrlParser`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

#: Training conditions, in table order (DESIGN.md §6): the expert data as is, DART, the two cheap baselines,
#: the two prefix-hint baselines without a grid, and DART in rounds.
CONDITIONS = ("static", "dart", "pass_rate", "rft", "hint_fixed", "hint_minimal", "iterative")
#: Tasks generated from a seed, with the ground truth known per row.
GENERATED_TASKS = ("planted_gap", "skill_transfer")


@dataclass
class StudyConfig:
    """One student, one expert train set, one held-out set; conditions x seeds."""

    # Data and student
    task: str = field(
        default="planted_gap",
        metadata={
            "help": "'planted_gap' or 'skill_transfer' (generated, ground truth known) or a dataset (file, folder, "
            "Hub id) with problem/solution[/answer] columns, split by `eval_fraction`."
        },
    )
    student: Optional[str] = field(
        default=None,
        metadata={"help": "Model id or folder; default: the task's shipped student (planted-gap or skill-transfer)."},
    )
    n_train: int = field(default=200, metadata={"help": "Expert training problems."})
    n_eval: int = field(default=200, metadata={"help": "Held-out problems (never in the training set)."})
    eval_fraction: float = field(default=0.3, metadata={"help": "Dataset tasks: share of rows held out."})
    data_seed: int = field(default=0, metadata={"help": "Seed of the generated task or of the train/eval split."})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "Study seeds (sampling + training)."})
    conditions: list[str] = field(
        default_factory=lambda: list(CONDITIONS), metadata={"help": f"Subset of {CONDITIONS}."}
    )

    # Generation (shared by DART and the baselines)
    n_sim: int = field(
        default=4, metadata={"help": "DART rollouts per prefix; also the pass-rate samples per problem."}
    )
    n_explore: int = field(default=4, metadata={"help": "DART extra rollouts at the pre-gap prefix."})
    temperature: float = field(
        default=0.7, metadata={"help": "Sampling temperature for every condition and the evaluation."}
    )
    max_new_tokens: int = field(default=96, metadata={"help": "Cap per rollout."})
    verifier: str = field(
        default="math",
        metadata={"help": "The judge of answers: 'math', 'code', 'choice' or 'module:function' (docs/verifiers.md)."},
    )
    gap_rule: str = field(default="drop", metadata={"help": "DART gap rule."})
    gap_margin: float = field(default=0.5, metadata={"help": "DART `drop` margin."})
    early_stop: bool = field(default=True, metadata={"help": "DART cheaper simulation (exact)."})
    adaptive_sampling: bool = field(default=True, metadata={"help": "DART cheaper simulation (exact)."})
    pass_rate_band: list[float] = field(
        default_factory=lambda: [0.1, 0.9],
        metadata={"help": "Pass-rate filtering keeps problems with a pass rate in [low, high]."},
    )
    rft_samples: Optional[int] = field(
        default=None,
        metadata={
            "help": "RFT samples per problem; default: as many as match DART's generated tokens (at least n_sim)."
        },
    )

    hint_fraction: float = field(
        default=0.5,
        metadata={"help": "hint_fixed: share p of the expert steps given as the hint (the first ceil(p * T))."},
    )
    iterative_rounds: int = field(
        default=2, metadata={"help": "iterative: DART rounds (adapt, train, adapt again with the trained student)."}
    )

    # Training (identical for every condition)
    learning_rate: float = field(
        default=1e-4,
        metadata={
            "help": "SFT learning rate (1e-4 keeps the planted-gap student intact under SFT on its own samples)."
        },
    )
    num_train_epochs: float = field(default=3.0, metadata={"help": "SFT epochs."})
    per_device_train_batch_size: int = field(default=16, metadata={"help": "SFT batch size."})
    max_length: int = field(default=256, metadata={"help": "SFT max tokens per example."})

    # Evaluation
    eval_samples: int = field(default=4, metadata={"help": "Samples per held-out problem."})
    ks: list[int] = field(default_factory=lambda: [1, 4], metadata={"help": "pass@k reported."})
    bootstrap: int = field(default=2000, metadata={"help": "Bootstrap resamples for the 95%% intervals."})

    output_dir: str = field(default="outputs/study", metadata={"help": "Where results.json, results.md, study.png go."})
    use_cpu: bool = field(default=True, metadata={"help": "Train and generate on the CPU."})

    def __post_init__(self) -> None:
        unknown = [c for c in self.conditions if c not in CONDITIONS]
        if unknown or not self.conditions:
            raise ValueError(f"conditions must be a non-empty subset of {CONDITIONS}, got {self.conditions}")
        if not 0.0 <= self.hint_fraction <= 1.0:
            raise ValueError(f"hint_fraction must be in [0, 1], got {self.hint_fraction}")
        if self.iterative_rounds < 1:
            raise ValueError(f"iterative_rounds must be >= 1, got {self.iterative_rounds}")
        if not self.seeds:
            raise ValueError("seeds must not be empty")
        for name in ("n_train", "n_eval", "n_sim", "eval_samples", "max_new_tokens", "bootstrap"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if any(k < 1 or k > self.eval_samples for k in self.ks):
            raise ValueError(f"every k in ks must be in 1..eval_samples={self.eval_samples}, got {self.ks}")
        low, high = self.pass_rate_band
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"pass_rate_band must be [low, high] within [0, 1], got {self.pass_rate_band}")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}")
