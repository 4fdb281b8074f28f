"""Which completion tokens the student wrote: the per-token `explore_mask` and the collator that batches it.

`DartTrainer` computes the mask on `SFTTrainer`'s own token ids (from `dart_student_start`, the character offset the
adapter writes) and weights or logs the two parts; this module holds the mask itself so it can be read and tested
without a trainer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from datasets import Dataset, IterableDataset
from transformers import PreTrainedTokenizerBase

#: Column written by `DartAdapter`: character offset in the completion content where the student's text starts.
STUDENT_START_COLUMN = "dart_student_start"
#: Per-token column added during dataset preparation: 1 for completion tokens written by the student.
EXPLORE_MASK_COLUMN = "explore_mask"
#: Columns a DART prompt-completion row needs for training; the adapter's bookkeeping columns are dropped early.
TRAIN_COLUMNS = {"prompt", "completion", "tools", "chat_template_kwargs", STUDENT_START_COLUMN, EXPLORE_MASK_COLUMN}


def column_names(dataset: Union[Dataset, IterableDataset]) -> list[str]:
    """Column names, also for a streamed dataset whose features are not known until read."""
    return list(next(iter(dataset)).keys()) if dataset.column_names is None else list(dataset.column_names)


def _chat_kwargs(example: dict[str, Any], chat_template: Optional[str]) -> dict[str, Any]:
    """The `apply_chat_template` kwargs TRL's tokenization uses, so our rendering matches its token ids."""
    tools = example.get("tools")
    tools = json.loads(tools) if isinstance(tools, str) else tools
    return {"chat_template": chat_template, "tools": tools, **(example.get("chat_template_kwargs") or {})}


def explore_mask_for_example(
    example: dict[str, Any], tokenizer: PreTrainedTokenizerBase, chat_template: Optional[str] = None
) -> list[int]:
    """Per-token provenance of `example["input_ids"]` (as tokenized by `SFTTrainer`): 1 = written by the student.

    A token is the student's when any of its characters lies at or after `dart_student_start` in the completion
    content (so a token straddling the boundary counts as the student's: an expert token never depends on student
    text). Tokens the chat template adds after the content (e.g. `<|im_end|>`) take the provenance of the last content
    token. Prompt tokens are 0. Rows without student text (`dart_student_start < 0`) are all 0.

    The boundary is located in the rendered text and mapped to tokens with the fast tokenizer's offsets; when that is
    impossible (slow tokenizer, a template that rewrites the content, ids that differ from TRL's), the mask falls back
    to tokenizing prompt + expert part and taking the common prefix with the full ids.
    """
    ids = list(example["input_ids"])
    start, prompt, completion = example.get(STUDENT_START_COLUMN), example.get("prompt"), example.get("completion")
    if start is None or start < 0 or prompt is None or completion is None:
        return [0] * len(ids)
    conversational = isinstance(completion, list)
    content = completion[-1].get("content") if conversational else completion
    if not isinstance(content, str):
        return [0] * len(ids)
    end = len(content)
    if not conversational and tokenizer.eos_token and content.endswith(tokenizer.eos_token):
        end -= len(tokenizer.eos_token)  # appended by TRL; the offset refers to the original text
    if start >= end:  # no student text
        return [0] * len(ids)
    kwargs = _chat_kwargs(example, chat_template) if conversational else {}

    if getattr(tokenizer, "is_fast", False):
        if conversational:
            text = tokenizer.apply_chat_template(prompt + completion, tokenize=False, **kwargs)
        else:
            text = prompt + content
        position = text.rfind(content)
        encoded = tokenizer(text, add_special_tokens=not conversational, return_offsets_mapping=True)
        if position >= 0 and list(encoded["input_ids"]) == ids:
            # The student's text ends the completion, so everything from its first token on is the student's
            # (including template suffix tokens, whatever their offsets)
            first = next(
                (k for k, (_, stop) in enumerate(encoded["offset_mapping"]) if stop > position + start), len(ids)
            )
            return [0] * first + [1] * (len(ids) - first)

    # Fallback: the expert part rendered alone shares its tokens with the full sequence up to the boundary
    if conversational:
        expert = [*prompt, *completion[:-1], {**completion[-1], "content": content[:start]}]
        expert_ids = tokenizer.apply_chat_template(expert, tokenize=True, return_dict=True, **kwargs)["input_ids"]
    else:
        expert_ids = tokenizer(text=prompt + content[:start])["input_ids"]
    shared = next((k for k, (a, b) in enumerate(zip(expert_ids, ids)) if a != b), min(len(expert_ids), len(ids)))
    return [0] * shared + [1] * (len(ids) - shared)


def add_explore_mask(example: dict[str, Any], tokenizer: PreTrainedTokenizerBase, chat_template: Optional[str]):
    """`datasets.map` form of `explore_mask_for_example`."""
    return {EXPLORE_MASK_COLUMN: explore_mask_for_example(example, tokenizer, chat_template)}


def align_explore_mask(example: dict[str, Any], keep_end: bool) -> dict[str, list[int]]:
    """Cut the mask to the tokens `SFTTrainer`'s truncation kept (it truncates only the columns it knows)."""
    mask, n = example[EXPLORE_MASK_COLUMN], len(example["input_ids"])
    return {EXPLORE_MASK_COLUMN: mask[len(mask) - n :] if keep_end else mask[:n]}


class DartDataCollator:
    """Wraps a collator (by default the one `SFTTrainer` builds) so that `explore_mask` is batched like `input_ids`.

    TRL's collator drops columns it does not know and is not public API, so it is wrapped, not subclassed: the mask is
    laid out to the batch it builds, one right-padded row per example, or one row when it concatenates them
    (padding-free). The wrapped collator must pad on the right, as TRL's does. Batches without the mask pass through.
    """

    def __init__(self, collator: Callable[[list[dict[str, Any]]], dict[str, Any]]):
        self.collator = collator

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        if any(EXPLORE_MASK_COLUMN not in example for example in examples):
            return self.collator(examples)
        masks = [torch.as_tensor(example[EXPLORE_MASK_COLUMN], dtype=torch.long) for example in examples]
        batch = self.collator([{k: v for k, v in ex.items() if k != EXPLORE_MASK_COLUMN} for ex in examples])
        rows, length = batch["input_ids"].shape[0], batch["input_ids"].shape[-1]
        if rows != len(masks):  # padding-free: the examples were concatenated into one row
            masks = [torch.cat(masks)]
        batch[EXPLORE_MASK_COLUMN] = torch.stack([F.pad(mask, (0, length - mask.numel())) for mask in masks])
        return batch
