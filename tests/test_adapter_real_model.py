"""The map contract with a real (tiny) transformers student: processes, determinism, fingerprints."""

import time

import datasets
import pytest
import torch
from datasets.fingerprint import Hasher

from dart_hf import DartAdapter, DartConfig
from dart_hf.backends.transformers import TransformersBackend

PROBLEMS = [
    {"problem": "What is 2 + 3?", "solution": "We add.\n\n2 + 3 = 5.\n\nSo \\boxed{5}."},
    {"problem": "What is 4 * 2?", "solution": "Multiply.\n\n4 * 2 = 8.\n\n\\boxed{8}", "answer": "8"},
    {"problem": "Half of 1?", "solution": "One half.\n\n\\boxed{\\frac{1}{2}}", "answer": None},
    {"problem": "Broken row", "solution": "", "answer": "1"},
    {"problem": "What is 10 - 7?", "solution": "Subtract.\n\n10 - 7 = 3.\n\nAnswer \\boxed{3}"},
]

CONFIG = dict(n_sim=2, n_explore=2, max_new_tokens=12, temperature=1.0)


def _compare(a, b):
    for name in a.column_names:
        if name != "dart_seconds":  # wall time is the one column that differs between runs
            assert a[name] == b[name] or _nan_equal(a[name], b[name]), name


def _nan_equal(x, y):
    import math

    flat = lambda v: [z for row in v for z in (row if isinstance(row, list) else [row])]  # noqa: E731
    return all((p == q) or (isinstance(p, float) and math.isnan(p) and math.isnan(q)) for p, q in zip(flat(x), flat(y)))


@pytest.fixture(scope="module")
def dataset():
    return datasets.Dataset.from_list(PROBLEMS)


def test_defaults_work_with_a_local_model_dir(tiny_student, dataset):
    adapter = DartAdapter(tiny_student, DartConfig(**CONFIG), progress=False)
    out = dataset.map(adapter, batched=True, load_from_cache_file=False)
    assert len(out) == len(dataset)
    assert out["dart_action"][3] == "error"
    assert all(a in ("imitate", "explore", "fallback") for i, a in enumerate(out["dart_action"]) if i != 3)
    assert out["dart_answer"][:3] == ["5", "8", "\\frac{1}{2}"]
    assert all(len(f) == len(s) + 1 for f, s in zip(out["dart_step_success"], out["dart_steps"]))
    assert all(t > 0 for i, t in enumerate(out["dart_tokens_generated"]) if i != 3)


def test_same_seed_same_output_for_any_batch_size_and_num_proc(tiny_student, dataset):
    adapter = DartAdapter(tiny_student, DartConfig(**CONFIG), progress=False)
    base = dataset.map(adapter, batched=True, batch_size=1000, load_from_cache_file=False)
    by_one = dataset.map(adapter, batched=True, batch_size=1, load_from_cache_file=False)
    two_proc = dataset.map(adapter, batched=True, batch_size=2, num_proc=2, load_from_cache_file=False)
    shuffled = dataset.select([4, 3, 2, 1, 0]).map(adapter, batched=True, load_from_cache_file=False)
    _compare(base, by_one)
    _compare(base, two_proc)
    _compare(base, shuffled.select([4, 3, 2, 1, 0]))
    other_seed = dataset.map(
        DartAdapter(tiny_student, DartConfig(**CONFIG, seed=1), progress=False),
        batched=True,
        load_from_cache_file=False,
    )
    assert (
        other_seed["dart_step_success"] != base["dart_step_success"]
        or other_seed["dart_solution"] != base["dart_solution"]
    )


def test_pickling_for_workers_does_not_ship_lazily_loaded_weights(tiny_student, dataset):
    import pickle

    adapter = DartAdapter(tiny_student, DartConfig(**CONFIG), progress=False)
    dataset.select([0]).map(adapter, batched=True, load_from_cache_file=False)
    assert adapter.backend.is_loaded
    clone = pickle.loads(pickle.dumps(adapter))
    assert not clone.backend.is_loaded
    assert clone.fingerprint == adapter.fingerprint


