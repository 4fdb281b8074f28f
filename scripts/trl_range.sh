#!/usr/bin/env bash
# Prove the TRL range in pyproject.toml: run tests/test_trainer.py against the oldest and the newest TRL it allows,
# each in a throwaway venv (same CPU torch as scripts/setup.sh, the newest transformers pip resolves with that TRL),
# and print a table: trl version -> passed / failed.
#
#   bash scripts/trl_range.sh                 # the oldest and newest release pyproject.toml's trl requirement allows
#   bash scripts/trl_range.sh 1.12.0 1.16.0   # or any TRL versions
#
# Environment: PYTHON (python3), TORCH_SPEC (torch==2.13.0), TRANSFORMERS_SPEC (to pin transformers too),
# KEEP_VENVS=1 (keep the venvs and logs, under $WORK_DIR; logs are kept anyway when a version fails). Exit status 1
# when any version fails.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
WORK_DIR=${WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/dart-trl-range.XXXXXX")}
mkdir -p "$WORK_DIR"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PIP_DISABLE_PIP_VERSION_CHECK=1

versions=("$@")
if [ ${#versions[@]} -eq 0 ]; then
  # The oldest and the newest release on the index that the trl requirement in pyproject.toml allows
  mapfile -t versions < <("$PYTHON" -m pip index versions trl 2>/dev/null | sed -nE 's/^Available versions: //p' |
    "$PYTHON" -c "import re, sys, tomllib
from packaging.requirements import Requirement
from packaging.version import Version
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']
spec = next(Requirement(d) for d in deps if re.match(r'trl\b', d)).specifier
allowed = sorted(v for v in map(Version, sys.stdin.read().replace(',', ' ').split()) if v in spec)
print(f'pyproject.toml: trl{spec} allows {len(allowed)} releases', file=sys.stderr)
print(allowed[0]); print(allowed[-1])")
  [ ${#versions[@]} -eq 2 ] || { echo "could not list the trl releases pyproject.toml allows; pass versions" >&2; exit 2; }
  [ "${versions[0]}" != "${versions[1]}" ] || versions=("${versions[0]}")
fi

mapfile -t deps < <("$PYTHON" -c "import re, tomllib
for d in tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']:
    if re.match(r'trl\b', d) is None: print(d)")
declare -A result transformers
for v in "${versions[@]}"; do
  venv="$WORK_DIR/trl-$v"
  log="$WORK_DIR/trl-$v.log"
  echo "== trl $v: venv $venv, log $log"
  # dart_hf's own dependencies, except its trl line, with this trl; then dart_hf itself without dependencies
  {
    "$PYTHON" -m venv "$venv" &&
      "$venv/bin/pip" install -q "$TORCH_SPEC" &&
      "$venv/bin/pip" install -q "${deps[@]}" "trl==$v" pytest pytest-timeout hypothesis pandas \
        ${TRANSFORMERS_SPEC:+"$TRANSFORMERS_SPEC"} &&
      "$venv/bin/pip" install -q --no-deps -e "$REPO"
  } >"$log" 2>&1
  if [ $? -ne 0 ]; then
    result[$v]="install failed"
  else
    transformers[$v]=$("$venv/bin/python" -c "import transformers; print(transformers.__version__)")
    "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_trainer.py >>"$log" 2>&1
    status=$?
    summary=$(grep -E '[0-9]+ (passed|failed)' "$log" | tail -1 | sed -E 's/^=+ //; s/ in [0-9.]+s.*//')
    if [ $status -eq 0 ]; then result[$v]="passed ($summary)"; else result[$v]="FAILED ($summary)"; fi
  fi
  echo "   ${result[$v]}"
  [ "${KEEP_VENVS:-0}" = 1 ] || rm -rf "$venv"
done

printf '\n| trl | transformers | torch | tests/test_trainer.py |\n|---|---|---|---|\n'
failed=0
for v in "${versions[@]}"; do
  printf '| %s | %s | %s | %s |\n' "$v" "${transformers[$v]:-?}" "${TORCH_SPEC#torch==}" "${result[$v]}"
  [[ ${result[$v]} == passed* ]] || failed=1
done
if [ "${KEEP_VENVS:-0}" = 1 ] || [ $failed = 1 ]; then echo "logs kept in $WORK_DIR"; else rm -rf "$WORK_DIR"; fi
exit $failed
