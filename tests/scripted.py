"""A scripted generation backend: pins which continuations are correct, to test the DART logic exactly.

Prompts are rendered with the template "{problem}||{prefix}" and expert steps are "STEP k ...", so the
backend can tell which prefix it continues. Outcomes per prefix t and sample j: True (writes the gold),
False (writes a wrong answer), None (writes no answer). A continuation with an answer ends with
finish reason "answer"; one without ends with `lost_reason` ("length" unless set: it ran to the cap).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from dart_hf.backends.base import Completion

TEMPLATE = "{problem}||{prefix}"


def expert(n_steps: int, final: str = "") -> str:
    return "\n\n".join(f"STEP {k} of the expert." for k in range(1, n_steps + 1)) + final


@dataclass
class ScriptedBackend:
    sim: dict  # t -> list of outcomes for the simulation requests (n == n_sim)
    explore: dict = field(default_factory=dict)  # t -> outcomes for exploration requests (other n)
    n_sim: int = 4
    gold: str = "42"
    wrong: str = "-1"  # the answer of a False outcome
    logprobs: Optional[dict] = None  # t -> list of mean log-probs (None entries allowed)
    fingerprint: str = "scripted-v1"
    tokenizer: object = None
    context_length: Optional[int] = None
    calls: list = field(default_factory=list)
    lost_reason: str = "length"  # finish reason of continuations that write no answer

    def generate(self, requests):
        out = []
        for r in requests:
            prefix = r.prompt.split("||", 1)[1]
            t = prefix.count("STEP ")
            # exploration draws from its own script; simulation and evaluation ("eval") from `sim`
            phase = "explore" if r.tag == "explore" or (not r.tag and r.n != self.n_sim) else "sim"
            self.calls.append((phase, t, r.n))
            first = r.first_sample
            script = (self.sim if phase == "sim" else self.explore).get(t)
            outcomes = [None] * r.n if script is None else script[first : first + r.n]
            assert len(outcomes) == r.n, f"script for {phase} t={t} has {len(script)} outcomes, asked {first}+{r.n}"
            completions = []
            for j, outcome in enumerate(outcomes, start=first):
                if outcome is True:
                    text = f"student {phase} {t}.{j} " + "x " * j + f"so \\boxed{{{self.gold}}}"
                elif outcome is False:
                    text = f"student {phase} {t}.{j} so \\boxed{{{self.wrong}}}"
                else:
                    text = f"student {phase} {t}.{j} is lost"
                lp = self.logprobs[t][j] if self.logprobs and t in self.logprobs else -0.1 * (j + 1)
                reason = self.lost_reason if outcome is None else "answer"
                completions.append(
                    Completion(text=text, num_tokens=len(text.split()), logprob=lp, finish_reason=reason)
                )
            out.append(completions)
        return out


class CharTokenizer:
    """Counts characters as tokens: enough for prompt-length checks."""

    chat_template = None

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": list(range(len(text)))}
