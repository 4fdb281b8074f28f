"""`DartTrainer`: TRL's `SFTTrainer` that knows which completion tokens the student wrote itself.

DART trains with ordinary token-level SFT on adapted trajectories (DESIGN.md §1 step 6). Each adapted completion is
an expert prefix followed, from character `dart_student_start` on, by the student's own continuation. The trainer
turns that offset into a per-token `explore_mask` aligned with TRL's own tokenization, so the two parts can be
weighted (`DartSFTConfig.expert_weight` / `explore_weight`) and their losses logged separately (`expert_loss`,
`explore_loss`, `explore_token_share`).

Everything else is `SFTTrainer`'s: it tokenizes, builds the completion-only labels, truncates, filters and shuffles;
its collator builds the batches and its `compute_loss` runs the forward pass. The provenance split is read from that
same forward pass (TRL's per-token log-probs, or the logits on TRL versions without a fused LM head). With the
default weights (1.0/1.0) the loss is `SFTTrainer`'s own, so it is exactly SFT; with other weights it is recomputed
from the same per-token log-probs.

Any dataset `SFTTrainer` accepts works: without `dart_student_start`, every completion token counts as expert.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from accelerate import PartialState
from datasets import Dataset, IterableDataset
from transformers import PreTrainedTokenizerBase, ProcessorMixin, TrainingArguments
from trl import SFTTrainer, pack_dataset

from .schema import PAPER_ARXIV_ID, PAPER_CITATION, PAPER_TITLE, is_usable
from .sft_config import DartSFTConfig

logger = logging.getLogger(__name__)

#: Column written by `DartAdapter`: character offset in the completion content where the student's text starts.
STUDENT_START_COLUMN = "dart_student_start"
#: Per-token column added during dataset preparation: 1 for completion tokens written by the student.
EXPLORE_MASK_COLUMN = "explore_mask"
#: Columns a DART prompt-completion row needs for training; the adapter's bookkeeping columns are dropped early.
_DART_TRAIN_COLUMNS = (
    "prompt",
    "completion",
    STUDENT_START_COLUMN,
    EXPLORE_MASK_COLUMN,
    "tools",
    "chat_template_kwargs",
)


# --------------------------------------------------------------------------------------------------------------------
# Provenance mask
# --------------------------------------------------------------------------------------------------------------------


def _column_names(dataset: Union[Dataset, IterableDataset]) -> list[str]:
    """Column names, also for a streamed dataset whose features are not known until read."""
    return list(next(iter(dataset)).keys()) if dataset.column_names is None else list(dataset.column_names)


def _chat_kwargs(example: dict[str, Any], chat_template: Optional[str]) -> dict[str, Any]:
    """The `apply_chat_template` kwargs TRL's tokenization uses, so our rendering matches its token ids."""
    tools = example.get("tools")
    tools = json.loads(tools) if isinstance(tools, str) else tools
    return {"chat_template": chat_template, "tools": tools, **(example.get("chat_template_kwargs") or {})}


