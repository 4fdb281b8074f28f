"""The planted-gap student: the shipped checkpoint is the default recipe's, training and caching work."""

import json

import pytest

from dart_hf import DartAdapter, DartConfig
from dart_hf.tasks import student as student_mod
from dart_hf.tasks.planted_gap import PlantedGapTask
from dart_hf.tasks.student import SHIPPED, StudentRecipe, planted_student, train_student

TINY = StudentRecipe(
    hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, n_train=40, steps=3, batch_size=4, warmup_steps=1
)


def test_shipped_student_is_the_default_recipe_and_is_used_without_training(monkeypatch):
    meta = json.loads((SHIPPED / "student_recipe.json").read_text())
    assert meta["key"] == StudentRecipe().key(), "the default StudentRecipe changed: retrain and ship the student"
    assert 1e6 <= meta["parameters"] * 4 <= 10e6  # ~1M parameters, a few MB
    monkeypatch.setattr(
        student_mod, "train_student", lambda *a, **k: pytest.fail("trained instead of using the shipped student")
    )
    assert planted_student() == str(SHIPPED)


def test_training_writes_a_loadable_student_and_the_cache_is_reused(tmp_path, monkeypatch):
    path = planted_student(TINY, cache_dir=tmp_path)
    meta = json.loads((tmp_path / f"planted-student-{TINY.key()}" / "student_recipe.json").read_text())
    assert meta["final_loss"] == meta["final_loss"] and meta["key"] == TINY.key()
    monkeypatch.setattr(student_mod, "train_student", lambda *a, **k: pytest.fail("retrained a cached student"))
    assert planted_student(TINY, cache_dir=tmp_path) == path
    rows = PlantedGapTask().generate(2, seed=0)
    out = rows.map(DartAdapter(path, DartConfig(n_sim=1, n_explore=0, max_new_tokens=4), progress=False), batched=True)
    assert out["dart_action"] != ["error", "error"], out["dart_error"]


def test_training_is_deterministic(tmp_path):
    a = train_student(TINY, tmp_path / "a")
    b = train_student(TINY, tmp_path / "b")
    assert a["final_loss"] == b["final_loss"]
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


@pytest.mark.slow
def test_shipped_student_is_competent_and_the_planted_step_makes_it_fail():
    """The regime the study needs, measured: high f before the planted step, a collapse at it."""
    rows = PlantedGapTask().generate(24, seed=11)
    cfg = DartConfig(n_sim=4, n_explore=0, max_new_tokens=64, seed=0)
    out = rows.map(DartAdapter(planted_student(), cfg, progress=False), batched=True, batch_size=24)
    before = [f[g - 1] for f, g in zip(out["dart_step_success"], rows["planted_gap"]) if g > 0]
    at = [f[g] for f, g in zip(out["dart_step_success"], rows["planted_gap"]) if g > 0]
    assert sum(before) / len(before) >= 0.7
    assert sum(at) / len(at) <= 0.3
