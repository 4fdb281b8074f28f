"""TransformersBackend: seeded, batch-independent decoding; log-probs; stopping; fingerprints."""

from __future__ import annotations

import os
import time

import pytest
import torch

from dart_hf.backends.base import Completion, GenerationBackend, GenerationRequest
from dart_hf.backends.transformers import TransformersBackend
from dart_hf.backends.transformers.planner import share_groups


def chat(tokenizer, content: str) -> str:
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )


@pytest.fixture(scope="module")
def backend(tiny_student) -> TransformersBackend:
    return TransformersBackend(tiny_student, device="cpu", batch_size=64)


@pytest.fixture(scope="module")
def prompts(backend) -> list[str]:
    tok = backend.tokenizer
    return [
        chat(tok, "What is 2 + 3?"),
        chat(tok, r"Solve $x^2 - 5x + 6 = 0$. Please reason step by step, and put your final answer within \boxed{}."),
        chat(tok, "Compute 12 times 7."),
    ]


def same(a: list[Completion], b: list[Completion]) -> None:
    """Same tokens and outcomes; log-probs equal up to float noise from different batch shapes."""
    assert [(c.text, c.num_tokens, c.finish_reason) for c in a] == [(c.text, c.num_tokens, c.finish_reason) for c in b]
    assert [c.logprob for c in a] == pytest.approx([c.logprob for c in b], abs=1e-5)


def capture_token_ids(backend: TransformersBackend, monkeypatch) -> list[list[int]]:
    """Record the generated ids of every finished row (test-only peek at the backend's internals)."""
    captured: list[list[int]] = []
    original = backend._completion

    def spy(row, reason):
        captured.append(list(row.tokens))
        return original(row, reason)

    monkeypatch.setattr(backend, "_completion", spy)
    return captured


class ScriptedLogits:
    """Forward hook on the LM head that forces a token script (same for every row): step k gets script[k]."""

    def __init__(self, model, script: list[int]):
        self.script, self.step = script, 0
        self.handle = model.get_output_embeddings().register_forward_hook(self)

    def __call__(self, module, args, output):
        output = output.clone()
        if self.step < len(self.script):
            output[:, -1, self.script[self.step]] += 1e4
        self.step += 1
        return output

    def remove(self):
        self.handle.remove()


# ---------------------------------------------------------------------------- test assets


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_tiny_student_is_deterministic_and_tiny(tmp_path, arch):
    from transformers import AutoModelForCausalLM

    from dart_hf.local_models import build_tiny_student

    a = build_tiny_student(tmp_path / "a", arch=arch, seed=3)
    b = build_tiny_student(tmp_path / "b", arch=arch, seed=3)
    c = build_tiny_student(tmp_path / "c", arch=arch, seed=4)
    files = sorted(os.listdir(a))
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= set(files)
    read = lambda d, f: open(os.path.join(d, f), "rb").read()  # noqa: E731
    assert all(read(a, f) == read(b, f) for f in files)
    assert read(a, "model.safetensors") != read(c, "model.safetensors")
    model = AutoModelForCausalLM.from_pretrained(a)
    assert 5_000 < model.num_parameters() < 100_000
    assert model.config.model_type == arch


# ---------------------------------------------------------------------------- protocol, lazy loading


def test_protocol_and_lazy_properties(tiny_student):
    b = TransformersBackend(tiny_student, device="cpu")
    assert isinstance(b, GenerationBackend)
    assert b.context_length == 512
    assert b.tokenizer.eos_token == "<|im_end|>"
    assert not b.is_loaded  # config and tokenizer only
    assert b.tokens_generated == 0


def test_n_honoured_and_shapes(backend, prompts):
    reqs = [
        GenerationRequest(prompts[0], n=5, seed=1, max_new_tokens=8),
        GenerationRequest(prompts[1], n=0, seed=2, max_new_tokens=8),
        GenerationRequest(prompts[2], n=1, seed=3, max_new_tokens=8),
    ]
    before = backend.tokens_generated
    out = backend.generate(reqs)
    assert [len(x) for x in out] == [5, 0, 1]
    for c in out[0] + out[2]:
        assert isinstance(c, Completion) and 1 <= c.num_tokens <= 8
        assert c.finish_reason in {"stop", "length", "answer"}
        assert c.logprob is not None and c.logprob <= 0
    assert backend.tokens_generated - before == sum(c.num_tokens for c in out[0] + out[2])
    assert backend.generate([]) == []
    assert backend.generate([GenerationRequest(prompts[0], n=0, seed=0)]) == [[]]


