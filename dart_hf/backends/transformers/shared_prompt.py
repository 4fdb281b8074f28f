"""Decoding with each prompt's KV cached once, however many samples continue it.

DART draws `n_sim` samples after every expert prefix (and `n_explore` after the gap), so most rows
of a decode batch repeat another row's prompt. [`DecodeBatch`][dart_hf.backends.transformers.decode.DecodeBatch]
keeps one KV row per sample: every decode step reads each prompt's KV once per sample, and every
admission copies the whole cache to merge the new rows in. `SharedPromptBatch` keeps a prompt's KV
once, in a *group slot*, and each sample's own tokens in a *row slot*. Attention runs in two parts,
joined by their log-sum-exp (cascade attention, as in Hydragen, arXiv 2402.05099): all samples of a
group attend to its prompt in one product, and each row attends to its own tokens. Admission writes
the new prompts' KV into free group slots and nothing else moves; a finished row frees its slot, and
a group its slot when its last row finishes. A prompt whose group is still live (a top-up of an
adaptive search) joins it without a prefill.

The model runs its own layers; only the attention function differs. It is registered with
transformers' `AttentionInterface` as `"dart_shared_prompt"` and is transformers' SDPA whenever the
call does not carry this batch's `shared_prompt`. Models qualify when they run in float32, use SDPA through
that interface and every layer attends to the whole context (no sliding windows, soft-capping or sinks):
[`supports`][dart_hf.backends.transformers.shared_prompt.supports].
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

import torch

from .cache import GrowableLayer
from .decode import Completion, DecodeBatch, Sample, blocked_head

ATTENTION = "dart_shared_prompt"
_NO_SCORE = -1e30  # "no prompt" for a free row: exp() of it against any real score is 0, without NaNs
_registered = False
_swap_lock = threading.Lock()


def _attention(
    module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: Any, **kwargs: Any
):
    shared: Optional[SharedKV] = kwargs.pop("shared_prompt", None)
    if shared is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    return shared.attend(module.layer_idx, query, key, value, kwargs.get("scaling")), None


def register() -> None:
    """Make `"dart_shared_prompt"` known to transformers (once per process)."""
    global _registered
    if not _registered:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        AttentionInterface.register(ATTENTION, _attention)
        AttentionMaskInterface.register(ATTENTION, sdpa_mask)
        _registered = True


def supports(model: Any) -> bool:
    """Can `model` decode with shared prompt KV (float32, plain SDPA through transformers' attention interface, full attention only)?

    Half precision is left to SDPA: there the two-part attention rounds differently from SDPA's
    kernels, and greedy continuations drifted from `model.generate`'s (`benchmarks/gpu.py`'s
    bfloat16 check); it is also unmeasured on a GPU.
    """
    config = getattr(model, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    if getattr(model, "dtype", None) != torch.float32:
        return False
    can_set = getattr(model, "_can_set_attn_implementation", None)
    if can_set is None or not can_set():
        return False
    if any(getattr(config, name, None) for name in ("attn_logit_softcapping", "final_logit_softcapping")):
        return False
    if any(sub for sub in getattr(config, "sub_configs", {}) or {}):  # multimodal: not attempted
        return False
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None:
        return all(t == "full_attention" for t in layer_types)
    return getattr(config, "sliding_window", None) is None or getattr(config, "use_sliding_window", True) is False


@contextmanager
def attention_of(model: Any) -> Iterator[None]:
    """Run `model` with the shared-prompt attention function for the duration of one forward.

    Other forwards of the model meanwhile (another thread) get SDPA from the same function; two
    shared-prompt forwards take turns, so neither sees the other restore the setting.
    """
    register()
    config = model.config
    with _swap_lock:
        before = config._attn_implementation_internal
        config._attn_implementation_internal = ATTENTION
        try:
            yield
        finally:
            config._attn_implementation_internal = before


def _grow(t: Optional[torch.Tensor], shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """`t` with at least `shape` (geometric growth, old content kept), or a new buffer like `like`."""
    if t is not None and all(have >= want for have, want in zip(t.shape, shape)):
        return t
    if t is not None:
        shape = tuple(max(want, have * 3 // 2) if want > have else have for have, want in zip(t.shape, shape))
    new = like.new_zeros(shape)
    if t is not None:
        new[tuple(slice(0, n) for n in t.shape)] = t
    return new


class SharedKV:
    """Every layer's prompt KV per group slot and generated-token KV per row slot, and the step's layout."""

    def __init__(self, n_layers: int) -> None:
        self.n_layers = n_layers
        self.pk: list[Optional[torch.Tensor]] = [None] * n_layers  # [groups, kv heads, prompt width, head dim]
        self.pv: list[Optional[torch.Tensor]] = [None] * n_layers
        self.pmask: Optional[torch.Tensor] = None  # [groups, prompt width] bool: the prompt's real tokens
        self.plen: Optional[torch.Tensor] = None  # [groups] real prompt tokens (the next position)
        self.sk: list[Optional[torch.Tensor]] = [None] * n_layers  # [rows, kv heads, generated, head dim]
        self.sv: list[Optional[torch.Tensor]] = [None] * n_layers
        self.slen: Optional[torch.Tensor] = None  # [rows] tokens a row has in its slot
        # the layout of one forward (`arrange`)
        self._rows = 0
        self._gather: Optional[torch.Tensor] = None
        self._scatter: Optional[torch.Tensor] = None
        self._shape = (0, 0)
        self._pwidth = self._swidth = 0
        self._pbias: Optional[torch.Tensor] = None
        self._sbias: Optional[torch.Tensor] = None
        self._index: Optional[torch.Tensor] = None

    def write_prompts(self, slots: list[int], cache: Any, mask: torch.Tensor) -> None:
        """Copy prefilled prompts (one cache row each, as `mask` says) into group `slots`."""
        index = torch.tensor(slots, device=mask.device)
        groups, width = max(slots) + 1, mask.shape[-1]
        for li, layer in enumerate(cache.layers):
            keys, values = layer.keys, layer.values
            shape = (groups, keys.shape[1], width, keys.shape[3])
            self.pk[li] = _grow(self.pk[li], shape, keys)
            self.pv[li] = _grow(self.pv[li], shape, values)
            self.pk[li][:, :, :width].index_copy_(0, index, keys)  # type: ignore[index]
            self.pv[li][:, :, :width].index_copy_(0, index, values)  # type: ignore[index]
        like = mask.new_zeros((), dtype=torch.bool)
        self.pmask = _grow(self.pmask, (groups, width), like)
        self.pmask[index] = False
        self.pmask[:, :width].index_copy_(0, index, mask.bool())
        self.plen = _grow(self.plen, (groups,), mask.new_zeros((), dtype=torch.long))
        self.plen[index] = mask.sum(-1).to(torch.long)

    def move_group(self, source: int, target: int) -> None:
        """Copy group slot `source`'s prompt into slot `target`."""
        assert self.pmask is not None and self.plen is not None
        width = int(self.pmask[source].nonzero().max()) + 1
        for li in range(self.n_layers):
            self.pk[li][target, :, :width] = self.pk[li][source, :, :width]  # type: ignore[index]
            self.pv[li][target, :, :width] = self.pv[li][source, :, :width]  # type: ignore[index]
        self.pmask[target] = self.pmask[source]
        self.plen[target] = self.plen[source]

    def reserve_rows(self, rows: int, tokens: int) -> None:
        """Room for `rows` row slots of `tokens` generated tokens each (after the first prompts are written)."""
        for li in range(self.n_layers):
            pk = self.pk[li]
            assert pk is not None
            shape = (rows, pk.shape[1], tokens, pk.shape[3])
            self.sk[li] = _grow(self.sk[li], shape, pk)
            self.sv[li] = _grow(self.sv[li], shape, pk)
        self.slen = _grow(self.slen, (rows,), pk.new_zeros((), dtype=torch.long))

    def arrange(self, group_of: list[int]) -> torch.Tensor:
        """Lay out one forward over row slots `0..len(group_of)-1` (-1: a free slot); return their position ids."""
        assert self.plen is not None and self.slen is not None and self.pmask is not None
        device = self.plen.device
        rows = len(group_of)
        members: dict[int, list[int]] = {}
        for r, g in enumerate(group_of):
            if g >= 0:
                members.setdefault(g, []).append(r)
        groups = max(members) + 1 if members else 1
        per_group = max((len(m) for m in members.values()), default=1)
        gather = [rows] * (groups * per_group)  # row `rows` is a zero query: padding
        scatter = [groups * per_group] * rows  # free rows read the "no prompt" entry past the end
        for g, rs in members.items():
            for k, r in enumerate(rs):
                gather[g * per_group + k] = r
                scatter[r] = g * per_group + k
        self._rows, self._shape = rows, (groups, per_group)
        self._gather = torch.tensor(gather, device=device)
        self._scatter = torch.tensor(scatter, device=device)
        live_groups = torch.tensor(sorted(members), device=device, dtype=torch.long)
        self._pwidth = int(self.pmask[live_groups].any(0).nonzero().max()) + 1 if members else 1
        self._pbias = torch.zeros((groups, self._pwidth), device=device)
        self._pbias.masked_fill_(~self.pmask[:groups, : self._pwidth], float("-inf"))
        self._pbias = self._pbias[:, None, None, :]
        slen = self.slen[:rows]
        self._swidth = int(slen.max()) + 1
        self._index = slen
        self._sbias = torch.zeros((rows, self._swidth), device=device)
        self._sbias.masked_fill_(torch.arange(self._swidth, device=device)[None, :] > slen[:, None], float("-inf"))
        self._sbias = self._sbias[:, None, None, :]
        group = torch.tensor([max(g, 0) for g in group_of], device=device)
        return (self.plen[group] + slen).masked_fill(torch.tensor(group_of, device=device) < 0, 0).unsqueeze(-1)

    def advance(self, live: list[int]) -> None:
        """After a forward: the live rows hold one more token."""
        assert self.slen is not None
        self.slen[torch.tensor(live, device=self.slen.device, dtype=torch.long)] += 1

    def attend(
        self, li: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: Optional[float]
    ) -> torch.Tensor:
        """Write this token's key and value into each row's slot, then attend: prompt part + own part, joined."""
        rows, kv_heads, dim = self._rows, key.shape[1], key.shape[-1]
        rep = query.shape[1] // kv_heads
        scale = dim**-0.5 if scaling is None else scaling
        sk, sv, pk, pv = self.sk[li], self.sv[li], self.pk[li], self.pv[li]
        assert sk is not None and sv is not None and pk is not None and pv is not None
        at = torch.arange(rows, device=key.device)
        sk[at, :, self._index] = key[:, :, 0]
        sv[at, :, self._index] = value[:, :, 0]
        q = query.reshape(rows, kv_heads, rep, dim)
        # the prompt: every group's rows in one product against its prompt's keys
        groups, per_group = self._shape
        qg = torch.cat([q, q.new_zeros((1, kv_heads, rep, dim))]).index_select(0, self._gather)  # type: ignore[arg-type]
        qg = qg.view(groups, per_group, kv_heads, rep, dim).transpose(1, 2).reshape(groups, kv_heads, -1, dim)
        o1, m1, l1 = _partial(qg, pk[:groups, :, : self._pwidth], pv[:groups, :, : self._pwidth], scale, self._pbias)

        def to_rows(t: torch.Tensor, fill: float) -> torch.Tensor:
            t = (
                t.view(groups, kv_heads, per_group, rep, -1)
                .transpose(1, 2)
                .reshape(groups * per_group, kv_heads, rep, -1)
            )
            t = torch.cat([t, t.new_full((1, *t.shape[1:]), fill)])
            return t.index_select(0, self._scatter)  # type: ignore[arg-type]

        o1, m1, l1 = to_rows(o1, 0.0), to_rows(m1, _NO_SCORE), to_rows(l1, 0.0)
        # each row's own tokens
        o2, m2, l2 = _partial(q, sk[:rows, :, : self._swidth], sv[:rows, :, : self._swidth], scale, self._sbias)
        m = torch.maximum(m1, m2)
        a1, a2 = (m1 - m).exp_(), (m2 - m).exp_()
        out = ((o1 * a1 + o2 * a2) / (l1 * a1 + l2 * a2)).to(query.dtype)
        return out.reshape(rows, kv_heads * rep, 1, dim).transpose(1, 2)


