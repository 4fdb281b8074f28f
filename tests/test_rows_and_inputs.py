"""Bad rows and hostile inputs: every row in gets one row out, with a reason when it cannot be adapted.

Pinned with the scripted backend (tests/scripted.py) and the real math-verify.
"""

import dataclasses
import math

import datasets
import pytest

from dart_hf import DartAdapter, DartConfig
from dart_hf.adapter import OUTPUT_COLUMNS
from dart_hf.example import parse_example
from dart_hf.prompts import render_prompt

from scripted import TEMPLATE, ScriptedBackend, expert

T, F, N = True, False, None
ALL = [T, T, T, T]
SIM = {0: ALL, 1: [T, F, T, T], 2: [F, F, N, F], 3: ALL}  # gap at step 2 -> explore
GOOD = {"problem": "What is 6*7?", "solution": expert(3), "answer": "42"}


def adapter(backend=None, batched=None, **cfg):
    cfg.setdefault("prompt_template", TEMPLATE)
    cfg.setdefault("n_explore", 3)
    return DartAdapter(backend or ScriptedBackend(sim=SIM), DartConfig(**cfg), progress=False, batched=batched)


def comparable(rows):
    """Rows without the timing column, NaN made comparable."""
    return [
        {
            k: ([None if isinstance(x, float) and math.isnan(x) else x for x in v] if k == "dart_step_success" else v)
            for k, v in row.items()
            if k != "dart_seconds"
        }
        for row in rows
    ]


# ------------------------------------------------------------------ #7 unbatched map reads rows, not columns
def messages_row(content="What is 6*7?"):
    return {
        "messages": [{"role": "user", "content": content}, {"role": "assistant", "content": expert(3)}],
        "answer": "42",
    }


def test_unbatched_map_of_an_empty_conversation_is_an_error_row():
    ds = datasets.Dataset.from_list([{"messages": [], "answer": "42"}, messages_row()])
    out = ds.map(adapter(), load_from_cache_file=False)
    assert out["dart_action"] == ["error", "explore"]
    assert "no assistant turn" in out["dart_error"][0]


def test_unbatched_map_of_a_list_typed_problem_is_one_error_row():
    ds = datasets.Dataset.from_list([{"problem": ["a", "b"], "solution": expert(3), "answer": "42"}] * 2)
    for out in (
        ds.map(adapter(), load_from_cache_file=False),
        ds.map(adapter(), batched=True, load_from_cache_file=False),
    ):
        assert out["dart_action"] == ["error", "error"]
        assert "'problem' must be a string, got list" in out["dart_error"][0]


def test_a_plain_dict_batch_is_read_as_a_batch_and_a_plain_row_as_a_row():
    # what `Dataset[a:b]` (the distributed runner) and IterableDataset.map give: plain dicts
    batch = datasets.Dataset.from_list([GOOD, GOOD])[0:2]
    assert type(batch) is dict
    out = adapter()(batch)
    assert out["dart_action"] == ["explore", "explore"]
    assert adapter()(dict(GOOD))["dart_action"] == "explore"
    # a row whose every column is a list of one length is a batch by shape: the explicit flag settles it
    odd = {"problem": ["a", "b"], "solution": ["x", "y"]}
    assert adapter(batched=False)(odd)["dart_action"] == "error"
    assert len(adapter()(odd)["dart_action"]) == 2
    with pytest.raises(ValueError, match="not columns of one length"):
        adapter(batched=True)(dict(GOOD))  # a row declared a batch would be read character by character


def test_the_batched_flag_must_agree_with_the_map_call():
    ds = datasets.Dataset.from_list([GOOD])
    with pytest.raises(ValueError, match="batched=True"):
        ds.map(adapter(batched=True), load_from_cache_file=False)
    with pytest.raises(ValueError, match="batched=False"):
        ds.map(adapter(batched=False), batched=True, load_from_cache_file=False)


# a zoo of bad rows mixed with good ones, every column present in every row (as Arrow requires)
def zoo_row(problem="What is 6*7?", solution=None, answer="42", messages=None):
    return {
        "problem": problem,
        "solution": expert(3) if solution is None else solution,
        "answer": answer,
        "messages": messages,
    }


