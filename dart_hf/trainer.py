"""`DartTrainer`: TRL's `SFTTrainer` that knows which completion tokens the student wrote itself.

DART trains with ordinary token-level SFT on adapted trajectories (DESIGN.md §1 step 6). Each adapted completion is
an expert prefix followed, from character `dart_student_start` on, by the student's own continuation. The trainer
turns that offset into a per-token `explore_mask` aligned with TRL's own tokenization, so the two parts can be
weighted (`DartSFTConfig.expert_weight` / `explore_weight`) and their losses logged separately (`expert_loss`,
`explore_loss`, `explore_token_share`).

With the default weights (1.0/1.0) the loss is computed by `SFTTrainer` itself (its fused LM head), so it is exactly
SFT; the provenance split for the logs is read from the same forward pass. With other weights the loss is computed
here from the model's logits, independent of TRL's loss path.

Any dataset `SFTTrainer` accepts works: without `dart_student_start`, every completion token counts as expert.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from datasets import Dataset, IterableDataset
from huggingface_hub import ModelCard
from transformers import PreTrainedTokenizerBase, ProcessorMixin, TrainingArguments
from trl import SFTTrainer
from trl.data_utils import _tokenize, common_prefix_length, get_dataset_column_names, pack_dataset
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling
from trl.trainer.utils import get_config_model_id, global_then_local_main_first, pad

from .cards import adapt_config_for, model_card
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


def _chat_kwargs(example: dict[str, Any], chat_template: Optional[str]) -> dict[str, Any]:
    """The `apply_chat_template` kwargs TRL's `tokenize_fn` uses, so our rendering matches its token ids."""
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
        expert_ids = _tokenize(tokenizer, expert_messages, **kwargs)["input_ids"]
    else:
        expert_ids = _tokenize(tokenizer, prompt + content[:start], chat_template=chat_template)["input_ids"]
    shared = common_prefix_length(list(expert_ids), ids)
    return [0] * shared + [1] * (len(ids) - shared)


def _add_explore_mask(example: dict[str, Any], tokenizer: PreTrainedTokenizerBase, chat_template: Optional[str]):
    return {EXPLORE_MASK_COLUMN: explore_mask_for_example(example, tokenizer, chat_template)}


def _truncate(example: dict[str, Any], sl: slice) -> dict[str, Any]:
    return {k: example[k][sl] for k in ("input_ids", "labels", EXPLORE_MASK_COLUMN)}


def _has_label(example: dict[str, Any]) -> bool:
    return any(label != -100 for label in example["labels"])


# --------------------------------------------------------------------------------------------------------------------
# Collator
# --------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class DartDataCollator(DataCollatorForLanguageModeling):
    """TRL's language-modeling collator that also pads (or, padding-free, concatenates) `explore_mask`.

    TRL's collator silently drops unknown per-token columns; this one carries `explore_mask` through exactly like
    `labels`. Batches without the column are returned unchanged (every token then counts as expert).
    """

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        output = super().torch_call(examples)
        if EXPLORE_MASK_COLUMN not in examples[0]:
            return output
        masks = [torch.as_tensor(example[EXPLORE_MASK_COLUMN], dtype=torch.long) for example in examples]
        if self.padding_free:
            masks = [torch.cat(masks, dim=0)]
        output[EXPLORE_MASK_COLUMN] = pad(
            masks, padding_value=0, padding_side="right", pad_to_multiple_of=self.pad_to_multiple_of
        )
        return output


# --------------------------------------------------------------------------------------------------------------------
# Trainer
# --------------------------------------------------------------------------------------------------------------------


