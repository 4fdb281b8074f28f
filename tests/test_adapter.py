"""The DART decision logic, pinned with a scripted backend and the real math-verify."""

import math

import datasets
import pytest

from dart_hf import DartAdapter, DartConfig, is_usable
from dart_hf.adapter import OUTPUT_COLUMNS

from scripted import TEMPLATE, CharTokenizer, ScriptedBackend, expert

T, F, N = True, False, None
ALL = [T, T, T, T]
NONE = [F, F, N, F]


def adapt(backend, row=None, **cfg):
    cfg.setdefault("prompt_template", TEMPLATE)
    cfg.setdefault("n_explore", 3)
    adapter = DartAdapter(backend, DartConfig(**cfg), progress=False)
    row = row or {"problem": "What is 6*7?", "solution": expert(3), "answer": "42"}
    return adapter(row)


def test_no_gap_keeps_the_expert_solution():
    backend = ScriptedBackend(sim={0: [F, F, T, F], 1: [T, F, T, F], 2: [T, T, F, F], 3: ALL})
    out = adapt(backend)
    assert out["dart_step_success"] == [0.25, 0.5, 0.5, 1.0]
    assert out["dart_gap_step"] == -1
    assert out["dart_action"] == "imitate"
    assert out["dart_solution"] == expert(3)
    assert out["dart_student_start"] == -1
    assert out["dart_error"] == ""
    assert out["completion"] == [{"role": "assistant", "content": expert(3)}]
    assert backend.calls == [("sim", t, 4) for t in range(4)]


def test_explore_reuses_correct_simulation_rollouts_before_the_gap():
    # f = 1, 0.75, 0 -> gap at step 2; the three correct rollouts after step 1 are the candidates
    backend = ScriptedBackend(
        sim={0: ALL, 1: [T, F, T, T], 2: [F, F, F, F], 3: ALL},
        logprobs={1: [-0.9, -0.1, -0.2, -0.5]},  # sample 1 is wrong; sample 2 is the most native correct one
    )
    out = adapt(backend)
    assert out["dart_gap_step"] == 2
    assert out["dart_action"] == "explore"
    prefix = "STEP 1 of the expert.\n\n"
    assert out["dart_solution"] == prefix + "student sim 1.2 x x so \\boxed{42}"
    assert out["dart_student_start"] == len(prefix)
    assert out["dart_solution"][out["dart_student_start"] :].startswith("student")
    assert out["dart_selection"] == "logprob"
    assert all(phase == "sim" for phase, _, _ in backend.calls), "no extra sampling when rollouts can be reused"


def test_selection_policies():
    sim = {0: ALL, 1: [T, F, T, T], 2: NONE, 3: ALL}
    shortest = adapt(ScriptedBackend(sim=sim), selection="shortest")
    assert shortest["dart_solution"].endswith("student sim 1.0 so \\boxed{42}")
    runs = {adapt(ScriptedBackend(sim=sim), selection="random", seed=s)["dart_solution"] for s in range(12)}
    assert len(runs) > 1, "random selection should depend on the seed"
    first, again = (adapt(ScriptedBackend(sim=sim), selection="random", seed=3) for _ in range(2))
    assert first["dart_solution"] == again["dart_solution"]


def test_logprob_selection_without_logprobs_falls_back_to_shortest_and_says_so():
    sim = {0: ALL, 1: [T, F, T, T], 2: NONE, 3: ALL}
    out = adapt(ScriptedBackend(sim=sim, logprobs={1: [None] * 4}))
    assert out["dart_selection"] == "shortest"
    assert out["dart_solution"].endswith("student sim 1.0 so \\boxed{42}")


def test_explore_samples_more_only_when_needed():
    # f_0 = 0, yet a user rule puts the gap at step 1: nothing to reuse at prefix 0 -> n_explore samples
    backend = ScriptedBackend(sim={0: NONE, 1: NONE, 2: NONE, 3: NONE}, explore={0: [F, T, T]})
    out = adapt(backend, gap_rule=lambda scores: 1)
    assert ("explore", 0, 3) in backend.calls
    assert out["dart_action"] == "explore"
    assert out["dart_student_start"] == 0
    assert out["dart_solution"].startswith("student explore 0.1")  # most native of the correct ones
    sim_only = adapt(ScriptedBackend(sim={0: NONE, 1: NONE, 2: NONE, 3: NONE}))
    explore_tokens = 5 + 6 + 7  # words of the wrong, then the two correct (with 1 and 2 fillers) samples
    assert out["dart_tokens_generated"] == sim_only["dart_tokens_generated"] + explore_tokens