ZOO = [
    zoo_row(),
    zoo_row(problem=None, messages=[]),  # None problem, empty conversation
    zoo_row(problem=""),
    zoo_row(problem="  \n"),
    zoo_row(solution=""),
    zoo_row(answer=""),  # no gold: no \boxed{} in the expert solution either
    zoo_row(answer="\\frac{"),
    zoo_row(problem="Say {prefix} and {instruction}."),  # placeholders in the data are text
    zoo_row(problem=None, messages=[{"role": "assistant", "content": "x"}]),
    zoo_row(
        problem=None,
        messages=[{"role": "user", "content": "What is 6*7?"}, {"role": "assistant", "content": expert(3)}],
    ),
    zoo_row(solution=expert(3, " so \\boxed{42}"), answer=None),  # gold from the expert's box
]


@pytest.mark.parametrize("batch_size", [1, 3, 1000])
def test_batched_and_unbatched_give_the_same_rows(batch_size):
    ds = datasets.Dataset.from_list(ZOO)
    rows = ds.map(adapter(), load_from_cache_file=False)
    batched = ds.map(adapter(), batched=True, batch_size=batch_size, load_from_cache_file=False)
    assert len(rows) == len(batched) == len(ZOO)
    assert rows.features == batched.features
    assert comparable(rows.to_list()) == comparable(batched.to_list())
    actions = rows["dart_action"]
    assert actions.count("error") == 7 and actions[0] == actions[7] == actions[9] == actions[10] == "explore"


def test_error_rows_have_the_columns_and_types_of_good_rows():
    good = datasets.Dataset.from_list([ZOO[0]]).map(adapter(), batched=True, load_from_cache_file=False)
    for row in ZOO[1:7] + ZOO[8:9]:
        bad = datasets.Dataset.from_list([row]).map(adapter(), batched=True, load_from_cache_file=False)
        assert bad["dart_action"] == ["error"]
        assert {c: bad.features[c] for c in OUTPUT_COLUMNS} == {c: good.features[c] for c in OUTPUT_COLUMNS}, row


# ------------------------------------------------------------------ #4 math-verify timeouts are not wrong answers
# Math-Verify issue 65: parses, then sympy never finishes comparing it (see tests/test_verifiers_math.py)
HANGS = r"\dfrac{5^{\left(5^{\left(5^{\left(5^5\right)}\right)} - 4\right)} - 5}{16}"
WRONG = [F, F, F, F]


def test_a_gold_that_hangs_math_verify_is_an_error_not_imitate():
    backend = ScriptedBackend(sim={t: WRONG for t in range(4)})
    out = adapter(backend, verify_timeout=1.0)({**GOOD, "answer": HANGS})
    assert out["dart_action"] == "error"  # was "imitate" with f = 0 everywhere
    assert "timed out in math-verify" in out["dart_error"]
    assert out["dart_verify_timeouts"] == 1
    assert backend.calls == []  # refused before any sampling


def test_a_row_whose_comparisons_all_time_out_is_an_error():
    backend = ScriptedBackend(sim={t: [F, N, F, F] for t in range(4)}, wrong=HANGS)  # the student writes it
    out = adapter(backend, verify_timeout=1.0)(GOOD)
    assert out["dart_action"] == "error"
    assert out["dart_error"] == "every math-verify comparison timed out (12 of 12, over 1 s each)"
    assert out["dart_verify_timeouts"] == 12
    assert set(out) == set(OUTPUT_COLUMNS)


def test_some_timeouts_are_counted_and_the_row_kept():
    out = adapter(ScriptedBackend(sim=SIM, wrong=HANGS), verify_timeout=1.0)(GOOD)
    assert out["dart_action"] == "explore"
    assert out["dart_verify_timeouts"] == 4  # the four False outcomes of SIM
    assert adapter()(GOOD)["dart_verify_timeouts"] == 0


