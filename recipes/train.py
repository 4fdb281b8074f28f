"""Launchable training recipe, same as `dart-hf train` (the logic lives in `dart_hf.scripts.train`).

    accelerate launch --config_file recipes/accelerate_configs/zero2.yaml recipes/train.py \
        --config recipes/qwen2.5-math-1.5b/dart/config_limo.yaml
    python recipes/train.py --config recipes/smoke/dart/config_train.yaml --max_steps 2
"""

import sys

from dart_hf.scripts.train import cli

if __name__ == "__main__":
    sys.exit(cli(prog="train.py"))