@pytest.mark.parametrize("fallback, solution, usable", [("expert", expert(3), True), ("drop", "", False)])
def test_fallback_when_no_correct_continuation(fallback, solution, usable):
    backend = ScriptedBackend(sim={0: NONE, 1: NONE, 2: NONE, 3: NONE}, explore={0: [F, N, F]})
    out = adapt(backend, gap_rule=lambda scores: 1, fallback=fallback)
    assert out["dart_action"] == "fallback"
    assert out["dart_gap_step"] == 1
    assert out["dart_solution"] == solution
    assert is_usable(out) is usable


def test_backoff_tries_earlier_prefixes_best_first():
    # gap at step 3 (user rule); prefix 2 has no correct rollout and exploring there fails too;
    # backoff then goes to prefix 0 (f=0.5) before prefix 1 (f=0.25) and reuses its rollouts.
    backend = ScriptedBackend(sim={0: [F, T, F, T], 1: [F, F, T, F], 2: NONE, 3: NONE}, explore={2: [F, F, F]})
    out = adapt(backend, gap_rule=lambda scores: 3, fallback="backoff")
    assert out["dart_action"] == "explore"
    assert out["dart_gap_step"] == 3
    assert out["dart_student_start"] == 0
    assert out["dart_solution"] == "student sim 0.1 x so \\boxed{42}"
    assert ("explore", 1, 3) not in backend.calls


def test_threshold_rule_end_to_end():
    backend = ScriptedBackend(sim={0: [T, T, F, F], 1: [T, T, T, F], 2: [T, F, F, F], 3: ALL})
    out = adapt(backend, gap_rule="threshold", gap_threshold=0.5)
    assert out["dart_gap_step"] == 2
    assert out["dart_action"] == "explore"


def test_final_answer_counts_the_expert_prefix():
    # at t = T the expert already wrote \boxed{42}; a student that only stops is correct
    solution = expert(2, final=" Hence \\boxed{42}.")
    backend = ScriptedBackend(sim={0: NONE, 1: NONE, 2: [N, N, N, N]})
    out = adapt(backend, row={"problem": "p", "solution": solution})
    assert out["dart_answer"] == "42"
    assert out["dart_step_success"] == [0.0, 0.0, 1.0]


def test_gold_from_nested_boxed_and_equivalence():
    solution = expert(1, final=" so \\boxed{\\frac{1}{2}}")
    backend = ScriptedBackend(sim={0: ALL, 1: ALL}, gold="0.5")
    out = adapt(backend, row={"problem": "p", "solution": solution, "answer": None})
    assert out["dart_answer"] == "\\frac{1}{2}"
    assert out["dart_step_success"] == [1.0, 1.0]  # "0.5" verifies against \frac{1}{2}


def test_conversational_rows():
    row = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 6*7?"},
            {"role": "assistant", "content": expert(3)},
        ],
        "answer": "42",
    }
    backend = ScriptedBackend(sim={0: ALL, 1: ALL, 2: ALL, 3: ALL})
    out = adapt(backend, row=row)
    assert out["dart_action"] == "imitate"
    assert out["prompt"][0] == {"role": "system", "content": "Be brief."}
    assert out["prompt"][1]["content"].startswith("What is 6*7?")
    assert "\\boxed{}" in out["prompt"][1]["content"]  # the instruction the student saw
    assert out["dart_steps"] == ["STEP 1 of the expert.\n\n", "STEP 2 of the expert.\n\n", "STEP 3 of the expert."]


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"problem": "p", "solution": "", "answer": "1"}, "empty expert solution"),
        ({"problem": "p", "solution": "no box here", "answer": None}, "no gold answer"),
        ({"problem": "p", "solution": "x", "answer": "\\frac{"}, "could not be parsed"),
        ({"problem": "", "solution": "x", "answer": "1"}, "'problem' is None or empty"),
        ({"messages": [{"role": "user", "content": "hi"}], "answer": "1"}, "no assistant turn"),
    ],
)
def test_bad_rows_get_an_error_status(row, reason):
    out = adapt(ScriptedBackend(sim={}), row=row)
    assert out["dart_action"] == "error"
    assert reason in out["dart_error"]
    assert set(out) == set(OUTPUT_COLUMNS)