# ---------------------------------------------------------------------------- seeding


def test_batch_independence(tiny_student, backend, prompts):
    target = GenerationRequest(prompts[0], n=3, seed=11, temperature=0.9, top_p=0.95, max_new_tokens=24)
    alone = backend.generate([target])[0]
    others = [
        GenerationRequest(prompts[1], n=2, seed=5, temperature=0.7, max_new_tokens=40),  # longer prompt: left padding
        GenerationRequest(prompts[2], n=1, seed=6, temperature=0, max_new_tokens=10),
    ]
    together = backend.generate([others[0], target, others[1]])[1]
    same(alone, together)
    small_batches = TransformersBackend(tiny_student, device="cpu", batch_size=2)
    same(alone, small_batches.generate([others[1], target, others[0]])[1])


def test_prefill_micro_batches_do_not_change_results(tiny_student, backend, prompts):
    reqs = [
        GenerationRequest(p, n=2, seed=i, temperature=0.8, max_new_tokens=30) for i, p in enumerate(prompts + prompts)
    ]
    one_prefill = backend.generate(reqs)
    # prefill_tokens=1: one prompt per prefill forward, caches left-padded and merged afterwards
    per_prompt = TransformersBackend(tiny_student, device="cpu", prefill_tokens=1).generate(reqs)
    for a, b in zip(one_prefill, per_prompt):
        same(a, b)


def test_same_seed_same_samples_different_seed_different(backend, prompts):
    req = GenerationRequest(prompts[0], n=4, seed=123, temperature=1.0, max_new_tokens=24)
    a, b = backend.generate([req])[0], backend.generate([req])[0]
    same(a, b)
    texts = [c.text for c in a]
    assert len(set(texts)) == 4  # sample index changes the sample
    other = backend.generate([GenerationRequest(prompts[0], n=4, seed=124, temperature=1.0, max_new_tokens=24)])[0]
    assert [c.text for c in other] != texts
    # n is a prefix property: the first samples do not depend on how many are asked for
    same(a[:2], backend.generate([GenerationRequest(prompts[0], n=2, seed=123, temperature=1.0, max_new_tokens=24)])[0])
    # ... and `first_sample` continues the stream: rounds of 1 + 3 give the same four samples
    rounds = backend.generate(
        [
            GenerationRequest(prompts[0], n=1, seed=123, temperature=1.0, max_new_tokens=24),
            GenerationRequest(prompts[0], n=3, seed=123, temperature=1.0, max_new_tokens=24, first_sample=1),
        ]
    )
    same(a, rounds[0] + rounds[1])
    with pytest.raises(ValueError, match="first_sample"):
        backend.generate([GenerationRequest(prompts[0], n=1, seed=1, first_sample=-1)])


# ---------------------------------------------------------------------------- correctness of the loop


def test_greedy_matches_model_generate(tiny_student, prompts):
    b = TransformersBackend(tiny_student, device="cpu", stop_at_answer=False)
    tok, model = b.tokenizer, b.model
    # > 64 new tokens: the in-place KV cache has to grow past its first reservation
    reqs = [GenerationRequest(p, n=1, seed=0, temperature=0, max_new_tokens=150) for p in prompts]
    ours = b.generate(reqs)
    assert max(c.num_tokens for (c,) in ours) > 64
    for p, (c,) in zip(prompts, ours):
        enc = tok(p, add_special_tokens=False, return_tensors="pt")
        ref = model.generate(**enc, do_sample=False, max_new_tokens=150, pad_token_id=tok.pad_token_id)
        ref_ids = ref[0, enc["input_ids"].shape[1] :].tolist()
        assert c.text == tok.decode(ref_ids, skip_special_tokens=True)
        assert c.num_tokens == len(ref_ids)
        assert c.finish_reason == ("stop" if ref_ids[-1] == tok.eos_token_id else "length")


