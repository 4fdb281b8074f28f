"""Launchable evaluation recipe, same as `dart-hf evaluate` (the logic lives in `dart_hf.scripts.evaluate`).

Not `evaluate.py`: `python recipes/evaluate.py` puts `recipes/` first on the module search path, so the file would
shadow the `evaluate` package that computes pass@k.

    python recipes/evaluate_student.py --model outputs/smoke/trained --dataset_name champ --max_samples 20 \
        --n_samples 4 --ks 1 4 --output_file outputs/eval.json
"""

import sys

from dart_hf.scripts.evaluate import cli

if __name__ == "__main__":
    sys.exit(cli(prog="evaluate_student.py"))