def test_prompt_longer_than_context_is_a_row_error():
    backend = ScriptedBackend(sim={}, tokenizer=CharTokenizer(), context_length=30)
    out = adapt(backend)
    assert out["dart_action"] == "error"
    assert "longer than the student's context" in out["dart_error"]


def test_a_crashing_gap_rule_is_a_row_error_not_a_crash():
    def rule(scores):
        raise RuntimeError("user bug")

    out = adapt(ScriptedBackend(sim={0: ALL, 1: ALL, 2: ALL, 3: ALL}), gap_rule=rule)
    assert out["dart_action"] == "error"
    assert "user bug" in out["dart_error"]


def _dataset():
    rows = [
        {"problem": "What is 6*7?", "solution": expert(3), "answer": "42"},
        {"problem": "broken", "solution": "", "answer": "42"},
        {"problem": "What is 40+2?", "solution": expert(3), "answer": "42"},
        {"problem": "no gold", "solution": expert(3), "answer": ""},
        {"problem": "What is 84/2?", "solution": expert(3), "answer": "42"},
    ]
    return datasets.Dataset.from_list(rows)


SIM = {0: ALL, 1: [T, F, T, T], 2: NONE, 3: ALL}


@pytest.mark.parametrize("batch_size, num_proc", [(1, None), (2, None), (1000, None), (1, 2)])
def test_map_contract_rows_in_equal_rows_out(batch_size, num_proc):
    ds = _dataset()
    adapter = DartAdapter(ScriptedBackend(sim=SIM), DartConfig(prompt_template=TEMPLATE), progress=False)
    out = ds.map(adapter, batched=True, batch_size=batch_size, num_proc=num_proc, load_from_cache_file=False)
    assert len(out) == len(ds)
    assert out["problem"] == ds["problem"]  # order and input columns kept
    assert set(OUTPUT_COLUMNS) <= set(out.column_names)
    assert out["dart_action"] == ["explore", "error", "explore", "error", "explore"]
    assert out["dart_error"][0] == "" and "empty expert solution" in out["dart_error"][1]
    assert all(isinstance(x, float) for x in out["dart_step_success"][1])
    # the prompt-completion columns are what TRL's SFTTrainer reads
    assert out["completion"][0][0]["role"] == "assistant"
    assert out["prompt"][0][0]["role"] == "user"


def test_unbatched_map_works_too():
    out = _dataset().map(
        DartAdapter(ScriptedBackend(sim=SIM), DartConfig(prompt_template=TEMPLATE), progress=False),
        load_from_cache_file=False,
    )
    assert out["dart_action"] == ["explore", "error", "explore", "error", "explore"]


def test_step_success_nan_survives_arrow():
    ds = datasets.Dataset.from_list([{"problem": "p", "solution": "", "answer": "1"}])
    out = ds.map(
        DartAdapter(ScriptedBackend(sim={}), DartConfig(prompt_template=TEMPLATE), progress=False), batched=True
    )
    assert all(math.isnan(x) for x in out[0]["dart_step_success"])


# ------------------------------------------------------------------ what is wrong with the run, not the row


def test_a_run_error_stops_the_map_instead_of_becoming_error_rows():
    from dart_hf.errors import RunError

    class DeadBackend(ScriptedBackend):
        def generate(self, requests):
            raise RunError("no server answered")

    adapter = DartAdapter(DeadBackend(sim={}), DartConfig(prompt_template=TEMPLATE), progress=False)
    with pytest.raises(RunError, match="no server answered"):
        _dataset().map(adapter, batched=True, batch_size=2, load_from_cache_file=False)


def test_a_student_that_cannot_load_is_a_run_error_not_error_rows():
    from dart_hf.errors import RunError, UsageError

    adapter = DartAdapter("no-such-org/no-such-model", DartConfig(), progress=False)
    with pytest.raises(RunError, match="cannot load the student's tokenizer from 'no-such-org/no-such-model'"):
        _dataset().map(adapter, batched=True, load_from_cache_file=False)
    with pytest.raises(UsageError, match="'/nonexistent' is not a file or folder"):
        DartAdapter("/nonexistent")