def test_models_with_other_cache_layers_use_transformers_cache(tiny_student, prompts):
    """A sliding-window layer is not a plain DynamicLayer: one prefill forward and transformers' own cache."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(
        tiny_student, use_sliding_window=True, sliding_window=8, layer_types=["full_attention", "sliding_attention"]
    )
    model = AutoModelForCausalLM.from_pretrained(tiny_student, config=config)
    b = TransformersBackend(model, prefill_tokens=1, stop_at_answer=False)
    reqs = [GenerationRequest(p, n=1, seed=0, temperature=0, max_new_tokens=40) for p in prompts]
    together = b.generate(reqs)
    assert b._plain_cache is False
    for req, (c,) in zip(reqs, together):
        same([c], b.generate([req])[0])
        enc = b.tokenizer(req.prompt, add_special_tokens=False, return_tensors="pt")
        ref = model.generate(**enc, do_sample=False, max_new_tokens=40, pad_token_id=b.tokenizer.pad_token_id)
        assert c.text == b.tokenizer.decode(ref[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def test_logprob_is_raw_mean_of_teacher_forced_pass(tiny_student, prompts, monkeypatch):
    b = TransformersBackend(tiny_student, device="cpu", stop_at_answer=False)
    captured = capture_token_ids(b, monkeypatch)
    reqs = [
        GenerationRequest(prompts[0], n=2, seed=7, temperature=0.7, top_p=0.8, max_new_tokens=16),
        GenerationRequest(prompts[1], n=1, seed=8, temperature=0, max_new_tokens=16),
    ]
    out = b.generate(reqs)
    flat = [(r.prompt, c) for r, cs in zip(reqs, out) for c in cs]
    assert len(captured) == len(flat)
    by_text = {}
    for ids in captured:  # rows finish in any order: match them by decoded text
        by_text[b.tokenizer.decode(ids, skip_special_tokens=True)] = ids
    with torch.no_grad():
        for prompt, c in flat:
            gen = by_text[c.text]
            prompt_ids = b.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prompt_ids + gen])
            logits = b.model(input_ids=ids).logits[0].float()
            lp = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], dim=-1)
            expected = lp.gather(-1, torch.tensor(gen).unsqueeze(-1)).mean().item()
            assert c.logprob == pytest.approx(expected, abs=1e-4)


def test_max_new_tokens_and_context_cap(tiny_student, backend, prompts):
    b = TransformersBackend(tiny_student, device="cpu", stop_at_answer=False)
    eos = b.tokenizer.eos_token_id
    # force "no EOS" so lengths are exact: ban the EOS logit
    handle = b.model.get_output_embeddings().register_forward_hook(
        lambda m, a, out: out.index_fill(-1, torch.tensor([eos]), -1e9)
    )
    try:
        (c,) = b.generate([GenerationRequest(prompts[0], n=1, seed=0, max_new_tokens=7)])[0]
        assert (c.num_tokens, c.finish_reason) == (7, "length")
        zero = b.generate([GenerationRequest(prompts[0], n=2, seed=0, max_new_tokens=0)])[0]
        assert [(z.text, z.num_tokens, z.finish_reason) for z in zero] == [("", 0, "length")] * 2
        long_prompt = chat(b.tokenizer, "1 2 3 4 5 6 7 8 9 " * 24)
        n_prompt = len(b.tokenizer(long_prompt, add_special_tokens=False)["input_ids"])
        assert 400 < n_prompt < 500
        (c,) = b.generate([GenerationRequest(long_prompt, n=1, seed=0, max_new_tokens=1000)])[0]
        assert (c.num_tokens, c.finish_reason) == (512 - n_prompt, "length")
    finally:
        handle.remove()
    too_long = chat(b.tokenizer, "1 2 3 4 5 6 7 8 9 " * 40)
    with pytest.raises(ValueError, match=r"prompt of \d+ tokens .* context of 512 tokens"):
        backend.generate([GenerationRequest(prompts[0], n=1, seed=0), GenerationRequest(too_long, n=1, seed=0)])


def test_stop_on_eos_counts_the_eos_token(tiny_student, prompts):
    b = TransformersBackend(tiny_student, device="cpu")
    tok = b.tokenizer
    script = tok(" so 5", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    hook = ScriptedLogits(b.model, script)
    try:
        (c,) = b.generate([GenerationRequest(prompts[0], n=1, seed=0, max_new_tokens=50)])[0]
    finally:
        hook.remove()
    assert (c.text, c.num_tokens, c.finish_reason) == (" so 5", len(script), "stop")


@pytest.mark.parametrize(
    "script_text, answer",
    [
        (r" so the answer is \boxed{7}. Then more text follows", r" so the answer is \boxed{7}"),
        (r" hence $\boxed{\frac{1}{2}}$ and so on and so on", r" hence $\boxed{\frac{1}{2}}"),
        (r" put it in \boxed{}. So \boxed{7}. More text", r" put it in \boxed{}. So \boxed{7}"),  # empty box: no stop
    ],
)
def test_stop_at_answer(tiny_student, prompts, script_text, answer):
    b = TransformersBackend(tiny_student, device="cpu")
    tok = b.tokenizer
    script = tok(script_text, add_special_tokens=False)["input_ids"]
    pieces = [tok.decode([t]) for t in script]
    closing = next(k for k in range(len(script)) if tok.decode(script[: k + 1]).startswith(answer))
    assert "}" in pieces[closing]
    hook = ScriptedLogits(b.model, script)
    try:
        out = b.generate([GenerationRequest(prompts[0], n=2, seed=0, max_new_tokens=len(script) + 5)])[0]
    finally:
        hook.remove()
    for c in out:
        # the whole closing token is kept: the text is exactly the tokens sampled, never cut inside one
        assert (c.text, c.num_tokens, c.finish_reason) == (tok.decode(script[: closing + 1]), closing + 1, "answer")
        assert c.text.startswith(answer)

    no_stop = TransformersBackend(b.model, tok, stop_at_answer=False)
    hook = ScriptedLogits(no_stop.model, script)
    try:
        (c,) = no_stop.generate([GenerationRequest(prompts[0], n=1, seed=0, max_new_tokens=len(script))])[0]
    finally:
        hook.remove()
    assert (c.text, c.finish_reason) == (script_text, "length")


def test_code_stop_rule_ends_rows_at_the_answer_blocks_close(tiny_student):
    from dart_hf.verifiers.code import CodeBlockStopper, extract_code

    b = TransformersBackend(tiny_student, device="cpu", stop_at_answer=CodeBlockStopper)
    tok = b.tokenizer
    assert "stop_rule=code_block" in b.fingerprint
    head = chat(tok, "Complete:\n```python\ndef f():\n```")
    script_text = "\n    return 1\n```\n\nUsage:\n```python\nprint(f())\n```\n"
    script = tok(script_text, add_special_tokens=False)["input_ids"]
    closing = next(k for k in range(len(script)) if "```" in tok.decode(script[: k + 1]))
    requests = [
        GenerationRequest(head + "```python\ndef f():", n=2, seed=0, max_new_tokens=len(script)),  # block open
        GenerationRequest(head + "```python\ndef f():\n    return 1\n```\n", n=1, seed=0, max_new_tokens=9),  # closed
    ]
    outs = []
    for request in requests:  # one prompt per call: the script counts forwards from the prefill on
        hook = ScriptedLogits(b.model, script)
        try:
            outs += b.generate([request])
        finally:
            hook.remove()
    opened, closed = outs
    for c in opened:  # cut after the whole token that completes the fence: the text is the sampled tokens
        assert (c.text, c.num_tokens, c.finish_reason) == (tok.decode(script[: closing + 1]), closing + 1, "answer")
        assert extract_code("```python\ndef f():" + c.text) == "def f():\n    return 1\n"
    ((c,),) = [closed]  # the expert's whole block is in the prompt: one token, then stop
    assert (c.num_tokens, c.finish_reason) == (1, "answer")


# ---------------------------------------------------------------------------- shared-prefix prefill

FAMILIES = [  # DART-like: one problem, then the expert steps 1..t
    (
        "A train leaves the station at 3 pm at 60 km/h; a second train leaves at 4 pm at 80 km/h on the same "
        "track. When does the second train catch up with the first? Please reason step by step.",
        ["By 4 pm the first train is 60 km ahead.\n\n", "The gap closes at 20 km/h.\n\n", "So it takes 3 hours.\n\n"],
    ),
    (
        r"Solve $x^2 - 5x + 6 = 0$ and give the sum of the squares of its roots. Please reason step by step, "
        r"and put your final answer within \boxed{}.",
        ["We factor: (x-2)(x-3) = 0.\n\n", "So x = 2 or x = 3, and 4 + 9 = 13.\n\n"],
    ),
]


@pytest.fixture(scope="module")
def nested(backend) -> list[str]:
    """Two families of nested prompts (chat prompt + steps 1..t), then two prompts that share nothing."""
    out = []
    for problem, steps in FAMILIES:
        head = chat(backend.tokenizer, problem)
        out += [head + "".join(steps[:t]) for t in range(len(steps) + 1)]
    return out + ["Hello world", "What is 2 + 3?"]


def token_ids(backend, prompts: list[str]) -> list[list[int]]:
    return [backend.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]


def test_share_groups_plan(backend, nested):
    ids = token_ids(backend, nested)
    groups, rest = share_groups(ids, TransformersBackend._MIN_SHARED, TransformersBackend._FORWARD_COST)
    assert sorted(sorted(members) for _, members in groups) == [[0, 1, 2, 3], [4, 5, 6]]
    assert rest == [7, 8]
    for shared, members in groups:
        # the t=0 prompt (chat head) is the shared prefix + 1 token: every prompt keeps a token of its own
        assert shared == min(len(ids[u]) for u in members) - 1 >= 40
        assert all(ids[u][:shared] == ids[members[0]][:shared] for u in members)
    # identical token lists, short or no common prefixes
    x = list(range(100, 140))
    assert share_groups([x, list(x)], 16, 16) == ([(39, [0, 1])], [])
    assert share_groups([x[:10] + [1] * 30, x[:10] + [2] * 30], 16, 16) == ([], [0, 1])
    assert share_groups([[1] * 40, [2] * 40, []], 16, 16) == ([], [0, 1, 2])
    # a long common prefix over several families: the one group of all of them beats one per family
    head = list(range(200, 400))
    family = lambda k: [head + [k] * t for t in range(1, 4)]  # noqa: E731
    assert share_groups(family(1) + family(2), 16, 16) == ([(200, [0, 1, 2, 3, 4, 5])], [])


def test_shared_prefix_gives_the_same_completions(tiny_student, nested):
    reqs = [
        GenerationRequest(p, n=3, seed=i, temperature=0.8, max_new_tokens=30) for i, p in enumerate(nested + nested[:2])
    ]
    reqs = reqs[::-1]  # request order does not matter
    plain = TransformersBackend(tiny_student, device="cpu", share_prefix=False).generate(reqs)
    # default; suffixes one per prefill forward (the shared KV broadcast to batch 1); chunks that split families
    for kwargs in [{}, {"prefill_tokens": 1}, {"batch_size": 5}]:
        shared = TransformersBackend(tiny_student, device="cpu", **kwargs).generate(reqs)
        for a, b in zip(plain, shared):
            same(a, b)


def test_greedy_with_shared_prefix_matches_model_generate(tiny_student, nested):
    b = TransformersBackend(tiny_student, device="cpu", stop_at_answer=False)
    assert b.share_prefix
    tok, model = b.tokenizer, b.model
    ours = b.generate([GenerationRequest(p, n=1, seed=0, temperature=0, max_new_tokens=40) for p in nested])
    for p, (c,) in zip(nested, ours):
        enc = tok(p, add_special_tokens=False, return_tensors="pt")
        ref = model.generate(**enc, do_sample=False, max_new_tokens=40, pad_token_id=tok.pad_token_id)
        ref_ids = ref[0, enc["input_ids"].shape[1] :].tolist()
        assert (c.text, c.num_tokens) == (tok.decode(ref_ids, skip_special_tokens=True), len(ref_ids))


def test_shared_prefix_prefill_processes_fewer_tokens(tiny_student, nested):
    import functools

    ids = token_ids(TransformersBackend(tiny_student), nested)
    reqs = [GenerationRequest(p, n=2, seed=0, max_new_tokens=1) for p in nested]  # 1 token: prefill forwards only
    processed = {}
    for share in (False, True):
        b = TransformersBackend(tiny_student, device="cpu", share_prefix=share)
        seen = []
        forward = b.model.forward

        @functools.wraps(forward)
        def counting(*args, **kwargs):
            seen.append(kwargs["input_ids"].numel())
            return forward(*args, **kwargs)

        b.model.forward = counting
        b.generate(reqs)
        processed[share] = sum(seen)
    assert processed[False] == len(ids) * max(map(len, ids))  # one left-padded batch
    groups, rest = share_groups(ids, TransformersBackend._MIN_SHARED, TransformersBackend._FORWARD_COST)
    expected = sum(s + len(m) * (max(len(ids[u]) for u in m) - s) for s, m in groups)
    assert processed[True] == expected + len(rest) * max(len(ids[u]) for u in rest)
    assert processed[True] < processed[False] / 2


def test_shared_prefix_with_other_cache_layers_falls_back(tiny_student, nested):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(
        tiny_student, use_sliding_window=True, sliding_window=8, layer_types=["full_attention", "sliding_attention"]
    )
    model = AutoModelForCausalLM.from_pretrained(tiny_student, config=config)
    reqs = [GenerationRequest(p, n=2, seed=i, temperature=0.8, max_new_tokens=20) for i, p in enumerate(nested)]
    shared = TransformersBackend(model, share_prefix=True)
    out = shared.generate(reqs)
    assert shared._plain_cache is False
    for a, b in zip(out, TransformersBackend(model, share_prefix=False).generate(reqs)):
        same(a, b)


# ---------------------------------------------------------------------------- fingerprints


def test_fingerprint_of_paths_and_ids_without_loading(tiny_student, tmp_path):
    from dart_hf.local_models import build_tiny_student

    a, b = TransformersBackend(tiny_student, device="cpu"), TransformersBackend(tiny_student)
    assert a.fingerprint == b.fingerprint
    assert tiny_student in a.fingerprint
    other = TransformersBackend(build_tiny_student(tmp_path / "other", seed=1))
    assert other.fingerprint != a.fingerprint
    assert TransformersBackend(tiny_student, device="cpu", stop_at_answer=False).fingerprint != a.fingerprint
    assert TransformersBackend(tiny_student, share_prefix=True).fingerprint == a.fingerprint  # the default
    assert TransformersBackend(tiny_student, share_prefix=False).fingerprint.endswith("|share_prefix=False")
    assert not (a.is_loaded or b.is_loaded or other.is_loaded)

    hub = TransformersBackend("org/student", revision="v1")
    assert hub.fingerprint == "hf:org/student@v1" == TransformersBackend("org/student", revision="v1").fingerprint
    assert TransformersBackend("org/student", revision="v2").fingerprint != hub.fingerprint
    assert not hub.is_loaded

    # a changed weight file (size/mtime) changes the fingerprint of the same folder
    copy = build_tiny_student(tmp_path / "copy", seed=0)
    before = TransformersBackend(copy).fingerprint
    weights = os.path.join(copy, "model.safetensors")
    st = os.stat(weights)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert TransformersBackend(copy).fingerprint != before


def test_fingerprint_of_loaded_models(tiny_student):
    from transformers import AutoModelForCausalLM

    m1 = AutoModelForCausalLM.from_pretrained(tiny_student)
    m2 = AutoModelForCausalLM.from_pretrained(tiny_student)
    start = time.perf_counter()
    f1 = TransformersBackend(m1).fingerprint  # tokenizer loaded from name_or_path
    assert time.perf_counter() - start < 0.5
    assert f1 == TransformersBackend(m2).fingerprint
    with torch.no_grad():
        m2.model.layers[0].mlp.down_proj.weight[0, 0] += 1.0
    assert TransformersBackend(m2).fingerprint != f1


def test_loaded_model_without_tokenizer_source_is_a_clear_error(tiny_student):
    from transformers import AutoConfig, AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(tiny_student))
    model.name_or_path = ""
    model.config._name_or_path = ""
    with pytest.raises(ValueError, match="tokenizer"):
        TransformersBackend(model)


# ---------------------------------------------------------------------------- the real student (slow)


@pytest.fixture(scope="module")
def smollm2(smollm2_gguf) -> TransformersBackend:
    b = TransformersBackend(smollm2_gguf, batch_size=32)
    b.model, b.tokenizer  # load once for the module
    return b


@pytest.mark.slow
def test_smollm2_gguf_generates_and_stops_at_answer(smollm2):
    from dart_hf.answers import extract_boxed

    tok = smollm2.tokenizer
    reqs = [
        GenerationRequest(
            chat(tok, r"What is 2 + 3? Put the final answer in \boxed{}."), n=2, seed=0, max_new_tokens=64
        ),
        GenerationRequest(
            chat(tok, r"What is 2 + 3? Please reason step by step, and put your final answer within \boxed{}."),
            n=6,
            seed=0,
            max_new_tokens=96,
        ),
    ]
    before = smollm2.tokens_generated
    start = time.perf_counter()
    out = smollm2.generate(reqs)
    elapsed = time.perf_counter() - start
    tokens = smollm2.tokens_generated - before
    print(f"\nSmolLM2-135M: {tokens} tokens in {elapsed:.2f}s = {tokens / elapsed:.1f} tok/s (batch 8)")
    assert [len(x) for x in out] == [2, 6]
    assert tokens == sum(c.num_tokens for cs in out for c in cs)
    for c in out[0] + out[1]:
        print(repr(c))
        assert c.text.strip() and 1 <= c.num_tokens <= 96
        if extract_boxed(c.text) is not None:  # the row stopped with the token that closed the box
            assert c.finish_reason == "answer" and "}" in c.text[-3:]
        if c.finish_reason == "answer":
            assert extract_boxed(c.text) is not None

    # Two-shot prompt: the weak model reliably writes "\\boxed{5}." -> the row stops with the token that closes it.
    shots = []
    for a, b in [(1, 1), (4, 4)]:
        shots += [
            {"role": "user", "content": f"What is {a} + {b}? Put the final answer in \\boxed{{}}."},
            {"role": "assistant", "content": f"{a} + {b} = {a + b}. The answer is \\boxed{{{a + b}}}."},
        ]
    shots.append({"role": "user", "content": "What is 2 + 3? Put the final answer in \\boxed{}."})
    prompt = tok.apply_chat_template(shots, tokenize=False, add_generation_prompt=True)
    (c,) = smollm2.generate([GenerationRequest(prompt, n=1, seed=0, temperature=0, max_new_tokens=48)])[0]
    print(repr(c))
    assert c.finish_reason == "answer" and c.num_tokens < 48
    assert c.text.rstrip(".$ ").endswith(r"\boxed{5}")


@pytest.mark.slow
def test_smollm2_fingerprints(smollm2, smollm2_gguf):
    assert smollm2_gguf in smollm2.fingerprint
    model, tokenizer = smollm2.model, smollm2.tokenizer
    start = time.perf_counter()
    fp = TransformersBackend(model, tokenizer).fingerprint  # samples every parameter tensor
    assert time.perf_counter() - start < 0.2
    assert fp.startswith("model:")


@pytest.mark.slow
def test_gguf_to_checkpoint_round_trip(smollm2, smollm2_checkpoint):
    from transformers import AutoModelForCausalLM

    folder = smollm2_checkpoint  # gguf_to_checkpoint(smollm2 GGUF), converted once per session
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.architectures == [type(smollm2.model).__name__]
    ckpt = TransformersBackend(folder, device=smollm2.model.device)
    assert ckpt.context_length == smollm2.context_length
    prompt = chat(smollm2.tokenizer, "Name three colors.")
    req = [GenerationRequest(prompt, n=1, seed=0, temperature=0, max_new_tokens=16)]
    (a,), (b,) = smollm2.generate(req)[0], ckpt.generate(req)[0]
    assert (a.text, a.num_tokens) == (b.text, b.num_tokens)
    assert a.logprob == pytest.approx(b.logprob, abs=1e-3)


def test_the_blocked_lm_head_gives_the_heads_logits_and_is_removed_after(tiny_student):
    from dart_hf.backends.transformers.decode import HEAD_BLOCK, blocked_head

    class Model(torch.nn.Module):
        def __init__(self, bias: bool):
            super().__init__()
            self.head = torch.nn.Linear(16, 2 * HEAD_BLOCK + 77, bias=bias)

        def get_output_embeddings(self):
            return self.head

    x = torch.randn(5, 1, 16)
    for bias in (False, True):
        model = Model(bias)
        whole = model.head(x)
        with blocked_head(model):
            assert "forward" in vars(model.head)
            blocked = model.head(x)
        assert "forward" not in vars(model.head)
        assert blocked.shape == whole.shape and torch.allclose(blocked, whole, atol=1e-6)
    # a small vocabulary (the tiny student's 400) is left alone
    small = TransformersBackend(tiny_student, device="cpu").model
    with blocked_head(small):
        assert "forward" not in vars(small.get_output_embeddings())
