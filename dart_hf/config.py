"""`DartConfig`: every knob of the DART adaptation, in one dataclass."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any, Optional

GAP_RULES = ("drop", "threshold")
SELECTIONS = ("logprob", "shortest", "random")
FALLBACKS = ("expert", "drop", "backoff")

DEFAULT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass
class DartConfig:
    """Configuration of [`DartAdapter`][dart_hf.DartAdapter].

    Defaults follow `DESIGN.md` §1: N_sim = 4 rollouts per prefix, the `drop` gap rule with a margin
    of 0.5 (two of four successes lost), exploration that reuses simulation rollouts first.
    """

    # Simulation / exploration budget
    n_sim: int = field(default=4, metadata={"help": "Student rollouts per expert prefix (N_sim)."})
    n_explore: int = field(
        default=8,
        metadata={"help": "Extra rollouts sampled at the pre-gap prefix when simulation found no correct one."},
    )
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature (0 = greedy)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass."})
    max_new_tokens: int = field(default=1024, metadata={"help": "Cap on tokens generated per rollout."})

    # Cheaper simulation: both switches return the full grid's gap (scores of unsampled prefixes are NaN)
    early_stop: bool = field(
        default=False,
        metadata={"help": "Simulate prefixes in order and stop at the first gap (the only one that matters)."},
    )
    adaptive_sampling: bool = field(
        default=False,
        metadata={
            "help": "Sample in rounds of `sim_round_size` and stop a prefix once more samples cannot change the gap."
        },
    )
    sim_round_size: int = field(default=1, metadata={"help": "Rollouts per prefix and round with adaptive_sampling."})

    # Gap detection
    # Typed `str` so TrlParser/HfArgumentParser can read it from YAML; the Python API also accepts a
    # callable `(scores) -> gap index (1-based) or None`.
    gap_rule: str = field(
        default="drop",
        metadata={"help": "'drop', 'threshold' (or, from Python, a callable `(scores) -> 1-based gap index or None`)."},
    )
    gap_margin: float = field(
        default=0.5, metadata={"help": "`drop` rule: gap at the first t with f[t-1] - f[t] >= margin."}
    )
    gap_threshold: float = field(
        default=0.5, metadata={"help": "`threshold` rule: gap at the first t with f[t] < tau <= f[t-1]."}
    )

    # Exploration and assembly
    selection: str = field(
        default="logprob",
        metadata={"help": "How to pick one correct continuation: 'logprob' (most native), 'shortest', 'random'."},
    )
    fallback: str = field(
        default="expert",
        metadata={"help": "Gap without a correct continuation: 'expert' (keep), 'drop' (unusable), 'backoff'."},
    )

    # Segmentation
    max_steps: Optional[int] = field(
        default=None, metadata={"help": "Merge adjacent paragraphs into at most this many steps."}
    )
    splitter: Optional[str] = field(  # also a compiled pattern or a callable `text -> steps` from Python
        default=None,
        metadata={"help": "None (paragraphs), a regex matching step separators (or, from Python, a callable text -> steps)."},
    )

    seed: int = field(default=0, metadata={"help": "Base seed; every example derives its own from it."})

    # What to keep
    keep_rollouts: bool = field(
        default=False,
        metadata={
            "help": "Store every judged continuation (text, answer, verdict, tokens, finish reason) in the "
            "`dart_rollouts` column, for the report and the stepwise export. Off by default: it holds all the "
            "generated text (n_sim x (T+1) continuations per row)."
        },
    )

    # Columns
    problem_column: str = field(default="problem", metadata={"help": "Column with the problem statement."})
    solution_column: str = field(default="solution", metadata={"help": "Column with the expert solution."})
    answer_column: str = field(
        default="answer", metadata={"help": "Column with the gold answer (else: the expert's last \\boxed{})."}
    )
    messages_column: str = field(
        default="messages", metadata={"help": "Conversational rows: user turn = problem, last assistant = solution."}
    )
    steps_column: Optional[str] = field(
        default=None, metadata={"help": "Optional column holding pre-split expert steps (list of str)."}
    )

    # Prompting
    prompt_template: Optional[str] = field(
        default=None,
        metadata={
            "help": "None: the student's chat template, continuing its own assistant turn. Otherwise a format "
            "string with `{problem}` and `{prefix}`."
        },
    )
    instruction: str = field(
        default=DEFAULT_INSTRUCTION, metadata={"help": "Appended to the problem in the user turn."}
    )
    answer_phrase_fallback: bool = field(
        default=True,
        metadata={
            "help": "When a continuation has no \\boxed{}, take its last 'the answer is X' as the final answer "
            "(small students often ignore the \\boxed{} instruction)."
        },
    )
    verify_timeout: float = field(
        default=5.0, metadata={"help": "Hard deadline (seconds) for one math-verify comparison."}
    )

    def __post_init__(self) -> None:
        if self.n_sim < 1:
            raise ValueError(f"n_sim must be >= 1, got {self.n_sim}")
        if self.n_explore < 0:
            raise ValueError(f"n_explore must be >= 0, got {self.n_explore}")
        if self.sim_round_size < 1:
            raise ValueError(f"sim_round_size must be >= 1, got {self.sim_round_size}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if isinstance(self.gap_rule, str) and self.gap_rule not in GAP_RULES:
            raise ValueError(f"gap_rule must be one of {GAP_RULES} or a callable, got {self.gap_rule!r}")
        if not isinstance(self.gap_rule, str) and not callable(self.gap_rule):
            raise TypeError(f"gap_rule must be a string or a callable, got {type(self.gap_rule).__name__}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        if self.fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}, got {self.fallback!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps}")
        if self.prompt_template is not None and "{problem}" not in self.prompt_template:
            raise ValueError("prompt_template must contain '{problem}' (and usually '{prefix}')")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe view (callables and patterns by name), used for fingerprints, stats and cards."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, re.Pattern):
                value = value.pattern
            elif callable(value):
                value = f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"
            out[f.name] = value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)