def test_a_verifier_worker_that_cannot_start_is_a_run_error(tmp_path, monkeypatch):
    import dart_hf.verifiers.math as verification
    from dart_hf.errors import RunError

    broken = tmp_path / "worker.py"
    broken.write_text("import sys\nsys.exit(3)\n")  # as when math-verify is missing from the environment
    monkeypatch.setattr(verification, "_WORKER_FILE", str(broken))
    adapter = DartAdapter(ScriptedBackend(sim=SIM), DartConfig(prompt_template=TEMPLATE), progress=False)
    with pytest.raises(RunError, match="math-verify worker failed to start"):
        _dataset().map(adapter, batched=True, load_from_cache_file=False)


def test_a_request_that_failed_alone_fails_its_row_and_the_others_keep_their_rollouts():
    from dart_hf.backends.base import RequestsFailed

    class Flaky(ScriptedBackend):
        def generate(self, requests):
            out = super().generate(requests)
            bad = {
                i: RuntimeError("HTTP 400: prompt refused")
                for i, r in enumerate(requests)
                if r.prompt.startswith("What is 40+2?")
            }
            if bad:
                raise RequestsFailed([None if i in bad else o for i, o in enumerate(out)], bad)
            return out

    backend = Flaky(sim=SIM)
    out = _dataset().map(
        DartAdapter(backend, DartConfig(prompt_template=TEMPLATE), progress=False),
        batched=True,
        batch_size=1000,
        load_from_cache_file=False,
    )
    assert out["dart_action"] == ["explore", "error", "error", "error", "explore"]
    assert "prompt refused" in out["dart_error"][2]
    assert len(backend.calls) == 3 * 4  # rows 0, 2, 4 asked once for their 4 prefixes; nothing asked again


# ------------------------------------------------------------------ another judge: DartAdapter(..., verifier=...)
class ExactMatch:
    """Judges by exact string equality: "42.0" is not "42" (math-verify says it is)."""

    def judge_many(self, pairs):
        from dart_hf.verifiers import Verdict

        return [Verdict(pred is not None and pred.strip() == gold.strip()) for gold, pred in pairs]

    def inspect_gold(self, gold):
        from dart_hf.verifiers import GoldCheck

        return GoldCheck("LaTeX gold: exact match would miss equal answers" if "\\" in gold else None)


def test_a_custom_verifier_decides_what_the_adapter_counts_as_correct():
    row = {"problem": "What is 6*7?", "solution": expert(3), "answer": "42.0"}  # the student writes 42
    config = DartConfig(prompt_template=TEMPLATE, n_explore=3)
    by_math = DartAdapter(ScriptedBackend(sim=SIM), config, progress=False)(row)
    assert by_math["dart_step_success"] == [1.0, 0.75, 0.0, 1.0] and by_math["dart_action"] == "explore"
    by_string = DartAdapter(ScriptedBackend(sim=SIM), config, progress=False, verifier=ExactMatch())(row)
    assert by_string["dart_step_success"] == [0.0, 0.0, 0.0, 0.0] and by_string["dart_action"] == "imitate"
    latex = DartAdapter(ScriptedBackend(sim=SIM), config, progress=False, verifier=ExactMatch())(
        dict(row, answer="\\frac{84}{2}")
    )
    assert latex["dart_action"] == "error" and latex["dart_error"] == "LaTeX gold: exact match would miss equal answers"
    # through datasets, in worker processes too (the verifier is pickled with the adapter)
    adapter = DartAdapter(ScriptedBackend(sim=SIM), config, progress=False, verifier=ExactMatch())
    out = datasets.Dataset.from_list([row, dict(row, answer="42")]).map(
        adapter, batched=True, batch_size=1, num_proc=2, load_from_cache_file=False
    )
    assert out["dart_action"] == ["imitate", "explore"]


