"""`keep_rollouts`: every judged continuation in `dart_rollouts`; `dart_rollout_endings` always."""

import math

import datasets
import pytest

from dart_hf import DartAdapter, DartConfig, rollout_records
from dart_hf.schema import ROLLOUT_ENDINGS, ROLLOUT_FIELDS

from scripted import TEMPLATE, ScriptedBackend, expert

T, F, N = True, False, None
ALL = [T, T, T, T]
NONE = [F, F, N, F]
SIM = {0: ALL, 1: [T, F, T, T], 2: NONE, 3: ALL}  # gap at step 2; explore reuses the rollouts after step 1
ROW = {"problem": "What is 6*7?", "solution": expert(3), "answer": "42"}


def adapt(backend, row=ROW, **cfg):
    cfg.setdefault("prompt_template", TEMPLATE)
    cfg.setdefault("n_explore", 3)
    cfg.setdefault("keep_rollouts", True)
    return DartAdapter(backend, DartConfig(**cfg), progress=False)(row)


def check_consistent(out):
    """Invariants every adapted row satisfies: counts, verdicts and tokens agree with the other columns."""
    records = rollout_records(out["dart_rollouts"])
    sim = [r for r in records if r["phase"] == "sim"]
    for t, (f, n) in enumerate(zip(out["dart_step_success"], out["dart_step_samples"])):
        at_t = [r for r in sim if r["prefix_index"] == t]
        assert [r["sample"] for r in at_t] == list(range(n))
        if n:
            assert sum(r["correct"] for r in at_t) / n == f
    assert sum(r["tokens"] for r in records) == out["dart_tokens_generated"]
    endings = dict.fromkeys(ROLLOUT_ENDINGS, 0)
    for r in records:
        endings[r["finish_reason"]] += 1
    assert out["dart_rollout_endings"] == endings
    chosen = [r for r in records if r["chosen"]]
    if out["dart_action"] == "explore":
        (pick,) = chosen
        assert pick["correct"] and out["dart_solution"][out["dart_student_start"] :] == pick["text"]
    else:
        assert chosen == []
    return records


def test_explore_row_keeps_the_simulation_grid_and_marks_the_reused_rollout():
    out = adapt(ScriptedBackend(sim=SIM, logprobs={1: [-0.9, -0.1, -0.2, -0.5]}))
    assert out["dart_action"] == "explore" and out["dart_gap_step"] == 2
    records = check_consistent(out)
    assert len(records) == 16
    assert [(r["phase"], r["prefix_index"], r["sample"]) for r in records] == [
        ("sim", t, j) for t in range(4) for j in range(4)
    ]
    assert [r["correct"] for r in records] == [v is True for t in range(4) for v in SIM[t]]
    assert [r["answer"] for r in records[8:12]] == ["-1", "-1", "", "-1"]  # "" = no answer extracted
    assert [r["finish_reason"] for r in records[8:12]] == ["answer", "answer", "length", "answer"]
    assert out["dart_rollout_endings"] == {"answer": 15, "stop": 0, "length": 1}
    (chosen,) = [r for r in records if r["chosen"]]
    assert (chosen["prefix_index"], chosen["sample"], chosen["logprob"]) == (1, 2, -0.2)
    assert records[0]["text"] == "student sim 0.0 so \\boxed{42}"


def test_exploration_rollouts_are_stored_after_the_grid():
    backend = ScriptedBackend(sim={t: NONE for t in range(4)}, explore={0: [F, T, T]})
    out = adapt(backend, gap_rule=lambda scores: 1)
    records = check_consistent(out)
    assert len(records) == sum(out["dart_step_samples"]) + 3
    assert [(r["phase"], r["prefix_index"], r["sample"], r["correct"]) for r in records[16:]] == [
        ("explore", 0, 0, False),
        ("explore", 0, 1, True),
        ("explore", 0, 2, True),
    ]
    assert [r["chosen"] for r in records] == [False] * 17 + [True, False]