def _partial(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, bias: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unnormalised attention output, row max and row sum of exp (to be joined with another part).

    Scores, weights and sums are float32 whatever the model's dtype (as SDPA accumulates); the
    products run in the cache's dtype.
    """
    scores = torch.matmul(q, k.transpose(-1, -2)).float().mul_(scale).add_(bias)
    top = scores.amax(-1, keepdim=True).clamp_(min=_NO_SCORE)
    weights = (scores - top).exp_()
    return torch.matmul(weights.to(v.dtype), v).float(), top, weights.sum(-1, keepdim=True)


class SharedPromptBatch(DecodeBatch):
    """A [`DecodeBatch`][dart_hf.backends.transformers.decode.DecodeBatch] whose samples share their prompt's KV.

    Row slots are the rows of each forward (`_rows[r]`: the sample in slot r, None when free); new
    samples take the lowest free slots, so the forward stays as short as the live rows allow.
    """

    def __init__(self, model: Any, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self._kv = SharedKV(model.config.num_hidden_layers)
        self._group_of: list[int] = []  # per row slot: its group slot, -1 when free
        self._group_rows: dict[int, int] = {}  # live group slot -> rows in it
        self._group_prompt: dict[int, str] = {}
        self._group_by_prompt: dict[str, int] = {}
        self._group_logits: Optional[torch.Tensor] = None  # each live group's next-token logits after its prompt
        self._row_tokens = 0  # generated-token room of every row slot (grows as rows generate, as budgets allow)

    @property
    def can_admit(self) -> bool:
        return True

    def admit(self, samples: list[Sample]) -> list[tuple[Sample, Completion]]:
        finished, joining = self._begin(samples)
        if not joining:
            return finished
        if self.live and self._tokens is not None:  # every live row gets its next logits first
            self._advance()
        new_prompts: dict[str, list[int]] = {}
        for sample in joining:
            if sample.prompt not in self._group_by_prompt:
                new_prompts.setdefault(sample.prompt, sample.prompt_ids)
        if new_prompts:
            self._prefill_groups(new_prompts, max(s.budget for s in joining))
        slots = self._free_slots(len(joining))
        if max(slots) >= len(self._group_of) or not self._row_tokens:
            self._row_tokens = max(self._row_tokens, min(64, max(s.budget for s in joining)))
            self._kv.reserve_rows(max(len(self._group_of), max(slots) + 1), self._row_tokens)
        assert self._kv.slen is not None and self._group_logits is not None
        extra = max(slots) + 1 - len(self._rows)
        if extra > 0:
            self._rows += [None] * extra
            self._group_of += [-1] * extra
        logits = self._logits
        if logits is None or logits.shape[0] < len(self._rows):
            grown = self._group_logits.new_zeros((len(self._rows), self._group_logits.shape[-1]))
            if logits is not None:
                grown[: logits.shape[0]] = logits
            logits = grown
        for slot, sample in zip(slots, joining):
            group = self._group_by_prompt[sample.prompt]
            self._rows[slot] = sample
            self._group_of[slot] = group
            self._group_rows[group] += 1
            self._kv.slen[slot] = 0
            logits[slot] = self._group_logits[group]
        self._logits = logits
        self.live = [s for s in self._rows if s is not None]
        if self._token_text is None and self.stop_at_answer:
            self._token_text = self.pieces(logits.shape[-1])
        return finished

    def _prefill_groups(self, prompts: dict[str, list[int]], budget: int) -> None:
        """Prefill new prompts, one row each, into free group slots."""
        ids = list(prompts.values())
        limit = max(len(p) for p in ids) + budget
        logits, cache, mask = self.prefill(self.model, ids, list(range(len(ids))), limit, self.device)
        if not all(isinstance(layer, GrowableLayer) for layer in cache.layers):
            raise RuntimeError("this model's cache cannot be shared between samples")
        used = set(self._group_rows)
        slots = [g for g in range(len(used) + len(ids)) if g not in used][: len(ids)]
        self._kv.write_prompts(slots, cache, mask)
        self._group_logits = _grow(self._group_logits, (max(slots) + 1, logits.shape[-1]), logits)
        self._group_logits[torch.tensor(slots, device=logits.device)] = logits
        for slot, prompt in zip(slots, prompts):
            self._group_rows[slot] = 0
            self._group_prompt[slot] = prompt
            self._group_by_prompt[prompt] = slot

    def _drop_group(self, group: int) -> None:
        """Free a group slot; the highest live group moves into it, so the prompt part never reads holes."""
        del self._group_rows[group]
        del self._group_by_prompt[self._group_prompt.pop(group)]
        last = max(self._group_rows, default=-1)
        if last < group:
            return
        self._kv.move_group(last, group)
        assert self._group_logits is not None
        self._group_logits[group] = self._group_logits[last]
        self._group_rows[group] = self._group_rows.pop(last)
        prompt = self._group_prompt.pop(last)
        self._group_prompt[group], self._group_by_prompt[prompt] = prompt, group
        self._group_of = [group if g == last else g for g in self._group_of]

    def _free_slots(self, n: int) -> list[int]:
        free = [r for r, sample in enumerate(self._rows) if sample is None]
        free += list(range(len(self._rows), len(self._rows) + max(0, n - len(free))))
        return free[:n]

    def _advance(self) -> None:
        assert self._tokens is not None
        kv = self._kv
        live = [r for r, sample in enumerate(self._rows) if sample is not None]
        need = int(kv.slen[live].max()) + 1  # type: ignore[index]
        if need > self._row_tokens:  # room for this token, then geometric growth up to the longest budget left
            budget = max(s.budget for s in self.live)
            self._row_tokens = max(need, min(budget, self._row_tokens * 3 // 2 + 64))
            kv.reserve_rows(len(self._rows), self._row_tokens)
        position_ids = kv.arrange(self._group_of)
        with attention_of(self.model), blocked_head(self.model):
            out = self.model(
                input_ids=self._tokens.unsqueeze(-1),
                position_ids=position_ids,
                use_cache=False,
                logits_to_keep=1,
                shared_prompt=kv,
            )
        self._logits = out.logits[:, -1, :].float()
        kv.advance(live)
        self._tokens = None

    def _retire(self) -> None:
        """Free the slots of rows that finished (and of groups left empty); drop free slots at the end."""
        for r, sample in enumerate(self._rows):
            group = self._group_of[r]
            if sample is None and group >= 0:
                self._group_of[r] = -1
                self._kv.slen[r] = 0  # type: ignore[index]
                self._group_rows[group] -= 1
                if not self._group_rows[group]:
                    self._drop_group(group)
        self.live = [s for s in self._rows if s is not None]
        end = max((r + 1 for r, s in enumerate(self._rows) if s is not None), default=0)
        if end < len(self._rows):
            del self._rows[end:], self._group_of[end:]
            if self._tokens is not None:
                self._tokens = self._tokens[:end]
            if self._logits is not None:
                self._logits = self._logits[:end]
        if not self.live:
            self._tokens = self._logits = None
