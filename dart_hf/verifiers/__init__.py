"""Judges of a student's attempts: math (the default), code, multiple choice, any TRL reward function.

`make_verifier("math" | "code" | "choice" | "module:function")` is what `--verifier` calls.
"""

from .base import Attempt, GoldCheck, Verdict, Verifier, as_verifier, verifier_fingerprint
from .choice import ChoiceVerifier
from .code import CodeVerifier
from .math import MathVerifier
from .registry import VERIFIER_NAMES, make_verifier
from .reward import RewardFunctionVerifier

__all__ = [
    "VERIFIER_NAMES",
    "Attempt",
    "ChoiceVerifier",
    "CodeVerifier",
    "GoldCheck",
    "MathVerifier",
    "RewardFunctionVerifier",
    "Verdict",
    "Verifier",
    "as_verifier",
    "make_verifier",
    "verifier_fingerprint",
]
