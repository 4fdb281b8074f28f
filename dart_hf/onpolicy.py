"""The on-policy check: are the student's words in an adapted row the tokens the student sampled?

DART trains on expert steps followed by the student's own continuation. That continuation is only the
student's own if SFT trains on the very tokens it sampled, in the context it sampled them in. Two
things break that without any error: a continuation cut inside a token (the `}` of a sampled `}.`,
then end-of-turn: ~15 nats the student never paid), and a tokenization of prompt + expert prefix +
continuation that merges across the boundary differently from generation. Both show as a gap between
the student's negative log-likelihood (NLL) of its text in the exact training format (its chat
template and TRL's tokenization, as `DartTrainer` sees it) and the log-prob the backend recorded when
the text was sampled (`dart_student_sample`).

`check_rows` scores each row's student part with one forward pass (only the student positions'
logits are kept); `on_policy_check` is the summary `stats.json`, the report and the dataset card
show. It needs the student's weights in this process: a `TransformersBackend` or a loaded model. A
server backend cannot score text here (the summary says so), and a server that returned no
log-probs leaves nothing to compare against (rows are then counted as `unrecorded`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Optional

import torch

from .provenance import STUDENT_START_COLUMN

logger = logging.getLogger(__name__)

#: Column `DartAdapter` writes: how the student's text in the row was sampled (tokens, mean log-prob, finish reason).
SAMPLE_COLUMN = "dart_student_sample"

#: A row disagrees when its student part's NLL in the training format differs from the NLL recorded at sampling by
#: more than `ABS_TOLERANCE + PER_TOKEN_TOLERANCE * tokens` nats (either way), or when the training format splits it
#: into another number of tokens than were sampled. 1 nat is one token made e (2.7) times more or less likely than it
#: was when sampled; the per-token slack absorbs float noise between the batched decode and one training forward
#: (about 1e-5 nats/token in float32, up to ~1e-2 in bfloat16). A cut inside a token costs ~15 nats on the planted student.
ABS_TOLERANCE = 1.0
PER_TOKEN_TOLERANCE = 0.01
#: How many of the worst rows the summary lists.
WORST_ROWS = 5


@dataclass
class RowCheck:
    """One row's student part, as sampled and as trained on. NLLs are totals in nats over the compared tokens."""

    row: int  # index in the dataset
    tokens_sampled: int  # tokens the backend generated for it (with the end-of-sequence token when it stopped there)
    tokens_trained: int  # the same span in the training tokenization (with the template's end token when compared)
    nll_sampled: Optional[float]  # -(mean log-prob x tokens) as recorded; None when the backend recorded none
    nll_trained: float
    worst_token: str  # the training token of the span with the highest NLL, and that NLL
    worst_token_nll: float
    end_nll: Optional[float]  # NLL of the end-of-turn token the template adds after the text (trained on too)
    # NLL of every token the template adds after the text (end-of-turn and what follows it, e.g. ChatML's "\n"
    # after <|im_end|>, which the student never generates but TRL trains on): the rest of `explore_loss`
    suffix_nll: Optional[float] = None

    @property
    def gap(self) -> Optional[float]:
        """Training-format NLL minus recorded NLL (nats); None without a recorded log-prob."""
        return None if self.nll_sampled is None else self.nll_trained - self.nll_sampled

    @property
    def disagrees(self) -> bool:
        """Whether training would not be on the tokens sampled (see `ABS_TOLERANCE`)."""
        if self.tokens_trained != self.tokens_sampled:
            return True
        gap = self.gap
        return gap is not None and abs(gap) > ABS_TOLERANCE + PER_TOKEN_TOLERANCE * self.tokens_sampled


def _student_model(student: Any) -> tuple[Any, Any, Optional[str]]:
    """`(model, tokenizer, reason)`: the loaded weights to score with, or why there are none in this process."""
    if isinstance(student, tuple) and len(student) == 2:
        return student[0], student[1], None
    if isinstance(student, torch.nn.Module):
        from .backends.transformers.loading import tokenizer_for_loaded

        return student, tokenizer_for_loaded(student, None), None
    if hasattr(type(student), "model") and hasattr(student, "is_loaded"):  # TransformersBackend (loads lazily)
        return student.model, student.tokenizer, None
    name = type(student).__name__
    return None, None, f"the student runs in {name}, not in this process: scoring its text needs its weights here"