def test_backoff_stores_the_failed_exploration_too():
    backend = ScriptedBackend(sim={0: [F, T, F, T], 1: [F, F, T, F], 2: NONE, 3: NONE}, explore={2: [F, F, F]})
    out = adapt(backend, gap_rule=lambda scores: 3, fallback="backoff")
    records = check_consistent(out)
    assert [(r["phase"], r["prefix_index"]) for r in records[16:]] == [("explore", 2)] * 3
    (chosen,) = [r for r in records if r["chosen"]]
    assert (chosen["phase"], chosen["prefix_index"], chosen["sample"]) == ("sim", 0, 1)


@pytest.mark.parametrize("fallback", ["expert", "drop"])
def test_fallback_row_marks_nothing_chosen(fallback):
    backend = ScriptedBackend(sim={t: NONE for t in range(4)}, explore={0: [F, N, F]})
    out = adapt(backend, gap_rule=lambda scores: 1, fallback=fallback)
    assert out["dart_action"] == "fallback"
    records = check_consistent(out)
    assert len(records) == 19 and not any(r["chosen"] for r in records)


def test_cheaper_simulation_stores_only_what_was_drawn_plus_top_ups():
    # early stop: prefixes 0..2 are simulated, the gap is at step 2; nothing after it is drawn
    out = adapt(ScriptedBackend(sim=SIM), early_stop=True, adaptive_sampling=True)
    assert out["dart_action"] == "explore"
    records = check_consistent(out)
    assert len(records) == sum(out["dart_step_samples"]) < 16
    assert out["dart_step_samples"][1] == 4  # topped up to n_sim before selecting at the pre-gap prefix


def test_imitate_row_and_finish_reasons_from_the_backend():
    backend = ScriptedBackend(sim={0: [N, N, T, F], 1: [T, N, T, F], 2: ALL, 3: ALL}, lost_reason="stop")
    out = adapt(backend)
    assert out["dart_action"] == "imitate"
    check_consistent(out)
    assert out["dart_rollout_endings"] == {"answer": 13, "stop": 3, "length": 0}


def test_off_by_default_the_column_is_empty_but_endings_are_counted():
    out = adapt(ScriptedBackend(sim=SIM), keep_rollouts=False)
    assert set(out["dart_rollouts"]) == set(ROLLOUT_FIELDS)
    assert all(len(v) == 0 for v in out["dart_rollouts"].values())
    assert rollout_records(out["dart_rollouts"]) == []
    assert out["dart_rollout_endings"] == {"answer": 15, "stop": 0, "length": 1}
    assert DartConfig().keep_rollouts is False


def test_error_rows_have_the_same_fields():
    out = adapt(ScriptedBackend(sim={}), row={"problem": "p", "solution": "", "answer": "1"})
    assert out["dart_action"] == "error"
    assert out["dart_rollout_endings"] == {"answer": 0, "stop": 0, "length": 0}
    assert set(out["dart_rollouts"]) == set(ROLLOUT_FIELDS)
    assert all(len(v) == 0 for v in out["dart_rollouts"].values())


def test_unknown_finish_reasons_count_as_stop():
    from dart_hf.backends.base import Completion
    from dart_hf.rollouts import count_endings
    from dart_hf.simulation import Rollout

    got = count_endings(
        [Rollout(0, Completion("x", 1, finish_reason=r), None, False) for r in ("content_filter", "length")]
    )
    assert got == {"answer": 0, "stop": 1, "length": 1}


def test_texts_are_kept_exactly():
    from dart_hf.backends.base import Completion
    from dart_hf.rollouts import rollout_column
    from dart_hf.simulation import Rollout

    texts = ["a\x00", "", "é\n  "]
    column = rollout_column(
        [(Rollout(0, Completion(x, 1, None), None, False), "sim", j) for j, x in enumerate(texts)], None
    )
    stored = datasets.Dataset.from_list([{"r": column}])[0]["r"]
    assert [r["text"] for r in rollout_records(stored)] == texts
    assert all(math.isnan(r["logprob"]) for r in rollout_records(stored))


# ---------------------------------------------------------------------------------------------- datasets
ROWS = [
    {"problem": "broken", "solution": "", "answer": "42"},
    {"problem": "no gold", "solution": expert(3), "answer": ""},
    {"problem": "What is 6*7?", "solution": expert(3), "answer": "42"},
    {"problem": "What is 40+2?", "solution": expert(3), "answer": "42"},
]


