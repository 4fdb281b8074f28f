"""The pass@k `evaluate` module: loaded offline from its file, judged by any verifier, scores in evaluate's model-index shape."""

from __future__ import annotations

import pytest

evaluate = pytest.importorskip("evaluate")

from dart_hf.evaluation import pass_at_k  # noqa: E402
from dart_hf.metrics import PASS_AT_K, load_pass_at_k  # noqa: E402
from dart_hf.verifiers import CodeVerifier  # noqa: E402

TESTS = "def check(candidate):\n    assert candidate(2, 3) == 5\n"


def test_loads_offline_from_its_file_as_an_evaluation_module(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    module = evaluate.load(PASS_AT_K)
    assert isinstance(module, evaluate.EvaluationModule)
    assert "pass@k" in module.description


def test_math_scores_match_the_unbiased_estimator():
    module = load_pass_at_k()
    predictions = [
        ["so \\boxed{4}", "\\boxed{5}", "the answer is 4", "no idea"],  # 2 of 4 (phrase fallback counts)
        ["\\boxed{\\frac{1}{2}}", "\\boxed{0.5}", "\\boxed{2}", "\\boxed{1/2}"],  # 3 of 4
    ]
    scores = module.compute(predictions=predictions, references=["4", "\\frac12"], k=[1, 2, 4])
    for k in (1, 2, 4):
        assert scores[f"pass@{k}"] == pytest.approx((pass_at_k(4, 2, k) + pass_at_k(4, 3, k)) / 2)
    assert scores["accuracy"] == pytest.approx(5 / 8) and scores["no_verdict"] == 0


def test_code_verifier_object_and_row_entry_points():
    good = "```python\ndef add(a, b):\n    return a + b\n```"
    bad = "```python\ndef add(a, b):\n    while True:\n        pass\n```"
    scores = load_pass_at_k().compute(
        predictions=[[good, bad]],
        references=[TESTS],
        k=[1, 2],
        verifier=CodeVerifier(timeout=2),
        rows=[{"entry_point": "add"}],
    )
    assert (scores["pass@1"], scores["pass@2"], scores["no_verdict"]) == (0.5, 1.0, 1)  # the loop: no verdict


def test_model_card_model_index_is_what_evaluate_would_push(monkeypatch):
    """evaluate.push_to_hub cannot run offline (it asks the Hub about the model first): capture what it would send."""
    import evaluate.hub

    sent = {}
    monkeypatch.setattr(evaluate.hub, "model_info", lambda *a, **k: None)
    monkeypatch.setattr(evaluate.hub, "dataset_info", lambda *a, **k: None)
    monkeypatch.setattr(evaluate.hub, "metadata_update", lambda repo_id, metadata, overwrite: sent.update(metadata))
    evaluate.push_to_hub(
        model_id="me/student",
        task_type="text-generation",
        dataset_type="humaneval",
        dataset_name="humaneval",
        metric_type="pass@1",
        metric_name="pass@1",
        metric_value=0.25,
    )
    from dart_hf.cards import model_card

    card = model_card(
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
        dataset_id=None,
        dart_config=None,
        training_args=None,
        eval_results={"humaneval": {"pass@1": 0.25}},
    )
    ours = card.data.to_dict()["model-index"][0]["results"][0]
    theirs = sent["model-index"][0]["results"][0]
    assert ours["task"] == theirs["task"] and ours["dataset"] == theirs["dataset"]
    assert {k: ours["metrics"][0][k] for k in ("type", "value")} == {"type": "pass@1", "value": 0.25}
    assert {k: theirs["metrics"][0][k] for k in ("type", "value")} == {"type": "pass@1", "value": 0.25}


def test_dart_hf_evaluate_scores_with_the_module_and_writes_eval_results(tiny_student, tmp_path):
    import json
    import os
    import subprocess
    import sys

    data = tmp_path / "test.jsonl"
    data.write_text("\n".join(json.dumps({"problem": f"{i} + {i}?", "answer": str(2 * i)}) for i in range(3)) + "\n")
    out = tmp_path / "eval.json"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(
        [sys.executable, "-m", "dart_hf", "evaluate", "--model", tiny_student, "--dataset_name", str(data),
         "--n_samples", "2", "--ks", "1", "2", "--max_new_tokens", "4", "--output_file", str(out)],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["verifier"] == "math" and result["no_verdict"] == 0
    assert all(len(r["responses"]) == 2 and r["gold"] for r in result["rows"])
    expected = sum(pass_at_k(2, r["correct"], 2) for r in result["rows"]) / 3
    assert result["pass@2"] == pytest.approx(expected)
    assert result["eval_results"] == {str(data): {k: result[k] for k in ("accuracy", "pass@1", "pass@2")}}
