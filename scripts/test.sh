#!/usr/bin/env bash
# Set up (if needed), lint (ruff; a finding fails the run) and run the test suite, offline.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ruff check dart_hf tests benchmarks recipes scripts
ruff format --check --quiet dart_hf tests benchmarks recipes scripts
python -m pytest -q -p no:cacheprovider "$@"
