"""`DartTrainer`: TRL's `SFTTrainer` that knows which completion tokens the student wrote itself.

DART trains with ordinary token-level SFT on adapted trajectories (DESIGN.md §1 step 6). Each adapted completion is
an expert prefix followed, from character `dart_student_start` on, by the student's own continuation. That offset
becomes a per-token `explore_mask` on TRL's own token ids, so the two parts can be weighted
(`DartSFTConfig.expert_weight` / `explore_weight`) and their losses logged (`expert_loss`, `explore_loss`,
`explore_token_share`). Everything else is `SFTTrainer`'s: tokenization, completion-only labels, truncation, packing,
collation, and the loss, which with the default weights (1.0/1.0) is exactly SFT. Any dataset `SFTTrainer` accepts
works: without `dart_student_start`, every completion token counts as expert.
"""

from __future__ import annotations

import copy
import dataclasses
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
from trl import SFTTrainer, pack_dataset

from .cards import adapt_config_for, model_card
from .provenance import (
    EXPLORE_MASK_COLUMN,
    STUDENT_START_COLUMN,
    TRAIN_COLUMNS,
    DartDataCollator,
    add_explore_mask,
    align_explore_mask,
    column_names,
)
from .schema import PAPER_ARXIV_ID, PAPER_CITATION, PAPER_TITLE, is_usable
from .sft_config import DartSFTConfig

logger = logging.getLogger(__name__)