def test_the_verifier_is_part_of_the_cache_key():
    from datasets.fingerprint import Hasher

    from dart_hf.verifiers import MathVerifier

    config = DartConfig(prompt_template=TEMPLATE)

    def key(verifier=None):
        return DartAdapter(ScriptedBackend(sim=SIM), config, progress=False, verifier=verifier).fingerprint

    default = key()
    assert key(MathVerifier(timeout=config.verify_timeout)) == default  # the default, said out loud
    assert key(MathVerifier(timeout=config.verify_timeout + 1)) != default
    assert key(ExactMatch()) == key(ExactMatch()) != default

    class Named(ExactMatch):
        def __init__(self, fingerprint):
            self.fingerprint = fingerprint

    assert key(Named("a")) == key(Named("a")) != key(Named("b"))
    with_exact = DartAdapter(ScriptedBackend(sim=SIM), config, progress=False, verifier=ExactMatch())
    assert Hasher.hash(with_exact) != Hasher.hash(DartAdapter(ScriptedBackend(sim=SIM), config, progress=False))


def test_an_object_that_is_not_a_verifier_is_refused_at_once():
    from dart_hf.evaluation import evaluate_student
    from dart_hf.verifiers import MathVerifier, Verifier

    with pytest.raises(TypeError, match=r"verifier must implement dart_hf\.verifiers\.Verifier .*object has no"):
        DartAdapter(ScriptedBackend(sim=SIM), verifier=object())

    class OnlyJudges:
        def judge_many(self, pairs):
            return []

    with pytest.raises(TypeError, match="OnlyJudges has no inspect_gold$"):
        DartAdapter(ScriptedBackend(sim=SIM), verifier=OnlyJudges())
    with pytest.raises(TypeError, match="OnlyJudges has no inspect_gold$"):
        evaluate_student(ScriptedBackend(sim=SIM), _dataset(), verifier=OnlyJudges(), progress=False)
    assert isinstance(MathVerifier(), Verifier) and isinstance(ExactMatch(), Verifier)
    assert not isinstance(OnlyJudges(), Verifier)


def test_a_verifier_that_loses_verdicts_stops_the_run():
    from dart_hf.errors import RunError

    class Lossy(ExactMatch):
        def judge_many(self, pairs):
            return super().judge_many(pairs)[1:]

    adapter = DartAdapter(
        ScriptedBackend(sim=SIM), DartConfig(prompt_template=TEMPLATE), progress=False, verifier=Lossy()
    )
    with pytest.raises(RunError, match=r"Lossy\.judge_many returned \d+ verdicts for \d+ answers"):
        _dataset().map(adapter, batched=True, load_from_cache_file=False)


def test_a_custom_verifier_that_always_times_out_makes_error_rows():
    class Slow(ExactMatch):
        def judge_many(self, pairs):
            from dart_hf.verifiers import Verdict

            return [Verdict(False, pred is not None) for _, pred in pairs]  # no answer: nothing to time out

    out = DartAdapter(ScriptedBackend(sim=SIM), DartConfig(prompt_template=TEMPLATE), progress=False, verifier=Slow())(
        {"problem": "What is 6*7?", "solution": expert(3), "answer": "42"}
    )
    assert out["dart_action"] == "error"
    assert out["dart_error"] == "every comparison by Slow timed out (15 of 15)"  # every rollout with an answer
    assert out["dart_verify_timeouts"] == 15


def test_rows_that_come_back_together_are_judged_in_one_call_and_an_error_stays_with_its_row():
    class Counting(ExactMatch):
        calls: list[int] = []

        def judge_many(self, pairs):
            if any(gold == "99" for gold, _ in pairs):
                raise ValueError("cannot judge 99")
            self.calls.append(len(pairs))
            return super().judge_many(pairs)

    rows = [{"problem": f"What is {k}*1?", "solution": expert(3), "answer": "42"} for k in range(4)]
    counting = Counting()
    adapter = DartAdapter(ScriptedBackend(sim=SIM), DartConfig(prompt_template=TEMPLATE), verifier=counting)
    out = adapter.adapt_rows(rows)
    assert [r["dart_action"] for r in out] == ["explore"] * 4
    # the grid's round of all four rows comes back in one `generate` call: one verifier call for it
    assert counting.calls[0] == 4 * 4 * 4
    counting.calls.clear()
    out = adapter.adapt_rows([*rows[:2], dict(rows[2], answer="99"), rows[3]])
    assert [r["dart_action"] for r in out] == ["explore", "explore", "error", "explore"]
    assert out[2]["dart_error"] == "ValueError: cannot judge 99"
