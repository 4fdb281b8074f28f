"""`DartConfig`: every knob of the DART adaptation, in one dataclass."""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Optional

GAP_RULES = ("drop", "threshold")
#: `gap_search` strategies (dart_hf/gap_search.py); None selects one from `early_stop` / `adaptive_sampling`
GAP_SEARCHES = ("grid", "certified", "sequential", "bisect", "scan")
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

    # Gap search: how much of the (T + 1) x n_sim grid to draw (scores of unsampled prefixes are NaN)
    gap_search: Optional[str] = field(
        default=None,
        metadata={
            "help": "'grid' (every prefix, n_sim rollouts each), 'certified' (the grid's gap from fewer rollouts: "
            "early stop + adaptive sampling), or the approximate 'sequential' / 'bisect' / 'scan' (see "
            "dart_hf.gap_search). None: 'certified' if early_stop or adaptive_sampling is set (with only that "
            "saving), else 'grid'."
        },
    )
    gap_search_probe: int = field(
        default=1,
        metadata={
            "help": "'sequential' / 'bisect' / 'scan': rollouts per prefix drawn before deciding whether to look "
            "closer (1..n_sim; n_sim makes 'sequential' and 'scan' exact)."
        },
    )
    # The older switches of the certified search (aliases: gap_search=None selects it with only these savings)
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
        metadata={
            "help": "None (paragraphs), a regex matching step separators (compiled on construction; from Python "
            "also a compiled pattern or a callable text -> steps)."
        },
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
        """Refuse nonsense here, once, with the field and its allowed range, rather than mid-run (or never)."""
        for name in ("n_sim", "sim_round_size", "max_new_tokens"):
            _check(self, name, _is_int(getattr(self, name)) and getattr(self, name) >= 1, "an integer >= 1")
        _check(self, "n_explore", _is_int(self.n_explore) and self.n_explore >= 0, "an integer >= 0")
        _check(
            self,
            "max_steps",
            self.max_steps is None or (_is_int(self.max_steps) and self.max_steps >= 1),
            "an integer >= 1 or None",
        )
        _check(self, "seed", _is_int(self.seed), "an integer")
        _check(self, "temperature", _is_real(self.temperature) and self.temperature >= 0, "a finite number >= 0")
        _check(
            self,
            "verify_timeout",
            _is_real(self.verify_timeout) and self.verify_timeout > 0,
            "a finite number > 0 (seconds)",
        )
        for name in ("top_p", "gap_margin", "gap_threshold"):  # probabilities and differences of them
            value = getattr(self, name)
            _check(self, name, _is_real(value) and 0 < value <= 1, "a number in (0, 1]")
        for name in ("early_stop", "adaptive_sampling", "answer_phrase_fallback"):
            _check(self, name, isinstance(getattr(self, name), bool), "True or False")
        _check(
            self,
            "gap_search",
            self.gap_search is None or self.gap_search in GAP_SEARCHES,
            "one of " + ", ".join(repr(name) for name in GAP_SEARCHES) + " or None",
        )
        _check(
            self,
            "gap_search_probe",
            _is_int(self.gap_search_probe) and 1 <= self.gap_search_probe <= self.n_sim,
            f"an integer in 1..n_sim ({self.n_sim})",
        )
        if self.gap_search not in (None, "certified") and (self.early_stop or self.adaptive_sampling):
            raise ValueError(
                f"DartConfig.early_stop / adaptive_sampling select gap_search='certified'; they cannot be combined "
                f"with gap_search={self.gap_search!r}"
            )
        if self.gap_search in ("sequential", "bisect", "scan") and not isinstance(self.gap_rule, str):
            raise ValueError(
                f"DartConfig.gap_search={self.gap_search!r} needs a named gap_rule ('drop' or 'threshold'): a "
                "callable rule cannot be settled from partial counts"
            )
        rule = self.gap_rule
        _check(
            self,
            "gap_rule",
            rule in GAP_RULES if isinstance(rule, str) else callable(rule),
            "'drop', 'threshold' or a callable `(scores) -> 1-based gap index or None`",
        )
        _check(self, "selection", self.selection in SELECTIONS, "'logprob', 'shortest' or 'random'")
        _check(self, "fallback", self.fallback in FALLBACKS, "'expert', 'drop' or 'backoff'")
        for name in ("problem_column", "solution_column", "answer_column", "messages_column"):
            _check(self, name, isinstance(getattr(self, name), str) and getattr(self, name) != "", "a non-empty string")
        steps_column = self.steps_column
        _check(
            self,
            "steps_column",
            steps_column is None or (isinstance(steps_column, str) and steps_column != ""),
            "a non-empty string or None",
        )
        _check(self, "instruction", isinstance(self.instruction, str), "a string ('' for none)")
        _check(
            self,
            "prompt_template",
            self.prompt_template is None or isinstance(self.prompt_template, str),
            "None or a string containing '{problem}' (and usually '{prefix}')",
        )
        _check(
            self,
            "prompt_template",
            self.prompt_template is None or "{problem}" in self.prompt_template,
            "None or a string containing '{problem}' (and usually '{prefix}')",
        )
        self.splitter = _compiled_splitter(self.splitter)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe view (callables and patterns by name), used for fingerprints, stats and cards."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, re.Pattern):
                # the pattern text, as a string splitter always had; flags only where they change the splitting
                value = (
                    value.pattern
                    if value.flags == re.compile(value.pattern).flags
                    else {"pattern": value.pattern, "flags": value.flags}
                )
            elif callable(value):
                value = f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"
            out[f.name] = value
        return out


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    """A finite real number (NaN and infinities fail every range check silently, so they are refused here)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check(config: DartConfig, name: str, ok: Any, allowed: str) -> None:
    if not ok:
        error = ValueError if isinstance(getattr(config, name), (numbers.Number, str)) else TypeError
        raise error(f"DartConfig.{name} must be {allowed}, got {getattr(config, name)!r}")


def _compiled_splitter(splitter: Any) -> Any:
    """None, a callable, or the regex compiled once (an invalid one fails here, not on the first row)."""
    if splitter is None or (callable(splitter) and not isinstance(splitter, (str, re.Pattern))):
        return splitter
    allowed = "None, a non-empty regex or a callable `text -> steps`"
    if isinstance(splitter, str):
        if not splitter:
            raise ValueError(f"DartConfig.splitter must be {allowed}, got ''")
        try:
            splitter = re.compile(splitter)
        except re.error as err:
            raise ValueError(f"DartConfig.splitter is not a valid regex ({err}): {splitter!r}") from None
    if not isinstance(splitter, re.Pattern):
        raise TypeError(f"DartConfig.splitter must be {allowed}, got {type(splitter).__name__}")
    if splitter.fullmatch(""):
        raise ValueError(
            f"DartConfig.splitter must not match the empty string (it would split between every character): "
            f"{splitter.pattern!r}"
        )
    return splitter
