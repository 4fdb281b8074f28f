"""Launchable adapt recipe, same as `dart-hf adapt` (the logic lives in `dart_hf.scripts.adapt`).

python recipes/adapt.py --config recipes/qwen2.5-math-1.5b/dart/config_adapt_limo.yaml
torchrun --nproc_per_node 8 recipes/adapt.py --config recipes/qwen2.5-math-1.5b/dart/config_adapt_limo.yaml
accelerate launch --num_processes 8 recipes/adapt.py --config recipes/qwen2.5-math-1.5b/dart/config_adapt_limo.yaml
"""

import sys

from dart_hf.scripts.adapt import cli

if __name__ == "__main__":
    sys.exit(cli(prog="adapt.py"))