def _next_token_log_probs(outputs: Any, labels: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """Log-prob of each next-token label (like `labels[..., 1:]`, 0 where untrained): from TRL's fused LM head, or
    from the logits (TRL < 1.15, label smoothing, `compute_loss_func`). `None` when neither fits (e.g.
    pre-shifted labels under sequence parallelism)."""
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
        if self._dart_weighted and (kwargs.get("compute_loss_func") is not None or args.label_smoothing_factor > 0):
            raise ValueError(
                "Provenance weights (`expert_weight`/`explore_weight` other than 1.0) are not supported together "
                "with `compute_loss_func` or `label_smoothing_factor`."
            )

        if args.loss_type == "chunked_nll":  # TRL < 1.15's default: its chunked forward gives no per-token log-probs
            args.loss_type = "nll"
        if args.filter_unusable:
            train_dataset = _filter_unusable(train_dataset, "train")
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
        if self._dart_weighted and any(getattr(parallelism, f"{kind}_enabled", False) for kind in ("cp", "sp")):
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

        TRL tokenizes and builds the labels at full length (no truncation, packing or shuffling); the mask is computed
        on those ids. Unpacked data then goes through TRL's preparation again (a no-op for tokenization) to be
        truncated, filtered and shuffled like plain SFT data, and the mask is cut to the tokens TRL kept. TRL's packing
        drops unknown columns, so packing calls TRL's public `pack_dataset` here, as `SFTTrainer` does.
        """
        columns = column_names(dataset)
        if STUDENT_START_COLUMN not in columns and EXPLORE_MASK_COLUMN not in columns:
            return super()._prepare_dataset(dataset, processing_class, args, packing, formatting_func, dataset_name)

        if formatting_func is None and "input_ids" not in columns and not set(columns) <= TRAIN_COLUMNS:
            dataset = dataset.select_columns([c for c in columns if c in TRAIN_COLUMNS])

        full_args = copy.copy(args)
        full_args.max_length, full_args.shuffle_dataset = None, False
        dataset = super()._prepare_dataset(dataset, processing_class, full_args, False, formatting_func, dataset_name)

        # Like TRL: `IterableDataset.map` takes no num_proc / desc; the main process writes the cache first
        eager = isinstance(dataset, Dataset)
        map_kwargs: dict[str, Any] = {"num_proc": args.dataset_num_proc} if eager else {}
        tokenizer = processing_class.tokenizer if isinstance(processing_class, ProcessorMixin) else processing_class
        chat_template = getattr(self, "chat_template", None)  # the template TRL tokenized with (assistant-only loss)
        with args.main_process_first(local=False, desc=f"marking explored tokens of the {dataset_name} dataset"):
            if EXPLORE_MASK_COLUMN not in column_names(dataset):
                fn_kwargs = {"tokenizer": tokenizer, "chat_template": chat_template}
                desc = {"desc": f"Marking explored tokens in {dataset_name} dataset"} if eager else {}
                dataset = dataset.map(add_explore_mask, fn_kwargs=fn_kwargs, **map_kwargs, **desc)
            if packing:
                if args.max_length is None:
                    raise ValueError("When packing is enabled, `max_length` can't be `None`.")
                dataset = dataset.select_columns(["input_ids", "labels", EXPLORE_MASK_COLUMN])
                if args.shuffle_dataset:  # before packing too, as TRL does, so that packed neighbours are unrelated
                    dataset = dataset.shuffle(seed=args.seed)
                desc = {"desc": f"Packing {dataset_name} dataset"} if eager else {}
                dataset = pack_dataset(dataset, args.max_length, args.packing_strategy, {**map_kwargs, **desc})
                return dataset.shuffle(seed=args.seed) if args.shuffle_dataset else dataset

        dataset = super()._prepare_dataset(dataset, processing_class, args, False, None, dataset_name)
        if args.max_length is not None:
            with args.main_process_first(local=False, desc=f"truncating explore_mask of the {dataset_name} dataset"):
                keep_end = args.truncation_mode == "keep_end"
                dataset = dataset.map(align_explore_mask, fn_kwargs={"keep_end": keep_end}, **map_kwargs)
        return dataset

    def evaluate(self, eval_dataset=None, ignore_keys: Optional[list[str]] = None, metric_key_prefix: str = "eval"):
        """Like `SFTTrainer.evaluate`; a dataset passed here is filtered of unusable DART rows like at init."""
        if self.args.filter_unusable and not isinstance(eval_dataset, str):
            eval_dataset = _filter_unusable(eval_dataset, metric_key_prefix)
        return super().evaluate(eval_dataset=eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)

    def _token_weights(self, labels: torch.Tensor, explore_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """Weight of each next-token prediction (shifted: position j predicts token j + 1); 0 where not trained."""
        trained = labels[..., 1:] != -100
        weights = torch.full(trained.shape, float(self.args.expert_weight), device=labels.device)
        if explore_mask is not None:
            weights[explore_mask[..., 1:].to(labels.device).bool()] = float(self.args.explore_weight)
        return weights * trained

    def get_batch_samples(self, epoch_iterator, num_batches: int, device: torch.device):
        """With provenance weights, `num_items_in_batch` (trained tokens over the accumulation batch) becomes the sum
        of their weights, so that the loss stays a weighted mean under gradient accumulation."""
        batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        if not self._dart_weighted or num_items_in_batch is None:
            return batch_samples, num_items_in_batch
        weights = [self._token_weights(batch["labels"], batch.get(EXPLORE_MASK_COLUMN)) for batch in batch_samples]
        total = torch.stack([w.sum().double().to(device) for w in weights]).sum()
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            total = self.accelerator.gather(total).sum()
        elif self.args.n_gpu > 1:
            total = total / self.args.n_gpu
        total = total / (self.get_tp_size() * self.get_cp_size() * self.get_sp_size())
        return batch_samples, total.float()

    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        """`SFTTrainer.compute_loss` (loss, metrics, MoE aux loss), plus the provenance split of its own forward pass.

        A forward hook keeps the outputs of TRL's (first) forward, so the per-token log-probs cost no extra pass; with
        provenance weights the loss is recomputed from them."""
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
                    "DartTrainer: no per-token log-probs, so expert/explore losses are not logged.", stacklevel=2
                )
            return result

        nll = -log_probs
        self._record_provenance(nll.detach(), labels[..., 1:].to(nll.device) != -100, explore_mask, mode)
        if not self._dart_weighted:
            return result

        # Weighted mean NLL (or DFT) over the accumulation batch, plus the MoE aux loss as TRL adds it
        per_token_loss = nll * torch.exp(-nll).detach() if self.args.loss_type == "dft" else nll
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
        return (loss, result[1]) if return_outputs else loss

    def _record_provenance(
        self, nll: torch.Tensor, trained: torch.Tensor, explore_mask: Optional[torch.Tensor], mode: str
    ) -> None:
        """Accumulate (over processes) the expert / explore NLL sums and token counts of one micro-batch."""
        explore = trained & (explore_mask[..., 1:].to(nll.device).bool() if explore_mask is not None else False)
        expert, nll = trained & ~explore, nll.double()
        stats = torch.stack([(nll * expert).sum(), expert.sum(), (nll * explore).sum(), explore.sum()]).double()
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
            base_model=getattr(self.model.config, "_name_or_path", "") or None,  # what TRL's own card reads
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
    if isinstance(dataset, dict):
        return {key: _filter_unusable(ds, key) for key, ds in dataset.items()}
    columns = column_names(dataset)
    if "dart_action" not in columns or "dart_solution" not in columns:
        return dataset
    if isinstance(dataset, IterableDataset):
        logger.info("DartTrainer: filtering unusable rows of the streamed %s dataset on the fly.", name)
        return dataset.filter(is_usable)
    before = len(dataset)
    dataset = dataset.filter(is_usable, desc=f"Dropping unusable DART rows from {name} dataset")
    dropped = before - len(dataset)
    reason = "that DartAdapter could not use (dart_action='error' or empty dart_solution)"
    (logger.warning if dropped else logger.info)(
        "DartTrainer: dropped %d of %d %s rows %s.", dropped, before, name, reason
    )
    if len(dataset) == 0:
        raise ValueError(f"No usable rows left in the {name} dataset after dropping DartAdapter errors/dropped rows.")
    return dataset
