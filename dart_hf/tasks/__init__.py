"""Controlled tasks for studying DART where the ground truth is known (see `docs/study.md`).

`dart_hf.tasks.PlantedGapTask` is the documented name; the task's module keeps the details.
"""

from .planted_gap import PlantedGapTask, score_detection

__all__ = ["PlantedGapTask", "score_detection"]
