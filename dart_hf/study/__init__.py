"""The evidence harness: does DART-adapted SFT beat static SFT and the cheap baselines on held-out problems?

`run_study(StudyConfig(...))` builds the training set of every condition from one student and one
expert train set at a matched generation budget, trains each with `DartTrainer` under identical
hyper-parameters for several seeds, evaluates on a held-out set, and writes `results.json`,
`results.md`, `study.png` and `card_section.md`. Run it as `dart-hf study --config x.yaml`.
"""

from .config import CONDITIONS, StudyConfig
from .harness import run_study

__all__ = ["CONDITIONS", "StudyConfig", "run_study"]