# ------------------------------------------------------------------ #8 placeholders in the data are text
def test_prompt_template_substitutes_in_the_template_only():
    config = DartConfig(prompt_template="Q: {problem}\n{instruction}\nA: {prefix}", instruction="Box it.")
    example = parse_example(
        {"problem": "Is {prefix} a {instruction}?", "solution": "a {problem}\n\nb", "answer": "1"}, config
    )
    prompt = render_prompt(example, "a {problem}\n\n", None, config)
    assert prompt == "Q: Is {prefix} a {instruction}?\nBox it.\nA: a {problem}\n\n"


def test_placeholders_in_the_problem_do_not_leak_the_expert_steps():
    backend = ScriptedBackend(sim=SIM)
    prompts = []
    generate = backend.generate
    backend.generate = lambda requests: prompts.extend(r.prompt for r in requests) or generate(requests)
    out = adapter(backend)({**GOOD, "problem": "Say {prefix}."})
    assert out["dart_action"] == "explore"
    assert prompts and all(p.startswith("Say {prefix}.||") for p in prompts), prompts[-1]


# ------------------------------------------------------------------ #11 reasons that say what is wrong
def test_a_none_problem_says_none_not_missing():
    out = adapter()({"problem": None, "solution": expert(3), "answer": "42"})
    assert out["dart_action"] == "error"
    assert out["dart_error"] == "'problem' is None or empty"


@pytest.mark.parametrize(
    "gold, reason",
    [
        ({"value": 42}, "gold answer ('answer') must be a string or a finite number, got dict"),
        (["42"], "gold answer ('answer') must be a string or a finite number, got list"),
        (float("nan"), "gold answer ('answer') must be a string or a finite number, got nan"),
        (float("inf"), "gold answer ('answer') must be a string or a finite number, got inf"),
        (True, "gold answer ('answer') must be a string or a finite number, got bool"),
    ],
)
def test_a_gold_that_is_not_an_answer_is_refused(gold, reason):
    out = adapter()({**GOOD, "answer": gold})
    assert out["dart_action"] == "error"
    assert out["dart_error"] == reason


@pytest.mark.parametrize("gold, text", [(42, "42"), (42.0, "42.0"), (0.5, "0.5"), (-3, "-3")])
def test_numeric_golds_are_accepted(gold, text):
    out = adapter(ScriptedBackend(sim=SIM, gold=text))({**GOOD, "answer": gold})
    assert out["dart_action"] == "explore", out["dart_error"]
    assert out["dart_answer"] == text


# ------------------------------------------------------------------ more hostile rows (found while testing)
@pytest.mark.parametrize(
    "steps, reason",
    [
        ("STEP 1 a\n\nSTEP 2 b", "'steps' must be a list of strings, got str"),  # was split into characters
        (["STEP 1 a", 3, "STEP 2 b"], "'steps' must be a list of strings, got int at index 1"),  # was dropped
        (["STEP 1 a", None, "STEP 2 b"], "'steps' must be a list of strings, got NoneType at index 1"),
    ],
)
def test_given_steps_must_be_a_list_of_strings(steps, reason):
    out = adapter(steps_column="steps")({**GOOD, "steps": steps})
    assert out["dart_action"] == "error"
    assert out["dart_error"] == reason


@pytest.mark.parametrize(
    "row, reason",
    [
        (
            {"messages": ["hello", {"role": "assistant", "content": "x"}], "answer": "42"},
            "messages must be a list of {'role', 'content'} dicts",
        ),  # was an AttributeError
        ({"messages": "What is 6*7?", "answer": "42"}, "'messages' must be a list of messages, got str"),
        ({"messages": None, "answer": "42"}, "'messages' is None"),
        ({"problem": float("nan"), "solution": expert(3), "answer": "42"}, "'problem' must be a string, got float"),
    ],
)
def test_malformed_problems_and_conversations(row, reason):
    out = adapter()(row)
    assert out["dart_action"] == "error"
    assert out["dart_error"] == reason