def _map(keep, **kwargs):
    config = DartConfig(prompt_template=TEMPLATE, n_explore=3, keep_rollouts=keep)
    adapter = DartAdapter(ScriptedBackend(sim=SIM), config, progress=False)
    return datasets.Dataset.from_list(ROWS).map(adapter, load_from_cache_file=False, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(batched=True, batch_size=2),
        dict(batched=True, batch_size=1),
        dict(batched=False),
        dict(batched=True, batch_size=2, num_proc=2),
    ],
)
def test_first_batch_of_errors_then_rollouts_types_the_column(kwargs):
    on = _map(True, **kwargs)
    off = _map(False, **kwargs)
    assert on["dart_action"] == ["error", "error", "explore", "explore"]
    assert on.features["dart_rollouts"] == off.features["dart_rollouts"]
    assert on.features["dart_rollouts"] == {
        "prefix_index": datasets.List(datasets.Value("int64")),
        "phase": datasets.List(datasets.Value("string")),
        "sample": datasets.List(datasets.Value("int64")),
        "text": datasets.List(datasets.Value("string")),
        "answer": datasets.List(datasets.Value("string")),
        "correct": datasets.List(datasets.Value("bool")),
        "tokens": datasets.List(datasets.Value("int64")),
        "finish_reason": datasets.List(datasets.Value("string")),
        "logprob": datasets.List(datasets.Value("float64")),
        "chosen": datasets.List(datasets.Value("bool")),
    }
    assert on.features["dart_rollout_endings"] == {k: datasets.Value("int64") for k in ROLLOUT_ENDINGS}
    assert [len(rollout_records(v)) for v in on["dart_rollouts"]] == [0, 0, 16, 16]
    assert [len(rollout_records(v)) for v in off["dart_rollouts"]] == [0, 0, 0, 0]
    assert on["dart_rollout_endings"] == off["dart_rollout_endings"]
    assert on["dart_rollout_endings"][2] == {"answer": 15, "stop": 0, "length": 1}
    # the stored records are what the adapter returned, and datasets with and without rollouts concatenate
    direct = rollout_records(adapt(ScriptedBackend(sim=SIM), row=ROWS[2])["dart_rollouts"])
    assert rollout_records(on[2]["dart_rollouts"]) == direct
    assert len(datasets.concatenate_datasets([off, on])) == 8


def test_rollouts_survive_save_and_parquet(tmp_path):
    on = _map(True, batched=True)
    on.save_to_disk(str(tmp_path / "ds"))
    on.to_parquet(str(tmp_path / "ds.parquet"))
    for again in (
        datasets.load_from_disk(str(tmp_path / "ds")),
        datasets.Dataset.from_parquet(str(tmp_path / "ds.parquet")),
    ):
        assert rollout_records(again[3]["dart_rollouts"]) == rollout_records(on[3]["dart_rollouts"])
        assert all(math.isnan(r["logprob"]) is False for r in rollout_records(again[3]["dart_rollouts"]))


def test_rollout_records_rejects_ragged_values():
    with pytest.raises(ValueError, match="different lengths"):
        rollout_records({name: [] if name != "text" else ["x"] for name in ROLLOUT_FIELDS})
    assert rollout_records(None) == []


# ---------------------------------------------------------------------------------------------- real model
def test_token_cap_is_counted_with_a_real_student(tiny_student):
    rows = [{"problem": "What is 2 + 3?", "solution": "We add.\n\n2 + 3 = 5.\n\nSo \\boxed{5}."}]
    config = DartConfig(n_sim=2, n_explore=2, max_new_tokens=3, temperature=1.0, keep_rollouts=True)
    out = datasets.Dataset.from_list(rows).map(DartAdapter(tiny_student, config, progress=False), batched=True)
    endings = out[0]["dart_rollout_endings"]
    records = rollout_records(out[0]["dart_rollouts"])
    assert sum(endings.values()) == len(records) >= 2 * 4
    assert endings["length"] >= 1  # a random tiny model rarely stops within 3 tokens
    assert all(r["tokens"] <= 3 for r in records)
    assert all(r["tokens"] == 3 for r in records if r["finish_reason"] == "length")
    assert endings == {k: sum(r["finish_reason"] == k for r in records) for k in ROLLOUT_ENDINGS}
