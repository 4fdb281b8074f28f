"""Moved to `dart_hf.verifiers`; this module keeps the old import path working."""

from .verifiers import GoldCheck, MathVerifier, Verdict, Verifier, as_verifier, verifier_fingerprint

__all__ = ["GoldCheck", "MathVerifier", "Verdict", "Verifier", "as_verifier", "verifier_fingerprint"]
