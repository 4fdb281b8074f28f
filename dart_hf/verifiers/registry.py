"""`--verifier math|code|choice|module:function`: a verifier from its name on the command line."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from ..errors import UsageError
from .base import Verifier

VERIFIER_NAMES = ("math", "code", "choice")
DEFAULT_VERIFIER = "math"


def make_verifier(spec: str, timeout: float = 5.0) -> Verifier:
    """A verifier by name ('math' with `timeout`, 'code', 'choice') or 'module:attribute'.

    The attribute may be a verifier object, a verifier class (built with no arguments), or a TRL
    reward function (wrapped in `RewardFunctionVerifier`). A spec that cannot be used is a
    `UsageError`, raised before any work starts.
    """
    from .choice import ChoiceVerifier
    from .code import CodeVerifier
    from .math import MathVerifier
    from .reward import RewardFunctionVerifier

    if spec == "math":
        return MathVerifier(timeout=timeout)
    if spec == "code":
        return CodeVerifier()
    if spec == "choice":
        return ChoiceVerifier()
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise UsageError(f"--verifier must be one of {', '.join(VERIFIER_NAMES)} or 'module:function', got {spec!r}")
    module_name, attribute = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UsageError(f"--verifier {spec}: cannot import {module_name!r} ({type(err).__name__}: {err})") from None
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"--verifier {spec}: {module_name!r} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    if inspect.isclass(obj):
        try:
            obj = obj()
        except Exception as err:  # noqa: BLE001 - the user's class: one line saying why
            raise UsageError(f"--verifier {spec}: cannot build {attribute}() ({type(err).__name__}: {err})") from None
    if callable(getattr(obj, "judge_many", None)) and callable(getattr(obj, "inspect_gold", None)):
        return obj
    if callable(obj):
        return RewardFunctionVerifier(obj)
    raise UsageError(f"--verifier {spec}: {attribute} is neither a verifier nor a reward function")


def apply_verifier_defaults(verifier: Verifier, config: Any, columns: Any = ()) -> None:
    """Settings a verifier needs unless the user set them: its instruction; for code, the tests as the gold."""
    from ..config import DEFAULT_INSTRUCTION
    from .code import CodeVerifier

    instruction = getattr(verifier, "instruction", None)
    if isinstance(instruction, str) and config.instruction == DEFAULT_INSTRUCTION:
        config.instruction = instruction
    if isinstance(verifier, CodeVerifier) and config.answer_column not in columns and verifier.test_column in columns:
        config.answer_column = verifier.test_column
