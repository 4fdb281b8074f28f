#!/usr/bin/env bash
# Run the GPU check (benchmarks/gpu.py --device cuda) on a machine with one CUDA GPU, offline.
#
#   bash scripts/gpu_check.sh [more benchmarks/gpu.py options]
#
# Writes gpu_check.json, gpu_check.md and gpu_check.log into $OUT/gpu (OUT defaults to outputs/),
# and exits with benchmarks/gpu.py's status (1: a check failed; 124: the time limit was hit, the
# sections finished by then are in the files).
#
# Python: $GPU_CHECK_PYTHON if set, else .venv/bin/python when it exists there and sees a GPU, else python3 (the GPU image's, with a
# CUDA torch). This checkout's .venv cannot travel to such a machine (a CPU torch for another Python).
# Packages the image lacks (trl, datasets, math-verify, ...) travel as wheels: run
# `bash scripts/gpu_wheels.sh` here first (it fills .whl/, git-ignored); this script installs them into
# /tmp/dart_site and puts that first on PYTHONPATH. With the device tool, one call does it all:
#     run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=540)
# The whole check is sized to finish in under 8 minutes (GPU_CHECK_TIMEOUT, default 420 s, is its limit).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-outputs}/gpu"
LIMIT=${GPU_CHECK_TIMEOUT:-420}

if [ -n "${GPU_CHECK_PYTHON:-}" ]; then
  PY=$GPU_CHECK_PYTHON
elif [ -x .venv/bin/python ] && .venv/bin/python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  PY=.venv/bin/python
else
  PY=python3
fi
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/dart_site .whl/*.whl \
    || { echo "gpu_check: installing .whl/*.whl failed" >&2; exit 3; }
  export PYTHONPATH="/tmp/dart_site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
mkdir -p "$OUT_DIR"

# Preflight: versions, the GPU, and every import the check needs (a missing one names itself here).
"$PY" - <<'PYEOF' 2>&1 | tee "$OUT_DIR/gpu_check.log" || { echo "gpu_check: preflight failed (see scripts/gpu_wheels.sh)" >&2; exit 3; }
import importlib.metadata as md
import sys
import torch
print("python", sys.version.split()[0], sys.executable)
for name in ("torch", "transformers", "trl", "accelerate", "datasets", "math-verify", "peft", "tokenizers", "huggingface_hub", "pyarrow"):
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        print(name, "MISSING")
print("cuda", torch.version.cuda, torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "-")
import datasets, math_verify, trl  # noqa: E401,F401
import dart_hf.trainer  # noqa: F401
sys.exit(0 if torch.cuda.is_available() else 1)
PYEOF

timeout --kill-after 20 "$LIMIT" "$PY" benchmarks/gpu.py --device cuda --out "$OUT_DIR" "$@" 2>&1 | tee -a "$OUT_DIR/gpu_check.log"
rc=${PIPESTATUS[0]}
echo "gpu_check: exit $rc; results in $OUT_DIR"
exit "$rc"