class _RecordingModel:
    """Stands in for the model inside `SFTTrainer.compute_loss` to keep the fused forward's per-token log-probs."""

    def __init__(self, model: torch.nn.Module):
        self._model = model
        self.outputs = None

    def __call__(self, *args, **kwargs):
        outputs = self._model(*args, **kwargs)
        if self.outputs is None and kwargs.get("fused_lm_head"):
            self.outputs = outputs
        return outputs

    def __getattr__(self, name: str):
        return getattr(self._model, name)


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
        if self._dart_weighted:
            if kwargs.get("compute_loss_func") is not None or args.label_smoothing_factor > 0:
                raise ValueError(
                    "Provenance weights (`expert_weight`/`explore_weight` other than 1.0) are not supported together "
                    "with `compute_loss_func` or `label_smoothing_factor`."
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

        # TRL builds its collator itself (and refuses a custom one with padding-free/BFD packing), so swap in ours
        # afterwards with the same settings
        collator = self.data_collator
        if type(collator) is DataCollatorForLanguageModeling:
            self.data_collator = DartDataCollator(
                **{f.name: getattr(collator, f.name) for f in dataclasses.fields(collator)}
            )
        elif not isinstance(collator, DartDataCollator):
            logger.warning(
                "DartTrainer: custom data collator %s does not carry `explore_mask`; every token is treated as expert.",
                type(collator).__name__,
            )

        # Per mode: [expert nll sum, expert tokens, explore nll sum, explore tokens] over the logging window
        self._provenance = {"train": torch.zeros(4, dtype=torch.float64), "eval": torch.zeros(4, dtype=torch.float64)}
        self._warned_no_log_probs = False

    # ---- data ------------------------------------------------------------------------------------------------------

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if EXPLORE_MASK_COLUMN not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, EXPLORE_MASK_COLUMN]

    def _prepare_dataset(
        self,
        dataset: Union[Dataset, IterableDataset],
        processing_class: Union[PreTrainedTokenizerBase, ProcessorMixin],
        args: DartSFTConfig,
        packing: bool,
        formatting_func: Optional[Callable[[dict], str]],
        dataset_name: str,
    ) -> Union[Dataset, IterableDataset]:
        """TRL's preparation, plus an `explore_mask` column carried through truncation and packing.

        TRL's packing keeps only `input_ids`/`labels`, so for provenance data TRL prepares the dataset without
        truncation, packing or shuffling, the mask is computed on the full token ids, and then we truncate, pack (with
        TRL's `pack_dataset`, which packs every list column alike) and shuffle the same way TRL does.
        """
        columns = get_dataset_column_names(dataset)
        if STUDENT_START_COLUMN not in columns and EXPLORE_MASK_COLUMN not in columns:
            return super()._prepare_dataset(dataset, processing_class, args, packing, formatting_func, dataset_name)

        if formatting_func is None and "input_ids" not in columns:
            keep = [c for c in columns if c in _DART_TRAIN_COLUMNS]
            if len(keep) < len(columns):
                dataset = dataset.select_columns(keep)

        inner_args = copy.copy(args)
        inner_args.max_length = None
        inner_args.shuffle_dataset = False
        dataset = super()._prepare_dataset(dataset, processing_class, inner_args, False, formatting_func, dataset_name)

        map_kwargs: dict[str, Any] = {}
        if isinstance(dataset, Dataset):  # IterableDataset.map has no num_proc / desc
            map_kwargs["num_proc"] = args.dataset_num_proc
        tokenizer = processing_class.tokenizer if isinstance(processing_class, ProcessorMixin) else processing_class

        with global_then_local_main_first():
            if EXPLORE_MASK_COLUMN not in get_dataset_column_names(dataset):
                if isinstance(dataset, Dataset):
                    map_kwargs["desc"] = f"Marking student-explored tokens in {dataset_name} dataset"
                dataset = dataset.map(
                    _add_explore_mask,
                    fn_kwargs={"tokenizer": tokenizer, "chat_template": self.chat_template},
                    **map_kwargs,
                )

            if args.max_length is not None and not packing:
                if args.truncation_mode == "keep_start":
                    sl = slice(None, args.max_length)
                elif args.truncation_mode == "keep_end":
                    sl = slice(-args.max_length, None)
                else:
                    raise ValueError(f"Unsupported truncation mode: {args.truncation_mode}")
                if isinstance(dataset, Dataset):
                    map_kwargs["desc"] = f"Truncating {dataset_name} dataset"
                dataset = dataset.map(_truncate, fn_kwargs={"sl": sl}, **map_kwargs)
                if isinstance(dataset, Dataset):
                    map_kwargs["desc"] = f"Dropping fully masked examples from {dataset_name} dataset"
                dataset = dataset.filter(_has_label, **map_kwargs)

            if packing:
                if args.max_length is None:
                    raise ValueError("When packing is enabled, `max_length` can't be `None`.")
                dataset = dataset.select_columns(["input_ids", "labels", EXPLORE_MASK_COLUMN])
                if args.shuffle_dataset:
                    dataset = dataset.shuffle(seed=args.seed)
                if isinstance(dataset, Dataset):
                    map_kwargs["desc"] = f"Packing {dataset_name} dataset"
                dataset = pack_dataset(dataset, args.max_length, args.packing_strategy, map_kwargs)

        if args.shuffle_dataset:
            dataset = dataset.shuffle(seed=args.seed)
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
        explore_mask = inputs.pop(EXPLORE_MASK_COLUMN, None)
        mode = "train" if self.model.training else "eval"
        if self._dart_weighted:
            return self._weighted_loss(model, inputs, explore_mask, mode, return_outputs, num_items_in_batch)

        recorder = _RecordingModel(model)
        result = super().compute_loss(
            recorder, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )
        outputs = recorder.outputs
        log_probs = getattr(outputs, "log_probs", None) if outputs is not None else None
        labels = inputs.get("labels")
        if log_probs is not None and labels is not None and log_probs.shape == labels[..., 1:].shape:
            trained = labels[..., 1:] != -100
            self._record_provenance(-log_probs.detach(), trained, explore_mask, mode)
        elif not self._warned_no_log_probs:
            self._warned_no_log_probs = True
            warnings.warn(
                "DartTrainer: SFTTrainer's forward did not expose per-token log-probs, so expert_loss/explore_loss "
                "are not logged.",
                stacklevel=2,
            )
        return result

    def _weighted_loss(self, model, inputs, explore_mask, mode: str, return_outputs: bool, num_items_in_batch):
        """Provenance-weighted NLL from the model's own logits (no dependence on TRL's fused LM head)."""
        inputs["use_cache"] = False
        if self.aux_loss_enabled:
            inputs["output_router_logits"] = True
        labels = inputs["labels"]
        outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
        logits = outputs.logits[:, :-1, :]
        shift_labels = labels[:, 1:].to(logits.device)
        trained = shift_labels != -100
        nll = F.cross_entropy(
            logits.float().reshape(-1, logits.size(-1)), shift_labels.reshape(-1), ignore_index=-100, reduction="none"
        ).view_as(shift_labels)
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
        if self.aux_loss_enabled and getattr(outputs, "aux_loss", None) is not None:
            steps = self.current_gradient_accumulation_steps if num_items_in_batch is not None else 1
            loss = loss + self.router_aux_loss_coef * outputs.aux_loss / steps

        # The metrics SFTTrainer logs, from the logits
        with torch.no_grad():
            detached = logits.detach()
            num_valid = self.accelerator.gather_for_metrics(trained.sum()).sum()
            log_p = torch.log_softmax(detached.float(), dim=-1)
            entropy = -(log_p.exp() * log_p).sum(-1)
            entropy_sum = self.accelerator.gather_for_metrics((entropy * trained).sum()).sum()
            correct = (detached.argmax(-1) == shift_labels) & trained
            num_correct = self.accelerator.gather_for_metrics(correct.sum()).sum()
            self._metrics[mode]["entropy"].append((entropy_sum / num_valid).item() if num_valid > 0 else 0.0)
            self._metrics[mode]["mean_token_accuracy"].append(
                (num_correct / num_valid).item() if num_valid > 0 else 0.0
            )
            if mode == "train":
                if "attention_mask" in inputs:
                    local_tokens = inputs["attention_mask"].sum()
                else:
                    local_tokens = torch.tensor(inputs["input_ids"].size(1), device=inputs["input_ids"].device)
                num_tokens = self.accelerator.gather_for_metrics(local_tokens).sum().item()
                self._total_train_tokens += num_tokens // self._tp_size
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            if self.aux_loss_enabled and getattr(outputs, "aux_loss", None) is not None:
                aux_loss = self.accelerator.gather_for_metrics(outputs.aux_loss).mean().item()
                self._metrics[mode]["aux_loss"].append(aux_loss)
            self._record_provenance(nll.detach(), trained, explore_mask, mode)
        return (loss, outputs) if return_outputs else loss

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

    # ---- model card ------------------------------------------------------------------------------------------------

    def create_model_card(
        self,
        model_name: Optional[str] = None,
        dataset_name: Optional[str] = None,
        tags: Optional[Union[str, list[str]]] = None,
        *,
        dart_config: Optional[Mapping[str, Any]] = None,
        eval_results: Optional[Mapping[str, Mapping[str, Any]]] = None,
        license: Optional[str] = None,
    ) -> Optional[ModelCard]:
        """Write the DART model card (`dart_hf.cards.model_card`) to `output_dir/README.md` instead of TRL's.

        `push_to_hub(dataset_name=...)`, checkpoint saves and `save_model` with `push_to_hub=True` call this, so the
        card that goes up with the weights says what DART did. Arguments given once are remembered for those later
        calls. `dart_config` defaults to the `config` in the adapt run's `stats.json` beside a local `dataset_name`.
        """
        given = dict(dataset_name=dataset_name, dart_config=dart_config, eval_results=eval_results, license=license)
        self._dart_card_kwargs = {
            **getattr(self, "_dart_card_kwargs", {}),
            **{k: v for k, v in given.items() if v is not None},
        }
        kwargs = self._dart_card_kwargs
        if kwargs.get("dart_config") is None:  # kept once found: a later push may name the Hub copy of the data
            kwargs["dart_config"] = adapt_config_for(kwargs.get("dataset_name"))
        if not self.is_world_process_zero():
            return None
        tags = [tags] if isinstance(tags, str) else list(tags or [])
        card = model_card(
            base_model=get_config_model_id(self.model.config) or None,
            dataset_id=kwargs.get("dataset_name"),
            dart_config=kwargs.get("dart_config"),
            training_args=self.args.to_dict(),
            eval_results=kwargs.get("eval_results"),
            repo_id=self.hub_model_id or self.args.hub_model_id,
            license=kwargs.get("license"),
            model_name=model_name,
            tags=[*self._tag_names, *tags],
        )
        os.makedirs(self.args.output_dir, exist_ok=True)
        card.save(os.path.join(self.args.output_dir, "README.md"))
        return card


def _filter_unusable(dataset, name: str):
    """Drop rows `DartAdapter` marked as errors or dropped; log how many (datasets without DART columns pass)."""
    if dataset is None:
        return None
    columns = get_dataset_column_names(dataset)
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
