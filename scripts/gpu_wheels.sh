#!/usr/bin/env bash
# Fetch, here (where PyPI is reachable), the wheels that the GPU machine lacks, into .whl/ (git-ignored).
#
# The GPU machine has no network. Its image has Python 3.12 with a CUDA torch, transformers, accelerate,
# peft, huggingface_hub, tokenizers, safetensors, pandas and pyarrow, but not trl, datasets or math-verify.
# The versions fetched are the ones in this checkout's .venv (what the test suite ran with), so the GPU
# run uses the same transformers/TRL code as CI. scripts/gpu_check.sh installs them with --no-deps into
# /tmp/dart_site and puts that first on PYTHONPATH. With the device tool: run this once here, then
# call `bash scripts/gpu_check.sh` with carry [".whl"] (about 20 MB travel; the limit is 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
PYVER=${GPU_PYTHON_VERSION:-3.12}
# dart_hf's imports that the GPU image lacks (or has at another version), and their own missing needs
PACKAGES="transformers trl datasets dill multiprocess fsspec regex math-verify latex2sympy2_extended antlr4-python3-runtime"
specs=()
for name in $PACKAGES; do
  version=$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")
  specs+=("$name==$version")
done
mkdir -p .whl
rm -f .whl/*.whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${specs[@]}"
ls -la .whl
du -sh .whl
