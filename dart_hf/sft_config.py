"""`DartSFTConfig`: TRL's `SFTConfig` plus the knobs of DART's provenance-aware SFT (DESIGN.md §1 step 6)."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import SFTConfig


@dataclass
class DartSFTConfig(SFTConfig):
    r"""
    Configuration for [`DartTrainer`][dart_hf.trainer.DartTrainer]: every [`trl.SFTConfig`] field, plus:

    Parameters:
        expert_weight (`float`, *optional*, defaults to `1.0`):
            Loss weight of completion tokens imitated from the expert (before `dart_student_start`).
        explore_weight (`float`, *optional*, defaults to `1.0`):
            Loss weight of completion tokens the student wrote itself (from `dart_student_start` on).
        filter_unusable (`bool`, *optional*, defaults to `True`):
            Drop rows `DartAdapter` could not adapt (`dart_action == "error"`) or dropped (empty
            `dart_solution`) before training, and log how many.

    The loss is the weighted mean `sum(w_i * nll_i) / sum(w_i)` over completion tokens (and over the whole
    gradient-accumulation batch), so the weights are relative: `1.0/1.0` is plain SFT as in the paper (and equals
    `SFTTrainer`'s loss), `explore_weight=0.0` is SFT on the expert-imitated tokens only (the student's tokens give no
    gradient at all), and `expert_weight=0.0` the converse.
    """

    expert_weight: float = field(
        default=1.0,
        metadata={
            "help": "Loss weight of expert-imitated completion tokens (before `dart_student_start`). Weights are "
            "relative: the loss is the weighted mean over completion tokens. 1.0/1.0 = plain SFT as in the paper."
        },
    )
    explore_weight: float = field(
        default=1.0,
        metadata={
            "help": "Loss weight of student-explored completion tokens (from `dart_student_start` on). 0.0 = the "
            "student's own tokens give no gradient. 1.0/1.0 = plain SFT as in the paper."
        },
    )
    filter_unusable: bool = field(
        default=True,
        metadata={
            "help": "Drop rows that DartAdapter could not adapt (`dart_action='error'`) or dropped (empty "
            "`dart_solution`) before training, logging how many. Only applies to datasets with a `dart_action` column."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.expert_weight < 0 or self.explore_weight < 0:
            raise ValueError(
                "`expert_weight` and `explore_weight` must be >= 0, "
                f"got {self.expert_weight} and {self.explore_weight}."
            )
        if self.expert_weight == 0 and self.explore_weight == 0:
            raise ValueError("`expert_weight` and `explore_weight` cannot both be 0: nothing would be trained.")
