"""Launchable study entry point: `python recipes/study.py --config recipes/planted_gap/study/config_cpu.yaml`.

The logic lives in `dart_hf.study`; this file only calls it (same as `dart-hf study`).
"""

import sys

from dart_hf.scripts.study import cli

if __name__ == "__main__":
    sys.exit(cli(prog="recipes/study.py"))
