"""SharedPromptBatch: one KV copy per prompt while decoding gives the per-sample decode's completions."""

from __future__ import annotations

import pytest
import torch

from dart_hf.backends.base import GenerationRequest
from dart_hf.backends.transformers import TransformersBackend
from dart_hf.backends.transformers.decode import DecodeBatch
from dart_hf.backends.transformers.shared_prompt import ATTENTION, SharedPromptBatch, attention_of, supports


def chat(tokenizer, content: str) -> str:
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )


@pytest.fixture(scope="module", params=["qwen2", "llama"])
def student(request, tmp_path_factory) -> str:
    from dart_hf.local_models import build_tiny_student

    return build_tiny_student(tmp_path_factory.mktemp(f"tiny_{request.param}"), arch=request.param, seed=1)


def requests_for(tokenizer) -> list[GenerationRequest]:
    problem = "Solve $x^2 - 5x + 6 = 0$. Please reason step by step."
    prompts = [chat(tokenizer, problem + " Step 1: factor." * k) for k in range(3)] + [chat(tokenizer, "2 + 3?")]
    reqs = [
        GenerationRequest(p, n=3, seed=i, temperature=0.8, top_p=0.95, max_new_tokens=12 + 9 * i)
        for i, p in enumerate(prompts)
    ]
    # a top-up of the first prompt (the adaptive searches' case) and a greedy one
    reqs.append(
        GenerationRequest(prompts[0], n=2, seed=0, first_sample=3, temperature=0.8, top_p=0.95, max_new_tokens=12)
    )
    reqs.append(GenerationRequest(prompts[3], n=1, seed=9, temperature=0, max_new_tokens=90))  # past the first 64 slots
    return reqs


def test_shared_kv_gives_the_per_sample_decodes_completions(student):
    plain = TransformersBackend(student, device="cpu", shared_kv=False, stop_at_answer=False)
    reqs = requests_for(plain.tokenizer)
    expected = plain.generate(reqs)
    assert max(c.num_tokens for r in expected for c in r) > 64  # row slots had to grow
    # batch 64: all at once; batch 4: samples join freed slots while others decode
    for batch_size in (64, 4):
        shared = TransformersBackend(student, device="cpu", batch_size=batch_size, stop_at_answer=False)
        assert shared._shares_kv()
        got = shared.generate(reqs)
        for a, b in zip(expected, got):
            assert [(c.text, c.num_tokens, c.finish_reason) for c in a] == [
                (c.text, c.num_tokens, c.finish_reason) for c in b
            ]
            assert [c.logprob for c in a] == pytest.approx([c.logprob for c in b], abs=1e-5)


def test_a_prompt_still_decoding_is_not_prefilled_again(student, monkeypatch):
    backend = TransformersBackend(student, device="cpu", batch_size=3, stop_at_answer=False)
    prompt = chat(backend.tokenizer, "Compute 12 times 7.")
    prefilled: list[int] = []
    original = backend._prefill

    def spy(model, prompts, expand, limit, device):
        prefilled.append(len(prompts))
        return original(model, prompts, expand, limit, device)

    monkeypatch.setattr(backend, "_prefill", spy)
    reqs = [
        GenerationRequest(prompt, n=2, seed=0, temperature=0.8, max_new_tokens=40),
        GenerationRequest(prompt, n=1, seed=0, first_sample=2, temperature=0.8, max_new_tokens=3),
        # waits for a free slot, then joins while the first request's rows still decode
        GenerationRequest(prompt, n=2, seed=0, first_sample=3, temperature=0.8, max_new_tokens=10),
    ]
    got = backend.generate(reqs)
    assert prefilled == [1]
    alone = TransformersBackend(student, device="cpu", shared_kv=False, stop_at_answer=False)
    for a, b in zip(alone.generate(reqs), got):
        assert [c.text for c in a] == [c.text for c in b]


def test_freed_slots_are_reused_and_forwards_never_exceed_the_batch(student, monkeypatch):
    backend = TransformersBackend(student, device="cpu", batch_size=5, stop_at_answer=False)
    widths: list[int] = []
    advance = SharedPromptBatch._advance

    def spy(self):
        widths.append(len(self._rows))
        advance(self)

    monkeypatch.setattr(SharedPromptBatch, "_advance", spy)
    reqs = requests_for(backend.tokenizer)
    got = backend.generate(reqs)
    assert sum(len(r) for r in got) == sum(r.n for r in reqs) > 5
    assert widths and max(widths) <= 5


def test_models_that_do_not_qualify_decode_one_row_per_sample(student):
    from transformers import AutoConfig, AutoModelForCausalLM

    eager = AutoModelForCausalLM.from_pretrained(student, attn_implementation="eager")
    assert not supports(eager)
    assert not supports(AutoModelForCausalLM.from_pretrained(student, dtype=torch.bfloat16))
    config = AutoConfig.from_pretrained(student, sliding_window=8, layer_types=["full_attention", "sliding_attention"])
    sliding = AutoModelForCausalLM.from_pretrained(student, config=config)
    if "sliding_attention" in (getattr(sliding.config, "layer_types", None) or []):  # Qwen2 has them, Llama does not
        assert not supports(sliding)
    plain = TransformersBackend(student, device="cpu", shared_kv=False)
    assert "shared_kv=False" in plain.fingerprint
    assert "shared_kv" not in TransformersBackend(student, device="cpu").fingerprint
    for backend, kind in [(plain, DecodeBatch), (TransformersBackend(eager, device="cpu"), DecodeBatch)]:
        stream = backend.stream()
        stream.submit(0, GenerationRequest(chat(backend.tokenizer, "2 + 3?"), n=2, seed=0, max_new_tokens=4))
        assert stream.collect()[0][0] == 0
        assert type(stream._batch) is kind


def test_the_attention_function_is_sdpa_outside_a_shared_decode(student):
    backend = TransformersBackend(student, device="cpu")
    model = backend.model
    ids = backend.tokenizer(chat(backend.tokenizer, "Compute 12 times 7."), return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        reference = model(input_ids=ids).logits
        with attention_of(model):
            assert model.config._attn_implementation == ATTENTION
            assert torch.equal(model(input_ids=ids).logits, reference)
    assert model.config._attn_implementation == "sdpa"
    backend.generate([GenerationRequest(chat(backend.tokenizer, "2 + 3?"), n=2, seed=0, max_new_tokens=4)])
    assert model.config._attn_implementation == "sdpa"


def test_dart_hf_adapt_passes_shared_kv_to_its_student(student):
    from dart_hf import DartConfig
    from dart_hf.scripts.adapt import AdaptScriptArguments, build_adapter

    args = AdaptScriptArguments(dataset_name="demo", student=student)
    assert build_adapter(args, DartConfig()).backend.shared_kv is True
    args.shared_kv = False
    assert build_adapter(args, DartConfig()).backend.fingerprint.endswith("shared_kv=False")