def explore_mask_for_example(
    example: dict[str, Any],
    tokenizer: PreTrainedTokenizerBase,
    chat_template: Optional[str] = None,
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
    start = example.get(STUDENT_START_COLUMN)
    prompt, completion = example.get("prompt"), example.get("completion")
    if start is None or start < 0 or prompt is None or completion is None:
        return [0] * len(ids)

    conversational = isinstance(completion, list)
    if conversational:
        last = completion[-1]
        content = last.get("content")
        if not isinstance(content, str):
            return [0] * len(ids)
        kwargs = _chat_kwargs(example, chat_template)
        full_messages = list(prompt) + list(completion)
        expert_messages = list(prompt) + list(completion[:-1]) + [{**last, "content": content[:start]}]
    else:
        content = completion
        eos = tokenizer.eos_token
        # TRL appends eos to string completions before tokenizing; the offset refers to the original text
        if eos and content.endswith(eos) and start >= len(content) - len(eos):
            return [0] * len(ids)
    if start >= len(content):  # no student text
        return [0] * len(ids)

    if getattr(tokenizer, "is_fast", False):
        if conversational:
            text = tokenizer.apply_chat_template(full_messages, tokenize=False, **kwargs)
        else:
            text = prompt + content
        position = text.rfind(content)
        if position >= 0:
            boundary = position + start
            encoded = tokenizer(text, add_special_tokens=not conversational, return_offsets_mapping=True)
            if list(encoded["input_ids"]) == ids:
                # The student's text ends the completion, so everything from its first token on is the student's
                # (including template suffix tokens, whatever their offsets)
                first = next((k for k, (_, end) in enumerate(encoded["offset_mapping"]) if end > boundary), len(ids))
                return [0] * first + [1] * (len(ids) - first)

    # Fallback: the expert part rendered alone shares its tokens with the full sequence up to the boundary
    if conversational:
        expert_ids = tokenizer.apply_chat_template(expert_messages, tokenize=True, return_dict=True, **kwargs)
    else:
        expert_ids = tokenizer(text=prompt + content[:start])
    expert_ids = list(expert_ids["input_ids"])
    shared = next((k for k, (a, b) in enumerate(zip(expert_ids, ids)) if a != b), min(len(expert_ids), len(ids)))
    return [0] * shared + [1] * (len(ids) - shared)


def _add_explore_mask(example: dict[str, Any], tokenizer: PreTrainedTokenizerBase, chat_template: Optional[str]):
    return {EXPLORE_MASK_COLUMN: explore_mask_for_example(example, tokenizer, chat_template)}


def _align_explore_mask(example: dict[str, Any], keep_end: bool) -> dict[str, list[int]]:
    """Cut the mask to the tokens `SFTTrainer`'s truncation kept (it truncates only the columns it knows)."""
    mask, n = example[EXPLORE_MASK_COLUMN], len(example["input_ids"])
    return {EXPLORE_MASK_COLUMN: mask[len(mask) - n :] if keep_end else mask[:n]}


@contextmanager
def _main_process_first() -> Iterator[None]:
    """Let the main processes write the `datasets` cache first, as `SFTTrainer` does around its own preparation."""
    state = PartialState()
    with state.main_process_first(), state.local_main_process_first():
        yield


# --------------------------------------------------------------------------------------------------------------------
# Collator
# --------------------------------------------------------------------------------------------------------------------


class DartDataCollator:
    """Wraps a collator (by default the one `SFTTrainer` builds) so that `explore_mask` is batched like `input_ids`.

    TRL's collator drops per-token columns it does not know, and it is not part of TRL's public API, so it is wrapped
    rather than subclassed: the mask is set aside, the wrapped collator builds the batch, and the mask is laid out to
    the batch's shape, one right-padded row per example, or one concatenated row when the wrapped collator flattens
    the batch (padding-free). The wrapped collator must pad on the right, as TRL's does. Batches without the column
    pass through unchanged (every token then counts as expert).
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


# --------------------------------------------------------------------------------------------------------------------
# Trainer
# --------------------------------------------------------------------------------------------------------------------


def _next_token_log_probs(outputs: Any, labels: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """Log-prob of each next-token label, shaped like `labels[..., 1:]` (0 where not trained), from a forward's outputs.

    TRL >= 1.15 runs a fused LM head that returns them directly (`log_probs`); earlier ones return the logits. `None`
    when neither fits (e.g. pre-shifted labels under sequence parallelism).
    """
    if outputs is None or labels is None:
        return None
    shift_labels = labels[..., 1:]
    log_probs = getattr(outputs, "log_probs", None)
    if log_probs is not None:
        return log_probs if log_probs.shape == shift_labels.shape else None
    logits = getattr(outputs, "logits", None)
    if logits is None or logits.shape[:-1] != labels.shape:
        return None
    logits = logits[..., :-1, :]
    shift_labels = shift_labels.to(logits.device)
    nll = F.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)), shift_labels.reshape(-1), ignore_index=-100, reduction="none"
    )
    return -nll.view_as(shift_labels)


class DartTrainer(SFTTrainer):
    """`SFTTrainer` with per-token provenance (expert-imitated vs student-explored) for DART data.

    Accepts everything `SFTTrainer` does; `args` should be a [`DartSFTConfig`][dart_hf.sft_config.DartSFTConfig] (a plain
    `SFTConfig`/`TrainingArguments` is converted, with default weights). Rows `DartAdapter` could not use are dropped
    first when `args.filter_unusable` (the default).
    """

    _tag_names = ["trl", "sft", "dart"]
    _name = "DART"
    _paper = {"title": PAPER_TITLE, "id": PAPER_ARXIV_ID, "citation": PAPER_CITATION}

    def __init__(
        self,
        model: Union[str, torch.nn.Module],
        args: Optional[Union[DartSFTConfig, TrainingArguments]] = None,
        data_collator: Optional[Callable] = None,
        train_dataset: Optional[Union[Dataset, IterableDataset]] = None,
        eval_dataset: Optional[Union[Dataset, IterableDataset, dict[str, Union[Dataset, IterableDataset]]]] = None,
        processing_class: Optional[Union[PreTrainedTokenizerBase, ProcessorMixin]] = None,
        **kwargs: Any,
    ):
        if args is None:
            name = model if isinstance(model, str) else getattr(model.config, "_name_or_path", "model")
            args = DartSFTConfig(f"{str(name).rstrip('/').split('/')[-1]}-DART")
        elif not isinstance(args, DartSFTConfig):
            # Field by field rather than `to_dict()`, which masks `*_token` values (hub_token, eos_token, pad_token)
            names = {f.name for f in dataclasses.fields(DartSFTConfig) if f.init}
            values = {f.name: getattr(args, f.name) for f in dataclasses.fields(args) if f.init and f.name in names}
            args = DartSFTConfig(**values)

        self._dart_weighted = (args.expert_weight, args.explore_weight) != (1.0, 1.0)
        if self._dart_weighted and (
            kwargs.get("compute_loss_func") is not None
            or args.label_smoothing_factor > 0
            or args.loss_type not in ("nll", "dft")
        ):
            raise ValueError(
                "Provenance weights (`expert_weight`/`explore_weight` other than 1.0) are only supported with "
                "`loss_type` 'nll' or 'dft', without `compute_loss_func` or `label_smoothing_factor`."
            )

        if args.filter_unusable:
            train_dataset = _filter_unusable(train_dataset, "train")
            if isinstance(eval_dataset, dict):
                eval_dataset = {key: _filter_unusable(ds, key) for key, ds in eval_dataset.items()}
            elif eval_dataset is not None:
                eval_dataset = _filter_unusable(eval_dataset, "eval")

        super().__init__(
            model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            **kwargs,
        )

        parallelism = self.accelerator.parallelism_config
        if (
            self._dart_weighted
            and parallelism is not None
            and (getattr(parallelism, "cp_enabled", False) or getattr(parallelism, "sp_enabled", False))
        ):
            raise NotImplementedError(
                "Provenance weights are not supported with context/sequence parallelism: `explore_mask` is not sharded "
                "along the sequence like the inputs."
            )

        # TRL builds its collator itself (and refuses a custom one with padding-free/BFD packing), so wrap the one it
        # built; a collator passed in must carry `explore_mask` itself (e.g. a `DartDataCollator`)
        if data_collator is None:
            self.data_collator = DartDataCollator(self.data_collator)
        elif not isinstance(data_collator, DartDataCollator):
            logger.warning(
                "DartTrainer: custom data collator %s does not carry `explore_mask`; every token is treated as expert.",
                type(data_collator).__name__,
            )

        # Per mode: [expert nll sum, expert tokens, explore nll sum, explore tokens] over the logging window
        self._provenance = {"train": torch.zeros(4, dtype=torch.float64), "eval": torch.zeros(4, dtype=torch.float64)}
        self._warned_no_log_probs = False

    # ---- data ------------------------------------------------------------------------------------------------------

    # `Trainer` drops dataset columns that are not model inputs; TRL extends the kept list through this hook, and so
    # does DART (there is no public setting for it)
    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if EXPLORE_MASK_COLUMN not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, EXPLORE_MASK_COLUMN]

    # `SFTTrainer` prepares every dataset (train, eval, and those passed to `evaluate`) through this method; it is the
    # only point where TRL's token ids exist before truncation and packing
    def _prepare_dataset(
        self,
        dataset: Union[Dataset, IterableDataset],
        processing_class: Union[PreTrainedTokenizerBase, ProcessorMixin],
        args: DartSFTConfig,
        packing: bool,
        formatting_func: Optional[Callable[[dict], str]],
        dataset_name: str,
    ) -> Union[Dataset, IterableDataset]:
        """TRL's preparation, with an `explore_mask` column computed on TRL's own token ids and kept aligned with them.

        TRL first tokenizes and builds the labels at full length (no truncation, packing or shuffling) and the mask
        is computed on those ids. Unpacked data then goes through TRL's preparation again, which leaves tokenized data
        untokenized and truncates, filters and shuffles it like plain SFT data; TRL truncates only its own columns, so
        the mask is cut to the tokens kept. TRL's packing drops unknown columns, so packed data is packed here with
        TRL's public `pack_dataset`, exactly as `SFTTrainer` calls it, with the mask as one more column.
        """
        columns = _column_names(dataset)
        if STUDENT_START_COLUMN not in columns and EXPLORE_MASK_COLUMN not in columns:
            return super()._prepare_dataset(dataset, processing_class, args, packing, formatting_func, dataset_name)

        if formatting_func is None and "input_ids" not in columns:
            keep = [c for c in columns if c in _DART_TRAIN_COLUMNS]
            if len(keep) < len(columns):
                dataset = dataset.select_columns(keep)

        full_args = copy.copy(args)
        full_args.max_length, full_args.shuffle_dataset = None, False
        dataset = super()._prepare_dataset(dataset, processing_class, full_args, False, formatting_func, dataset_name)

        map_kwargs: dict[str, Any] = {}
        if isinstance(dataset, Dataset):  # IterableDataset.map has no num_proc / desc
            map_kwargs = {
                "num_proc": args.dataset_num_proc,
                "desc": f"Marking explored tokens in {dataset_name} dataset",
            }
        tokenizer = processing_class.tokenizer if isinstance(processing_class, ProcessorMixin) else processing_class
        chat_template = getattr(self, "chat_template", None)  # the template TRL tokenized with (assistant-only loss)
        with _main_process_first():
            if EXPLORE_MASK_COLUMN not in _column_names(dataset):
                dataset = dataset.map(
                    _add_explore_mask, fn_kwargs={"tokenizer": tokenizer, "chat_template": chat_template}, **map_kwargs
                )
            if packing:
                if args.max_length is None:
                    raise ValueError("When packing is enabled, `max_length` can't be `None`.")
                dataset = dataset.select_columns(["input_ids", "labels", EXPLORE_MASK_COLUMN])
                if args.shuffle_dataset:  # before packing too, as TRL does, so that packed neighbours are unrelated
                    dataset = dataset.shuffle(seed=args.seed)
                if isinstance(dataset, Dataset):
                    map_kwargs["desc"] = f"Packing {dataset_name} dataset"
                dataset = pack_dataset(dataset, args.max_length, args.packing_strategy, map_kwargs)
        if packing:
            return dataset.shuffle(seed=args.seed) if args.shuffle_dataset else dataset

        dataset = super()._prepare_dataset(dataset, processing_class, args, False, None, dataset_name)
        if args.max_length is not None:
            if isinstance(dataset, Dataset):
                map_kwargs["desc"] = f"Truncating explore_mask of {dataset_name} dataset"
            with _main_process_first():
                keep_end = args.truncation_mode == "keep_end"
                dataset = dataset.map(_align_explore_mask, fn_kwargs={"keep_end": keep_end}, **map_kwargs)
        return dataset

    def evaluate(self, eval_dataset=None, ignore_keys: Optional[list[str]] = None, metric_key_prefix: str = "eval"):
        """Like `SFTTrainer.evaluate`; a dataset passed here is filtered of unusable DART rows like at init."""
        if self.args.filter_unusable and eval_dataset is not None and not isinstance(eval_dataset, str):
            if isinstance(eval_dataset, dict):
                eval_dataset = {key: _filter_unusable(ds, key) for key, ds in eval_dataset.items()}
            else:
                eval_dataset = _filter_unusable(eval_dataset, metric_key_prefix)
        return super().evaluate(eval_dataset=eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)

    # ---- loss ------------------------------------------------------------------------------------------------------

    def _token_weights(self, labels: torch.Tensor, explore_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """Weight of each next-token prediction (shifted: position j predicts token j + 1); 0 where not trained."""
        shift_labels = labels[..., 1:]
        trained = shift_labels != -100
        weights = torch.full(shift_labels.shape, float(self.args.expert_weight), device=labels.device)
        if explore_mask is not None:
            explore = explore_mask[..., 1:].to(labels.device).bool()
            explore_weight = torch.as_tensor(float(self.args.explore_weight), device=labels.device)
            weights = torch.where(explore, explore_weight, weights)
        return weights * trained

    def get_batch_samples(self, epoch_iterator, num_batches: int, device: torch.device):
        """With provenance weights, normalise by the summed token weights of the whole accumulation batch.

        `Trainer` counts trained tokens over all micro-batches of an optimizer step (`num_items_in_batch`); the
        weighted loss needs the sum of the weights instead, so it stays a weighted mean under gradient accumulation.
        """
        batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        if not self._dart_weighted or num_items_in_batch is None:
            return batch_samples, num_items_in_batch
        total = sum(
            self._token_weights(batch["labels"], batch.get(EXPLORE_MASK_COLUMN)).sum().double()
            for batch in batch_samples
        )
        total = torch.as_tensor(total, dtype=torch.float64).to(device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            total = self.accelerator.gather(total).sum()
        elif self.args.n_gpu > 1:
            total = total / self.args.n_gpu
        total = total / (self.get_tp_size() * self.get_cp_size() * self.get_sp_size())
        return batch_samples, total.float()

    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        """`SFTTrainer.compute_loss` (its loss, metrics and MoE aux loss), with the provenance split of its forward pass.

        A forward hook keeps the outputs of TRL's (first) forward, so the per-token log-probs cost nothing extra. With
        provenance weights, the returned loss is recomputed from those log-probs.
        """
        explore_mask = inputs.pop(EXPLORE_MASK_COLUMN, None)
        mode = "train" if self.model.training else "eval"
        captured: list[Any] = []
        handle = model.register_forward_hook(lambda _module, _args, output: captured.append(output))
        try:
            result = super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        finally:
            handle.remove()
        outputs = captured[0] if captured else None
        labels = inputs.get("labels")
        with torch.set_grad_enabled(self._dart_weighted and torch.is_grad_enabled()):
            log_probs = _next_token_log_probs(outputs, labels)
        if log_probs is None:
            if self._dart_weighted:
                raise RuntimeError("DartTrainer: the forward pass gave no per-token log-probs to weight.")
            if not self._warned_no_log_probs:
                self._warned_no_log_probs = True
                warnings.warn(
                    "DartTrainer: SFTTrainer's forward did not expose per-token log-probs, so expert_loss/explore_loss "
                    "are not logged.",
                    stacklevel=2,
                )
            return result

        trained = labels[..., 1:].to(log_probs.device) != -100
        self._record_provenance(-log_probs.detach(), trained, explore_mask, mode)
        if not self._dart_weighted:
            return result
        loss = self._weighted_loss(log_probs, labels, explore_mask, outputs, num_items_in_batch)
        return (loss, result[1]) if return_outputs else loss

    def _weighted_loss(self, log_probs, labels, explore_mask, outputs, num_items_in_batch) -> torch.Tensor:
        """Provenance-weighted mean NLL (or DFT) over the accumulation batch, plus the MoE aux loss as TRL adds it."""
        nll = -log_probs
        per_token_loss = nll
        if self.args.loss_type == "dft":  # https://huggingface.co/papers/2508.05629
            per_token_loss = nll * torch.exp(-nll).detach()
        weights = self._token_weights(labels, explore_mask).to(nll.device)
        numerator = (per_token_loss * weights).sum()
        denominator = weights.sum() if num_items_in_batch is None else torch.as_tensor(num_items_in_batch)
        denominator = denominator.to(numerator.device, numerator.dtype)
        # A batch without trained tokens (or only zero-weight ones) reduces to a differentiable zero, not 0 / 0
        loss = torch.where(denominator > 0, numerator / denominator.clamp(min=1e-12), numerator * 0.0)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        aux_loss = getattr(outputs, "aux_loss", None)
        if getattr(self, "aux_loss_enabled", False) and aux_loss is not None:
            coef = getattr(self, "router_aux_loss_coef", None)
            coef = self.args.router_aux_loss_coef if coef is None else coef
            steps = self.current_gradient_accumulation_steps if num_items_in_batch is not None else 1
            loss = loss + coef * aux_loss / steps
        return loss

    def _record_provenance(
        self, nll: torch.Tensor, trained: torch.Tensor, explore_mask: Optional[torch.Tensor], mode: str
    ) -> None:
        """Accumulate (over processes) the expert / explore NLL sums and token counts of one micro-batch."""
        if explore_mask is not None:
            explore = explore_mask[..., 1:].to(nll.device).bool() & trained
        else:
            explore = torch.zeros_like(trained)
        expert = trained & ~explore
        nll = nll.double()
        stats = torch.stack(
            [(nll * expert).sum(), expert.sum().double(), (nll * explore).sum(), explore.sum().double()]
        )
        stats = self.accelerator.gather(stats[None]).sum(0)
        self._provenance[mode] += stats.cpu()

    def log(self, logs: dict[str, float], start_time: Optional[float] = None) -> None:
        mode = "train" if self.model.training else "eval"
        expert_sum, expert_n, explore_sum, explore_n = self._provenance[mode].tolist()
        if expert_n + explore_n > 0:
            prefix = "eval_" if mode == "eval" else ""
            if expert_n > 0:
                logs[f"{prefix}expert_loss"] = expert_sum / expert_n
            if explore_n > 0:
                logs[f"{prefix}explore_loss"] = explore_sum / explore_n
            logs[f"{prefix}explore_token_share"] = explore_n / (expert_n + explore_n)
        self._provenance[mode].zero_()
        super().log(logs, start_time)


def _filter_unusable(dataset, name: str):
    """Drop rows `DartAdapter` marked as errors or dropped; log how many (datasets without DART columns pass)."""
    if dataset is None:
        return None
    columns = _column_names(dataset)
    if "dart_action" not in columns or "dart_solution" not in columns:
        return dataset
    if isinstance(dataset, IterableDataset):
        logger.info("DartTrainer: filtering unusable rows of the streamed %s dataset on the fly.", name)
        return dataset.filter(is_usable)
    before = len(dataset)
    dataset = dataset.filter(is_usable, desc=f"Dropping unusable DART rows from {name} dataset")
    dropped = before - len(dataset)
    if dropped:
        logger.warning(
            "DartTrainer: dropped %d of %d %s rows that DartAdapter could not use (dart_action='error' or empty "
            "dart_solution).",
            dropped,
            before,
            name,
        )
    else:
        logger.info("DartTrainer: all %d %s rows are usable.", before, name)
    if len(dataset) == 0:
        raise ValueError(f"No usable rows left in the {name} dataset after dropping DartAdapter errors/dropped rows.")
    return dataset
