"""pass@k with any dart_hf verifier, as an `evaluate` module (load it offline with `evaluate.load(<this file>)`).

`evaluate.load` copies this file into its modules cache and imports it from there, so it imports
`dart_hf` absolutely and holds no state of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

import datasets
import evaluate

_CITATION = """\
@article{chen2021codex,
  title={Evaluating Large Language Models Trained on Code},
  author={Mark Chen and others},
  journal={arXiv preprint arXiv:2107.03374},
  year={2021}
}
"""

_DESCRIPTION = """\
pass@k: the chance that at least one of k samples of a problem is correct, estimated without bias
from n >= k samples (Chen et al., 2021). Each sample is judged by a dart_hf verifier: 'math'
(math-verify, the default), 'code' (the sample's last code block run against the reference tests
in a sandboxed child process), 'choice', 'module:function' (a TRL reward function), or any
`dart_hf.verifiers.Verifier` object.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: one list of sampled responses (full texts) per problem.
    references: one gold per problem (an answer for 'math'/'choice', the tests for 'code').
    k: the k values (each <= the number of samples of every problem). Default [1].
    verifier: a name ('math', 'code', 'choice'), 'module:function', or a Verifier object.
    rows: optional, one dict of dataset columns per problem (e.g. `entry_point` for code, `solution`
        for TRL's accuracy_reward).
Returns:
    `pass@k` for each k, `accuracy` (the share of correct samples) and `no_verdict` (samples the
    verifier could not judge, counted as not correct).
Examples:
    >>> pass_at_k = evaluate.load("path/to/dart_hf/metrics/pass_at_k.py")
    >>> pass_at_k.compute(predictions=[["so \\\\boxed{4}", "\\\\boxed{5}"]], references=["4"], k=[1, 2])
    {'pass@1': 0.5, 'pass@2': 1.0, 'accuracy': 0.5, 'no_verdict': 0}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PassAtK(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("string")), "references": datasets.Value("string")}
            ),
            reference_urls=["https://arxiv.org/abs/2107.03374", "https://arxiv.org/abs/2505.20700"],
        )

    def _compute(
        self,
        predictions: Sequence[Sequence[str]],
        references: Sequence[str],
        k: Union[int, Sequence[int]] = (1,),
        verifier: Any = "math",
        rows: Optional[Sequence[dict]] = None,
    ) -> dict[str, float]:
        from dart_hf.evaluation import pass_at_k
        from dart_hf.verifiers import Attempt, make_verifier
        from dart_hf.verifiers.base import answer_of, as_verifier, judge_attempts

        ks = [k] if isinstance(k, int) else list(k)
        judge = make_verifier(verifier) if isinstance(verifier, str) else as_verifier(verifier, 5.0)
        rows = list(rows) if rows is not None else [{} for _ in references]
        if len(rows) != len(references):
            raise ValueError(f"rows has {len(rows)} entries for {len(references)} problems")
        attempts = [
            Attempt(gold, answer_of(judge, text), text, row)
            for samples, gold, row in zip(predictions, references, rows)
            for text in samples
        ]
        verdicts = iter(judge_attempts(judge, attempts))
        correct, total, no_verdict = [], 0, 0
        for samples in predictions:
            c = 0
            for _ in samples:
                ok, timed_out = next(verdicts)
                c += int(bool(ok))
                no_verdict += int(bool(timed_out))
            correct.append((len(samples), c))
            total += len(samples)
        out: dict[str, float] = {}
        for kk in ks:
            out[f"pass@{kk}"] = sum(pass_at_k(n, c, kk) for n, c in correct) / len(correct) if correct else float("nan")
        out["accuracy"] = sum(c for _, c in correct) / total if total else float("nan")
        out["no_verdict"] = no_verdict
        return out