def _training_ids(row: Mapping[str, Any], tokenizer: Any, chat_template: Optional[str]) -> tuple[list[int], str, int]:
    """TRL's token ids of prompt + completion (as `SFTTrainer` builds them), the rendered text, and where the
    completion's content starts in it."""
    prompt, completion = row["prompt"], row["completion"]
    if isinstance(completion, list):
        tools = row.get("tools")
        tools = json.loads(tools) if isinstance(tools, str) else tools
        kwargs = {"chat_template": chat_template, "tools": tools, **(row.get("chat_template_kwargs") or {})}
        messages = list(prompt) + list(completion)
        ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)["input_ids"]
        text = tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)
        content = completion[-1]["content"]
    else:
        ids = tokenizer(text=prompt + completion)["input_ids"]
        text, content = prompt + completion, completion
    return list(ids), text, text.rfind(content)


def check_row(
    row: Mapping[str, Any], index: int, model: Any, tokenizer: Any, chat_template: Optional[str] = None
) -> Optional[RowCheck]:
    """Score one row's student part; None when it has none (or its training tokens cannot be mapped to its text)."""
    start, sample = row.get(STUDENT_START_COLUMN), row.get(SAMPLE_COLUMN) or {}
    completion = row.get("completion")
    if start is None or start < 0 or not completion or not sample or not sample.get("tokens"):
        return None
    content = completion[-1]["content"] if isinstance(completion, list) else completion
    if start >= len(content):
        return None
    ids, text, position = _training_ids(row, tokenizer, chat_template)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    if position < 0 or list(encoded["input_ids"]) != ids:
        logger.warning("on-policy check: row %d's training tokens cannot be mapped to its text; not checked", index)
        return None
    offsets = encoded["offset_mapping"]
    begin, end = position + start, position + len(content)
    # a token straddling the boundary is the student's, as in `provenance.explore_mask_for_example`
    span = [k for k, (a, b) in enumerate(offsets) if b > begin and a < end]
    if not span or span[0] == 0:
        return None
    after = next((k for k in range(span[-1] + 1, len(ids)) if offsets[k][1] > offsets[k][0]), None)
    stopped = sample.get("finish_reason") == "stop"  # the backend sampled (and counted) the end-of-sequence token too
    first, last = span[0], (after if stopped and after is not None else span[-1])
    upto = len(ids) - 1 if after is not None else last  # through the template's suffix: TRL trains on all of it

    device = next(model.parameters()).device
    inputs = torch.tensor([ids[: upto + 1]], device=device)
    with torch.inference_mode():
        try:
            # only the positions that predict the student's tokens (and the end token): memory independent of the prompt
            logits = model(input_ids=inputs, logits_to_keep=upto + 2 - first).logits[0]
        except TypeError:  # a model without logits_to_keep
            logits = model(input_ids=inputs).logits[0, first - 1 :]
    targets = torch.tensor(ids[first : upto + 1], device=logits.device)
    nll = -torch.log_softmax(logits[:-1].float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    nll = nll.tolist()  # nll[k] is token first + k
    compared = nll[: last - first + 1]
    worst = max(range(len(compared)), key=compared.__getitem__)
    logprob = sample.get("logprob")
    recorded = isinstance(logprob, (int, float)) and math.isfinite(logprob)
    return RowCheck(
        row=index,
        tokens_sampled=int(sample["tokens"]),
        tokens_trained=len(compared),
        nll_sampled=-float(logprob) * int(sample["tokens"]) if recorded else None,
        nll_trained=float(sum(compared)),
        worst_token=tokenizer.decode([ids[first + worst]]),
        worst_token_nll=float(compared[worst]),
        end_nll=float(nll[after - first]) if after is not None else None,
        suffix_nll=float(sum(nll[after - first :])) if after is not None else None,
    )


def check_rows(rows: Sequence[Mapping[str, Any]], student: Any, chat_template: Optional[str] = None) -> list[RowCheck]:
    """`check_row` for every row with student text (the others are skipped); `student` as for `on_policy_check`."""
    model, tokenizer, reason = _student_model(student)
    if reason is not None:
        raise ValueError(reason)
    out = []
    for i, row in enumerate(rows):
        checked = check_row(row, i, model, tokenizer, chat_template)
        if checked is not None:
            out.append(checked)
    return out


def summarize(checks: Sequence[RowCheck], n_student_rows: int) -> dict[str, Any]:
    """The `on_policy` section of `stats.json` from the row checks (JSON-safe; None where nothing was measured)."""
    recorded = [c for c in checks if c.nll_sampled is not None]
    tokens = sum(c.tokens_trained for c in checks)
    # both means over the same rows: those with a recorded log-prob (all rows when none has one)
    compared = recorded or list(checks)
    tokens_compared = sum(c.tokens_trained for c in compared)
    tokens_recorded = sum(c.tokens_sampled for c in recorded)
    disagree = [c for c in checks if c.disagrees]
    ends = [c.end_nll for c in checks if c.end_nll is not None]
    suffixes = [c.suffix_nll for c in checks if c.suffix_nll is not None]
    # disagreeing rows first, largest gap first; then the rows with the costliest single token (float noise in the
    # gaps of agreeing rows says nothing)
    order = sorted(
        checks, key=lambda c: (c.disagrees, abs(c.gap or 0.0) if c.disagrees else 0.0, c.worst_token_nll), reverse=True
    )
    summary = {
        "checked": True,
        "rows": len(checks),
        "rows_with_student_text": n_student_rows,
        "unrecorded": len(checks) - len(recorded),
        "tokens": tokens,
        "nll_per_token_trained": sum(c.nll_trained for c in compared) / tokens_compared if tokens_compared else None,
        "nll_per_token_sampled": sum(c.nll_sampled for c in recorded) / tokens_recorded if tokens_recorded else None,
        "mean_abs_gap": sum(abs(c.gap) for c in recorded) / len(recorded) if recorded else None,
        "end_nll_mean": sum(ends) / len(ends) if ends else None,
        "suffix_nll_mean": sum(suffixes) / len(suffixes) if suffixes else None,
        "disagreeing": len(disagree),
        "tolerance": f"|gap| > {ABS_TOLERANCE:g} nat + {PER_TOKEN_TOLERANCE:g} nat/token, or another token count",
        "worst": [{**asdict(c), "gap": c.gap, "disagrees": c.disagrees} for c in order[:WORST_ROWS]],
        "warning": None,
    }
    if disagree:
        w = order[0]  # disagreeing rows sort first, the largest gap first
        summary["warning"] = (
            f"{len(disagree)} of {len(checks)} rows train the student on text it did not sample as written: their "
            f"NLL in the training format differs from the one recorded when sampled (row {w.row}: "
            f"{w.nll_trained:.2f} vs {w.nll_sampled if w.nll_sampled is not None else float('nan'):.2f} nats over "
            f"{w.tokens_trained} vs {w.tokens_sampled} tokens; worst token {w.worst_token!r} at {w.worst_token_nll:.1f} "
            "nats). Continuations cut inside a token, or tokens merging across the expert/student boundary, do this."
        )
    return summary


def _has_student_text(row: Mapping[str, Any]) -> bool:
    start = row.get(STUDENT_START_COLUMN)
    return start is not None and start >= 0 and bool((row.get(SAMPLE_COLUMN) or {}).get("tokens"))


def on_policy_check(dataset: Any, student: Any, chat_template: Optional[str] = None) -> dict[str, Any]:
    """The on-policy summary of an adapted dataset: what `stats.json["on_policy"]`, the report and the card show.

    Args:
        dataset: the adapted rows (a `datasets.Dataset` or a list of dicts) with `prompt`, `completion`,
            `dart_student_start` and `dart_student_sample`.
        student: a `TransformersBackend`, a loaded model, or `(model, tokenizer)`. Anything else (a server
            backend) gives `{"checked": False, "reason": ...}`.
        chat_template: the template `DartTrainer` will use, when not the tokenizer's own.

    Logs a warning when rows disagree (`RowCheck.disagrees`). Costs one forward pass per row with student text.
    Never raises for a row or a student it cannot score: those rows are left out (`rows` <
    `rows_with_student_text`), or the summary says `"checked": False` and why.
    """
    columns = getattr(dataset, "column_names", None)
    if columns is not None:
        if SAMPLE_COLUMN not in columns:
            return {"checked": False, "reason": f"no {SAMPLE_COLUMN} column (adapted by an older dart_hf)"}
        wanted = [c for c in ("prompt", "completion", STUDENT_START_COLUMN, SAMPLE_COLUMN, "tools") if c in columns]
        rows = dataset.select_columns(wanted)
    else:
        rows = dataset
    n_student = sum(1 for r in rows if _has_student_text(r))
    if not n_student:
        return summarize([], 0)
    try:
        model, tokenizer, reason = _student_model(student)
    except Exception as err:  # a diagnostic never costs the run its outputs
        reason = f"the student could not be loaded to score its text ({type(err).__name__}: {err})"
    if reason is not None:
        return {"checked": False, "reason": reason}
    checks = []
    for i, row in enumerate(rows):
        try:
            checked = check_row(row, i, model, tokenizer, chat_template)
        except Exception as err:  # one row that cannot be scored (too long for the context, ...) is left out
            logger.warning("on-policy check: row %d could not be scored (%s: %s)", i, type(err).__name__, err)
            checked = None
        if checked is not None:
            checks.append(checked)
    summary = summarize(checks, n_student)
    if summary["warning"]:
        logger.warning("on-policy check: %s", summary["warning"])
    return summary
