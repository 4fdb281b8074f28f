"""Generation from OpenAI-compatible servers (vLLM, sglang, TGI, llama.cpp, `transformers serve`).

- `backend`: [`OpenAIServerBackend`][dart_hf.backends.openai.OpenAIServerBackend], the client:
  rounds of requests, top-ups of missing samples, per-request failures;
- `wire`: request bodies and response parsing (choices, answer cuts, log-probs);
- `transport`: one request answered by some server (deadlines, retries, failover) and what a failure means;
- `_http`: one HTTP exchange under a whole-request deadline.
"""

from .backend import OpenAIServerBackend
from .transport import ServerError, ServerUnavailable

__all__ = ["OpenAIServerBackend", "ServerError", "ServerUnavailable"]
