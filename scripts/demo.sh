#!/usr/bin/env bash
# Set up (if needed) and run the offline DART demo. Extra arguments go to `dart-hf demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
dart-hf demo "$@"
