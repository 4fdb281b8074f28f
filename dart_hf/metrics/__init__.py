"""`evaluate` modules shipped with dart_hf, loadable offline: `evaluate.load(PASS_AT_K)`."""

from __future__ import annotations

import os
from typing import Any

PASS_AT_K = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pass_at_k.py")


def load_pass_at_k() -> Any:
    """The pass@k `evaluate.EvaluationModule`, loaded from this package's file (never from the Hub)."""
    try:
        import evaluate
    except ImportError as err:  # an optional dependency: `pip install dart_hf[evaluate]`
        raise ImportError("the pass@k module needs `evaluate`: pip install 'evaluate>=0.4.6'") from err
    return evaluate.load(PASS_AT_K)