def test_fingerprint_equal_for_equal_student_and_config_and_differs_otherwise(tiny_student, tmp_path):
    from dart_hf.local_models import build_tiny_student

    a = Hasher.hash(DartAdapter(tiny_student, DartConfig(n_sim=4)))
    assert a == Hasher.hash(DartAdapter(tiny_student, DartConfig(n_sim=4)))
    assert a != Hasher.hash(DartAdapter(tiny_student, DartConfig(n_sim=8)))
    assert a != Hasher.hash(DartAdapter(tiny_student, DartConfig(n_sim=4, gap_rule=lambda s: None)))
    other = build_tiny_student(tmp_path / "other", seed=1)
    assert a != Hasher.hash(DartAdapter(other, DartConfig(n_sim=4)))
    assert Hasher.hash(DartAdapter("org/model", revision_config := DartConfig())) != Hasher.hash(
        DartAdapter(TransformersBackend("org/model", revision="v2"), revision_config)
    )


def test_hashing_a_loaded_model_is_fast_and_stable():
    from transformers import LlamaConfig, LlamaForCausalLM

    from dart_hf.local_models import build_tiny_student  # noqa: F401 (tokenizer not needed for hashing)

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=512,
        intermediate_size=2048,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=8,
        vocab_size=32000,
    )
    model = LlamaForCausalLM(config)  # ~60M parameters: pickling its weights would take seconds
    tok = object()
    backend = TransformersBackend(model, tokenizer=tok)
    start = time.perf_counter()
    h1 = Hasher.hash(DartAdapter(backend, DartConfig()))
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"hashing took {elapsed:.2f}s"
    assert h1 == Hasher.hash(DartAdapter(TransformersBackend(model, tokenizer=tok), DartConfig()))
    with torch.no_grad():
        model.model.embed_tokens.weight[0, 0] += 1.0
    assert h1 != Hasher.hash(DartAdapter(TransformersBackend(model, tokenizer=tok), DartConfig()))


def test_map_cache_is_reused_for_the_same_adapter(tiny_student, dataset, tmp_path):
    ds = datasets.Dataset.from_list(PROBLEMS[:2])
    path = tmp_path / "src"
    ds.save_to_disk(path)
    ds = datasets.load_from_disk(path)  # cached map needs a dataset backed by files
    first = ds.map(DartAdapter(tiny_student, DartConfig(**CONFIG), progress=False), batched=True)
    second = ds.map(DartAdapter(tiny_student, DartConfig(**CONFIG), progress=False), batched=True)
    assert first.cache_files == second.cache_files
    third = ds.map(DartAdapter(tiny_student, DartConfig(**CONFIG, seed=5), progress=False), batched=True)
    assert third.cache_files != first.cache_files


@pytest.mark.parametrize("switches", [dict(early_stop=True), dict(early_stop=True, adaptive_sampling=True)])
def test_cheaper_simulation_matches_the_full_grid_with_a_real_model(tiny_student, dataset, switches):
    config = dict(CONFIG, n_sim=3)
    full = dataset.map(
        DartAdapter(tiny_student, DartConfig(**config), progress=False), batched=True, load_from_cache_file=False
    )
    cheap = dataset.map(
        DartAdapter(tiny_student, DartConfig(**config, **switches), progress=False),
        batched=True,
        load_from_cache_file=False,
    )
    for name in ("dart_gap_step", "dart_action", "dart_solution", "dart_selection"):
        assert cheap[name] == full[name], name
    # the samples drawn are the full grid's: where a prefix got all n_sim rollouts its score is identical
    for f_full, f_cheap, drawn in zip(
        full["dart_step_success"], cheap["dart_step_success"], cheap["dart_step_samples"]
    ):
        assert all(a == b for a, b, d in zip(f_full, f_cheap, drawn) if d == 3)
    if switches.get("adaptive_sampling"):
        assert sum(cheap["dart_tokens_generated"]) < sum(full["dart_tokens_generated"])
    else:
        assert sum(cheap["dart_tokens_generated"]) <= sum(full["dart_tokens_generated"])