def test_a_long_gold_is_shortened_in_the_reason():
    out = adapter()({**GOOD, "answer": "4" * 5000})
    assert out["dart_action"] == "error" and "could not be parsed by math-verify" in out["dart_error"]
    assert len(out["dart_error"]) < 200


def test_every_output_column_is_documented():
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    transform = open(os.path.join(root, "docs", "transform.md"), encoding="utf-8").read()
    readme = open(os.path.join(root, "README.md"), encoding="utf-8").read()
    for name in OUTPUT_COLUMNS:
        assert f"`{name}`" in transform and f"`{name}`" in readme, name


# ------------------------------------------------------------------ dart_error is "" on good rows, not None
def test_good_rows_first_then_an_error_row_in_a_later_batch():
    """The reason `dart_error` is "" on good rows (see schema.OUTPUT_FEATURES): map is called without
    `features=`, so the first batch written types the column; "" keeps it a string column."""
    ds = datasets.Dataset.from_list([GOOD, GOOD, {"problem": "x", "solution": "", "answer": "42"}])
    for batched in (True, False):
        out = ds.map(adapter(), batched=batched, batch_size=1, writer_batch_size=1, load_from_cache_file=False)
        assert out["dart_error"][:2] == ["", ""] and "empty expert solution" in out["dart_error"][2]
        assert out.features["dart_error"] == datasets.Value("string")


def test_none_in_a_first_batch_would_stop_the_map():
    """What `datasets` does with None in a first batch: if this ever passes, None could replace ""."""

    def as_none(batch):
        return {"dart_error": [None if i == 0 else "reason" for i in batch["i"]]}

    ds = datasets.Dataset.from_list([{"i": 0}, {"i": 1}])
    with pytest.raises(TypeError, match="its type in this file is null"):
        ds.map(as_none, batched=True, batch_size=1, writer_batch_size=1, load_from_cache_file=False)


# ------------------------------------------------------------------ issue 20 #3: text Arrow cannot store
class SurrogateBackend(ScriptedBackend):
    """A server whose (valid JSON) answers hold a lone surrogate, `"\\ud800"`, in every completion."""

    def generate(self, requests):
        return [
            [dataclasses.replace(c, text=c.text.replace("student", "stud\ud800ent")) for c in completions]
            for completions in super().generate(requests)
        ]


def lone_surrogate_rule(scores):
    raise ValueError("rule broke on \udfff")  # an exception message is written too, into dart_error


def surrogate_rows():
    return datasets.Dataset.from_list([GOOD, {**GOOD, "problem": "What is 7*6?"}])


def test_a_lone_surrogate_from_a_server_is_repaired_through_map():
    out = surrogate_rows().map(
        adapter(SurrogateBackend(sim=SIM), keep_rollouts=True), batched=True, load_from_cache_file=False
    )
    assert out["dart_action"] == ["explore", "explore"]  # rows in = rows out, adapted as before
    for row in out:
        assert "stud\ufffdent" in row["dart_solution"][row["dart_student_start"] :]
        assert row["completion"][0]["content"] == row["dart_solution"]
        assert all("stud\ufffdent" in text for text in row["dart_rollouts"]["text"])

    rule = surrogate_rows().map(
        adapter(SurrogateBackend(sim=SIM), gap_rule=lone_surrogate_rule), batched=True, load_from_cache_file=False
    )
    assert rule["dart_action"] == ["error", "error"]
    assert all("rule broke on \ufffd" in reason for reason in rule["dart_error"])


def test_a_lone_surrogate_from_a_server_never_stops_the_resumable_writer(tmp_path):
    from dart_hf.report import compute_stats, write_outputs
    from dart_hf.resumable import adapt_in_chunks

    out = adapt_in_chunks(surrogate_rows(), adapter(SurrogateBackend(sim=SIM)), str(tmp_path), chunk_size=1)
    assert out["dart_action"] == ["explore", "explore"]
    assert all("stud\ufffdent" in solution for solution in out["dart_solution"])
    paths = write_outputs(out, str(tmp_path), stats=compute_stats(out))
    assert datasets.load_from_disk(paths["dataset"])["dart_solution"] == out["dart_solution"]
